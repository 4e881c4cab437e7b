//! Failover of a replication protected item: choosing the recovery point,
//! writing each disk as it was at that point into the other region (a new
//! disk, or in place over the disk a previous failover left there), test
//! failover into an isolated network and its cleanup, and commit.

use serde_json::{json, Value};

use recoverite_arm::{resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_replication::{Engine, PointKind, RecoveryPoint};
use recoverite_rp_compute::disks;

use recoverite_rs_core::drills;
use recoverite_rs_core::protection::Transition;

use crate::item::{self, ProtectedDisk, ReplicationItem, Side};
use crate::jobs;
use crate::protected_items::{io, item_of, not_found, str_of};
use crate::runtime::Runtime;
use crate::targets;

/// The point a failover uses. `recoveryPointId` names one; without it the
/// A2A default is `Latest`. `recoveryPointType` (the recovery-plan enum,
/// accepted here for single items too) picks `Latest` (process everything
/// received first: lowest RPO), `LatestProcessed` (the newest point already
/// made: lowest RTO), `LatestApplicationConsistent` or `LatestCrashConsistent`.
pub fn choose_point(
    engine: &Engine,
    rt: &Runtime,
    item: &ReplicationItem,
    input: &Value,
) -> Result<RecoveryPoint, ArmError> {
    let m = engine.manifest(item.engine_id()).map_err(io)?;
    let field = "properties.providerSpecificDetails.recoveryPointId";
    if let Some(rp) = input["recoveryPointId"].as_str().filter(|s| !s.is_empty()) {
        let seq = rp.rsplit('/').next().and_then(|s| s.parse::<u64>().ok());
        return seq.and_then(|s| m.points.iter().find(|p| p.seq == s).cloned()).ok_or_else(|| {
            ArmError::invalid_parameter(field, format!("Recovery point '{rp}' is not one of this item's retained points; list them with recoveryPoints, or omit the id for the latest."))
        });
    }
    let kind = input["recoveryPointType"].as_str().unwrap_or("Latest");
    let newest = |want: Option<PointKind>| {
        m.points.iter().rev().find(|p| want.is_none_or(|k| p.kind == k)).cloned().ok_or_else(|| {
            ArmError::bad_request("RecoveryPointNotFound", format!("No {kind} recovery point exists yet for '{}'; wait for one or fail over to Latest.", item.name))
        })
    };
    match kind.to_ascii_lowercase().as_str() {
        "latest" => crate::replication_loop::latest_point(engine, rt, item),
        "latestprocessed" => newest(None),
        "latestapplicationconsistent" => newest(Some(PointKind::AppConsistent)),
        "latestcrashconsistent" => newest(Some(PointKind::CrashConsistent)),
        other => Err(ArmError::invalid_parameter(
            "properties.providerSpecificDetails.recoveryPointType",
            format!("'{other}' is not a recovery point type; use Latest, LatestProcessed, LatestApplicationConsistent or LatestCrashConsistent."),
        )),
    }
}

/// One disk written at a point: where it goes and the fresh image holding it.
struct Made {
    rid: String,
    unique: String,
    disk: ProtectedDisk,
}

/// Materializes every protected disk at `seq` into fresh images; `name_of`
/// gives each disk's destination id.
fn materialize_all(
    engine: &Engine,
    item: &ReplicationItem,
    seq: u64,
    name_of: impl Fn(&ProtectedDisk) -> String,
) -> Result<Vec<Made>, ArmError> {
    let mut made: Vec<Made> = Vec::new();
    let disks = &item
        .properties
        .provider_specific_details
        .protected_managed_disks;
    for (i, disk) in disks.iter().enumerate() {
        let unique = uuid::Uuid::new_v4().to_string();
        let dst = engine.blocks().image(&unique);
        // Durable before the transaction that puts it in place commits: a
        // committed failover never names an image a power cut emptied.
        if let Err(e) = engine.materialize_with(item.engine_id(), seq, i, &dst, true) {
            discard(engine, &made);
            let _ = std::fs::remove_file(&dst);
            return Err(io(e));
        }
        made.push(Made {
            rid: name_of(disk),
            unique,
            disk: disk.clone(),
        });
    }
    // The new images' names too.
    if let Some(dir) = made.first().and_then(|m| {
        engine
            .blocks()
            .image(&m.unique)
            .parent()
            .map(|p| p.to_path_buf())
    }) {
        if let Err(e) = std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
            discard(engine, &made);
            return Err(io(e));
        }
    }
    Ok(made)
}

fn discard(engine: &Engine, made: &[Made]) {
    for m in made {
        let _ = engine.blocks().delete(&m.unique);
    }
}

/// A disk put in place: a new managed disk, or an existing one whose bytes
/// were replaced (`old` is its previous image, dropped once all succeeded).
struct Placed {
    rid: String,
    unique: String,
    old: Option<String>,
}

/// Records every materialized disk in one transaction.
fn place_all(ctx: &Ctx, made: &[Made], location: &str) -> Result<Vec<Placed>, ArmError> {
    ctx.store().write(|tx| {
        let mut out = Vec::new();
        for m in made {
            let old = if let Some(mut existing) = disks::load(tx, &m.rid)? {
                let old = std::mem::replace(&mut existing.properties.unique_id, m.unique.clone());
                existing.save(tx)?;
                Some(old)
            } else {
                let source_id = m.disk.disk_id.as_str();
                let source = disks::load(tx, source_id)?;
                let source = disks::RestoredFrom {
                    id: source_id,
                    os_type: source
                        .as_ref()
                        .and_then(|s| s.properties.os_type.as_deref()),
                };
                let sku = m
                    .disk
                    .recovery_target_disk_account_type
                    .as_deref()
                    .unwrap_or_default();
                disks::register(
                    tx,
                    &m.rid,
                    location,
                    sku,
                    m.disk.disk_capacity_in_bytes,
                    &m.unique,
                    source,
                )?;
                None
            };
            out.push(Placed {
                rid: m.rid.clone(),
                unique: m.unique.clone(),
                old,
            });
        }
        Ok(out)
    })
}

/// Undoes `place_all` after a later step failed: nothing is left half done.
fn unplace(ctx: &Ctx, engine: &Engine, placed: &[Placed]) {
    let _ = ctx.store().write(|tx| {
        for p in placed {
            match &p.old {
                Some(old) => {
                    if let Some(mut d) = disks::load(tx, &p.rid)? {
                        d.properties.unique_id = old.clone();
                        d.save(tx)?;
                    }
                }
                None => {
                    resource::delete_tree(tx, &p.rid)?;
                }
            }
        }
        Ok::<_, ArmError>(())
    });
    for p in placed {
        let _ = engine.blocks().delete(&p.unique);
    }
}

/// The VM a failover brings up on the placed disks: the recovery VM for a
/// failover to the recovery region (made once, reused afterwards), a
/// `{vm}-test` VM in the drill network for a test failover. None when
/// there is no network to put it in (disks only).
fn bring_up_vm(
    ctx: &Ctx,
    rt: &Runtime,
    item: &ReplicationItem,
    made: &[Made],
    vm_id: &str,
    subnet: Option<String>,
    set: Option<&str>,
) -> Result<Option<String>, ArmError> {
    if ctx.store().view(|r| resource::get(r, vm_id))?.is_some() {
        return Ok(Some(vm_id.to_string()));
    }
    let Some(subnet) = subnet else {
        return Ok(None);
    };
    let d = &item.properties.provider_specific_details;
    // The source VM may be gone (failover after losing the region): then
    // data disks take LUNs in order.
    let source = ctx
        .store()
        .view(|r| recoverite_rp_compute::view::vm(r, &d.fabric_object_id))?;
    let lun_of = |disk_id: &str| match source.as_ref()?.role_of(disk_id)? {
        recoverite_rp_compute::view::DiskRole::Data { lun } => Some(u64::from(lun)),
        recoverite_rp_compute::view::DiskRole::Os => None,
    };
    let os = made
        .iter()
        .find(|m| m.disk.is_os())
        .or(made.first())
        .map(|m| m.rid.clone())
        .unwrap_or_default();
    let data: Vec<(u64, String)> = made
        .iter()
        .filter(|m| m.rid != os)
        .enumerate()
        .map(|(i, m)| (lun_of(&m.disk.disk_id).unwrap_or(i as u64), m.rid.clone()))
        .collect();
    let size = d
        .recovery_azure_vm_size
        .as_deref()
        .unwrap_or("Standard_D2s_v3");
    let loc = item.target_location(Side::Primary);
    let os_type = d.os_type.as_deref().unwrap_or("Linux");
    targets::create_vm(
        rt,
        &targets::VmSpec {
            id: vm_id,
            availability_set: set,
            location: loc,
            size,
            os_disk: &os,
            os_type,
            data_disks: &data,
            subnet_id: &subnet,
        },
    )
    .map(Some)
}

fn recovery_vm_id(item: &ReplicationItem) -> String {
    let d = &item.properties.provider_specific_details;
    format!(
        "{}/providers/Microsoft.Compute/virtualMachines/{}",
        d.recovery_azure_resource_group_id, d.recovery_azure_vm_name
    )
}

fn recovery_subnet(item: &ReplicationItem) -> Option<String> {
    let d = &item.properties.provider_specific_details;
    let net = d.selected_recovery_azure_network_id.as_deref()?;
    Some(format!(
        "{net}/subnets/{}",
        d.recovery_subnet_name.as_deref()?
    ))
}

fn point_id(item_id: &str, p: &RecoveryPoint) -> String {
    format!("{item_id}/recoveryPoints/{}", p.seq)
}

fn job_details(kind: &str, item: &ReplicationItem, p: &RecoveryPoint, extra: Value) -> Value {
    let mut d = json!({
        "instanceType": kind, "affectedObjectDetails": {},
        "protectedItemDetails": [{
            "name": item.name, "friendlyName": item.properties.friendly_name,
            "recoveryPointId": point_id(&item.id, p), "recoveryPointTime": p.time,
        }],
    });
    if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    d
}

/// POST …/unplannedFailover: every protected disk, as it was at the chosen
/// point, becomes a managed disk in the region being failed over to, and the
/// VM comes up on them there (failback: the original VM's disks take the
/// bytes in place).
pub fn unplanned_failover(
    ctx: &Ctx,
    req: &ArmRequest,
    engine: &Engine,
    rt: &Runtime,
) -> Result<Reply, ArmError> {
    let item_id = req.path.parent_id();
    let lock = rt.transition_lock(&item_id);
    let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut watch = drills::Stopwatch::start();
    // Nothing moves on an empty or shapeless body (the SDK always sends one).
    let body = req
        .body
        .clone()
        .filter(|b| b["properties"].is_object())
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidRequestContent",
                "An unplanned failover needs a body: {\"properties\": {\"failoverDirection\": \"PrimaryToRecovery\", \"providerSpecificDetails\": {\"instanceType\": \"A2A\"}}}.",
            )
        })?;
    let item = item_of(ctx, req, &item_id)?;
    let side = item.side();
    item.check(Transition::UnplannedFailover)?;
    check_direction(
        &item.name,
        body["properties"]["failoverDirection"].as_str(),
        side.failover_direction(),
    )?;
    let point = choose_point(
        engine,
        rt,
        &item,
        &body["properties"]["providerSpecificDetails"],
    )?;
    watch.step("Prerequisites check for failover");
    let made = materialize_all(engine, &item, point.seq, |d| side.failover_disk_id(d))?;
    let target_loc = item.target_location(side).to_string();
    let placed = place_all(ctx, &made, &target_loc).inspect_err(|_| discard(engine, &made))?;
    watch.step("Creating recovery disks");
    let vm = match side {
        Side::Primary => bring_up_vm(
            ctx,
            rt,
            &item,
            &made,
            &recovery_vm_id(&item),
            recovery_subnet(&item),
            item.properties
                .provider_specific_details
                .recovery_availability_set
                .as_deref(),
        ),
        Side::Recovery => Ok(None),
    };
    let vm = vm.inspect_err(|_| unplace(ctx, engine, &placed))?;
    watch.step("Starting the virtual machine");
    watch.up();
    let refused = refused_flows(rt, &item, &point);
    let failed_over = FailedOver {
        side,
        made: &made,
        vm: vm.as_deref(),
        point: &point,
        target_loc: &target_loc,
        refused,
    };
    let done = ctx
        .store()
        .write(|tx| commit_failover(ctx, req, tx, &item_id, &failed_over, &watch));
    match done {
        Ok(op) => {
            for p in &placed {
                if let Some(old) = &p.old {
                    let _ = engine.blocks().delete(old);
                }
            }
            Ok(crate::accepted(ctx, req, &op))
        }
        Err(e) => {
            unplace(ctx, engine, &placed);
            Err(e)
        }
    }
}

/// What an unplanned failover did before it commits.
struct FailedOver<'a> {
    side: Side,
    made: &'a [Made],
    vm: Option<&'a str>,
    point: &'a RecoveryPoint,
    target_loc: &'a str,
    refused: Vec<Value>,
}

/// Commits a failover: the item's transition (checked again here), where
/// it now runs, its job and its drill report, in one transaction.
fn commit_failover(
    ctx: &Ctx,
    req: &ArmRequest,
    tx: &mut recoverite_store::WriteTx,
    item_id: &str,
    f: &FailedOver,
    watch: &drills::Stopwatch,
) -> Result<(recoverite_arm::lro::OperationRecord, String), ArmError> {
    let vault_id = req.path.prefix(8);
    let side = f.side;
    let mut item = item::load(tx, item_id)?.ok_or_else(|| not_found(item_id))?;
    item.apply(Transition::UnplannedFailover)?;
    let pid = point_id(item_id, f.point);
    mark_failed_over(&mut item, side, f.made, f.vm, &pid);
    item.save(tx)?;
    let friendly = if side == Side::Primary {
        "Failover"
    } else {
        "Failback"
    };
    let details = job_details("FailoverJobDetails", &item, f.point, json!({}));
    jobs::record_with(
        tx,
        &vault_id,
        "UnplannedFailover",
        friendly,
        &item,
        &[
            "Prerequisites check for failover",
            "Creating recovery disks",
            "Starting the virtual machine",
            "Failing over",
        ],
        details,
    )?;
    let kind = if side == Side::Primary {
        drills::DrillKind::Failover
    } else {
        drills::DrillKind::Failback
    };
    let drill = drills::Drill {
        vault_id: &vault_id,
        kind,
        item_id,
        item_name: &item.properties.friendly_name,
        point_id: &pid,
        point_time: &f.point.time,
        outcome: failover_outcome(f.vm, side, f.target_loc),
        refused_flows: f.refused.clone(),
    };
    drills::record(tx, drill, watch)?;
    crate::finish(ctx, req, tx, Some(item.to_value()?))
}

/// The item after a failover: active on the other side, the recovery disks
/// (and VM) it failed over to, when and to which point.
fn mark_failed_over(
    item: &mut ReplicationItem,
    side: Side,
    made: &[Made],
    vm: Option<&str>,
    point_id: &str,
) {
    let p = &mut item.properties;
    let d = &mut p.provider_specific_details;
    if side == Side::Primary {
        for (disk, m) in d.protected_managed_disks.iter_mut().zip(made) {
            disk.recovery_target_disk_id = Some(m.rid.clone());
            disk.recovery_replica_disk_id = Some(m.rid.clone());
        }
    }
    if let Some(vm) = vm {
        d.recovery_fabric_object_id = Some(vm.to_string());
    }
    p.active_location = side.other().name().to_string();
    p.last_successful_failover_time = Some(time::now_string());
    p.failover_recovery_point_id = Some(point_id.to_string());
}

/// What a failover left running, in the drill report's words.
fn failover_outcome(vm: Option<&str>, side: Side, target_loc: &str) -> String {
    match (vm, side) {
        (Some(v), _) => format!(
            "VM {} is running in {target_loc}",
            v.rsplit('/').next().unwrap_or_default()
        ),
        (None, Side::Recovery) => {
            format!("the original VM's disks hold the point's bytes in {target_loc}")
        }
        (None, Side::Primary) => {
            format!(
                "the recovery disks are in {target_loc}; no VM was started (no recovery subnet)"
            )
        }
    }
}

/// "Fail over (or test) in the direction the item replicates."
pub fn check_direction(item: &str, given: Option<&str>, replicates: &str) -> Result<(), ArmError> {
    match given {
        Some(d) if !d.eq_ignore_ascii_case(replicates) => Err(ArmError::bad_request(
            "FailoverDirectionInvalid",
            format!("'{item}' replicates {replicates}; fail it over or test it in that direction."),
        )),
        _ => Ok(()),
    }
}

/// A test failover runs in a virtual network of the recovery region (Azure
/// recommends an isolated one, so the drill cannot disturb production).
pub fn drill_network(network: Option<Value>, target_loc: &str) -> Result<Value, ArmError> {
    let network = network
        .filter(|n| {
            n["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("Microsoft.Network/virtualNetworks"))
        })
        .ok_or_else(|| ArmError::invalid_parameter("properties.networkId", "Name the virtual network in the recovery region to run the drill in (an isolated one, so it cannot disturb production)."))?;
    if !str_of(&network, "location").eq_ignore_ascii_case(target_loc) {
        return Err(ArmError::invalid_parameter(
            "properties.networkId",
            format!(
                "Network '{}' is in '{}'; the test failover runs in '{target_loc}'.",
                str_of(&network, "name"),
                str_of(&network, "location")
            ),
        ));
    }
    Ok(network)
}

/// The drill VM's subnet: the item's recovery subnet name in that network,
/// else its first subnet (none: the disks come up without a VM).
pub fn drill_subnet(subnets: &[String], recovery_subnet: &str) -> Option<String> {
    let wanted = format!("/subnets/{}", recovery_subnet.to_ascii_lowercase());
    subnets
        .iter()
        .find(|s| s.to_ascii_lowercase().ends_with(&wanted))
        .or(subnets.first())
        .cloned()
}

/// POST …/testFailover: the disks at the chosen point appear as
/// `{disk}-ASRTest` and a `{vm}-test` VM comes up on them in the given
/// (isolated) network; replication goes on meanwhile.
pub fn test_failover(
    ctx: &Ctx,
    req: &ArmRequest,
    engine: &Engine,
    rt: &Runtime,
) -> Result<Reply, ArmError> {
    let item_id = req.path.parent_id();
    let lock = rt.transition_lock(&item_id);
    let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut watch = drills::Stopwatch::start();
    let item = item_of(ctx, req, &item_id)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let p = &body["properties"];
    let side = item.side();
    item.check(Transition::TestFailover)?;
    check_direction(
        &item.name,
        p["failoverDirection"].as_str(),
        side.failover_direction(),
    )?;
    let target_loc = item.target_location(side).to_string();
    let network_id = p["networkId"].as_str().unwrap_or_default().to_string();
    let network = ctx.store().view(|r| resource::get(r, &network_id))?;
    let network = drill_network(network, &target_loc)?;
    let subnets: Vec<String> = ctx
        .store()
        .view(|r| resource::list_children(r, &network_id, "subnets"))?
        .iter()
        .map(|s| str_of(s, "id").to_string())
        .collect();
    let subnet = drill_subnet(
        &subnets,
        item.properties
            .provider_specific_details
            .recovery_subnet_name
            .as_deref()
            .unwrap_or_default(),
    );
    let point = choose_point(engine, rt, &item, &p["providerSpecificDetails"])?;
    watch.step("Prerequisites check for test failover");
    let made = materialize_all(engine, &item, point.seq, |d| {
        format!(
            "{}-ASRTest",
            side.failover_disk_id(d).trim_end_matches("-ASRReplica")
        )
    })?;
    let exists = ctx.store().view(|r| {
        Ok::<_, ArmError>(
            made.iter()
                .find(|m| resource::get(r, &m.rid).ok().flatten().is_some())
                .map(|m| m.rid.clone()),
        )
    })?;
    if let Some(rid) = exists {
        discard(engine, &made);
        return Err(ArmError::conflict(
            "TestDiskExists",
            format!("Disk '{rid}' already exists; delete it before the drill."),
        ));
    }
    let placed = place_all(ctx, &made, &target_loc).inspect_err(|_| discard(engine, &made))?;
    watch.step("Creating test disks");
    let rg = made
        .first()
        .map(|m| {
            m.rid
                .split("/providers/")
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    let vm_name = format!("{}-test", item.properties.friendly_name);
    let vm_id = format!("{rg}/providers/Microsoft.Compute/virtualMachines/{vm_name}");
    let vm = bring_up_vm(ctx, rt, &item, &made, &vm_id, subnet, None)
        .inspect_err(|_| unplace(ctx, engine, &placed))?;
    watch.step("Starting the test virtual machine");
    watch.up();
    let drill = Drill {
        made: &made,
        vm: vm.as_deref(),
        vm_name: &vm_name,
        point: &point,
        network_id: &network_id,
        network: &network,
        target_loc: &target_loc,
        refused: refused_flows(rt, &item, &point),
    };
    let done = ctx
        .store()
        .write(|tx| commit_drill(ctx, req, tx, &item_id, &drill, &watch));
    match done {
        Ok(op) => Ok(crate::accepted(ctx, req, &op)),
        Err(e) => {
            if let Some(v) = &vm {
                let _ = targets::delete_vm(rt, v, &[]);
            }
            unplace(ctx, engine, &placed);
            Err(e)
        }
    }
}

/// What a test failover made before it commits.
struct Drill<'a> {
    made: &'a [Made],
    vm: Option<&'a str>,
    vm_name: &'a str,
    point: &'a RecoveryPoint,
    /// The drill network as named in the request, and its document.
    network_id: &'a str,
    network: &'a Value,
    target_loc: &'a str,
    refused: Vec<Value>,
}

/// Commits a test failover: the item's transition (checked again here),
/// the drill's resources on the item, its job and its drill report.
fn commit_drill(
    ctx: &Ctx,
    req: &ArmRequest,
    tx: &mut recoverite_store::WriteTx,
    item_id: &str,
    d: &Drill,
    watch: &drills::Stopwatch,
) -> Result<(recoverite_arm::lro::OperationRecord, String), ArmError> {
    let vault_id = req.path.prefix(8);
    let mut item = item::load(tx, item_id)?.ok_or_else(|| not_found(item_id))?;
    item.apply(Transition::TestFailover)?;
    let pr = &mut item.properties;
    pr.test_failover_state_description =
        "Test failover completed; clean up the test environment when the drill is over".into();
    pr.last_successful_test_failover_time = Some(time::now_string());
    let a2a = &mut pr.provider_specific_details;
    a2a.test_failover_disk_ids = d.made.iter().map(|m| m.rid.clone()).collect();
    a2a.selected_tfo_azure_network_id = Some(d.network_id.to_string());
    a2a.test_failover_recovery_fabric_object_id = d.vm.map(str::to_string);
    a2a.tfo_azure_vm_name = Some(d.vm_name.to_string());
    item.save(tx)?;
    let network_name = str_of(d.network, "name");
    let mut details = job_details(
        "TestFailoverJobDetails",
        &item,
        d.point,
        json!({
            "testFailoverStatus": "Completed", "networkName": network_name, "networkType": "VmNetworkAsInput", "networkFriendlyName": network_name,
        }),
    );
    details["protectedItemDetails"][0]["testVmName"] = json!(d.vm_name);
    details["protectedItemDetails"][0]["networkConnectionStatus"] = json!(if d.vm.is_some() {
        "Connected"
    } else {
        "NotConnected"
    });
    let tasks = [
        "Prerequisites check for test failover",
        "Creating test disks",
        "Starting the test virtual machine",
    ];
    jobs::record_with(
        tx,
        &vault_id,
        "TestFailover",
        "Test failover",
        &item,
        &tasks,
        details,
    )?;
    let target_loc = d.target_loc;
    let outcome = match d.vm {
        Some(_) => format!(
            "test VM {} is running in {network_name} ({target_loc})",
            d.vm_name
        ),
        None => format!(
            "the test disks are in {target_loc}; no VM was started (the network has no subnet)"
        ),
    };
    let report = drills::Drill {
        vault_id: &vault_id,
        kind: drills::DrillKind::TestFailover,
        item_id,
        item_name: &item.properties.friendly_name,
        point_id: &point_id(item_id, d.point),
        point_time: &d.point.time,
        outcome,
        refused_flows: d.refused.clone(),
    };
    drills::record(tx, report, watch)?;
    crate::finish(ctx, req, tx, Some(item.to_value()?))
}

/// POST …/testFailoverCleanup: deletes the drill's VM, its network
/// interface and its disks.
pub fn test_failover_cleanup(ctx: &Ctx, req: &ArmRequest, rt: &Runtime) -> Result<Reply, ArmError> {
    let item_id = req.path.parent_id();
    let comments = req
        .body
        .as_ref()
        .and_then(|b| b["properties"]["comments"].as_str())
        .unwrap_or("")
        .to_string();
    let lock = rt.transition_lock(&item_id);
    let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
    let item = item_of(ctx, req, &item_id)?;
    item.check(Transition::TestFailoverCleanup)?;
    let d = &item.properties.provider_specific_details;
    let disk_ids = d.test_failover_disk_ids.clone();
    match d.test_failover_recovery_fabric_object_id.as_deref() {
        Some(vm) => targets::delete_vm(rt, vm, &disk_ids)?,
        None => {
            for id in &disk_ids {
                rt.arm.call(http::Method::DELETE, id, "2026-03-02", None)?;
            }
        }
    }
    let vault_id = req.path.prefix(8);
    let op = ctx.store().write(|tx| {
        let mut item = item::load(tx, &item_id)?.ok_or_else(|| not_found(&item_id))?;
        item.apply(Transition::TestFailoverCleanup)?;
        let pr = &mut item.properties;
        pr.test_failover_state_description = "None".into();
        let d = &mut pr.provider_specific_details;
        d.test_failover_disk_ids.clear();
        d.selected_tfo_azure_network_id = None;
        d.test_failover_recovery_fabric_object_id = None;
        d.tfo_azure_vm_name = None;
        item.save(tx)?;
        let details = json!({"instanceType": "TestFailoverJobDetails", "testFailoverStatus": "Cleaned up", "comments": comments, "affectedObjectDetails": {}});
        jobs::record_with(tx, &vault_id, "TestFailoverCleanup", "Cleanup test failover", &item, &["Deleting the test virtual machine", "Deleting test disks"], details)?;
        crate::finish(ctx, req, tx, Some(item.to_value()?))
    })?;
    Ok(crate::accepted(ctx, req, &op))
}

/// POST …/failoverCommit: the failover is final; recovery points are discarded.
pub fn commit(ctx: &Ctx, req: &ArmRequest, engine: &Engine) -> Result<Reply, ArmError> {
    let item_id = req.path.parent_id();
    let vault_id = req.path.prefix(8);
    let (op, eid) = ctx.store().write(|tx| {
        let mut item = item::load(tx, &item_id)?.ok_or_else(|| not_found(&item_id))?;
        item.apply(Transition::Commit)?;
        item.save(tx)?;
        jobs::record(
            tx,
            &vault_id,
            "CommitFailover",
            "Commit",
            &item,
            &["Committing failover"],
        )?;
        let op = crate::finish(ctx, req, tx, Some(item.to_value()?))?;
        Ok::<_, ArmError>((op, item.engine_id().to_string()))
    })?;
    // The points belong to the direction that was failed over: gone now.
    let _ = engine.disable(&eid);
    Ok(crate::accepted(ctx, req, &op))
}

/// The flows the network refused from the item's VM since the point was
/// taken: why the point is as old as it is.
fn refused_flows(rt: &Runtime, item: &ReplicationItem, point: &RecoveryPoint) -> Vec<Value> {
    let vm = item.vm_on(item.side());
    rt.explain
        .get()
        .map(|e| e.refused_flows(vm, &point.time))
        .unwrap_or_default()
}

#[cfg(test)]
mod drill_tests {
    use super::*;

    #[test]
    fn a_drill_goes_the_way_the_item_replicates() {
        assert!(check_direction("web", None, "PrimaryToRecovery").is_ok());
        assert!(check_direction("web", Some("primarytorecovery"), "PrimaryToRecovery").is_ok());
        assert_eq!(
            check_direction("web", Some("RecoveryToPrimary"), "PrimaryToRecovery")
                .unwrap_err()
                .code(),
            "FailoverDirectionInvalid"
        );
    }

    #[test]
    fn the_drill_network_is_a_network_of_the_recovery_region() {
        let net = json!({"type": "Microsoft.Network/virtualNetworks", "name": "iso", "location": "westus"});
        assert!(drill_network(Some(net.clone()), "WestUS").is_ok());
        assert!(drill_network(Some(net), "eastus").is_err());
        assert!(drill_network(None, "westus").is_err());
        assert!(drill_network(
            Some(json!({"type": "Microsoft.Network/networkSecurityGroups", "location": "westus"})),
            "westus"
        )
        .is_err());
    }

    #[test]
    fn the_drill_vm_takes_the_recovery_subnet_or_the_first() {
        let subnets = vec!["/v/subnets/app".to_string(), "/v/subnets/VMS".to_string()];
        assert_eq!(
            drill_subnet(&subnets, "vms").as_deref(),
            Some("/v/subnets/VMS")
        );
        assert_eq!(
            drill_subnet(&subnets, "other").as_deref(),
            Some("/v/subnets/app")
        );
        assert_eq!(drill_subnet(&[], "vms"), None);
    }
}
