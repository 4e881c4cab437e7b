//! Azure Backup's MARS agent (backup management type `MAB`) on the vault's
//! side: registered machines as `Windows` protection containers
//! (`MabContainer`), each backed-up folder as a `MabFileFolderProtectedItem`
//! with its recovery points (`GenericRecoveryPoint`) and `MabJob`s.
//!
//! The agent's data travels through the vault's Backup service (see
//! `recoverite-server`'s `mars` module); what it stores lands in the same
//! vault tier as Azure VM backups, and its points are deleted, soft-deleted
//! and freed the same way.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::Digest;

use recoverite_arm::{id, resource, time, ArmError};
use recoverite_backup_store::{ChunkStore, Manifest};
use recoverite_rs_core::backup_item::{
    self as core_item, BackupOp, ItemProperties, MabItem, NewItem, ProtectedItem, Workload,
};
use recoverite_rs_core::containers::{self, BackupContainer};
use recoverite_rs_core::jobs::{iso_duration, Job, JobError, JobStatus};
use recoverite_store::{Reader, Table, WriteTx};

use crate::backup_job::{self, BackupJob, JobExtendedInfo, JobProperties, JobTask};
use crate::points::{self, PointData, PointDisk};
use crate::recovery_point::{
    self, GenericPointProperties, PointExpiry, PointProperties, RecoveryPoint,
};
use crate::{BackupProvider, ITEM_TYPE, JOB_TYPE};

const MACHINES: Table = Table("mab_machines");
const VAULT_KEYS: Table = Table("mab_vault_keys");
/// Scheduled backups the agent has still to run: item id → the slot.
const DUE: Table = Table("mab_due");

pub const CONTAINER_TYPE: &str =
    "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers";
/// The Backup service the agent talks to, in `{vault}.{svc}.privatelink.{geo}…`
/// and `{svc}.{geo}.backup.windowsazure.com`.
pub const SERVICE: &str = "prot1";
/// "The vault credentials file is valid only for 10 days" (portal download).
pub const CREDENTIALS_DAYS: i64 = 10;
/// MARS: "at most three backups a day".
pub const MAX_SCHEDULED_PER_DAY: usize = 3;

/// A machine registered to a vault.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    pub vault_id: String,
    /// The container's name (the machine's name, lower case).
    pub container: String,
    pub friendly_name: String,
    /// The VM it runs in, when it is one (its network position); none for
    /// an on-premises server.
    pub vm_id: Option<String>,
    /// Its Microsoft Entra identity, made at registration.
    pub principal_object_id: String,
    pub client_id: String,
    pub certificate_thumbprint: String,
    pub registered_at: String,
}

fn bad(code: &str, msg: impl Into<String>) -> ArmError {
    ArmError::bad_request(code, msg)
}

fn machine_key(vault_id: &str, container: &str) -> String {
    format!("{}|{}", id::key(vault_id), container.to_ascii_lowercase())
}

pub fn container_id(vault_id: &str, container: &str) -> String {
    format!("{vault_id}/backupFabrics/Azure/protectionContainers/{container}")
}

/// A folder's item name: stable for the path, and safe in a URL.
pub fn item_name(root: &str) -> String {
    let h = hex::encode(sha2::Sha256::digest(root.as_bytes()));
    format!("fileFolder;{}", &h[..16])
}

/// A machine name becomes a container name: letters, digits, `-`, `_`, `.`,
/// 1–63 characters.
pub fn check_machine_name(name: &str) -> Result<String, ArmError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(ArmError::invalid_parameter(
            "machineName",
            format!("'{name}' is not a machine name: use 1–63 letters, digits, '-', '_' or '.'."),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// "The vault credentials file is valid only for 10 days": a registration
/// presents a vault certificate valid now, issued for at most that long.
pub fn check_credentials(
    valid_from: ::time::OffsetDateTime,
    valid_to: ::time::OffsetDateTime,
    now: ::time::OffsetDateTime,
) -> Result<(), ArmError> {
    if valid_to - valid_from > ::time::Duration::days(CREDENTIALS_DAYS) + ::time::Duration::hours(1)
    {
        return Err(bad("UserErrorVaultCredentialsInvalid", format!("The vault credentials are valid for longer than {CREDENTIALS_DAYS} days; download new vault credentials (recoverite mars credentials).")));
    }
    if now < valid_from || now >= valid_to {
        return Err(bad("UserErrorVaultCredentialsExpired", format!("The vault credentials expired at {} (they are valid {CREDENTIALS_DAYS} days); download new ones and register again.", time::format(valid_to))));
    }
    Ok(())
}

/// Document 001: "These private URLs are specific for the vault. Only
/// extensions and agents that are registered to the vault can communicate
/// with Azure Backup over these endpoints."
pub fn check_private_url_use(via_private: bool, registered: bool) -> Result<(), String> {
    if via_private && !registered {
        return Err("only agents registered to the vault can use its private URLs: register this machine with the vault's credentials first".into());
    }
    if !registered {
        return Err("this machine is not registered to the vault: register it with the vault's credentials first".into());
    }
    Ok(())
}

/// MARS's schedule: "at most three backups a day" — a MAB policy's run
/// times.
pub fn check_schedule_times(times: usize) -> Result<(), ArmError> {
    if times == 0 || times > MAX_SCHEDULED_PER_DAY {
        return Err(bad("BMSUserErrorInvalidPolicyInput", format!("A MARS policy runs 1 to {MAX_SCHEDULED_PER_DAY} backups a day; it has {times} run times.")));
    }
    Ok(())
}

pub fn machine(
    r: &impl Reader,
    vault_id: &str,
    container: &str,
) -> Result<Option<Machine>, ArmError> {
    let m: Option<Machine> = r.get_json(MACHINES, &machine_key(vault_id, container))?;
    // Unregistering deletes the container: the machine is no longer known.
    match m {
        Some(m) if containers::load(r, &container_id(vault_id, container))?.is_some() => {
            Ok(Some(m))
        }
        _ => Ok(None),
    }
}

/// The machines registered to a vault (unregistered ones left out).
pub fn machines_of(r: &impl Reader, vault_id: &str) -> Result<Vec<Machine>, ArmError> {
    let prefix = format!("{}|", id::key(vault_id));
    let mut out = Vec::new();
    for (_, m) in r.scan_json::<Machine>(MACHINES, &prefix)? {
        if let Some(m) = machine(r, vault_id, &m.container)? {
            out.push(m);
        }
    }
    Ok(out)
}

/// The registered machine whose Entra identity is `object_id`.
pub fn machine_by_principal(
    r: &impl Reader,
    vault_id: &str,
    object_id: &str,
) -> Result<Option<Machine>, ArmError> {
    let prefix = format!("{}|", id::key(vault_id));
    for (_, m) in r.scan_json::<Machine>(MACHINES, &prefix)? {
        if m.principal_object_id == object_id {
            return machine(r, vault_id, &m.container);
        }
    }
    Ok(None)
}

/// The vault's deduplication key (made on first use), handed to its
/// registered machines: chunks seal alike on all of them.
pub fn dedup_key(tx: &mut WriteTx, vault_id: &str) -> Result<String, ArmError> {
    if let Some(k) = tx.get_json::<String>(VAULT_KEYS, &id::key(vault_id))? {
        return Ok(k);
    }
    let k = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    tx.put_json(VAULT_KEYS, &id::key(vault_id), &k)?;
    Ok(k)
}

fn items_of(
    r: &impl Reader,
    vault_id: &str,
    container: &str,
) -> Result<Vec<ProtectedItem>, ArmError> {
    core_item::in_container(r, &container_id(vault_id, container))
}

/// A folder's item, made by its first backup: no point yet, no policy.
fn new_item(
    vault: &recoverite_rs_core::vault_record::Vault,
    rid: &str,
    m: &Machine,
    root: &str,
) -> ProtectedItem {
    let workload = Workload::Mab(MabItem {
        computer_name: m.friendly_name.clone(),
        deferred_delete_sync_time_in_utc: 0,
    });
    let new = NewItem {
        protected_item_type: "MabFileFolderProtectedItem",
        workload,
        workload_type: "FileFolder",
        container_name: &m.container,
        friendly_name: root,
    };
    let mut properties = ItemProperties::new(new, &vault.id);
    properties.extended_info.last_refreshed_at = Some(time::now_string());
    ProtectedItem {
        id: rid.to_string(),
        name: item_name(root),
        kind: ITEM_TYPE.to_string(),
        location: vault.location.clone(),
        properties,
    }
}

fn container_doc(vault_id: &str, m: &Machine, items: usize) -> BackupContainer {
    let shown = json!({
        "protectableObjectType": "MABWindowsContainer",
        "canReRegister": true,
        "containerId": u64::from_str_radix(&m.principal_object_id.replace('-', "")[..12], 16).unwrap_or(0),
        "protectedItemCount": items,
        "agentVersion": concat!("recoverite-mars/", env!("CARGO_PKG_VERSION")),
        "containerHealthState": "Healthy",
        "extendedInfo": {"lastRefreshedAt": time::now_string(), "backupItemType": "FileFolder", "backupItems": [], "policyName": "", "lastBackupStatus": ""},
        "sourceResourceId": m.vm_id,
    });
    BackupContainer::registered(
        &container_id(vault_id, &m.container),
        &m.container,
        (&m.friendly_name, "MAB", "Windows"),
        shown.as_object().cloned().unwrap_or_default(),
    )
}

/// Registers (or re-registers) a machine: its record and its container, in
/// the caller's transaction; the vault then counts as having items
/// (documents 000 and 001: no new private endpoints).
pub fn register(tx: &mut WriteTx, m: &Machine) -> Result<(), ArmError> {
    let items = items_of(tx, &m.vault_id, &m.container)?.len();
    container_doc(&m.vault_id, m, items).save(tx)?;
    tx.put_json(MACHINES, &machine_key(&m.vault_id, &m.container), m)?;
    recoverite_rs_core::vault::mark_registered(tx, &m.vault_id)?;
    Ok(())
}

pub fn item_id(vault_id: &str, container: &str, root: &str) -> String {
    format!(
        "{}/protectedItems/{}",
        container_id(vault_id, container),
        item_name(root)
    )
}

/// A `MabJob` document, in progress (cancellable) or ended.
#[allow(clippy::too_many_arguments)]
fn job_doc(
    vault_id: &str,
    job: &str,
    m: &Machine,
    root: &str,
    operation: &str,
    status: JobStatus,
    started: &str,
    bag: Map<String, Value>,
    errors: &[String],
) -> BackupJob {
    let start = time::parse(started).unwrap_or_else(time::now);
    let errors = errors
        .iter()
        .map(|e| JobError {
            code: String::new(),
            message: e.clone(),
        })
        .collect();
    let j = Job::since(job, operation, start, status, errors);
    let shown = json!({"mabServerName": m.friendly_name, "mabServerType": "MABContainer", "workloadType": "FileFolder"});
    BackupJob {
        id: BackupJob::job_id(vault_id, job),
        name: job.to_string(),
        kind: JOB_TYPE.to_string(),
        properties: JobProperties {
            job_type: "MabJob".into(),
            entity_friendly_name: root.to_string(),
            backup_management_type: "MAB".into(),
            operation: j.operation.clone(),
            status: j.status,
            start_time: started.to_string(),
            end_time: j.end.map(time::format),
            duration: iso_duration(j.seconds()),
            activity_id: uuid::Uuid::new_v4().to_string(),
            is_user_triggered: None,
            container_name: None,
            actions_info: if j.status.ended() {
                Vec::new()
            } else {
                vec!["Cancellable".into()]
            },
            error_details: j
                .errors
                .iter()
                .map(|e| json!({"errorString": e.message, "recommendations": []}))
                .collect(),
            extended_info: JobExtendedInfo {
                tasks_list: j
                    .tasks
                    .iter()
                    .map(|t| JobTask {
                        task_id: t.name.clone(),
                        start_time: Some(started.to_string()),
                        end_time: t.end.map(time::format),
                        duration: None,
                        status: j.status.backup().into(),
                        progress_percentage: None,
                    })
                    .collect(),
                property_bag: bag,
                progress_percentage: None,
                dynamic_error_message: j.errors.first().map(|e| e.message.clone()),
            },
            given: shown.as_object().cloned().unwrap_or_default(),
        },
    }
}

/// A cancelled job's agent learns it here: nothing more is taken for it.
pub fn check_running(r: &impl Reader, vault_id: &str, job: &str) -> Result<(), ArmError> {
    match backup_job::load(r, vault_id, job)? {
        Some(j) if j.properties.status == JobStatus::Cancelled => Err(bad(
            "BMSUserErrorJobCancelled",
            format!("The backup job '{job}' was cancelled; no recovery point is made for it. Start the backup again to take one."),
        )),
        _ => Ok(()),
    }
}

/// Ends a running job of `m` with `status`, its bag merged with `bag`; a job
/// that already ended (cancelled meanwhile) stays as it ended.
fn end_running(
    tx: &mut WriteTx,
    m: &Machine,
    job: &str,
    status: JobStatus,
    bag: &Map<String, Value>,
    errors: &[String],
) -> Result<(), ArmError> {
    let Some(old) = backup_job::load(tx, &m.vault_id, job)? else {
        return Ok(());
    };
    let p = &old.properties;
    if p.status.ended() {
        return Ok(());
    }
    let mut merged = p.extended_info.property_bag.clone();
    merged.extend(bag.clone());
    job_doc(
        &m.vault_id,
        job,
        m,
        &p.entity_friendly_name,
        &p.operation,
        status,
        &p.start_time,
        merged,
        errors,
    )
    .save(tx)
}

/// Starts a backup of `root`: its item (made on the first backup) and an
/// InProgress `Backup` job. Returns `(item id, job id)`.
pub fn begin_backup(
    tx: &mut WriteTx,
    m: &Machine,
    root: &str,
    policy: Option<&str>,
    notes: &[String],
) -> Result<(String, String), ArmError> {
    let vid = &m.vault_id;
    let rid = item_id(vid, &m.container, root);
    let vault = crate::vault_record(tx, vid)?;
    let existing = core_item::load(tx, &rid)?;
    let is_new = existing.is_none();
    let mut item = match existing {
        Some(d) => {
            // The Backup item state machine: no backups of a stopped or
            // soft-deleted item.
            if let Err(e) = d.state().check(BackupOp::Backup) {
                return Err(bad(e.code(), format!("{root} on {}: {e}", m.friendly_name)));
            }
            d
        }
        None => new_item(&vault, &rid, m, root),
    };
    // A policy puts the folder on a schedule (run by the agent) and gives
    // its points their retention.
    if let Some(name) = policy {
        crate::policy::ensure_defaults(tx, vid)?;
        let pol =
            crate::policy::find(tx, vid, name)?.ok_or_else(|| crate::policy::not_found(name))?;
        if pol.management_type() != "MAB" {
            return Err(bad(
                "BMSUserErrorInvalidPolicy",
                format!("Policy '{name}' is not a MARS (MAB) policy."),
            ));
        }
        let changed = item.properties.policy_id != pol.id;
        item.properties.policy_id = pol.id.clone();
        item.properties.policy_name = pol.name.clone();
        if changed {
            crate::schedule::start(tx, &rid)?;
        }
    } else if is_new {
        // Known to the clock even without a policy: soft-deleted data is purged on it.
        crate::schedule::start(tx, &rid)?;
    }
    item.save(tx)?;
    let job = uuid::Uuid::new_v4().to_string();
    let doc = job_doc(
        vid,
        &job,
        m,
        root,
        "Backup",
        JobStatus::InProgress,
        &time::now_string(),
        bag_of(json!({"Notes": notes.join("; ")})),
        &[],
    );
    doc.save(tx)?;
    let items = items_of(tx, vid, &m.container)?.len();
    container_doc(vid, m, items).save(tx)?;
    Ok((rid, job))
}

/// Starts a restore of a point on `m` (which may be another machine of the
/// vault than the one that backed it up): an InProgress `Restore` job.
pub fn begin_restore(
    tx: &mut WriteTx,
    m: &Machine,
    point_id: &str,
    root: &str,
) -> Result<String, ArmError> {
    let job = uuid::Uuid::new_v4().to_string();
    let doc = job_doc(
        &m.vault_id,
        &job,
        m,
        root,
        "Restore",
        JobStatus::InProgress,
        &time::now_string(),
        bag_of(json!({"Recovery point": point_id, "Restored to": m.friendly_name})),
        &[],
    );
    doc.save(tx)?;
    Ok(job)
}

/// Marks a scheduled backup of a MARS item as due (the clock's tick).
pub fn mark_due(tx: &mut WriteTx, item_id: &str, slot: &str) -> Result<(), ArmError> {
    tx.put_json(DUE, &id::key(item_id), &slot.to_string())?;
    Ok(())
}

/// The folders of `m` whose scheduled backup is due: `(path, slot)`.
pub fn due_of(r: &impl Reader, m: &Machine) -> Result<Vec<(String, String)>, ArmError> {
    let mut out = Vec::new();
    for item in items_of(r, &m.vault_id, &m.container)? {
        if let Some(slot) = r.get_json::<String>(DUE, &id::key(&item.id))? {
            out.push((item.properties.friendly_name, slot));
        }
    }
    Ok(out)
}

/// When a point of an item under a policy expires: its daily (or weekly)
/// retention from now.
fn expiry_of(
    r: &impl Reader,
    vault_id: &str,
    item: &ProtectedItem,
) -> Result<Option<String>, ArmError> {
    let pid = item.properties.policy_id.as_str();
    if pid.is_empty() {
        return Ok(None);
    }
    let Some(pol) = crate::policy::find(r, vault_id, pid)? else {
        return Ok(None);
    };
    let days = pol.retention_days();
    Ok(Some(time::format(
        time::now() + ::time::Duration::days(days),
    )))
}

/// Updates a running job's progress from the agent's figures.
pub fn progress(tx: &mut WriteTx, vault_id: &str, job: &str, bag: &Value) -> Result<(), ArmError> {
    if let Some(mut d) = backup_job::load(tx, vault_id, job)? {
        if d.properties.status == JobStatus::InProgress {
            d.properties
                .extended_info
                .property_bag
                .extend(bag_of(bag.clone()));
            d.save(tx)?;
        }
    }
    Ok(())
}

fn bag_of(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Ends a job as Failed (or Completed with no point), with what the agent
/// said; a job cancelled meanwhile stays Cancelled.
pub fn end_job(
    tx: &mut WriteTx,
    m: &Machine,
    job: &str,
    status: JobStatus,
    errors: &[String],
) -> Result<(), ArmError> {
    end_running(tx, m, job, status, &Map::new(), errors)
}

/// What a committed backup made.
pub struct Committed {
    pub point_id: String,
}

/// The manifest of a MARS point in the vault tier.
pub fn manifest_name(point_name: &str, item_name: &str) -> String {
    let h = hex::encode(sha2::Sha256::digest(item_name.as_bytes()));
    format!("mab-{}-{point_name}", &h[..16])
}

/// Commits a backup: the manifest (every chunk and the sealed index must be
/// in the vault tier) is published first, then the point, the item and the
/// job are written in one transaction. A crash between the two leaves an
/// unreferenced manifest, never a point without data.
#[allow(clippy::too_many_arguments)]
pub fn commit(
    store: &recoverite_store::Store,
    tier: &ChunkStore,
    vault_numeric_id: u64,
    m: &Machine,
    item_id: &str,
    job: &str,
    index_id: &str,
    chunk_ids: &[String],
    total_bytes: u64,
    bag: &Value,
) -> Result<Committed, ArmError> {
    let point = points::new_point_name();
    let item_nm = item_id.rsplit('/').next().unwrap_or_default().to_string();
    let manifest = manifest_name(&point, &item_nm);
    let mut chunks: Vec<(u64, String)> = vec![(0, index_id.to_string())];
    chunks.extend(
        chunk_ids
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u64 + 1, c.clone())),
    );
    tier.put_manifest(
        &manifest,
        &Manifest {
            size: total_bytes,
            chunks,
        },
    )
    .map_err(|e| {
        bad(
            "BMSUserErrorMissingBackupData",
            format!("The backup named data the vault does not hold ({e}); run the backup again."),
        )
    })?;
    let pid = format!("{item_id}/recoveryPoints/{point}");
    let res = store.write(|tx| {
        let Some(mut item) = core_item::load(tx, item_id)? else {
            return Err(bad(
                "BMSUserErrorItemNotFound",
                "The protected item was deleted while the backup ran.",
            ));
        };
        let now = time::now_string();
        let root = item.properties.friendly_name.clone();
        let expiry = expiry_of(tx, &m.vault_id, &item)?;
        tx.delete(DUE, &id::key(item_id))?;
        let mut given = serde_json::Map::new();
        given.insert("indexObject".into(), json!(index_id));
        RecoveryPoint::new(
            &pid,
            &point,
            PointProperties::Generic(GenericPointProperties {
                friendly_name: root.clone(),
                recovery_point_type: "FileSystemConsistent".into(),
                recovery_point_time: now.clone(),
                recovery_point_additional_info: format!(
                    "{} files, {} bytes",
                    bag["Files"].as_u64().unwrap_or(0),
                    total_bytes
                ),
                recovery_point_properties: PointExpiry {
                    expiry_time: expiry,
                },
                given,
            }),
        )
        .save(tx)?;
        let data = PointData {
            vault_numeric_id,
            location: item.location.clone(),
            disks: vec![PointDisk {
                lun: 0,
                disk_id: item_id.to_string(),
                name: root.clone(),
                size_bytes: total_bytes,
                sku: String::new(),
                snapshot: String::new(),
                manifest: manifest.clone(),
                // A MARS point is of the item's files, not of a disk.
                source: points::PointSource {
                    id: item_id.to_string(),
                    properties: Default::default(),
                },
                source_unique: None,
                journal_pos: None,
            }],
            snapshot_until: now.clone(),
            vm_size: None,
            secondary: None,
            restore_point: None,
        };
        points::put_point_data(tx, &pid, &data)?;
        let count = resource::list_children(tx, item_id, "recoveryPoints")?.len();
        item.record_point(&now, count);
        item.properties.extended_info.last_refreshed_at = Some(now.clone());
        item.save(tx)?;
        let mut done = bag_of(bag.clone());
        done.insert("Recovery point".into(), json!(point));
        end_running(tx, m, job, JobStatus::Completed, &done, &[])?;
        Ok(())
    });
    if let Err(e) = res {
        let _ = tier.delete(&manifest);
        return Err(e);
    }
    Ok(Committed { point_id: pid })
}

/// A point a machine may restore: any point of a folder of any machine
/// registered to the same vault ("another server" recovery), by id.
pub struct RestorablePoint {
    pub point_id: String,
    pub root: String,
    pub source_machine: String,
    pub index_id: String,
    pub chunk_ids: Vec<String>,
}

pub fn restorable(
    r: &impl Reader,
    bp: &BackupProvider,
    m: &Machine,
    point_id: &str,
) -> Result<RestorablePoint, ArmError> {
    let not_found = || {
        bad("BMSUserErrorRecoveryPointNotFound", format!("No recovery point '{point_id}' of a machine registered to this vault; list them with `recoverite mars points`."))
    };
    let vault_prefix = format!(
        "{}/backupfabrics/azure/protectioncontainers/",
        id::key(&m.vault_id)
    );
    if !id::key(point_id).starts_with(&vault_prefix) {
        return Err(not_found());
    }
    let doc = recovery_point::load(r, point_id)?.ok_or_else(not_found)?;
    let data = points::point_data(r, point_id)?.ok_or_else(not_found)?;
    let disk = data.disks.first().ok_or_else(not_found)?;
    let tier = points::store_of(bp, data.vault_numeric_id)?;
    let man = tier.manifest(&disk.manifest).map_err(|e| {
        bad(
            "BMSUserErrorMissingBackupData",
            format!("The point's data is not in the vault tier: {e}"),
        )
    })?;
    let container = point_id
        .split('/')
        .skip_while(|s| !s.eq_ignore_ascii_case("protectionContainers"))
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok(RestorablePoint {
        root: doc.friendly_name().to_string(),
        point_id: doc.id,
        source_machine: container,
        index_id: man.chunks.first().map(|c| c.1.clone()).unwrap_or_default(),
        chunk_ids: man.chunks.iter().skip(1).map(|c| c.1.clone()).collect(),
    })
}

/// Backups and restores of MARS items run on the machine, not through ARM.
pub fn refuse_for_mab(
    ctx: &recoverite_arm::Ctx,
    req: &recoverite_arm::ArmRequest,
    container: &str,
    item: &str,
) -> Result<(), ArmError> {
    let vid = ctx.store().view(|r| crate::vault_of(r, req))?;
    let doc = ctx
        .store()
        .view(|r| core_item::load(r, &crate::items::item_id(&vid, container, item)))?;
    if doc.is_some_and(|d| d.is_mab()) {
        return Err(bad("BMSUserErrorNotSupported", "A MARS (MAB) item is backed up and restored by the agent on its machine (`recoverite mars backup` / `recoverite mars restore`), not through the Backup API."));
    }
    Ok(())
}

/// Every MARS point of the vault's machines, newest first.
pub fn points_of_vault(r: &impl Reader, vault_id: &str) -> Result<Vec<Value>, ArmError> {
    let mut out = Vec::new();
    for item in core_item::list(r, vault_id)? {
        let Some(mab) = item.mab() else {
            continue;
        };
        for p in recovery_point::of_item(r, &item.id)? {
            out.push(json!({"id": p.id, "time": p.time_str(), "path": p.friendly_name(), "machine": mab.computer_name}));
        }
    }
    out.sort_by(|a, b| b["time"].as_str().cmp(&a["time"].as_str()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registered_agents_use_the_private_urls() {
        assert!(check_private_url_use(true, true).is_ok());
        assert!(check_private_url_use(true, false)
            .unwrap_err()
            .contains("only agents registered to the vault can use its private URLs"));
        assert!(check_private_url_use(false, false)
            .unwrap_err()
            .contains("not registered"));
        assert!(check_private_url_use(false, true).is_ok());
    }

    #[test]
    fn vault_credentials_last_ten_days() {
        let now = time::now();
        let day = ::time::Duration::days(1);
        assert!(check_credentials(now - day, now + day * 9, now).is_ok());
        assert_eq!(
            check_credentials(now - day * 11, now - day, now)
                .unwrap_err()
                .body
                .code,
            "UserErrorVaultCredentialsExpired"
        );
        assert_eq!(
            check_credentials(now - day, now + day * 30, now)
                .unwrap_err()
                .body
                .code,
            "UserErrorVaultCredentialsInvalid"
        );
    }

    #[test]
    fn at_most_three_scheduled_backups_a_day() {
        assert!(check_schedule_times(3).is_ok());
        assert!(check_schedule_times(4).is_err());
        assert!(check_schedule_times(0).is_err());
    }

    #[test]
    fn machine_names_and_item_names() {
        assert_eq!(
            check_machine_name("FileServer-01").unwrap(),
            "fileserver-01"
        );
        assert!(check_machine_name("a/b").is_err());
        assert!(check_machine_name("").is_err());
        assert_eq!(item_name("/data"), item_name("/data"));
        assert_ne!(item_name("/data"), item_name("/data2"));
        assert!(!item_name("/a/b").contains('/'));
    }
}
