//! The Entra ID endpoints an MSAL client needs: OpenID discovery, the signing
//! keys, and the token endpoint (client-credentials grant, v2.0 and v1).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use recoverite_identity::{Directory, OAuthError};

use crate::AppState;

fn oauth_error(e: OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({
        "error": e.error,
        "error_description": e.description,
        "error_codes": [],
        "timestamp": recoverite_arm::time::now_string(),
        "trace_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    (status, Json(body)).into_response()
}

fn bad(error: &'static str, description: impl Into<String>) -> Response {
    oauth_error(OAuthError {
        status: 400,
        error,
        description: description.into(),
    })
}

pub async fn openid_configuration(
    State(s): State<Arc<AppState>>,
    Path(tenant): Path<String>,
) -> Response {
    openid(&s, &tenant, true)
}

pub async fn openid_configuration_v1(
    State(s): State<Arc<AppState>>,
    Path(tenant): Path<String>,
) -> Response {
    openid(&s, &tenant, false)
}

fn openid(s: &AppState, tenant: &str, v2: bool) -> Response {
    let t = &s.tokens.tenant_id;
    let known = tenant.eq_ignore_ascii_case(t) || matches!(tenant, "common" | "organizations");
    if !known {
        return bad(
            "invalid_tenant",
            format!(
                "AADSTS90002: Tenant '{tenant}' not found. Use the tenantId from connection.json."
            ),
        );
    }
    let a = &s.tokens.authority;
    let (ver, token) = if v2 {
        ("/v2.0", "oauth2/v2.0/token")
    } else {
        ("", "oauth2/token")
    };
    Json(json!({
        "issuer": s.tokens.issuer,
        "token_endpoint": format!("{a}/{t}/{token}"),
        "authorization_endpoint": format!("{a}/{t}/oauth2{}/authorize", if v2 { "/v2.0" } else { "" }),
        "device_authorization_endpoint": format!("{a}/{t}/oauth2{}/devicecode", if v2 { "/v2.0" } else { "" }),
        "jwks_uri": format!("{a}/{t}/discovery{ver}/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "oid", "tid"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "recoverite.local",
    }))
    .into_response()
}

/// What MSAL asks when instance discovery is left on.
pub async fn instance_discovery(State(s): State<Arc<AppState>>) -> Response {
    let host = s
        .tokens
        .authority
        .trim_start_matches("https://")
        .to_string();
    Json(json!({
        "tenant_discovery_endpoint": format!("{}/{}/v2.0/.well-known/openid-configuration", s.tokens.authority, s.tokens.tenant_id),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}]
    }))
    .into_response()
}

pub async fn keys(State(s): State<Arc<AppState>>) -> Response {
    let tokens = s.tokens.clone();
    match tokio::task::spawn_blocking(move || tokens.jwks()).await {
        Ok(Ok(v)) => Json(v).into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "signing key unavailable").into_response(),
    }
}

/// Client id and secret from the form or from HTTP Basic authentication.
fn client_credentials(
    form: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Option<(String, String)> {
    if let (Some(id), Some(secret)) = (form.get("client_id"), form.get("client_secret")) {
        return Some((id.clone(), secret.clone()));
    }
    let basic = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(basic.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

async fn grant(
    s: Arc<AppState>,
    tenant: String,
    form: HashMap<String, String>,
    headers: HeaderMap,
    v2: bool,
) -> Response {
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            return bad(
                "unsupported_grant_type",
                format!("AADSTS70003: The app requested an unsupported grant type '{other}'. recoverite supports client_credentials."),
            )
        }
        None => return bad("invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'."),
    }
    let resource = if v2 {
        match form.get("scope") {
            Some(scope) => match Directory::resource_of_scope(scope) {
                Some(r) => r,
                None => {
                    return bad(
                        "invalid_scope",
                        format!("AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
                    )
                }
            },
            None => return bad("invalid_request", "AADSTS900144: The request body must contain the following parameter: 'scope'."),
        }
    } else {
        match form.get("resource") {
            Some(r) => r.clone(),
            None => return bad(
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'resource'.",
            ),
        }
    };
    let Some((client_id, secret)) = client_credentials(&form, &headers) else {
        return bad("invalid_request", "AADSTS900144: The request body must contain the following parameter: 'client_id' and 'client_secret'.");
    };
    let dir = s.directory.clone();
    let res = tokio::task::spawn_blocking(move || {
        dir.client_credentials(&tenant, &client_id, &secret, &resource)
    })
    .await;
    match res {
        Ok(Ok(g)) => {
            let mut body = json!({
                "token_type": "Bearer",
                "expires_in": g.expires_in,
                "ext_expires_in": g.expires_in,
                "access_token": g.access_token,
            });
            if !v2 {
                body["resource"] = json!(form.get("resource"));
            }
            Json(body).into_response()
        }
        Ok(Err(e)) => oauth_error(e),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "token service failed").into_response(),
    }
}

pub async fn token_v2(
    State(s): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    grant(s, tenant, form, headers, true).await
}

pub async fn token_v1(
    State(s): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    grant(s, tenant, form, headers, false).await
}
