//! `recoverite agent --vm ID`: a protected VM's mobility agent as its own
//! process (the server runs a built-in one otherwise). It asks the running
//! server where it stands (its check-in), then acts exactly like the built-in
//! agent: from the VM's loopback alias it resolves names through the DNS
//! server, says hello to the vault and uploads batches of changed blocks to
//! the cache account through the gateway, and reports each cycle.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use recoverite_agent::{self as agent, Aliases, Blocked, Placement};
use recoverite_server::Connection;

pub(crate) struct Api {
    pub(crate) http: ureq::Agent,
    pub(crate) conn: Connection,
    pub(crate) token: String,
}

impl Api {
    /// The running server that uses `data_dir`, signed in as its bootstrap principal.
    pub(crate) fn open(data_dir: &Path) -> Result<Api> {
        let conn = crate::read_connection(data_dir).ok_or_else(|| {
            anyhow!(
                "no running recoverite uses {} (no connection.json)",
                data_dir.display()
            )
        })?;
        let http = crate::agent_for(&conn)
            .map_err(|_| anyhow!("cannot read the CA certificate {}", conn.ca_cert_file))?;
        let token = crate::token_for(&http, &conn)
            .map_err(|_| anyhow!("cannot get a token from {}", conn.authority))?;
        Ok(Api { http, conn, token })
    }

    /// GET `path`; anything but 200 is an error carrying the server's message.
    pub(crate) fn get(&self, path: &str) -> Result<Value> {
        let mut r = self
            .http
            .get(&format!("{}{path}", self.conn.arm_endpoint))
            .header("Authorization", &format!("Bearer {}", self.token))
            .config()
            .http_status_as_error(false)
            .build()
            .call()?;
        let status = r.status().as_u16();
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string()?)?;
        if status != 200 {
            bail!(
                "recoverite answered {status}: {}",
                v["error"]["message"].as_str().unwrap_or(&v.to_string())
            );
        }
        Ok(v)
    }

    /// Any method with a JSON body; anything but 2xx is an error carrying
    /// the server's message.
    pub(crate) fn send(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let uri = format!("{}{path}", self.conn.arm_endpoint);
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .body(body.to_string())?;
        let mut r = self.http.run(req)?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string()?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            bail!(
                "recoverite answered {status}: {}",
                v["error"]["message"].as_str().unwrap_or(&text)
            );
        }
        Ok(v)
    }

    fn post(&self, path: &str, body: Value) -> Result<()> {
        let r = self
            .http
            .post(&format!("{}{path}", self.conn.arm_endpoint))
            .header("Authorization", &format!("Bearer {}", self.token))
            .content_type("application/json")
            .send(body.to_string())?;
        if r.status().as_u16() != 200 {
            bail!("recoverite answered {}", r.status());
        }
        Ok(())
    }
}

/// The network's aliases as the server lists them, read once per cycle.
pub(crate) struct ListedAliases(pub(crate) Vec<Value>);

impl Aliases for ListedAliases {
    fn alias_of(&self, from: Ipv4Addr, model: Ipv4Addr) -> Option<Ipv4Addr> {
        if !model.is_private() {
            return Some(public_alias(model));
        }
        let ip = model.to_string();
        let mine = self
            .0
            .iter()
            .find(|a| a["alias"].as_str() == Some(&from.to_string()))
            .and_then(|a| a["virtualNetworkId"].as_str())
            .map(str::to_ascii_lowercase);
        let matches: Vec<&Value> = self
            .0
            .iter()
            .filter(|a| a["privateIPAddress"].as_str() == Some(&ip))
            .collect();
        matches
            .iter()
            .find(|a| a["virtualNetworkId"].as_str().map(str::to_ascii_lowercase) == mine)
            .or(matches.first())
            .and_then(|a| a["alias"].as_str()?.parse().ok())
    }
}

fn public_alias(ip: Ipv4Addr) -> Ipv4Addr {
    recoverite_rp_network::addressbook::public_alias(ip)
}

fn placement(v: &Value, tls: &agent::TlsConfig) -> Result<Placement> {
    let s = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("placement lacks {k}"))
    };
    Ok(Placement {
        vm_alias: s("vmAlias")?.parse()?,
        dns_server: s("dnsServer")?.parse::<SocketAddr>()?,
        vault_id: s("vaultId")?,
        vault_fqdn: s("vaultFqdn")?,
        cache_host: s("cacheHost")?,
        item_prefix: s("itemPrefix")?,
        storage_token: s("storageToken")?,
        proxy: v["proxy"].as_str().map(str::to_string),
        services: match (v["tenantId"].as_str(), v["monitoringHost"].as_str()) {
            (Some(t), Some(m)) => Some(agent::Services {
                tenant_id: t.to_string(),
                monitoring_host: m.to_string(),
                item: s("itemId")?,
                tls: tls.clone(),
            }),
            _ => None,
        },
    })
}

fn blocked_json(b: &Blocked) -> Value {
    json!({"endpoint": b.endpoint, "fqdn": b.fqdn, "address": b.address, "reason": b.reason,
           "flowFrom": b.flow.map(|f| f.0), "flowTo": b.flow.map(|f| f.1), "hop": b.hop.as_string()})
}

/// One cycle: hello, Entra ID, peers, ship everything, then monitoring.
/// Returns the bytes shipped.
async fn cycle(
    v: &Value,
    al: &ListedAliases,
    engine: &recoverite_replication::Engine,
    tls: &agent::TlsConfig,
) -> std::result::Result<u64, Blocked> {
    let p = placement(v, tls).map_err(|e| Blocked::agent(e.to_string()))?;
    agent::hello_vault(&p, al).await?;
    agent::reach_entra(&p, al).await?;
    for peer in v["peers"].as_array().into_iter().flatten() {
        if let Some(a) = peer["alias"].as_str().and_then(|a| a.parse().ok()) {
            agent::check_peer(&p, a, peer["name"].as_str().unwrap_or("")).await?;
        }
    }
    let eid = v["engineId"].as_str().unwrap_or_default();
    let io = |e: std::io::Error| Blocked::agent(format!("change journal: {e}"));
    let mut shipped = 0;
    while let Some(b) = engine.ship(eid).map_err(io)? {
        agent::upload(&p, al, &format!("{:020}.batch", b.seq), &b.bytes).await?;
        engine.shipped(eid, &b).map_err(io)?;
        shipped += b.payload();
    }
    // Monitoring failing is reported, but the changes already went through.
    agent::send_monitoring(&p, al, shipped).await?;
    Ok(shipped)
}

pub fn run(data_dir: &Path, vm: &str) -> Result<()> {
    // Document 003: Site Recovery does not work through an authenticating proxy.
    for var in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
        if let Ok(p) = std::env::var(var) {
            agent::refuse_authenticating_proxy(Some(&p))
                .map_err(|b| anyhow!("{var} is set: {}", b.reason))?;
        }
    }
    let api = Api::open(data_dir)?;
    let blocks = recoverite_blockstore::BlockStore::open(data_dir)?;
    let engine = recoverite_replication::Engine::open(data_dir, blocks)?;
    let me = format!("recoverite agent (pid {})", std::process::id());
    let tls =
        agent::client_config(&std::fs::read(&api.conn.ca_cert_file)?).map_err(|e| anyhow!(e))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let quoted: String = url_encode(vm);
    let mut last_state = String::new();
    loop {
        let v = api.get(&format!(
            "/recoverite/agents/placement?vm={quoted}&agent={}",
            url_encode(&me)
        ))?;
        let al = ListedAliases(
            api.get("/recoverite/network/aliases")?["value"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        let item = v["itemId"].as_str().unwrap_or_default().to_string();
        let result = rt.block_on(cycle(&v, &al, &engine, &tls));
        let (state, blocked) = match &result {
            Ok(n) => (format!("ok, shipped {n} bytes"), None),
            Err(b) => (
                format!(
                    "blocked: the {} ({}) is unreachable: {}",
                    b.endpoint, b.fqdn, b.reason
                ),
                Some(blocked_json(b)),
            ),
        };
        if state != last_state || matches!(result, Ok(n) if n > 0) {
            println!(
                "{} {}: {state}",
                recoverite_arm::time::now_string(),
                v["vmAlias"].as_str().unwrap_or("")
            );
            use std::io::Write;
            std::io::stdout().flush().ok();
            last_state = state;
        }
        api.post(
            "/recoverite/agents/report",
            json!({"itemId": item, "agent": me, "blocked": blocked}),
        )?;
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
