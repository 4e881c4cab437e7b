//! A vault's Backup settings: storage redundancy with cross-region restore
//! (`backupstorageconfig/vaultstorageconfig`) and soft delete
//! (`backupconfig/vaultconfig`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::{ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, Table, WriteTx};

use crate::vault_of;

const CONFIGS: Table = Table("backup_vault_configs");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultConfig {
    /// LocallyRedundant, ZoneRedundant or GeoRedundant (the default).
    pub storage_type: String,
    pub cross_region_restore: bool,
    /// Enabled (default), Disabled or AlwaysON.
    pub soft_delete: String,
    pub enhanced_security: String,
}

impl Default for VaultConfig {
    fn default() -> Self {
        VaultConfig {
            storage_type: "GeoRedundant".into(),
            cross_region_restore: false,
            soft_delete: "Enabled".into(),
            enhanced_security: "Enabled".into(),
        }
    }
}

pub fn get_config(r: &impl Reader, vault_id: &str) -> Result<VaultConfig, ArmError> {
    Ok(r.get_json(CONFIGS, &recoverite_arm::id::key(vault_id))?
        .unwrap_or_default())
}

fn put_config(tx: &mut WriteTx, vault_id: &str, c: &VaultConfig) -> Result<(), ArmError> {
    tx.put_json(CONFIGS, &recoverite_arm::id::key(vault_id), c)?;
    Ok(())
}

fn bad(code: &str, msg: impl Into<String>) -> ArmError {
    ArmError::bad_request(code, msg)
}

/// "Storage redundancy can be changed only until the first item is
/// protected; cross-region restore needs GeoRedundant storage and, once on,
/// cannot be turned off."
pub fn check_storage_change(
    old: &VaultConfig,
    storage_type: Option<&str>,
    crr: Option<bool>,
    ever_protected: bool,
) -> Result<VaultConfig, ArmError> {
    let mut c = old.clone();
    if let Some(t) = storage_type {
        let t = ["LocallyRedundant", "ZoneRedundant", "GeoRedundant"]
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(t))
            .ok_or_else(|| {
                bad(
                    "BMSUserErrorInvalidInput",
                    format!("'{t}' is not LocallyRedundant, ZoneRedundant or GeoRedundant."),
                )
            })?;
        if t != old.storage_type && ever_protected {
            return Err(bad("BMSUserErrorStorageTypeLocked", format!("The vault's storage redundancy ({}) can no longer change: items have been protected in it. Use a new vault for {t} storage.", old.storage_type)));
        }
        c.storage_type = t.to_string();
    }
    if let Some(f) = crr {
        if !f && old.cross_region_restore {
            return Err(bad(
                "BMSUserErrorCrossRegionRestoreCannotBeDisabled",
                "Cross-region restore cannot be turned off once it is on.",
            ));
        }
        c.cross_region_restore = f;
    }
    if c.cross_region_restore && c.storage_type != "GeoRedundant" {
        return Err(bad(
            "BMSUserErrorCrossRegionRestoreNeedsGrs",
            format!(
                "Cross-region restore needs GeoRedundant storage; the vault's is {}.",
                c.storage_type
            ),
        ));
    }
    Ok(c)
}

/// Soft delete: Enabled or Disabled may switch; AlwaysON is for good.
pub fn check_soft_delete_change(
    old: &VaultConfig,
    state: Option<&str>,
    security: Option<&str>,
) -> Result<VaultConfig, ArmError> {
    let mut c = old.clone();
    if let Some(s) = state {
        let s = ["Enabled", "Disabled", "AlwaysON"]
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                bad(
                    "BMSUserErrorInvalidInput",
                    format!("softDeleteFeatureState '{s}' is not Enabled, Disabled or AlwaysON."),
                )
            })?;
        if old.soft_delete == "AlwaysON" && s != "AlwaysON" {
            return Err(bad(
                "BMSUserErrorSoftDeleteAlwaysOn",
                "Soft delete is always on for this vault (AlwaysON); it cannot be turned off.",
            ));
        }
        c.soft_delete = s.to_string();
    }
    if let Some(e) = security {
        c.enhanced_security = if e.eq_ignore_ascii_case("Disabled") {
            "Disabled"
        } else {
            "Enabled"
        }
        .into();
    }
    Ok(c)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redundancy_changes_until_items_and_crr_needs_grs_for_good() {
        let d = VaultConfig::default();
        assert_eq!(d.storage_type, "GeoRedundant");
        let lrs = check_storage_change(&d, Some("locallyredundant"), None, false).unwrap();
        assert_eq!(lrs.storage_type, "LocallyRedundant");
        assert_eq!(
            check_storage_change(&d, Some("LocallyRedundant"), None, true)
                .unwrap_err()
                .body
                .code,
            "BMSUserErrorStorageTypeLocked"
        );
        assert!(
            check_storage_change(&d, Some("GeoRedundant"), None, true).is_ok(),
            "same type is no change"
        );
        assert_eq!(
            check_storage_change(&lrs, None, Some(true), false)
                .unwrap_err()
                .body
                .code,
            "BMSUserErrorCrossRegionRestoreNeedsGrs"
        );
        let crr = check_storage_change(&d, None, Some(true), true).unwrap();
        assert_eq!(
            check_storage_change(&crr, None, Some(false), true)
                .unwrap_err()
                .body
                .code,
            "BMSUserErrorCrossRegionRestoreCannotBeDisabled"
        );
        assert!(check_storage_change(&d, Some("Cool"), None, false).is_err());
    }

    #[test]
    fn always_on_soft_delete_stays_on() {
        let d = VaultConfig::default();
        let off = check_soft_delete_change(&d, Some("Disabled"), None).unwrap();
        assert_eq!(off.soft_delete, "Disabled");
        let on = check_soft_delete_change(&off, Some("AlwaysON"), None).unwrap();
        assert_eq!(
            check_soft_delete_change(&on, Some("Enabled"), None)
                .unwrap_err()
                .body
                .code,
            "BMSUserErrorSoftDeleteAlwaysOn"
        );
        assert!(check_soft_delete_change(&d, Some("Maybe"), None).is_err());
    }
}
