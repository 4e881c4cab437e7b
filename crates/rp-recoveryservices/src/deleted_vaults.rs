//! Soft-deleted vaults (`locations/{l}/deletedVaults`): where secure by
//! default applies, deleting a vault keeps it, recoverable, for the vault's
//! soft-delete retention; `undelete` brings it back, and it is purged once
//! `purgeAt` has passed on the emulator clock.
//!
//! A deleted vault keeps everything the vault had: its documents (taken out
//! of the resources table whole, so nothing that lists vaults sees it) and
//! the records other tables keep under the vault's id, which stay where they
//! are until the purge forgets them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::resource::{self, StoredTree};
use recoverite_arm::{id, paging, regions, time as clock, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, Table, WriteTx};

use crate::meta::{self, VaultMeta};

const DELETED: Table = Table("recoveryservices_deleted_vaults");
pub const TYPE: &str = "Microsoft.RecoveryServices/locations/deletedVaults";
const NS: &str = "Microsoft.RecoveryServices";

/// "Secure by default with soft delete is available in the following
/// regions: Recovery Services vault — General availability: West Central
/// US; Preview: all remaining Azure public regions." … "When a vault is
/// deleted, it automatically transitions into a soft-deleted state."
///
/// recoverite follows the generally available behaviour: vaults in West
/// Central US are soft-deleted; elsewhere a delete is final, as before.
pub fn soft_deletes_vaults(location: &str) -> bool {
    location.eq_ignore_ascii_case("westcentralus")
}

/// "The retention period is 14 days by default. You can extend it up to
/// 180 days." — the vault's `softDeleteRetentionPeriodInDays`.
pub fn retention_days(vault: &Value) -> i64 {
    vault["properties"]["securitySettings"]["softDeleteSettings"]["softDeleteRetentionPeriodInDays"]
        .as_i64()
        .filter(|d| (14..=180).contains(d))
        .unwrap_or(14)
}

/// Undelete brings the vault back into `recoveryResourceGroupId`, which must
/// be a resource group id of the vault's subscription. recoverite restores
/// a vault only into the group it was deleted from: the vault's Backup and
/// Site Recovery records are kept under its id.
pub fn check_recovery_group(vault_id: &str, recovery_group: &str) -> Result<(), ArmError> {
    let p = recoverite_arm::id::ResourcePath::parse(recovery_group).ok();
    let is_group = p.as_ref().is_some_and(|p| {
        p.resource_group.is_some() && p.provider.is_none() && p.subscription.is_some()
    });
    if !is_group {
        return Err(ArmError::invalid_parameter(
            "properties.recoveryResourceGroupId",
            format!("'{recovery_group}' is not a resource group id; give /subscriptions/{{id}}/resourceGroups/{{name}}."),
        ));
    }
    let home = vault_id
        .to_ascii_lowercase()
        .split("/providers/")
        .next()
        .unwrap_or_default()
        .to_string();
    if id::key(recovery_group) != home {
        return Err(ArmError::bad_request(
            "UserErrorRecoveryResourceGroupNotSupported",
            format!("This vault was deleted from resource group '{home}'; recoverite undeletes a vault only into the resource group it was deleted from (its Backup and Site Recovery records are kept under its id). Give that group as recoveryResourceGroupId."),
        ));
    }
    Ok(())
}

/// The body of `undelete`.
#[derive(Deserialize)]
struct UndeleteBody {
    properties: UndeleteProperties,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UndeleteProperties {
    recovery_resource_group_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedVault {
    pub name: String,
    pub vault_id: String,
    pub location: String,
    pub deleted_at: String,
    pub purge_at: String,
    pub tree: StoredTree,
    pub meta: Option<VaultMeta>,
}

impl DeletedVault {
    fn id(&self, subscription: &str) -> String {
        format!(
            "/subscriptions/{subscription}/providers/{NS}/locations/{}/deletedVaults/{}",
            self.location, self.name
        )
    }

    fn wire(&self, subscription: &str) -> Value {
        json!({
            "id": self.id(subscription),
            "name": self.name,
            "type": TYPE,
            "properties": {
                "vaultId": self.vault_id,
                "vaultDeletionTime": self.deleted_at,
                "purgeAt": self.purge_at,
            }
        })
    }

    fn expired(&self, now: OffsetDateTime) -> bool {
        clock::parse(&self.purge_at).is_some_and(|t| t <= now)
    }
}

fn key(subscription: &str, location: &str, name: &str) -> String {
    format!(
        "{}/{}/{}",
        subscription.to_ascii_lowercase(),
        location.to_ascii_lowercase(),
        name.to_ascii_lowercase()
    )
}

fn subscription_of(vault_id: &str) -> String {
    vault_id.split('/').nth(2).unwrap_or_default().to_string()
}

/// Takes the vault out of the resources table into a deleted-vault record
/// (in the transaction deleting it); returns the record's name.
pub fn soft_delete(tx: &mut WriteTx, vault: &Value) -> Result<String, ArmError> {
    let vid = vault["id"].as_str().unwrap_or_default().to_string();
    let location = vault["location"].as_str().unwrap_or_default().to_string();
    let now = clock::now();
    let name = uuid::Uuid::new_v4().to_string();
    let rec = DeletedVault {
        name: name.clone(),
        vault_id: vid.clone(),
        location: location.clone(),
        deleted_at: clock::format(now),
        purge_at: clock::format(now + Duration::days(retention_days(vault))),
        meta: meta::get(tx, &vid)?,
        tree: resource::take_tree(tx, &vid)?,
    };
    tx.put_json(
        DELETED,
        &key(&subscription_of(&vid), &location, &name),
        &rec,
    )?;
    Ok(name)
}

/// The deleted vault that holds `vault_id`, if one does (not yet purged).
pub fn holding(r: &impl Reader, vault_id: &str) -> Result<Option<DeletedVault>, ArmError> {
    let sub = subscription_of(vault_id).to_ascii_lowercase();
    let k = id::key(vault_id);
    Ok(r.scan_json::<DeletedVault>(DELETED, &format!("{sub}/"))?
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| id::key(&d.vault_id) == k && !d.expired(clock::now())))
}

/// Forgets deleted vaults whose `purgeAt` has passed, with everything kept
/// under their ids (the same cascade a final delete runs).
pub fn purge_expired(ctx: &Ctx, tx: &mut WriteTx, subscription: &str) -> Result<(), ArmError> {
    let now = clock::now();
    let prefix = format!("{}/", subscription.to_ascii_lowercase());
    for (k, d) in tx.scan_json::<DeletedVault>(DELETED, &prefix)? {
        if d.expired(now) {
            tx.delete(DELETED, &k)?;
            ctx.cascade_delete(tx, &d.vault_id)?;
        }
    }
    Ok(())
}

fn location_of(req: &ArmRequest) -> Result<String, ArmError> {
    let p = req.provider_part()?;
    let l = p.names.first().cloned().unwrap_or_default();
    Ok(regions::require(&l, TYPE)?.name.to_string())
}

fn not_found(name: &str) -> ArmError {
    ArmError::new(
        404,
        "ResourceNotFound",
        format!("Deleted vault '{name}' was not found in this location; list locations/{{location}}/deletedVaults for the names of the deleted vaults (they are purged at purgeAt)."),
    )
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let sub = req.path.subscription.clone().unwrap_or_default();
    let loc = location_of(req)?;
    ctx.store().write(|tx| purge_expired(ctx, tx, &sub))?;
    let prefix = format!("{}/{}/", sub.to_ascii_lowercase(), loc);
    let items: Vec<Value> = ctx
        .store()
        .read(|r| r.scan_json::<DeletedVault>(DELETED, &prefix))?
        .into_iter()
        .map(|(_, d)| d.wire(&sub))
        .collect();
    paging::page_visible(ctx, req, items)
}

fn find(ctx: &Ctx, req: &ArmRequest) -> Result<(String, DeletedVault), ArmError> {
    let sub = req.path.subscription.clone().unwrap_or_default();
    let loc = location_of(req)?;
    let name = req
        .provider_part()?
        .names
        .get(1)
        .cloned()
        .unwrap_or_default();
    ctx.store().write(|tx| purge_expired(ctx, tx, &sub))?;
    let k = key(&sub, &loc, &name);
    let d = ctx
        .store()
        .read(|r| r.get_json::<DeletedVault>(DELETED, &k))?
        .ok_or_else(|| not_found(&name))?;
    Ok((k, d))
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let sub = req.path.subscription.clone().unwrap_or_default();
    let (_, d) = find(ctx, req)?;
    Ok(Reply::ok(d.wire(&sub)))
}

/// POST `undelete`: the vault comes back, as it was, into its resource
/// group. Answered as a long-running operation polled under the deleted
/// vault (`operations/{id}`).
pub fn undelete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let sub = req.path.subscription.clone().unwrap_or_default();
    let (k, d) = find(ctx, req)?;
    let body: UndeleteBody = req.body_as()?;
    let group = body.properties.recovery_resource_group_id.as_str();
    check_recovery_group(&d.vault_id, group)?;
    // Bringing a vault back writes it: the caller needs that right on it.
    ctx.require_linked(
        "Microsoft.RecoveryServices/locations/deletedVaults/undelete/action",
        &req.path.id(),
        "Microsoft.RecoveryServices/vaults/write",
        &d.vault_id,
    )?;
    let op = OperationRecord::new(ctx, NS, &d.vault_id).succeed(None);
    ctx.store().write(|tx| {
        let rg = d.vault_id.split("/providers/").next().unwrap_or_default();
        if resource::get(tx, rg)?.is_none() {
            return Err(ArmError::resource_group_not_found(
                rg.rsplit('/').next().unwrap_or_default(),
            ));
        }
        if resource::get(tx, &d.vault_id)?.is_some() {
            return Err(ArmError::conflict(
                "UserErrorVaultAlreadyExists",
                format!("A vault '{}' exists again in that resource group; delete or rename it before undeleting this one.", d.vault_id),
            ));
        }
        if tx.get_json::<DeletedVault>(DELETED, &k)?.is_none() {
            return Err(not_found(&d.name));
        }
        tx.delete(DELETED, &k)?;
        resource::restore_tree(tx, &d.tree)?;
        if meta::get(tx, &d.vault_id)?.is_none() {
            if let Some(m) = &d.meta {
                meta::put(tx, &d.vault_id, m)?;
            }
        }
        op.save(tx)
    })?;
    let status = format!(
        "{}{}/operations/{}?api-version={}",
        ctx.base_url,
        d.id(&sub),
        op.id,
        req.api_version
    );
    let result = lro::result_url(ctx, &sub, &d.location, &op, &req.api_version);
    Ok(lro::with_retry_after(
        ctx,
        Reply::empty(202)
            .header("Azure-AsyncOperation", status)
            .header("Location", result),
    ))
}

/// `deletedVaults/{name}/operations/{id}`: the status of an undelete (the
/// deleted vault itself is gone once it succeeded).
pub fn operation_status(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let op_id = req
        .provider_part()?
        .names
        .get(2)
        .cloned()
        .unwrap_or_default();
    crate::operations::serve_record(ctx, req, &op_id, None, true)
}

/// Whether creating `vault_id` would take the place of a deleted vault that
/// can still be undeleted.
pub fn check_not_held(r: &impl Reader, vault_id: &str) -> Result<(), ArmError> {
    if let Some(d) = holding(r, vault_id)? {
        return Err(ArmError::conflict(
            "UserErrorVaultSoftDeleted",
            format!("Vault '{vault_id}' was deleted at {} and can be undeleted until {} (deleted vault '{}' in {}). Undelete it, or use another name.", d.deleted_at, d.purge_at, d.name, d.location),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_west_central_us_soft_deletes_vaults() {
        assert!(soft_deletes_vaults("westcentralus"));
        assert!(soft_deletes_vaults("WestCentralUS"));
        assert!(!soft_deletes_vaults("eastus"));
    }

    #[test]
    fn retention_is_the_vaults_setting_within_14_to_180_days() {
        let v = |d: Value| json!({"properties": {"securitySettings": {"softDeleteSettings": {"softDeleteRetentionPeriodInDays": d}}}});
        assert_eq!(retention_days(&json!({})), 14);
        assert_eq!(retention_days(&v(json!(30))), 30);
        assert_eq!(retention_days(&v(json!(180))), 180);
        assert_eq!(retention_days(&v(json!(400))), 14);
    }

    #[test]
    fn a_vault_comes_back_only_into_its_own_group() {
        let vid = "/subscriptions/s/resourceGroups/G/providers/Microsoft.RecoveryServices/vaults/v";
        check_recovery_group(vid, "/subscriptions/s/resourceGroups/g").unwrap();
        assert_eq!(
            check_recovery_group(vid, "/subscriptions/s/resourceGroups/other")
                .unwrap_err()
                .code(),
            "UserErrorRecoveryResourceGroupNotSupported"
        );
        assert_eq!(
            check_recovery_group(vid, "not-an-id").unwrap_err().code(),
            "InvalidParameter"
        );
    }
}
