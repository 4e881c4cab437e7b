//! What `recoverite agent --vm ID` talks to: its placement (asking is its
//! check-in, and the built-in agent stands aside while it checks in) and its
//! report after each cycle.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use recoverite_arm::{ArmError, Authorizer};
use recoverite_rp_siterecovery::runtime;

use crate::admin::{authed_json, err};
use crate::AppState;

/// An agent acts for the item's replication: it is handed a storage token
/// for the cache account and its reports change the item's health, so it
/// needs the right to change the item, not to read it (a Reader or a Site
/// Recovery Operator may neither take the token nor mark an item healthy).
const AGENT_ACTION: &str = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems/write";

#[derive(Deserialize)]
pub struct PlacementQuery {
    vm: String,
    agent: Option<String>,
}

/// `GET /recoverite/agents/placement?vm=ID&agent=NAME`.
pub async fn placement(
    State(s): State<Arc<AppState>>,
    Query(q): Query<PlacementQuery>,
    req: Request,
) -> Response {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let s2 = s.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, ArmError> {
        let caller = s2.directory.authenticate(auth.as_deref())?;
        s2.directory.require(&caller, AGENT_ACTION, &q.vm)?;
        let who = q.agent.unwrap_or_else(|| "recoverite agent".into());
        runtime::external_placement(&s2.directory.store, &s2.rt, &q.vm, &who)
    })
    .await;
    match res {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => err(e),
        Err(_) => err(ArmError::internal("placement stopped unexpectedly")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    item_id: String,
    agent: String,
    blocked: Option<BlockedReport>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedReport {
    endpoint: String,
    fqdn: String,
    address: Option<std::net::Ipv4Addr>,
    reason: String,
    flow_from: Option<std::net::Ipv4Addr>,
    flow_to: Option<std::net::Ipv4Addr>,
    /// The hop that failed (`dns`, `network`, `http:403:Code`, …).
    #[serde(default)]
    hop: String,
}

/// `POST /recoverite/agents/report {itemId, agent, blocked?}`.
pub async fn report(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let (auth, body): (_, Report) = match authed_json(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let s2 = s.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<(), ArmError> {
        let caller = s2.directory.authenticate(auth.as_deref())?;
        s2.directory.require(&caller, AGENT_ACTION, &body.item_id)?;
        let blocked = body.blocked.map(|b| recoverite_agent::Blocked {
            endpoint: b.endpoint,
            fqdn: b.fqdn,
            address: b.address,
            reason: b.reason,
            flow: b.flow_from.zip(b.flow_to),
            hop: recoverite_agent::Hop::parse(&b.hop),
        });
        runtime::external_report(
            &s2.directory.store,
            &s2.rt,
            &body.item_id,
            &body.agent,
            blocked,
        )
    })
    .await;
    match res {
        Ok(Ok(())) => Json(serde_json::json!({"ok": true})).into_response(),
        Ok(Err(e)) => err(e),
        Err(_) => err(ArmError::internal("report stopped unexpectedly")),
    }
}

/// `POST /asr-agent-health/messages` on the monitoring namespaces
/// (`asrmon{geo}.servicebus.windows.net`, behind `EventHub.{region}`): an
/// agent's health message, sent the way Event Hubs takes events over HTTPS.
/// It counts only as having got through; its content is the agent's own.
pub async fn monitoring_message(
    State(s): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    let Some(token) = token else {
        return err(ArmError::new(
            401,
            "Unauthorized",
            "Send an Entra token as 'Authorization: Bearer'.",
        ));
    };
    if let Err(e) = s.tokens.verify_for_storage(token.trim()) {
        return err(ArmError::new(401, "Unauthorized", e.body.message.clone()));
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) if v["item"].is_string() => {
            (axum::http::StatusCode::CREATED, Json(serde_json::json!({}))).into_response()
        }
        _ => err(ArmError::bad_request(
            "InvalidEvent",
            "The event must be a JSON object naming its item.",
        )),
    }
}
