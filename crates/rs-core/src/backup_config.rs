//! A vault's Backup settings, kept once for the vault and read by both
//! the vault's own `redundancySettings`/`securitySettings` and Backup's
//! `backupstorageconfig`/`backupconfig`, so the two views cannot disagree.

use serde::{Deserialize, Serialize};

use recoverite_arm::ArmError;
use recoverite_store::{Reader, Table, WriteTx};

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

pub fn put_config(tx: &mut WriteTx, vault_id: &str, c: &VaultConfig) -> Result<(), ArmError> {
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
