//! End-to-end over HTTPS: the real listener, token service and ARM router.

use std::path::Path;
use std::sync::Arc;

use recoverite_server::{start, Running, ServeConfig};
use serde_json::{json, Value};

struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(r: &Running) -> Client {
        let pem = std::fs::read(&r.connection.ca_cert_file).unwrap();
        let cert = ureq::tls::Certificate::from_pem(&pem).unwrap();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            agent,
            base: r.connection.arm_endpoint.clone(),
        }
    }

    fn token(&self, tenant: &str, id: &str, secret: &str) -> String {
        let mut resp = self
            .agent
            .post(&format!("{}/{tenant}/oauth2/v2.0/token", self.base))
            .send_form([
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "https://management.azure.com/.default"),
            ])
            .unwrap();
        let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        v["access_token"].as_str().unwrap_or_default().to_string()
    }

    /// (status, body, x-ms-request-id present)
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, bool) {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let resp = match body {
            Some(b) => self.agent.run(
                req.header("Content-Type", "application/json")
                    .body(b.to_string())
                    .unwrap(),
            ),
            None => self.agent.run(req.body(()).unwrap()),
        };
        let mut resp = resp.unwrap();
        let status = resp.status().as_u16();
        let has_id = resp.headers().contains_key("x-ms-request-id");
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            has_id,
        )
    }
}

async fn boot(dir: &Path) -> Running {
    // After an in-process shutdown, connection tasks may hold the store for a
    // moment longer; wait for them rather than fail.
    let mut tries = 0;
    loop {
        let cfg = ServeConfig {
            data_dir: dir.to_path_buf(),
            port: Some(0),
            dns_port: Some(0),
            nbd_port: Some(0),
            poll_after_secs: 1,
            recovery_point_secs: 300,
            time_scale: 1.0,
        };
        match start(cfg).await {
            Ok(r) => return r,
            Err(e) if tries < 100 && e.to_string().contains("lock") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("server starts: {e}"),
        }
    }
}

fn owner(c: &Client, r: &Running) -> String {
    let conn = &r.connection;
    c.token(&conn.tenant_id, &conn.client_id, &conn.client_secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_file_token_and_resource_group() {
    let dir = tempfile::tempdir().unwrap();
    let r = boot(dir.path()).await;
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&r.connection_file).unwrap()).unwrap();
    let keys: Vec<&str> = file
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // The eight fields, the tenant's subscriptions (the first one alone
    // here) and the instance slot.
    assert_eq!(keys.len(), 10);
    assert!(file["instanceSlot"].as_u64().is_some_and(|s| s < 100));
    assert_eq!(
        file["subscriptions"][0]["subscriptionId"],
        r.connection.subscription_id.as_str()
    );
    let sub = r.connection.subscription_id.clone();
    let rr = r;
    let res = tokio::task::spawn_blocking(move || {
        let c = Client::new(&rr);
        let t = owner(&c, &rr);
        let rg = format!("/subscriptions/{sub}/resourcegroups/rg-one?api-version=2025-04-01");
        let (s, b, id) = c.call(
            "PUT",
            &rg,
            Some(&t),
            Some(json!({"location": "westeurope"})),
        );
        assert_eq!(s, 201, "{b}");
        assert!(id);
        assert_eq!(b["location"], "westeurope");
        let (s, _, _) = c.call(
            "PUT",
            &rg,
            Some(&t),
            Some(json!({"location": "westeurope"})),
        );
        assert_eq!(s, 200);
        let (s, _, _) = c.call("HEAD", &rg, Some(&t), None);
        assert_eq!(s, 204);
        let (s, b, id) = c.call("GET", &rg, None, None);
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (401, Some("AuthenticationFailed"))
        );
        assert!(id);
        let (s, b, _) = c.call("GET", &rg, Some("garbage"), None);
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (401, Some("InvalidAuthenticationToken"))
        );
        rr
    })
    .await
    .unwrap();
    res.handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_is_refused_writes_and_state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let r = boot(dir.path()).await;
    let conn = r.connection.clone();
    let sub = conn.subscription_id.clone();
    let r = tokio::task::spawn_blocking(move || {
        let c = Client::new(&r);
        let t = owner(&c, &r);
        let (s, p, _) = c.call(
            "POST",
            "/recoverite/principals",
            Some(&t),
            Some(json!({"displayName": "reader", "role": "Reader"})),
        );
        assert_eq!(s, 201, "{p}");
        let rt = c.token(
            &conn.tenant_id,
            p["clientId"].as_str().unwrap(),
            p["clientSecret"].as_str().unwrap(),
        );
        let rg = format!("/subscriptions/{sub}/resourceGroups/kept?api-version=2025-04-01");
        let (s, b, _) = c.call("PUT", &rg, Some(&rt), Some(json!({"location": "eastus"})));
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (403, Some("AuthorizationFailed"))
        );
        // A reader cannot mint principals either.
        let (s, _, _) = c.call(
            "POST",
            "/recoverite/principals",
            Some(&rt),
            Some(json!({"displayName": "x"})),
        );
        assert_eq!(s, 403);
        let (s, _, _) = c.call("PUT", &rg, Some(&t), Some(json!({"location": "eastus"})));
        assert_eq!(s, 201);
        r
    })
    .await
    .unwrap();
    r.stop().await;

    let r = boot(dir.path()).await;
    assert_eq!(r.connection.subscription_id, conn.subscription_id);
    assert_eq!(r.connection.client_secret, conn.client_secret);
    let r = tokio::task::spawn_blocking(move || {
        let c = Client::new(&r);
        let t = owner(&c, &r);
        let (s, b, _) = c.call(
            "GET",
            &format!(
                "/subscriptions/{}/resourceGroups/KEPT?api-version=2025-04-01",
                r.connection.subscription_id
            ),
            Some(&t),
            None,
        );
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["name"], "kept");
        r
    })
    .await
    .unwrap();
    r.handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let r = Arc::new(boot(dir.path()).await);
    let c = Arc::new(Client::new(&r));
    let t = Arc::new(
        tokio::task::spawn_blocking({
            let (c, r) = (c.clone(), r.clone());
            move || owner(&c, &r)
        })
        .await
        .unwrap(),
    );
    let sub = r.connection.subscription_id.clone();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (c, t, sub) = (c.clone(), t.clone(), sub.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let path =
                format!("/subscriptions/{sub}/resourcegroups/par-{i}?api-version=2025-04-01");
            c.call(
                "PUT",
                &path,
                Some(&t),
                Some(json!({"location": "eastus", "tags": {"i": i.to_string()}})),
            )
            .0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 201);
    }
    let (s, b, _) = tokio::task::spawn_blocking({
        let (c, t) = (c.clone(), t.clone());
        move || {
            c.call(
                "GET",
                &format!("/subscriptions/{sub}/resourcegroups?api-version=2025-04-01"),
                Some(&t),
                None,
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(s, 200);
    assert_eq!(b["value"].as_array().unwrap().len(), 16);
    r.handle.shutdown();
}
