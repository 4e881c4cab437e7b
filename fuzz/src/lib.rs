//! What the fuzz targets share: a request decoder and one recoverite per
//! fuzzing process, started in memory (its data directory on tmpfs), whose
//! HTTP application is called in-process, without TLS or sockets.
//!
//! libfuzzer-sys aborts the process on a panic in any thread, so a panic in
//! a provider (which runs on a blocking thread) is a crash, not a 500.

use std::sync::OnceLock;

use axum::body::Body;
use http::{Method, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// An HTTP request from fuzz bytes, in a shape the fuzzer can learn and the
/// seed corpus can write: `METHOD path?query`, header lines `name: value`, a
/// blank line, then the body. Anything that is not a valid request line or
/// header is left out rather than rejected, so most inputs reach a handler.
pub fn decode(data: &[u8]) -> Option<(Method, String, Vec<(String, String)>, Vec<u8>)> {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(data.len());
    let head = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 2..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let (m, path) = lines.next()?.split_once(' ')?;
    let method = Method::from_bytes(m.as_bytes()).ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((method, path.to_string(), headers, body))
}

/// Builds a request; `None` where `http` itself refuses the parts (a URI
/// or header no client could send).
pub fn request(
    method: Method,
    uri: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Option<Request<Body>> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) else {
            continue;
        };
        b = b.header(k, v);
    }
    b.body(Body::from(body)).ok()
}

pub struct Server {
    pub rt: tokio::runtime::Runtime,
    pub running: recoverite_server::Running,
    pub bearer: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Sends one request through the application; returns status and body.
    pub fn send(&self, req: Request<Body>) -> (u16, Vec<u8>) {
        let app = self.running.app.clone();
        self.rt.block_on(async move {
            let resp = app.oneshot(req).await.expect("the router is infallible");
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            (status, body)
        })
    }
}

/// The one recoverite of this process, started on first use and signed in
/// as the instance's bootstrap principal (Owner of its subscription).
pub fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let base = std::path::Path::new("/dev/shm");
        let dir = if base.is_dir() {
            tempfile::tempdir_in(base)
        } else {
            tempfile::tempdir()
        }
        .expect("a temporary data directory");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let running = rt
            .block_on(recoverite_server::start(recoverite_server::ServeConfig {
                data_dir: dir.path().join("data"),
                port: Some(0),
                dns_port: Some(0),
                nbd_port: None,
                poll_after_secs: 0,
                recovery_point_secs: 3600,
                time_scale: 1.0,
            }))
            .expect("recoverite starts");
        let c = running.connection.clone();
        let mut s = Server {
            rt,
            running,
            bearer: String::new(),
            _dir: dir,
        };
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}/.default",
            c.client_id, c.client_secret, c.arm_endpoint
        );
        let req = request(
            Method::POST,
            &format!("/{}/oauth2/v2.0/token", c.tenant_id),
            &[(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            form.into_bytes(),
        )
        .expect("a token request");
        let (status, body) = s.send(req);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("token JSON");
        s.bearer = format!("Bearer {}", v["access_token"].as_str().expect("a token"));
        s
    })
}
