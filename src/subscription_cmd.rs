//! `recoverite subscription create|list`: more subscriptions in the tenant,
//! through the running server's `Microsoft.Subscription/aliases` API, or
//! straight into the data directory when no server holds it (the server
//! registers providers and gives its first-party principals their roles
//! there at its next start).

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::{agent_for, open_data_dir, read_connection, read_json, token_for, HttpFailure};

const ALIAS_API: &str = "2021-10-01";

pub fn create(data_dir: &Path, name: &str, group: Option<&str>) -> Result<Value> {
    if let Some(conn) = read_connection(data_dir) {
        match create_via_http(&conn, name, group) {
            Ok(v) => return Ok(v),
            Err(HttpFailure::Unreachable(e)) => eprintln!(
                "recoverite is not reachable ({e}); writing to the data directory directly"
            ),
            Err(HttpFailure::Refused(e)) => bail!("{e}"),
        }
    }
    let (store, boot) = open(data_dir)?;
    let s = store.write(|tx| {
        recoverite_rp_management::create_subscription(tx, name, &boot.object_id, group, None)
    })?;
    Ok(json!({
        "subscriptionId": s.subscription_id,
        "displayName": s.display_name,
        "managementGroup": s.management_group,
    }))
}

pub fn list(data_dir: &Path) -> Result<Value> {
    if let Some(conn) = read_connection(data_dir) {
        return Ok(json!(conn.subscriptions));
    }
    let (store, _) = open(data_dir)?;
    let all = store.view(recoverite_arm::tenancy::subscriptions)?;
    Ok(json!(all
        .iter()
        .map(|s| json!({"subscriptionId": s.subscription_id, "displayName": s.display_name}))
        .collect::<Vec<_>>()))
}

fn open(data_dir: &Path) -> Result<(recoverite_store::Store, recoverite_server::Bootstrap)> {
    let (store, boot) = open_data_dir(data_dir)?;
    // Data directories from before subscriptions were state.
    recoverite_server::bootstrap::load_or_create(&store, &[])?;
    Ok((store, boot))
}

fn create_via_http(
    conn: &recoverite_server::Connection,
    name: &str,
    group: Option<&str>,
) -> Result<Value, HttpFailure> {
    let agent = agent_for(conn)?;
    let token = token_for(&agent, conn)?;
    let alias = uuid::Uuid::new_v4().to_string();
    let mut body = json!({"properties": {"displayName": name, "workload": "Production"}});
    if let Some(g) = group {
        body["properties"]["additionalProperties"] = json!({
            "managementGroupId": format!("/providers/Microsoft.Management/managementGroups/{g}")
        });
    }
    let mut resp = agent
        .put(&format!(
            "{}/providers/Microsoft.Subscription/aliases/{alias}?api-version={ALIAS_API}",
            conn.arm_endpoint
        ))
        .header("Authorization", &format!("Bearer {token}"))
        .content_type("application/json")
        .send(body.to_string())
        .map_err(|e| HttpFailure::Unreachable(e.to_string()))?;
    let status = resp.status().as_u16();
    let v = read_json(&mut resp)?;
    if !(200..300).contains(&status) {
        return Err(HttpFailure::Refused(format!(
            "recoverite refused ({status}): {v}"
        )));
    }
    Ok(json!({
        "subscriptionId": v["properties"]["subscriptionId"],
        "displayName": v["properties"]["displayName"],
        "managementGroup": v["properties"]["managementGroupId"],
        "alias": alias,
    }))
}
