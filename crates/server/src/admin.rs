//! recoverite's own HTTP calls (not part of Azure): creating service
//! principals for scripts, and the cloud metadata the Azure CLI reads.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use recoverite_arm::router::authorization_failed;
use recoverite_arm::{ArmError, Authorizer};
use recoverite_identity::authorization_provider::assign;
use recoverite_identity::principals;

use crate::AppState;

pub(crate) fn err(e: ArmError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, Json(e.to_json())).into_response();
    for (k, v) in &e.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPrincipal {
    pub display_name: String,
    pub role: Option<String>,
    pub scope: Option<String>,
}

/// `POST /recoverite/principals {displayName, role?, scope?}`: creates a
/// service principal and, when asked, assigns it a role. The caller needs
/// `Microsoft.Authorization/roleAssignments/write` at the scope (Owner or
/// User Access Administrator), the same right that assigning a role takes.
pub async fn create_principal(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let (auth, body): (_, NewPrincipal) = match authed_json(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let s2 = s.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, ArmError> {
        let caller = s2.directory.authenticate(auth.as_deref())?;
        let scope = body
            .scope
            .clone()
            .unwrap_or_else(|| format!("/subscriptions/{}", s2.bootstrap.subscription_id));
        let action = "Microsoft.Authorization/roleAssignments/write";
        if !s2.directory.is_allowed(&caller, action, &scope)? {
            return Err(authorization_failed(&caller.object_id, action, &scope));
        }
        if body.display_name.trim().is_empty() {
            return Err(ArmError::invalid_parameter(
                "displayName",
                "A principal needs a non-empty displayName.",
            ));
        }
        s2.directory.store.write(|tx| {
            let (p, secret) = principals::create_service_principal(tx, body.display_name.trim())?;
            let assignment = match &body.role {
                Some(role) => Some(assign(tx, role, &p.object_id, &scope, &caller.object_id)?),
                None => None,
            };
            Ok(json!({
                "displayName": p.display_name,
                "objectId": p.object_id,
                "clientId": p.app_id,
                "clientSecret": secret,
                "tenantId": s2.bootstrap.tenant_id,
                "roleAssignment": assignment,
            }))
        })
    })
    .await;
    match res {
        Ok(Ok(v)) => (StatusCode::CREATED, Json(v)).into_response(),
        Ok(Err(e)) => err(e),
        Err(_) => err(ArmError::internal(
            "principal creation stopped unexpectedly",
        )),
    }
}

/// `GET /metadata/endpoints`: lets `az cloud register --endpoint-resource-manager` discover the rest.
pub async fn cloud_metadata(State(s): State<Arc<AppState>>) -> Response {
    let a = &s.arm_endpoint;
    Json(json!({
        "galleryEndpoint": a,
        "graphEndpoint": a,
        "portalEndpoint": a,
        "graphAudience": "https://graph.microsoft.com",
        // Microsoft Graph is served here too (`/v1.0/…`): clients that read
        // this (azure-cli's `az ad`) call it on the emulator.
        "microsoftGraphResourceId": format!("{a}/"),
        "authentication": {
            "loginEndpoint": a,
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD"
        },
        "media": a,
        "suffixes": {
            "storage": "core.windows.net",
            "keyVaultDns": "vault.azure.net",
            "acrLoginServer": "azurecr.io",
        },
        "name": "recoverite",
        "resourceManager": a,
    }))
    .into_response()
}

/// `PUT /recoverite/providers/{namespace}/registration {"registeredAt": "2019-06-01T00:00:00Z"}`:
/// sets when a provider was (last) registered, to reproduce rules that depend
/// on old registrations (document 001's May 2020 cut-off), in the first
/// subscription or the body's `subscriptionId`. Needs the right to register
/// the provider there.
pub async fn set_registration_date(
    State(s): State<Arc<AppState>>,
    axum::extract::Path(ns): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let (auth, body): (_, serde_json::Value) = match authed_json(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(at) = body["registeredAt"]
        .as_str()
        .filter(|t| recoverite_arm::time::parse(t).is_some())
        .map(str::to_string)
    else {
        return err(ArmError::invalid_parameter(
            "registeredAt",
            "registeredAt must be an RFC 3339 time, e.g. 2019-06-01T00:00:00Z.",
        ));
    };
    // Any subscription of the tenant (`subscriptionId`), the first by default.
    let sub = body["subscriptionId"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| s.bootstrap.subscription_id.clone());
    let s2 = s.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, ArmError> {
        let caller = s2.directory.authenticate(auth.as_deref())?;
        let scope = format!("/subscriptions/{sub}");
        let action = format!("{ns}/register/action");
        if !s2.directory.is_allowed(&caller, &action, &scope)? {
            return Err(authorization_failed(&caller.object_id, &action, &scope));
        }
        let known = s2
            .directory
            .store
            .read(|r| Ok(recoverite_arm::tenancy::subscription(r, &sub)))??;
        if known.is_none() {
            return Err(ArmError::new(
                404,
                "SubscriptionNotFound",
                format!("The subscription '{sub}' could not be found."),
            ));
        }
        s2.directory.store.write(|tx| {
            let reg = recoverite_arm::registration::Registration {
                state: recoverite_arm::registration::REGISTERED.into(),
                registered_at: Some(at.clone()),
            };
            recoverite_arm::registration::set(tx, &sub, &ns, &reg)?;
            Ok(json!({"namespace": ns, "registrationState": reg.state, "registeredAt": reg.registered_at}))
        })
    })
    .await;
    match res {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => err(e),
        Err(_) => err(ArmError::internal("the update stopped unexpectedly")),
    }
}

/// `POST /recoverite/vaults/replication-pair {"vaultId","source","target"}`:
/// what enabling replication for a new region pair does to a vault's private
/// endpoints (Site Recovery's enable-protection calls the same function).
pub async fn replication_pair(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let (auth, body): (_, serde_json::Value) = match authed_json(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let s2 = s.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, ArmError> {
        let caller = s2.directory.authenticate(auth.as_deref())?;
        let vault = body["vaultId"].as_str().unwrap_or_default().to_string();
        let action = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems/write";
        if !s2.directory.is_allowed(&caller, action, &vault)? {
            return Err(authorization_failed(&caller.object_id, action, &vault));
        }
        let registry = s2.registry.clone();
        s2.directory.store.write(|tx| {
            if recoverite_arm::resource::get(tx, &vault)?.is_none() {
                return Err(ArmError::new(404, "ResourceNotFound", format!("Vault {vault} was not found.")));
            }
            let added = recoverite_rp_recoveryservices::target::enable_replication_pair(
                tx,
                &registry,
                &vault,
                body["source"].as_str().unwrap_or_default(),
                body["target"].as_str().unwrap_or_default(),
            )?;
            Ok(json!({"addedFqdns": added.iter().map(|m| m.fqdn.clone()).collect::<Vec<_>>()}))
        })
    })
    .await;
    match res {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => err(e),
        Err(_) => err(ArmError::internal("the update stopped unexpectedly")),
    }
}

/// `GET /recoverite/nbd`: where managed disks are exported.
pub async fn nbd_info(State(s): State<Arc<AppState>>) -> Response {
    Json(json!({
        "endpoint": s.nbd.tcp,
        "socket": s.nbd.socket,
        "unixUri": s.nbd.unix_uri("{resourceGroup}/{diskName}"),
        "exportName": "{resourceGroup}/{diskName}",
    }))
    .into_response()
}

/// `POST /recoverite/replication/points` `{"protectedItemId", "kind"}`: takes
/// a recovery point now instead of waiting for the replication loop
/// (`kind` `AppConsistent` marks an agent quiesce point).
pub async fn take_recovery_point(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let (auth, body): (_, serde_json::Value) = match authed_json(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let s2 = s.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, ArmError> {
        let caller = s2.directory.authenticate(auth.as_deref())?;
        let item = body["protectedItemId"].as_str().unwrap_or_default().to_string();
        let action = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems/write";
        if !s2.directory.is_allowed(&caller, action, &item)? {
            return Err(authorization_failed(&caller.object_id, action, &item));
        }
        let app = match body["kind"].as_str().unwrap_or("CrashConsistent") {
            "AppConsistent" => true,
            "CrashConsistent" => false,
            other => return Err(ArmError::invalid_parameter("kind", format!("kind '{other}' is not valid; use CrashConsistent or AppConsistent."))),
        };
        recoverite_rp_siterecovery::replication_loop::take_point_now(&s2.directory.store, &s2.engine, &s2.rt, &item, app)
    })
    .await;
    match res {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => err(e),
        Err(_) => err(ArmError::internal(
            "the recovery point stopped unexpectedly",
        )),
    }
}

/// An admin request's bearer token and JSON body (at most 64 KiB), or the
/// error reply to send.
pub(crate) async fn authed_json<T: serde::de::DeserializeOwned>(
    req: Request,
) -> Result<(Option<String>, T), Response> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| {
            err(ArmError::new(
                413,
                "RequestEntityTooLarge",
                "The request body is too large.",
            ))
        })?;
    let body = serde_json::from_slice(&bytes).map_err(|e| err(ArmError::invalid_content(e)))?;
    Ok((auth, body))
}
