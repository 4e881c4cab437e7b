//! Managed disks.

use serde::Deserialize;
use serde_json::Value;

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{paging, regions, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_blockstore::BlockStore;

pub use crate::managed_disk::{
    load, CreationData, Disk, DiskSku, DiskState, NewDisk, DISK_TYPE, SNAPSHOT_TYPE,
};
use crate::view::Vm;

pub const SKUS: &[&str] = &[
    "Standard_LRS",
    "Premium_LRS",
    "StandardSSD_LRS",
    "UltraSSD_LRS",
    "Premium_ZRS",
    "StandardSSD_ZRS",
    "PremiumV2_LRS",
];
pub const MAX_GB: u64 = 32767;

/// "diskSizeGB must be from 1 to 32767" (managed disks).
pub fn check_size(gb: u64) -> Result<(), ArmError> {
    if gb == 0 || gb > MAX_GB {
        return Err(ArmError::invalid_parameter(
            "diskSizeGB",
            format!("diskSizeGB must be from 1 to {MAX_GB}."),
        ));
    }
    Ok(())
}

/// The disk SKUs Azure offers for managed disks.
pub fn check_sku(sku: &str) -> Result<(), ArmError> {
    if SKUS.contains(&sku) {
        return Ok(());
    }
    Err(ArmError::invalid_parameter(
        "sku.name",
        format!(
            "Disk SKU '{sku}' is not valid; use one of {}.",
            SKUS.join(", ")
        ),
    ))
}

/// "A disk's size can only increase", and an attached disk is not resized
/// (deallocate or detach it first).
pub fn check_resize(old_gb: Option<u64>, gb: u64, attached: bool) -> Result<(), ArmError> {
    let Some(old) = old_gb else {
        return Ok(());
    };
    if gb < old {
        return Err(ArmError::bad_request(
            "BadRequest",
            format!("Disk size cannot be decreased from {old} GB to {gb} GB."),
        ));
    }
    if gb > old && attached {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            "A disk attached to a running VM cannot be resized; deallocate or detach it first.",
        ));
    }
    Ok(())
}

pub fn check_name(n: &str) -> Result<(), ArmError> {
    let ok = (1..=80).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ArmError::bad_request("InvalidResourceName", format!("The disk name '{n}' is invalid: 1-80 letters, digits, '_', '.', '-', starting with a letter or digit and ending with a letter, digit or '_'.")))
    }
}

fn io(e: std::io::Error) -> ArmError {
    ArmError::internal(format!("disk storage failed: {e}"))
}

/// How a new disk or snapshot is made (`creationData.createOption`).
#[derive(Debug, PartialEq, Eq)]
pub enum Creation<'a> {
    /// Empty (also Attach and FromImage: an empty image of the size given).
    Empty,
    /// Copy or Restore from a disk, snapshot or disk restore point.
    CopyFrom(&'a str),
}

/// "A snapshot is a full, read-only copy of a virtual hard drive": it is
/// taken with `Copy` from a source; a disk is `Empty`, or `Copy`/`Restore`
/// from a source its request names.
pub fn creation<'a>(
    snapshot: bool,
    create: &str,
    source: Option<&'a str>,
) -> Result<Creation<'a>, ArmError> {
    if snapshot && create != "Copy" {
        return Err(ArmError::invalid_parameter("creationData.createOption", format!("A snapshot is taken with createOption Copy from a disk or snapshot, not '{create}'.")));
    }
    match (create, source) {
        ("Copy" | "Restore", Some(s)) => Ok(Creation::CopyFrom(s)),
        ("Copy" | "Restore", None) => Err(ArmError::invalid_parameter(
            "creationData.sourceResourceId",
            format!("createOption {create} needs creationData.sourceResourceId."),
        )),
        ("Empty" | "Attach" | "FromImage", _) => Ok(Creation::Empty),
        (other, _) => Err(ArmError::invalid_parameter(
            "creationData.createOption",
            format!("createOption '{other}' is not supported; use Empty, Copy or Restore."),
        )),
    }
}

/// How a disk PUT makes its bytes.
enum Image {
    /// A sparse copy of a disk, snapshot or disk restore point (its image).
    Copy(String),
    Create,
    Resize,
}

/// What a disk or snapshot PUT/PATCH gives (unknown fields ignored, as
/// Azure does; a field of the wrong type is refused).
#[derive(Deserialize, Default)]
struct Body {
    location: Option<String>,
    tags: Option<Value>,
    sku: Option<SkuGiven>,
    #[serde(default)]
    properties: Given,
}

#[derive(Deserialize, Default)]
struct SkuGiven {
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreationGiven {
    create_option: Option<String>,
    source_resource_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Given {
    #[serde(default)]
    creation_data: CreationGiven,
    #[serde(rename = "diskSizeGB")]
    disk_size_gb: Option<u64>,
    incremental: Option<bool>,
    os_type: Option<String>,
    hyper_v_generation: Option<String>,
}

/// What a copy starts from: a disk, snapshot or disk restore point.
struct Source {
    unique_id: String,
    size_gb: Option<u64>,
}

/// The source of a copy: a disk, snapshot or disk restore point the caller
/// may read (the linked action on it).
fn copy_source(
    ctx: &Ctx,
    r: &impl recoverite_store::Reader,
    kind: &str,
    rid: &str,
    s: &str,
) -> Result<Source, ArmError> {
    let missing = || {
        ArmError::bad_request(
            "InvalidResourceReference",
            format!("Source disk, snapshot or disk restore point {s} was not found."),
        )
    };
    let (read, source) = match crate::managed_disk::load_of(r, s, &[DISK_TYPE, SNAPSHOT_TYPE])? {
        Some(d) => (
            if d.is_snapshot() {
                "Microsoft.Compute/snapshots/read"
            } else {
                crate::vms::DISK_READ
            },
            Source {
                unique_id: d.properties.unique_id,
                size_gb: Some(d.properties.disk_size_gb),
            },
        ),
        None => {
            let p = crate::restore_points::disk_point(r, s)?.ok_or_else(missing)?;
            (
                crate::restore_points::DISK_POINT_READ,
                Source {
                    unique_id: p.properties.unique_id,
                    size_gb: Some(p.properties.disk_size_gb),
                },
            )
        }
    };
    ctx.require_linked(&format!("{kind}/write"), rid, read, s)?;
    Ok(source)
}

/// The disk a PUT or PATCH leaves, and how its bytes are made. Decided on a
/// read snapshot; the bytes are made outside the store's write lock.
fn plan_disk(
    ctx: &Ctx,
    r: &impl recoverite_store::Reader,
    req: &ArmRequest,
    body: Body,
    patch: bool,
    kind: &'static str,
) -> Result<(Disk, Image, Option<String>), ArmError> {
    let snapshot = kind == SNAPSHOT_TYPE;
    let rid = req.path.id();
    let n = req.resource_name();
    let existing = crate::managed_disk::load_of(r, &rid, &[kind])?;
    if patch && existing.is_none() {
        return Err(ArmError::resource_not_found(
            kind,
            n,
            req.path.resource_group.as_deref(),
        ));
    }
    let location = match (&body.location, &existing) {
        (Some(l), _) => regions::require(l, kind)?.name.to_string(),
        (None, Some(e)) => e.location.clone(),
        (None, None) => {
            return Err(ArmError::bad_request(
                "LocationRequired",
                "The location property is required for a disk.",
            ))
        }
    };
    let sku = body
        .sku
        .and_then(|s| s.name)
        .or_else(|| existing.as_ref().map(|e| e.sku.name.clone()))
        .unwrap_or_else(|| "Standard_LRS".into());
    check_sku(&sku)?;
    let p = body.properties;
    let old_gb = existing.as_ref().map(|e| e.properties.disk_size_gb);
    let create = p
        .creation_data
        .create_option
        .unwrap_or_else(|| if snapshot { "Copy" } else { "Empty" }.into());
    let source_id = p.creation_data.source_resource_id;
    let source = match &existing {
        Some(_) => None,
        None => match creation(snapshot, &create, source_id.as_deref())? {
            Creation::Empty => None,
            Creation::CopyFrom(s) => Some(copy_source(ctx, r, kind, &rid, s)?),
        },
    };
    let gb = p
        .disk_size_gb
        .or(old_gb)
        .or_else(|| source.as_ref().and_then(|s| s.size_gb))
        .ok_or_else(|| {
            ArmError::invalid_parameter("diskSizeGB", "An empty disk needs properties.diskSizeGB.")
        })?;
    check_size(gb)?;
    let attached = existing.as_ref().is_some_and(|e| e.managed_by.is_some());
    check_resize(old_gb, gb, attached)?;
    let was = existing.as_ref().map(|e| e.properties.unique_id.clone());
    let (mut disk, image) = match (existing, source) {
        (Some(e), _) => (e, Image::Resize),
        (None, source) => {
            let unique = uuid::Uuid::new_v4().to_string();
            let image = match source {
                Some(s) => Image::Copy(s.unique_id),
                None => Image::Create,
            };
            let mut d = Disk::new(NewDisk {
                id: &rid,
                kind,
                location: &location,
                sku: &sku,
                size_bytes: gb << 30,
                unique_id: &unique,
                creation: CreationData {
                    create_option: create,
                    source_resource_id: source_id,
                },
                os_type: None,
            });
            // Names keep the spelling of the request that made them.
            d.name = n.to_string();
            (d, image)
        }
    };
    disk.location = location;
    if let Some(t) = body.tags {
        disk.tags = resource::validate_tags(Some(&t))?;
    }
    disk.sku = DiskSku::new(&sku);
    let props = &mut disk.properties;
    props.disk_size_gb = gb;
    props.disk_size_bytes = gb << 30;
    if snapshot {
        props.incremental = p.incremental.or(props.incremental).or(Some(false));
    }
    props.os_type = p.os_type.or(props.os_type.take());
    props.hyper_v_generation = p.hyper_v_generation.or(props.hyper_v_generation.take());
    Ok((disk, image, was))
}

/// Creates the disk and its bytes (or resizes, on update).
pub fn put(
    ctx: &Ctx,
    req: &ArmRequest,
    blocks: &BlockStore,
    patch: bool,
    kind: &'static str,
) -> Result<Reply, ArmError> {
    check_name(req.resource_name())?;
    let body: Body = if patch {
        req.body_or_empty()?
    } else {
        req.body_as()?
    };
    let rid = req.path.id();
    let (disk, image, was) = ctx
        .store()
        .view(|r| plan_disk(ctx, r, req, body, patch, kind))?;
    let unique = disk.properties.unique_id.clone();
    let bytes = disk.properties.disk_size_bytes;
    match &image {
        Image::Copy(from) => blocks.copy(from, &unique, bytes).map_err(io)?,
        Image::Create => blocks.create(&unique, bytes).map_err(io)?,
        Image::Resize => blocks.resize(&unique, bytes).map_err(io)?,
    }
    let committed = ctx.store().write(|tx| {
        // The commit checks nothing moved while the bytes were made.
        let now = crate::managed_disk::load_of(tx, &rid, &[kind])?.map(|e| e.properties.unique_id);
        if now != was {
            return Err(ArmError::conflict("ConcurrentUpdate", format!("The {kind} '{}' changed while this request made its bytes; send the request again.", disk.name)));
        }
        disk.save(tx)?;
        // Disk writes are long-running operations polled through Location
        // (201 is not used); the record commits with the change.
        let op = OperationRecord::new(ctx, "Microsoft.Compute", &rid).succeed(Some(disk.to_value()?));
        op.save(tx)?;
        Ok(op)
    });
    let op = match committed {
        Ok(op) => op,
        Err(e) => {
            // A new image nothing names goes again; a grown one stays grown.
            if !matches!(image, Image::Resize) {
                let _ = blocks.delete(&unique);
            }
            return Err(e);
        }
    };
    let sub = req.path.subscription.clone().unwrap_or_default();
    let url = lro::result_url(ctx, &sub, &disk.location, &op, &req.api_version);
    Ok(lro::with_retry_after(
        ctx,
        Reply::json(202, disk.to_value()?).header("Location", url),
    ))
}

pub fn get(ctx: &Ctx, req: &ArmRequest, kind: &'static str) -> Result<Reply, ArmError> {
    ctx.store()
        .view(|r| crate::managed_disk::load_of(r, &req.path.id(), &[kind]))?
        .map(|d| d.to_value().map(Reply::ok))
        .unwrap_or_else(|| {
            Err(ArmError::resource_not_found(
                kind,
                req.resource_name(),
                req.path.resource_group.as_deref(),
            ))
        })
}

pub fn list(ctx: &Ctx, req: &ArmRequest, kind: &'static str) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        crate::managed_disk::list(r, &req.path.scope(), kind)?
            .iter()
            .map(Disk::to_value)
            .collect::<Result<Vec<_>, ArmError>>()
    })?;
    paging::page_visible(ctx, req, items)
}

/// "A disk attached to a VM cannot be deleted": detach it first.
pub fn check_deletable(d: &Disk) -> Result<(), ArmError> {
    match &d.managed_by {
        Some(vm) => Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "Disk {} is attached to VM {vm}; detach it before deleting.",
                d.name
            ),
        )),
        None => Ok(()),
    }
}

pub fn delete(
    ctx: &Ctx,
    req: &ArmRequest,
    blocks: &BlockStore,
    kind: &'static str,
) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    let op = OperationRecord::new(ctx, "Microsoft.Compute", &rid).succeed(None);
    let gone = ctx.store().write(|tx| {
        let Some(d) = crate::managed_disk::load_of(tx, &rid, &[kind])? else {
            return Ok::<_, ArmError>(None);
        };
        check_deletable(&d)?;
        if crate::access::has_live_grant(tx, &rid)? {
            return Err(ArmError::conflict(
                "OperationNotAllowed",
                format!(
                    "Disk {} has active access (a download URL granted with beginGetAccess); revoke it with endGetAccess before deleting.",
                    d.name
                ),
            ));
        }
        crate::access::forget(tx, &rid)?;
        resource::delete_tree(tx, &rid)?;
        ctx.cascade_delete(tx, &rid)?;
        op.save(tx)?;
        Ok(Some(d))
    })?;
    let Some(d) = gone else {
        return Ok(Reply::empty(204));
    };
    blocks.delete(&d.properties.unique_id).map_err(io)?;
    let sub = req.path.subscription.clone().unwrap_or_default();
    Ok(lro::with_retry_after(
        ctx,
        Reply::empty(202).header(
            "Location",
            lro::result_url(ctx, &sub, &d.location, &op, &req.api_version),
        ),
    ))
}

/// A VM and its managed disks, OS disk first; `None` when the VM is missing.
pub fn of_vm(
    r: &impl recoverite_store::Reader,
    vm_id: &str,
) -> Result<Option<(Vm, Vec<Disk>)>, ArmError> {
    let Some(vm) = crate::view::vm(r, vm_id)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for id in vm
        .os_disk
        .iter()
        .chain(vm.data_disks.iter().map(|(_, d)| d))
    {
        if let Some(d) = load(r, id)? {
            out.push(d);
        }
    }
    Ok(Some((vm, out)))
}

/// The disk a restored disk comes from (it may be gone since).
pub struct RestoredFrom<'a> {
    pub id: &'a str,
    pub os_type: Option<&'a str>,
}

/// Records a managed disk whose bytes another provider already wrote to the
/// block store under `unique_id` (Site Recovery's failover disks, Backup's
/// restored disks).
pub fn register(
    tx: &mut recoverite_store::WriteTx,
    rid: &str,
    location: &str,
    sku: &str,
    size_bytes: u64,
    unique_id: &str,
    source: RestoredFrom,
) -> Result<Disk, ArmError> {
    check_name(rid.rsplit('/').next().unwrap_or_default())?;
    let d = Disk::new(NewDisk {
        id: rid,
        kind: DISK_TYPE,
        location,
        sku,
        size_bytes,
        unique_id,
        creation: CreationData {
            create_option: "Restore".into(),
            source_resource_id: Some(source.id.to_string()),
        },
        os_type: source.os_type.map(str::to_string),
    });
    d.save(tx)?;
    Ok(d)
}

#[cfg(test)]
mod rule_tests {
    use super::*;

    #[test]
    fn a_disk_is_empty_or_copied_and_a_snapshot_is_copied() {
        assert_eq!(creation(false, "Empty", None).unwrap(), Creation::Empty);
        assert_eq!(
            creation(false, "Restore", Some("/s")).unwrap(),
            Creation::CopyFrom("/s")
        );
        assert_eq!(
            creation(true, "Copy", Some("/d")).unwrap(),
            Creation::CopyFrom("/d")
        );
        for (snapshot, create, source) in [
            (true, "Empty", None),
            (false, "Copy", None),
            (false, "Import", Some("/x")),
        ] {
            assert_eq!(
                creation(snapshot, create, source).unwrap_err().code(),
                "InvalidParameter"
            );
        }
    }

    #[test]
    fn an_attached_disk_is_not_deleted() {
        let mut d = crate::managed_disk::empty_disk("/x/disks/d", "Standard_LRS", 1);
        assert!(check_deletable(&d).is_ok());
        d.attach("/vm");
        let e = check_deletable(&d).unwrap_err();
        assert_eq!(e.code(), "OperationNotAllowed");
        assert!(e.body.message.contains("detach"));
        d.detach();
        assert!(check_deletable(&d).is_ok());
    }

    #[test]
    fn a_disk_only_grows_and_not_while_attached() {
        assert!(check_resize(None, 4, true).is_ok());
        assert!(check_resize(Some(4), 4, true).is_ok());
        assert!(check_resize(Some(4), 8, false).is_ok());
        assert_eq!(
            check_resize(Some(4), 2, false).unwrap_err().code(),
            "BadRequest"
        );
        assert_eq!(
            check_resize(Some(4), 8, true).unwrap_err().code(),
            "OperationNotAllowed"
        );
    }

    #[test]
    fn skus_and_sizes_are_azures() {
        assert!(check_sku("Premium_LRS").is_ok());
        assert!(check_sku("Gold_LRS").is_err());
        assert!(check_size(0).is_err());
        assert!(check_size(MAX_GB).is_ok());
        assert!(check_size(MAX_GB + 1).is_err());
    }
}
