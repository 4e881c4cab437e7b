//! recoverite's own network views (not Azure APIs): the loopback alias of
//! every network position, "what does NAME resolve to from network V", and
//! a network's effective records as a hosts file.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use recoverite_arm::router::authorization_failed;
use recoverite_arm::{id, ArmError, Authorizer};
use recoverite_dns::RType;
use recoverite_rp_network::aliases;

use crate::AppState;

use crate::admin::err;

/// Who may look: anyone who may read networks in a subscription of the
/// tenant (the first is named in the refusal).
fn check(s: &AppState, headers: &HeaderMap) -> Result<(), ArmError> {
    let caller = s
        .directory
        .authenticate(headers.get("authorization").and_then(|v| v.to_str().ok()))?;
    let action = "Microsoft.Network/virtualNetworks/read";
    let subs = s
        .directory
        .store
        .read(|r| Ok(recoverite_arm::tenancy::subscriptions(r)))??;
    for sub in subs {
        if s.directory.is_allowed(
            &caller,
            action,
            &format!("/subscriptions/{}", sub.subscription_id),
        )? {
            return Ok(());
        }
    }
    let scope = format!("/subscriptions/{}", s.bootstrap.subscription_id);
    Err(authorization_failed(&caller.object_id, action, &scope))
}

/// `GET /recoverite/network/aliases[?vm=ID]`: every alias, or the one a
/// VM's processes act from (its primary NIC's primary IP configuration).
pub async fn aliases(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = check(&s, &headers) {
        return err(e);
    }
    let listed = s.directory.store.view(|r| match q.get("vm") {
        None => aliases::all(r),
        Some(vm) => {
            let cfg = recoverite_rp_compute::view::primary_ipconfig(r, vm)?;
            let owner = cfg.as_ref().map(|c| c.id.as_str()).ok_or_else(|| {
                ArmError::new(
                    404,
                    "NotFound",
                    format!(
                    "VM '{vm}' was not found, or has no network interface with an IP configuration."
                ),
                )
            })?;
            Ok(aliases::of_owner(r, owner)?.into_iter().collect())
        }
    });
    match listed {
        Ok(list) => Json(json!({ "value": list.iter().map(|a| json!({
            "alias": a.alias, "owner": a.owner, "kind": a.kind, "virtualNetworkId": a.vnet_id,
            "subnetId": a.subnet_id, "privateIPAddress": a.private_ip,
        })).collect::<Vec<_>>() }))
        .into_response(),
        Err(e) => err(e),
    }
}

fn rtype(s: Option<&String>) -> Result<RType, ArmError> {
    Ok(match s.map(|x| x.to_ascii_uppercase()).as_deref() {
        None | Some("A") => RType::A,
        Some("AAAA") => RType::Aaaa,
        Some("CNAME") => RType::Cname,
        Some("TXT") => RType::Txt,
        Some(o) => {
            return Err(ArmError::bad_request(
                "InvalidRecordType",
                format!("Record type {o} is not answered; use A, AAAA, CNAME or TXT."),
            ))
        }
    })
}

/// `GET /recoverite/network/resolve?name=N&(vnet=ID|from=ALIAS)[&type=A]`
pub async fn resolve(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = check(&s, &headers) {
        return err(e);
    }
    let Some(name) = q.get("name") else {
        return err(ArmError::invalid_parameter(
            "name",
            "Give the name to resolve: ?name=…",
        ));
    };
    let t = match rtype(q.get("type")) {
        Ok(t) => t,
        Err(e) => return err(e),
    };
    let snap = s.resolver.snapshot();
    let vnet = match (q.get("vnet"), q.get("from")) {
        (Some(v), _) => Some(id::key(v)),
        (None, Some(a)) => match a.parse::<Ipv4Addr>() {
            Ok(ip) => s.resolver.vnet_of(&snap, IpAddr::V4(ip)),
            Err(_) => {
                return err(ArmError::invalid_parameter(
                    "from",
                    "from must be an IPv4 loopback alias.",
                ))
            }
        },
        (None, None) => None,
    };
    if let Some(v) = &vnet {
        if !snap.vnets.contains_key(v) {
            return err(ArmError::new(
                404,
                "NotFound",
                format!("Virtual network {v} was not found."),
            ));
        }
    }
    let r = recoverite_dns::resolve(&snap, vnet.as_deref(), name, t);
    let answers: Vec<_> = r
        .answers
        .iter()
        .map(|a| {
            let (ty, v) = match &a.value {
                recoverite_dns::resolve::Value::A(ip) => ("A", ip.to_string()),
                recoverite_dns::resolve::Value::Aaaa(ip) => ("AAAA", ip.to_string()),
                recoverite_dns::resolve::Value::Cname(c) => ("CNAME", c.clone()),
                recoverite_dns::resolve::Value::Txt(t) => ("TXT", t.join(" ")),
            };
            json!({"name": a.name, "type": ty, "ttl": a.ttl, "value": v})
        })
        .collect();
    Json(json!({
        "name": name,
        "virtualNetworkId": vnet.as_ref().and_then(|v| snap.vnets.get(v)),
        "rcode": if r.rcode == recoverite_dns::Rcode::NoError { "NOERROR" } else { "NXDOMAIN" },
        "answers": answers,
        "trace": r.trace,
    }))
    .into_response()
}

/// `GET /recoverite/network/hosts?vnet=ID`
pub async fn hosts(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = check(&s, &headers) {
        return err(e);
    }
    let Some(v) = q.get("vnet") else {
        return err(ArmError::invalid_parameter(
            "vnet",
            "Give the virtual network id: ?vnet=…",
        ));
    };
    let snap = s.resolver.snapshot();
    let key = id::key(v);
    if !snap.vnets.contains_key(&key) {
        return err(ArmError::new(
            404,
            "NotFound",
            format!("Virtual network {v} was not found."),
        ));
    }
    (
        [("content-type", "text/plain; charset=utf-8")],
        recoverite_dns::hosts_file(&snap, &key),
    )
        .into_response()
}

/// `GET /recoverite/network/flowlog`: the gateway's recent decisions, newest last.
/// `GET /recoverite/network/flowlog[?allowed=true|false][&vm=ID|NAME][&dest=TEXT]`:
/// the gateway's decisions, oldest first; `dest` matches the destination's
/// alias, address, or part of its name (`vault`, `Storage.eastus`, a VM).
pub async fn flow_log(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = check(&s, &headers) {
        return err(e);
    }
    let allowed = match q.get("allowed").map(|a| a.to_ascii_lowercase()) {
        None => None,
        Some(a) if a == "true" => Some(true),
        Some(a) if a == "false" => Some(false),
        Some(a) => {
            return err(ArmError::invalid_parameter(
                "allowed",
                format!("allowed={a}: give true or false."),
            ))
        }
    };
    let filter = recoverite_gateway::flowlog::Filter {
        allowed,
        vm: q.get("vm").cloned(),
        dest: q.get("dest").cloned(),
    };
    Json(json!({ "value": s.gateway.flows(&filter) })).into_response()
}

/// `GET /recoverite/network/check?from=ALIAS&to=ALIAS&port=443`: what the
/// gateway would decide, without connecting.
pub async fn check_flow(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = check(&s, &headers) {
        return err(e);
    }
    let ip = |k: &str| q.get(k).and_then(|v| v.parse::<Ipv4Addr>().ok());
    let port = q.get("port").and_then(|p| p.parse().ok()).unwrap_or(443);
    // A VM (by id) to a name or a model address: resolved and decided from
    // the VM's network position, as Network Watcher's connectivity check.
    let is_alias = |k: &str| ip(k).is_some_and(|a| a.is_loopback());
    if !(is_alias("from") && is_alias("to")) {
        let (Some(from), Some(to)) = (q.get("from").cloned(), q.get("to").cloned()) else {
            return err(ArmError::invalid_parameter(
                "from",
                "Give from= (a loopback alias or a VM's resource id) and to= (an alias, an address or a name).",
            ));
        };
        if ip("from").is_some() {
            return err(ArmError::invalid_parameter(
                "to",
                "From a loopback alias, give to= as an alias too; to check an address or a name, give from= as the VM's resource id.",
            ));
        }
        let probe = crate::connectivity::GatewayConnectivity {
            store: s.directory.store.clone(),
            resolver: s.resolver.clone(),
            gateway: s.gateway.clone(),
        };
        use recoverite_rp_network::watcher::Connectivity;
        return match tokio::task::spawn_blocking(move || probe.probe(&from, &to, port)).await {
            Ok(Ok(p)) => Json(json!({
                "allowed": p.allowed, "reason": p.reason, "sourceAddress": p.source_address,
                "destinationAddress": p.destination_address, "destinationResource": p.destination_resource,
                "destinationKind": p.destination_kind, "dns": p.dns, "dnsFailed": p.dns_failed,
            }))
            .into_response(),
            Ok(Err(e)) => err(e),
            Err(_) => err(ArmError::internal("the check stopped unexpectedly")),
        };
    }
    let (Some(from), Some(to)) = (ip("from"), ip("to")) else {
        return err(ArmError::internal("aliases were checked above"));
    };
    let gw = s.gateway.clone();
    match tokio::task::spawn_blocking(move || gw.check(from, to, port)).await {
        Ok(Ok(d)) => Json(serde_json::to_value(d).unwrap_or_default()).into_response(),
        Ok(Err(e)) => err(e),
        Err(_) => err(ArmError::internal("the check stopped unexpectedly")),
    }
}

/// `GET /recoverite/drills?vault=ID[&format=text]`: the vault's DR-drill
/// reports (test failovers, failovers, failbacks, restores), oldest first,
/// as JSON or one summary line each.
pub async fn drills(
    axum::extract::State(s): axum::extract::State<std::sync::Arc<crate::AppState>>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use recoverite_arm::Authorizer;
    let Some(vault) = q.get("vault").cloned() else {
        return err(ArmError::invalid_parameter(
            "vault",
            "Give vault= as the vault's resource id.",
        ));
    };
    let text = q.get("format").is_some_and(|f| f == "text");
    let s2 = s.clone();
    let res = tokio::task::spawn_blocking(move || {
        let caller = s2
            .directory
            .authenticate(headers.get("authorization").and_then(|v| v.to_str().ok()))?;
        // Reports are what the vault's jobs show: its job readers may read them.
        s2.directory.require(
            &caller,
            "Microsoft.RecoveryServices/vaults/replicationJobs/read",
            &vault,
        )?;
        s2.directory
            .store
            .view(|r| recoverite_rs_core::drills::list(r, &vault))
    })
    .await;
    match res {
        Ok(Ok(reports)) if text => reports
            .iter()
            .map(|r| format!("{} {}\n", r.finished, r.summary))
            .collect::<String>()
            .into_response(),
        Ok(Ok(reports)) => axum::Json(serde_json::json!({ "value": reports })).into_response(),
        Ok(Err(e)) => err(e),
        Err(_) => err(ArmError::internal(
            "listing drill reports stopped unexpectedly",
        )),
    }
}
