//! VM restore points: a restore point collection names a source VM; each
//! restore point copies every disk of the VM (but the excluded ones) into a
//! disk restore point, kept sparse like snapshots and usable as a new
//! disk's source (`createOption` `Restore` or `Copy`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::document;
use recoverite_arm::{paging, regions, resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_blockstore::BlockStore;

use crate::disks::{self, Disk};
use crate::view::{DiskRole, Vm};

pub const COLLECTION_TYPE: &str = "Microsoft.Compute/restorePointCollections";
pub const POINT_TYPE: &str = "Microsoft.Compute/restorePointCollections/restorePoints";
pub const DISK_POINT_TYPE: &str =
    "Microsoft.Compute/restorePointCollections/restorePoints/diskRestorePoints";
pub const DISK_POINT_READ: &str =
    "Microsoft.Compute/restorePointCollections/restorePoints/diskRestorePoints/read";

/// A disk restore point as stored and returned: a copy of one disk's bytes
/// at the point, with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskPoint {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub properties: DiskPointProperties,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskPointProperties {
    pub time_created: String,
    pub source_resource_id: String,
    pub source_unique_id: String,
    pub family_id: String,
    #[serde(rename = "diskSizeGB")]
    pub disk_size_gb: u64,
    pub disk_size_bytes: u64,
    /// Names the copy's bytes in the block store.
    pub unique_id: String,
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    pub provisioning_state: String,
    pub network_access_policy: String,
    pub public_network_access: String,
}

impl DiskPoint {
    /// The restore point `drp_id` of disk `d`, its copy held in `unique`.
    fn of_disk(d: &Disk, drp_id: &str, unique: &str, location: &str, now: &str) -> DiskPoint {
        DiskPoint {
            id: drp_id.to_string(),
            name: drp_id.rsplit('/').next().unwrap_or_default().to_string(),
            kind: DISK_POINT_TYPE.to_string(),
            properties: DiskPointProperties {
                time_created: now.to_string(),
                source_resource_id: d.id.clone(),
                source_unique_id: d.properties.unique_id.clone(),
                family_id: d.properties.unique_id.clone(),
                disk_size_gb: d.properties.disk_size_gb,
                disk_size_bytes: d.properties.disk_size_bytes,
                unique_id: unique.to_string(),
                location: location.to_string(),
                os_type: d.properties.os_type.clone(),
                provisioning_state: "Succeeded".into(),
                network_access_policy: "AllowAll".into(),
                public_network_access: "Enabled".into(),
            },
        }
    }

    fn save(&self, tx: &mut recoverite_store::WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }
}

recoverite_arm::impl_document!(DiskPoint, DISK_POINT_TYPE, "disk restore point");

recoverite_arm::impl_document!(Collection, COLLECTION_TYPE, "restore point collection");

recoverite_arm::impl_document!(RestorePoint, POINT_TYPE, "restore point");

/// The disk restore point at `id`, if it is one.
pub fn disk_point(
    r: &impl recoverite_store::Reader,
    id: &str,
) -> Result<Option<DiskPoint>, ArmError> {
    document::load(r, id)
}

/// A restore point collection: the VM it keeps points of, in its region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    #[serde(default)]
    pub tags: serde_json::Map<String, Value>,
    pub properties: CollectionProperties,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionSource {
    pub id: String,
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionProperties {
    pub source: CollectionSource,
    pub restore_point_collection_id: String,
    pub provisioning_state: String,
}

impl Collection {
    /// A new collection of the VM `vm_id`'s points, in `location`.
    fn new(id: &str, location: &str, vm_id: &str) -> Collection {
        Collection {
            id: id.to_string(),
            name: id.rsplit('/').next().unwrap_or_default().to_string(),
            kind: COLLECTION_TYPE.into(),
            location: location.to_string(),
            tags: serde_json::Map::new(),
            properties: CollectionProperties {
                source: CollectionSource {
                    id: vm_id.to_string(),
                    location: location.to_string(),
                },
                restore_point_collection_id: uuid::Uuid::new_v4().to_string(),
                provisioning_state: "Succeeded".into(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdRef {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceStorageProfile {
    /// Each entry names its disk restore point (display metadata).
    pub os_disk: Value,
    pub data_disks: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmSize {
    pub vm_size: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceMetadata {
    pub vm_id: Option<String>,
    pub location: String,
    pub hardware_profile: VmSize,
    pub storage_profile: SourceStorageProfile,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePointProperties {
    pub exclude_disks: Vec<IdRef>,
    pub consistency_mode: String,
    pub time_created: String,
    pub provisioning_state: String,
    pub source_metadata: SourceMetadata,
}

/// A VM restore point: every disk of the VM but the excluded ones, copied
/// into disk restore points at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestorePoint {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub properties: RestorePointProperties,
}

/// The collection at `id`, if it is one.
pub fn collection(
    r: &impl recoverite_store::Reader,
    id: &str,
) -> Result<Option<Collection>, ArmError> {
    document::load(r, id)
}

/// The restore point at `id`, if it is one.
pub fn restore_point(
    r: &impl recoverite_store::Reader,
    id: &str,
) -> Result<Option<RestorePoint>, ArmError> {
    document::load(r, id)
}

/// Copies the VM's `snapshots` (each disk with the image holding its copy)
/// into disk restore points under `rid`, and the restore point naming them.
fn write_point(
    tx: &mut recoverite_store::WriteTx,
    rid: &str,
    vm: &Vm,
    snapshots: &[(Disk, String, String)],
    excluded: &[String],
    mode: &str,
) -> Result<RestorePoint, ArmError> {
    let now = time::now_string();
    let (mut os_entry, mut data_entries) = (Value::Null, Vec::new());
    for (d, drp_id, unique) in snapshots {
        DiskPoint::of_disk(d, drp_id, unique, &vm.location, &now).save(tx)?;
        add_disk_entry(vm, d, drp_id, &mut os_entry, &mut data_entries);
    }
    let point = RestorePoint {
        id: rid.to_string(),
        name: rid.rsplit('/').next().unwrap_or_default().to_string(),
        kind: POINT_TYPE.into(),
        properties: RestorePointProperties {
            exclude_disks: excluded.iter().map(|e| IdRef { id: e.clone() }).collect(),
            consistency_mode: mode.to_string(),
            time_created: now,
            provisioning_state: "Succeeded".into(),
            source_metadata: SourceMetadata {
                vm_id: vm.vm_id.clone(),
                location: vm.location.clone(),
                hardware_profile: VmSize {
                    vm_size: vm.size.clone(),
                },
                storage_profile: SourceStorageProfile {
                    os_disk: os_entry,
                    data_disks: data_entries,
                },
            },
        },
    };
    document::save(tx, &point)?;
    Ok(point)
}

/// "You can keep a maximum of 500 VM restore points for any VM at any time."
pub const MAX_POINTS: usize = 500;

/// The restore-point limit per collection (one collection per VM).
pub fn check_point_count(existing: usize) -> Result<(), ArmError> {
    if existing >= MAX_POINTS {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!("The restore point collection already holds {MAX_POINTS} restore points, the most a VM can keep; delete older ones first."),
        ));
    }
    Ok(())
}

/// Consistency recoverite can give: crash consistency, a copy of every
/// disk. Application and file-system consistency need the VM agent to
/// freeze the guest, which an emulated VM has not got.
pub fn check_consistency(mode: Option<&str>) -> Result<&'static str, ArmError> {
    match mode {
        None => Ok("CrashConsistent"),
        Some(m) if m.eq_ignore_ascii_case("CrashConsistent") => Ok("CrashConsistent"),
        Some(m) if m.eq_ignore_ascii_case("ApplicationConsistent") || m.eq_ignore_ascii_case("FileSystemConsistent") => {
            Err(ArmError::bad_request(
                "OperationNotAllowed",
                format!("A {m} restore point needs the VM agent to quiesce the guest, and recoverite's VMs have none; create the restore point with consistencyMode CrashConsistent."),
            ))
        }
        Some(m) => Err(ArmError::invalid_parameter(
            "consistencyMode",
            format!("consistencyMode '{m}' is not valid; use CrashConsistent, FileSystemConsistent or ApplicationConsistent."),
        )),
    }
}

fn io(e: std::io::Error) -> ArmError {
    ArmError::internal(format!("restore point storage failed: {e}"))
}

fn last(req: &ArmRequest, i: usize) -> String {
    req.path
        .provider
        .as_ref()
        .and_then(|p| p.names.get(i).cloned())
        .unwrap_or_default()
}

fn collection_id(req: &ArmRequest) -> String {
    format!(
        "{}/providers/{COLLECTION_TYPE}/{}",
        req.path.scope(),
        last(req, 0)
    )
}

fn not_found(kind: &str, name: &str, req: &ArmRequest) -> ArmError {
    ArmError::resource_not_found(kind, name, req.path.resource_group.as_deref())
}

pub fn put_collection(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    let name = last(req, 0);
    disks::check_name(&name)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let out = ctx.store().write(|tx| {
        let existing = collection(tx, &rid)?;
        let source = match (body["properties"]["source"]["id"].as_str(), &existing) {
            (Some(s), _) => s.to_string(),
            (None, Some(e)) => e.properties.source.id.clone(),
            (None, None) => {
                return Err(ArmError::invalid_parameter(
                    "properties.source.id",
                    "A restore point collection needs properties.source.id: the VM it keeps restore points of.",
                ))
            }
        };
        if let Some(e) = &existing {
            if !e.properties.source.id.eq_ignore_ascii_case(&source) {
                return Err(ArmError::conflict(
                    "PropertyChangeNotAllowed",
                    "Changing property 'source.id' is not allowed: a restore point collection belongs to one VM.",
                ));
            }
        }
        let vm = crate::view::vm(tx, &source)?
            .ok_or_else(|| ArmError::bad_request("InvalidParameter", format!("The source VM '{source}' was not found.")))?;
        ctx.require_linked(&format!("{COLLECTION_TYPE}/write"), &rid, "Microsoft.Compute/virtualMachines/read", &source)?;
        let location = regions::require(body["location"].as_str().or(existing.as_ref().map(|e| e.location.as_str())).unwrap_or(""), COLLECTION_TYPE)?.name.to_string();
        if !location.eq_ignore_ascii_case(&vm.location) {
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!("The restore point collection must be in the VM's region '{}', not '{location}'.", vm.location),
            ));
        }
        let mut c = Collection::new(&rid, &location, &source);
        c.name = name.clone();
        if let Some(e) = &existing {
            c.properties.restore_point_collection_id = e.properties.restore_point_collection_id.clone();
            c.tags = e.tags.clone();
        }
        if let Some(t) = body.get("tags") {
            c.tags = resource::validate_tags(Some(t))?;
        }
        document::save(tx, &c)?;
        Ok((document::to_value(&c)?, existing.is_some()))
    })?;
    Ok(Reply::json(if out.1 { 200 } else { 201 }, out.0))
}

pub fn get_collection(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    let expand = req
        .query_get("$expand")
        .is_some_and(|e| e.eq_ignore_ascii_case("restorePoints"));
    ctx.store().view(|r| {
        let mut doc = document::to_value(
            &collection(r, &rid)?.ok_or_else(|| not_found(COLLECTION_TYPE, &last(req, 0), req))?,
        )?;
        if expand {
            doc["properties"]["restorePoints"] =
                Value::Array(resource::list_children(r, &rid, "restorePoints")?);
        }
        Ok(Reply::ok(doc))
    })
}

pub fn list_collections(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let items = ctx
        .store()
        .view(|r| resource::list_of_type(r, &req.path.scope(), COLLECTION_TYPE))?;
    paging::page_visible(ctx, req, items)
}

/// Deleting a collection deletes its restore points and their bytes.
pub fn delete_collection(
    ctx: &Ctx,
    req: &ArmRequest,
    blocks: &BlockStore,
) -> Result<Reply, ArmError> {
    delete_freeing(ctx, &req.path.id(), blocks, |tx, rid| {
        let mut uniques = Vec::new();
        for p in resource::list_children(tx, rid, "restorePoints")? {
            uniques.extend(disk_uniques(tx, p["id"].as_str().unwrap_or_default())?);
        }
        Ok(uniques)
    })
}

/// Deletes `rid` and what is nested in it, then frees the bytes `held`
/// names: 200, or 204 when there was nothing.
fn delete_freeing(
    ctx: &Ctx,
    rid: &str,
    blocks: &BlockStore,
    held: impl Fn(&recoverite_store::WriteTx, &str) -> Result<Vec<String>, ArmError>,
) -> Result<Reply, ArmError> {
    let freed = ctx
        .store()
        .write(|tx| -> Result<Option<Vec<String>>, ArmError> {
            if resource::get(tx, rid)?.is_none() {
                return Ok(None);
            }
            let u = held(tx, rid)?;
            resource::delete_tree(tx, rid)?;
            Ok(Some(u))
        })?;
    match freed {
        None => Ok(Reply::empty(204)),
        Some(u) => {
            free(blocks, &u);
            Ok(Reply::empty(200))
        }
    }
}

fn disk_uniques(
    r: &impl recoverite_store::Reader,
    point_id: &str,
) -> Result<Vec<String>, ArmError> {
    Ok(
        document::children::<DiskPoint>(r, point_id, "diskRestorePoints")?
            .into_iter()
            .map(|p| p.properties.unique_id)
            .collect(),
    )
}

/// The images of every disk restore point in `scope`.
pub fn disk_points_in(
    r: &impl recoverite_store::Reader,
    scope: &str,
) -> Result<Vec<String>, ArmError> {
    Ok(document::list::<DiskPoint>(r, scope)?
        .into_iter()
        .map(|p| p.properties.unique_id)
        .collect())
}

/// Bytes go after the records that named them are gone (a crash between
/// leaves unreferenced files, never a record without its bytes).
fn free(blocks: &BlockStore, uniques: &[String]) {
    for u in uniques {
        if let Err(e) = blocks.delete(u) {
            tracing::warn!("could not free restore point bytes {u}: {e}");
        }
    }
}

/// Creates a restore point: every disk of the source VM but the excluded
/// ones is copied into a disk restore point.
pub fn put_point(ctx: &Ctx, req: &ArmRequest, blocks: &BlockStore) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    let name = last(req, 1);
    disks::check_name(&name)?;
    let coll_id = collection_id(req);
    let body = req.body.clone().unwrap_or(json!({}));
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let mode = check_consistency(props["consistencyMode"].as_str())?;
    let excluded: Vec<String> = props["excludeDisks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["id"].as_str().map(str::to_ascii_lowercase))
        .collect();
    let doc = ctx.store().write(|tx| {
        if let Some(existing) = restore_point(tx, &rid)? {
            // Restore points are immutable: the same PUT again answers the point.
            return Ok((document::to_value(&existing)?, false));
        }
        let coll = collection(tx, &coll_id)?
            .ok_or_else(|| not_found(COLLECTION_TYPE, &last(req, 0), req))?;
        check_point_count(resource::list_children(tx, &coll_id, "restorePoints")?.len())?;
        let vm_id = coll.properties.source.id.clone();
        let (vm, vm_disks) = disks::of_vm(tx, &vm_id)?.ok_or_else(|| {
            ArmError::bad_request("InvalidParameter", format!("The collection's source VM '{vm_id}' no longer exists; restore points can only be taken of an existing VM."))
        })?;
        for e in &excluded {
            if !vm_disks.iter().any(|d| d.id.eq_ignore_ascii_case(e)) {
                return Err(ArmError::invalid_parameter("excludeDisks", format!("'{e}' is not a disk of the VM.")));
            }
        }
        let mut copies = Vec::new();
        for d in vm_disks.into_iter().filter(|d| !excluded.contains(&d.id.to_ascii_lowercase())) {
            let drp_id = format!("{rid}/diskRestorePoints/{}_{}", d.name, uuid::Uuid::new_v4());
            let unique = uuid::Uuid::new_v4().to_string();
            blocks.copy(&d.properties.unique_id, &unique, d.properties.disk_size_bytes).map_err(io)?;
            copies.push((d, drp_id, unique));
        }
        let point = write_point(tx, &rid, &vm, &copies, &excluded, mode)?;
        Ok((document::to_value(&point)?, true))
    })?;
    Ok(Reply::json(if doc.1 { 201 } else { 200 }, doc.0))
}

/// A disk restore point in the point's `sourceMetadata.storageProfile`: the
/// OS disk's entry, or a data disk's with its LUN.
fn add_disk_entry(
    vm: &Vm,
    d: &Disk,
    drp_id: &str,
    os_entry: &mut Value,
    data_entries: &mut Vec<Value>,
) {
    let entry = json!({"name": d.name, "managedDisk": {"id": d.id, "storageAccountType": d.sku.name},
                       "diskRestorePoint": {"id": drp_id}, "diskSizeGB": d.properties.disk_size_gb});
    match vm.role_of(&d.id) {
        Some(DiskRole::Os) => {
            *os_entry = entry;
            os_entry["osType"] = json!(d.properties.os_type);
        }
        role => {
            let mut e = entry;
            e["lun"] = json!(match role {
                Some(DiskRole::Data { lun }) => Some(lun),
                _ => None,
            });
            data_entries.push(e);
        }
    }
}

/// Azure Backup's collection for a VM's instant-restore snapshots:
/// `AzureBackup_{vm}_{number}`, one per VM.
pub fn backup_collection_name(vm_name: &str, vm_id: &str) -> String {
    // FNV-1a of the VM's id: the same VM always gets the same number.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in vm_id.to_ascii_lowercase().bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("AzureBackup_{vm_name}_{}", h % 1_000_000_000)
}

/// Records a snapshot another service already took (Azure Backup's
/// instant-restore tier) as a restore point of the VM in `rg_id`, so users
/// see it where Azure puts it. `snapshots`: each disk of the VM with the
/// image holding its copy. Returns the restore point's id. Deleting the
/// point through this API frees the images, as in Azure, where a deleted
/// instant-restore snapshot leaves only the vault tier.
pub fn record_snapshot_point(
    tx: &mut recoverite_store::WriteTx,
    rg_id: &str,
    vm: &Vm,
    point_name: &str,
    snapshots: &[(Disk, String)],
) -> Result<String, ArmError> {
    let vm_id = vm.id.as_str();
    let location = vm.location.as_str();
    let coll_id = format!(
        "{rg_id}/providers/{COLLECTION_TYPE}/{}",
        backup_collection_name(&vm.name, vm_id)
    );
    if collection(tx, &coll_id)?.is_none() {
        document::save(tx, &Collection::new(&coll_id, location, vm_id))?;
    }
    let rid = format!("{coll_id}/restorePoints/{point_name}");
    let copies: Vec<(Disk, String, String)> = snapshots
        .iter()
        .map(|(d, unique)| {
            let drp_id = format!("{rid}/diskRestorePoints/{}_{point_name}", d.name);
            (d.clone(), drp_id, unique.clone())
        })
        .collect();
    write_point(tx, &rid, vm, &copies, &[], "CrashConsistent")?;
    Ok(rid)
}

/// Drops a restore point's records without freeing its images (their
/// owner frees them).
pub fn forget_point(tx: &mut recoverite_store::WriteTx, point_id: &str) -> Result<(), ArmError> {
    resource::delete_tree(tx, point_id).map(|_| ())
}

pub fn get_point(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store()
        .view(|r| restore_point(r, &rid))?
        .ok_or_else(|| not_found(POINT_TYPE, &last(req, 1), req))
        .and_then(|p| document::to_value(&p))
        .map(Reply::ok)
}

pub fn delete_point(ctx: &Ctx, req: &ArmRequest, blocks: &BlockStore) -> Result<Reply, ArmError> {
    delete_freeing(ctx, &req.path.id(), blocks, disk_uniques)
}

pub fn get_disk_point(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store()
        .view(|r| disk_point(r, &rid))?
        .ok_or_else(|| not_found(DISK_POINT_TYPE, &last(req, 2), req))
        .and_then(|p| document::to_value(&p))
        .map(Reply::ok)
}

pub fn list_disk_points(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let point = req.path.parent_id();
    let items = ctx.store().view(|r| {
        if resource::get(r, &point)?.is_none() {
            return Err(not_found(POINT_TYPE, &last(req, 1), req));
        }
        resource::list_children(r, &point, "diskRestorePoints")
    })?;
    paging::page_visible(ctx, req, items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_point_names_its_source_and_its_bytes() {
        let mut d = Disk::new(disks::NewDisk {
            id: "/x/disks/os",
            kind: disks::DISK_TYPE,
            location: "westus",
            sku: "Premium_LRS",
            size_bytes: 2 << 30,
            unique_id: "disk-bytes",
            creation: disks::CreationData {
                create_option: "FromImage".into(),
                source_resource_id: None,
            },
            os_type: Some("Linux".into()),
        });
        d.attach("/vm");
        let p = DiskPoint::of_disk(&d, "/p/diskRestorePoints/os_1", "copy", "westus", "now");
        assert_eq!(p.name, "os_1");
        assert_eq!(p.properties.source_resource_id, "/x/disks/os");
        assert_eq!(p.properties.source_unique_id, "disk-bytes");
        assert_eq!(p.properties.unique_id, "copy");
        assert_eq!(p.properties.disk_size_gb, 2);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["properties"]["osType"], "Linux");
        assert_eq!(document::read::<DiskPoint>(v).unwrap(), p);
    }

    #[test]
    fn at_most_500_points_per_vm() {
        assert!(check_point_count(499).is_ok());
        assert_eq!(
            check_point_count(500).unwrap_err().code(),
            "OperationNotAllowed"
        );
    }

    #[test]
    fn only_crash_consistency_without_a_guest_agent() {
        assert_eq!(check_consistency(None).unwrap(), "CrashConsistent");
        assert_eq!(
            check_consistency(Some("crashconsistent")).unwrap(),
            "CrashConsistent"
        );
        assert_eq!(
            check_consistency(Some("ApplicationConsistent"))
                .unwrap_err()
                .code(),
            "OperationNotAllowed"
        );
        assert_eq!(
            check_consistency(Some("Whatever")).unwrap_err().code(),
            "InvalidParameter"
        );
    }
}
