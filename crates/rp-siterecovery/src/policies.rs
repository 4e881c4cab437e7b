//! A2A replication policies (document 003): recovery point retention of
//! 1 to 72 hours (default 24), app-consistent snapshots every 1 to 12 hours
//! (default 4) or off, and multi-VM consistency switched on or off.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::{document, names, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::Reader;

use crate::{jobs, vault_of};

pub const POLICY_TYPE: &str = "Microsoft.RecoveryServices/vaults/replicationPolicies";

pub const RETENTION_MINUTES: std::ops::RangeInclusive<i64> = 60..=72 * 60;
pub const DEFAULT_RETENTION_MINUTES: i64 = 24 * 60;
pub const APP_CONSISTENT_MINUTES: std::ops::RangeInclusive<i64> = 60..=12 * 60;
pub const DEFAULT_APP_CONSISTENT_MINUTES: i64 = 4 * 60;
/// Crash-consistent points are taken every 5 minutes; not configurable.
pub const CRASH_CONSISTENT_MINUTES: i64 = 5;
/// Health turns to warning when the newest point is older than this.
pub const RPO_THRESHOLD_MINUTES: i64 = 60;

/// The A2A settings a policy stores, checked against the documented ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct A2aSettings {
    pub recovery_point_history: i64,
    pub app_consistent_frequency: i64,
    pub multi_vm_sync: bool,
}

impl A2aSettings {
    /// Reads `input` (an `A2APolicyCreationInput`) over `base`.
    pub fn from_input(input: &Value, base: Option<&A2aSettings>) -> Result<A2aSettings, ArmError> {
        let field = |k: &str| -> Result<Option<i64>, ArmError> {
            match input.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                    ArmError::invalid_parameter(k, format!("'{k}' is a whole number of minutes."))
                }),
            }
        };
        let history = field("recoveryPointHistory")?
            .or(base.map(|b| b.recovery_point_history))
            .unwrap_or(DEFAULT_RETENTION_MINUTES);
        if !RETENTION_MINUTES.contains(&history) {
            return Err(ArmError::invalid_parameter(
                "recoveryPointHistory",
                format!("Recovery point retention of {history} minutes is out of range; choose 60 to 4320 minutes (1 to 72 hours)."),
            ));
        }
        let app = field("appConsistentFrequencyInMinutes")?
            .or(base.map(|b| b.app_consistent_frequency))
            .unwrap_or(DEFAULT_APP_CONSISTENT_MINUTES);
        if app != 0 && !APP_CONSISTENT_MINUTES.contains(&app) {
            return Err(ArmError::invalid_parameter(
                "appConsistentFrequencyInMinutes",
                format!("App-consistent snapshot frequency of {app} minutes is out of range; choose 60 to 720 minutes (1 to 12 hours), or 0 to turn app-consistent snapshots off."),
            ));
        }
        if app > history {
            return Err(ArmError::invalid_parameter(
                "appConsistentFrequencyInMinutes",
                format!("App-consistent snapshots every {app} minutes would outlive the {history}-minute retention; make the frequency at most the retention."),
            ));
        }
        if let Some(c) = field("crashConsistentFrequencyInMinutes")? {
            if c != CRASH_CONSISTENT_MINUTES {
                return Err(ArmError::invalid_parameter(
                    "crashConsistentFrequencyInMinutes",
                    format!("Crash-consistent recovery points are taken every {CRASH_CONSISTENT_MINUTES} minutes; omit the field or send {CRASH_CONSISTENT_MINUTES}."),
                ));
            }
        }
        let multi = match input.get("multiVmSyncStatus").and_then(Value::as_str) {
            Some(s) if s.eq_ignore_ascii_case("enable") => true,
            Some(s) if s.eq_ignore_ascii_case("disable") => false,
            Some(s) => {
                return Err(ArmError::invalid_parameter(
                    "multiVmSyncStatus",
                    format!("multiVmSyncStatus '{s}' is not valid; send 'Enable' or 'Disable'."),
                ))
            }
            None => match base {
                Some(b) => b.multi_vm_sync,
                None => {
                    return Err(ArmError::invalid_parameter(
                        "multiVmSyncStatus",
                        "An A2A policy needs 'multiVmSyncStatus': 'Enable' or 'Disable'.",
                    ))
                }
            },
        };
        Ok(A2aSettings {
            recovery_point_history: history,
            app_consistent_frequency: app,
            multi_vm_sync: multi,
        })
    }

    pub fn of(d: &A2aPolicyDetails) -> A2aSettings {
        A2aSettings {
            recovery_point_history: d.recovery_point_history,
            app_consistent_frequency: d.app_consistent_frequency_in_minutes,
            multi_vm_sync: d.multi_vm_sync_status == "Enabled",
        }
    }

    pub fn details(&self) -> A2aPolicyDetails {
        A2aPolicyDetails {
            instance_type: "A2A".into(),
            recovery_point_history: self.recovery_point_history,
            app_consistent_frequency_in_minutes: self.app_consistent_frequency,
            crash_consistent_frequency_in_minutes: CRASH_CONSISTENT_MINUTES,
            recovery_point_threshold_in_minutes: RPO_THRESHOLD_MINUTES,
            multi_vm_sync_status: if self.multi_vm_sync {
                "Enabled"
            } else {
                "Disabled"
            }
            .into(),
        }
    }
}

/// `A2APolicyDetails` as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct A2aPolicyDetails {
    pub instance_type: String,
    pub recovery_point_history: i64,
    pub app_consistent_frequency_in_minutes: i64,
    pub crash_consistent_frequency_in_minutes: i64,
    pub recovery_point_threshold_in_minutes: i64,
    /// `Enabled` or `Disabled`.
    pub multi_vm_sync_status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyProperties {
    pub friendly_name: String,
    pub provider_specific_details: A2aPolicyDetails,
}

/// A replication policy of a vault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationPolicy {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    pub properties: PolicyProperties,
}

recoverite_arm::impl_document!(ReplicationPolicy, POLICY_TYPE, "replication policy");

impl ReplicationPolicy {
    pub fn settings(&self) -> A2aSettings {
        A2aSettings::of(&self.properties.provider_specific_details)
    }
}

/// The policy at `id`, if there is one.
pub fn load(r: &impl Reader, id: &str) -> Result<Option<ReplicationPolicy>, ArmError> {
    document::load(r, id)
}

/// The policy at `id` (404 without one).
pub fn found(r: &impl Reader, id: &str) -> Result<ReplicationPolicy, ArmError> {
    load(r, id)?.ok_or_else(|| {
        ArmError::new(
            404,
            "NotFound",
            format!("The replication policy '{id}' was not found in the vault. Create it first."),
        )
    })
}

/// PUT creates (`properties.providerSpecificInput`); PATCH updates
/// (`properties.replicationProviderSettings`) over the stored settings.
pub fn put(ctx: &Ctx, req: &ArmRequest, update: bool) -> Result<Reply, ArmError> {
    let name = req
        .path
        .provider
        .as_ref()
        .and_then(|p| p.name())
        .unwrap_or_default()
        .to_string();
    names::check_generic("replication policy", &name)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let field = if update {
        "replicationProviderSettings"
    } else {
        "providerSpecificInput"
    };
    let input = body["properties"]
        .get(field)
        .cloned()
        .unwrap_or(Value::Null);
    let id = req.path.id();
    ctx.store().write(|tx| {
        let vault = vault_of(tx, req)?;
        let vid = vault.id.clone();
        let existing = load(tx, &id)?;
        if update && existing.is_none() {
            return Err(ArmError::new(404, "NotFound", format!("The policy '{name}' was not found in the vault; create it with PUT first.")));
        }
        let base = existing.as_ref().map(ReplicationPolicy::settings);
        let settings = if input.is_null() && update {
            base.clone().ok_or_else(|| ArmError::internal("stored policy settings are unreadable"))?
        } else {
            let t = input.get("instanceType").and_then(Value::as_str).unwrap_or_default();
            if !t.eq_ignore_ascii_case("A2A") {
                return Err(ArmError::invalid_parameter(
                    &format!("properties.{field}.instanceType"),
                    format!("Policy instanceType '{t}' is not supported by recoverite; send 'A2A' (Azure to Azure)."),
                ));
            }
            A2aSettings::from_input(&input, base.as_ref())?
        };
        let policy = ReplicationPolicy {
            id: id.clone(),
            name: name.clone(),
            kind: POLICY_TYPE.to_string(),
            location: vault.location.clone(),
            properties: PolicyProperties {
                friendly_name: name.clone(),
                provider_specific_details: settings.details(),
            },
        };
        document::save(tx, &policy)?;
        let doc = document::to_value(&policy)?;
        let (scenario, friendly) = if existing.is_some() { ("UpdatePolicy", "Update replication policy") } else { ("AddPolicy", "Create replication policy") };
        jobs::record(tx, &vid, scenario, friendly, &doc, &["Creating or updating policy"])?;
        crate::finish(ctx, req, tx, Some(doc))
    })
    .map(|op| crate::accepted(ctx, req, &op))
}

/// DELETE refuses while a container mapping still uses the policy.
pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let id = req.path.id();
    ctx.store().write(|tx| {
        let vault = vault_of(tx, req)?;
        let vid = vault.id.clone();
        let Some(doc) = resource::get(tx, &id)? else {
            return crate::finish(ctx, req, tx, None);
        };
        if let Some(m) = crate::records::mappings_in(tx, &vid)?
            .into_iter()
            .find(|m| m.properties.policy_id.eq_ignore_ascii_case(&id))
        {
            return Err(ArmError::conflict(
                "PolicyInUse",
                format!("Container mapping '{}' uses this policy. Delete the mapping, or point it at another policy, first.", m.name),
            ));
        }
        resource::delete_tree(tx, &id)?;
        jobs::record(tx, &vid, "RemovePolicy", "Remove replication policy", &doc, &["Removing policy"])?;
        crate::finish(ctx, req, tx, None)
    })
    .map(|op| crate::accepted(ctx, req, &op))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: Value) -> Result<A2aSettings, ArmError> {
        A2aSettings::from_input(&v, None)
    }

    #[test]
    fn defaults_are_24_hours_and_4_hours() {
        let s = input(json!({"multiVmSyncStatus": "Disable"})).unwrap();
        assert_eq!(s.recovery_point_history, 1440);
        assert_eq!(s.app_consistent_frequency, 240);
        assert!(!s.multi_vm_sync);
    }

    #[test]
    fn retention_is_1_to_72_hours() {
        for ok in [60, 4320] {
            assert!(input(json!({"multiVmSyncStatus": "Enable", "recoveryPointHistory": ok, "appConsistentFrequencyInMinutes": 60})).is_ok());
        }
        for bad in [59, 4321, 0] {
            let e = input(json!({"multiVmSyncStatus": "Enable", "recoveryPointHistory": bad}))
                .unwrap_err();
            assert_eq!(e.code(), "InvalidParameter", "{bad}");
        }
    }

    #[test]
    fn app_consistent_is_1_to_12_hours_or_off_and_within_retention() {
        assert!(input(
            json!({"multiVmSyncStatus": "Enable", "appConsistentFrequencyInMinutes": 0})
        )
        .is_ok());
        assert!(input(
            json!({"multiVmSyncStatus": "Enable", "appConsistentFrequencyInMinutes": 720})
        )
        .is_ok());
        assert!(input(
            json!({"multiVmSyncStatus": "Enable", "appConsistentFrequencyInMinutes": 30})
        )
        .is_err());
        assert!(input(
            json!({"multiVmSyncStatus": "Enable", "appConsistentFrequencyInMinutes": 721})
        )
        .is_err());
        assert!(input(json!({"multiVmSyncStatus": "Enable", "recoveryPointHistory": 120, "appConsistentFrequencyInMinutes": 180})).is_err());
    }

    #[test]
    fn multi_vm_sync_is_required_on_create_and_kept_on_update() {
        assert!(input(json!({})).is_err());
        assert!(input(json!({"multiVmSyncStatus": "maybe"})).is_err());
        let base = input(json!({"multiVmSyncStatus": "Enable"})).unwrap();
        let upd =
            A2aSettings::from_input(&json!({"recoveryPointHistory": 2880}), Some(&base)).unwrap();
        assert!(upd.multi_vm_sync);
        assert_eq!(upd.recovery_point_history, 2880);
        assert_eq!(A2aSettings::of(&upd.details()), upd);
        let stored: A2aPolicyDetails = serde_json::from_value(json!({
            "instanceType": "A2A", "recoveryPointHistory": 2880, "appConsistentFrequencyInMinutes": 240,
            "crashConsistentFrequencyInMinutes": 5, "recoveryPointThresholdInMinutes": 60,
            "multiVmSyncStatus": "Enabled"}))
        .unwrap();
        assert_eq!(A2aSettings::of(&stored), upd);
    }
}
