//! Jobs, one model for Site Recovery and Backup: what operation ran, its
//! tasks one after another, when it started and ended, how it ended and
//! why. Each service renders a job in its own wire shape (Site Recovery's
//! `replicationJobs` with `state`, Backup's `AzureIaaSVMJob` / `MabJob` with
//! `status`); the timing, the task list and the status words live here.

use time::{Duration, OffsetDateTime};

/// How a job stands (as stored, Backup's `status` words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum JobStatus {
    InProgress,
    /// A cancel was asked for and what runs the job has not stopped yet
    /// (azure-cli's `job wait` keeps waiting through it).
    Cancelling,
    Completed,
    Failed,
    Cancelled,
    CompletedWithWarnings,
}

impl JobStatus {
    /// Backup's `status` word.
    pub fn backup(self) -> &'static str {
        match self {
            JobStatus::InProgress => "InProgress",
            JobStatus::Cancelling => "Cancelling",
            JobStatus::Completed => "Completed",
            JobStatus::Failed => "Failed",
            JobStatus::Cancelled => "Cancelled",
            JobStatus::CompletedWithWarnings => "CompletedWithWarnings",
        }
    }

    /// Site Recovery's `state` and `stateDescription`.
    pub fn site_recovery(self) -> (&'static str, &'static str) {
        match self {
            JobStatus::InProgress => ("InProgress", "InProgress"),
            JobStatus::Cancelling => ("Cancelling", "Cancelling"),
            JobStatus::Completed => ("Succeeded", "Completed"),
            JobStatus::Failed => ("Failed", "Failed"),
            JobStatus::Cancelled => ("Cancelled", "Cancelled"),
            JobStatus::CompletedWithWarnings => ("CompletedWithInformation", "Completed"),
        }
    }

    /// Whether the job has ended: neither running nor still stopping.
    pub fn ended(self) -> bool {
        !matches!(self, JobStatus::InProgress | JobStatus::Cancelling)
    }
}

/// One step of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub name: String,
    pub start: OffsetDateTime,
    /// None while it runs.
    pub end: Option<OffsetDateTime>,
}

impl Task {
    pub fn seconds(&self) -> u64 {
        self.end
            .map(|e| (e - self.start).whole_seconds().max(0) as u64)
            .unwrap_or(0)
    }
}

/// Why a job failed: the error's code and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// A job of either service.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job's name (a GUID), the last segment of its id.
    pub name: String,
    /// The operation (`Backup`, `Restore`, `ConfigureBackup`, `EnableDr`, …).
    pub operation: String,
    pub status: JobStatus,
    pub start: OffsetDateTime,
    pub end: Option<OffsetDateTime>,
    pub tasks: Vec<Task>,
    pub errors: Vec<JobError>,
}

impl Job {
    /// A job that ends now, its tasks (`(name, seconds)`) having run one
    /// after the other up to now.
    pub fn ended_now(
        operation: &str,
        tasks: &[(&str, u64)],
        status: JobStatus,
        errors: Vec<JobError>,
    ) -> Job {
        let end = recoverite_arm::time::now();
        let total: u64 = tasks.iter().map(|(_, s)| s).sum();
        let start = end - Duration::seconds(total as i64);
        let mut at = start;
        let tasks = tasks
            .iter()
            .map(|(name, secs)| {
                let t0 = at;
                at += Duration::seconds(*secs as i64);
                Task {
                    name: name.to_string(),
                    start: t0,
                    end: Some(at),
                }
            })
            .collect();
        Job {
            name: uuid::Uuid::new_v4().to_string(),
            operation: operation.to_string(),
            status,
            start,
            end: Some(end),
            tasks,
            errors,
        }
    }

    /// A job (of one task, named as the operation) that began at `start`,
    /// still running (`InProgress`) or ending now.
    pub fn since(
        name: &str,
        operation: &str,
        start: OffsetDateTime,
        status: JobStatus,
        errors: Vec<JobError>,
    ) -> Job {
        let end = status.ended().then(recoverite_arm::time::now);
        Job {
            name: name.to_string(),
            operation: operation.to_string(),
            status,
            start,
            end,
            tasks: vec![Task {
                name: operation.to_string(),
                start,
                end,
            }],
            errors,
        }
    }

    /// Seconds from start to end (to now while it runs).
    pub fn seconds(&self) -> u64 {
        (self.end.unwrap_or_else(recoverite_arm::time::now) - self.start)
            .whole_seconds()
            .max(0) as u64
    }
}

/// An ISO 8601 duration of whole seconds (`PT1H2M3S`), as the SDKs parse it.
pub fn iso_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    out.push_str(&format!("{s}S"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_one_after_another_and_end_now() {
        let j = Job::ended_now(
            "Backup",
            &[("Take Snapshot", 2), ("Transfer data to vault", 5)],
            JobStatus::Completed,
            vec![],
        );
        assert_eq!(j.seconds(), 7);
        assert_eq!(j.tasks[0].start, j.start);
        assert_eq!(j.tasks[0].end, Some(j.tasks[1].start));
        assert_eq!(j.tasks[1].end, j.end);
        assert_eq!(j.tasks[1].seconds(), 5);
        let running = Job::since("x", "Backup", j.start, JobStatus::InProgress, vec![]);
        assert_eq!((running.end, running.tasks[0].end), (None, None));
    }

    #[test]
    fn status_words_of_each_service() {
        assert_eq!(
            JobStatus::Completed.site_recovery(),
            ("Succeeded", "Completed")
        );
        assert_eq!(JobStatus::Completed.backup(), "Completed");
        assert_eq!(JobStatus::Failed.site_recovery().0, "Failed");
        assert!(!JobStatus::InProgress.ended() && JobStatus::Cancelled.ended());
        assert!(
            !JobStatus::Cancelling.ended(),
            "a job still stopping has not ended"
        );
        assert_eq!(iso_duration(0), "PT0S");
        assert_eq!(iso_duration(3723), "PT1H2M3S");
    }
}
