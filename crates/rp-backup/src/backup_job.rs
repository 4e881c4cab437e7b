//! A Backup job as stored (issue 9, point 2): an Azure VM's
//! (`AzureIaaSVMJob`) or a MARS agent's (`MabJob`). Its status is the
//! Recovery Services core's `JobStatus`; what lists filter on (operation,
//! status, management type, start time, who triggered it, container) is
//! typed; what only the job's reader sees (server name, VM version) is kept
//! as written. Jobs that run outside a request — a MARS backup while the
//! agent sends — can be cancelled while they are in progress.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use recoverite_arm::{document, time as arm_time, ArmError};
use recoverite_rs_core::jobs::{iso_duration, JobStatus};
use recoverite_store::{Reader, WriteTx};

use crate::JOB_TYPE;

/// One step of a job (`AzureIaaSVMJobTaskDetails`): while the job runs,
/// the steps not reached yet are `NotStarted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobTask {
    pub task_id: String,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_percentage: Option<f64>,
}

impl JobTask {
    /// The task ends at `now` with `status`, its duration from its start.
    fn end(&mut self, status: JobStatus, now: OffsetDateTime) {
        let secs = self
            .start_time
            .as_deref()
            .and_then(arm_time::parse)
            .map(|s| (now - s).whole_seconds().max(0) as u64)
            .unwrap_or(0);
        self.end_time = Some(arm_time::format(now));
        self.duration = Some(iso_duration(secs));
        self.status = status.backup().into();
        if status == JobStatus::Completed {
            self.progress_percentage = Some(100.0);
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobExtendedInfo {
    #[serde(default)]
    pub tasks_list: Vec<JobTask>,
    #[serde(default)]
    pub property_bag: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_percentage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProperties {
    /// `AzureIaaSVMJob` or `MabJob`.
    pub job_type: String,
    pub entity_friendly_name: String,
    pub backup_management_type: String,
    pub operation: String,
    pub status: JobStatus,
    pub start_time: String,
    #[serde(default)]
    pub end_time: Option<String>,
    #[serde(default)]
    pub duration: String,
    pub activity_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_user_triggered: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// `["Cancellable"]` while a job that can be cancelled runs.
    #[serde(default)]
    pub actions_info: Vec<String>,
    #[serde(default)]
    pub error_details: Vec<Value>,
    #[serde(default)]
    pub extended_info: JobExtendedInfo,
    /// `mabServerName`, `workloadType`, `virtualMachineVersion`…
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupJob {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub properties: JobProperties,
}

recoverite_arm::impl_document!(BackupJob, JOB_TYPE, "backup job");

/// What a job list's `$filter` asks (azure-cli: operation, status,
/// backupManagementType, startTime, endTime).
#[derive(Debug, Default)]
pub struct JobFilter {
    pub operation: Option<String>,
    pub status: Option<String>,
    pub management_type: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

impl BackupJob {
    pub fn job_id(vault_id: &str, name: &str) -> String {
        format!("{vault_id}/backupJobs/{name}")
    }

    pub fn started(&self) -> Option<OffsetDateTime> {
        arm_time::parse(&self.properties.start_time)
    }

    pub fn matches(&self, f: &JobFilter) -> bool {
        let p = &self.properties;
        let eq = |want: &Option<String>, have: &str| {
            want.as_ref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        let started = self.started();
        eq(&f.operation, &p.operation)
            && eq(&f.status, p.status.backup())
            && eq(&f.management_type, &p.backup_management_type)
            && f.from.is_none_or(|from| started.is_some_and(|s| s >= from))
            && f.to.is_none_or(|to| started.is_some_and(|s| s <= to))
    }

    /// "Cancel a job in progress": only a job still running, and one that
    /// says it can be cancelled, is.
    pub fn check_cancellable(&self) -> Result<(), ArmError> {
        let p = &self.properties;
        if p.status.ended() {
            return Err(ArmError::bad_request(
                "BMSUserErrorJobNotCancellable",
                format!(
                    "Job '{}' is {}; only a job in progress can be cancelled.",
                    self.name,
                    p.status.backup()
                ),
            ));
        }
        if !p.actions_info.iter().any(|a| a == "Cancellable") {
            return Err(ArmError::bad_request(
                "BMSUserErrorJobNotCancellable",
                format!(
                    "Job '{}' ({}) cannot be cancelled once started; wait for it to end.",
                    self.name, p.operation
                ),
            ));
        }
        Ok(())
    }

    /// Cancels a job in progress ("Cancel a job in progress"): one that
    /// something in this process runs (`stopping_here`) is `Cancelling`
    /// until that runner stops and ends it `Cancelled`; one nothing runs
    /// here (a MARS agent's, or a backup not yet resumed after a restart)
    /// ends `Cancelled` at once — whatever would run it sees that first.
    pub fn cancel(&mut self, stopping_here: bool, now: OffsetDateTime) -> Result<(), ArmError> {
        self.check_cancellable()?;
        if stopping_here {
            self.properties.status = JobStatus::Cancelling;
            self.properties.actions_info.clear();
        } else {
            self.finish(JobStatus::Cancelled, now);
        }
        Ok(())
    }

    /// Ends a running job with `status` at `now` (its duration follows).
    pub fn end(&mut self, status: JobStatus, now: OffsetDateTime) {
        let p = &mut self.properties;
        p.status = status;
        p.end_time = Some(arm_time::format(now));
        let secs = self
            .started()
            .map(|s| (now - s).whole_seconds().max(0) as u64)
            .unwrap_or(0);
        self.properties.duration = iso_duration(secs);
        self.properties.actions_info.clear();
    }

    /// Task `i` of a running job ended at `now`; the next one starts then.
    pub fn task_ended(&mut self, i: usize, now: OffsetDateTime) {
        let at = arm_time::format(now);
        let tasks = &mut self.properties.extended_info.tasks_list;
        let count = tasks.len().max(1);
        if let Some(t) = tasks.get_mut(i) {
            t.end(JobStatus::Completed, now);
        }
        if let Some(next) = tasks.get_mut(i + 1) {
            next.start_time = Some(at);
            next.status = JobStatus::InProgress.backup().into();
        }
        self.properties.extended_info.progress_percentage =
            Some(100.0 * (i + 1) as f64 / count as f64);
    }

    /// Ends a running job's tasks and the job with `status` at `now`: the
    /// task that was running ends with it, those not reached stay
    /// `NotStarted`.
    pub fn finish(&mut self, status: JobStatus, now: OffsetDateTime) {
        for t in &mut self.properties.extended_info.tasks_list {
            if t.status == JobStatus::InProgress.backup() {
                t.end(status, now);
            }
        }
        if status == JobStatus::Completed {
            self.properties.extended_info.progress_percentage = Some(100.0);
        }
        self.end(status, now);
    }

    /// The job of a backup that stopped without a point: one being
    /// cancelled ends `Cancelled`, one still in progress `Failed` with `e`;
    /// one that already ended stays as it ended.
    pub fn end_without_point(&mut self, e: &ArmError, now: OffsetDateTime) {
        match self.properties.status {
            JobStatus::Cancelling => self.finish(JobStatus::Cancelled, now),
            JobStatus::InProgress => self.fail(e, now),
            _ => {}
        }
    }

    /// Ends a running job `Failed` at `now` with `e` as its error, the way
    /// Azure shows a job's error details.
    pub fn fail(&mut self, e: &ArmError, now: OffsetDateTime) {
        self.finish(JobStatus::Failed, now);
        self.properties.error_details = vec![serde_json::json!({
            "errorCode": 0, "errorString": format!("{}: {}", e.body.code, e.body.message),
            "errorTitle": e.body.code, "recommendations": []})];
        self.properties.extended_info.dynamic_error_message = Some(e.body.message.clone());
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }
}

pub fn load(r: &impl Reader, vault_id: &str, name: &str) -> Result<Option<BackupJob>, ArmError> {
    document::load(r, &BackupJob::job_id(vault_id, name))
}

/// The vault's jobs, oldest first.
pub fn list(r: &impl Reader, vault_id: &str) -> Result<Vec<BackupJob>, ArmError> {
    document::children(r, vault_id, "backupJobs")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: &str, actions: Value) -> BackupJob {
        serde_json::from_value(json!({
            "id": "/v/backupJobs/j", "name": "j", "type": JOB_TYPE,
            "properties": {
                "jobType": "MabJob", "entityFriendlyName": "/data", "backupManagementType": "MAB",
                "operation": "Backup", "status": status, "startTime": "2026-03-01T00:00:00Z",
                "endTime": null, "duration": "PT0S", "activityId": "a", "mabServerName": "host1",
                "actionsInfo": actions, "errorDetails": [],
                "extendedInfo": {"tasksList": [], "propertyBag": {"Files": 3}},
            }
        }))
        .unwrap()
    }

    #[test]
    fn only_a_running_cancellable_job_is_cancelled_and_it_ends_then() {
        let mut j = job("InProgress", json!(["Cancellable"]));
        j.check_cancellable().unwrap();
        j.end(
            JobStatus::Cancelled,
            arm_time::parse("2026-03-01T00:01:05Z").unwrap(),
        );
        assert_eq!(j.properties.status, JobStatus::Cancelled);
        assert_eq!(j.properties.duration, "PT1M5S");
        assert!(j.properties.actions_info.is_empty());
        let e = j.check_cancellable().unwrap_err();
        assert_eq!(e.body.code, "BMSUserErrorJobNotCancellable");
        assert!(e.body.message.contains("Cancelled"));
        assert!(job("InProgress", json!([])).check_cancellable().is_err());
        let v = j.to_value().unwrap();
        assert_eq!(v["properties"]["status"], "Cancelled");
        assert_eq!(v["properties"]["mabServerName"], "host1");
        assert_eq!(v["properties"]["extendedInfo"]["propertyBag"]["Files"], 3);
    }

    #[test]
    fn a_cancel_is_cancelling_while_its_runner_stops_then_cancelled() {
        let at = arm_time::parse("2026-03-01T00:00:09Z").unwrap();
        let stopped = ArmError::conflict("BMSUserErrorJobCancelled", "stopped");
        // Run here: Cancelling, no longer cancellable, not ended.
        let mut j = job("InProgress", json!(["Cancellable"]));
        j.cancel(true, at).unwrap();
        assert_eq!(j.properties.status, JobStatus::Cancelling);
        assert!(j.properties.end_time.is_none() && !j.properties.status.ended());
        let e = j.cancel(true, at).unwrap_err();
        assert_eq!(e.body.code, "BMSUserErrorJobNotCancellable");
        // Its runner stops: Cancelled, not Failed.
        j.end_without_point(&stopped, at);
        assert_eq!(j.properties.status, JobStatus::Cancelled);
        assert_eq!(j.properties.duration, "PT9S");
        assert!(j.properties.error_details.is_empty());
        // Nothing runs it here: Cancelled at once.
        let mut k = job("InProgress", json!(["Cancellable"]));
        k.cancel(false, at).unwrap();
        assert_eq!(k.properties.status, JobStatus::Cancelled);
        // A backup that fails on its own ends Failed with why; an ended job stays.
        let mut f = job("InProgress", json!(["Cancellable"]));
        f.end_without_point(&ArmError::conflict("X", "disk gone"), at);
        assert_eq!(f.properties.status, JobStatus::Failed);
        k.end_without_point(&stopped, at);
        assert_eq!(k.properties.status, JobStatus::Cancelled);
    }

    #[test]
    fn a_running_jobs_tasks_end_one_after_the_other() {
        let mut j = job("InProgress", json!(["Cancellable"]));
        j.properties.extended_info.tasks_list = ["Take Snapshot", "Transfer data to vault"]
            .iter()
            .enumerate()
            .map(|(i, n)| JobTask {
                task_id: n.to_string(),
                start_time: (i == 0).then(|| "2026-03-01T00:00:00Z".to_string()),
                end_time: None,
                duration: None,
                status: if i == 0 { "InProgress" } else { "NotStarted" }.into(),
                progress_percentage: Some(0.0),
            })
            .collect();
        j.task_ended(0, arm_time::parse("2026-03-01T00:00:02Z").unwrap());
        let t = &j.properties.extended_info.tasks_list;
        assert_eq!(
            (t[0].status.as_str(), t[0].duration.as_deref()),
            ("Completed", Some("PT2S"))
        );
        assert_eq!(t[1].status, "InProgress");
        assert_eq!(j.properties.extended_info.progress_percentage, Some(50.0));
        // Cancelled while transferring: the running step ends Cancelled.
        let mut c = j.clone();
        c.finish(
            JobStatus::Cancelled,
            arm_time::parse("2026-03-01T00:00:05Z").unwrap(),
        );
        let t = &c.properties.extended_info.tasks_list;
        assert_eq!(
            (t[1].status.as_str(), t[1].duration.as_deref()),
            ("Cancelled", Some("PT3S"))
        );
        assert_eq!(c.properties.duration, "PT5S");
        assert!(c.properties.actions_info.is_empty());
        j.finish(
            JobStatus::Completed,
            arm_time::parse("2026-03-01T00:00:09Z").unwrap(),
        );
        assert_eq!(j.properties.extended_info.tasks_list[1].status, "Completed");
        assert_eq!(j.properties.extended_info.progress_percentage, Some(100.0));
    }

    #[test]
    fn a_failed_job_says_why() {
        let mut j = job("InProgress", json!(["Cancellable"]));
        let e = ArmError::conflict("BMSUserErrorItemNotFound", "The item was removed.");
        j.fail(&e, arm_time::parse("2026-03-01T00:00:03Z").unwrap());
        assert_eq!(j.properties.status, JobStatus::Failed);
        assert_eq!(
            j.properties.error_details[0]["errorTitle"],
            "BMSUserErrorItemNotFound"
        );
        assert_eq!(
            j.properties.extended_info.dynamic_error_message.as_deref(),
            Some("The item was removed.")
        );
        assert!(j.properties.actions_info.is_empty());
    }

    #[test]
    fn filters_read_the_typed_fields() {
        let j = job("Completed", json!([]));
        let at = |s: &str| arm_time::parse(s);
        let f = |op: &str, status: &str| JobFilter {
            operation: Some(op.into()),
            status: Some(status.into()),
            ..Default::default()
        };
        assert!(j.matches(&f("backup", "completed")));
        assert!(!j.matches(&f("Restore", "Completed")));
        assert!(!j.matches(&f("Backup", "Failed")));
        assert!(j.matches(&JobFilter {
            management_type: Some("MAB".into()),
            from: at("2026-02-28T00:00:00Z"),
            ..Default::default()
        }));
        assert!(!j.matches(&JobFilter {
            to: at("2026-02-28T00:00:00Z"),
            ..Default::default()
        }));
    }
}
