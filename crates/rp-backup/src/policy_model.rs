//! A backup policy as stored (issue 9, point 2): Azure's polymorphic
//! shapes as typed enums — the workload by `backupManagementType`, the
//! schedule by `schedulePolicyType` — so the clock, the backups and the
//! MARS agent read one struct instead of looking keys up. Fields Azure only
//! echoes (tiering, snapshot consistency, a MARS policy's extras) are kept
//! as given beside the typed ones. A body is checked by `policy::validate`
//! before it becomes one of these.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use recoverite_arm::{document, ArmError};

use crate::POLICY_TYPE;

/// How long a point is kept: `{count, durationType}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionDuration {
    pub count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_type: Option<String>,
}

/// One of a long-term retention's daily, weekly, monthly or yearly parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSchedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_duration: Option<RetentionDuration>,
    /// `retentionTimes`, `daysOfTheWeek`, `monthsOfYear`, formats…
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

impl RetentionSchedule {
    fn count(part: &Option<RetentionSchedule>) -> Option<i64> {
        part.as_ref()
            .and_then(|s| s.retention_duration.as_ref())
            .map(|d| d.count)
    }
}

/// `LongTermRetentionPolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    pub retention_policy_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_schedule: Option<RetentionSchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly_schedule: Option<RetentionSchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_schedule: Option<RetentionSchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly_schedule: Option<RetentionSchedule>,
}

impl Retention {
    pub fn daily_count(&self) -> Option<i64> {
        RetentionSchedule::count(&self.daily_schedule)
    }

    pub fn weekly_count(&self) -> Option<i64> {
        RetentionSchedule::count(&self.weekly_schedule)
    }

    /// Days a scheduled point is kept: its daily retention, or a weekly
    /// schedule's weeks × 7 (30 when the policy names neither).
    pub fn days(&self) -> i64 {
        self.daily_count()
            .or_else(|| self.weekly_count().map(|w| w * 7))
            .unwrap_or(30)
    }
}

/// A V1 (and MARS) schedule: one run time a day for VMs, up to three for
/// MARS, daily or on named days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimpleSchedule {
    pub schedule_run_frequency: String,
    #[serde(default)]
    pub schedule_run_times: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule_run_days: Vec<String>,
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HourlySchedule {
    pub interval: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_window_start_time: Option<String>,
    #[serde(default = "full_day")]
    pub schedule_window_duration: i64,
}

fn full_day() -> i64 {
    24
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DailySchedule {
    #[serde(default)]
    pub schedule_run_times: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeeklySchedule {
    #[serde(default)]
    pub schedule_run_days: Vec<String>,
    #[serde(default)]
    pub schedule_run_times: Vec<String>,
}

/// An Enhanced (V2) schedule: hourly, daily or weekly, each in its own object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleV2 {
    pub schedule_run_frequency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_schedule: Option<HourlySchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_schedule: Option<DailySchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly_schedule: Option<WeeklySchedule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "schedulePolicyType")]
pub enum Schedule {
    SimpleSchedulePolicy(SimpleSchedule),
    SimpleSchedulePolicyV2(ScheduleV2),
}

impl Schedule {
    pub fn frequency(&self) -> &str {
        match self {
            Schedule::SimpleSchedulePolicy(s) => &s.schedule_run_frequency,
            Schedule::SimpleSchedulePolicyV2(s) => &s.schedule_run_frequency,
        }
    }

    /// The times of day it runs (V2: of its daily or weekly part).
    pub fn run_times(&self) -> &[String] {
        match self {
            Schedule::SimpleSchedulePolicy(s) => &s.schedule_run_times,
            Schedule::SimpleSchedulePolicyV2(s) => match s.schedule_run_frequency.as_str() {
                "Daily" => s
                    .daily_schedule
                    .as_ref()
                    .map_or(&[], |d| &d.schedule_run_times),
                _ => s
                    .weekly_schedule
                    .as_ref()
                    .map_or(&[], |w| &w.schedule_run_times),
            },
        }
    }

    /// The days a weekly schedule runs on.
    pub fn run_days(&self) -> &[String] {
        match self {
            Schedule::SimpleSchedulePolicy(s) => &s.schedule_run_days,
            Schedule::SimpleSchedulePolicyV2(s) => s
                .weekly_schedule
                .as_ref()
                .map_or(&[], |w| &w.schedule_run_days),
        }
    }

    pub fn hourly(&self) -> Option<&HourlySchedule> {
        match self {
            Schedule::SimpleSchedulePolicy(_) => None,
            Schedule::SimpleSchedulePolicyV2(s) => s.hourly_schedule.as_ref(),
        }
    }
}

/// Where a policy's instant-restore snapshots go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstantRpDetails {
    #[serde(
        rename = "azureBackupRGNamePrefix",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub azure_backup_rg_name_prefix: Option<String>,
    #[serde(
        rename = "azureBackupRGNameSuffix",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub azure_backup_rg_name_suffix: Option<String>,
}

/// `AzureIaaSVMProtectionPolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmPolicy {
    /// `V1` (Standard) or `V2` (Enhanced).
    #[serde(default = "standard")]
    pub policy_type: String,
    pub schedule_policy: Schedule,
    pub retention_policy: Retention,
    pub instant_rp_retention_range_in_days: i64,
    pub time_zone: String,
    #[serde(
        rename = "instantRPDetails",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub instant_rp_details: Option<InstantRpDetails>,
    #[serde(default)]
    pub protected_items_count: usize,
    /// `tieringPolicy`, `snapshotConsistencyType`…: kept as given.
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

fn standard() -> String {
    "V1".into()
}

/// `MabProtectionPolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MabPolicy {
    pub schedule_policy: Schedule,
    pub retention_policy: Retention,
    #[serde(default)]
    pub protected_items_count: usize,
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

/// A policy's properties by workload. Workload (SQL/SAP) policies are kept
/// as given: recoverite makes only Azure's `HourlyLogBackup` default of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backupManagementType")]
pub enum PolicyProperties {
    #[serde(rename = "AzureIaasVM")]
    Vm(VmPolicy),
    #[serde(rename = "MAB")]
    Mab(MabPolicy),
    AzureWorkload(Map<String, Value>),
}

/// A backup policy of a vault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub properties: PolicyProperties,
}

recoverite_arm::impl_document!(Policy, POLICY_TYPE, "backup policy");

impl Policy {
    /// A policy of the vault from validated properties: a VM policy gets
    /// Azure's defaults (2 instant-restore days for V1, 7 for V2; UTC).
    pub fn new(vault_id: &str, name: &str, mut props: Value) -> Result<Policy, ArmError> {
        if props["backupManagementType"] == "AzureIaasVM" {
            if props.get("instantRpRetentionRangeInDays").is_none() {
                let v2 = props["policyType"] == "V2";
                props["instantRpRetentionRangeInDays"] = Value::from(if v2 { 7 } else { 2 });
            }
            if props.get("timeZone").is_none() {
                props["timeZone"] = Value::from("UTC");
            }
        }
        let properties = serde_json::from_value(props).map_err(|e| {
            ArmError::new(
                400,
                "BMSUserErrorInvalidPolicyInput",
                format!("properties: {e}"),
            )
        })?;
        Ok(Policy {
            id: format!("{vault_id}/backupPolicies/{name}"),
            name: name.to_string(),
            kind: POLICY_TYPE.to_string(),
            properties,
        })
    }

    pub fn vm(&self) -> Option<&VmPolicy> {
        match &self.properties {
            PolicyProperties::Vm(v) => Some(v),
            _ => None,
        }
    }

    pub fn management_type(&self) -> &'static str {
        match self.properties {
            PolicyProperties::Vm(_) => "AzureIaasVM",
            PolicyProperties::Mab(_) => "MAB",
            PolicyProperties::AzureWorkload(_) => "AzureWorkload",
        }
    }

    /// The schedule the clock runs (none for workload policies).
    pub fn schedule(&self) -> Option<&Schedule> {
        match &self.properties {
            PolicyProperties::Vm(v) => Some(&v.schedule_policy),
            PolicyProperties::Mab(m) => Some(&m.schedule_policy),
            PolicyProperties::AzureWorkload(_) => None,
        }
    }

    /// Days a scheduled point is kept (30 without a long-term retention).
    pub fn retention_days(&self) -> i64 {
        match &self.properties {
            PolicyProperties::Vm(v) => v.retention_policy.days(),
            PolicyProperties::Mab(m) => m.retention_policy.days(),
            PolicyProperties::AzureWorkload(_) => 30,
        }
    }

    /// The API's view, with how many items the policy protects now.
    pub fn render(&self, protected_items: usize) -> Result<Value, ArmError> {
        let mut p = self.clone();
        match &mut p.properties {
            PolicyProperties::Vm(v) => v.protected_items_count = protected_items,
            PolicyProperties::Mab(m) => m.protected_items_count = protected_items,
            PolicyProperties::AzureWorkload(w) => {
                w.insert("protectedItemsCount".into(), Value::from(protected_items));
            }
        }
        document::to_value(&p)
    }
}

/// Instant-restore days and retention days of a VM's points: the policy's,
/// or Azure's defaults (2 and 30) without one.
pub fn point_retention(policy: Option<&Policy>) -> (i64, i64) {
    let instant = policy
        .and_then(Policy::vm)
        .map_or(2, |v| v.instant_rp_retention_range_in_days);
    (instant, policy.map_or(30, Policy::retention_days))
}

/// Where instant-restore snapshots go: the policy's
/// `instantRPDetails.azureBackupRGNamePrefix` + `1` + its suffix, or
/// `AzureBackupRG_{region}_1`.
pub fn snapshot_group_name(policy: Option<&Policy>, region: &str) -> String {
    let details = policy
        .and_then(Policy::vm)
        .and_then(|v| v.instant_rp_details.as_ref());
    match details.and_then(|d| {
        d.azure_backup_rg_name_prefix
            .as_deref()
            .filter(|p| !p.is_empty())
    }) {
        Some(prefix) => format!(
            "{prefix}1{}",
            details
                .and_then(|d| d.azure_backup_rg_name_suffix.as_deref())
                .unwrap_or("")
        ),
        None => format!("AzureBackupRG_{region}_1"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vm_policy(props: Value) -> Policy {
        Policy::new("/v", "p", props).unwrap()
    }

    #[test]
    fn retention_comes_from_the_policy_with_azures_defaults() {
        assert_eq!(point_retention(None), (2, 30));
        let daily = vm_policy(json!({
            "backupManagementType": "AzureIaasVM", "instantRpRetentionRangeInDays": 5,
            "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily", "scheduleRunTimes": ["2026-01-01T02:00:00Z"]},
            "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy", "dailySchedule": {"retentionTimes": ["2026-01-01T02:00:00Z"], "retentionDuration": {"count": 180, "durationType": "Days"}}}}));
        assert_eq!(point_retention(Some(&daily)), (5, 180));
        // A weekly schedule keeps its points its weeks, not the daily default.
        let weekly = vm_policy(json!({
            "backupManagementType": "AzureIaasVM",
            "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Weekly", "scheduleRunTimes": ["2026-01-01T02:00:00Z"], "scheduleRunDays": ["Sunday"]},
            "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy", "weeklySchedule": {"daysOfTheWeek": ["Sunday"], "retentionDuration": {"count": 12, "durationType": "Weeks"}}}}));
        assert_eq!(point_retention(Some(&weekly)), (2, 84));
        let w = weekly.render(3).unwrap();
        assert_eq!(w["properties"]["protectedItemsCount"], 3);
        assert_eq!(w["properties"]["policyType"], "V1");
        assert_eq!(w["properties"]["timeZone"], "UTC");
        assert_eq!(
            w["properties"]["retentionPolicy"]["weeklySchedule"]["daysOfTheWeek"],
            json!(["Sunday"]),
            "fields only echoed are kept as given"
        );
    }

    #[test]
    fn snapshots_go_to_the_policys_group_or_azures() {
        assert_eq!(
            snapshot_group_name(None, "westeurope"),
            "AzureBackupRG_westeurope_1"
        );
        let p = vm_policy(json!({
            "backupManagementType": "AzureIaasVM", "policyType": "V2",
            "instantRPDetails": {"azureBackupRGNamePrefix": "snaps-", "azureBackupRGNameSuffix": "-x"},
            "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Hourly",
                               "hourlySchedule": {"interval": 4, "scheduleWindowStartTime": "2026-01-01T08:00:00Z", "scheduleWindowDuration": 12}},
            "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy", "dailySchedule": {"retentionDuration": {"count": 30, "durationType": "Days"}}}}));
        assert_eq!(snapshot_group_name(Some(&p), "westeurope"), "snaps-1-x");
        assert_eq!(point_retention(Some(&p)).0, 7, "V2 keeps 7 instant days");
        assert_eq!(p.schedule().unwrap().hourly().unwrap().interval, 4);
    }

    #[test]
    fn a_policy_of_an_unknown_shape_is_refused() {
        let e = Policy::new(
            "/v",
            "p",
            json!({"backupManagementType": "AzureIaasVM", "schedulePolicy": {"schedulePolicyType": "Cron"}}),
        )
        .unwrap_err();
        assert_eq!(e.body.code, "BMSUserErrorInvalidPolicyInput");
    }
}
