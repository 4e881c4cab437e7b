//! Reprotect: after a committed failover, replicate in the other direction.
//! The disks left behind in the region failed over from are the seed: only
//! the blocks that differ are sent, never a full copy. After a failback and
//! its commit, reprotect turns replication the original way round again.

use serde_json::{json, Value};

use recoverite_arm::{time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_replication::{Engine, SourceDisk};
use recoverite_rp_compute::disks;
use recoverite_store::Reader;

use recoverite_rs_core::protection::Transition;

use crate::item::{self, ReplicationItem, Side};
use crate::jobs;
use crate::protected_items::{io, item_of, not_found};
use crate::runtime::{self, Runtime};

/// "Reprotect replicates from the side the item is active on": a
/// `failoverDirection` naming the other way is refused.
fn check_direction(
    item: &ReplicationItem,
    side: Side,
    given: Option<&str>,
) -> Result<(), ArmError> {
    match given {
        Some(d) if !d.eq_ignore_ascii_case(side.failover_direction()) => {
            Err(ArmError::bad_request(
                "FailoverDirectionInvalid",
                format!(
                    "'{}' is active in its {} region: reprotect replicates {}.",
                    item.name,
                    side.name().to_ascii_lowercase(),
                    side.failover_direction()
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The disks replication starts from: where the item runs now, each seeded
/// with the disk left in the other region (only what differs is sent).
fn source_disks(
    r: &impl Reader,
    item: &ReplicationItem,
    side: Side,
) -> Result<Vec<SourceDisk>, ArmError> {
    let mut out = Vec::new();
    for d in &item
        .properties
        .provider_specific_details
        .protected_managed_disks
    {
        let sid = side.source_disk_id(d);
        let src = disks::load(r, &sid)?.ok_or_else(|| {
            ArmError::bad_request(
                "ReprotectSourceDiskMissing",
                format!("Disk '{sid}' that the item runs on was deleted; reprotect needs it."),
            )
        })?;
        let seed_id = side.other().source_disk_id(d);
        let seed = disks::load(r, &seed_id)?.map(|s| s.properties.unique_id);
        out.push(SourceDisk {
            unique_id: src.properties.unique_id.clone(),
            size: src.properties.disk_size_bytes,
            seed,
        });
    }
    Ok(out)
}

/// POST …/reProtect.
pub fn reprotect(
    ctx: &Ctx,
    req: &ArmRequest,
    engine: &Engine,
    rt: &Runtime,
) -> Result<Reply, ArmError> {
    let item_id = req.path.parent_id();
    let lock = rt.transition_lock(&item_id);
    let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
    let item = item_of(ctx, req, &item_id)?;
    let body = req.body.clone().unwrap_or(json!({}));
    item.check(Transition::Reprotect)?;
    // After a failover the item is active on the side it failed over to,
    // which now becomes the replication source.
    let side = item.side();
    check_direction(
        &item,
        side,
        body["properties"]["failoverDirection"].as_str(),
    )?;
    let plan = ctx.store().view(|r| source_disks(r, &item, side))?;
    let lifecycle = uuid::Uuid::new_v4().to_string();
    let cache = cache_for(
        ctx,
        rt,
        &item,
        side,
        &body["properties"]["providerSpecificDetails"],
        &lifecycle,
    )?;
    // The agent will run from the VM on the active side: it must reach the
    // vault from there (document 000: the recovery network needs its own
    // endpoint and DNS zone with the vault's records), or reprotect fails.
    let mut after = item.clone();
    after.properties.provider_specific_details.lifecycle_id = lifecycle.clone();
    if side == Side::Recovery {
        after
            .properties
            .provider_specific_details
            .recovery_cache_storage_account_id = Some(cache.clone());
    }
    if let Err(b) = runtime::check_vault_reachable(ctx.store(), rt, &after) {
        return Err(ArmError::bad_request("ReprotectVaultUnreachable", format!("Reprotect needs the VM in the {} region to reach the vault, and it cannot: {} ({}{}): {}", item.source_location(side), b.endpoint, b.fqdn, b.address.map(|a| format!(" → {a}")).unwrap_or_default(), b.reason)));
    }
    let m = engine
        .enable(&lifecycle, &plan, &time::now_string())
        .map_err(io)?;
    let vault_id = req.path.prefix(8);
    let old = item.engine_id().to_string();
    let done = ctx.store().write(|tx| {
        let mut item = item::load(tx, &item_id)?.ok_or_else(|| not_found(&item_id))?;
        item.apply(Transition::Reprotect)?;
        let p = &mut item.properties;
        p.replication_health = "Normal".into();
        let d = &mut p.provider_specific_details;
        d.lifecycle_id = lifecycle.clone();
        d.replication_direction = Some(side.failover_direction().to_string());
        d.resync_bytes = Some(m.seeded_bytes);
        if side == Side::Recovery {
            d.recovery_cache_storage_account_id = Some(cache.clone());
        }
        d.initial_replication_start_time = time::now_string();
        item.save(tx)?;
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
        crate::finish(ctx, req, tx, Some(item.to_value()?))
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

/// The cache account the agent on the active side writes to. Going back to
/// the primary region it is the original one; from the recovery region it is
/// the one named in the input (`vmDisks[].primaryStagingAzureStorageAccountId`),
/// the one a previous reprotect used, or a new `…asrcache` account Site
/// Recovery creates there. It must meet the same rules as at enable.
fn cache_for(
    ctx: &Ctx,
    rt: &Runtime,
    item: &ReplicationItem,
    side: Side,
    input: &Value,
    lifecycle: &str,
) -> Result<String, ArmError> {
    if side == Side::Primary {
        return Ok(item.cache_account_id(side).to_string());
    }
    let d = &item.properties.provider_specific_details;
    let region = item.source_location(side).to_string();
    let named = input["vmDisks"][0]["primaryStagingAzureStorageAccountId"]
        .as_str()
        .map(str::to_string)
        .or_else(|| d.recovery_cache_storage_account_id.clone());
    let id = match named {
        Some(id) => id,
        None => {
            let name: String = format!(
                "{}asrcache",
                lifecycle
                    .replace('-', "")
                    .chars()
                    .take(12)
                    .collect::<String>()
            );
            let id = format!(
                "{}/providers/Microsoft.Storage/storageAccounts/{name}",
                d.recovery_azure_resource_group_id
            );
            rt.arm.call(http::Method::PUT, &id, "2026-09-01", Some(json!({"location": region, "kind": "StorageV2", "sku": {"name": "Standard_LRS"}, "tags": {"createdBy": "Azure Site Recovery"}})))?;
            id
        }
    };
    let vault_id = item.vault_id().to_string();
    ctx.store().view(|r| {
        let account = recoverite_rp_storage::account::load(r, &id)?.ok_or_else(|| {
            ArmError::bad_request(
                "CacheStorageAccountNotFound",
                format!("Cache storage account '{id}' was not found."),
            )
        })?;
        let vault = recoverite_rs_core::vault_record::load(r, &vault_id)?;
        let private = recoverite_privatelink::of_target(r, &vault_id)?
            .iter()
            .any(|c| {
                c.group_ids
                    .iter()
                    .any(|g| g.eq_ignore_ascii_case("AzureSiteRecovery"))
            });
        let vnet = d.selected_recovery_azure_network_id.as_deref();
        recoverite_rp_storage::cache::check_for_replication(
            r,
            ctx.authorizer(),
            &account,
            &region,
            vnet,
            private.then_some(vault.as_ref().and_then(|v| v.principal_id())),
        )
    })?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reprotect_replicates_from_the_side_the_item_is_active_on() {
        let item: ReplicationItem = serde_json::from_value(item::tests::stored()).unwrap();
        let side = item.side();
        assert_eq!(side, Side::Primary);
        assert!(check_direction(&item, side, None).is_ok());
        assert!(check_direction(&item, side, Some(side.failover_direction())).is_ok());
        let other = side.other().failover_direction();
        let e = check_direction(&item, side, Some(other)).unwrap_err();
        assert_eq!(e.code(), "FailoverDirectionInvalid");
        assert!(e
            .body
            .message
            .contains("'web' is active in its primary region"));
    }
}
