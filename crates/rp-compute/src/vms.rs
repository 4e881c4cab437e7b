//! Virtual machines and availability sets.

use crate::power::{self, PowerAction};
use recoverite_identity::identity_block::{self, CombinedStyle};
use serde_json::{json, Value};

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{id, paging, regions, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_blockstore::BlockStore;
use recoverite_store::WriteTx;

use crate::disks::{self, CreationData, Disk, NewDisk, DISK_TYPE};

pub const VM_TYPE: &str = "Microsoft.Compute/virtualMachines";
pub const SET_TYPE: &str = "Microsoft.Compute/availabilitySets";
use recoverite_rp_network::interface;
const VM_WRITE: &str = "Microsoft.Compute/virtualMachines/write";
/// Linked actions for what a VM's body references: its NICs are joined,
/// its existing disks must be readable by the caller.
const NIC_JOIN: &str = "Microsoft.Network/networkInterfaces/join/action";
pub const DISK_READ: &str = "Microsoft.Compute/disks/read";

fn name(req: &ArmRequest) -> String {
    req.resource_name().to_string()
}

fn bad(code: &str, msg: impl Into<String>) -> ArmError {
    ArmError::bad_request(code, msg)
}

/// Attaches a disk to a VM (refusing one attached elsewhere or in another region).
fn attach_disk(
    tx: &mut WriteTx,
    disk_id: &str,
    vm_id: &str,
    location: &str,
) -> Result<Disk, ArmError> {
    let mut d = disks::load(tx, disk_id)?
        .ok_or_else(|| bad("NotFound", format!("Disk {disk_id} was not found.")))?;
    if let Some(owner) = &d.managed_by {
        if id::key(owner) != id::key(vm_id) {
            return Err(ArmError::conflict(
                "OperationNotAllowed",
                format!("Disk {} is already attached to VM {owner}.", d.name),
            ));
        }
    }
    if d.location != location {
        return Err(bad(
            "BadRequest",
            format!(
                "Disk {} is in {} but the VM is in {location}; they must be in the same region.",
                d.name, d.location
            ),
        ));
    }
    d.attach(vm_id);
    d.save(tx)?;
    Ok(d)
}

fn detach_disk(tx: &mut WriteTx, disk_id: &str) -> Result<(), ArmError> {
    if let Some(mut d) = disks::load(tx, disk_id)? {
        d.detach();
        d.save(tx)?;
    }
    Ok(())
}

pub(crate) fn disk_ids(vm: &Value) -> Vec<String> {
    let sp = &vm["properties"]["storageProfile"];
    let mut out: Vec<String> = sp["osDisk"]["managedDisk"]["id"]
        .as_str()
        .map(str::to_string)
        .into_iter()
        .collect();
    out.extend(
        sp["dataDisks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["managedDisk"]["id"].as_str().map(str::to_string)),
    );
    out
}

fn nic_ids(vm: &Value) -> Vec<String> {
    vm["properties"]["networkProfile"]["networkInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["id"].as_str().map(str::to_string))
        .collect()
}

/// Every data disk has a LUN, and no two share one.
pub fn check_luns(data_disks: &[Value]) -> Result<Vec<u64>, ArmError> {
    let mut luns = Vec::new();
    for dd in data_disks {
        let lun = dd["lun"]
            .as_u64()
            .ok_or_else(|| bad("InvalidParameter", "Every data disk needs a lun."))?;
        if luns.contains(&lun) {
            return Err(bad(
                "InvalidParameter",
                format!("Two data disks use lun {lun}."),
            ));
        }
        luns.push(lun);
    }
    Ok(luns)
}

/// The network interfaces of a VM PUT, each checked and the caller's right
/// to join it taken.
fn checked_nics(
    ctx: &Ctx,
    tx: &mut WriteTx,
    props: &Value,
    vid: &str,
    location: &str,
) -> Result<Vec<Value>, ArmError> {
    let nics = props["networkProfile"]["networkInterfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if nics.is_empty() {
        return Err(bad("InvalidParameter", "A virtual machine needs at least one network interface in properties.networkProfile.networkInterfaces."));
    }
    for nic in &nics {
        let nid = nic["id"].as_str().unwrap_or_default();
        let nic = interface::load(tx, nid)?.ok_or_else(|| {
            bad(
                "NotFound",
                format!("Network interface {nid} was not found."),
            )
        })?;
        ctx.require_linked(VM_WRITE, vid, NIC_JOIN, nid)?;
        interface::check_attachable(&nic, vid, location)?;
    }
    Ok(nics)
}

/// A new empty managed disk written by the VM PUT itself.
fn new_disk(
    tx: &mut WriteTx,
    at: &DiskPlace,
    did: &str,
    gb: u64,
    sku: &str,
    create_option: &str,
    os_type: Option<String>,
) -> Result<(), ArmError> {
    let unique = uuid::Uuid::new_v4().to_string();
    at.blocks
        .create(&unique, gb << 30)
        .map_err(|e| ArmError::internal(e.to_string()))?;
    Disk::new(NewDisk {
        id: did,
        kind: DISK_TYPE,
        location: at.location,
        sku,
        size_bytes: gb << 30,
        unique_id: &unique,
        creation: CreationData {
            create_option: create_option.to_string(),
            source_resource_id: None,
        },
        os_type,
    })
    .save(tx)
}

/// What the VM PUT needs to know to place its disks.
struct DiskPlace<'a> {
    ctx: &'a Ctx,
    blocks: &'a BlockStore,
    rg_id: &'a str,
    vm_name: &'a str,
    vid: &'a str,
    location: &'a str,
}

/// The OS disk: attached by id, or made `FromImage` (kept when a re-sent PUT
/// finds the one it made before).
fn os_disk(tx: &mut WriteTx, at: &DiskPlace, sp: &mut Value) -> Result<(), ArmError> {
    let os_option = sp["osDisk"]["createOption"]
        .as_str()
        .unwrap_or("Attach")
        .to_string();
    let implicit = format!(
        "{}/providers/Microsoft.Compute/disks/{}_OsDisk_1",
        at.rg_id, at.vm_name
    );
    let os_id = match (sp["osDisk"]["managedDisk"]["id"].as_str().map(str::to_string), os_option.as_str()) {
        (Some(d), _) => d,
        (None, "FromImage") if implicit_disk_kept(tx, &implicit, at.vid)? => implicit,
        (None, "FromImage") => {
            let gb = sp["osDisk"]["diskSizeGB"].as_u64().unwrap_or(30);
            let os_type = sp["osDisk"]["osType"].as_str().unwrap_or("Linux");
            new_disk(tx, at, &implicit, gb, "Premium_LRS", "FromImage", Some(os_type.to_string()))?;
            implicit
        }
        _ => return Err(bad("InvalidParameter", "The OS disk needs managedDisk.id (createOption Attach) or an imageReference (createOption FromImage).")),
    };
    if os_option != "FromImage" {
        at.ctx.require_linked(VM_WRITE, at.vid, DISK_READ, &os_id)?;
    }
    let os = attach_disk(tx, &os_id, at.vid, at.location)?;
    sp["osDisk"]["managedDisk"] = json!({"id": os.id, "storageAccountType": os.sku.name});
    sp["osDisk"]["name"] = json!(os.name);
    sp["osDisk"]["diskSizeGB"] = json!(os.properties.disk_size_gb);
    sp["osDisk"]["createOption"] = json!(os_option);
    Ok(())
}

/// The data disks: attached by id, or created `Empty` (kept when a re-sent
/// PUT finds the one it made before).
fn data_disks(tx: &mut WriteTx, at: &DiskPlace, given: &[Value]) -> Result<Vec<Value>, ArmError> {
    let luns = check_luns(given)?;
    let mut out = Vec::new();
    for (dd, lun) in given.iter().zip(luns) {
        let option = dd["createOption"].as_str().unwrap_or("Attach");
        let did = match (dd["managedDisk"]["id"].as_str(), option) {
            (Some(d), _) => {
                at.ctx.require_linked(VM_WRITE, at.vid, DISK_READ, d)?;
                d.to_string()
            }
            (None, "Empty") => {
                let disk_name = dd["name"].as_str().map(str::to_string).unwrap_or_else(|| format!("{}_DataDisk_{lun}", at.vm_name));
                disks::check_name(&disk_name)?;
                let did = format!("{}/providers/Microsoft.Compute/disks/{disk_name}", at.rg_id);
                let gb = dd["diskSizeGB"].as_u64().ok_or_else(|| bad("InvalidParameter", "An empty data disk needs diskSizeGB."))?;
                disks::check_size(gb)?;
                if !implicit_disk_kept(tx, &did, at.vid)? {
                    let sku = dd["managedDisk"]["storageAccountType"].as_str().unwrap_or("Standard_LRS");
                    new_disk(tx, at, &did, gb, sku, "Empty", None)?;
                }
                did
            }
            _ => return Err(bad("InvalidParameter", format!("Data disk at lun {lun} needs managedDisk.id (Attach) or createOption Empty with diskSizeGB."))),
        };
        let d = attach_disk(tx, &did, at.vid, at.location)?;
        out.push(json!({"lun": lun, "name": d.name, "createOption": option,
                        "caching": dd["caching"].as_str().unwrap_or("None"), "diskSizeGB": d.properties.disk_size_gb,
                        "managedDisk": {"id": d.id, "storageAccountType": d.sku.name}}));
    }
    Ok(out)
}

/// Disks and NICs a re-written VM no longer lists are released; the ones it
/// lists are its own.
fn release_and_claim(
    tx: &mut WriteTx,
    existing: Option<&Value>,
    sp: &Value,
    nics: &[Value],
    vid: &str,
) -> Result<(), ArmError> {
    if let Some(old) = existing {
        let keep_disks = disk_ids(&json!({"properties": {"storageProfile": sp}}));
        for d in disk_ids(old) {
            if !keep_disks.iter().any(|k| id::key(k) == id::key(&d)) {
                detach_disk(tx, &d)?;
            }
        }
        for nid in nic_ids(old) {
            if !nics
                .iter()
                .any(|x| x["id"].as_str().map(id::key) == Some(id::key(&nid)))
            {
                interface::set_virtual_machine(tx, &nid, None)?;
            }
        }
    }
    for nic in nics {
        interface::set_virtual_machine(tx, nic["id"].as_str().unwrap_or_default(), Some(vid))?;
    }
    Ok(())
}

/// PUT a virtual machine: NICs and disks checked and claimed, disks made
/// where the VM asks for them, its identities, one transaction with the
/// operation record; answered as a long-running operation.
pub fn put(ctx: &Ctx, req: &ArmRequest, blocks: &BlockStore) -> Result<Reply, ArmError> {
    let n = name(req);
    disks::check_name(&n)?;
    let body = req.body.clone().unwrap_or(json!({}));
    if !body.is_object() {
        return Err(ArmError::invalid_content("the body must be a JSON object"));
    }
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let rid = req.path.id();
    let rg_id = req.path.resource_group_id().unwrap_or_default();
    let op = OperationRecord::new(ctx, "Microsoft.Compute", &rid).succeed(None);
    let (created, doc) = ctx.store().write(|tx| {
        let existing = resource::get(tx, &rid)?;
        let location = match (body["location"].as_str(), &existing) {
            (Some(l), _) => regions::require(l, VM_TYPE)?.name.to_string(),
            (None, Some(e)) => e["location"].as_str().unwrap_or_default().to_string(),
            (None, None) => return Err(ArmError::bad_request("LocationRequired", "The location property is required for a virtual machine.")),
        };
        let vid = existing.as_ref().and_then(|e| e["id"].as_str().map(str::to_string)).unwrap_or(rid.clone());
        let size = props["hardwareProfile"]["vmSize"].as_str().unwrap_or("Standard_D2s_v3").to_string();
        let nics = checked_nics(ctx, tx, &props, &vid, &location)?;
        let at = DiskPlace { ctx, blocks, rg_id: &rg_id, vm_name: &n, vid: &vid, location: &location };
        let mut sp = props["storageProfile"].clone();
        os_disk(tx, &at, &mut sp)?;
        sp["dataDisks"] = Value::Array(data_disks(tx, &at, &sp["dataDisks"].as_array().cloned().unwrap_or_default())?);
        release_and_claim(tx, existing.as_ref(), &sp, &nics, &vid)?;
        let set = props["availabilitySet"]["id"].as_str().map(str::to_string);
        if let Some(s) = &set {
            let sdoc = resource::get(tx, s)?.filter(|d| d["type"].as_str() == Some(SET_TYPE)).ok_or_else(|| bad("NotFound", format!("Availability set {s} was not found.")))?;
            if sdoc["location"].as_str() != Some(location.as_str()) {
                return Err(bad("InvalidParameter", "The availability set must be in the VM's region."));
            }
        }
        let mut doc = json!({
            "id": vid,
            "name": existing.as_ref().and_then(|e| e["name"].as_str()).unwrap_or(&n),
            "type": VM_TYPE,
            "location": location,
            "tags": body.get("tags").cloned().or_else(|| existing.as_ref().and_then(|e| e.get("tags").cloned())).unwrap_or(json!({})),
            "properties": {
                "vmId": existing.as_ref().and_then(|e| e["properties"]["vmId"].as_str().map(str::to_string)).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                "provisioningState": "Succeeded",
                "hardwareProfile": {"vmSize": size},
                "storageProfile": sp,
                "networkProfile": {"networkInterfaces": nics},
                "timeCreated": existing.as_ref().map(|e| e["properties"]["timeCreated"].clone()).unwrap_or_else(|| json!(recoverite_arm::time::now_string())),
            }
        });
        if let Some(s) = set {
            doc["properties"]["availabilitySet"] = json!({"id": s});
        }
        // The VM's own identities, which it uses through IMDS.
        identity_block::require_assign(ctx, VM_WRITE, &vid, body.get("identity"))?;
        let identity = identity_block::apply(
            tx,
            &ctx.env().tenant_id,
            &vid,
            body.get("identity").or(Some(&Value::Null)),
            existing.as_ref().and_then(|e| e.get("identity")),
            CombinedStyle::Spaced,
        )?;
        if let Some(i) = identity {
            doc["identity"] = i;
        }
        if let Some(os_profile) = props.get("osProfile") {
            let mut p = os_profile.clone();
            p.as_object_mut().map(|o| o.remove("adminPassword"));
            doc["properties"]["osProfile"] = p;
        }
        resource::put(tx, &vid, &doc)?;
        // The operation's record commits with the change it reports.
        op.save(tx)?;
        Ok((existing.is_none(), doc))
    })?;
    let sub = req.path.subscription.clone().unwrap_or_default();
    let url = lro::status_url(
        ctx,
        &sub,
        doc["location"].as_str().unwrap_or_default(),
        &op,
        &req.api_version,
    );
    let reply = if created {
        Reply::created(doc)
    } else {
        Reply::ok(doc)
    };
    Ok(lro::with_retry_after(
        ctx,
        reply.header("Azure-AsyncOperation", url),
    ))
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let mut doc = ctx
        .store()
        .view(|r| resource::get(r, &req.path.id()))?
        .ok_or_else(|| {
            ArmError::resource_not_found(VM_TYPE, &name(req), req.path.resource_group.as_deref())
        })?;
    if req
        .query_get("$expand")
        .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"))
    {
        let state = ctx.store().view(|r| power::get(r, &req.path.id()))?;
        doc["properties"]["instanceView"] = power::instance_view(&doc, state);
    }
    Ok(Reply::ok(doc))
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let items = ctx
        .store()
        .view(|r| resource::list_of_type(r, &req.path.scope(), VM_TYPE))?;
    paging::page_visible(ctx, req, items)
}

/// Deleting a VM keeps its disks and NICs (Azure's default) and releases them.
pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    let op = OperationRecord::new(ctx, "Microsoft.Compute", &rid).succeed(None);
    let gone = ctx.store().write(|tx| {
        let Some(doc) = resource::get(tx, &rid)? else {
            return Ok::<_, ArmError>(None);
        };
        for d in disk_ids(&doc) {
            detach_disk(tx, &d)?;
        }
        for nid in nic_ids(&doc) {
            interface::set_virtual_machine(tx, &nid, None)?;
        }
        power::forget(tx, &rid)?;
        resource::delete_tree(tx, &rid)?;
        ctx.cascade_delete(tx, &rid)?;
        op.save(tx)?;
        Ok(Some(doc))
    })?;
    let Some(doc) = gone else {
        return Ok(Reply::empty(204));
    };
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

/// PATCH: tags and top-level properties merged into the VM, then written as
/// a PUT would (200 only, as the SDK expects for an update).
pub fn patch(ctx: &Ctx, req: &ArmRequest, blocks: &BlockStore) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    let current = ctx
        .store()
        .view(|r| resource::get(r, &rid))?
        .filter(|d| d["type"].as_str() == Some(VM_TYPE))
        .ok_or_else(|| {
            ArmError::resource_not_found(VM_TYPE, &name(req), req.path.resource_group.as_deref())
        })?;
    let patch = req.body.clone().unwrap_or(json!({}));
    let mut merged = json!({"location": current["location"], "tags": patch.get("tags").cloned().unwrap_or(current["tags"].clone()), "properties": current["properties"].clone()});
    if let Some(p) = patch["properties"].as_object() {
        for (k, v) in p {
            merged["properties"][k] = v.clone();
        }
    }
    let mut r2 = req.clone();
    r2.body = Some(merged);
    let mut reply = put(ctx, &r2, blocks)?;
    reply.status = 200;
    Ok(reply)
}

fn vm_of(ctx: &Ctx, req: &ArmRequest) -> Result<Value, ArmError> {
    let vid = req.path.prefix(req.path.segments.len() - 1);
    ctx.store()
        .view(|r| resource::get(r, &vid))?
        .filter(|d| d["type"].as_str() == Some(VM_TYPE))
        .ok_or_else(|| {
            ArmError::resource_not_found(VM_TYPE, &name(req), req.path.resource_group.as_deref())
        })
}

/// `POST …/virtualMachines/{vm}/start|powerOff|restart|deallocate`: a
/// long-running operation whose state change is written with its record.
pub fn power(ctx: &Ctx, req: &ArmRequest, action: PowerAction) -> Result<Reply, ArmError> {
    let vm = vm_of(ctx, req)?;
    let vid = vm["id"].as_str().unwrap_or_default().to_string();
    let op = OperationRecord::new(ctx, "Microsoft.Compute", &vid).succeed(None);
    ctx.store().write(|tx| {
        let now = power::get(tx, &vid)?;
        power::set(tx, &vid, power::transition(now, action)?)?;
        op.save(tx)
    })?;
    let sub = req.path.subscription.clone().unwrap_or_default();
    let loc = vm["location"].as_str().unwrap_or_default();
    Ok(lro::with_retry_after(
        ctx,
        Reply::empty(202)
            .header(
                "Location",
                lro::result_url(ctx, &sub, loc, &op, &req.api_version),
            )
            .header(
                "Azure-AsyncOperation",
                lro::status_url(ctx, &sub, loc, &op, &req.api_version),
            ),
    ))
}

/// `GET …/virtualMachines/{vm}/instanceView`.
pub fn instance_view(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vm = vm_of(ctx, req)?;
    let state = ctx
        .store()
        .view(|r| power::get(r, vm["id"].as_str().unwrap_or_default()))?;
    Ok(Reply::ok(power::instance_view(&vm, state)))
}

/// A disk the VM creates itself (`Empty` data disks, `FromImage` OS disks)
/// may already exist: a re-sent PUT of the same VM (Terraform sends one on
/// every apply) keeps it and its bytes; one attached to another VM, or left
/// unattached, is not taken over (attach it with `createOption: Attach`).
/// Returns whether the existing disk is kept.
fn implicit_disk_kept(
    r: &impl recoverite_store::Reader,
    did: &str,
    vid: &str,
) -> Result<bool, ArmError> {
    let Some(d) = disks::load(r, did)? else {
        return Ok(false);
    };
    match &d.managed_by {
        Some(owner) if id::key(owner) == id::key(vid) => Ok(true),
        Some(owner) => Err(ArmError::conflict(
            "OperationNotAllowed",
            format!("Disk {} is attached to VM {owner}; a VM cannot create a disk of that name.", d.name),
        )),
        None => Err(ArmError::conflict(
            "OperationNotAllowed",
            format!("Disk {} already exists; attach it with createOption Attach and managedDisk.id instead of creating it.", d.name),
        )),
    }
}

/// `attachDetachDataDisks`: the VM's data disks after detaching
/// `dataDisksToDetach` and attaching `dataDisksToAttach` ("at least one of
/// them"), each attached disk at its `lun` or the lowest free one. A disk to
/// detach must be attached, a disk to attach must not be already, and two
/// disks never share a LUN.
pub fn data_disks_after(
    current: &[Value],
    attach: &[Value],
    detach: &[Value],
) -> Result<Vec<Value>, ArmError> {
    if attach.is_empty() && detach.is_empty() {
        return Err(ArmError::invalid_parameter(
            "dataDisksToAttach",
            "Give at least one disk in dataDisksToAttach or dataDisksToDetach.",
        ));
    }
    let disk_id = |d: &Value, key: &str| -> Result<String, ArmError> {
        d["diskId"].as_str().map(str::to_string).ok_or_else(|| {
            ArmError::invalid_parameter(
                &format!("{key}.diskId"),
                "diskId is required: the managed disk's resource id.",
            )
        })
    };
    let id_of = |d: &Value| id::key(d["managedDisk"]["id"].as_str().unwrap_or_default());
    let mut disks: Vec<Value> = current.to_vec();
    for d in detach {
        let did = disk_id(d, "dataDisksToDetach")?;
        let before = disks.len();
        disks.retain(|x| id_of(x) != id::key(&did));
        if disks.len() == before {
            return Err(ArmError::invalid_parameter(
                "dataDisksToDetach",
                format!("Disk {did} is not attached to this VM as a data disk."),
            ));
        }
    }
    for d in attach {
        let did = disk_id(d, "dataDisksToAttach")?;
        if disks.iter().any(|x| id_of(x) == id::key(&did)) {
            return Err(ArmError::conflict(
                "OperationNotAllowed",
                format!("Disk {did} is already attached to this VM."),
            ));
        }
        let used: Vec<i64> = disks.iter().filter_map(|x| x["lun"].as_i64()).collect();
        let lun = match d["lun"].as_i64() {
            Some(l) if used.contains(&l) => {
                return Err(ArmError::invalid_parameter(
                    "dataDisksToAttach.lun",
                    format!("LUN {l} is already used by another data disk of this VM."),
                ))
            }
            Some(l) if !(0..=63).contains(&l) => {
                return Err(ArmError::invalid_parameter(
                    "dataDisksToAttach.lun",
                    "lun must be from 0 to 63.",
                ))
            }
            Some(l) => l,
            None => (0..64).find(|l| !used.contains(l)).ok_or_else(|| {
                ArmError::invalid_parameter("dataDisksToAttach", "Every LUN (0-63) is in use.")
            })?,
        };
        let name = did.rsplit('/').next().unwrap_or_default();
        let mut entry = json!({"lun": lun, "name": name, "createOption": "Attach",
            "caching": d.get("caching").cloned().unwrap_or(json!("None")),
            "deleteOption": d.get("deleteOption").cloned().unwrap_or(json!("Detach")),
            "managedDisk": {"id": did}});
        if let Some(w) = d.get("writeAcceleratorEnabled") {
            entry["writeAcceleratorEnabled"] = w.clone();
        }
        disks.push(entry);
    }
    Ok(disks)
}

/// POST `…/virtualMachines/{vm}/attachDetachDataDisks`: the VM written with
/// its new data disks (as a PUT would, so every disk rule applies); the
/// answer is its storage profile.
pub fn attach_detach(ctx: &Ctx, req: &ArmRequest, blocks: &BlockStore) -> Result<Reply, ArmError> {
    let vm = vm_of(ctx, req)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let list = |k: &str| body[k].as_array().cloned().unwrap_or_default();
    let current = vm["properties"]["storageProfile"]["dataDisks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let disks = data_disks_after(
        &current,
        &list("dataDisksToAttach"),
        &list("dataDisksToDetach"),
    )?;
    let mut props = vm["properties"].clone();
    props["storageProfile"]["dataDisks"] = json!(disks);
    let mut put_req = req.clone();
    put_req.method = http::Method::PUT;
    put_req.path = recoverite_arm::id::ResourcePath::parse(vm["id"].as_str().unwrap_or_default())?;
    put_req.body =
        Some(json!({"location": vm["location"], "tags": vm["tags"], "properties": props}));
    let written = put(ctx, &put_req, blocks)?;
    let profile = written
        .body
        .as_ref()
        .map(|b| b["properties"]["storageProfile"].clone())
        .unwrap_or(Value::Null);
    Ok(Reply::ok(profile))
}

#[cfg(test)]
mod data_disk_tests {
    use super::*;

    #[test]
    fn every_data_disk_has_its_own_lun() {
        assert_eq!(
            check_luns(&[json!({"lun": 0}), json!({"lun": 3})]).unwrap(),
            vec![0, 3]
        );
        assert!(check_luns(&[json!({"lun": 1}), json!({"lun": 1})]).is_err());
        assert!(check_luns(&[json!({"name": "x"})]).is_err());
    }

    fn disk(lun: i64, id: &str) -> Value {
        json!({"lun": lun, "managedDisk": {"id": id}})
    }

    #[test]
    fn attach_takes_the_lowest_free_lun_and_detach_needs_an_attached_disk() {
        let cur = vec![disk(0, "/d/a"), disk(2, "/d/b")];
        let out = data_disks_after(&cur, &[json!({"diskId": "/d/c"})], &[]).unwrap();
        assert_eq!(out[2]["lun"], 1);
        assert_eq!(out[2]["createOption"], "Attach");
        let out = data_disks_after(&cur, &[], &[json!({"diskId": "/D/A"})]).unwrap();
        assert_eq!(out.len(), 1);
        assert!(data_disks_after(&cur, &[], &[json!({"diskId": "/d/x"})]).is_err());
        assert!(data_disks_after(&cur, &[], &[]).is_err());
    }

    #[test]
    fn a_lun_or_a_disk_is_never_attached_twice() {
        let cur = vec![disk(0, "/d/a")];
        assert!(data_disks_after(&cur, &[json!({"diskId": "/d/b", "lun": 0})], &[]).is_err());
        assert!(data_disks_after(&cur, &[json!({"diskId": "/d/a"})], &[]).is_err());
        assert!(data_disks_after(&cur, &[json!({"diskId": "/d/b", "lun": 64})], &[]).is_err());
        // Detaching first frees the LUN for the disk attached in the same call.
        let out = data_disks_after(
            &cur,
            &[json!({"diskId": "/d/b", "lun": 0})],
            &[json!({"diskId": "/d/a"})],
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["managedDisk"]["id"], "/d/b");
    }
}
