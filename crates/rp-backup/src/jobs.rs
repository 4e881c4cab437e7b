//! Backup jobs (`AzureIaaSVMJob`, with their tasks) and the operation
//! records clients poll: `backupOperations/{id}` carries the `jobId`
//! exactly as azure-cli follows it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::{time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_rs_core::backup_item::ProtectedItem;
use recoverite_rs_core::jobs::{Job, JobError, JobStatus};
use recoverite_store::{Reader, Table, WriteTx};

use crate::backup_job::{self, BackupJob, JobExtendedInfo, JobFilter, JobProperties, JobTask};
use crate::{vault_of, JOB_TYPE};

const OPERATIONS: Table = Table("backup_operations");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OperationRecord {
    id: String,
    vault_id: String,
    status: String,
    start_time: String,
    end_time: String,
    job_id: Option<String>,
    /// Extended info of an operation without a job (file recovery's target).
    #[serde(default)]
    extended: Option<Value>,
}

pub use recoverite_rs_core::jobs::iso_duration;

/// Records a finished job of `operation` on `item` with its tasks
/// (`(name, seconds)`), in the caller's transaction; returns its id.
pub fn record(
    tx: &mut WriteTx,
    vault_id: &str,
    operation: &str,
    item: &ProtectedItem,
    tasks: &[(&str, u64)],
    property_bag: Value,
) -> Result<String, ArmError> {
    record_with_status(
        tx,
        vault_id,
        operation,
        item,
        tasks,
        property_bag,
        JobStatus::Completed,
        &[],
    )
}

#[allow(clippy::too_many_arguments)]
pub fn record_with_status(
    tx: &mut WriteTx,
    vault_id: &str,
    operation: &str,
    item: &ProtectedItem,
    tasks: &[(&str, u64)],
    property_bag: Value,
    status: JobStatus,
    errors: &[(String, String)],
) -> Result<String, ArmError> {
    let (id, doc) = job_doc(
        vault_id,
        operation,
        item,
        tasks,
        property_bag,
        status,
        errors,
    );
    doc.save(tx)?;
    Ok(id)
}

/// A finished job's document (`AzureIaaSVMJob`, or `MabJob` for a MARS
/// item) and its id; its tasks ran one after the other and ended now.
pub fn job_doc(
    vault_id: &str,
    operation: &str,
    item: &ProtectedItem,
    tasks: &[(&str, u64)],
    property_bag: Value,
    status: JobStatus,
    errors: &[(String, String)],
) -> (String, BackupJob) {
    let errors = errors
        .iter()
        .map(|(code, message)| JobError {
            code: code.clone(),
            message: message.clone(),
        })
        .collect();
    let job = Job::ended_now(operation, tasks, status, errors);
    let id = job.name.clone();
    let (start, end) = (job.start, job.end.unwrap_or(job.start));
    let tasks: Vec<JobTask> = job
        .tasks
        .iter()
        .map(|t| JobTask {
            task_id: t.name.clone(),
            start_time: Some(time::format(t.start)),
            end_time: t.end.map(time::format),
            duration: Some(iso_duration(t.seconds())),
            status: job.status.backup().into(),
            progress_percentage: Some(100.0),
        })
        .collect();
    let p = &item.properties;
    // A MARS item's jobs are MabJobs.
    let mab = item.mab();
    let given = json!({
        "mabServerName": mab.map(|m| m.computer_name.clone()),
        "workloadType": if mab.is_some() { json!("FileFolder") } else { Value::Null },
        "virtualMachineVersion": "Compute",
    });
    let doc = BackupJob {
        id: BackupJob::job_id(vault_id, &id),
        name: id.clone(),
        kind: JOB_TYPE.to_string(),
        properties: JobProperties {
            job_type: if mab.is_some() { "MabJob" } else { "AzureIaaSVMJob" }.into(),
            entity_friendly_name: p.friendly_name.clone(),
            backup_management_type: if mab.is_some() { "MAB" } else { "AzureIaasVM" }.into(),
            operation: operation.to_string(),
            status: job.status,
            start_time: time::format(start),
            end_time: Some(time::format(end)),
            duration: iso_duration(job.seconds()),
            activity_id: uuid::Uuid::new_v4().to_string(),
            is_user_triggered: Some(true),
            container_name: Some(p.container_name.clone()),
            actions_info: Vec::new(),
            error_details: job.errors.iter().map(|e| json!({"errorCode": 0, "errorString": format!("{}: {}", e.code, e.message), "errorTitle": e.code, "recommendations": []})).collect(),
            extended_info: JobExtendedInfo {
                tasks_list: tasks,
                property_bag: property_bag.as_object().cloned().unwrap_or_default(),
                progress_percentage: Some(100.0),
                dynamic_error_message: None,
            },
            given: given.as_object().cloned().unwrap_or_default(),
        },
    };
    (id, doc)
}

/// Jobs whose work runs in this process (a backup, a restore): work runs
/// once even when its request's thread and the clock's sweep both see it,
/// and the sweep tells a job cut short by a restart from one still running.
fn running() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
    static RUNNING: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

/// Marks `job` as running here; false if it already was.
pub(crate) fn claim(job: &str) -> bool {
    running()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(job.to_string())
}

pub(crate) fn release(job: &str) {
    running()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(job);
}

pub(crate) fn is_running(job: &str) -> bool {
    running()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(job)
}

/// A job of `operation` on `item` that starts now with `tasks` ahead of it:
/// the first running, the others `NotStarted`, cancellable while it runs.
pub fn running_job(
    vault_id: &str,
    operation: &str,
    item: &ProtectedItem,
    tasks: &[&str],
    user: bool,
) -> BackupJob {
    let steps: Vec<(&str, u64)> = tasks.iter().map(|t| (*t, 0)).collect();
    let (_, mut job) = job_doc(
        vault_id,
        operation,
        item,
        &steps,
        json!({}),
        JobStatus::InProgress,
        &[],
    );
    let p = &mut job.properties;
    p.end_time = None;
    p.duration = iso_duration(0);
    p.is_user_triggered = Some(user);
    p.actions_info = vec!["Cancellable".into()];
    p.extended_info.progress_percentage = Some(0.0);
    for (i, t) in p.extended_info.tasks_list.iter_mut().enumerate() {
        t.end_time = None;
        t.duration = None;
        t.progress_percentage = Some(0.0);
        if i > 0 {
            t.start_time = None;
            t.status = "NotStarted".into();
        }
    }
    job
}

/// Marks a job as started by the policy's schedule, not a user.
pub fn mark_scheduled(tx: &mut WriteTx, vault_id: &str, job: &str) -> Result<(), ArmError> {
    if let Some(mut d) = backup_job::load(tx, vault_id, job)? {
        d.properties.is_user_triggered = Some(false);
        d.save(tx)?;
    }
    Ok(())
}

/// A finished operation record, optionally naming its job; returns its id.
pub fn finished_operation(
    tx: &mut WriteTx,
    vault_id: &str,
    job_id: Option<&str>,
) -> Result<String, ArmError> {
    finished_operation_with(tx, vault_id, job_id, None)
}

/// As [`finished_operation`], with the extended info its status carries.
pub fn finished_operation_with(
    tx: &mut WriteTx,
    vault_id: &str,
    job_id: Option<&str>,
    extended: Option<Value>,
) -> Result<String, ArmError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = time::now_string();
    tx.put_json(
        OPERATIONS,
        &id,
        &OperationRecord {
            id: id.clone(),
            vault_id: vault_id.to_string(),
            status: "Succeeded".into(),
            start_time: now.clone(),
            end_time: now,
            job_id: job_id.map(str::to_string),
            extended,
        },
    )?;
    Ok(id)
}

fn url(ctx: &Ctx, req: &ArmRequest, path: &str) -> String {
    format!("{}{path}?api-version={}", ctx.base_url, req.api_version)
}

/// 202 for a change on a protected item, polled at the item's
/// `operationsStatus/{id}` (Azure-AsyncOperation) and `operationResults/{id}`.
pub fn accepted(
    ctx: &Ctx,
    req: &ArmRequest,
    vault_id: &str,
    item_id: &str,
    job: &str,
) -> Result<Reply, ArmError> {
    accepted_at(ctx, req, vault_id, job, |op| {
        (
            format!("{item_id}/operationResults/{op}"),
            format!("{item_id}/operationsStatus/{op}"),
        )
    })
}

/// 202 for backup, restore and delete: `backupOperations/{id}` (the
/// Azure-AsyncOperation whose last segment azure-cli takes) and
/// `backupOperationResults/{id}`.
pub fn accepted_plain(
    ctx: &Ctx,
    req: &ArmRequest,
    vault_id: &str,
    job: &str,
) -> Result<Reply, ArmError> {
    accepted_at(ctx, req, vault_id, job, |op| {
        (
            format!("{vault_id}/backupOperationResults/{op}"),
            format!("{vault_id}/backupOperations/{op}"),
        )
    })
}

/// 202 for an operation already recorded (in the caller's transaction),
/// polled at `backupOperations/{op}`.
pub fn accepted_operation(ctx: &Ctx, req: &ArmRequest, vault_id: &str, op: &str) -> Reply {
    recoverite_arm::lro::with_retry_after(
        ctx,
        Reply::empty(202)
            .header(
                "Location",
                url(ctx, req, &format!("{vault_id}/backupOperationResults/{op}")),
            )
            .header(
                "Azure-AsyncOperation",
                url(ctx, req, &format!("{vault_id}/backupOperations/{op}")),
            ),
    )
}

/// Records the finished operation of `job` and answers 202 with its
/// `(Location, Azure-AsyncOperation)` paths.
fn accepted_at(
    ctx: &Ctx,
    req: &ArmRequest,
    vault_id: &str,
    job: &str,
    paths: impl Fn(&str) -> (String, String),
) -> Result<Reply, ArmError> {
    let op = ctx
        .store()
        .write(|tx| finished_operation(tx, vault_id, Some(job)))?;
    let (location, status) = paths(&op);
    Ok(recoverite_arm::lro::with_retry_after(
        ctx,
        Reply::empty(202)
            .header("Location", url(ctx, req, &location))
            .header("Azure-AsyncOperation", url(ctx, req, &status)),
    ))
}

fn load_op(ctx: &Ctx, req: &ArmRequest, id: &str) -> Result<OperationRecord, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    ctx.store()
        .read(|r| Ok(r.get_json::<OperationRecord>(OPERATIONS, id)))??
        .filter(|o| recoverite_arm::id::key(&o.vault_id) == recoverite_arm::id::key(&vid))
        .ok_or_else(|| {
            ArmError::new(
                404,
                "BMSUserErrorOperationNotFound",
                format!("The operation '{id}' was not found in this vault."),
            )
        })
}

fn status_doc(o: &OperationRecord) -> Value {
    let mut d = json!({"id": o.id, "name": o.id, "status": o.status, "startTime": o.start_time, "endTime": o.end_time});
    if let Some(j) = &o.job_id {
        d["properties"] = json!({"objectType": "OperationStatusJobExtendedInfo", "jobId": j});
    } else if let Some(x) = &o.extended {
        d["properties"] = x.clone();
    }
    d
}

/// `backupOperations/{id}` and an item's `operationsStatus/{id}`.
pub fn operation(ctx: &Ctx, req: &ArmRequest, id: &str) -> Result<Reply, ArmError> {
    Ok(Reply::ok(status_doc(&load_op(ctx, req, id)?)))
}

pub fn operation_result(ctx: &Ctx, req: &ArmRequest, id: &str) -> Result<Reply, ArmError> {
    load_op(ctx, req, id)?;
    Ok(Reply::empty(204))
}

pub fn fabric_operation_result(ctx: &Ctx, req: &ArmRequest, id: &str) -> Result<Reply, ArmError> {
    load_op(ctx, req, id)?;
    Ok(Reply::empty(204))
}

/// An item's `operationsStatus/{id}` (status) or `operationResults/{id}`
/// (the item, once done).
pub fn item_operation(ctx: &Ctx, req: &ArmRequest, id: &str) -> Result<Reply, ArmError> {
    let o = load_op(ctx, req, id)?;
    let kind = req
        .path
        .segments
        .get(req.path.segments.len().saturating_sub(2))
        .map(|s| s.to_ascii_lowercase());
    if kind.as_deref() == Some("operationsstatus") {
        return Ok(Reply::ok(status_doc(&o)));
    }
    let item_id = req.path.prefix(req.path.segments.len() - 2);
    match ctx
        .store()
        .view(|r| recoverite_rs_core::backup_item::load(r, &item_id))?
    {
        Some(d) => Ok(Reply::ok(d.to_value()?)),
        None => Ok(Reply::empty(204)),
    }
}

/// The `Y-m-d h:M:S AM` times azure-cli puts in `$filter`, or RFC 3339.
pub fn parse_filter_time(s: &str) -> Option<::time::OffsetDateTime> {
    if let Some(t) = time::parse(s) {
        return Some(t);
    }
    let fmt = ::time::macros::format_description!(
        "[year]-[month]-[day] [hour repr:12]:[minute]:[second] [period]"
    );
    ::time::PrimitiveDateTime::parse(s, &fmt)
        .ok()
        .map(|p| p.assume_utc())
}

/// `name eq 'value'` in an OData filter, case-insensitively.
pub fn filter_value(filter: &str, name: &str) -> Option<String> {
    let lower = filter.to_ascii_lowercase();
    let at = lower.find(&format!("{} eq '", name.to_ascii_lowercase()))?;
    let rest = &filter[at + name.len() + 5..];
    rest.split('\'').next().map(str::to_string)
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let f = req.query_get("$filter").unwrap_or("").to_string();
    let all = ctx.store().view(|r| backup_job::list(r, &vid))?;
    recoverite_arm::paging::page_visible(ctx, req, filtered(all, &f)?)
}

/// What azure-cli's `$filter` asks of a job list.
pub fn job_filter(f: &str) -> JobFilter {
    JobFilter {
        operation: filter_value(f, "operation"),
        status: filter_value(f, "status"),
        management_type: filter_value(f, "backupManagementType"),
        from: filter_value(f, "startTime").and_then(|t| parse_filter_time(&t)),
        to: filter_value(f, "endTime").and_then(|t| parse_filter_time(&t)),
    }
}

/// Jobs matching azure-cli's `$filter` (operation, status,
/// backupManagementType, startTime, endTime), newest first, as the API
/// shows them.
pub fn filtered(jobs: Vec<BackupJob>, f: &str) -> Result<Vec<Value>, ArmError> {
    let filter = job_filter(f);
    // Newest first, as the portal and azure-cli show them.
    jobs.iter()
        .rev()
        .filter(|j| j.matches(&filter))
        .map(BackupJob::to_value)
        .collect()
}

fn job_not_found(id: &str) -> ArmError {
    ArmError::new(
        404,
        "BMSUserErrorJobNotFound",
        format!("The job '{id}' was not found in the vault."),
    )
}

pub fn get(ctx: &Ctx, req: &ArmRequest, id: &str) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    ctx.store()
        .view(|r| backup_job::load(r, &vid, id))?
        .ok_or_else(|| job_not_found(id))?
        .to_value()
        .map(Reply::ok)
}

/// POST backupJobs/{id}/cancel: a job still in progress that can be
/// cancelled (an Azure VM backup while it snapshots or transfers, a MARS
/// backup while its agent sends) is `Cancelling` until what runs it here
/// stops (within a few chunks), then `Cancelled`; one nothing here runs
/// ends `Cancelled` at once. No point is made for it. 202 with the cancellation's
/// `backupJobs/{id}/operationResults/{op}`. A restore, once it writes
/// disks, is not cancellable.
pub fn cancel(ctx: &Ctx, req: &ArmRequest, id: &str) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let op = ctx.store().write(|tx| {
        let mut job = backup_job::load(tx, &vid, id)?.ok_or_else(|| job_not_found(id))?;
        job.cancel(is_running(id), time::now())?;
        job.save(tx)?;
        finished_operation(tx, &vid, None)
    })?;
    Ok(cancellation_pending(ctx, req, &vid, id, &op))
}

/// 202 with where to ask whether the cancellation of `id` is done
/// (`Location`, `Retry-After`).
fn cancellation_pending(ctx: &Ctx, req: &ArmRequest, vid: &str, id: &str, op: &str) -> Reply {
    let at = url(
        ctx,
        req,
        &format!("{vid}/backupJobs/{id}/operationResults/{op}"),
    );
    recoverite_arm::lro::with_retry_after(ctx, Reply::empty(202).header("Location", at))
}

/// GET backupJobs/{id}/operationResults/{op}: 202 while the job is still
/// `Cancelling`, 204 once the cancellation is done.
pub fn job_operation_result(
    ctx: &Ctx,
    req: &ArmRequest,
    id: &str,
    op: &str,
) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let job = ctx
        .store()
        .view(|r| backup_job::load(r, &vid, id))?
        .ok_or_else(|| job_not_found(id))?;
    load_op(ctx, req, op)?;
    if job.properties.status == JobStatus::Cancelling {
        return Ok(cancellation_pending(ctx, req, &vid, id, op));
    }
    Ok(Reply::empty(204))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_filters() {
        assert_eq!(iso_duration(0), "PT0S");
        assert_eq!(iso_duration(3723), "PT1H2M3S");
        let f = "operation eq 'Backup' and status eq 'Completed' and startTime eq '2026-11-30 01:02:03 PM'";
        assert_eq!(filter_value(f, "operation").as_deref(), Some("Backup"));
        assert_eq!(filter_value(f, "STATUS").as_deref(), Some("Completed"));
        let t = parse_filter_time(&filter_value(f, "startTime").unwrap()).unwrap();
        assert_eq!((t.hour(), t.minute(), t.second()), (13, 2, 3));
        assert!(parse_filter_time("2026-11-30T01:02:03Z").is_some());
        assert!(parse_filter_time("yesterday").is_none());
    }
}
