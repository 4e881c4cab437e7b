//! Site Recovery jobs: every operation leaves one, with its tasks.

use serde_json::{json, Value};

use recoverite_arm::{resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_rs_core::jobs::{Job, JobStatus};
use recoverite_store::WriteTx;

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
    let target: JobTarget = target.into();
    let tasks: Vec<(&str, u64)> = tasks.iter().map(|t| (*t, 0)).collect();
    let job = Job::ended_now(scenario, &tasks, JobStatus::Completed, Vec::new());
    let name = job.name.clone();
    let jid = format!("{vault_id}/replicationJobs/{name}");
    let (state, description) = job.status.site_recovery();
    let at = |t: Option<::time::OffsetDateTime>| t.map(time::format);
    let tasks: Vec<Value> = job
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"taskId": format!("{name}-{i}"), "name": t.name, "friendlyName": t.name, "startTime": time::format(t.start), "endTime": at(t.end),
                   "state": state, "stateDescription": description, "taskType": "JobTaskDetails", "allowedActions": [],
                   "customDetails": {"instanceType": "JobTaskDetails"}, "errors": []})
        })
        .collect();
    let doc = json!({
        "id": jid, "name": name, "type": JOB_TYPE,
        "properties": {
            "activityId": uuid::Uuid::new_v4().to_string(),
            "scenarioName": job.operation,
            "friendlyName": friendly,
            "state": state,
            "stateDescription": description,
            "startTime": time::format(job.start),
            "endTime": at(job.end),
            "allowedActions": [],
            "targetObjectId": target.id,
            "targetObjectName": target.name,
            "targetInstanceType": target.kind,
            "tasks": tasks,
            "errors": [],
            "customDetails": custom,
        }
    });
    resource::put(tx, &jid, &doc)?;
    Ok(doc)
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        let v = crate::vault_of(r, req)?;
        let mut jobs = resource::list_children(r, &v.id, "replicationJobs")?;
        jobs.sort_by(|a, b| {
            b["properties"]["startTime"]
                .as_str()
                .cmp(&a["properties"]["startTime"].as_str())
        });
        Ok::<_, ArmError>(jobs)
    })?;
    Ok(Reply::ok(recoverite_arm::paging::page(ctx, req, items)?))
}
