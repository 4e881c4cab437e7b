//! Replication protected items (A2A): enabling replication of a VM's managed
//! disks, its recovery points, unplanned failover to a point, commit, and
//! disabling replication. The bytes move through the replication engine.

use serde_json::{json, Value};

use recoverite_arm::{names, resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_replication::{Engine, Manifest, PointKind, SourceDisk};
use recoverite_rp_compute::disks;
use recoverite_store::Reader;

use crate::fabrics::{found, parent_of};
use crate::{jobs, policies, vault_of};

pub const ITEM_TYPE: &str = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems";
pub const POINT_TYPE: &str = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems/recoveryPoints";
/// A protected item turns critical when its newest point is this old.
pub const CRITICAL_AFTER_SECS: i64 = 60 * 60;

fn io(e: std::io::Error) -> ArmError {
    ArmError::internal(format!("replication storage failed: {e}"))
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

fn engine_id(item: &Value) -> String {
    str_of(
        &item["properties"]["providerSpecificDetails"],
        "lifecycleId",
    )
    .to_string()
}

/// PUT: enable replication of a VM (`A2AEnableProtectionInput`).
pub fn enable(
    ctx: &Ctx,
    req: &ArmRequest,
    engine: &Engine,
    registry: &recoverite_privatelink::Registry,
) -> Result<Reply, ArmError> {
    let name = req
        .path
        .provider
        .as_ref()
        .and_then(|p| p.name())
        .unwrap_or_default()
        .to_string();
    names::check_generic("replication protected item", &name)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let p = &body["properties"];
    let a2a = &p["providerSpecificDetails"];
    if !str_of(a2a, "instanceType").eq_ignore_ascii_case("A2A") {
        return Err(ArmError::invalid_parameter(
            "properties.providerSpecificDetails.instanceType",
            "Send 'A2A' (Azure to Azure): the only replication scenario recoverite serves.",
        ));
    }
    let vm_id = a2a["fabricObjectId"].as_str().ok_or_else(|| {
        ArmError::invalid_parameter(
            "properties.providerSpecificDetails.fabricObjectId",
            "Name the VM to protect: its ARM id.",
        )
    })?;
    let id = req.path.id();
    let container_id = parent_of(&id);
    // Validate everything and note what to replicate; the copy happens outside the store lock.
    let (plan, vault_id) = ctx.store().view(|r| {
        let vault = vault_of(r, req)?;
        let vid = str_of(&vault, "id").to_string();
        if resource::get(r, &id)?.is_some() {
            return Err(ArmError::conflict("ProtectedItemAlreadyExists", format!("'{name}' is already protected; disable replication first to protect it again.")));
        }
        let container = found(r, &container_id, "protection container")?;
        let fabric = found(r, &parent_of(&container_id), "fabric")?;
        let mappings = resource::list_children(r, &container_id, "replicationProtectionContainerMappings")?;
        let policy_id = p["policyId"].as_str();
        let mapping = mappings
            .iter()
            .find(|m| policy_id.is_none_or(|pid| str_of(&m["properties"], "policyId").eq_ignore_ascii_case(pid)))
            .ok_or_else(|| ArmError::bad_request("ProtectionContainerNotPaired", "The protection container has no container mapping with that policy. Pair it with a container in the recovery region first."))?
            .clone();
        let target_container_id = str_of(&mapping["properties"], "targetProtectionContainerId").to_string();
        if let Some(rc) = a2a["recoveryContainerId"].as_str() {
            if !rc.eq_ignore_ascii_case(&target_container_id) {
                return Err(ArmError::invalid_parameter("properties.providerSpecificDetails.recoveryContainerId", "recoveryContainerId must be the container the mapping pairs with this one."));
            }
        }
        let target_fabric = found(r, &parent_of(&target_container_id), "fabric")?;
        let source_loc = str_of(&fabric["properties"]["customDetails"], "location").to_string();
        let target_loc = str_of(&target_fabric["properties"]["customDetails"], "location").to_string();
        let (vm, vm_disks) = disks::of_vm(r, vm_id)?.ok_or_else(|| ArmError::invalid_parameter("properties.providerSpecificDetails.fabricObjectId", format!("VM '{vm_id}' was not found.")))?;
        if !str_of(&vm, "location").eq_ignore_ascii_case(&source_loc) {
            return Err(ArmError::bad_request("VmNotInFabricRegion", format!("VM '{}' is in '{}' but the protection container's fabric is for '{source_loc}'. Use the container of the VM's region.", str_of(&vm, "name"), str_of(&vm, "location"))));
        }
        if let Some(other) = resource::list_of_type(r, &vid, ITEM_TYPE)?
            .into_iter()
            .find(|i| str_of(&i["properties"]["providerSpecificDetails"], "fabricObjectId").eq_ignore_ascii_case(vm_id))
        {
            return Err(ArmError::conflict("VmAlreadyProtected", format!("VM '{}' is already protected as '{}'.", str_of(&vm, "name"), str_of(&other, "name"))));
        }
        let rg_id = a2a["recoveryResourceGroupId"].as_str().ok_or_else(|| ArmError::invalid_parameter("properties.providerSpecificDetails.recoveryResourceGroupId", "Name the resource group in the recovery region that will hold the failed-over disks."))?;
        let rg = resource::get(r, rg_id)?.ok_or_else(|| ArmError::invalid_parameter("properties.providerSpecificDetails.recoveryResourceGroupId", format!("Resource group '{rg_id}' was not found; create it first.")))?;
        if str_of(&rg, "location").eq_ignore_ascii_case(&source_loc) {
            return Err(ArmError::invalid_parameter("properties.providerSpecificDetails.recoveryResourceGroupId", format!("The recovery resource group is in '{source_loc}', the source VM's region; use a group in any other region.")));
        }
        let inputs = a2a["vmManagedDisks"].as_array().cloned().unwrap_or_default();
        if inputs.is_empty() {
            return Err(ArmError::invalid_parameter("properties.providerSpecificDetails.vmManagedDisks", "List the VM's managed disks to replicate, each with diskId and primaryStagingAzureStorageAccountId (the cache storage account)."));
        }
        let mut chosen = Vec::new();
        for d in &inputs {
            let did = str_of(d, "diskId");
            let disk = vm_disks.iter().find(|x| str_of(x, "id").eq_ignore_ascii_case(did)).ok_or_else(|| {
                ArmError::invalid_parameter("properties.providerSpecificDetails.vmManagedDisks.diskId", format!("Disk '{did}' is not attached to VM '{}'.", str_of(&vm, "name")))
            })?;
            if d["primaryStagingAzureStorageAccountId"].as_str().is_none() {
                return Err(ArmError::invalid_parameter("properties.providerSpecificDetails.vmManagedDisks.primaryStagingAzureStorageAccountId", "Each disk needs a cache storage account in the source region."));
            }
            chosen.push((disk.clone(), d.clone()));
        }
        let policy = found(r, str_of(&mapping["properties"], "policyId"), "replication policy")?;
        let target_container = found(r, &target_container_id, "protection container")?;
        Ok((json!({
            "vm": vm, "container": container, "fabric": fabric, "targetFabric": target_fabric, "targetContainer": target_container,
            "policy": policy, "rg": rg_id, "targetLocation": target_loc, "sourceLocation": source_loc, "disks": chosen.iter().map(|(d, i)| json!({"doc": d, "input": i})).collect::<Vec<_>>(),
            "multiVmGroupName": a2a.get("multiVmGroupName"),
        }), vid))
    })?;
    let lifecycle = uuid::Uuid::new_v4().to_string();
    let sources: Vec<SourceDisk> = plan["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| SourceDisk {
            unique_id: str_of(&d["doc"]["properties"], "uniqueId").to_string(),
            size: d["doc"]["properties"]["diskSizeBytes"]
                .as_u64()
                .unwrap_or(0),
        })
        .collect();
    let now = time::now_string();
    engine.enable(&lifecycle, &sources, &now).map_err(io)?;
    let doc = item_doc(&id, &name, &plan, &lifecycle, &now);
    let done = ctx.store().write(|tx| {
        if resource::get(tx, &id)?.is_some() {
            return Err(ArmError::conflict(
                "ProtectedItemAlreadyExists",
                format!("'{name}' was protected meanwhile."),
            ));
        }
        // Document 004: replication between a region pair needs the pair's
        // Site Recovery names on the vault's private endpoints.
        recoverite_rp_recoveryservices::target::enable_replication_pair(
            tx,
            registry,
            &vault_id,
            str_of(&plan, "sourceLocation"),
            str_of(&plan, "targetLocation"),
        )?;
        resource::put(tx, &id, &doc)?;
        jobs::record(
            tx,
            &vault_id,
            "EnableDr",
            "Enable replication",
            &doc,
            &[
                "Prerequisites check for enabling protection",
                "Identifying the replication target",
                "Enabling replication",
                "Starting initial replication",
            ],
        )?;
        crate::finish(ctx, req, tx, Some(doc.clone()))
    });
    match done {
        Ok(op) => Ok(crate::accepted(ctx, req, &op)),
        Err(e) => {
            let _ = engine.disable(&lifecycle);
            Err(e)
        }
    }
}

fn item_doc(id: &str, name: &str, plan: &Value, lifecycle: &str, now: &str) -> Value {
    let vm = &plan["vm"];
    let managed: Vec<Value> = plan["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let (doc, input) = (&d["doc"], &d["input"]);
            let sku = doc["sku"]["name"].clone();
            json!({
                "diskId": doc["id"], "diskName": doc["name"], "diskCapacityInBytes": doc["properties"]["diskSizeBytes"],
                "diskType": if str_of(&vm["properties"]["storageProfile"]["osDisk"]["managedDisk"], "id").eq_ignore_ascii_case(str_of(doc, "id")) { "OperatingSystem" } else { "Data" },
                "primaryStagingAzureStorageAccountId": input["primaryStagingAzureStorageAccountId"],
                "recoveryResourceGroupId": input.get("recoveryResourceGroupId").cloned().unwrap_or(plan["rg"].clone()),
                "recoveryReplicaDiskAccountType": input.get("recoveryReplicaDiskAccountType").cloned().unwrap_or(sku.clone()),
                "recoveryTargetDiskAccountType": input.get("recoveryTargetDiskAccountType").cloned().unwrap_or(sku),
                "monitoringPercentageCompletion": 100, "monitoringJobType": "InitialReplication",
                "dataPendingInStagingStorageAccountInMB": 0.0, "dataPendingAtSourceAgentInMB": 0.0, "isDiskEncrypted": false,
            })
        })
        .collect();
    let details = json!({
        "instanceType": "A2A",
        "fabricObjectId": vm["id"],
        "lifecycleId": lifecycle,
        "primaryFabricLocation": plan["sourceLocation"],
        "recoveryFabricLocation": plan["targetLocation"],
        "initialPrimaryFabricLocation": plan["sourceLocation"],
        "initialRecoveryFabricLocation": plan["targetLocation"],
        "osType": vm["properties"]["storageProfile"]["osDisk"]["osType"],
        "recoveryAzureResourceGroupId": plan["rg"],
        "multiVmGroupName": plan["multiVmGroupName"],
        "multiVmGroupCreateOption": if plan["multiVmGroupName"].is_string() { "UserSpecified" } else { "AutoCreated" },
        "vmProtectionState": "Protected", "vmProtectionStateDescription": "Protected",
        "protectedManagedDisks": managed,
        "initialReplicationStartTime": now,
        "lastHeartbeat": now,
        "agentVersion": "9.60.0.0 (recoverite)",
        "isReplicationAgentUpdateRequired": false,
    });
    json!({
        "id": id, "name": name, "type": ITEM_TYPE, "location": plan["sourceLocation"],
        "properties": {
            "friendlyName": vm["name"],
            "protectedItemType": "ProtectedItem",
            "protectableItemId": vm["id"],
            "primaryFabricFriendlyName": plan["fabric"]["name"],
            "primaryProtectionContainerFriendlyName": plan["container"]["name"],
            "recoveryFabricFriendlyName": plan["targetFabric"]["name"],
            "recoveryProtectionContainerFriendlyName": plan["targetContainer"]["name"],
            "recoveryFabricId": plan["targetFabric"]["id"],
            "recoveryContainerId": plan["targetContainer"]["id"],
            "primaryFabricProvider": "Azure", "recoveryFabricProvider": "Azure",
            "policyId": plan["policy"]["id"], "policyFriendlyName": plan["policy"]["name"],
            "protectionState": "Protected", "protectionStateDescription": "Protected",
            "activeLocation": "Primary", "testFailoverState": "None", "testFailoverStateDescription": "None",
            "replicationHealth": "Normal", "failoverHealth": "Normal", "healthErrors": [],
            "allowedOperations": ["UnplannedFailover", "DisableProtection"],
            "currentScenario": {"scenarioName": "None"},
            "lastSuccessfulFailoverTime": null,
            "providerSpecificDetails": details,
        }
    })
}

/// The item as read: RPO and health come from its newest recovery point.
pub fn decorate(mut item: Value, engine: &Engine) -> Value {
    let Ok(m) = engine.manifest(&engine_id(&item)) else {
        return item;
    };
    let now = time::now();
    let newest = m
        .points
        .last()
        .map(|p| p.time.clone())
        .unwrap_or(m.base_time.clone());
    let age = time::parse(&newest)
        .map(|t| (now - t).whole_seconds())
        .unwrap_or(0);
    let d = &mut item["properties"]["providerSpecificDetails"];
    d["rpoInSeconds"] = json!(age);
    d["lastRpoCalculatedTime"] = json!(time::format(now));
    d["lastRecoveryPointReceived"] = json!(m.points.last().map(|p| p.time.clone()));
    if item["properties"]["activeLocation"] == "Primary" && age > CRITICAL_AFTER_SECS {
        item["properties"]["replicationHealth"] = json!("Critical");
        item["properties"]["healthErrors"] = json!([{
            "errorCode": "150004", "errorLevel": "Error", "errorSource": "ReplicationService",
            "summaryMessage": "No recovery point was created for the virtual machine in the last 60 minutes.",
            "recommendedAction": "Check that the mobility agent can reach the vault and the cache storage account.",
        }]);
    }
    item
}

pub fn get(ctx: &Ctx, req: &ArmRequest, engine: &Engine) -> Result<Reply, ArmError> {
    let id = req.path.id();
    let item = ctx.store().view(|r| {
        vault_of(r, req)?;
        found(r, &id, "replication protected item")
    })?;
    Ok(Reply::ok(decorate(item, engine)))
}

pub fn list(
    ctx: &Ctx,
    req: &ArmRequest,
    engine: &Engine,
    in_vault: bool,
) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        let v = vault_of(r, req)?;
        if in_vault {
            resource::list_of_type(r, str_of(&v, "id"), ITEM_TYPE)
        } else {
            resource::list_children(r, &req.path.parent_id(), "replicationProtectedItems")
        }
    })?;
    let items = items.into_iter().map(|i| decorate(i, engine)).collect();
    Ok(Reply::ok(recoverite_arm::paging::page(ctx, req, items)?))
}

fn point_doc(item: &Value, p: &recoverite_replication::RecoveryPoint) -> Value {
    let kind = match p.kind {
        PointKind::CrashConsistent => "CrashConsistent",
        PointKind::AppConsistent => "AppConsistent",
    };
    json!({
        "id": format!("{}/recoveryPoints/{}", str_of(item, "id"), p.seq), "name": p.seq.to_string(), "type": POINT_TYPE,
        "properties": {
            "recoveryPointTime": p.time, "recoveryPointType": kind,
            "providerSpecificDetails": {"instanceType": "A2A", "recoveryPointSyncType": if item["properties"]["providerSpecificDetails"]["multiVmGroupName"].is_string() { "MultiVmSyncRecoveryPoint" } else { "PerVmRecoveryPoint" }},
        }
    })
}

fn item_of(ctx: &Ctx, req: &ArmRequest, item_id: &str) -> Result<Value, ArmError> {
    ctx.store().view(|r| {
        vault_of(r, req)?;
        found(r, item_id, "replication protected item")
    })
}

/// GET …/recoveryPoints[/{seq}], newest first.
pub fn points(ctx: &Ctx, req: &ArmRequest, engine: &Engine, one: bool) -> Result<Reply, ArmError> {
    let item_id = if one {
        parent_of(&req.path.id())
    } else {
        req.path.parent_id()
    };
    let item = item_of(ctx, req, &item_id)?;
    let m = engine.manifest(&engine_id(&item)).unwrap_or_default();
    let docs: Vec<Value> = m.points.iter().rev().map(|p| point_doc(&item, p)).collect();
    if one {
        let want = req
            .path
            .provider
            .as_ref()
            .and_then(|p| p.name())
            .unwrap_or_default();
        return docs
            .into_iter()
            .find(|d| d["name"] == want)
            .map(Reply::ok)
            .ok_or_else(|| ArmError::new(404, "NotFound", format!("Recovery point '{want}' was not found; it may have aged out of the policy's retention.")));
    }
    Ok(Reply::ok(recoverite_arm::paging::page(ctx, req, docs)?))
}

/// Picks the point a failover uses: a listed point's id, or none for
/// `Latest` (a point taken now from everything shipped: lowest RPO).
fn choose_point(
    engine: &Engine,
    item: &Value,
    recovery_point_id: Option<&str>,
) -> Result<u64, ArmError> {
    let eid = engine_id(item);
    let m: Manifest = engine.manifest(&eid).map_err(io)?;
    match recovery_point_id {
        None => Ok(engine
            .take_point(&eid, PointKind::CrashConsistent, &time::now_string())
            .map_err(io)?
            .seq),
        Some(rp) => {
            let seq = rp.rsplit('/').next().and_then(|s| s.parse::<u64>().ok());
            seq.filter(|s| m.points.iter().any(|p| p.seq == *s)).ok_or_else(|| {
                ArmError::invalid_parameter("properties.providerSpecificDetails.recoveryPointId", format!("Recovery point '{rp}' is not one of this item's retained points; list them with recoveryPoints, or omit the id for the latest."))
            })
        }
    }
}

/// POST …/unplannedFailover: materializes every protected disk at the chosen
/// point as a managed disk `{disk}-ASRReplica` in the recovery resource group.
pub fn unplanned_failover(ctx: &Ctx, req: &ArmRequest, engine: &Engine) -> Result<Reply, ArmError> {
    let item_id = req.path.parent_id();
    let item = item_of(ctx, req, &item_id)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let direction = body["properties"]["failoverDirection"]
        .as_str()
        .unwrap_or("PrimaryToRecovery");
    if !direction.eq_ignore_ascii_case("PrimaryToRecovery") {
        return Err(ArmError::bad_request("FailoverDirectionNotSupported", "recoverite fails over PrimaryToRecovery; failback after reprotect is not available yet."));
    }
    if item["properties"]["activeLocation"] != "Primary"
        || item["properties"]["protectionState"] != "Protected"
    {
        return Err(ArmError::conflict("OperationNotAllowed", format!("'{}' is in state '{}'; failover needs a protected item replicating from its primary region.", str_of(&item, "name"), str_of(&item["properties"], "protectionState"))));
    }
    let seq = choose_point(
        engine,
        &item,
        body["properties"]["providerSpecificDetails"]["recoveryPointId"].as_str(),
    )?;
    let d = &item["properties"]["providerSpecificDetails"];
    let target_loc = str_of(d, "recoveryFabricLocation").to_string();
    let mut made: Vec<(String, String, Value)> = Vec::new();
    for (i, disk) in d["protectedManagedDisks"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let unique = uuid::Uuid::new_v4().to_string();
        let dst = engine.blocks().image(&unique);
        if let Err(e) = engine.materialize(&engine_id(&item), seq, i, &dst) {
            for (_, u, _) in &made {
                let _ = engine.blocks().delete(u);
            }
            let _ = std::fs::remove_file(&dst);
            return Err(io(e));
        }
        let rid = format!(
            "{}/providers/Microsoft.Compute/disks/{}-ASRReplica",
            str_of(disk, "recoveryResourceGroupId"),
            str_of(disk, "diskName")
        );
        made.push((rid, unique, disk.clone()));
    }
    let vault_id = req.path.prefix(8);
    let done = ctx.store().write(|tx| {
        let mut item = found(tx, &item_id, "replication protected item")?;
        for (rid, unique, disk) in &made {
            if resource::get(tx, rid)?.is_some() {
                return Err(ArmError::conflict("RecoveryDiskExists", format!("Disk '{rid}' already exists in the recovery resource group; delete it before failing over again.")));
            }
            let source = resource::get(tx, str_of(disk, "diskId"))?.unwrap_or(json!({"id": disk["diskId"]}));
            disks::register(tx, rid, &target_loc, str_of(disk, "recoveryTargetDiskAccountType"), disk["diskCapacityInBytes"].as_u64().unwrap_or(0), unique, &source)?;
        }
        let p = &mut item["properties"];
        p["activeLocation"] = json!("Recovery");
        p["protectionState"] = json!("UnplannedFailoverCommitPending");
        p["protectionStateDescription"] = json!("Failover completed; commit pending");
        p["allowedOperations"] = json!(["Commit", "DisableProtection"]);
        p["lastSuccessfulFailoverTime"] = json!(time::now_string());
        p["failoverRecoveryPointId"] = json!(format!("{item_id}/recoveryPoints/{seq}"));
        p["providerSpecificDetails"]["recoveredDiskIds"] = json!(made.iter().map(|(r, _, _)| r.clone()).collect::<Vec<_>>());
        resource::put(tx, &item_id, &item)?;
        jobs::record(tx, &vault_id, "UnplannedFailover", "Failover", &item, &["Prerequisites check for failover", "Creating recovery disks", "Failing over"])?;
        crate::finish(ctx, req, tx, Some(item.clone()))
    });
    match done {
        Ok(op) => Ok(crate::accepted(ctx, req, &op)),
        Err(e) => {
            for (_, u, _) in &made {
                let _ = engine.blocks().delete(u);
            }
            Err(e)
        }
    }
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
        item["properties"]["protectionStateDescription"] = json!("Failover committed");
        item["properties"]["allowedOperations"] = json!(["DisableProtection"]);
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
    // After commit no earlier point can be chosen; keep only the newest.
    let _ = engine.prune(&eid, &time::now_string());
    Ok(crate::accepted(ctx, req, &op))
}

/// DELETE or POST …/remove: stop replicating and drop the recovery points.
pub fn disable(ctx: &Ctx, req: &ArmRequest, engine: &Engine) -> Result<Reply, ArmError> {
    let item_id = req.path.id();
    let vault_id = req.path.prefix(8);
    let (op, eid) = ctx.store().write(|tx| {
        vault_of(tx, req)?;
        let Some(item) = resource::get(tx, &item_id)? else {
            return Ok::<_, ArmError>((crate::finish(ctx, req, tx, None)?, None));
        };
        resource::delete_tree(tx, &item_id)?;
        jobs::record(
            tx,
            &vault_id,
            "DisableDr",
            "Disable replication",
            &item,
            &["Disabling protection", "Cleaning up"],
        )?;
        Ok((crate::finish(ctx, req, tx, None)?, Some(engine_id(&item))))
    })?;
    if let Some(e) = eid {
        engine.disable(&e).map_err(io)?;
    }
    Ok(crate::accepted(ctx, req, &op))
}

/// Whether any protected item still uses `container_id` or `policy_id` (so
/// the mapping behind it stays).
pub fn uses(r: &impl Reader, vault_id: &str, container_id: &str) -> Result<bool, ArmError> {
    Ok(resource::list_of_type(r, vault_id, ITEM_TYPE)?
        .iter()
        .any(|i| parent_of(str_of(i, "id")).eq_ignore_ascii_case(container_id)))
}

/// One replication cycle for every replicating item: a crash-consistent point
/// when `crash_every` has passed since the newest, app-consistent when the
/// policy's frequency has, and pruning to the policy's retention.
pub fn tick(
    store: &recoverite_store::Store,
    engine: &Engine,
    crash_every: ::time::Duration,
) -> Result<usize, ArmError> {
    let items = store.view(|r| {
        resource::list_of_type(r, "", ITEM_TYPE).map(|v| {
            v.into_iter()
                .filter(|i| i["properties"]["protectionState"] == "Protected")
                .map(|i| {
                    let pol = resource::get(r, str_of(&i["properties"], "policyId"))
                        .ok()
                        .flatten()
                        .and_then(|p| policies::A2aSettings::from_doc(&p));
                    (i, pol)
                })
                .collect::<Vec<_>>()
        })
    })?;
    let now = time::now();
    let mut taken = 0;
    for (item, policy) in items {
        let eid = engine_id(&item);
        let Ok(m) = engine.manifest(&eid) else {
            continue;
        };
        let age = |t: Option<&String>| t.and_then(|s| time::parse(s)).map(|t| now - t);
        let newest = age(m.points.last().map(|p| &p.time).or(Some(&m.base_time)));
        if newest.is_some_and(|a| a < crash_every) {
            continue;
        }
        let app_every = policy
            .as_ref()
            .map(|p| p.app_consistent_frequency)
            .unwrap_or(policies::DEFAULT_APP_CONSISTENT_MINUTES);
        let last_app = age(m
            .points
            .iter()
            .rev()
            .find(|p| p.kind == PointKind::AppConsistent)
            .map(|p| &p.time)
            .or(Some(&m.base_time)));
        let kind = if app_every > 0
            && last_app.is_none_or(|a| a >= ::time::Duration::minutes(app_every))
        {
            PointKind::AppConsistent
        } else {
            PointKind::CrashConsistent
        };
        engine
            .take_point(&eid, kind, &time::format(now))
            .map_err(io)?;
        taken += 1;
        let keep = policy
            .map(|p| p.recovery_point_history)
            .unwrap_or(policies::DEFAULT_RETENTION_MINUTES);
        engine
            .prune(&eid, &time::format(now - ::time::Duration::minutes(keep)))
            .map_err(io)?;
    }
    Ok(taken)
}

/// Takes a point for one item now (the admin API's "sync now").
pub fn take_point_now(
    store: &recoverite_store::Store,
    engine: &Engine,
    item_id: &str,
    app: bool,
) -> Result<Value, ArmError> {
    let item = store.view(|r| found(r, item_id, "replication protected item"))?;
    if item["properties"]["protectionState"] != "Protected" {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            "Only a replicating item takes recovery points.",
        ));
    }
    let kind = if app {
        PointKind::AppConsistent
    } else {
        PointKind::CrashConsistent
    };
    let p = engine
        .take_point(&engine_id(&item), kind, &time::now_string())
        .map_err(io)?;
    Ok(point_doc(&item, &p))
}
