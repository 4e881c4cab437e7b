//! The Blob service's data plane for every storage account: containers and
//! block blobs, kept through `object_store` (a local directory by default)
//! under `{account}/{container}/{blob}`.
//!
//! The account comes from the `Host` header (`{account}.blob.core.windows.net`
//! or its `privatelink.` name), as with Azure; requests arrive through the
//! gateway, which has already decided whether the network lets them in.
//! Authorization is the caller's business ([`Authorize`]): Entra bearer
//! tokens and the data actions of the caller's roles.

mod xml;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload};

/// What a request wants to do, for authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Delete,
    List,
    ManageContainer,
}

/// An error in the Blob service's shape: status, `x-ms-error-code`, message.
#[derive(Debug, Clone)]
pub struct BlobError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl BlobError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> BlobError {
        BlobError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

impl IntoResponse for BlobError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, xml::error(&self.code, &self.message)).into_response();
        if let Ok(v) = HeaderValue::from_str(&self.code) {
            r.headers_mut().insert("x-ms-error-code", v);
        }
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/xml"));
        r
    }
}

/// Decides who may do what on an account: the account must exist and the
/// bearer token's principal must hold the data action.
pub trait Authorize: Send + Sync + 'static {
    fn authorize(
        &self,
        account: &str,
        authorization: Option<&str>,
        access: Access,
    ) -> Result<(), BlobError>;
}

#[derive(Clone)]
struct Service {
    store: Arc<dyn ObjectStore>,
    auth: Arc<dyn Authorize>,
}

/// Serves the Blob API on 127.0.0.1 (a free port); returns where.
pub async fn serve(
    store: Arc<dyn ObjectStore>,
    auth: Arc<dyn Authorize>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/{container}", axum::routing::any(container))
        .route("/{container}/{*blob}", axum::routing::any(blob))
        .layer(axum::extract::DefaultBodyLimit::max(512 << 20))
        .with_state(Service { store, auth });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, task))
}

/// The account a request addresses, from its Host header.
fn account_of(h: &HeaderMap) -> Result<String, BlobError> {
    let host = h
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let host = host.split(':').next().unwrap_or_default();
    host.strip_suffix(".blob.core.windows.net")
        .map(|a| a.trim_end_matches(".privatelink").to_string())
        .filter(|a| !a.is_empty() && !a.contains('.'))
        .ok_or_else(|| BlobError::new(400, "InvalidUri", format!("Address the account by its blob host name ({{account}}.blob.core.windows.net), not '{host}'.")))
}

fn check_container_name(c: &str) -> Result<(), BlobError> {
    let ok = (3..=63).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !c.starts_with('-')
        && !c.ends_with('-')
        && !c.contains("--");
    if ok {
        Ok(())
    } else {
        Err(BlobError::new(400, "InvalidResourceName", format!("'{c}' is not a valid container name: 3-63 lower-case letters, digits and single hyphens.")))
    }
}

fn marker(account: &str, c: &str) -> ObjPath {
    ObjPath::from(format!("{account}/$containers/{c}"))
}

fn blob_path(account: &str, c: &str, b: &str) -> Result<ObjPath, BlobError> {
    ObjPath::parse(format!("{account}/{c}/{b}")).map_err(|e| {
        BlobError::new(
            400,
            "InvalidUri",
            format!("'{b}' is not a valid blob name: {e}"),
        )
    })
}

fn internal(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => {
            BlobError::new(404, "BlobNotFound", "The specified blob does not exist.")
        }
        e => BlobError::new(500, "InternalError", format!("blob storage failed: {e}")),
    }
}

async fn container_exists(s: &Service, account: &str, c: &str) -> Result<bool, BlobError> {
    match s.store.head(&marker(account, c)).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(internal(e)),
    }
}

fn auth(s: &Service, h: &HeaderMap, account: &str, access: Access) -> Result<(), BlobError> {
    s.auth.authorize(
        account,
        h.get("authorization").and_then(|v| v.to_str().ok()),
        access,
    )
}

fn with_status(status: StatusCode) -> Response {
    let mut r = status.into_response();
    r.headers_mut()
        .insert("x-ms-version", HeaderValue::from_static("2025-01-05"));
    r
}

async fn container(
    State(s): State<Service>,
    Path(c): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    req: Request,
) -> Result<Response, BlobError> {
    let h = req.headers().clone();
    let account = account_of(&h)?;
    check_container_name(&c)?;
    if q.get("restype").map(String::as_str) != Some("container") {
        return Err(BlobError::new(
            400,
            "InvalidQueryParameterValue",
            "Container operations take restype=container.",
        ));
    }
    match (req.method().clone(), q.get("comp").map(String::as_str)) {
        (Method::PUT, None) => {
            auth(&s, &h, &account, Access::ManageContainer)?;
            if container_exists(&s, &account, &c).await? {
                return Err(BlobError::new(
                    409,
                    "ContainerAlreadyExists",
                    "The specified container already exists.",
                ));
            }
            s.store
                .put(&marker(&account, &c), PutPayload::from_static(b""))
                .await
                .map_err(internal)?;
            Ok(with_status(StatusCode::CREATED))
        }
        (Method::DELETE, None) => {
            auth(&s, &h, &account, Access::ManageContainer)?;
            if !container_exists(&s, &account, &c).await? {
                return Err(BlobError::new(
                    404,
                    "ContainerNotFound",
                    "The specified container does not exist.",
                ));
            }
            let prefix = ObjPath::from(format!("{account}/{c}"));
            let names: Vec<_> = s
                .store
                .list(Some(&prefix))
                .map_ok(|m| m.location)
                .try_collect()
                .await
                .map_err(internal)?;
            for n in names {
                s.store.delete(&n).await.map_err(internal)?;
            }
            s.store
                .delete(&marker(&account, &c))
                .await
                .map_err(internal)?;
            Ok(with_status(StatusCode::ACCEPTED))
        }
        (Method::GET, Some("list")) => {
            auth(&s, &h, &account, Access::List)?;
            if !container_exists(&s, &account, &c).await? {
                return Err(BlobError::new(
                    404,
                    "ContainerNotFound",
                    "The specified container does not exist.",
                ));
            }
            let prefix = ObjPath::from(format!("{account}/{c}"));
            let want = q.get("prefix").cloned().unwrap_or_default();
            let mut items: Vec<(String, u64)> = s
                .store
                .list(Some(&prefix))
                .map_ok(|m| {
                    (
                        m.location
                            .as_ref()
                            .splitn(3, '/')
                            .nth(2)
                            .unwrap_or_default()
                            .to_string(),
                        m.size,
                    )
                })
                .try_collect()
                .await
                .map_err(internal)?;
            items.retain(|(n, _)| n.starts_with(&want));
            items.sort();
            let mut r = (StatusCode::OK, xml::list(&account, &c, &want, &items)).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/xml"));
            Ok(r)
        }
        _ => Err(BlobError::new(
            400,
            "UnsupportedHttpVerb",
            "This container operation is not supported.",
        )),
    }
}

async fn blob(
    State(s): State<Service>,
    Path((c, b)): Path<(String, String)>,
    req: Request,
) -> Result<Response, BlobError> {
    let h = req.headers().clone();
    let account = account_of(&h)?;
    check_container_name(&c)?;
    let path = blob_path(&account, &c, &b)?;
    let method = req.method().clone();
    let access = match method {
        Method::PUT => Access::Write,
        Method::DELETE => Access::Delete,
        Method::GET | Method::HEAD => Access::Read,
        _ => {
            return Err(BlobError::new(
                400,
                "UnsupportedHttpVerb",
                "Use PUT, GET, HEAD or DELETE on a blob.",
            ))
        }
    };
    auth(&s, &h, &account, access)?;
    if !container_exists(&s, &account, &c).await? {
        return Err(BlobError::new(
            404,
            "ContainerNotFound",
            "The specified container does not exist.",
        ));
    }
    match method {
        Method::PUT => {
            let kind = h
                .get("x-ms-blob-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("BlockBlob");
            if kind != "BlockBlob" {
                return Err(BlobError::new(
                    400,
                    "InvalidHeaderValue",
                    format!("x-ms-blob-type '{kind}' is not served; use BlockBlob."),
                ));
            }
            let bytes = axum::body::to_bytes(req.into_body(), 512 << 20)
                .await
                .map_err(|_| {
                    BlobError::new(
                        413,
                        "RequestBodyTooLarge",
                        "The request body is too large (limit 512 MiB).",
                    )
                })?;
            s.store
                .put(&path, PutPayload::from_bytes(bytes))
                .await
                .map_err(internal)?;
            Ok(with_status(StatusCode::CREATED))
        }
        Method::DELETE => {
            s.store.head(&path).await.map_err(internal)?;
            s.store.delete(&path).await.map_err(internal)?;
            Ok(with_status(StatusCode::ACCEPTED))
        }
        Method::HEAD => {
            let m = s.store.head(&path).await.map_err(internal)?;
            let mut r = with_status(StatusCode::OK);
            r.headers_mut()
                .insert("content-length", HeaderValue::from(m.size));
            r.headers_mut()
                .insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
            Ok(r)
        }
        _ => {
            let got = s.store.get(&path).await.map_err(internal)?;
            let bytes = got.bytes().await.map_err(internal)?;
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut()
                .insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/octet-stream"),
            );
            Ok(r)
        }
    }
}
