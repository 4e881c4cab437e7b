//! The Blob service's data plane for every storage account: containers and
//! block blobs, kept through `object_store` (a local directory by default)
//! under `{account}/{container}/{blob}`.
//!
//! The account comes from the `Host` header (`{account}.blob.core.windows.net`
//! or its `privatelink.` name), as with Azure; requests arrive through the
//! gateway, which has already decided whether the network lets them in.
//! Authorization is the caller's business ([`Authorize`]): Entra bearer
//! tokens and the data actions of the caller's roles.

pub mod containers;
pub mod durable;
pub mod sas;
mod shared_key;
pub mod worm;
mod xml;

pub use containers::Containers;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
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

    /// The account's access keys (decoded), for Shared Key requests; an
    /// error when the account does not allow shared key access.
    fn shared_keys(&self, account: &str) -> Result<Vec<Vec<u8>>, BlobError>;

    /// Told after the Blob API deleted a container, so what the management
    /// plane notes about it (e.g. that it keeps data) goes with it.
    fn container_deleted(&self, account: &str, container: &str) {
        let _ = (account, container);
    }

    /// The time immutability is judged by (the emulator clock in recoverite).
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}

#[derive(Clone)]
struct Service {
    store: Arc<dyn ObjectStore>,
    auth: Arc<dyn Authorize>,
}

/// The first line the gateway sends on every connection it proxies here:
/// `recoverite-admit {secret} {account}`. The secret is made at start and
/// known only to the gateway, so a local process that dials this port
/// directly cannot name an account it was not admitted to.
pub const ADMIT_PREFIX: &str = "recoverite-admit";

/// The account the gateway admitted a connection for.
#[derive(Clone, Debug)]
pub struct Admitted(pub String);

/// Connections whose admission line has been read, in arrival order.
struct Admitting {
    rx: tokio::sync::mpsc::Receiver<(tokio::net::TcpStream, Admitted)>,
}

impl axum::serve::Listener for Admitting {
    type Io = tokio::net::TcpStream;
    type Addr = Admitted;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task has stopped: serve nothing more.
            None => std::future::pending().await,
        }
    }
    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Admitted(String::new()))
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Admitting>>
    for Admitted
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, Admitting>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Reads `recoverite-admit {secret} {account}\n`; `None` if it is not that.
async fn admission(stream: &mut tokio::net::TcpStream, secret: &str) -> Option<Admitted> {
    use tokio::io::AsyncReadExt;
    let mut line = Vec::with_capacity(128);
    let mut b = [0u8; 1];
    while line.len() < 256 {
        match stream.read(&mut b).await {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => line.push(b[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8(line).ok()?;
    let mut parts = text.trim_end().split(' ');
    let ok = parts.next() == Some(ADMIT_PREFIX) && parts.next() == Some(secret);
    let account = parts.next()?.to_ascii_lowercase();
    (ok && parts.next().is_none() && !account.is_empty()).then_some(Admitted(account))
}

/// The Blob API's routes. Each request must carry the account its
/// connection was admitted for as `ConnectInfo<Admitted>`.
pub fn app(store: Arc<dyn ObjectStore>, auth: Arc<dyn Authorize>) -> axum::Router {
    axum::Router::new()
        .route("/{container}", axum::routing::any(container))
        .route("/{container}/{*blob}", axum::routing::any(blob))
        .layer(axum::extract::DefaultBodyLimit::max(512 << 20))
        .with_state(Service { store, auth })
}

/// Serves the Blob API on 127.0.0.1 (a free port) to connections that open
/// with the gateway's admission line; returns where.
pub async fn serve(
    store: Arc<dyn ObjectStore>,
    auth: Arc<dyn Authorize>,
    secret: String,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let secret = Arc::new(secret);
    let acceptor = tokio::spawn(async move {
        // Admission lines are read on tasks of their own; at most this many
        // connections wait on theirs at once.
        let gate = recoverite_listen::Gate::new("Blob service", 1024);
        loop {
            let (mut stream, _, permit) = gate.next(|| listener.accept()).await;
            let (tx, secret) = (tx.clone(), secret.clone());
            // Each line is read on its own task so a silent client holds up
            // no one else.
            tokio::spawn(async move {
                let admitted = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    admission(&mut stream, &secret),
                )
                .await;
                drop(permit);
                if let Ok(Some(a)) = admitted {
                    let _ = tx.send((stream, a)).await;
                }
            });
        }
    });
    let app = app(store, auth);
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            Admitting { rx },
            app.into_make_service_with_connect_info::<Admitted>(),
        )
        .await;
        acceptor.abort();
    });
    Ok((addr, task))
}

/// The account a request addresses, from its Host header — which must be
/// the account the gateway admitted the connection for: a private endpoint
/// or network rule that lets a client reach one account does not open
/// another account behind the same front end.
fn account_of(h: &HeaderMap, admitted: &Admitted) -> Result<String, BlobError> {
    let host = h
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let host = host.split(':').next().unwrap_or_default();
    let account = host
        .strip_suffix(".blob.core.windows.net")
        .map(|a| a.trim_end_matches(".privatelink").to_string())
        .filter(|a| !a.is_empty() && !a.contains('.'))
        .ok_or_else(|| BlobError::new(400, "InvalidUri", format!("Address the account by its blob host name ({{account}}.blob.core.windows.net), not '{host}'.")))?;
    if account != admitted.0 {
        return Err(BlobError::new(403, "AuthorizationFailure", format!("This request is not authorized to perform this operation: the connection was admitted for account '{}', and account '{account}' does not accept it. Connect to '{account}' through its own endpoint.", admitted.0)));
    }
    Ok(account)
}

/// "Container names … 3 through 63 characters long … only lowercase
/// letters, numbers, and the dash (-) character … start with a letter or
/// number … Consecutive dash characters aren't permitted."
pub fn check_container_name(c: &str) -> Result<(), BlobError> {
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

fn blob_path(account: &str, c: &str, b: &str) -> Result<ObjPath, BlobError> {
    ObjPath::parse(format!("{account}/{c}/{b}")).map_err(|e| {
        BlobError::new(
            400,
            "InvalidUri",
            format!("'{b}' is not a valid blob name: {e}"),
        )
    })
}

pub(crate) fn internal(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => {
            BlobError::new(404, "BlobNotFound", "The specified blob does not exist.")
        }
        e => BlobError::new(500, "InternalError", format!("blob storage failed: {e}")),
    }
}

async fn container_exists(s: &Service, account: &str, c: &str) -> Result<bool, BlobError> {
    containers::exists(s.store.as_ref(), account, c).await
}

fn auth(
    s: &Service,
    h: &HeaderMap,
    line: &RequestLine,
    account: &str,
    access: Access,
) -> Result<(), BlobError> {
    let header = h.get("authorization").and_then(|v| v.to_str().ok());
    let query = line.uri.query().unwrap_or_default();
    if header.is_none() && query.split('&').any(|p| p.starts_with("sig=")) {
        let keys = s.auth.shared_keys(account)?;
        let path = percent_encoding::percent_decode_str(line.uri.path().trim_start_matches('/'))
            .decode_utf8_lossy()
            .into_owned();
        let (container, blob) = match path.split_once('/') {
            Some((c, b)) => (c.to_string(), Some(b.to_string())),
            None => (path.clone(), None),
        };
        let need = match (access, &line.method) {
            (Access::Read, _) => sas::Need {
                permissions: "r",
                resource_type: 'o',
            },
            (Access::Write, _) => sas::Need {
                permissions: "wc",
                resource_type: 'o',
            },
            (Access::Delete, _) => sas::Need {
                permissions: "d",
                resource_type: 'o',
            },
            (Access::List, _) => sas::Need {
                permissions: "l",
                resource_type: 'c',
            },
            (Access::ManageContainer, &Method::DELETE) => sas::Need {
                permissions: "d",
                resource_type: 'c',
            },
            (Access::ManageContainer, _) => sas::Need {
                permissions: "cw",
                resource_type: 'c',
            },
        };
        return sas::verify(
            account,
            &container,
            blob.as_deref(),
            &sas::parse(query),
            need,
            &keys,
            time::OffsetDateTime::now_utc(),
        );
    }
    if let Some(signed) = header.and_then(|a| a.strip_prefix("SharedKey ")) {
        let keys = s.auth.shared_keys(account)?;
        return shared_key::verify(signed, account, &line.method, &line.uri, h, &keys);
    }
    s.auth.authorize(account, header, access)
}

/// The method and URI a Shared Key signature covers.
struct RequestLine {
    method: Method,
    uri: axum::http::Uri,
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
    ConnectInfo(admitted): ConnectInfo<Admitted>,
    req: Request,
) -> Result<Response, BlobError> {
    let h = req.headers().clone();
    let line = RequestLine {
        method: req.method().clone(),
        uri: req.uri().clone(),
    };
    let account = account_of(&h, &admitted)?;
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
            auth(&s, &h, &line, &account, Access::ManageContainer)?;
            if container_exists(&s, &account, &c).await? {
                return Err(BlobError::new(
                    409,
                    "ContainerAlreadyExists",
                    "The specified container already exists.",
                ));
            }
            containers::create(s.store.as_ref(), &account, &c).await?;
            Ok(with_status(StatusCode::CREATED))
        }
        (Method::DELETE, None) => {
            auth(&s, &h, &line, &account, Access::ManageContainer)?;
            if !container_exists(&s, &account, &c).await? {
                return Err(BlobError::new(
                    404,
                    "ContainerNotFound",
                    "The specified container does not exist.",
                ));
            }
            let st = containers::state(s.store.as_ref(), &account, &c).await?;
            let now = s.auth.now();
            let n = containers::protected_blobs(s.store.as_ref(), &account, &c, &st, now).await?;
            let lease_id = h.get("x-ms-lease-id").and_then(|v| v.to_str().ok());
            st.check_container_delete(lease_id, n, now)?;
            containers::delete(s.store.as_ref(), &account, &c).await?;
            s.auth.container_deleted(&account, &c);
            Ok(with_status(StatusCode::ACCEPTED))
        }
        (Method::GET, Some("list")) => {
            auth(&s, &h, &line, &account, Access::List)?;
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
    ConnectInfo(admitted): ConnectInfo<Admitted>,
    req: Request,
) -> Result<Response, BlobError> {
    let h = req.headers().clone();
    let line = RequestLine {
        method: req.method().clone(),
        uri: req.uri().clone(),
    };
    let account = account_of(&h, &admitted)?;
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
    auth(&s, &h, &line, &account, access)?;
    if !container_exists(&s, &account, &c).await? {
        return Err(BlobError::new(
            404,
            "ContainerNotFound",
            "The specified container does not exist.",
        ));
    }
    if matches!(method, Method::PUT | Method::DELETE) {
        // Immutable blobs (legal hold, retention policy) are neither
        // overwritten nor deleted; new ones may always be written.
        let st = containers::state(s.store.as_ref(), &account, &c).await?;
        if st.has_legal_hold() || st.policy.is_some() {
            let written = match s.store.head(&path).await {
                Ok(m) => {
                    time::OffsetDateTime::from_unix_timestamp(m.last_modified.timestamp()).ok()
                }
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => return Err(internal(e)),
            };
            st.check_blob_change(written, s.auth.now())?;
        }
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
