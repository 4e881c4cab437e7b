//! Microsoft Graph v1.0 on the emulator's endpoint (the cloud metadata names
//! it as `microsoftGraphResourceId`, so azure-cli's `az ad` calls land
//! here): the request is parsed into one typed [`Route`], authenticated with
//! a token for Graph, and served by `recoverite_identity::graph`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use recoverite_identity::graph::{self, GraphError};

use crate::AppState;

/// What a Graph request asks for, decided before anything runs.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    ListApplications,
    CreateApplication,
    GetApplication(String),
    UpdateApplication(String),
    DeleteApplication(String),
    AddPassword(String),
    RemovePassword(String),
    ListServicePrincipals,
    CreateServicePrincipal,
    GetServicePrincipal(String),
    DeleteServicePrincipal(String),
    GetByIds,
}

impl Route {
    fn parse(method: &Method, path: &str) -> Option<Route> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let m = method.as_str();
        Some(match (m, segs.as_slice()) {
            ("GET", ["applications"]) => Route::ListApplications,
            ("POST", ["applications"]) => Route::CreateApplication,
            ("GET", ["applications", id]) => Route::GetApplication(id.to_string()),
            ("PATCH", ["applications", id]) => Route::UpdateApplication(id.to_string()),
            ("DELETE", ["applications", id]) => Route::DeleteApplication(id.to_string()),
            ("POST", ["applications", id, "addPassword"]) => Route::AddPassword(id.to_string()),
            ("POST", ["applications", id, "removePassword"]) => {
                Route::RemovePassword(id.to_string())
            }
            ("GET", ["servicePrincipals"]) => Route::ListServicePrincipals,
            ("POST", ["servicePrincipals"]) => Route::CreateServicePrincipal,
            ("GET", ["servicePrincipals", id]) => Route::GetServicePrincipal(id.to_string()),
            ("DELETE", ["servicePrincipals", id]) => Route::DeleteServicePrincipal(id.to_string()),
            ("POST", ["directoryObjects", "getByIds"]) => Route::GetByIds,
            _ => return None,
        })
    }

    /// Whether the route changes the directory (needs the directory role).
    fn writes(&self) -> bool {
        !matches!(
            self,
            Route::ListApplications
                | Route::GetApplication(_)
                | Route::ListServicePrincipals
                | Route::GetServicePrincipal(_)
                | Route::GetByIds
        )
    }
}

fn reply(e: GraphError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(e.to_json())).into_response()
}

fn list(items: Vec<Value>, kind: &str) -> Value {
    json!({"@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#{kind}"), "value": items})
}

/// `/v1.0/{path}`, any method.
pub async fn handle(
    State(s): State<Arc<AppState>>,
    method: Method,
    Path(path): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(route) = Route::parse(&method, &path) else {
        return reply(GraphError::bad(format!(
            "recoverite does not implement {method} /v1.0/{path} of Microsoft Graph; it serves applications, their passwords, service principals and directoryObjects/getByIds."
        )));
    };
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        });
    let claims = match token.map(|t| {
        s.tokens
            .verify_for_audience(t.trim(), "https://graph.microsoft.com")
    }) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            return reply(GraphError {
                status: 401,
                code: "InvalidAuthenticationToken",
                message: e.body.message.clone(),
            })
        }
        None => {
            return reply(GraphError {
                status: 401,
                code: "InvalidAuthenticationToken",
                message: "Access token is empty.".into(),
            })
        }
    };
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return reply(GraphError::bad(format!(
                    "The request body is not JSON: {e}"
                )))
            }
        }
    };
    let filter = match q.get("$filter").map(|f| graph::parse_filter(f)) {
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => return reply(e),
        None => None,
    };
    let store = s.directory.store.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<(StatusCode, Value), GraphError> {
        if route.writes() {
            store.view(|r| {
                Ok::<_, recoverite_arm::ArmError>(graph::require_app_admin(r, &claims.oid))
            })??;
        }
        let ok = |v: Value| Ok((StatusCode::OK, v));
        match route {
            Route::ListApplications => store
                .view(|r| {
                    Ok::<_, recoverite_arm::ArmError>(graph::applications(r, filter.as_ref()))
                })?
                .map(|a| {
                    (
                        StatusCode::OK,
                        list(a.iter().map(|x| x.to_json()).collect(), "applications"),
                    )
                }),
            Route::GetApplication(id) => ok(store
                .view(|r| Ok::<_, recoverite_arm::ArmError>(graph::application(r, &id)))??
                .to_json()),
            Route::CreateApplication => {
                let a = store.write(|tx| {
                    Ok::<_, recoverite_arm::ArmError>(graph::create_application(tx, &body))
                })??;
                Ok((StatusCode::CREATED, a.to_json()))
            }
            Route::UpdateApplication(id) => {
                store.write(|tx| {
                    Ok::<_, recoverite_arm::ArmError>(graph::update_application(tx, &id, &body))
                })??;
                Ok((StatusCode::NO_CONTENT, Value::Null))
            }
            Route::DeleteApplication(id) => {
                store.write(|tx| {
                    Ok::<_, recoverite_arm::ArmError>(graph::delete_application(tx, &id))
                })??;
                Ok((StatusCode::NO_CONTENT, Value::Null))
            }
            Route::AddPassword(id) => {
                let (cred, secret) = store.write(|tx| {
                    Ok::<_, recoverite_arm::ArmError>(graph::add_password(tx, &id, &body))
                })??;
                let mut v = json!(cred);
                v["secretText"] = json!(secret);
                ok(v)
            }
            Route::RemovePassword(id) => {
                let key = body["keyId"].as_str().unwrap_or_default().to_string();
                store.write(|tx| {
                    Ok::<_, recoverite_arm::ArmError>(graph::remove_password(tx, &id, &key))
                })??;
                Ok((StatusCode::NO_CONTENT, Value::Null))
            }
            Route::ListServicePrincipals => store
                .view(|r| {
                    Ok::<_, recoverite_arm::ArmError>(graph::service_principals(r, filter.as_ref()))
                })?
                .map(|ps| {
                    (
                        StatusCode::OK,
                        list(
                            ps.iter().map(graph::service_principal_json).collect(),
                            "servicePrincipals",
                        ),
                    )
                }),
            Route::GetServicePrincipal(id) => {
                ok(graph::service_principal_json(&store.view(|r| {
                    Ok::<_, recoverite_arm::ArmError>(graph::service_principal(r, &id))
                })??))
            }
            Route::CreateServicePrincipal => {
                let p = store.write(|tx| {
                    Ok::<_, recoverite_arm::ArmError>(graph::create_service_principal(tx, &body))
                })??;
                Ok((StatusCode::CREATED, graph::service_principal_json(&p)))
            }
            Route::DeleteServicePrincipal(id) => {
                store.write(|tx| {
                    Ok::<_, recoverite_arm::ArmError>(graph::service_principal(tx, &id).and_then(
                        |p| {
                            recoverite_identity::principals::remove_service_principal(
                                tx,
                                &p.object_id,
                            )
                            .map_err(GraphError::from)
                        },
                    ))
                })??;
                Ok((StatusCode::NO_CONTENT, Value::Null))
            }
            Route::GetByIds => {
                let ids: Vec<String> = body["ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                if ids.len() > 1000 {
                    return Err(GraphError::bad("getByIds takes at most 1000 ids."));
                }
                let found =
                    store.view(|r| Ok::<_, recoverite_arm::ArmError>(graph::by_ids(r, &ids)))??;
                ok(list(found, "directoryObjects"))
            }
        }
    })
    .await;
    match res {
        Ok(Ok((StatusCode::NO_CONTENT, _))) => StatusCode::NO_CONTENT.into_response(),
        Ok(Ok((status, v))) => (status, Json(v)).into_response(),
        Ok(Err(e)) => reply(e),
        Err(_) => reply(GraphError {
            status: 500,
            code: "Service_InternalServerError",
            message: "the request stopped unexpectedly".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_decided_before_anything_runs() {
        assert_eq!(
            Route::parse(&Method::POST, "applications/abc/addPassword"),
            Some(Route::AddPassword("abc".into()))
        );
        assert_eq!(
            Route::parse(&Method::GET, "servicePrincipals"),
            Some(Route::ListServicePrincipals)
        );
        assert_eq!(Route::parse(&Method::GET, "users"), None);
        assert!(Route::CreateApplication.writes() && !Route::GetByIds.writes());
    }
}
