//! Restores run after their 202, as Azure runs them (issue 12): the request
//! checks what it can and answers with an `InProgress` Restore job; the
//! bytes are written beside it; the job ends `Completed` in the transaction
//! that makes the restored disks (or the VM's new disks) the restore's, or
//! `Failed` with why. A restore cut short by a restart is failed when the
//! service is back — it is not run again, as the caller's token that would
//! finish it (an AlternateLocation VM is made as the caller) is gone — and
//! leaves no restored disk half-written (disks are registered only once
//! their bytes are durable).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use recoverite_arm::{time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_rs_core::backup_item::ProtectedItem;
use recoverite_rs_core::jobs::JobStatus;
use recoverite_store::{Reader, Store, Table, WriteTx};

use crate::backup_job;
use crate::jobs;

/// Restores accepted and not ended, by job.
const ACCEPTED: Table = Table("vm_restores_accepted");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreJob {
    pub vault_id: String,
    pub job: String,
}

impl RestoreJob {
    /// The Restore job of `item`, `InProgress` with `tasks` ahead of it, and
    /// the operation a client polls for it; returns both.
    pub fn start(
        store: &Store,
        vault_id: &str,
        item: &ProtectedItem,
        tasks: &[&str],
    ) -> Result<(RestoreJob, String), ArmError> {
        let mut job = jobs::running_job(vault_id, "Restore", item, tasks, true);
        // Azure does not cancel a restore once it writes disks.
        job.properties.actions_info.clear();
        let r = RestoreJob {
            vault_id: vault_id.to_string(),
            job: job.name.clone(),
        };
        // Running here before it is stored: the clock's sweep of restores
        // cut short by a restart never takes it for one.
        jobs::claim(&r.job);
        let op = store.write(|tx| {
            job.save(tx)?;
            tx.put_json(ACCEPTED, &r.job, &r)?;
            jobs::finished_operation(tx, vault_id, Some(&r.job))
        });
        match op {
            Ok(op) => Ok((r, op)),
            Err(e) => {
                jobs::release(&r.job);
                Err(e)
            }
        }
    }

    /// Task `i` is done; the next one runs.
    pub fn step_done(&self, store: &Store, i: usize) {
        let _ = store.write(|tx| {
            if let Some(mut j) = backup_job::load(tx, &self.vault_id, &self.job)? {
                if !j.properties.status.ended() {
                    j.task_ended(i, time::now());
                    j.save(tx)?;
                }
            }
            Ok::<_, ArmError>(())
        });
    }

    /// Ends the job `Completed` with what was restored (in the transaction
    /// that makes the restore's disks its own).
    pub fn complete(&self, tx: &mut WriteTx, bag: Value) -> Result<(), ArmError> {
        if let Some(mut j) = backup_job::load(tx, &self.vault_id, &self.job)? {
            if let Value::Object(b) = bag {
                j.properties.extended_info.property_bag.extend(b);
            }
            j.finish(JobStatus::Completed, time::now());
            j.save(tx)?;
        }
        tx.delete(ACCEPTED, &self.job)?;
        Ok(())
    }

    /// Ends the job `Failed` with `e`.
    pub fn fail(&self, tx: &mut WriteTx, e: &ArmError) -> Result<(), ArmError> {
        if let Some(mut j) = backup_job::load(tx, &self.vault_id, &self.job)? {
            if !j.properties.status.ended() {
                j.fail(e, time::now());
                j.save(tx)?;
            }
        }
        tx.delete(ACCEPTED, &self.job)?;
        Ok(())
    }
}

/// Runs `work` beside the request and answers 202 with the job's operation
/// at once; a `work` that fails ends the job `Failed` with its error.
pub fn spawn(
    ctx: &Ctx,
    req: &ArmRequest,
    job: RestoreJob,
    op: String,
    work: impl FnOnce(&RestoreJob) -> Result<(), ArmError> + Send + 'static,
) -> Reply {
    let store = ctx.store().clone();
    let reply = jobs::accepted_operation(ctx, req, &job.vault_id, &op);
    std::thread::spawn(move || {
        if let Err(e) = work(&job) {
            tracing::info!("restore job {} failed: {}", job.job, e.body.message);
            if let Err(e2) = store.write(|tx| job.fail(tx, &e)) {
                tracing::warn!("ending restore job {}: {}", job.job, e2.body.message);
            }
        }
        jobs::release(&job.job);
    });
    reply
}

/// Restores accepted before a restart end `Failed`: they are not run again.
pub fn fail_interrupted(store: &Store) -> Result<usize, ArmError> {
    let left: Vec<RestoreJob> = store
        .read(|r| Ok(r.scan_json::<RestoreJob>(ACCEPTED, "")))??
        .into_iter()
        .map(|(_, j)| j)
        .filter(|j| !jobs::is_running(&j.job))
        .collect();
    let cut = ArmError::conflict(
        "BMSUserErrorRestoreInterrupted",
        "The restore was cut short by a restart of the service; no restored disk was kept. Trigger the restore again.",
    );
    for j in &left {
        store.write(|tx| j.fail(tx, &cut))?;
    }
    Ok(left.len())
}
