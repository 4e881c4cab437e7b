//! DR-drill reports: what each test failover, failover, failback and Backup
//! restore achieved — the recovery point it used and how old that point was
//! when it started (the achieved RPO), how long until the VM was up or the
//! disks were there (the achieved RTO), its steps with their durations, and
//! the flows the network refused from the VM between the point and the end
//! (why the point was as old as it was). Site Recovery and Backup record
//! them alike; a test failover marks its point as tested.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use recoverite_arm::{id, time, ArmError};
use recoverite_store::{Reader, Table, WriteTx};

const REPORTS: Table = Table("drill_reports");
/// Points a test failover used, by point id (case-folded).
const TESTED: Table = Table("drill_tested_points");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DrillKind {
    TestFailover,
    Failover,
    Failback,
    Restore,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillStep {
    pub name: String,
    pub duration_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    pub id: String,
    pub vault_id: String,
    pub kind: DrillKind,
    pub item_id: String,
    pub item_name: String,
    pub recovery_point_id: String,
    pub recovery_point_time: String,
    /// When the operation started and ended (the emulator's clock).
    pub started: String,
    pub finished: String,
    /// Achieved RPO: the point's age when the operation started.
    pub rpo_seconds: f64,
    /// Achieved RTO: from the start until the VM ran (or, restoring disks,
    /// until the disks were there).
    pub rto_seconds: f64,
    pub steps: Vec<DrillStep>,
    /// What came up: the VM, or the disks.
    pub outcome: String,
    /// Flows the network refused from the VM between the point and the end.
    pub refused_flows: Vec<Value>,
    pub summary: String,
}

/// The achieved RPO: how far behind the start the point was (never negative).
pub fn rpo_seconds(point_time: &str, started: &str) -> f64 {
    match (time::parse(point_time), time::parse(started)) {
        (Some(p), Some(s)) => ((s - p).as_seconds_f64()).max(0.0),
        _ => 0.0,
    }
}

/// The report in a sentence or three, for people.
pub fn summary(r: &DrillReport) -> String {
    let kind = match r.kind {
        DrillKind::TestFailover => "Test failover",
        DrillKind::Failover => "Failover",
        DrillKind::Failback => "Failback",
        DrillKind::Restore => "Restore",
    };
    let steps: Vec<String> = r
        .steps
        .iter()
        .map(|s| format!("{} {:.2} s", s.name, s.duration_seconds))
        .collect();
    let flows = match r.refused_flows.len() {
        0 => "no flow from the VM was refused meanwhile".to_string(),
        n => format!(
            "{n} flow(s) from the VM were refused meanwhile, the last: {}",
            r.refused_flows
                .last()
                .and_then(|f| f["reason"].as_str())
                .unwrap_or_default()
        ),
    };
    format!(
        "{kind} of {} from recovery point {} ({}): achieved RPO {} (the point's age at the start), achieved RTO {:.2} s. Steps: {}. {}; {flows}.",
        r.item_name,
        r.recovery_point_id.rsplit('/').next().unwrap_or_default(),
        r.recovery_point_time,
        human(r.rpo_seconds),
        r.rto_seconds,
        steps.join(", "),
        r.outcome,
    )
}

fn human(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

/// Times an operation's steps on the wall clock, from its start.
pub struct Stopwatch {
    pub started: String,
    t0: std::time::Instant,
    last: std::time::Instant,
    pub steps: Vec<DrillStep>,
    up: Option<f64>,
}

impl Default for Stopwatch {
    fn default() -> Self {
        Self::start()
    }
}

impl Stopwatch {
    pub fn start() -> Stopwatch {
        let now = std::time::Instant::now();
        Stopwatch {
            started: time::now_string(),
            t0: now,
            last: now,
            steps: Vec::new(),
            up: None,
        }
    }

    /// Ends the current step under `name`.
    pub fn step(&mut self, name: &str) {
        let now = std::time::Instant::now();
        self.steps.push(DrillStep {
            name: name.into(),
            duration_seconds: (now - self.last).as_secs_f64(),
        });
        self.last = now;
    }

    /// The workload is up now (the RTO's end).
    pub fn up(&mut self) {
        self.up = Some(self.t0.elapsed().as_secs_f64());
    }

    pub fn rto_seconds(&self) -> f64 {
        self.up.unwrap_or_else(|| self.t0.elapsed().as_secs_f64())
    }
}

/// What an operation reports; [`record`] completes and keeps it.
pub struct Drill<'a> {
    pub vault_id: &'a str,
    pub kind: DrillKind,
    pub item_id: &'a str,
    pub item_name: &'a str,
    pub point_id: &'a str,
    pub point_time: &'a str,
    pub outcome: String,
    pub refused_flows: Vec<Value>,
}

/// Keeps the report of a finished operation, in the transaction that
/// commits it; a test failover marks its point as tested.
pub fn record(tx: &mut WriteTx, d: Drill<'_>, watch: &Stopwatch) -> Result<DrillReport, ArmError> {
    // Time first, so a vault's reports list in the order they were made.
    let name = format!(
        "{:020}-{:08x}",
        time::now().unix_timestamp_nanos(),
        rand::random::<u32>()
    );
    let mut report = DrillReport {
        id: format!("{}/drillReports/{name}", d.vault_id),
        vault_id: d.vault_id.into(),
        kind: d.kind,
        item_id: d.item_id.into(),
        item_name: d.item_name.into(),
        recovery_point_id: d.point_id.into(),
        recovery_point_time: d.point_time.into(),
        started: watch.started.clone(),
        finished: time::now_string(),
        rpo_seconds: rpo_seconds(d.point_time, &watch.started),
        rto_seconds: watch.rto_seconds(),
        steps: watch.steps.clone(),
        outcome: d.outcome,
        refused_flows: d.refused_flows,
        summary: String::new(),
    };
    report.summary = summary(&report);
    tx.put_json(REPORTS, &format!("{}/{name}", id::key(d.vault_id)), &report)?;
    if d.kind == DrillKind::TestFailover {
        tx.put_json(TESTED, &id::key(d.point_id), &report.id)?;
    }
    Ok(report)
}

/// A vault's reports, oldest first.
pub fn list(r: &impl Reader, vault_id: &str) -> Result<Vec<DrillReport>, ArmError> {
    Ok(
        r.scan_json::<DrillReport>(REPORTS, &format!("{}/", id::key(vault_id)))?
            .into_iter()
            .map(|(_, v)| v)
            .collect(),
    )
}

/// Whether a test failover has used the point.
pub fn tested(r: &impl Reader, point_id: &str) -> Result<bool, ArmError> {
    Ok(r.get_json::<String>(TESTED, &id::key(point_id))?.is_some())
}

/// Forgets a vault's reports (the vault is deleted).
pub fn forget_vault(tx: &mut WriteTx, vault_id: &str) -> Result<(), ArmError> {
    let prefix = format!("{}/", id::key(vault_id));
    for (k, r) in tx.scan_json::<DrillReport>(REPORTS, &prefix)? {
        tx.delete(REPORTS, &k)?;
        tx.delete(TESTED, &id::key(&r.recovery_point_id))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpo_is_the_points_age_at_the_start() {
        assert_eq!(
            rpo_seconds("2026-01-01T00:00:00Z", "2026-01-01T00:05:30Z"),
            330.0
        );
        // A point taken after the start (clock skew) is no negative RPO.
        assert_eq!(
            rpo_seconds("2026-01-01T00:06:00Z", "2026-01-01T00:05:30Z"),
            0.0
        );
        assert_eq!(rpo_seconds("garbage", "2026-01-01T00:05:30Z"), 0.0);
    }

    #[test]
    fn the_summary_says_rpo_rto_steps_and_refusals() {
        let mut r = DrillReport {
            id: "v/drillReports/1".into(),
            vault_id: "v".into(),
            kind: DrillKind::TestFailover,
            item_id: "i".into(),
            item_name: "web".into(),
            recovery_point_id: "i/recoveryPoints/7".into(),
            recovery_point_time: "2026-01-01T00:00:00Z".into(),
            started: "2026-01-01T00:05:30Z".into(),
            finished: "2026-01-01T00:05:31Z".into(),
            rpo_seconds: 330.0,
            rto_seconds: 0.5,
            steps: vec![DrillStep {
                name: "Creating test disks".into(),
                duration_seconds: 0.25,
            }],
            outcome: "VM web-test is running".into(),
            refused_flows: Vec::new(),
            summary: String::new(),
        };
        let s = summary(&r);
        assert!(
            s.contains("achieved RPO 5.5 min") && s.contains("achieved RTO 0.50 s"),
            "{s}"
        );
        assert!(
            s.contains("point 7") && s.contains("Creating test disks 0.25 s"),
            "{s}"
        );
        assert!(s.contains("no flow from the VM was refused"), "{s}");
        r.refused_flows = vec![serde_json::json!({"reason": "denied by rule x"})];
        assert!(summary(&r).contains("1 flow(s)") && summary(&r).contains("denied by rule x"));
    }

    #[test]
    fn the_stopwatch_times_steps_and_the_rto_ends_when_up() {
        let mut w = Stopwatch::start();
        std::thread::sleep(std::time::Duration::from_millis(20));
        w.step("a");
        w.up();
        let rto = w.rto_seconds();
        std::thread::sleep(std::time::Duration::from_millis(20));
        w.step("b");
        assert_eq!(w.steps.len(), 2);
        assert!(w.steps[0].duration_seconds >= 0.02);
        assert_eq!(w.rto_seconds(), rto, "the RTO stops at 'up'");
    }

    #[test]
    fn reports_are_kept_per_vault_and_mark_tested_points() {
        let dir = tempfile::tempdir().unwrap();
        let store = recoverite_store::Store::open(&dir.path().join("s.redb")).unwrap();
        let w = Stopwatch::start();
        store
            .write(|tx| {
                record(
                    tx,
                    Drill {
                        vault_id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v",
                        kind: DrillKind::TestFailover,
                        item_id: "item",
                        item_name: "web",
                        point_id: "item/recoveryPoints/3",
                        point_time: "2026-01-01T00:00:00Z",
                        outcome: "up".into(),
                        refused_flows: Vec::new(),
                    },
                    &w,
                )
                .map(|_| ())
            })
            .unwrap();
        let vault =
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/V";
        let all = store.view(|r| list(r, vault)).unwrap();
        assert_eq!(all.len(), 1);
        assert!(store.view(|r| tested(r, "ITEM/recoveryPoints/3")).unwrap());
        assert!(!store.view(|r| tested(r, "item/recoveryPoints/4")).unwrap());
        assert!(store
            .view(|r| list(
                r,
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v2"
            ))
            .unwrap()
            .is_empty());
        store.write(|tx| forget_vault(tx, vault)).unwrap();
        assert!(store.view(|r| list(r, vault)).unwrap().is_empty());
    }
}
