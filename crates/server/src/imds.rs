//! The Instance Metadata Service: a VM's own managed identities.
//!
//! Azure answers `169.254.169.254` inside every VM; here that address is
//! the loopback alias [`IMDS_ALIAS`], and the VM asking is the one whose NIC
//! alias the connection comes from — so a process bound to a VM's alias
//! gets that VM's tokens and no other's, and a process outside any VM gets
//! none. `azure.identity.ManagedIdentityCredential` reaches it unmodified
//! with `AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.169.254.254:10080`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use recoverite_arm::ArmError;
use recoverite_identity::principals::{self, Principal, PrincipalKind};
use recoverite_identity::{tokens, Directory};
use recoverite_rp_network::aliases;
use recoverite_store::Reader;

/// Azure's link-local IMDS address, as the model knows it.
pub const IMDS_MODEL: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The loopback alias standing for it (port 80 is served at 10080).
pub const IMDS_ALIAS: Ipv4Addr = Ipv4Addr::new(127, 169, 254, 254);

/// An IMDS refusal, in IMDS's own `{error, error_description}` shape.
fn refuse(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description.into()})),
    )
        .into_response()
}

/// The VM whose NIC owns the loopback alias `source`, if any.
pub fn vm_of_alias(r: &impl Reader, source: Ipv4Addr) -> Result<Option<Value>, ArmError> {
    let Some(a) = aliases::lookup(r, source)? else {
        return Ok(None);
    };
    if !a.owner.to_ascii_lowercase().contains("/ipconfigurations/") {
        return Ok(None);
    }
    let nic_id = recoverite_rp_network::view::nic_id_of(&a.owner);
    match recoverite_rp_network::view::nic(r, nic_id)?.and_then(|n| n.virtual_machine) {
        Some(vm) => recoverite_rp_compute::machine::load(r, &vm)?
            .map(|m| m.to_value())
            .transpose(),
        None => Ok(None),
    }
}

/// Which of the VM's identities a token request asks for: the system-assigned
/// one by default, a user-assigned one by `client_id`, `object_id` or its ARM
/// id (`msi_res_id` / `mi_res_id`) — and only one the VM has.
pub fn chosen_identity(
    r: &impl Reader,
    vm: &Value,
    q: &HashMap<String, String>,
) -> Result<Result<Principal, String>, ArmError> {
    let vm_id = vm["id"].as_str().unwrap_or_default();
    let uais = vm["identity"]["userAssignedIdentities"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let by = |k: &str| q.get(k).filter(|v| !v.is_empty());
    let wanted = by("client_id")
        .map(|v| ("clientId", v))
        .or_else(|| by("object_id").map(|v| ("principalId", v)))
        .or_else(|| by("principal_id").map(|v| ("principalId", v)));
    let res_id = by("msi_res_id").or_else(|| by("mi_res_id"));
    if let Some(res) = res_id {
        return Ok(match uais.keys().find(|k| k.eq_ignore_ascii_case(res)) {
            Some(k) => principals::for_resource(r, k, PrincipalKind::UserAssigned)?
                .ok_or_else(|| format!("Identity {k} no longer exists")),
            None => Err(format!(
                "Identity not found: {res} is not assigned to VM {vm_id}"
            )),
        });
    }
    if let Some((field, value)) = wanted {
        let hit = uais.iter().find(|(_, v)| {
            v[field]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(value))
        });
        return Ok(match hit {
            Some((k, _)) => principals::for_resource(r, k, PrincipalKind::UserAssigned)?
                .ok_or_else(|| format!("Identity {k} no longer exists")),
            None => Err(format!(
                "Identity not found: no identity with that id is assigned to VM {vm_id}"
            )),
        });
    }
    Ok(
        match principals::for_resource(r, vm_id, PrincipalKind::SystemAssigned)? {
            Some(p) => Ok(p),
            None if uais.len() == 1 => {
                let k = uais.keys().next().cloned().unwrap_or_default();
                principals::for_resource(r, &k, PrincipalKind::UserAssigned)?
                    .ok_or_else(|| format!("Identity {k} no longer exists"))
            }
            None if uais.is_empty() => Err(format!(
                "Identity not found: VM {vm_id} has no managed identity; give it one (identity.type SystemAssigned or UserAssigned)"
            )),
            None => Err("Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request".into()),
        },
    )
}

/// `GET /metadata/identity/oauth2/token?api-version=…&resource=…`.
pub async fn token(
    State(dir): State<Arc<Directory>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let metadata = headers
        .get("metadata")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !metadata {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    if !q.contains_key("api-version") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    let Some(resource) = q.get("resource").cloned().filter(|r| !r.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    if !dir.tokens.known_resource(&resource) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            format!("AADSTS500011: The resource principal named {resource} was not found in the tenant."),
        );
    }
    let IpAddr::V4(source) = peer.ip() else {
        return refuse(
            StatusCode::FORBIDDEN,
            "invalid_request",
            "IMDS answers VMs only",
        );
    };
    let d = dir.clone();
    let res = tokio::task::spawn_blocking(move || {
        d.store.view(|r| -> Result<Result<Principal, (StatusCode, String)>, ArmError> {
            let Some(vm) = vm_of_alias(r, source)? else {
                return Ok(Err((StatusCode::FORBIDDEN, format!("{source} is not the address of a VM's network interface: IMDS answers only the VM a connection comes from (bind to the VM's NIC alias)"))));
            };
            Ok(chosen_identity(r, &vm, &q)?.map_err(|m| (StatusCode::BAD_REQUEST, m)))
        })
    })
    .await;
    let principal = match res {
        Ok(Ok(Ok(p))) => p,
        Ok(Ok(Err((status, m)))) => return refuse(status, "invalid_request", m),
        Ok(Err(e)) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.body.message.clone(),
            )
        }
        Err(_) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "IMDS stopped",
            )
        }
    };
    let lifetime = tokens::TOKEN_LIFETIME_SECS;
    match dir.tokens.issue(&principal, &resource, lifetime) {
        Ok(access_token) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            // IMDS sends the numbers as strings.
            Json(json!({
                "access_token": access_token,
                "client_id": principal.app_id,
                "expires_in": lifetime.to_string(),
                "expires_on": (now + lifetime).to_string(),
                "ext_expires_in": lifetime.to_string(),
                "not_before": now.to_string(),
                "resource": resource,
                "token_type": "Bearer",
            }))
            .into_response()
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e),
    }
}

/// Serves IMDS on [`IMDS_ALIAS`] at the real port of model port 80.
pub async fn serve(
    dir: Arc<Directory>,
    real_port: u16,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind((IMDS_ALIAS, real_port)).await?;
    let app = axum::Router::new()
        .route("/metadata/identity/oauth2/token", axum::routing::get(token))
        .with_state(dir);
    Ok(tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    }))
}
