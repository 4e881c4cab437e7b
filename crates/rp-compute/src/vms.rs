//! Virtual machines and availability sets.

use crate::power::{self, PowerAction};
use recoverite_identity::identity_block::{self, CombinedStyle};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{id, paging, regions, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_blockstore::BlockStore;
use recoverite_store::{Reader, WriteTx};

use crate::disks::{self, CreationData, Disk, NewDisk, DISK_TYPE};

pub use crate::machine::VM_TYPE;
use crate::machine::{self as machine, VirtualMachine};
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

/// Every data disk has a LUN, and no two share one.
pub fn check_luns(luns: &[Option<u64>]) -> Result<Vec<u64>, ArmError> {
    let mut out = Vec::new();
    for lun in luns {
        let lun = lun.ok_or_else(|| bad("InvalidParameter", "Every data disk needs a lun."))?;
        if out.contains(&lun) {
            return Err(bad(
                "InvalidParameter",
                format!("Two data disks use lun {lun}."),
            ));
        }
        out.push(lun);
    }
    Ok(out)
}

/// A disk's `managedDisk` as a request gives it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GivenManagedDisk {
    id: Option<String>,
    storage_account_type: Option<String>,
}

/// The OS disk as a request gives it; what recoverite only shows back
/// (caching, delete option, …) is kept as given.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GivenOsDisk {
    create_option: Option<String>,
    #[serde(default)]
    managed_disk: GivenManagedDisk,
    #[serde(rename = "diskSizeGB")]
    disk_size_gb: Option<u64>,
    os_type: Option<String>,
    /// The disk's own name wins over the one given.
    #[serde(rename = "name")]
    _name: Option<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// A data disk as a request gives it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GivenDataDisk {
    lun: Option<u64>,
    name: Option<String>,
    create_option: Option<String>,
    #[serde(default)]
    managed_disk: GivenManagedDisk,
    #[serde(rename = "diskSizeGB")]
    disk_size_gb: Option<u64>,
    caching: Option<String>,
}

/// `properties.storageProfile` as a request gives it (an image reference
/// and the like are kept as given).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GivenStorageProfile {
    #[serde(default)]
    os_disk: GivenOsDisk,
    #[serde(default)]
    data_disks: Vec<GivenDataDisk>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

fn disk_ref(d: &Disk) -> machine::ManagedDiskRef {
    machine::ManagedDiskRef {
        id: d.id.clone(),
        storage_account_type: Some(d.sku.name.clone()),
        given: Map::new(),
    }
}

/// The network interfaces of a VM PUT, each checked and the caller's right
/// to join it taken.
fn checked_nics(
    ctx: &Ctx,
    tx: &mut WriteTx,
    props: &Value,
    vid: &str,
    location: &str,
) -> Result<Vec<machine::NicRef>, ArmError> {
    let nics: Vec<machine::NicRef> = match &props["networkProfile"]["networkInterfaces"] {
        Value::Null => Vec::new(),
        v => given(v.clone(), "properties.networkProfile.networkInterfaces")?,
    };
    if nics.is_empty() {
        return Err(bad("InvalidParameter", "A virtual machine needs at least one network interface in properties.networkProfile.networkInterfaces."));
    }
    for n in &nics {
        let nic = interface::load(tx, &n.id)?.ok_or_else(|| {
            bad(
                "NotFound",
                format!("Network interface {} was not found.", n.id),
            )
        })?;
        ctx.require_linked(VM_WRITE, vid, NIC_JOIN, &n.id)?;
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
fn os_disk(
    tx: &mut WriteTx,
    at: &DiskPlace,
    given: GivenOsDisk,
) -> Result<machine::OsDisk, ArmError> {
    let os_option = given.create_option.unwrap_or_else(|| "Attach".into());
    let implicit = format!(
        "{}/providers/Microsoft.Compute/disks/{}_OsDisk_1",
        at.rg_id, at.vm_name
    );
    let os_id = match (given.managed_disk.id, os_option.as_str()) {
        (Some(d), _) => d,
        (None, "FromImage") if implicit_disk_kept(tx, &implicit, at.vid)? => implicit,
        (None, "FromImage") => {
            let gb = given.disk_size_gb.unwrap_or(30);
            let os_type = given.os_type.clone().unwrap_or_else(|| "Linux".into());
            new_disk(tx, at, &implicit, gb, "Premium_LRS", "FromImage", Some(os_type))?;
            implicit
        }
        _ => return Err(bad("InvalidParameter", "The OS disk needs managedDisk.id (createOption Attach) or an imageReference (createOption FromImage).")),
    };
    if os_option != "FromImage" {
        at.ctx.require_linked(VM_WRITE, at.vid, DISK_READ, &os_id)?;
    }
    let os = attach_disk(tx, &os_id, at.vid, at.location)?;
    Ok(machine::OsDisk {
        os_type: given.os_type,
        name: Some(os.name.clone()),
        create_option: os_option,
        disk_size_gb: Some(os.properties.disk_size_gb),
        managed_disk: disk_ref(&os),
        given: given.rest,
    })
}

/// The data disks: attached by id, or created `Empty` (kept when a re-sent
/// PUT finds the one it made before).
fn data_disks(
    tx: &mut WriteTx,
    at: &DiskPlace,
    given: Vec<GivenDataDisk>,
) -> Result<Vec<machine::DataDisk>, ArmError> {
    let luns = check_luns(&given.iter().map(|d| d.lun).collect::<Vec<_>>())?;
    let mut out = Vec::new();
    for (dd, lun) in given.into_iter().zip(luns) {
        let option = dd.create_option.unwrap_or_else(|| "Attach".into());
        let did = match (dd.managed_disk.id, option.as_str()) {
            (Some(d), _) => {
                at.ctx.require_linked(VM_WRITE, at.vid, DISK_READ, &d)?;
                d
            }
            (None, "Empty") => {
                let disk_name = dd.name.unwrap_or_else(|| format!("{}_DataDisk_{lun}", at.vm_name));
                disks::check_name(&disk_name)?;
                let did = format!("{}/providers/Microsoft.Compute/disks/{disk_name}", at.rg_id);
                let gb = dd.disk_size_gb.ok_or_else(|| bad("InvalidParameter", "An empty data disk needs diskSizeGB."))?;
                disks::check_size(gb)?;
                if !implicit_disk_kept(tx, &did, at.vid)? {
                    let sku = dd.managed_disk.storage_account_type.as_deref().unwrap_or("Standard_LRS");
                    new_disk(tx, at, &did, gb, sku, "Empty", None)?;
                }
                did
            }
            _ => return Err(bad("InvalidParameter", format!("Data disk at lun {lun} needs managedDisk.id (Attach) or createOption Empty with diskSizeGB."))),
        };
        let d = attach_disk(tx, &did, at.vid, at.location)?;
        let lun = u32::try_from(lun)
            .map_err(|_| bad("InvalidParameter", format!("lun {lun} is out of range.")))?;
        let mut shown = Map::new();
        shown.insert(
            "caching".into(),
            json!(dd.caching.unwrap_or_else(|| "None".into())),
        );
        out.push(machine::DataDisk {
            lun,
            name: Some(d.name.clone()),
            create_option: option,
            disk_size_gb: Some(d.properties.disk_size_gb),
            managed_disk: disk_ref(&d),
            given: shown,
        });
    }
    Ok(out)
}

/// Disks and NICs a re-written VM no longer lists are released; the ones it
/// lists are its own.
fn release_and_claim(
    tx: &mut WriteTx,
    existing: Option<&VirtualMachine>,
    kept: &VirtualMachine,
) -> Result<(), ArmError> {
    if let Some(old) = existing {
        for d in old.disk_ids() {
            if !kept.has_disk(&d) {
                detach_disk(tx, &d)?;
            }
        }
        let now: Vec<String> = kept.nic_ids().iter().map(|n| id::key(n)).collect();
        for nid in old.nic_ids() {
            if !now.contains(&id::key(&nid)) {
                interface::set_virtual_machine(tx, &nid, None)?;
            }
        }
    }
    for nid in kept.nic_ids() {
        interface::set_virtual_machine(tx, &nid, Some(&kept.id))?;
    }
    Ok(())
}

/// "A VM can be added to an availability set only when it is created, in
/// the set's region": the set must exist (`found` is its region) and be in
/// the VM's.
pub fn check_availability_set(
    set_id: &str,
    found: Option<&str>,
    vm_location: &str,
) -> Result<(), ArmError> {
    match found {
        None => Err(bad(
            "NotFound",
            format!("Availability set {set_id} was not found."),
        )),
        Some(l) if !l.eq_ignore_ascii_case(vm_location) => Err(bad(
            "InvalidParameter",
            "The availability set must be in the VM's region.",
        )),
        Some(_) => Ok(()),
    }
}

/// A part of a VM PUT's body, read typed (a field of the wrong type is the
/// caller's error).
fn given<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, ArmError> {
    serde_json::from_value(v).map_err(|e| ArmError::invalid_content(format!("{what}: {e}")))
}

/// PUT a virtual machine: NICs and disks checked and claimed, disks made
/// where the VM asks for them, its identities, one transaction with the
/// operation record; answered as a long-running operation.
pub fn put(ctx: &Ctx, req: &ArmRequest, blocks: &BlockStore) -> Result<Reply, ArmError> {
    write(ctx, req, blocks, Identity::AsGiven)
}

/// "The location property is required for a virtual machine."
fn vm_location(given: Option<&str>, existing: Option<&str>) -> Result<String, ArmError> {
    match (given, existing) {
        (Some(l), _) => Ok(regions::require(l, VM_TYPE)?.name.to_string()),
        (None, Some(e)) => Ok(e.to_string()),
        (None, None) => Err(ArmError::bad_request(
            "LocationRequired",
            "The location property is required for a virtual machine.",
        )),
    }
}

/// The storage profile as stored: the OS disk and each data disk made or
/// attached (`DiskPlace` says where new ones go).
fn storage_profile(
    tx: &mut WriteTx,
    at: &DiskPlace,
    props: &Value,
) -> Result<machine::StorageProfile, ArmError> {
    let given: GivenStorageProfile = match &props["storageProfile"] {
        Value::Null => GivenStorageProfile::default(),
        v => self::given(v.clone(), "properties.storageProfile")?,
    };
    Ok(machine::StorageProfile {
        os_disk: os_disk(tx, at, given.os_disk)?,
        data_disks: data_disks(tx, at, given.data_disks)?,
        given: given.rest,
    })
}

/// The availability set the VM joins, checked (`check_availability_set`).
fn availability_set(
    r: &impl Reader,
    props: &Value,
    location: &str,
) -> Result<Option<String>, ArmError> {
    let Some(set) = props["availabilitySet"]["id"].as_str() else {
        return Ok(None);
    };
    let found = resource::get(r, set)?
        .filter(|d| d["type"].as_str() == Some(SET_TYPE))
        .map(|d| d["location"].as_str().unwrap_or_default().to_string());
    check_availability_set(set, found.as_deref(), location)?;
    Ok(Some(set.to_string()))
}

/// What a write does with the VM's identities when the body names none: a
/// PUT replaces the VM (no block, no identity), an update keeps them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Identity {
    AsGiven,
    KeepUnlessGiven,
}

/// The VM's own identities, which it uses through IMDS: what the body
/// gives (assigning one takes the caller's right to), or on an update that
/// names none, what the VM had.
fn vm_identity(
    ctx: &Ctx,
    tx: &mut WriteTx,
    vid: &str,
    body: &Value,
    rule: Identity,
    existing: Option<&VirtualMachine>,
) -> Result<Option<Value>, ArmError> {
    identity_block::require_assign(ctx, VM_WRITE, vid, body.get("identity"))?;
    identity_block::apply(
        tx,
        &ctx.env().tenant_id,
        vid,
        body.get("identity").or(match rule {
            Identity::AsGiven => Some(&Value::Null),
            Identity::KeepUnlessGiven => None,
        }),
        existing.and_then(|e| e.identity.as_ref()),
        CombinedStyle::Spaced,
    )
}

/// "The admin password is never stored or shown back."
fn without_password(os_profile: &Value) -> Value {
    let mut p = os_profile.clone();
    if let Some(o) = p.as_object_mut() {
        o.remove("adminPassword");
    }
    p
}

fn write(
    ctx: &Ctx,
    req: &ArmRequest,
    blocks: &BlockStore,
    identity_rule: Identity,
) -> Result<Reply, ArmError> {
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
        let existing = machine::load(tx, &rid)?;
        let location = vm_location(
            body["location"].as_str(),
            existing.as_ref().map(|e| e.location.as_str()),
        )?;
        let vid = existing
            .as_ref()
            .map(|e| e.id.clone())
            .unwrap_or(rid.clone());
        let size = props["hardwareProfile"]["vmSize"]
            .as_str()
            .unwrap_or("Standard_D2s_v3")
            .to_string();
        let nics = checked_nics(ctx, tx, &props, &vid, &location)?;
        let at = DiskPlace {
            ctx,
            blocks,
            rg_id: &rg_id,
            vm_name: &n,
            vid: &vid,
            location: &location,
        };
        let sp = storage_profile(tx, &at, &props)?;
        let set = availability_set(tx, &props, &location)?;
        let identity = vm_identity(ctx, tx, &vid, &body, identity_rule, existing.as_ref())?;
        let os_profile = props.get("osProfile").map(without_password);
        let vm = VirtualMachine {
            id: vid.clone(),
            name: existing
                .as_ref()
                .map(|e| e.name.clone())
                .unwrap_or(n.clone()),
            kind: VM_TYPE.into(),
            location,
            tags: match body.get("tags") {
                Some(t) => resource::validate_tags(Some(t))?,
                None => existing
                    .as_ref()
                    .map(|e| e.tags.clone())
                    .unwrap_or_default(),
            },
            identity,
            properties: machine::VmProperties {
                vm_id: existing
                    .as_ref()
                    .map(|e| e.properties.vm_id.clone())
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                provisioning_state: "Succeeded".into(),
                hardware_profile: machine::HardwareProfile { vm_size: size },
                storage_profile: sp,
                network_profile: machine::NetworkProfile {
                    network_interfaces: nics,
                },
                time_created: existing
                    .as_ref()
                    .map(|e| e.properties.time_created.clone())
                    .unwrap_or_else(recoverite_arm::time::now_string),
                availability_set: set.map(|id| machine::Ref { id }),
                os_profile,
            },
        };
        release_and_claim(tx, existing.as_ref(), &vm)?;
        vm.save(tx)?;
        // The operation's record commits with the change it reports.
        op.save(tx)?;
        Ok::<_, ArmError>((existing.is_none(), vm.to_value()?))
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
    let vm = ctx
        .store()
        .view(|r| machine::load(r, &req.path.id()))?
        .ok_or_else(|| {
            ArmError::resource_not_found(VM_TYPE, &name(req), req.path.resource_group.as_deref())
        })?;
    let mut doc = vm.to_value()?;
    if req
        .query_get("$expand")
        .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"))
    {
        let state = ctx.store().view(|r| power::get(r, &vm.id))?;
        doc["properties"]["instanceView"] = power::instance_view(&vm, state);
    }
    Ok(Reply::ok(doc))
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        machine::list(r, &req.path.scope())?
            .iter()
            .map(VirtualMachine::to_value)
            .collect::<Result<Vec<_>, ArmError>>()
    })?;
    paging::page_visible(ctx, req, items)
}

/// Deleting a VM keeps its disks and NICs (Azure's default) and releases them.
pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    let op = OperationRecord::new(ctx, "Microsoft.Compute", &rid).succeed(None);
    let gone = ctx.store().write(|tx| {
        let Some(vm) = machine::load(tx, &rid)? else {
            return Ok::<_, ArmError>(None);
        };
        for d in vm.disk_ids() {
            detach_disk(tx, &d)?;
        }
        for nid in vm.nic_ids() {
            interface::set_virtual_machine(tx, &nid, None)?;
        }
        power::forget(tx, &rid)?;
        resource::delete_tree(tx, &rid)?;
        ctx.cascade_delete(tx, &rid)?;
        op.save(tx)?;
        Ok(Some(vm))
    })?;
    let Some(vm) = gone else {
        return Ok(Reply::empty(204));
    };
    let sub = req.path.subscription.clone().unwrap_or_default();
    Ok(lro::with_retry_after(
        ctx,
        Reply::empty(202).header(
            "Location",
            lro::result_url(ctx, &sub, &vm.location, &op, &req.api_version),
        ),
    ))
}

/// PATCH: tags and top-level properties merged into the VM, then written as
/// a PUT would (200 only, as the SDK expects for an update).
pub fn patch(ctx: &Ctx, req: &ArmRequest, blocks: &BlockStore) -> Result<Reply, ArmError> {
    let current = vm_of(ctx, &req.path.id(), req)?.to_value()?;
    let patch = req.body.clone().unwrap_or(json!({}));
    let mut merged = json!({"location": current["location"], "tags": patch.get("tags").cloned().unwrap_or(current["tags"].clone()), "properties": current["properties"].clone()});
    if let Some(p) = patch["properties"].as_object() {
        for (k, v) in p {
            merged["properties"][k] = v.clone();
        }
    }
    if let Some(i) = patch.get("identity") {
        merged["identity"] = i.clone();
    }
    let mut r2 = req.clone();
    r2.body = Some(merged);
    let mut reply = write(ctx, &r2, blocks, Identity::KeepUnlessGiven)?;
    reply.status = 200;
    Ok(reply)
}

/// The VM `vid` a request acts on (404 naming it).
fn vm_of(ctx: &Ctx, vid: &str, req: &ArmRequest) -> Result<VirtualMachine, ArmError> {
    ctx.store().view(|r| machine::load(r, vid))?.ok_or_else(|| {
        ArmError::resource_not_found(VM_TYPE, &name(req), req.path.resource_group.as_deref())
    })
}

/// The VM under an action's path (`…/virtualMachines/{vm}/{action}`).
fn vm_of_action(ctx: &Ctx, req: &ArmRequest) -> Result<VirtualMachine, ArmError> {
    vm_of(ctx, &req.path.prefix(req.path.segments.len() - 1), req)
}

/// `POST …/virtualMachines/{vm}/start|powerOff|restart|deallocate`: a
/// long-running operation whose state change is written with its record.
pub fn power(ctx: &Ctx, req: &ArmRequest, action: PowerAction) -> Result<Reply, ArmError> {
    let vm = vm_of_action(ctx, req)?;
    let vid = vm.id.clone();
    let op = OperationRecord::new(ctx, "Microsoft.Compute", &vid).succeed(None);
    ctx.store().write(|tx| {
        let now = power::get(tx, &vid)?;
        power::set(tx, &vid, power::transition(now, action)?)?;
        op.save(tx)
    })?;
    let sub = req.path.subscription.clone().unwrap_or_default();
    let loc = vm.location.as_str();
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
    let vm = vm_of_action(ctx, req)?;
    let state = ctx.store().view(|r| power::get(r, &vm.id))?;
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
    let vm = vm_of_action(ctx, req)?.to_value()?;
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
    let written = write(ctx, &put_req, blocks, Identity::KeepUnlessGiven)?;
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
    fn the_admin_password_is_never_kept() {
        let p = without_password(
            &json!({"adminUsername": "ops", "adminPassword": "s3cret!", "computerName": "app"}),
        );
        assert_eq!(p, json!({"adminUsername": "ops", "computerName": "app"}));
    }

    #[test]
    fn a_vm_needs_a_location_and_keeps_its_own() {
        assert_eq!(vm_location(Some("West US"), None).unwrap(), "westus");
        assert_eq!(vm_location(None, Some("westus")).unwrap(), "westus");
        assert_eq!(
            vm_location(None, None).unwrap_err().body.code,
            "LocationRequired"
        );
        assert!(vm_location(Some("atlantis"), None).is_err());
    }

    #[test]
    fn a_vm_joins_an_existing_set_in_its_region() {
        assert!(check_availability_set("/as", Some("eastus"), "eastus").is_ok());
        assert_eq!(
            check_availability_set("/as", None, "eastus")
                .unwrap_err()
                .code(),
            "NotFound"
        );
        assert_eq!(
            check_availability_set("/as", Some("westus"), "eastus")
                .unwrap_err()
                .code(),
            "InvalidParameter"
        );
    }

    #[test]
    fn every_data_disk_has_its_own_lun() {
        assert_eq!(check_luns(&[Some(0), Some(3)]).unwrap(), vec![0, 3]);
        assert!(check_luns(&[Some(1), Some(1)]).is_err());
        assert!(check_luns(&[None]).is_err());
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
