//! Backup policies for Azure VMs: the defaults every vault starts with, and
//! the rules a policy must satisfy (Microsoft's Backup documentation:
//! `backup-support-matrix-iaas.md`, `backup-instant-restore-capability.md`).

use serde_json::{json, Value};

use recoverite_arm::{document, resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, Table, WriteTx};

pub use crate::policy_model::Policy;
use crate::{items, vault_of};

/// Vaults whose default policies were made (deleting one keeps it deleted).
const DEFAULTS_MADE: Table = Table("backup_default_policies");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    NotServed(String),
    Invalid(String, String),
}

impl PolicyError {
    pub fn to_arm(&self) -> ArmError {
        match self {
            PolicyError::NotServed(t) => ArmError::bad_request(
                "BMSUserErrorNotSupported",
                format!("Only Azure VM (AzureIaasVM) backup policies can be created or changed here; '{t}' workloads are outside what recoverite serves (the README lists them)."),
            ),
            PolicyError::Invalid(field, why) => ArmError::new(
                400,
                "BMSUserErrorInvalidPolicyInput",
                format!("{field}: {why}"),
            ),
        }
    }
}

fn invalid(field: &str, why: impl Into<String>) -> PolicyError {
    PolicyError::Invalid(field.to_string(), why.into())
}

/// "Instant restore snapshots are retained for 2 days by default with a
/// Standard policy and 7 days with an Enhanced policy. Standard allows 1 to 5
/// days (5 for weekly schedules); Enhanced allows 1 to 30."
pub fn check_instant_rp_days(policy_v2: bool, weekly: bool, days: i64) -> Result<(), PolicyError> {
    let field = "properties.instantRpRetentionRangeInDays";
    if policy_v2 {
        if !(1..=30).contains(&days) {
            return Err(invalid(field, format!("an Enhanced (V2) policy keeps instant restore snapshots 1 to 30 days, not {days}.")));
        }
    } else if weekly {
        if days != 5 {
            return Err(invalid(field, format!("a Standard policy with a weekly schedule keeps instant restore snapshots 5 days, not {days}.")));
        }
    } else if !(1..=5).contains(&days) {
        return Err(invalid(
            field,
            format!(
                "a Standard (V1) policy keeps instant restore snapshots 1 to 5 days, not {days}."
            ),
        ));
    }
    Ok(())
}

/// "One scheduled backup a day with a Standard policy": V1 schedules are
/// daily or weekly with one run time; hourly schedules need an Enhanced (V2)
/// policy, every 4, 6, 8 or 12 hours.
pub fn check_schedule(policy_v2: bool, schedule: &Value) -> Result<Frequency, PolicyError> {
    let kind = schedule["schedulePolicyType"].as_str().unwrap_or("");
    let freq = schedule["scheduleRunFrequency"].as_str().unwrap_or("");
    match (policy_v2, kind) {
        (false, "SimpleSchedulePolicy") => {
            let times = schedule["scheduleRunTimes"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(0);
            if times != 1 {
                return Err(invalid(
                    "properties.schedulePolicy.scheduleRunTimes",
                    "a Standard policy runs once a day: give exactly one run time.",
                ));
            }
            match freq {
                "Daily" => Ok(Frequency::Daily),
                "Weekly" => {
                    let days = schedule["scheduleRunDays"].as_array().map(Vec::len).unwrap_or(0);
                    if days == 0 {
                        return Err(invalid("properties.schedulePolicy.scheduleRunDays", "a weekly schedule names the days it runs."));
                    }
                    Ok(Frequency::Weekly)
                }
                other => Err(invalid("properties.schedulePolicy.scheduleRunFrequency", format!("a Standard policy runs Daily or Weekly, not '{other}'; hourly backups need an Enhanced (V2) policy."))),
            }
        }
        (true, "SimpleSchedulePolicyV2") => {
            match freq {
                "Hourly" => {
                    let h = &schedule["hourlySchedule"];
                    let interval = h["interval"].as_i64().unwrap_or(0);
                    if ![4, 6, 8, 12].contains(&interval) {
                        return Err(invalid("properties.schedulePolicy.hourlySchedule.interval", format!("an hourly schedule runs every 4, 6, 8 or 12 hours, not {interval}.")));
                    }
                    let window = h["scheduleWindowDuration"].as_i64().unwrap_or(0);
                    if !(4..=24).contains(&window) {
                        return Err(invalid(
                            "properties.schedulePolicy.hourlySchedule.scheduleWindowDuration",
                            format!("the backup window lasts 4 to 24 hours, not {window}."),
                        ));
                    }
                    Ok(Frequency::Hourly)
                }
                "Daily" => Ok(Frequency::Daily),
                "Weekly" => Ok(Frequency::Weekly),
                other => Err(invalid(
                    "properties.schedulePolicy.scheduleRunFrequency",
                    format!("'{other}' is not Hourly, Daily or Weekly."),
                )),
            }
        }
        (false, other) => Err(invalid(
            "properties.schedulePolicy.schedulePolicyType",
            format!("a Standard (V1) policy takes a SimpleSchedulePolicy, not '{other}'."),
        )),
        (true, other) => Err(invalid(
            "properties.schedulePolicy.schedulePolicyType",
            format!("an Enhanced (V2) policy takes a SimpleSchedulePolicyV2, not '{other}'."),
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Hourly,
    Daily,
    Weekly,
}

/// Long-term retention: a daily or hourly schedule keeps daily points
/// 7–9999 days; weekly points 1–5163 weeks; monthly 1–1188 months; yearly
/// 1–99 years. A weekly schedule has no daily retention.
pub fn check_retention(freq: Frequency, retention: &Value) -> Result<u32, PolicyError> {
    if retention["retentionPolicyType"].as_str() != Some("LongTermRetentionPolicy") {
        return Err(invalid(
            "properties.retentionPolicy.retentionPolicyType",
            "Azure VM policies take a LongTermRetentionPolicy.",
        ));
    }
    let count = |k: &str| retention[k]["retentionDuration"]["count"].as_i64();
    let daily = count("dailySchedule");
    match (freq, daily) {
        (Frequency::Weekly, Some(_)) => {
            return Err(invalid(
                "properties.retentionPolicy.dailySchedule",
                "a weekly schedule keeps no daily points; use weeklySchedule.",
            ))
        }
        (Frequency::Hourly | Frequency::Daily, None) => {
            return Err(invalid(
                "properties.retentionPolicy.dailySchedule",
                "a daily or hourly schedule needs a daily retention.",
            ))
        }
        _ => {}
    }
    for (k, lo, hi) in [
        ("dailySchedule", 7, 9999),
        ("weeklySchedule", 1, 5163),
        ("monthlySchedule", 1, 1188),
        ("yearlySchedule", 1, 99),
    ] {
        if let Some(n) = count(k) {
            if !(lo..=hi).contains(&n) {
                return Err(invalid(
                    &format!("properties.retentionPolicy.{k}.retentionDuration.count"),
                    format!("must be {lo} to {hi}, not {n}."),
                ));
            }
        }
    }
    if freq == Frequency::Weekly && count("weeklySchedule").is_none() {
        return Err(invalid(
            "properties.retentionPolicy.weeklySchedule",
            "a weekly schedule needs a weekly retention.",
        ));
    }
    // Days a daily point is kept (weekly ones: weeks × 7), for pruning.
    Ok(daily
        .map(|d| d as u32)
        .or_else(|| count("weeklySchedule").map(|w| w as u32 * 7))
        .unwrap_or(30))
}

/// Validates a whole AzureIaasVM policy's properties.
pub fn validate(props: &Value) -> Result<(), PolicyError> {
    let bmt = props["backupManagementType"].as_str().unwrap_or("");
    if bmt.eq_ignore_ascii_case("MAB") {
        return validate_mab(props);
    }
    if !bmt.eq_ignore_ascii_case("AzureIaasVM") {
        return Err(PolicyError::NotServed(bmt.to_string()));
    }
    let v2 = props["policyType"].as_str() == Some("V2");
    let freq = check_schedule(v2, &props["schedulePolicy"])?;
    check_retention(freq, &props["retentionPolicy"])?;
    let days = props["instantRpRetentionRangeInDays"]
        .as_i64()
        .unwrap_or(if v2 { 7 } else { 2 });
    check_instant_rp_days(v2, freq == Frequency::Weekly, days)
}

/// A MARS policy (`MabProtectionPolicy`): a daily or weekly schedule of at
/// most three run times, and a long-term retention.
fn validate_mab(props: &Value) -> Result<(), PolicyError> {
    let s = &props["schedulePolicy"];
    if s["schedulePolicyType"].as_str() != Some("SimpleSchedulePolicy") {
        return Err(invalid(
            "properties.schedulePolicy.schedulePolicyType",
            "a MARS policy uses a SimpleSchedulePolicy.",
        ));
    }
    let times = s["scheduleRunTimes"].as_array().map(Vec::len).unwrap_or(0);
    crate::mab::check_schedule_times(times).map_err(|e| {
        invalid(
            "properties.schedulePolicy.scheduleRunTimes",
            e.body.message.clone(),
        )
    })?;
    let freq = match s["scheduleRunFrequency"].as_str().unwrap_or("") {
        "Daily" => Frequency::Daily,
        "Weekly"
            if s["scheduleRunDays"]
                .as_array()
                .is_some_and(|d| !d.is_empty()) =>
        {
            Frequency::Weekly
        }
        "Weekly" => {
            return Err(invalid(
                "properties.schedulePolicy.scheduleRunDays",
                "a weekly schedule names the days it runs.",
            ))
        }
        other => {
            return Err(invalid(
                "properties.schedulePolicy.scheduleRunFrequency",
                format!("a MARS policy runs Daily or Weekly, not '{other}'."),
            ))
        }
    };
    check_retention(freq, &props["retentionPolicy"]).map(|_| ())
}

fn today_at(hh: u32, mm: u32) -> String {
    let d = time::now().date();
    format!("{d}T{hh:02}:{mm:02}:00Z")
}

/// The policies Azure gives every new vault.
pub fn defaults() -> Vec<(&'static str, Value)> {
    let daily_retention = |days: u32, at: &str| {
        json!({
            "retentionPolicyType": "LongTermRetentionPolicy",
            "dailySchedule": {"retentionTimes": [at], "retentionDuration": {"count": days, "durationType": "Days"}}
        })
    };
    let at = today_at(1, 30);
    vec![
        (
            "DefaultPolicy",
            json!({
                "backupManagementType": "AzureIaasVM", "policyType": "V1", "instantRpRetentionRangeInDays": 2,
                "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily",
                                   "scheduleRunTimes": [at], "scheduleWeeklyFrequency": 0},
                "retentionPolicy": daily_retention(30, &at), "timeZone": "UTC", "protectedItemsCount": 0,
            }),
        ),
        (
            "EnhancedPolicy",
            json!({
                "backupManagementType": "AzureIaasVM", "policyType": "V2", "instantRpRetentionRangeInDays": 7,
                "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Hourly",
                                   "hourlySchedule": {"interval": 4, "scheduleWindowStartTime": today_at(8, 0), "scheduleWindowDuration": 24}},
                "retentionPolicy": daily_retention(30, &today_at(8, 0)), "timeZone": "UTC", "protectedItemsCount": 0,
            }),
        ),
        (
            "HourlyLogBackup",
            json!({
                "backupManagementType": "AzureWorkload", "workLoadType": "SQLDataBase",
                "settings": {"timeZone": "UTC", "issqlcompression": false, "isCompression": false},
                "subProtectionPolicy": [
                    {"policyType": "Full",
                     "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily", "scheduleRunTimes": [at], "scheduleWeeklyFrequency": 0},
                     "retentionPolicy": daily_retention(30, &at)},
                    {"policyType": "Log",
                     "schedulePolicy": {"schedulePolicyType": "LogSchedulePolicy", "scheduleFrequencyInMins": 60},
                     "retentionPolicy": {"retentionPolicyType": "SimpleRetentionPolicy", "retentionDuration": {"count": 30, "durationType": "Days"}}}
                ],
                "protectedItemsCount": 0,
            }),
        ),
    ]
}

/// Makes the default policies of a vault the first time its Backup side is used.
pub fn ensure_defaults(tx: &mut WriteTx, vault_id: &str) -> Result<(), ArmError> {
    let k = recoverite_arm::id::key(vault_id);
    if tx.get(DEFAULTS_MADE, &k)?.is_some() {
        return Ok(());
    }
    for (name, props) in defaults() {
        let p = Policy::new(vault_id, name, props)?;
        if resource::get(tx, &p.id)?.is_none() {
            document::save(tx, &p)?;
        }
    }
    tx.put_json(DEFAULTS_MADE, &k, &true)?;
    Ok(())
}

/// The vault's policy named by `policy_id_or_name` (an id or a name).
pub fn find(
    r: &impl Reader,
    vault_id: &str,
    policy_id_or_name: &str,
) -> Result<Option<Policy>, ArmError> {
    let name = policy_id_or_name.rsplit('/').next().unwrap_or_default();
    document::load(r, &format!("{vault_id}/backupPolicies/{name}"))
}

fn with_count(r: &impl Reader, vault_id: &str, p: &Policy) -> Result<Value, ArmError> {
    p.render(items::count_with_policy(r, vault_id, &p.id)?)
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    ctx.store().write(|tx| ensure_defaults(tx, &vid))?;
    let filter = req.query_get("$filter").unwrap_or("").to_string();
    let items = ctx.store().view(|r| {
        let mut out = Vec::new();
        for p in document::children::<Policy>(r, &vid, "backupPolicies")? {
            let kind = p.management_type();
            if recoverite_rs_core::containers::filter_allows(&filter, "backupManagementType", kind)
            {
                out.push(with_count(r, &vid, &p)?);
            }
        }
        Ok::<_, ArmError>(out)
    })?;
    recoverite_arm::paging::page_visible(ctx, req, items)
}

pub fn get(ctx: &Ctx, req: &ArmRequest, name: &str) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    ctx.store().write(|tx| ensure_defaults(tx, &vid))?;
    ctx.store().view(|r| match find(r, &vid, name)? {
        Some(p) => Ok(Reply::ok(with_count(r, &vid, &p)?)),
        None => Err(not_found(name)),
    })
}

pub fn not_found(name: &str) -> ArmError {
    ArmError::new(404, "BMSUserErrorPolicyNotFound", format!("The backup policy '{name}' was not found in the vault; list backupPolicies for the ones it has."))
}

pub fn put(ctx: &Ctx, req: &ArmRequest, name: &str) -> Result<Reply, ArmError> {
    recoverite_arm::names::check_generic("backup policy", name)?;
    let body: Value = req.body_as()?;
    let props = body
        .get("properties")
        .cloned()
        .ok_or_else(|| ArmError::invalid_parameter("properties", "A policy needs properties."))?;
    validate(&props).map_err(|e| e.to_arm())?;
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let policy = Policy::new(&vid, name, props)?;
    let d = ctx.store().write(|tx| {
        ensure_defaults(tx, &vid)?;
        document::save(tx, &policy)?;
        with_count(tx, &vid, &policy)
    })?;
    Ok(Reply::ok(d))
}

/// "A policy that protects items cannot be deleted."
pub fn check_deletable(name: &str, protected_items: usize) -> Result<(), ArmError> {
    if protected_items > 0 {
        return Err(ArmError::bad_request("BMSUserErrorPolicyInUse", format!("The policy '{name}' protects {protected_items} item(s); move them to another policy or stop their protection first.")));
    }
    Ok(())
}

pub fn delete(ctx: &Ctx, req: &ArmRequest, name: &str) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    ctx.store().write(|tx| {
        ensure_defaults(tx, &vid)?;
        let Some(p) = find(tx, &vid, name)? else {
            return Ok(());
        };
        check_deletable(name, items::count_with_policy(tx, &vid, &p.id)?)?;
        resource::delete_tree(tx, &p.id)?;
        Ok::<_, ArmError>(())
    })?;
    Ok(Reply::empty(200))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_where_they_are_azure_vm_policies() {
        let d = defaults();
        assert_eq!(
            d.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            ["DefaultPolicy", "EnhancedPolicy", "HourlyLogBackup"]
        );
        validate(&d[0].1).unwrap();
        validate(&d[1].1).unwrap();
        assert_eq!(
            validate(&d[2].1),
            Err(PolicyError::NotServed("AzureWorkload".into()))
        );
    }

    #[test]
    fn instant_restore_days() {
        assert!(check_instant_rp_days(false, false, 5).is_ok());
        assert!(check_instant_rp_days(false, false, 6).is_err());
        assert!(check_instant_rp_days(false, false, 0).is_err());
        assert!(check_instant_rp_days(false, true, 2).is_err());
        assert!(check_instant_rp_days(false, true, 5).is_ok());
        assert!(check_instant_rp_days(true, false, 30).is_ok());
        assert!(check_instant_rp_days(true, false, 31).is_err());
        assert_eq!(
            check_instant_rp_days(true, false, 31)
                .unwrap_err()
                .to_arm()
                .body
                .code,
            "BMSUserErrorInvalidPolicyInput"
        );
    }

    #[test]
    fn schedules() {
        let daily = json!({"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily", "scheduleRunTimes": ["2026-01-01T02:00:00Z"]});
        assert_eq!(check_schedule(false, &daily), Ok(Frequency::Daily));
        let twice = json!({"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily", "scheduleRunTimes": ["a", "b"]});
        assert!(check_schedule(false, &twice).is_err());
        let hourly_v1 = json!({"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Hourly", "scheduleRunTimes": ["a"]});
        assert!(check_schedule(false, &hourly_v1).is_err());
        let hourly = |i: i64| {
            json!({"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Hourly",
                                     "hourlySchedule": {"interval": i, "scheduleWindowDuration": 12}})
        };
        assert_eq!(check_schedule(true, &hourly(4)), Ok(Frequency::Hourly));
        assert!(check_schedule(true, &hourly(5)).is_err());
        assert!(
            check_schedule(true, &daily).is_err(),
            "V2 takes SimpleSchedulePolicyV2"
        );
        let weekly = json!({"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Weekly", "scheduleRunTimes": ["a"]});
        assert!(
            check_schedule(false, &weekly).is_err(),
            "weekly names its days"
        );
    }

    #[test]
    fn retention_ranges() {
        let r = |days: i64| json!({"retentionPolicyType": "LongTermRetentionPolicy", "dailySchedule": {"retentionDuration": {"count": days, "durationType": "Days"}}});
        assert_eq!(check_retention(Frequency::Daily, &r(30)), Ok(30));
        assert!(check_retention(Frequency::Daily, &r(6)).is_err());
        assert!(check_retention(Frequency::Daily, &r(10000)).is_err());
        assert!(check_retention(Frequency::Weekly, &r(30)).is_err());
        let weekly = json!({"retentionPolicyType": "LongTermRetentionPolicy", "weeklySchedule": {"retentionDuration": {"count": 4, "durationType": "Weeks"}}});
        assert_eq!(check_retention(Frequency::Weekly, &weekly), Ok(28));
        assert!(check_retention(Frequency::Daily, &weekly).is_err());
        assert!(check_retention(
            Frequency::Daily,
            &json!({"retentionPolicyType": "SimpleRetentionPolicy"})
        )
        .is_err());
    }

    #[test]
    fn a_policy_in_use_cannot_be_deleted() {
        assert!(check_deletable("p", 0).is_ok());
        assert_eq!(
            check_deletable("p", 2).unwrap_err().body.code,
            "BMSUserErrorPolicyInUse"
        );
    }
}
