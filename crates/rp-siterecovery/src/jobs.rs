//! Site Recovery jobs: every operation leaves one, with its tasks, as a
//! typed document (issue 9) built from the Recovery Services core's `Job`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::{document, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_rs_core::jobs::{Job, JobStatus};
use recoverite_store::{Reader, WriteTx};

pub const JOB_TYPE: &str = "Microsoft.RecoveryServices/vaults/replicationJobs";

/// What a job ran on: its id, name and type.
pub struct JobTarget {
    pub id: String,
    pub name: String,
    pub kind: String,
}

impl From<&Value> for JobTarget {
    fn from(doc: &Value) -> JobTarget {
        let s = |k: &str| doc[k].as_str().unwrap_or_default().to_string();
        JobTarget {
            id: s("id"),
            name: s("name"),
            kind: s("type"),
        }
    }
}

impl From<&crate::item::ReplicationItem> for JobTarget {
    fn from(i: &crate::item::ReplicationItem) -> JobTarget {
        JobTarget {
            id: i.id.clone(),
            name: i.name.clone(),
            kind: i.kind.clone(),
        }
    }
}

/// Records a finished job for `target` under the vault.
pub fn record(
    tx: &mut WriteTx,
    vault_id: &str,
    scenario: &str,
    friendly: &str,
    target: impl Into<JobTarget>,
    tasks: &[&str],
) -> Result<Value, ArmError> {
    let custom = json!({"instanceType": "AsrJobDetails", "affectedObjectDetails": {}});
    record_with(tx, vault_id, scenario, friendly, target, tasks, custom)
}

/// One task of a job (`ASRTask`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub task_id: String,
    pub name: String,
    pub friendly_name: String,
    pub start_time: String,
    #[serde(default)]
    pub end_time: Option<String>,
    pub state: String,
    pub state_description: String,
    pub task_type: String,
    #[serde(default)]
    pub allowed_actions: Vec<String>,
    pub custom_details: InstanceType,
    #[serde(default)]
    pub errors: Vec<Value>,
}

/// A polymorphic detail that carries only its discriminator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceType {
    pub instance_type: String,
}

/// A Site Recovery job's properties (`JobProperties`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProperties {
    pub activity_id: String,
    pub scenario_name: String,
    pub friendly_name: String,
    /// Site Recovery's words for the core's `JobStatus`.
    pub state: String,
    pub state_description: String,
    pub start_time: String,
    #[serde(default)]
    pub end_time: Option<String>,
    #[serde(default)]
    pub allowed_actions: Vec<String>,
    pub target_object_id: String,
    pub target_object_name: String,
    pub target_instance_type: String,
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub errors: Vec<Value>,
    /// The scenario's details (`AsrJobDetails`, `FailoverJobDetails`, …),
    /// as its operation wrote them; recoverite shows them and never reads
    /// them back.
    pub custom_details: Value,
}

/// A stored Site Recovery job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationJob {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub properties: JobProperties,
}

recoverite_arm::impl_document!(ReplicationJob, JOB_TYPE, "replication job");

impl ReplicationJob {
    /// A job of the core's `job` on `target` under the vault, in Site
    /// Recovery's shape.
    pub fn of(
        vault_id: &str,
        job: &Job,
        friendly: &str,
        target: JobTarget,
        custom: Value,
    ) -> ReplicationJob {
        let name = job.name.clone();
        let (state, description) = job.status.site_recovery();
        let at = |t: Option<::time::OffsetDateTime>| t.map(time::format);
        let tasks = job
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| Task {
                task_id: format!("{name}-{i}"),
                name: t.name.clone(),
                friendly_name: t.name.clone(),
                start_time: time::format(t.start),
                end_time: at(t.end),
                state: state.into(),
                state_description: description.into(),
                task_type: "JobTaskDetails".into(),
                allowed_actions: Vec::new(),
                custom_details: InstanceType {
                    instance_type: "JobTaskDetails".into(),
                },
                errors: Vec::new(),
            })
            .collect();
        ReplicationJob {
            id: format!("{vault_id}/replicationJobs/{name}"),
            kind: JOB_TYPE.into(),
            properties: JobProperties {
                activity_id: uuid::Uuid::new_v4().to_string(),
                scenario_name: job.operation.clone(),
                friendly_name: friendly.into(),
                state: state.into(),
                state_description: description.into(),
                start_time: time::format(job.start),
                end_time: at(job.end),
                allowed_actions: Vec::new(),
                target_object_id: target.id,
                target_object_name: target.name,
                target_instance_type: target.kind,
                tasks,
                errors: Vec::new(),
                custom_details: custom,
            },
            name,
        }
    }
}

/// Records a finished job with scenario-specific `customDetails`
/// (`FailoverJobDetails`, `TestFailoverJobDetails`, …).
pub fn record_with(
    tx: &mut WriteTx,
    vault_id: &str,
    scenario: &str,
    friendly: &str,
    target: impl Into<JobTarget>,
    tasks: &[&str],
    custom: Value,
) -> Result<Value, ArmError> {
    let tasks: Vec<(&str, u64)> = tasks.iter().map(|t| (*t, 0)).collect();
    let job = Job::ended_now(scenario, &tasks, JobStatus::Completed, Vec::new());
    let job = ReplicationJob::of(vault_id, &job, friendly, target.into(), custom);
    document::save(tx, &job)?;
    document::to_value(&job)
}

/// A vault's jobs, the latest first.
pub fn of_vault(r: &impl Reader, vault_id: &str) -> Result<Vec<ReplicationJob>, ArmError> {
    let mut jobs: Vec<ReplicationJob> = document::children(r, vault_id, "replicationJobs")?;
    jobs.sort_by(|a, b| b.properties.start_time.cmp(&a.properties.start_time));
    Ok(jobs)
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        let v = crate::vault_of(r, req)?;
        of_vault(r, &v.id)?
            .iter()
            .map(document::to_value)
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(Reply::ok(recoverite_arm::paging::page(ctx, req, items)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_shows_the_cores_status_in_site_recoverys_words() {
        let job = Job::ended_now(
            "TestFailover",
            &[("Prerequisites check", 0), ("Starting", 0)],
            JobStatus::Completed,
            Vec::new(),
        );
        let target = JobTarget { id: "/v/replicationProtectedItems/i".into(), name: "i".into(), kind: "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems".into() };
        let j = ReplicationJob::of(
            "/v",
            &job,
            "Test failover",
            target,
            json!({"instanceType": "TestFailoverJobDetails"}),
        );
        assert_eq!(j.id, format!("/v/replicationJobs/{}", job.name));
        assert_eq!(
            (
                j.properties.state.as_str(),
                j.properties.state_description.as_str()
            ),
            ("Succeeded", "Completed")
        );
        assert_eq!(j.properties.tasks.len(), 2);
        assert_eq!(j.properties.tasks[1].task_id, format!("{}-1", job.name));
        let shown = document::to_value(&j).unwrap();
        assert_eq!(
            shown["properties"]["tasks"][0]["customDetails"]["instanceType"],
            "JobTaskDetails"
        );
        assert_eq!(shown["properties"]["targetObjectName"], "i");
        assert_eq!(serde_json::from_value::<ReplicationJob>(shown).unwrap(), j);
    }
}
