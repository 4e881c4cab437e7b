//! Failover of a replication protected item: choosing the recovery point,
//! writing each disk as it was at that point into the other region (a new
//! disk, or in place over the disk a previous failover left there), test
//! failover into an isolated network and its cleanup, and commit.

use serde_json::{json, Value};

use recoverite_arm::{resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_replication::{Engine, PointKind, RecoveryPoint};
use recoverite_rp_compute::disks;
use recoverite_store::WriteTx;

use crate::fabrics::found;
use crate::jobs;
use crate::protected_items::{engine_id, io, item_of, str_of, Side};

/// The point a failover uses. `recoveryPointId` names one; without it the
/// A2A default is `Latest`. `recoveryPointType` (the recovery-plan enum,
/// accepted here for single items too) picks `Latest` (process everything
/// received first: lowest RPO), `LatestProcessed` (the newest point already
/// made: lowest RTO), `LatestApplicationConsistent` or `LatestCrashConsistent`.
pub fn choose_point(
    engine: &Engine,
    item: &Value,
    input: &Value,
) -> Result<RecoveryPoint, ArmError> {
    let eid = engine_id(item);
    let m = engine.manifest(&eid).map_err(io)?;
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
            ArmError::bad_request("RecoveryPointNotFound", format!("No {kind} recovery point exists yet for '{}'; wait for one or fail over to Latest.", str_of(item, "name")))
        })
    };
    match kind.to_ascii_lowercase().as_str() {
        "latest" => crate::replication_loop::latest_point(engine, &eid),
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
    disk: Value,
}

/// Materializes every protected disk at `seq` into fresh images; `name_of`
/// gives each disk's destination id.
fn materialize_all(
    engine: &Engine,
    item: &Value,
    seq: u64,
    name_of: impl Fn(&Value) -> String,
) -> Result<Vec<Made>, ArmError> {
    let mut made: Vec<Made> = Vec::new();
    for (i, disk) in item["properties"]["providerSpecificDetails"]["protectedManagedDisks"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let unique = uuid::Uuid::new_v4().to_string();
        let dst = engine.blocks().image(&unique);
        if let Err(e) = engine.materialize(&engine_id(item), seq, i, &dst) {
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
    Ok(made)
}

fn discard(engine: &Engine, made: &[Made]) {
    for m in made {
        let _ = engine.blocks().delete(&m.unique);
    }
}

/// Records a materialized disk: a new managed disk, or the existing disk at
/// that id taking the new bytes (its old image is returned for deletion).
fn place(
    tx: &mut WriteTx,
    m: &Made,
    location: &str,
    sku: &str,
) -> Result<Option<String>, ArmError> {
    if let Some(mut existing) = disks::load(tx, &m.rid)? {
        let old = str_of(&existing["properties"], "uniqueId").to_string();
        existing["properties"]["uniqueId"] = json!(m.unique);
        resource::put(tx, &m.rid, &existing)?;
        return Ok(Some(old));
    }
    let source =
        resource::get(tx, str_of(&m.disk, "diskId"))?.unwrap_or(json!({"id": m.disk["diskId"]}));
    disks::register(
        tx,
        &m.rid,
        location,
        sku,
        m.disk["diskCapacityInBytes"].as_u64().unwrap_or(0),
        &m.unique,
        &source,
    )?;
    Ok(None)
}

fn point_id(item_id: &str, p: &RecoveryPoint) -> String {
    format!("{item_id}/recoveryPoints/{}", p.seq)
}

fn job_details(kind: &str, item: &Value, p: &RecoveryPoint, extra: Value) -> Value {
    let mut d = json!({
        "instanceType": kind, "affectedObjectDetails": {},
        "protectedItemDetails": [{
            "name": item["name"], "friendlyName": item["properties"]["friendlyName"],
            "recoveryPointId": point_id(str_of(item, "id"), p), "recoveryPointTime": p.time,
        }],
    });
    if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    d
}

/// POST …/unplannedFailover: every protected disk, as it was at the chosen
/// point, becomes a managed disk in the region being failed over to.
pub fn unplanned_failover(ctx: &Ctx, req: &ArmRequest, engine: &Engine) -> Result<Reply, ArmError> {
    let item_id = req.path.parent_id();
    let item = item_of(ctx, req, &item_id)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let side = Side::of(&item);
    let direction = body["properties"]["failoverDirection"]
        .as_str()
        .unwrap_or(side.failover_direction());
    if item["properties"]["protectionState"] != "Protected" {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "'{}' is in state '{}'; failover needs an item that is replicating. {}",
                str_of(&item, "name"),
                str_of(&item["properties"], "protectionState"),
                side.next_step(&item)
            ),
        ));
    }
    if !direction.eq_ignore_ascii_case(side.failover_direction()) {
        return Err(ArmError::bad_request(
            "FailoverDirectionInvalid",
            format!(
                "'{}' replicates {}; its failover direction is {}.",
                str_of(&item, "name"),
                side.failover_direction(),
                side.failover_direction()
            ),
        ));
    }
    if item["properties"]["testFailoverState"] != "None" {
        return Err(ArmError::conflict(
            "TestFailoverCleanupPending",
            "A test failover of this item is not cleaned up yet; run testFailoverCleanup first.",
        ));
    }
    let point = choose_point(
        engine,
        &item,
        &body["properties"]["providerSpecificDetails"],
    )?;
    let made = materialize_all(engine, &item, point.seq, |d| side.failover_disk_id(d))?;
    let vault_id = req.path.prefix(8);
    let target_loc = side.target_location(&item);
    let done = ctx.store().write(|tx| {
        let mut item = found(tx, &item_id, "replication protected item")?;
        let mut old = Vec::new();
        for m in &made {
            old.extend(place(
                tx,
                m,
                &target_loc,
                str_of(&m.disk, "recoveryTargetDiskAccountType"),
            )?);
        }
        let disks =
            item["properties"]["providerSpecificDetails"]["protectedManagedDisks"].as_array_mut();
        for (d, m) in disks.into_iter().flatten().zip(&made) {
            if side == Side::Primary {
                d["recoveryTargetDiskId"] = json!(m.rid);
                d["recoveryReplicaDiskId"] = json!(m.rid);
            }
        }
        let p = &mut item["properties"];
        p["activeLocation"] = json!(side.other().name());
        p["protectionState"] = json!("UnplannedFailoverCommitPending");
        p["protectionStateDescription"] = json!("Failover completed; commit pending");
        p["allowedOperations"] = json!(["Commit", "DisableProtection"]);
        p["lastSuccessfulFailoverTime"] = json!(time::now_string());
        p["failoverRecoveryPointId"] = json!(point_id(&item_id, &point));
        resource::put(tx, &item_id, &item)?;
        let friendly = if side == Side::Primary {
            "Failover"
        } else {
            "Failback"
        };
        let details = job_details("FailoverJobDetails", &item, &point, json!({}));
        jobs::record_with(
            tx,
            &vault_id,
            "UnplannedFailover",
            friendly,
            &item,
            &[
                "Prerequisites check for failover",
                "Creating recovery disks",
                "Failing over",
            ],
            details,
        )?;
        Ok((crate::finish(ctx, req, tx, Some(item.clone()))?, old))
    });
    match done {
        Ok((op, old)) => {
            for u in old {
                let _ = engine.blocks().delete(&u);
            }
            Ok(crate::accepted(ctx, req, &op))
        }
        Err(e) => {
            discard(engine, &made);
            Err(e)
        }
    }
}

/// POST …/testFailover: the disks at the chosen point appear as
/// `{disk}-ASRTest` beside the recovery disks, for a drill in an isolated
/// network; replication goes on meanwhile.
pub fn test_failover(ctx: &Ctx, req: &ArmRequest, engine: &Engine) -> Result<Reply, ArmError> {
    let item_id = req.path.parent_id();
    let item = item_of(ctx, req, &item_id)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let p = &body["properties"];
    let side = Side::of(&item);
    if item["properties"]["protectionState"] != "Protected" {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "'{}' is in state '{}'; a test failover needs an item that is replicating.",
                str_of(&item, "name"),
                str_of(&item["properties"], "protectionState")
            ),
        ));
    }
    if item["properties"]["testFailoverState"] != "None" {
        return Err(ArmError::conflict("TestFailoverInProgress", "A test failover of this item already exists; run testFailoverCleanup before the next drill."));
    }
    if let Some(d) = p["failoverDirection"].as_str() {
        if !d.eq_ignore_ascii_case(side.failover_direction()) {
            return Err(ArmError::bad_request(
                "FailoverDirectionInvalid",
                format!(
                    "'{}' replicates {}; test it in that direction.",
                    str_of(&item, "name"),
                    side.failover_direction()
                ),
            ));
        }
    }
    let target_loc = side.target_location(&item);
    let network_id = p["networkId"].as_str().unwrap_or_default().to_string();
    let network = ctx
        .store()
        .view(|r| resource::get(r, &network_id))?
        .filter(|n| {
            n["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("Microsoft.Network/virtualNetworks"))
        });
    let Some(network) = network else {
        return Err(ArmError::invalid_parameter("properties.networkId", "Name the virtual network in the recovery region to run the drill in (an isolated one, so it cannot disturb production)."));
    };
    if !str_of(&network, "location").eq_ignore_ascii_case(&target_loc) {
        return Err(ArmError::invalid_parameter(
            "properties.networkId",
            format!(
                "Network '{}' is in '{}'; the test failover runs in '{target_loc}'.",
                str_of(&network, "name"),
                str_of(&network, "location")
            ),
        ));
    }
    let point = choose_point(engine, &item, &p["providerSpecificDetails"])?;
    let made = materialize_all(engine, &item, point.seq, |d| {
        format!(
            "{}-ASRTest",
            side.failover_disk_id(d).trim_end_matches("-ASRReplica")
        )
    })?;
    let vault_id = req.path.prefix(8);
    let done = ctx.store().write(|tx| {
        let mut item = found(tx, &item_id, "replication protected item")?;
        for m in &made {
            if resource::get(tx, &m.rid)?.is_some() {
                return Err(ArmError::conflict("TestDiskExists", format!("Disk '{}' already exists; delete it before the drill.", m.rid)));
            }
            place(tx, m, &target_loc, str_of(&m.disk, "recoveryTargetDiskAccountType"))?;
        }
        let pr = &mut item["properties"];
        pr["testFailoverState"] = json!("TestFailoverCompleted");
        pr["testFailoverStateDescription"] = json!("Test failover completed; clean up the test environment when the drill is over");
        pr["lastSuccessfulTestFailoverTime"] = json!(time::now_string());
        pr["allowedOperations"] = json!(["TestFailoverCleanup", "DisableProtection"]);
        pr["providerSpecificDetails"]["testFailoverDiskIds"] = json!(made.iter().map(|m| m.rid.clone()).collect::<Vec<_>>());
        pr["providerSpecificDetails"]["testFailoverNetworkId"] = json!(network_id);
        resource::put(tx, &item_id, &item)?;
        let details = job_details("TestFailoverJobDetails", &item, &point, json!({
            "testFailoverStatus": "Completed", "networkName": network["name"], "networkType": "VmNetworkAsInput", "networkFriendlyName": network["name"],
        }));
        jobs::record_with(tx, &vault_id, "TestFailover", "Test failover", &item, &["Prerequisites check for test failover", "Creating test disks", "Starting the test failover"], details)?;
        crate::finish(ctx, req, tx, Some(item.clone()))
    });
    match done {
        Ok(op) => Ok(crate::accepted(ctx, req, &op)),
        Err(e) => {
            discard(engine, &made);
            Err(e)
        }
    }
}

/// POST …/testFailoverCleanup: deletes the drill's disks.
pub fn test_failover_cleanup(
    ctx: &Ctx,
    req: &ArmRequest,
    engine: &Engine,
) -> Result<Reply, ArmError> {
    let item_id = req.path.parent_id();
    let comments = req
        .body
        .as_ref()
        .and_then(|b| b["properties"]["comments"].as_str())
        .unwrap_or("")
        .to_string();
    let vault_id = req.path.prefix(8);
    let (op, gone) = ctx.store().write(|tx| {
        let mut item = found(tx, &item_id, "replication protected item")?;
        if item["properties"]["testFailoverState"] == "None" {
            return Err(ArmError::conflict("OperationNotAllowed", "There is no test failover to clean up."));
        }
        let mut gone = Vec::new();
        for id in item["properties"]["providerSpecificDetails"]["testFailoverDiskIds"].as_array().cloned().unwrap_or_default() {
            if let Some(d) = disks::load(tx, id.as_str().unwrap_or_default())? {
                gone.push(str_of(&d["properties"], "uniqueId").to_string());
                resource::delete_tree(tx, str_of(&d, "id"))?;
            }
        }
        let pr = &mut item["properties"];
        pr["testFailoverState"] = json!("None");
        pr["testFailoverStateDescription"] = json!("None");
        pr["allowedOperations"] = crate::protected_items::replicating_operations();
        if let Some(d) = pr["providerSpecificDetails"].as_object_mut() {
            d.remove("testFailoverDiskIds");
            d.remove("testFailoverNetworkId");
        }
        resource::put(tx, &item_id, &item)?;
        let details = json!({"instanceType": "TestFailoverJobDetails", "testFailoverStatus": "Cleaned up", "comments": comments, "affectedObjectDetails": {}});
        jobs::record_with(tx, &vault_id, "TestFailoverCleanup", "Cleanup test failover", &item, &["Deleting test disks"], details)?;
        Ok((crate::finish(ctx, req, tx, Some(item.clone()))?, gone))
    })?;
    for u in gone {
        let _ = engine.blocks().delete(&u);
    }
    Ok(crate::accepted(ctx, req, &op))
}

/// POST …/failoverCommit: the failover is final; recovery points are discarded.
pub fn commit(ctx: &Ctx, req: &ArmRequest, engine: &Engine) -> Result<Reply, ArmError> {
    let item_id = req.path.parent_id();
    let vault_id = req.path.prefix(8);
    let (op, eid) = ctx.store().write(|tx| {
        let mut item = found(tx, &item_id, "replication protected item")?;
        if item["properties"]["protectionState"] != "UnplannedFailoverCommitPending" {
            return Err(ArmError::conflict(
                "OperationNotAllowed",
                "Commit follows a failover; this item has none pending.",
            ));
        }
        item["properties"]["protectionState"] = json!("FailedOver");
        item["properties"]["protectionStateDescription"] =
            json!("Failover committed; reprotect to replicate back");
        item["properties"]["allowedOperations"] = json!(["ReverseReplicate", "DisableProtection"]);
        resource::put(tx, &item_id, &item)?;
        jobs::record(
            tx,
            &vault_id,
            "CommitFailover",
            "Commit",
            &item,
            &["Committing failover"],
        )?;
        let op = crate::finish(ctx, req, tx, Some(item.clone()))?;
        Ok((op, engine_id(&item)))
    })?;
    // The points belong to the direction that was failed over: gone now.
    let _ = engine.disable(&eid);
    Ok(crate::accepted(ctx, req, &op))
}
