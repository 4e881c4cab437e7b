//! Reprotect: after a committed failover, replicate in the other direction.
//! The disks left behind in the region failed over from are the seed: only
//! the blocks that differ are sent, never a full copy. After a failback and
//! its commit, reprotect turns replication the original way round again.

use serde_json::json;

use recoverite_arm::{resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_replication::{Engine, SourceDisk};
use recoverite_rp_compute::disks;

use crate::fabrics::found;
use crate::jobs;
use crate::protected_items::{engine_id, io, item_of, replicating_operations, str_of, Side};

/// POST …/reProtect.
pub fn reprotect(ctx: &Ctx, req: &ArmRequest, engine: &Engine) -> Result<Reply, ArmError> {
    let item_id = req.path.parent_id();
    let item = item_of(ctx, req, &item_id)?;
    let body = req.body.clone().unwrap_or(json!({}));
    if item["properties"]["protectionState"] != "FailedOver" {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "'{}' is in state '{}'; reprotect follows a committed failover.",
                str_of(&item, "name"),
                str_of(&item["properties"], "protectionState")
            ),
        ));
    }
    // After a failover the item is active on the side it failed over to,
    // which now becomes the replication source.
    let side = Side::of(&item);
    if let Some(d) = body["properties"]["failoverDirection"].as_str() {
        if !d.eq_ignore_ascii_case(side.failover_direction()) {
            return Err(ArmError::bad_request(
                "FailoverDirectionInvalid",
                format!(
                    "'{}' is active in its {} region: reprotect replicates {}.",
                    str_of(&item, "name"),
                    side.name().to_ascii_lowercase(),
                    side.failover_direction()
                ),
            ));
        }
    }
    // Source disks (where the item runs now) and seeds (left in the other region).
    let plan = ctx.store().view(|r| {
        let mut out = Vec::new();
        for d in item["properties"]["providerSpecificDetails"]["protectedManagedDisks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let sid = side.source_disk_id(d);
            let src = disks::load(r, &sid)?.ok_or_else(|| {
                ArmError::bad_request(
                    "ReprotectSourceDiskMissing",
                    format!("Disk '{sid}' that the item runs on was deleted; reprotect needs it."),
                )
            })?;
            let seed_id = side.other().source_disk_id(d);
            let seed =
                disks::load(r, &seed_id)?.map(|s| str_of(&s["properties"], "uniqueId").to_string());
            out.push(SourceDisk {
                unique_id: str_of(&src["properties"], "uniqueId").to_string(),
                size: src["properties"]["diskSizeBytes"].as_u64().unwrap_or(0),
                seed,
            });
        }
        Ok::<_, ArmError>(out)
    })?;
    let lifecycle = uuid::Uuid::new_v4().to_string();
    let m = engine
        .enable(&lifecycle, &plan, &time::now_string())
        .map_err(io)?;
    let vault_id = req.path.prefix(8);
    let old = engine_id(&item);
    let done = ctx.store().write(|tx| {
        let mut item = found(tx, &item_id, "replication protected item")?;
        if item["properties"]["protectionState"] != "FailedOver" {
            return Err(ArmError::conflict(
                "OperationNotAllowed",
                "The item changed meanwhile; read it and try again.",
            ));
        }
        let p = &mut item["properties"];
        p["protectionState"] = json!("Protected");
        p["protectionStateDescription"] = json!("Protected");
        p["allowedOperations"] = replicating_operations();
        p["replicationHealth"] = json!("Normal");
        let d = &mut p["providerSpecificDetails"];
        d["lifecycleId"] = json!(lifecycle);
        d["replicationDirection"] = json!(side.failover_direction());
        d["resyncBytes"] = json!(m.seeded_bytes);
        d["initialReplicationStartTime"] = json!(time::now_string());
        resource::put(tx, &item_id, &item)?;
        jobs::record(
            tx,
            &vault_id,
            "SwitchProtection",
            "Reprotect",
            &item,
            &[
                "Prerequisites check for reprotect",
                "Comparing the disks left in the other region",
                "Starting replication",
            ],
        )?;
        crate::finish(ctx, req, tx, Some(item.clone()))
    });
    match done {
        Ok(op) => {
            let _ = engine.disable(&old);
            Ok(crate::accepted(ctx, req, &op))
        }
        Err(e) => {
            let _ = engine.disable(&lifecycle);
            Err(e)
        }
    }
}
