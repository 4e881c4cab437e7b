//! HTTP glue for the ARM router: request in, ARM reply (or error envelope) out,
//! with the request-id headers ARM puts on every response.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;

use recoverite_arm::router::MAX_BODY_BYTES;
use recoverite_arm::{ArmError, RawRequest, Reply};

use crate::AppState;

pub fn base_url(headers: &HeaderMap, uri: &axum::http::Uri, fallback: &str) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()));
    match host {
        Some(h) => format!("https://{h}"),
        None => fallback.to_string(),
    }
}

pub async fn handle(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let correlation = parts
        .headers
        .get("x-ms-correlation-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let client_request_id = parts.headers.get("x-ms-client-request-id").cloned();
    let is_head = parts.method == Method::HEAD;
    let result = match axum::body::to_bytes(body, MAX_BODY_BYTES + 1).await {
        Err(_) => Err(ArmError::new(
            413,
            "RequestEntityTooLarge",
            format!("The request content size exceeds the maximum of {MAX_BODY_BYTES} bytes; send a smaller body."),
        )),
        Ok(bytes) => {
            let raw = RawRequest {
                base_url: base_url(&parts.headers, &parts.uri, &s.arm_endpoint),
                method: parts.method.clone(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().map(str::to_string),
                headers: parts.headers.clone(),
                body: bytes.to_vec(),
            };
            let router = s.router.clone();
            match tokio::task::spawn_blocking(move || router.dispatch(raw)).await {
                Ok(r) => r,
                Err(e) => Err(ArmError::internal(format!("the request handler stopped unexpectedly: {e}"))),
            }
        }
    };
    let reply = match result {
        Ok(r) => r,
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(method = %parts.method, path = %parts.uri.path(), "{e}");
            } else {
                tracing::debug!(method = %parts.method, path = %parts.uri.path(), "{e}");
            }
            let mut r = Reply::json(e.status, e.to_json());
            r.headers = e.headers.clone();
            r
        }
    };
    to_response(reply, is_head, correlation, client_request_id)
}

fn to_response(
    reply: Reply,
    is_head: bool,
    correlation: Option<String>,
    client_request_id: Option<HeaderValue>,
) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match (&reply.body, is_head || status == StatusCode::NO_CONTENT) {
        (Some(v), false) => Body::from(serde_json::to_vec(v).unwrap_or_default()),
        _ => Body::empty(),
    };
    let mut resp = Response::builder()
        .status(status)
        .body(body)
        .expect("valid response");
    let h = resp.headers_mut();
    if reply.body.is_some() && !is_head {
        h.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let correlation = correlation.unwrap_or_else(|| request_id.clone());
    for (k, v) in [
        ("x-ms-request-id", &request_id),
        ("x-ms-correlation-request-id", &correlation),
    ] {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
    if let Some(c) = client_request_id {
        h.insert("x-ms-client-request-id", c);
    }
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.insert(k, v);
        }
    }
    resp
}
