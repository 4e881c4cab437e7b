//! Azure VM backups as Azure runs them (issue 12). "Backup now" is
//! accepted with a job that is `InProgress` and cancellable, and answered
//! at once (202); the snapshot of every disk and the transfer to the vault
//! tier run beside it, the job showing each step; then the point, its
//! instant-restore snapshot, the item's state and the job's end are written
//! in one transaction — unless the job was cancelled meanwhile, in which
//! case nothing of the point is kept. An accepted backup is stored with its
//! job, so one cut short by a restart runs again from the start (under the
//! same point name, overwriting what it had made) when the service is back.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::json;

use recoverite_arm::{id, resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_backup_store::ChunkStore;
use recoverite_rp_compute::disks::{self, Disk};
use recoverite_rp_compute::view::{DiskRole, Vm};
use recoverite_rs_core::backup_item::{self as core_item, ProtectedItem};
use recoverite_rs_core::jobs::JobStatus;
use recoverite_store::{Reader, Store, Table, WriteTx};

use crate::backup_job::{self, BackupJob};
use crate::items::load;
use crate::jobs;
use crate::points::{
    check_backup_allowed, check_on_demand_count, io, new_point_name, point_key, previous_disks,
    snapshot_group_name, store_of, PointData, PointDisk, PointSource, PointSourceProperties,
    POINT_DATA,
};
use crate::recovery_point::{PointExpiry, PointProperties, RecoveryPoint, VmPointProperties};
use crate::{policy, vault_of, BackupProvider};

/// Backups accepted and not yet ended, by job: what each takes.
const ACCEPTED: Table = Table("vm_backups_accepted");

/// The steps of a VM backup job, as Azure names them.
pub const TASKS: [&str; 2] = ["Take Snapshot", "Transfer data to vault"];

/// A backup accepted and not yet ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub vault_id: String,
    pub item_id: String,
    pub job: String,
    /// The point's name, chosen when accepted: a backup run again after a
    /// restart makes the same files and overwrites what it had made.
    pub point_name: String,
    pub expiry: Option<String>,
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / (1u64 << 20) as f64)
}

fn accepted(r: &impl Reader) -> Result<Vec<Accepted>, ArmError> {
    Ok(r.scan_json::<Accepted>(ACCEPTED, "")?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

/// "One backup of an item at a time": a backup accepted and not ended
/// holds its item until its job ends.
pub fn check_not_running(accepted: &[Accepted], item_id: &str) -> Result<(), ArmError> {
    match accepted
        .iter()
        .find(|a| id::key(&a.item_id) == id::key(item_id))
    {
        Some(a) => Err(ArmError::conflict(
            "UserErrorBackupOperationInProgress",
            format!(
                "Backup job '{}' of this item is in progress; wait for it to end (or cancel it), then try again.",
                a.job
            ),
        )),
        None => Ok(()),
    }
}

/// Accepts a backup of a protected item (in the caller's transaction): the
/// item may be backed up, its VM is there, no other backup of it runs; its
/// job starts `InProgress`. `user`: on demand (else the policy's schedule).
pub fn accept(
    tx: &mut WriteTx,
    vid: &str,
    rid: &str,
    expiry: Option<String>,
    user: bool,
) -> Result<Accepted, ArmError> {
    let inputs = backup_inputs(tx, vid, rid)?;
    // A cancelled backup frees its item at once, though what ran it may
    // still be finishing a disk (it makes no point).
    let mut holding = Vec::new();
    for a in accepted(tx)? {
        if still_running(tx, &a).is_ok() {
            holding.push(a);
        }
    }
    check_not_running(&holding, rid)?;
    let job = jobs::running_job(vid, "Backup", &inputs.item, &TASKS, user);
    job.save(tx)?;
    let a = Accepted {
        vault_id: vid.to_string(),
        item_id: rid.to_string(),
        job: job.name.clone(),
        point_name: new_point_name(),
        expiry,
    };
    tx.put_json(ACCEPTED, &a.job, &a)?;
    Ok(a)
}

/// POST `backup` ("Backup now"): accepted with its job, answered 202 at
/// once; the backup runs beside the request.
pub fn backup(
    ctx: &Ctx,
    req: &ArmRequest,
    bp: &BackupProvider,
    container: &str,
    item: &str,
) -> Result<Reply, ArmError> {
    let body = req.body.clone().unwrap_or(json!({}));
    let expiry = body["properties"]["recoveryPointExpiryTimeInUTC"]
        .as_str()
        .map(str::to_string);
    if let Some(e) = &expiry {
        match time::parse(e) {
            Some(t) if t > time::now() => {}
            _ => {
                return Err(ArmError::invalid_parameter(
                    "properties.recoveryPointExpiryTimeInUTC",
                    format!(
                        "'{e}' must be a future time (RFC 3339), when the point may be pruned."
                    ),
                ))
            }
        }
    }
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let (a, op) = ctx.store().write(|tx| {
        let it = load(tx, &vid, container, item)?;
        check_on_demand_count(on_demand_today(tx, &vid, &it)?)?;
        let a = accept(tx, &vid, &it.id, expiry.clone(), true)?;
        let op = jobs::finished_operation(tx, &vid, Some(&a.job))?;
        Ok::<_, ArmError>((a, op))
    })?;
    let (store, bp) = (ctx.store().clone(), bp.clone());
    std::thread::spawn(move || {
        if let Err(e) = run(&store, &bp, &a) {
            tracing::info!(
                "backup job {} ended without a point: {}",
                a.job,
                e.body.message
            );
        }
    });
    Ok(jobs::accepted_operation(ctx, req, &vid, &op))
}

/// Takes a point of a protected item now and waits for it (the policy's
/// schedule): accepted, then run. Returns the job id.
pub fn take_point(
    store: &Store,
    bp: &BackupProvider,
    vid: &str,
    rid: &str,
    expiry: Option<String>,
    user: bool,
) -> Result<String, ArmError> {
    let a = store.write(|tx| accept(tx, vid, rid, expiry, user))?;
    run(store, bp, &a)?;
    Ok(a.job)
}

/// Runs an accepted backup to its end (a point, or a job that says why
/// not); returns at once if it already runs here.
pub fn run(store: &Store, bp: &BackupProvider, a: &Accepted) -> Result<(), ArmError> {
    if !jobs::claim(&a.job) {
        return Ok(());
    }
    let result = run_once(store, bp, a);
    if let Err(e) = &result {
        if let Err(e2) = store.write(|tx| end_without_point(tx, a, e)) {
            tracing::warn!("ending backup job {}: {}", a.job, e2.body.message);
        }
    }
    jobs::release(&a.job);
    result
}

/// Backups accepted before a restart (their job is not running in this
/// process): run again from the start. Returns how many ran.
pub fn resume(store: &Store, bp: &BackupProvider) -> Result<usize, ArmError> {
    let waiting: Vec<Accepted> = store
        .view(accepted)?
        .into_iter()
        .filter(|a| !jobs::is_running(&a.job))
        .collect();
    for a in &waiting {
        let _ = run(store, bp, a);
    }
    Ok(waiting.len())
}

/// A cancelled job's backup stops: nothing more is made for it.
fn cancelled(job: &str) -> ArmError {
    ArmError::conflict(
        "BMSUserErrorJobCancelled",
        format!("Backup job '{job}' was cancelled; no recovery point is made for it."),
    )
}

fn still_running(r: &impl Reader, a: &Accepted) -> Result<BackupJob, ArmError> {
    match backup_job::load(r, &a.vault_id, &a.job)? {
        Some(j) if j.properties.status == JobStatus::InProgress => Ok(j),
        _ => Err(cancelled(&a.job)),
    }
}

/// The job of a backup that made no point ends `Failed` with why (one
/// being cancelled ends `Cancelled`); the backup is no longer accepted.
fn end_without_point(tx: &mut WriteTx, a: &Accepted, e: &ArmError) -> Result<(), ArmError> {
    if let Some(mut job) = backup_job::load(tx, &a.vault_id, &a.job)? {
        if !job.properties.status.ended() {
            job.end_without_point(e, time::now());
            job.save(tx)?;
        }
    }
    tx.delete(ACCEPTED, &a.job)?;
    Ok(())
}

/// The snapshot tier, then the vault tier, then — in one transaction,
/// re-checking that the job still runs and the item may still be backed up
/// — the point, its restore point in the snapshot resource group, the
/// item's state and the job's end. Anything made for a point that does not
/// commit is removed.
fn run_once(store_: &Store, bp: &BackupProvider, a: &Accepted) -> Result<(), ArmError> {
    let (vid, rid, name) = (&a.vault_id, &a.item_id, &a.point_name);
    let inputs = store_.view(|r| {
        still_running(r, a)?;
        backup_inputs(r, vid, rid)
    })?;
    let store = store_of(bp, inputs.numeric_id)?;
    let made = snapshot_disks(bp, &store, &inputs, name)?;
    let noted = store_.write(|tx| {
        let mut job = still_running(tx, a)?;
        job.task_ended(0, time::now());
        job.save(tx)
    });
    if let Err(e) = noted {
        discard(bp, &store, &made);
        return Err(e);
    }
    let previous = store_.view(|r| previous_disks(r, rid))?;
    let is_cancelled = || store_.view(|r| still_running(r, a)).is_err();
    let transfer = match transfer_to_vault(bp, &store, &previous, &made, &is_cancelled) {
        Ok(t) => t,
        Err(e) => {
            discard(bp, &store, &made);
            return Err(if is_cancelled() { cancelled(&a.job) } else { e });
        }
    };
    let now = time::now();
    let (instant_days, retention_days) = point_retention(inputs.policy.as_ref());
    let expiry = a
        .expiry
        .clone()
        .unwrap_or_else(|| time::format(now + ::time::Duration::days(retention_days)));
    let pid = format!("{rid}/recoveryPoints/{name}");
    let vm = &inputs.vm;
    let location = vm.location.as_str();
    let doc = point_document(&pid, name, vm, &made, &time::format(now), &expiry);
    let data = PointData {
        vault_numeric_id: inputs.numeric_id,
        location: location.to_string(),
        disks: made.clone(),
        snapshot_until: time::format(now + ::time::Duration::days(instant_days)),
        vm_size: vm.size.clone(),
        secondary: None,
        restore_point: None,
    };
    let snapshot_group = snapshot_group_name(inputs.policy.as_ref(), location);
    let committed = store_.write(|tx| {
        let mut job = still_running(tx, a)?;
        // The item may have been stopped or deleted meanwhile.
        let mut it = core_item::load(tx, rid)?.ok_or_else(|| {
            ArmError::conflict(
                "BMSUserErrorItemNotFound",
                "The item was removed during the backup.",
            )
        })?;
        check_backup_allowed(it.state())?;
        doc.save(tx)?;
        // The snapshot tier, where users see it: a restore point of the VM.
        let sub = recoverite_arm::id::parse_id(it.vm_id())
            .and_then(|p| p.subscription)
            .unwrap_or_default();
        let rg = recoverite_rp_resources::groups::ensure(tx, &sub, &snapshot_group, location)?;
        let snaps: Vec<(Disk, String)> = inputs
            .vm_disks
            .iter()
            .zip(&made)
            .map(|(d, m)| (d.clone(), m.snapshot.clone()))
            .collect();
        let mut data = data.clone();
        data.restore_point = Some(
            recoverite_rp_compute::restore_points::record_snapshot_point(
                tx, &rg, vm, name, &snaps,
            )?,
        );
        tx.put_json(POINT_DATA, &point_key(&pid), &data)?;
        let count = resource::list_children(tx, rid, "recoveryPoints")?.len();
        it.record_point(&time::format(now), count);
        it.save(tx)?;
        let bag = &mut job.properties.extended_info.property_bag;
        for (k, v) in [
            ("Backup Size", mb(transfer.scanned)),
            ("Transferred to vault", mb(transfer.new_bytes)),
            ("Stored in vault", mb(transfer.stored)),
            ("Recovery point", name.clone()),
            ("Recovery point Expiry Time in UTC", expiry.clone()),
        ] {
            bag.insert(k.into(), json!(v));
        }
        job.finish(JobStatus::Completed, time::now());
        job.save(tx)?;
        tx.delete(ACCEPTED, &a.job)?;
        Ok::<_, ArmError>(())
    });
    if committed.is_err() {
        discard(bp, &store, &made);
    }
    committed
}

/// On-demand backups of the item in a vault since the start of today (UTC).
fn on_demand_today(r: &impl Reader, vid: &str, item: &ProtectedItem) -> Result<usize, ArmError> {
    let today = time::now().replace_time(::time::Time::MIDNIGHT);
    let container = &item.properties.container_name;
    Ok(crate::backup_job::list(r, vid)?
        .iter()
        .filter(|j| {
            let p = &j.properties;
            p.operation == "Backup"
                && p.is_user_triggered == Some(true)
                && p.container_name.as_ref() == Some(container)
                && j.started().is_some_and(|t| t >= today)
        })
        .count())
}

/// What a backup of an item works from, read in one snapshot of the state.
struct BackupInputs {
    item: ProtectedItem,
    vm: Vm,
    vm_disks: Vec<Disk>,
    numeric_id: u64,
    policy: Option<crate::policy::Policy>,
}

fn backup_inputs(r: &impl Reader, vid: &str, rid: &str) -> Result<BackupInputs, ArmError> {
    let item = core_item::load(r, rid)?
        .ok_or_else(|| ArmError::conflict("BMSUserErrorItemNotFound", "The item was removed."))?;
    check_backup_allowed(item.state())?;
    let vm_id = item.vm_id().to_string();
    let (vm, vm_disks) = disks::of_vm(r, &vm_id)?.ok_or_else(|| {
        ArmError::bad_request(
            "BMSUserErrorVmNotFound",
            format!("The protected VM '{vm_id}' no longer exists."),
        )
    })?;
    let meta = recoverite_rs_core::vault::get(r, vid)?
        .ok_or_else(|| ArmError::internal("the vault has no record"))?;
    let policy = policy::find(r, vid, &item.properties.policy_id)?;
    Ok(BackupInputs {
        item,
        vm,
        vm_disks,
        numeric_id: meta.numeric_id,
        policy,
    })
}

/// A disk's LUN in the VM as Backup reports it: -1 for the OS disk, its
/// `lun` for a data disk.
pub fn lun_of(vm: &Vm, disk_id: &str) -> i64 {
    match vm.role_of(disk_id) {
        Some(DiskRole::Os) => -1,
        Some(DiskRole::Data { lun }) => i64::from(lun),
        None => 0,
    }
}

pub use crate::policy_model::point_retention;

/// Removes the snapshot copies and manifests of a backup that did not
/// become a point.
fn discard(bp: &BackupProvider, store: &ChunkStore, made: &[PointDisk]) {
    for d in made {
        let _ = bp.blocks.delete(&d.snapshot);
        let _ = store.delete(&d.manifest);
    }
}

/// The snapshot tier: every disk copied while no write reaches any of the
/// VM's disks, so the point holds all of them as they were at one instant
/// (crash-consistent), each with its change-journal position.
fn snapshot_disks(
    bp: &BackupProvider,
    store: &ChunkStore,
    inputs: &BackupInputs,
    name: &str,
) -> Result<Vec<PointDisk>, ArmError> {
    let images: Vec<PathBuf> = inputs
        .vm_disks
        .iter()
        .map(|d| bp.blocks.image(&d.properties.unique_id))
        .collect();
    let _frozen = recoverite_blockstore::gate::freeze(&images);
    let mut made: Vec<PointDisk> = Vec::new();
    for d in &inputs.vm_disks {
        let did = d.id.as_str();
        let size = d.properties.disk_size_bytes;
        let snap = format!("bkp-{name}-{}", made.len());
        let unique = d.properties.unique_id.as_str();
        // Writes are held: the journal ends exactly where the snapshot is.
        let copied = bp.blocks.journal_len(unique).and_then(|pos| {
            recoverite_blockstore::copy_sparse_unsynced(
                &bp.blocks.image(unique),
                &bp.blocks.image(&snap),
                size,
            )
            .map(|_| pos)
        });
        let journal_pos = match copied {
            Ok(p) => p,
            Err(e) => {
                let _ = bp.blocks.delete(&snap);
                discard(bp, store, &made);
                return Err(io(e));
            }
        };
        made.push(PointDisk {
            lun: lun_of(&inputs.vm, did),
            disk_id: did.to_string(),
            name: d.name.clone(),
            size_bytes: size,
            sku: d.sku.name.clone(),
            snapshot: snap,
            manifest: format!(
                "{}-{name}-{}",
                inputs
                    .item
                    .vm()
                    .map_or("item", |v| &v.protected_item_data_id),
                made.len()
            ),
            source: PointSource {
                id: did.to_string(),
                properties: PointSourceProperties {
                    os_type: d.properties.os_type.clone(),
                },
            },
            source_unique: Some(unique.to_string()),
            journal_pos: Some(journal_pos),
        });
    }
    Ok(made)
}

/// What the vault tier took: bytes read, new to the vault, stored.
#[derive(Default)]
struct Transfer {
    scanned: u64,
    new_bytes: u64,
    stored: u64,
}

/// The vault tier: only chunks the vault does not hold yet, read only where
/// the disk was written since the item's previous point; then the snapshot
/// copies (made unsynced while writes were held) are made durable before
/// the point names them.
fn transfer_to_vault(
    bp: &BackupProvider,
    store: &ChunkStore,
    previous: &[PointDisk],
    made: &[PointDisk],
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Transfer, ArmError> {
    let mut t = Transfer::default();
    for d in made {
        // A cancel is seen between disks, every few chunks of one, and at the commit.
        if cancelled() {
            return Err(ArmError::conflict(
                "BMSUserErrorJobCancelled",
                "The backup job was cancelled.",
            ));
        }
        let since = previous
            .iter()
            .find(|p| {
                id::key(&p.disk_id) == id::key(&d.disk_id)
                    && p.size_bytes == d.size_bytes
                    && p.source_unique.is_some()
                    && p.source_unique == d.source_unique
                    && p.journal_pos
                        .zip(d.journal_pos)
                        .is_some_and(|(a, b)| a <= b)
            })
            .and_then(|p| {
                let unique = d.source_unique.as_deref()?;
                let written = bp
                    .blocks
                    .written_between(unique, p.journal_pos?, d.journal_pos?)
                    .ok()?;
                Some((p.manifest.clone(), written))
            });
        let (_, stats) = store
            .backup_since_unless(
                &bp.blocks.image(&d.snapshot),
                d.size_bytes,
                &d.manifest,
                since.as_ref().map(|(m, w)| (m.as_str(), w.as_slice())),
                cancelled,
            )
            .map_err(io)?;
        t.scanned += stats.scanned;
        t.new_bytes += stats.new_bytes;
        t.stored += stats.stored_bytes;
    }
    for d in made {
        std::fs::File::open(bp.blocks.image(&d.snapshot))
            .and_then(|f| f.sync_all())
            .map_err(io)?;
    }
    Ok(t)
}

/// The recovery point's ARM document.
fn point_document(
    pid: &str,
    name: &str,
    vm: &Vm,
    made: &[PointDisk],
    now: &str,
    expiry: &str,
) -> RecoveryPoint {
    let shown = json!({
        "isManagedVirtualMachine": true,
        "virtualMachineSize": vm.size,
        "osType": vm.os_type,
        "sourceVMStorageType": "NormalStorage",
        "isSourceVMEncrypted": false, "originalStorageAccountOption": false,
        "recoveryPointDiskConfiguration": {
            "numberOfDisksIncludedInBackup": made.len(), "numberOfDisksAttachedToVm": made.len(),
            "includedDiskList": made.iter().map(|d| json!({"lun": d.lun, "name": d.name})).collect::<Vec<_>>(),
            "excludedDiskList": [],
        },
    });
    let props = VmPointProperties {
        recovery_point_type: "CrashConsistent".into(),
        recovery_point_time: now.to_string(),
        recovery_point_tier_details: Vec::new(),
        is_instant_ilr_session_active: false,
        recovery_point_properties: PointExpiry {
            expiry_time: Some(expiry.to_string()),
        },
        given: shown.as_object().cloned().unwrap_or_default(),
    };
    RecoveryPoint::new(pid, name, PointProperties::Vm(props)).with_tiers(true)
}

#[cfg(test)]
mod take_point_tests {
    use super::*;

    #[test]
    fn the_os_disk_is_lun_minus_one_and_data_disks_keep_theirs() {
        let vm = Vm {
            id: "/vm".into(),
            name: "vm".into(),
            location: "westus".into(),
            vm_id: None,
            size: None,
            os_type: None,
            os_disk: Some("/d/OS".into()),
            data_disks: vec![(3, "/d/data".into())],
            network_interfaces: Vec::new(),
            availability_set: None,
        };
        assert_eq!(lun_of(&vm, "/d/os"), -1);
        assert_eq!(lun_of(&vm, "/D/DATA"), 3);
    }

    #[test]
    fn one_backup_of_an_item_at_a_time() {
        let a = Accepted {
            vault_id: "/v".into(),
            item_id: "/subscriptions/s/x".into(),
            job: "j1".into(),
            point_name: "1".into(),
            expiry: None,
        };
        assert!(check_not_running(&[], "/subscriptions/s/x").is_ok());
        let e = check_not_running(std::slice::from_ref(&a), "/SUBSCRIPTIONS/s/X").unwrap_err();
        assert_eq!(e.body.code, "UserErrorBackupOperationInProgress");
        assert!(e.body.message.contains("j1"));
        assert!(check_not_running(&[a], "/subscriptions/s/y").is_ok());
    }
}
