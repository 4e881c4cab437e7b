//! Site Recovery jobs: every operation leaves one, with its tasks.

use serde_json::{json, Value};

use recoverite_arm::{resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::WriteTx;

pub const JOB_TYPE: &str = "Microsoft.RecoveryServices/vaults/replicationJobs";

/// Records a finished job for `target` under the vault.
pub fn record(
    tx: &mut WriteTx,
    vault_id: &str,
    scenario: &str,
    friendly: &str,
    target: &Value,
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
    target: &Value,
    tasks: &[&str],
    custom: Value,
) -> Result<Value, ArmError> {
    let name = uuid::Uuid::new_v4().to_string();
    let now = time::now_string();
    let jid = format!("{vault_id}/replicationJobs/{name}");
    let tasks: Vec<Value> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"taskId": format!("{name}-{i}"), "name": t, "friendlyName": t, "startTime": now, "endTime": now,
                   "state": "Succeeded", "stateDescription": "Completed", "taskType": "JobTaskDetails", "allowedActions": [],
                   "customDetails": {"instanceType": "JobTaskDetails"}, "errors": []})
        })
        .collect();
    let doc = json!({
        "id": jid, "name": name, "type": JOB_TYPE,
        "properties": {
            "activityId": uuid::Uuid::new_v4().to_string(),
            "scenarioName": scenario,
            "friendlyName": friendly,
            "state": "Succeeded",
            "stateDescription": "Completed",
            "startTime": now,
            "endTime": now,
            "allowedActions": [],
            "targetObjectId": target["id"],
            "targetObjectName": target["name"],
            "targetInstanceType": target["type"],
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
        let mut jobs =
            resource::list_children(r, v["id"].as_str().unwrap_or_default(), "replicationJobs")?;
        jobs.sort_by(|a, b| {
            b["properties"]["startTime"]
                .as_str()
                .cmp(&a["properties"]["startTime"].as_str())
        });
        Ok::<_, ArmError>(jobs)
    })?;
    Ok(Reply::ok(recoverite_arm::paging::page(ctx, req, items)?))
}
