//! A vault's Backup settings: storage redundancy with cross-region restore
//! (`backupstorageconfig/vaultstorageconfig`) and soft delete
//! (`backupconfig/vaultconfig`).

use serde_json::{json, Value};

use recoverite_arm::{ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::Reader;

use crate::vault_of;

pub use recoverite_rs_core::backup_config::{
    check_soft_delete_change, check_storage_change, get_config, put_config, VaultConfig,
};

fn storage_doc(vault_id: &str, c: &VaultConfig, locked: bool) -> Value {
    json!({
        "id": format!("{vault_id}/backupstorageconfig/vaultstorageconfig"), "name": "vaultstorageconfig",
        "type": "Microsoft.RecoveryServices/vaults/backupstorageconfig",
        "properties": {
            "storageModelType": c.storage_type, "storageType": c.storage_type,
            "storageTypeState": if locked { "Locked" } else { "Unlocked" },
            "crossRegionRestoreFlag": c.cross_region_restore, "dedupState": "Disabled", "xcoolState": "Disabled",
        }
    })
}

fn vault_doc(vault_id: &str, c: &VaultConfig) -> Value {
    json!({
        "id": format!("{vault_id}/backupconfig/vaultconfig"), "name": "vaultconfig",
        "type": "Microsoft.RecoveryServices/vaults/backupconfig",
        "properties": {
            "softDeleteFeatureState": c.soft_delete, "enhancedSecurityState": c.enhanced_security,
            "isSoftDeleteFeatureStateEditable": c.soft_delete != "AlwaysON",
            "softDeleteRetentionPeriodInDays": crate::items::SOFT_DELETE_DAYS,
        }
    })
}

fn ever_protected(r: &impl Reader, vault_id: &str) -> Result<bool, ArmError> {
    Ok(recoverite_rs_core::vault::get(r, vault_id)?.is_some_and(|m| m.ever_registered))
}

pub fn storage(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    if req.method == http::Method::GET {
        return ctx.store().view(|r| {
            let c = get_config(r, &vid)?;
            Ok(Reply::ok(storage_doc(&vid, &c, ever_protected(r, &vid)?)))
        });
    }
    let body: Value = req.body_as()?;
    let p = &body["properties"];
    let t = p["storageModelType"]
        .as_str()
        .or(p["storageType"].as_str())
        .map(str::to_string);
    let crr = p["crossRegionRestoreFlag"].as_bool();
    let doc = ctx.store().write(|tx| {
        let locked = ever_protected(tx, &vid)?;
        let c = check_storage_change(&get_config(tx, &vid)?, t.as_deref(), crr, locked)?;
        put_config(tx, &vid, &c)?;
        Ok::<_, ArmError>(storage_doc(&vid, &c, locked))
    })?;
    Ok(if req.method == http::Method::PATCH {
        Reply::empty(204)
    } else {
        Reply::ok(doc)
    })
}

pub fn vault(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    if req.method == http::Method::GET {
        return ctx
            .store()
            .view(|r| Ok(Reply::ok(vault_doc(&vid, &get_config(r, &vid)?))));
    }
    let body: Value = req.body_as()?;
    let p = &body["properties"];
    let doc = ctx.store().write(|tx| {
        let c = check_soft_delete_change(
            &get_config(tx, &vid)?,
            p["softDeleteFeatureState"].as_str(),
            p["enhancedSecurityState"].as_str(),
        )?;
        put_config(tx, &vid, &c)?;
        Ok::<_, ArmError>(vault_doc(&vid, &c))
    })?;
    Ok(Reply::ok(doc))
}

/// `vaults/{v}/backupEncryptionConfigs/backupResourceEncryptionConfig`:
/// backup data is encrypted at rest with platform-managed keys; a PUT may
/// say so again, and customer-managed keys (a Key Vault key the vault's
/// identity unwraps) are refused, since recoverite serves no Key Vault keys.
pub fn encryption(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    if req.method != http::Method::GET {
        let wanted = req
            .body
            .as_ref()
            .and_then(|b| b["properties"]["encryptionAtRestType"].as_str())
            .unwrap_or("MicrosoftManaged");
        if !wanted.eq_ignore_ascii_case("MicrosoftManaged") {
            return Err(ArmError::bad_request(
                "UserErrorCMKEncryptionNotSupported",
                format!("recoverite encrypts backup data with platform-managed keys only; '{wanted}' encryption (a Key Vault key) is not served."),
            ));
        }
    }
    Ok(Reply::ok(json!({
        "id": format!("{vid}/backupEncryptionConfigs/backupResourceEncryptionConfig"),
        "name": "backupResourceEncryptionConfig",
        "type": "Microsoft.RecoveryServices/vaults/backupEncryptionConfigs",
        "properties": {
            "encryptionAtRestType": "MicrosoftManaged",
            "lastUpdateStatus": "NotEnabled",
            "infrastructureEncryptionState": "Disabled",
        }
    })))
}

/// `vaults/{v}/backupResourceGuardProxies`: no resource guard protects the
/// vault (multi-user authorization needs a Microsoft.DataProtection
/// resource guard, which recoverite does not serve), so the list is empty.
pub fn resource_guard_proxies(
    ctx: &Ctx,
    req: &ArmRequest,
    name: Option<&str>,
) -> Result<Reply, ArmError> {
    ctx.store().view(|r| vault_of(r, req))?;
    match name {
        None => Ok(Reply::ok(json!({"value": []}))),
        Some(n) => Err(ArmError::new(
            404,
            "ResourceGuardProxyNotFound",
            format!("The vault has no resource guard proxy '{n}': no resource guard protects it."),
        )),
    }
}
