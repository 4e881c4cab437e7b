//! Backups and restores on real bytes. A backup copies every disk of the VM
//! into the snapshot tier (sparse copies, holes stay holes) and then into
//! the vault tier (only chunks the vault lacks travel); a restore writes
//! new managed disks from the snapshot tier while the point's instant
//! restore days last, from the vault tier after.

use recoverite_rs_core::backup_item::{self as core_item, BackupOp, BackupState, ProtectedItem};
use recoverite_rs_core::drills;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::{id, resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_backup_store::ChunkStore;
use recoverite_rp_compute::disks;
use recoverite_store::{Reader, Table};

use crate::items::{item_id, load};
use crate::jobs::{filter_value, parse_filter_time};
use crate::recovery_point::{self, RecoveryPoint};
use crate::restore_job::{self, RestoreJob};
use crate::{vault_of, BackupProvider};

/// Where each point's bytes are, beside its ARM document.
pub(crate) const POINT_DATA: Table = Table("backup_point_data");

/// The disk a point disk was taken of, as restores need it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointSource {
    /// Empty only in MARS points written before this was typed (they
    /// named their index here; restores never read it).
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub properties: PointSourceProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointSourceProperties {
    #[serde(default)]
    pub os_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointDisk {
    /// -1 for the OS disk, the LUN for a data disk.
    pub lun: i64,
    pub disk_id: String,
    pub name: String,
    pub size_bytes: u64,
    pub sku: String,
    /// The snapshot-tier image (a blockstore unique id).
    pub snapshot: String,
    /// The vault-tier manifest.
    pub manifest: String,
    pub source: PointSource,
    /// The disk's image and change-journal position when the snapshot was
    /// taken: the next backup reads only what was written after it.
    #[serde(default)]
    pub source_unique: Option<String>,
    #[serde(default)]
    pub journal_pos: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointData {
    pub vault_numeric_id: u64,
    pub location: String,
    pub disks: Vec<PointDisk>,
    /// The snapshot tier serves restores until then (instant restore days).
    pub snapshot_until: String,
    /// The VM's size when backed up, for AlternateLocation restores.
    #[serde(default)]
    pub vm_size: Option<String>,
    /// The copy in the paired region (cross-region restore), once made.
    #[serde(default)]
    pub secondary: Option<crate::crr::SecondaryCopy>,
    /// The instant-restore snapshot as Azure shows it: a restore point in
    /// `AzureBackupRG_{region}_1` (or the policy's group), while it lasts.
    #[serde(default)]
    pub restore_point: Option<String>,
}

pub use crate::policy_model::snapshot_group_name;

pub(crate) fn io(e: std::io::Error) -> ArmError {
    ArmError::internal(format!("backup storage: {e}"))
}

pub fn store_of(bp: &BackupProvider, vault_numeric_id: u64) -> Result<ChunkStore, ArmError> {
    Ok(bp.tier(&vault_numeric_id.to_string()))
}

pub(crate) fn point_key(point_id: &str) -> String {
    id::key(point_id)
}

/// Azure's recovery point names are long numbers.
pub(crate) fn new_point_name() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 10u128.pow(17);
    format!("{:017}", n)
}

pub(crate) fn not_found(point: &str) -> ArmError {
    ArmError::new(
        404,
        "BMSUserErrorRecoveryPointNotFound",
        format!("The recovery point '{point}' was not found; list the item's recoveryPoints."),
    )
}

/// "Backup now" needs an item under protection: not stopped, not deleted
/// (the Backup item state machine in the Recovery Services core).
pub fn check_backup_allowed(state: BackupState) -> Result<(), ArmError> {
    Ok(state.check(BackupOp::Backup)?)
}

/// Support matrix for Azure VM backups: "one scheduled backup per day. The
/// Azure Backup service supports up to nine on-demand backups per day".
pub const MAX_ON_DEMAND_PER_DAY: usize = 9;

/// An on-demand backup beyond the day's nine is refused.
pub fn check_on_demand_count(taken_today: usize) -> Result<(), ArmError> {
    if taken_today >= MAX_ON_DEMAND_PER_DAY {
        return Err(ArmError::bad_request(
            "BMSUserErrorOnDemandBackupLimitReached",
            format!("This item already had {MAX_ON_DEMAND_PER_DAY} on-demand backups today (UTC), the most Azure Backup takes of a VM in a day; wait for the next day or for the policy's scheduled backup."),
        ));
    }
    Ok(())
}

/// The disks of the item's newest point: the base of an incremental backup.
pub(crate) fn previous_disks(r: &impl Reader, rid: &str) -> Result<Vec<PointDisk>, ArmError> {
    match recovery_point::of_item(r, rid)?.last() {
        Some(p) => Ok(point_data(r, &p.id)?.map(|d| d.disks).unwrap_or_default()),
        None => Ok(Vec::new()),
    }
}

/// Where each backed-up disk's change journal is still needed from: the
/// position of its item's newest point (the next backup reads from there).
pub fn journal_holds(r: &impl Reader) -> Result<Vec<(String, u64)>, ArmError> {
    let mut out = Vec::new();
    for it in core_item::list(r, "")? {
        for d in previous_disks(r, &it.id)? {
            if let (Some(u), Some(p)) = (d.source_unique, d.journal_pos) {
                out.push((u, p));
            }
        }
    }
    Ok(out)
}

pub fn list(ctx: &Ctx, req: &ArmRequest, container: &str, item: &str) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let rid = item_id(&vid, container, item);
    let f = req.query_get("$filter").unwrap_or("").to_string();
    let from = filter_value(&f, "startDate").and_then(|t| parse_filter_time(&t));
    let to = filter_value(&f, "endDate").and_then(|t| parse_filter_time(&t));
    let mut items: Vec<Value> = ctx.store().view(|r| {
        load(r, &vid, container, item)?;
        let mut out = Vec::new();
        for p in recovery_point::of_item(r, &rid)? {
            if p.taken_within(from, to) {
                out.push(with_tiers(r, p)?.to_value()?);
            }
        }
        Ok::<_, ArmError>(out)
    })?;
    items.reverse();
    recoverite_arm::paging::page_visible(ctx, req, items)
}

/// The tiers a point is in now: the snapshot tier only until its instant
/// restore days end.
pub(crate) fn with_tiers(r: &impl Reader, p: RecoveryPoint) -> Result<RecoveryPoint, ArmError> {
    let instant = point_data(r, &p.id)?
        .and_then(|d| time::parse(&d.snapshot_until))
        .is_some_and(|t| t > time::now());
    Ok(p.with_tiers(instant))
}

/// The vault a request is under and the id of the point it names.
pub(crate) fn point_path(
    ctx: &Ctx,
    req: &ArmRequest,
    container: &str,
    item: &str,
    point: &str,
) -> Result<(String, String), ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let pid = format!("{}/recoveryPoints/{point}", item_id(&vid, container, item));
    Ok((vid, pid))
}

pub fn get(
    ctx: &Ctx,
    req: &ArmRequest,
    container: &str,
    item: &str,
    point: &str,
) -> Result<Reply, ArmError> {
    let (_, pid) = point_path(ctx, req, container, item, point)?;
    ctx.store().view(|r| match recovery_point::load(r, &pid)? {
        Some(p) => Ok(Reply::ok(with_tiers(r, p)?.to_value()?)),
        None => Err(not_found(point)),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RestoreProps {
    object_type: Option<String>,
    recovery_type: Option<String>,
    target_resource_group_id: Option<String>,
    storage_account_id: Option<String>,
    #[serde(default)]
    restore_disk_lun_list: Option<Vec<i64>>,
    target_virtual_machine_id: Option<String>,
    subnet_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecoveryType {
    RestoreDisks,
    AlternateLocation,
    OriginalLocation,
}

#[derive(Debug, Deserialize)]
struct RestoreBody {
    properties: RestoreProps,
}

/// Restores the point's disks (`RestoreDisks`) as new managed disks in the
/// target resource group, as the caller.
/// An `IaasVMRestoreRequest` as the rules read it.
#[derive(Debug, PartialEq)]
pub(crate) struct Restore {
    kind: RecoveryType,
    /// Where new disks (and a new VM) go; not for OriginalLocation.
    target_rg: Option<String>,
    staging: Option<String>,
    luns: Option<Vec<i64>>,
    /// AlternateLocation's new VM and its subnet.
    vm: Option<(String, String)>,
}

impl Restore {
    /// "RestoreDisks writes disks into a target resource group; an
    /// AlternateLocation restore also creates a VM in a subnet;
    /// OriginalLocation replaces the VM's disks."
    fn of(p: RestoreProps) -> Result<Restore, ArmError> {
        if p.object_type
            .as_deref()
            .is_some_and(|o| o != "IaasVMRestoreRequest")
        {
            return Err(ArmError::invalid_parameter(
                "properties.objectType",
                "Azure VM restores take an IaasVMRestoreRequest.",
            ));
        }
        let kind = match p.recovery_type.as_deref() {
            Some("RestoreDisks") => RecoveryType::RestoreDisks,
            Some("AlternateLocation") => RecoveryType::AlternateLocation,
            Some("OriginalLocation") => RecoveryType::OriginalLocation,
            other => return Err(ArmError::invalid_parameter("properties.recoveryType", format!("'{}' is not a recovery type; use RestoreDisks, AlternateLocation or OriginalLocation.", other.unwrap_or("")))),
        };
        let mut r = Restore {
            kind,
            target_rg: None,
            staging: p.storage_account_id,
            luns: p.restore_disk_lun_list,
            vm: None,
        };
        if kind == RecoveryType::OriginalLocation {
            return Ok(r);
        }
        r.target_rg = Some(p.target_resource_group_id.ok_or_else(|| {
            ArmError::invalid_parameter(
                "properties.targetResourceGroupId",
                "RestoreDisks writes the disks into a resource group: give targetResourceGroupId.",
            )
        })?);
        if kind == RecoveryType::AlternateLocation {
            match (p.target_virtual_machine_id, p.subnet_id) {
                (Some(vm), Some(subnet)) => r.vm = Some((vm, subnet)),
                _ => return Err(ArmError::invalid_parameter("properties.targetVirtualMachineId", "An AlternateLocation restore creates a VM: give targetVirtualMachineId and subnetId (and virtualNetworkId).")),
            }
        }
        Ok(r)
    }
}

/// "RestoreDisks needs a staging storage account in the VM's region" (a
/// cross-region restore: in the secondary region).
pub(crate) fn check_staging(
    r: &impl Reader,
    (field, staging): (&str, Option<&str>),
    region: &str,
    why: &str,
) -> Result<(), ArmError> {
    let sa = staging.ok_or_else(|| ArmError::invalid_parameter(field, format!("The restore needs a staging storage account (storageAccountId) in {why} '{region}'.")))?;
    let acct = recoverite_rp_storage::account::load(r, sa)?.ok_or_else(|| {
        ArmError::bad_request(
            "BMSUserErrorStorageAccountNotFound",
            format!("The staging storage account '{sa}' does not exist."),
        )
    })?;
    if !acct.location.eq_ignore_ascii_case(region) {
        return Err(ArmError::bad_request(
            "BMSUserErrorStorageAccountRegionMismatch",
            format!(
                "The staging storage account is in '{}'; it must be in {why} '{region}'.",
                acct.location
            ),
        ));
    }
    Ok(())
}

pub fn restore(
    ctx: &Ctx,
    req: &ArmRequest,
    bp: &BackupProvider,
    container: &str,
    item: &str,
    point: &str,
) -> Result<Reply, ArmError> {
    let body: RestoreBody = req.body_as()?;
    let p = Restore::of(body.properties)?;
    let Some(target_rg) = p.target_rg.clone() else {
        return restore_in_place(ctx, req, bp, container, item, point, p.luns.as_deref());
    };
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let rid = item_id(&vid, container, item);
    let pid = format!("{rid}/recoveryPoints/{point}");
    let (it, data) = ctx.store().view(|r| {
        let (it, data) = load_point(r, &vid, container, item, point)?;
        if !recoverite_rp_resources::groups::group_exists(r, &target_rg)? {
            return Err(ArmError::bad_request(
                "BMSUserErrorTargetResourceGroupNotFound",
                format!("The target resource group '{target_rg}' does not exist; create it first."),
            ));
        }
        let staging = ("properties.storageAccountId", p.staging.as_deref());
        check_staging(r, staging, &data.location, "the VM's region")?;
        Ok::<_, ArmError>((it, data))
    })?;
    // Restores create resources as the caller.
    ctx.require_linked(
        "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/restore/action",
        &pid,
        "Microsoft.Compute/disks/write",
        &target_rg,
    )?;
    let (job, op) = RestoreJob::start(ctx.store(), &vid, &it, &["Transfer data", "Create disks"])?;
    let (ctx2, req2, bp2, point) = (ctx.clone(), req.clone(), bp.clone(), point.to_string());
    Ok(restore_job::spawn(ctx, req, job, op, move |job| {
        let (ctx, req, bp) = (&ctx2, &req2, &bp2);
        let mut watch = drills::Stopwatch::start();
        let (chosen, from_snapshot) = choose_disks(bp, &data, p.luns.as_deref());
        let store = store_of(bp, data.vault_numeric_id)?;
        let written = restore_disks(
            ctx,
            bp,
            &store,
            &chosen,
            from_snapshot,
            &point,
            &target_rg,
            &data.location,
        )?;
        watch.step(if from_snapshot {
            "Create disks from the snapshot tier"
        } else {
            "Transfer data from the vault tier"
        });
        job.step_done(ctx.store(), 0);
        let ids: Vec<&str> = written.iter().map(|(_, _, i)| i.as_str()).collect();
        let mut bag = json!({
            "Recovery point": point,
            "Restore source": if from_snapshot { "Snapshot" } else { "Vault" },
            "Restore type": format!("{:?}", p.kind),
            "Target resource group": target_rg,
            "Restored disks": ids.join(","),
        });
        let outcome = match &p.vm {
            Some((vm_id, subnet)) => {
                let made =
                    bring_up_vm(ctx, req, bp, vm_id, subnet, &data, &written, &data.location);
                if let Err(e) = made {
                    discard_restored(ctx, bp, &written);
                    return Err(e);
                }
                bag["Target VM"] = json!(vm_id);
                watch.step("Create the virtual machine");
                format!("VM {vm_id} was created on the restored disks")
            }
            None => format!("disks {} hold the point's bytes", ids.join(", ")),
        };
        watch.up();
        ctx.store().write(|tx| {
            job.complete(tx, bag)?;
            restore_report(tx, &vid, &it, &pid, outcome, &watch)
        })
    }))
}

/// Writes the chosen disks of a point (snapshot or vault tier of `store`)
/// into new images and registers them as managed disks in `target_rg` at
/// `location`, named `{disk}-{point}` (then `-2`, `-3`…): all of them or,
/// on any failure, none.
#[allow(clippy::too_many_arguments)]
pub(crate) fn restore_disks<'a>(
    ctx: &Ctx,
    bp: &BackupProvider,
    store: &ChunkStore,
    chosen: &[&'a PointDisk],
    from_snapshot: bool,
    point: &str,
    target_rg: &str,
    location: &str,
) -> Result<Vec<(String, &'a PointDisk, String)>, ArmError> {
    let mut written: Vec<(String, &PointDisk, String)> = Vec::new();
    let undo = |w: &[(String, &PointDisk, String)]| {
        for (u, _, _) in w {
            let _ = bp.blocks.delete(u);
        }
    };
    for d in chosen {
        let unique = match write_disk(bp, store, d, from_snapshot) {
            Ok(u) => u,
            Err(e) => {
                undo(&written);
                return Err(e);
            }
        };
        // `{disk}-{point}`, or `-2`, `-3`… when an earlier restore took it.
        let base = format!("{}-{}", d.name, &point[point.len().saturating_sub(8)..]);
        let name = ctx.store().view(|r| {
            for n in 1..1000 {
                let candidate = if n == 1 {
                    base.clone()
                } else {
                    format!("{base}-{n}")
                };
                let taken = disks::load(
                    r,
                    &format!("{target_rg}/providers/Microsoft.Compute/disks/{candidate}"),
                )?
                .is_some()
                    || written
                        .iter()
                        .any(|(_, _, i)| i.ends_with(&format!("/{candidate}")));
                if !taken {
                    return Ok::<_, ArmError>(candidate);
                }
            }
            Ok(format!("{base}-{}", uuid::Uuid::new_v4()))
        });
        let name = match name {
            Ok(n) => n,
            Err(e) => {
                let _ = bp.blocks.delete(&unique);
                undo(&written);
                return Err(e);
            }
        };
        written.push((
            unique,
            d,
            format!("{target_rg}/providers/Microsoft.Compute/disks/{name}"),
        ));
    }
    let registered = ctx.store().write(|tx| {
        for (unique, d, disk_id) in &written {
            if disks::load(tx, disk_id)?.is_some() {
                return Err(ArmError::conflict("BMSUserErrorDiskAlreadyExists", format!("A disk '{disk_id}' already exists; restore into another resource group or delete it.")));
            }
            let from = disks::RestoredFrom { id: &d.source.id, os_type: d.source.properties.os_type.as_deref() };
            disks::register(tx, disk_id, location, &d.sku, d.size_bytes, unique, from)?;
        }
        Ok::<_, ArmError>(())
    });
    if let Err(e) = registered {
        undo(&written);
        return Err(e);
    }
    Ok(written)
}

/// The item and the stored bytes of one of its points (404 otherwise).
pub(crate) fn load_point(
    r: &impl Reader,
    vid: &str,
    container: &str,
    item: &str,
    point: &str,
) -> Result<(ProtectedItem, PointData), ArmError> {
    let it = load(r, vid, container, item)?;
    let pid = format!("{}/recoveryPoints/{point}", item_id(vid, container, item));
    recovery_point::load(r, &pid)?.ok_or_else(|| not_found(point))?;
    let data = r
        .get_json::<PointData>(POINT_DATA, &point_key(&pid))?
        .ok_or_else(|| not_found(point))?;
    Ok((it, data))
}

/// Which disks of a point a restore writes (the OS disk always), and
/// whether the snapshot tier still holds all of them.
pub(crate) fn choose_disks<'a>(
    bp: &BackupProvider,
    data: &'a PointData,
    luns: Option<&[i64]>,
) -> (Vec<&'a PointDisk>, bool) {
    let chosen: Vec<&PointDisk> = data
        .disks
        .iter()
        .filter(|d| d.lun < 0 || luns.is_none_or(|l| l.contains(&d.lun)))
        .collect();
    let from_snapshot = time::parse(&data.snapshot_until).is_some_and(|t| t > time::now())
        && chosen.iter().all(|d| bp.blocks.image(&d.snapshot).exists());
    (chosen, from_snapshot)
}

/// Writes one disk of a point into a new image (from the snapshot tier or
/// the vault tier), synced; returns its unique id. Nothing is left on failure.
pub(crate) fn write_disk(
    bp: &BackupProvider,
    store: &ChunkStore,
    d: &PointDisk,
    from_snapshot: bool,
) -> Result<String, ArmError> {
    let unique = uuid::Uuid::new_v4().to_string();
    let res = if from_snapshot {
        bp.blocks.copy(&d.snapshot, &unique, d.size_bytes)
    } else {
        store
            .restore(&d.manifest, &bp.blocks.image(&unique))
            .map(|_| ())
    };
    match res {
        Ok(()) => Ok(unique),
        Err(e) => {
            let _ = bp.blocks.delete(&unique);
            Err(io(e))
        }
    }
}

/// Nothing half made: restored disks whose restore did not complete go
/// again, documents and images.
pub(crate) fn discard_restored(
    ctx: &Ctx,
    bp: &BackupProvider,
    written: &[(String, &PointDisk, String)],
) {
    let _ = ctx.store().write(|tx| {
        for (_, _, disk_id) in written {
            resource::delete_tree(tx, disk_id)?;
        }
        Ok::<_, ArmError>(())
    });
    for (u, _, _) in written {
        let _ = bp.blocks.delete(u);
    }
}

/// AlternateLocation: a new VM on the restored disks with a new NIC in the
/// given subnet, in `location`, made through ARM as the caller (the
/// network's and compute's rules and RBAC apply, subnet join included).
#[allow(clippy::too_many_arguments)]
pub(crate) fn bring_up_vm(
    ctx: &Ctx,
    req: &ArmRequest,
    bp: &BackupProvider,
    vm_id: &str,
    subnet_id: &str,
    data: &PointData,
    written: &[(String, &PointDisk, String)],
    location: &str,
) -> Result<(), ArmError> {
    let path = id::parse_id(vm_id).ok_or_else(|| {
        ArmError::invalid_parameter(
            "properties.targetVirtualMachineId",
            format!("'{vm_id}' is not a VM id."),
        )
    })?;
    let rg_id = path.resource_group_id().unwrap_or_default();
    let name = path
        .provider
        .as_ref()
        .and_then(|p| p.name())
        .unwrap_or("vm")
        .to_string();
    let nic_id = format!("{rg_id}/providers/Microsoft.Network/networkInterfaces/{name}-nic");
    bp.as_caller.call(ctx, req, http::Method::PUT, &nic_id, "2024-05-01", Some(json!({
        "location": location,
        "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet_id}}}]},
    })))?;
    let os = written.iter().find(|(_, d, _)| d.lun < 0);
    let data_disks: Vec<Value> = written
        .iter()
        .filter(|(_, d, _)| d.lun >= 0)
        .map(
            |(_, d, id)| json!({"lun": d.lun, "createOption": "Attach", "managedDisk": {"id": id}}),
        )
        .collect();
    let vm = json!({
        "location": location,
        "properties": {
            "hardwareProfile": {"vmSize": data.vm_size.clone().unwrap_or_else(|| "Standard_D2s_v3".into())},
            "storageProfile": {
                "osDisk": {"createOption": "Attach", "osType": os.and_then(|(_, d, _)| d.source.properties.os_type.as_deref()).unwrap_or("Linux"),
                           "managedDisk": {"id": os.map(|(_, _, id)| id.clone()).unwrap_or_default()}},
                "dataDisks": data_disks,
            },
            "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": true}}]},
        }
    });
    if let Err(e) = bp
        .as_caller
        .call(ctx, req, http::Method::PUT, vm_id, "2024-07-01", Some(vm))
    {
        let _ = bp
            .as_caller
            .call(ctx, req, http::Method::DELETE, &nic_id, "2024-05-01", None);
        return Err(e);
    }
    Ok(())
}

/// OriginalLocation: the VM's own disks get the point's bytes, in place
/// (the disks keep their ids; the images they had are dropped once the
/// swap committed).
fn restore_in_place(
    ctx: &Ctx,
    req: &ArmRequest,
    bp: &BackupProvider,
    container: &str,
    item: &str,
    point: &str,
    luns: Option<&[i64]>,
) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let rid = item_id(&vid, container, item);
    let pid = format!("{rid}/recoveryPoints/{point}");
    let (it, data) = ctx
        .store()
        .view(|r| load_point(r, &vid, container, item, point))?;
    let luns = luns.map(<[i64]>::to_vec);
    {
        let (chosen, _) = choose_disks(bp, &data, luns.as_deref());
        for d in &chosen {
            ctx.require_linked(
                "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/restore/action",
                &pid,
                "Microsoft.Compute/disks/write",
                &d.disk_id,
            )?;
        }
    }
    let (job, op) = RestoreJob::start(ctx.store(), &vid, &it, &["Transfer data", "Replace disks"])?;
    let (ctx2, bp2, point) = (ctx.clone(), bp.clone(), point.to_string());
    Ok(restore_job::spawn(ctx, req, job, op, move |job| {
        let (ctx, bp) = (&ctx2, &bp2);
        let mut watch = drills::Stopwatch::start();
        let (chosen, from_snapshot) = choose_disks(bp, &data, luns.as_deref());
        let store = store_of(bp, data.vault_numeric_id)?;
        let mut fresh: Vec<(String, &PointDisk)> = Vec::new();
        for d in &chosen {
            match write_disk(bp, &store, d, from_snapshot) {
                Ok(unique) => fresh.push((unique, d)),
                Err(e) => {
                    for (u, _) in &fresh {
                        let _ = bp.blocks.delete(u);
                    }
                    return Err(e);
                }
            }
        }
        watch.step("Transfer data");
        job.step_done(ctx.store(), 0);
        watch.up();
        let swapped = ctx.store().write(|tx| {
            let mut old = Vec::new();
            for (unique, d) in &fresh {
                let mut doc = disks::load(tx, &d.disk_id)?.ok_or_else(|| ArmError::bad_request("BMSUserErrorOriginalDiskNotFound", format!("The VM's disk '{}' no longer exists; restore with RestoreDisks or AlternateLocation instead.", d.disk_id)))?;
                old.push(std::mem::replace(&mut doc.properties.unique_id, unique.clone()));
                doc.save(tx)?;
            }
            job.complete(tx, json!({
                "Recovery point": point,
                "Restore source": if from_snapshot { "Snapshot" } else { "Vault" },
                "Restore type": "OriginalLocation",
                "Restored disks": chosen.iter().map(|d| d.disk_id.as_str()).collect::<Vec<_>>().join(","),
            }))?;
            let outcome = format!("the VM's disks hold the point's bytes in place ({})", chosen.iter().map(|d| d.disk_id.rsplit('/').next().unwrap_or_default()).collect::<Vec<_>>().join(", "));
            restore_report(tx, &vid, &it, &pid, outcome, &watch)?;
            Ok::<_, ArmError>(old)
        });
        match swapped {
            Ok(old) => {
                for u in old {
                    let _ = bp.blocks.delete(&u);
                }
                Ok(())
            }
            Err(e) => {
                for (u, _) in &fresh {
                    let _ = bp.blocks.delete(u);
                }
                Err(e)
            }
        }
    }))
}

/// Drops an item's points from the store (in the caller's transaction) and
/// returns where their bytes are, for [`free`] once it committed.
pub fn forget_points(
    tx: &mut recoverite_store::WriteTx,
    item_id: &str,
) -> Result<Vec<PointData>, ArmError> {
    let mut out = Vec::new();
    for p in recovery_point::of_item(tx, item_id)? {
        let pid = p.id;
        if let Some(d) = tx.get_json::<PointData>(POINT_DATA, &point_key(&pid))? {
            forget_snapshot_point(tx, &d)?;
            out.push(d);
        }
        tx.delete(POINT_DATA, &point_key(&pid))?;
    }
    Ok(out)
}

/// Drops the restore point showing a point's snapshot (its images are the
/// snapshot tier's, freed by their owner).
pub fn forget_snapshot_point(
    tx: &mut recoverite_store::WriteTx,
    data: &PointData,
) -> Result<(), ArmError> {
    if let Some(rp) = &data.restore_point {
        recoverite_rp_compute::restore_points::forget_point(tx, rp)?;
    }
    Ok(())
}

/// Drops one point (its document and where its bytes are) in the caller's
/// transaction; [`free`] its bytes once that committed.
pub fn forget_point(tx: &mut recoverite_store::WriteTx, point_id: &str) -> Result<(), ArmError> {
    if let Some(d) = point_data(tx, point_id)? {
        forget_snapshot_point(tx, &d)?;
    }
    tx.delete(POINT_DATA, &point_key(point_id))?;
    resource::delete_tree(tx, point_id)?;
    Ok(())
}

/// Frees the bytes of forgotten points: snapshots, manifests, then the
/// vault-tier chunks no other point uses.
pub fn free(bp: &BackupProvider, points: &[PointData]) {
    let mut vaults = std::collections::BTreeSet::new();
    let mut secondaries = std::collections::BTreeSet::new();
    for p in points {
        if let Ok(store) = store_of(bp, p.vault_numeric_id) {
            for d in &p.disks {
                if !d.snapshot.is_empty() {
                    let _ = bp.blocks.delete(&d.snapshot);
                }
                let _ = store.delete(&d.manifest);
            }
        }
        if let Some(copy) = &p.secondary {
            if let Ok(store) = crate::crr::secondary_store(bp, p.vault_numeric_id, &copy.region) {
                for d in &p.disks {
                    let _ = store.delete(&d.manifest);
                }
            }
            secondaries.insert((p.vault_numeric_id, copy.region.clone()));
        }
        vaults.insert(p.vault_numeric_id);
    }
    for v in vaults {
        if let Ok(store) = store_of(bp, v) {
            let _ = store.collect();
        }
    }
    for (v, region) in secondaries {
        if let Ok(store) = crate::crr::secondary_store(bp, v, &region) {
            let _ = store.collect();
        }
    }
}

/// The vault tier's directory of a vault, for tools and tests.
pub fn tier_dir(bp: &BackupProvider, vault_numeric_id: u64) -> PathBuf {
    bp.root.join(vault_numeric_id.to_string())
}

pub fn put_point_data(
    tx: &mut recoverite_store::WriteTx,
    point_id: &str,
    data: &PointData,
) -> Result<(), ArmError> {
    tx.put_json(POINT_DATA, &point_key(point_id), data)?;
    Ok(())
}

pub fn point_data(r: &impl Reader, point_id: &str) -> Result<Option<PointData>, ArmError> {
    Ok(r.get_json(POINT_DATA, &point_key(point_id))?)
}

/// The restore's drill report (rs-core's, shared with Site Recovery).
fn restore_report(
    tx: &mut recoverite_store::WriteTx,
    vault_id: &str,
    item: &ProtectedItem,
    point_id: &str,
    outcome: String,
    watch: &drills::Stopwatch,
) -> Result<(), ArmError> {
    let point_time = recovery_point::load(tx, point_id)?
        .map(|p| p.time_str().to_string())
        .unwrap_or_default();
    drills::record(
        tx,
        drills::Drill {
            vault_id,
            kind: drills::DrillKind::Restore,
            item_id: &item.id,
            item_name: &item.properties.friendly_name,
            point_id,
            point_time: &point_time,
            outcome,
            refused_flows: Vec::new(),
        },
        watch,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore_of(v: Value) -> Result<Restore, ArmError> {
        Restore::of(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn a_restore_request_names_what_its_recovery_type_needs() {
        let disks = restore_of(
            json!({"objectType": "IaasVMRestoreRequest", "recoveryType": "RestoreDisks",
            "targetResourceGroupId": "/rg", "storageAccountId": "/sa", "restoreDiskLunList": [0]}),
        )
        .unwrap();
        assert_eq!(disks.kind, RecoveryType::RestoreDisks);
        assert_eq!(disks.target_rg.as_deref(), Some("/rg"));
        assert_eq!(disks.luns, Some(vec![0]));
        assert!(disks.vm.is_none());
        let e = restore_of(json!({"recoveryType": "RestoreDisks"})).unwrap_err();
        assert!(e.body.message.contains("targetResourceGroupId"));
        let e = restore_of(
            json!({"recoveryType": "AlternateLocation", "targetResourceGroupId": "/rg",
            "targetVirtualMachineId": "/vm"}),
        )
        .unwrap_err();
        assert!(e.body.message.contains("subnetId"));
        let alt = restore_of(
            json!({"recoveryType": "AlternateLocation", "targetResourceGroupId": "/rg",
            "targetVirtualMachineId": "/vm", "subnetId": "/s"}),
        )
        .unwrap();
        assert_eq!(alt.vm, Some(("/vm".to_string(), "/s".to_string())));
        // In place: the VM's own disks, no target group.
        let orig = restore_of(json!({"recoveryType": "OriginalLocation"})).unwrap();
        assert_eq!(
            (orig.kind, orig.target_rg),
            (RecoveryType::OriginalLocation, None)
        );
        for bad in [
            json!({"recoveryType": "Elsewhere"}),
            json!({"objectType": "AzureFileShareRestoreRequest", "recoveryType": "RestoreDisks"}),
        ] {
            assert_eq!(restore_of(bad).unwrap_err().status, 400);
        }
    }

    #[test]
    fn nine_on_demand_backups_a_day() {
        assert!(check_on_demand_count(0).is_ok());
        assert!(check_on_demand_count(8).is_ok());
        assert_eq!(
            check_on_demand_count(9).unwrap_err().body.code,
            "BMSUserErrorOnDemandBackupLimitReached"
        );
    }

    #[test]
    fn backups_need_an_item_under_protection() {
        use recoverite_rs_core::backup_item::ProtectionState::*;
        let item = BackupState::of;
        assert!(check_backup_allowed(item(IrPending, false)).is_ok());
        assert!(check_backup_allowed(item(Protected, false)).is_ok());
        assert_eq!(
            check_backup_allowed(item(ProtectionStopped, false))
                .unwrap_err()
                .body
                .code,
            "BMSUserErrorProtectionStopped"
        );
        assert_eq!(
            check_backup_allowed(item(ProtectionStopped, true))
                .unwrap_err()
                .body
                .code,
            "BMSUserErrorItemSoftDeleted"
        );
    }

    #[test]
    fn point_names_are_17_digits() {
        let n = new_point_name();
        assert_eq!(n.len(), 17);
        assert!(n.chars().all(|c| c.is_ascii_digit()));
    }
}
