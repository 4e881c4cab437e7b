//! Managed disks.

use serde_json::{json, Value};

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{paging, regions, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_blockstore::BlockStore;

pub const DISK_TYPE: &str = "Microsoft.Compute/disks";
/// A snapshot is a point-in-time copy of a disk's (or snapshot's) bytes,
/// kept sparse like a disk and usable as a new disk's `Copy` source.
pub const SNAPSHOT_TYPE: &str = "Microsoft.Compute/snapshots";
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

fn tier(sku: &str) -> &'static str {
    if sku.starts_with("Premium") || sku.starts_with("Ultra") {
        "Premium"
    } else {
        "Standard"
    }
}

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

/// How a disk PUT makes its bytes.
enum Image {
    /// A sparse copy of a disk, snapshot or disk restore point (its id).
    Copy(String),
    Create,
    Resize,
}

/// Creates the disk document and its bytes (or resizes, on update).
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

/// The source of a copy: a disk, snapshot or disk restore point the caller
/// may read (the linked action on it).
fn copy_source(
    ctx: &Ctx,
    r: &impl recoverite_store::Reader,
    kind: &str,
    rid: &str,
    s: &str,
) -> Result<Value, ArmError> {
    let d = resource::get(r, s)?
        .filter(|d| {
            matches!(
                d["type"].as_str(),
                Some(DISK_TYPE | SNAPSHOT_TYPE | crate::restore_points::DISK_POINT_TYPE)
            )
        })
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidResourceReference",
                format!("Source disk, snapshot or disk restore point {s} was not found."),
            )
        })?;
    let read = match d["type"].as_str() {
        Some(SNAPSHOT_TYPE) => "Microsoft.Compute/snapshots/read",
        Some(crate::restore_points::DISK_POINT_TYPE) => crate::restore_points::DISK_POINT_READ,
        _ => crate::vms::DISK_READ,
    };
    ctx.require_linked(&format!("{kind}/write"), rid, read, s)?;
    Ok(d)
}

pub fn put(
    ctx: &Ctx,
    req: &ArmRequest,
    blocks: &BlockStore,
    patch: bool,
    kind: &'static str,
) -> Result<Reply, ArmError> {
    let snapshot = kind == SNAPSHOT_TYPE;
    let n = req.resource_name().to_string();
    check_name(&n)?;
    let body = req.body.clone().unwrap_or(json!({}));
    if !body.is_object() {
        return Err(ArmError::invalid_content("the body must be a JSON object"));
    }
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let rid = req.path.id();
    // Decided on a snapshot; the bytes are made outside the store's write
    // lock (a copy may be large); the commit checks nothing moved meanwhile.
    let (doc, image, was) = ctx.store().view(|tx| {
        let existing = resource::get(tx, &rid)?;
        if patch && existing.is_none() {
            return Err(ArmError::resource_not_found(kind, &n, req.path.resource_group.as_deref()));
        }
        let location = match (body["location"].as_str(), &existing) {
            (Some(l), _) => regions::require(l, kind)?.name.to_string(),
            (None, Some(e)) => e["location"].as_str().unwrap_or_default().to_string(),
            (None, None) => return Err(ArmError::bad_request("LocationRequired", "The location property is required for a disk.")),
        };
        let sku = body["sku"]["name"]
            .as_str()
            .map(str::to_string)
            .or_else(|| existing.as_ref().and_then(|e| e["sku"]["name"].as_str().map(str::to_string)))
            .unwrap_or_else(|| "Standard_LRS".into());
        check_sku(&sku)?;
        let old_gb = existing.as_ref().and_then(|e| e["properties"]["diskSizeGB"].as_u64());
        let create = props["creationData"]["createOption"].as_str().unwrap_or(if snapshot { "Copy" } else { "Empty" }).to_string();
        let source = props["creationData"]["sourceResourceId"].as_str().map(str::to_string);
        let source_doc = match &existing {
            Some(_) => None,
            None => match creation(snapshot, &create, source.as_deref())? {
                Creation::Empty => None,
                Creation::CopyFrom(s) => Some(copy_source(ctx, tx, kind, &rid, s)?),
            },
        };
        let gb = props["diskSizeGB"]
            .as_u64()
            .or(old_gb)
            .or_else(|| source_doc.as_ref().and_then(|s| s["properties"]["diskSizeGB"].as_u64()))
            .ok_or_else(|| ArmError::invalid_parameter("diskSizeGB", "An empty disk needs properties.diskSizeGB."))?;
        check_size(gb)?;
        check_resize(old_gb, gb, existing.as_ref().is_some_and(|e| e["managedBy"].is_string()))?;
        let unique = existing
            .as_ref()
            .and_then(|e| e["properties"]["uniqueId"].as_str().map(str::to_string))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let bytes = gb << 30;
        let image = match (&existing, &source_doc) {
            (None, Some(s)) => Image::Copy(s["properties"]["uniqueId"].as_str().unwrap_or_default().to_string()),
            (None, None) => Image::Create,
            (Some(_), _) => Image::Resize,
        };
        let mut doc = json!({
            "id": existing.as_ref().and_then(|e| e["id"].as_str().map(str::to_string)).unwrap_or(rid.clone()),
            "name": existing.as_ref().and_then(|e| e["name"].as_str()).unwrap_or(&n),
            "type": kind,
            "location": location,
            "tags": body.get("tags").cloned().or_else(|| existing.as_ref().and_then(|e| e.get("tags").cloned())).unwrap_or(json!({})),
            "sku": {"name": sku, "tier": tier(&sku)},
            "properties": {
                "creationData": existing.as_ref().map(|e| e["properties"]["creationData"].clone()).unwrap_or_else(|| json!({"createOption": create, "sourceResourceId": source})),
                "diskSizeGB": gb,
                "diskSizeBytes": bytes,
                "uniqueId": unique,
                "provisioningState": "Succeeded",
                "diskState": if existing.as_ref().is_some_and(|e| e["managedBy"].is_string()) { "Attached" } else { "Unattached" },
                "timeCreated": existing.as_ref().map(|e| e["properties"]["timeCreated"].clone()).unwrap_or_else(|| json!(recoverite_arm::time::now_string())),
                "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
                "networkAccessPolicy": "AllowAll",
                "publicNetworkAccess": "Enabled",
            }
        });
        if snapshot {
            let p = doc["properties"].as_object_mut().expect("properties is an object");
            p.remove("diskState");
            let incremental = props["incremental"].as_bool().or_else(|| existing.as_ref().and_then(|e| e["properties"]["incremental"].as_bool())).unwrap_or(false);
            p.insert("incremental".into(), json!(incremental));
        }
        for k in ["osType", "hyperVGeneration"] {
            if let Some(v) = props.get(k).or(existing.as_ref().and_then(|e| e["properties"].get(k))) {
                doc["properties"][k] = v.clone();
            }
        }
        if let Some(m) = existing.as_ref().and_then(|e| e.get("managedBy")) {
            doc["managedBy"] = m.clone();
        }
        let was = existing.as_ref().map(|e| e["properties"]["uniqueId"].clone());
        Ok::<_, ArmError>((doc, image, was))
    })?;
    let unique = doc["properties"]["uniqueId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let bytes = doc["properties"]["diskSizeBytes"]
        .as_u64()
        .unwrap_or_default();
    match &image {
        Image::Copy(from) => blocks.copy(from, &unique, bytes).map_err(io)?,
        Image::Create => blocks.create(&unique, bytes).map_err(io)?,
        Image::Resize => blocks.resize(&unique, bytes).map_err(io)?,
    }
    let committed = ctx.store().write(|tx| {
        let now = resource::get(tx, &rid)?.map(|e| e["properties"]["uniqueId"].clone());
        if now != was {
            return Err(ArmError::conflict("ConcurrentUpdate", format!("The {kind} '{n}' changed while this request made its bytes; send the request again.")));
        }
        resource::put(tx, &rid, &doc)?;
        // Disk writes are long-running operations polled through Location
        // (201 is not used); the record commits with the change.
        let op = OperationRecord::new(ctx, "Microsoft.Compute", &rid).succeed(Some(doc.clone()));
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
    let url = lro::result_url(
        ctx,
        &sub,
        doc["location"].as_str().unwrap_or_default(),
        &op,
        &req.api_version,
    );
    Ok(lro::with_retry_after(
        ctx,
        Reply::json(202, doc).header("Location", url),
    ))
}

pub fn get(ctx: &Ctx, req: &ArmRequest, kind: &'static str) -> Result<Reply, ArmError> {
    ctx.store()
        .view(|r| resource::get(r, &req.path.id()))?
        .filter(|d| d["type"].as_str() == Some(kind))
        .map(Reply::ok)
        .ok_or_else(|| {
            ArmError::resource_not_found(
                kind,
                req.resource_name(),
                req.path.resource_group.as_deref(),
            )
        })
}

pub fn list(ctx: &Ctx, req: &ArmRequest, kind: &'static str) -> Result<Reply, ArmError> {
    let items = ctx
        .store()
        .view(|r| resource::list_of_type(r, &req.path.scope(), kind))?;
    paging::page_visible(ctx, req, items)
}

pub fn delete(ctx: &Ctx, req: &ArmRequest, blocks: &BlockStore) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    let op = OperationRecord::new(ctx, "Microsoft.Compute", &rid).succeed(None);
    let gone = ctx.store().write(|tx| {
        let Some(doc) = resource::get(tx, &rid)? else {
            return Ok::<_, ArmError>(None);
        };
        if let Some(vm) = doc["managedBy"].as_str() {
            return Err(ArmError::conflict(
                "OperationNotAllowed",
                format!(
                    "Disk {} is attached to VM {vm}; detach it before deleting.",
                    doc["name"].as_str().unwrap_or("")
                ),
            ));
        }
        if crate::access::has_live_grant(tx, &rid)? {
            return Err(ArmError::conflict(
                "OperationNotAllowed",
                format!(
                    "Disk {} has active access (a download URL granted with beginGetAccess); revoke it with endGetAccess before deleting.",
                    doc["name"].as_str().unwrap_or("")
                ),
            ));
        }
        crate::access::forget(tx, &rid)?;
        resource::delete_tree(tx, &rid)?;
        ctx.cascade_delete(tx, &rid)?;
        op.save(tx)?;
        Ok(Some(doc))
    })?;
    let Some(doc) = gone else {
        return Ok(Reply::empty(204));
    };
    blocks
        .delete(doc["properties"]["uniqueId"].as_str().unwrap_or_default())
        .map_err(io)?;
    let sub = req.path.subscription.clone().unwrap_or_default();
    Ok(lro::with_retry_after(
        ctx,
        Reply::empty(202).header(
            "Location",
            lro::result_url(
                ctx,
                &sub,
                doc["location"].as_str().unwrap_or_default(),
                &op,
                &req.api_version,
            ),
        ),
    ))
}

/// A disk by id, as stored.
pub fn load(r: &impl recoverite_store::Reader, id: &str) -> Result<Option<Value>, ArmError> {
    Ok(resource::get(r, id)?.filter(|d| d["type"].as_str() == Some(DISK_TYPE)))
}

/// A VM's managed disk documents, OS disk first; `None` when the VM is missing.
pub fn of_vm(
    r: &impl recoverite_store::Reader,
    vm_id: &str,
) -> Result<Option<(Value, Vec<Value>)>, ArmError> {
    let Some(vm) = resource::get(r, vm_id)?.filter(|v| {
        v["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(crate::vms::VM_TYPE))
    }) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for id in crate::vms::disk_ids(&vm) {
        if let Some(d) = load(r, &id)? {
            out.push(d);
        }
    }
    Ok(Some((vm, out)))
}

/// Records a managed disk whose bytes another provider already wrote to the
/// block store under `unique_id` (Site Recovery's failover disks).
pub fn register(
    tx: &mut recoverite_store::WriteTx,
    rid: &str,
    location: &str,
    sku: &str,
    size_bytes: u64,
    unique_id: &str,
    source: &Value,
) -> Result<Value, ArmError> {
    let name = rid.rsplit('/').next().unwrap_or_default();
    check_name(name)?;
    let mut doc = json!({
        "id": rid, "name": name, "type": DISK_TYPE, "location": location, "tags": {},
        "sku": {"name": sku, "tier": tier(sku)},
        "properties": {
            "creationData": {"createOption": "Restore", "sourceResourceId": source["id"]},
            "diskSizeGB": size_bytes >> 30,
            "diskSizeBytes": size_bytes,
            "uniqueId": unique_id,
            "provisioningState": "Succeeded",
            "diskState": "Unattached",
            "timeCreated": recoverite_arm::time::now_string(),
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "networkAccessPolicy": "AllowAll",
            "publicNetworkAccess": "Enabled",
        }
    });
    if let Some(os) = source["properties"].get("osType") {
        doc["properties"]["osType"] = os.clone();
    }
    resource::put(tx, rid, &doc)?;
    Ok(doc)
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
