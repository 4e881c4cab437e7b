//! The gateway: recoverite's network made real for TCP.
//!
//! It listens on the loopback alias of every private endpoint IP, every NIC
//! IP and every public service address in use. A process acting inside a VM
//! binds its socket to the VM's alias and connects to the destination's
//! alias; the gateway decides from source and destination what Azure would
//! (security groups, routes, endpoint approval, the target's public access),
//! then proxies the connection to the emulated service or closes it — and
//! records the decision with its reason in the flow log.
//!
//! Model ports below 1024 are served at `port + 10000` (443 → 10443) so that
//! nothing needs root; higher ports are served as they are.

pub mod decide;
pub mod flowlog;
pub mod idle;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use recoverite_arm::{id, resource};
use recoverite_privatelink::{self as pl, Registry};
use recoverite_rp_network::{addressbook, aliases, view};
use recoverite_store::Store;

pub use decide::{decide, Decision, Destination};

/// The `Host` of the HTTP request a client opens its connection with, read
/// without consuming it (the bytes still reach the service). `None` if the
/// client sends no HTTP head within a few seconds.
async fn http_host(stream: &TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut seen = 0;
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        let head = &buf[..n];
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]);
            return text.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case("host").then(|| {
                    v.trim()
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                })
            });
        }
        if n == buf.len() {
            return None;
        }
        if n == seen {
            // Nothing new yet: peek would return at once again.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        seen = n;
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
    }
}

/// Where a model port is served on an alias, and back (they follow the
/// instance's slot: `recoverite_listen::instance`).
pub use recoverite_listen::instance::{model_port, real_port};

/// Site Recovery's replication-group port: agents of one group talk on it.
pub const MULTI_VM_SYNC_PORT: u16 = 20004;

/// Ports a VM's NIC is reachable on: HTTPS and Site Recovery's replication-group port.
pub const NIC_PORTS: &[u16] = &[443, MULTI_VM_SYNC_PORT];

pub const FLOW_LOG_CAPACITY: usize = 10_000;

/// Connections the gateway relays at once; more wait in the backlogs.
pub const MAX_CONNECTIONS: usize = 4096;

/// Per-direction copy buffer of a proxied connection.
pub const PROXY_BUFFER: usize = 256 * 1024;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowRecord {
    pub time: String,
    pub source_alias: Ipv4Addr,
    pub destination_alias: Ipv4Addr,
    pub port: u16,
    pub allowed: bool,
    pub reason: String,
    pub source: Option<String>,
    pub destination: Option<Destination>,
    /// The VM and NIC the connection came from, when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_vm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_nic: Option<String>,
    /// What the destination is, in words (`private endpoint pe of vault v`,
    /// `VM db`, `Storage.eastus 20.60.1.203`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_name: Option<String>,
}

/// What the listeners should be, and what the public addresses stand for.
struct Wanted {
    listen: Vec<(Ipv4Addr, u16)>,
    publics: HashMap<Ipv4Addr, String>,
    shared: HashMap<Ipv4Addr, String>,
    contested: HashMap<Ipv4Addr, Vec<String>>,
}

pub struct Gateway {
    store: Store,
    registry: Arc<Registry>,
    log: Mutex<flowlog::FlowLog>,
    listeners: Mutex<HashMap<(Ipv4Addr, u16), JoinHandle<()>>>,
    /// Emulated services by target id (case-folded): where allowed traffic goes.
    backends: Mutex<HashMap<String, SocketAddr>>,
    /// Emulated services for every target of a type (case-folded), e.g. the
    /// Blob service behind every storage account.
    /// With the service's admission secret, if it wants to be told which
    /// instance a connection was admitted for.
    type_backends: Mutex<HashMap<String, (SocketAddr, Option<String>)>>,
    /// Services that answer on one model port of every target of a type
    /// (file recovery on 3260 for vaults), with their admission secret:
    /// each connection opens with `recoverite-admit {secret} {json}`, the
    /// json saying which target, by which path and from which alias.
    port_backends: Mutex<HashMap<(String, u16), (SocketAddr, String)>>,
    /// Connections relayed at once, across every alias and port.
    conns: recoverite_listen::Gate,
    /// Services behind a service tag's public addresses on port 443 (the
    /// Entra ID token endpoint behind `AzureActiveDirectory`).
    service_backends: Mutex<HashMap<String, (SocketAddr, Vec<String>)>>,
    echo: Mutex<Option<SocketAddr>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Public (model) address of a private link target's name → the target.
    public_targets: Mutex<HashMap<Ipv4Addr, String>>,
    /// Public addresses a service shares among its instances → the target type.
    shared_publics: Mutex<HashMap<Ipv4Addr, String>>,
    /// Public addresses that more than one target's names resolve to (Azure
    /// Storage front ends are shared): the HTTP `Host` of the connection's
    /// first request says which target it is for.
    contested_publics: Mutex<HashMap<Ipv4Addr, Vec<String>>>,
}

impl Gateway {
    pub fn new(store: Store, registry: Arc<Registry>) -> Arc<Gateway> {
        Arc::new(Gateway {
            store,
            registry,
            log: Mutex::new(flowlog::FlowLog::new(FLOW_LOG_CAPACITY)),
            listeners: Mutex::new(HashMap::new()),
            backends: Mutex::new(HashMap::new()),
            type_backends: Mutex::new(HashMap::new()),
            port_backends: Mutex::new(HashMap::new()),
            conns: recoverite_listen::Gate::new("gateway", MAX_CONNECTIONS),
            service_backends: Mutex::new(HashMap::new()),
            echo: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            public_targets: Mutex::new(HashMap::new()),
            shared_publics: Mutex::new(HashMap::new()),
            contested_publics: Mutex::new(HashMap::new()),
        })
    }

    /// Routes allowed connections for `target_id` to a service listening at `addr`.
    pub fn register_backend(&self, target_id: &str, addr: SocketAddr) {
        self.backends
            .lock()
            .expect("backends")
            .insert(id::key(target_id), addr);
    }

    /// Routes allowed connections for every target of `resource_type` to a
    /// service listening at `addr` (it tells instances apart itself).
    pub fn register_type_backend(&self, resource_type: &str, addr: SocketAddr) {
        self.type_backends
            .lock()
            .expect("type backends")
            .insert(resource_type.to_ascii_lowercase(), (addr, None));
    }

    /// As [`Gateway::register_type_backend`], for a service that must only
    /// serve the instance each connection was admitted for: every proxied
    /// connection opens with `recoverite-admit {secret} {instance name}`.
    pub fn register_admitting_backend(&self, resource_type: &str, addr: SocketAddr, secret: &str) {
        self.type_backends.lock().expect("type backends").insert(
            resource_type.to_ascii_lowercase(),
            (addr, Some(secret.to_string())),
        );
    }

    /// Serves model `port` of every target of `resource_type` (on its
    /// private endpoints' addresses and its shared public ones) by the
    /// service at `addr`; see `port_backends`.
    pub fn register_port_backend(
        &self,
        resource_type: &str,
        port: u16,
        addr: SocketAddr,
        secret: &str,
    ) {
        self.port_backends.lock().expect("port backends").insert(
            (resource_type.to_ascii_lowercase(), port),
            (addr, secret.to_string()),
        );
    }

    /// Serves port 443 of a service tag's public addresses (e.g.
    /// `AzureActiveDirectory`), those its `names` resolve to, by the
    /// service at `addr`.
    pub fn register_service_backend(&self, service_tag: &str, names: &[&str], addr: SocketAddr) {
        self.service_backends
            .lock()
            .expect("service backends")
            .insert(
                service_tag.to_ascii_lowercase(),
                (addr, names.iter().map(|n| n.to_string()).collect()),
            );
    }

    /// The extra model ports served for targets of a type.
    fn extra_ports(&self, resource_type: &str) -> Vec<u16> {
        let t = resource_type.to_ascii_lowercase();
        self.port_backends
            .lock()
            .expect("port backends")
            .keys()
            .filter(|(ty, _)| *ty == t)
            .map(|(_, p)| *p)
            .collect()
    }

    pub fn flow_log(&self) -> Vec<FlowRecord> {
        self.flows(&flowlog::Filter::default())
    }

    /// The flow log's records that `filter` wants, oldest first.
    pub fn flows(&self, filter: &flowlog::Filter) -> Vec<FlowRecord> {
        self.log.lock().expect("flow log").records(filter)
    }

    /// Keeps the flow log in `path` across restarts (bounded).
    pub fn keep_flow_log(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.log.lock().expect("flow log").keep_in(path)
    }

    /// The VM and NIC behind a source, and the destination in words.
    fn name_flow(&self, f: &mut FlowRecord) {
        let _ = self.store.view(|r| {
            if let Some(owner) = &f.source {
                let lower = owner.to_ascii_lowercase();
                if let Some(i) = lower.find("/ipconfigurations/") {
                    let nic_id = &owner[..i];
                    f.source_nic = Some(nic_id.to_string());
                    if let Some(nic) = view::nic(r, nic_id)? {
                        f.source_vm = nic.virtual_machine;
                    }
                }
            }
            let last = |id: &str| id.rsplit('/').next().unwrap_or(id).to_string();
            f.destination_name = match &f.destination {
                Some(Destination::PrivateEndpoint {
                    endpoint_id,
                    target_id,
                    fqdn,
                    ..
                }) => Some(format!(
                    "private endpoint {} of {}{}",
                    last(endpoint_id),
                    last(target_id),
                    fqdn.as_ref().map(|q| format!(" ({q})")).unwrap_or_default()
                )),
                Some(Destination::Nic { ipconfig, ip, .. }) => {
                    let nic_id = view::nic_id_of(ipconfig);
                    let vm = view::nic(r, nic_id)?
                        .and_then(|n| n.virtual_machine)
                        .map(|vm| last(&vm));
                    Some(match vm {
                        Some(vm) => format!("VM {vm} ({ip})"),
                        None => format!("NIC {} ({ip})", last(nic_id)),
                    })
                }
                Some(Destination::Public {
                    ip,
                    service,
                    region,
                    target_id,
                }) => Some(match (target_id, service) {
                    (Some(t), _) => format!("{} ({ip}, public)", last(t)),
                    (None, Some(svc)) => format!(
                        "{svc}{} {ip}",
                        region.as_ref().map(|r| format!(".{r}")).unwrap_or_default()
                    ),
                    (None, None) => format!("{ip} (public)"),
                }),
                None => None,
            };
            Ok::<_, recoverite_arm::ArmError>(())
        });
    }

    fn record(&self, mut f: FlowRecord) {
        self.name_flow(&mut f);
        let mut log = self.log.lock().expect("flow log");
        // Info when a flow's verdict changes; every repeat at debug.
        let news = log.changes_verdict(&f);
        let from = f.source_vm.as_deref().or(f.source.as_deref()).unwrap_or("");
        let to = f.destination_name.as_deref().unwrap_or("");
        match (f.allowed, news) {
            (false, true) => {
                tracing::info!(src = %f.source_alias, from, dst = %f.destination_alias, to, port = f.port, reason = %f.reason, "flow refused")
            }
            (true, true) => {
                tracing::info!(src = %f.source_alias, from, dst = %f.destination_alias, to, port = f.port, "flow allowed")
            }
            (allowed, false) => {
                tracing::debug!(src = %f.source_alias, dst = %f.destination_alias, port = f.port, allowed, "flow")
            }
        }
        log.push(f);
    }

    /// Starts the built-in echo service and the listener reconciler.
    pub async fn start(self: &Arc<Gateway>) -> std::io::Result<()> {
        let echo = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        *self.echo.lock().expect("echo") = Some(echo.local_addr()?);
        let echo_task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = echo.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let (r, mut w) = s.split();
                    let mut r = tokio::io::BufReader::with_capacity(PROXY_BUFFER, r);
                    let _ = tokio::io::copy_buf(&mut r, &mut w).await;
                });
            }
        });
        let gw = self.clone();
        let reconciler = tokio::spawn(async move {
            let mut seen = 0;
            loop {
                let g = gw.store.generation();
                if g != seen {
                    seen = g;
                    if let Err(e) = gw.reconcile().await {
                        tracing::warn!("gateway listeners: {e}");
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        self.tasks
            .lock()
            .expect("tasks")
            .extend([echo_task, reconciler]);
        Ok(())
    }

    /// Stops listening everywhere.
    pub fn stop(&self) {
        for t in self.tasks.lock().expect("tasks").drain(..) {
            t.abort();
        }
        for (_, h) in self.listeners.lock().expect("listeners").drain() {
            h.abort();
        }
    }

    /// The (alias, model port) pairs that should be listened on now, and the
    /// public addresses of every private link target's names.
    fn wanted(&self) -> Result<Wanted, recoverite_arm::ArmError> {
        let snap = recoverite_dns::snapshot::build(&self.store)?;
        self.store.view(|r| {
            let empty = HashMap::new();
            let mut out = Vec::new();
            for a in aliases::all(r)? {
                if a.private_ip.is_none() {
                    continue;
                }
                if a.owner.to_ascii_lowercase().contains("/networkinterfaces/") {
                    match decide::destination(r, a.alias, &empty)? {
                        Some(Destination::PrivateEndpoint { target_id, .. }) => {
                            out.push((a.alias, 443));
                            if let Some(t) = resource::get(r, &target_id)? {
                                let ty = t["type"].as_str().unwrap_or_default();
                                out.extend(self.extra_ports(ty).into_iter().map(|p| (a.alias, p)));
                            }
                        }
                        Some(Destination::Nic { .. }) => {
                            out.extend(NIC_PORTS.iter().map(|p| (a.alias, *p)))
                        }
                        _ => {}
                    }
                }
            }
            let mut publics: HashMap<Ipv4Addr, String> = HashMap::new();
            let mut shared = HashMap::new();
            let mut contested: HashMap<Ipv4Addr, Vec<String>> = HashMap::new();
            let probe = pl::ConnectionRequest {
                endpoint_id: String::new(),
                endpoint_name: String::new(),
                endpoint_location: String::new(),
                subnet_id: String::new(),
                group_ids: Vec::new(),
                manual: false,
                static_ips: Vec::new(),
                free_ips: 0,
                request_message: None,
            };
            // Only private link targets matter; other documents are not parsed.
            let tails: Vec<&str> = self
                .registry
                .resource_types()
                .into_iter()
                .map(|t| t.rsplit('/').next().unwrap_or(t))
                .collect();
            for (_, doc) in recoverite_arm::resource::scan_mentioning(r, "/subscriptions/", &tails)?
            {
                let Some(target) = self
                    .registry
                    .target_for(doc["type"].as_str().unwrap_or_default())
                else {
                    continue;
                };
                let tid = doc["id"].as_str().unwrap_or_default().to_string();
                // Services with shared public addresses learn the instance from the client.
                let shared_names = target.shared_public_names(r, &doc);
                let shared_service = !shared_names.is_empty();
                for name in shared_names {
                    let res = recoverite_dns::resolve(&snap, None, &name, recoverite_dns::RType::A);
                    if let Some(recoverite_dns::resolve::Value::A(ip)) =
                        res.answers.last().map(|a| a.value.clone())
                    {
                        shared.insert(ip, target.resource_type().to_string());
                    }
                }
                for g in target.groups(r, &doc)? {
                    let Ok(members) = target.members(r, &doc, &g.group_id, &probe) else {
                        continue;
                    };
                    for m in members.iter().filter(|m| !m.fqdn.is_empty()) {
                        let res =
                            recoverite_dns::resolve(&snap, None, &m.fqdn, recoverite_dns::RType::A);
                        if let Some(recoverite_dns::resolve::Value::A(ip)) =
                            res.answers.last().map(|a| a.value.clone())
                        {
                            if shared_service {
                                shared.insert(ip, target.resource_type().to_string());
                            } else if let Some(first) =
                                publics.get(&ip).filter(|t| id::key(t) != id::key(&tid))
                            {
                                let all =
                                    contested.entry(ip).or_insert_with(|| vec![first.clone()]);
                                if !all.iter().any(|t| id::key(t) == id::key(&tid)) {
                                    all.push(tid.clone());
                                }
                            } else {
                                publics.insert(ip, tid.clone());
                            }
                        }
                    }
                }
            }
            out.extend(
                publics
                    .keys()
                    .chain(shared.keys())
                    .map(|ip| (addressbook::public_alias(*ip), 443)),
            );
            let service_names: Vec<String> = self
                .service_backends
                .lock()
                .expect("service backends")
                .values()
                .flat_map(|(_, n)| n.clone())
                .collect();
            for name in service_names {
                let res = recoverite_dns::resolve(&snap, None, &name, recoverite_dns::RType::A);
                if let Some(recoverite_dns::resolve::Value::A(ip)) =
                    res.answers.last().map(|a| a.value.clone())
                {
                    out.push((addressbook::public_alias(ip), 443));
                }
            }
            for (ip, ty) in &shared {
                out.extend(
                    self.extra_ports(ty)
                        .into_iter()
                        .map(|p| (addressbook::public_alias(*ip), p)),
                );
            }
            Ok(Wanted {
                listen: out,
                publics,
                shared,
                contested,
            })
        })
    }

    async fn reconcile(self: &Arc<Gateway>) -> Result<(), recoverite_arm::ArmError> {
        let gw = self.clone();
        let Wanted {
            listen: wanted,
            publics,
            shared,
            contested,
        } = tokio::task::spawn_blocking(move || gw.wanted())
            .await
            .map_err(|e| recoverite_arm::ArmError::internal(e.to_string()))??;
        *self.public_targets.lock().expect("public targets") = publics;
        *self.shared_publics.lock().expect("shared publics") = shared;
        *self.contested_publics.lock().expect("contested publics") = contested;
        let mut listeners = self.listeners.lock().expect("listeners");
        listeners.retain(|k, h| {
            let keep = wanted.contains(k);
            if !keep {
                h.abort();
            }
            keep
        });
        for (alias, port) in wanted {
            if listeners.contains_key(&(alias, port)) {
                continue;
            }
            let std = match std::net::TcpListener::bind((alias, real_port(port))) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("cannot listen on {alias}:{}: {e}", real_port(port));
                    continue;
                }
            };
            let _ = std.set_nonblocking(true);
            let Ok(listener) = TcpListener::from_std(std) else {
                continue;
            };
            let gw = self.clone();
            listeners.insert(
                (alias, port),
                tokio::spawn(async move {
                    loop {
                        let (stream, peer, permit) = gw.conns.next(|| listener.accept()).await;
                        let gw = gw.clone();
                        tokio::spawn(async move {
                            gw.handle(stream, peer, alias, port).await;
                            drop(permit);
                        });
                    }
                }),
            );
        }
        Ok(())
    }

    /// Decides whether a connection may pass, without making it.
    pub fn check(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        port: u16,
    ) -> Result<Decision, recoverite_arm::ArmError> {
        self.check_for(src, dst, port, None)
    }

    /// As [`Gateway::check`] for a connection that names `host` (an HTTP
    /// `Host`): a public address several accounts share is decided for the
    /// account the name is for, as a real connection would be.
    pub fn check_host(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        port: u16,
        host: &str,
    ) -> Result<Decision, recoverite_arm::ArmError> {
        // A fresh view, not the listeners' (a resource made a moment ago
        // may not have reached them yet).
        let Wanted {
            mut publics,
            contested,
            ..
        } = self.wanted()?;
        if let Some(ip) = addressbook::public_of_alias(dst) {
            if let Some(t) = contested.get(&ip).and_then(|ts| contested_choice(ts, host)) {
                publics.insert(ip, t);
            }
        }
        self.store
            .view(|r| decide::decide(r, &self.registry, &publics, src, dst, port))
    }

    /// As [`Gateway::check`], with the target a contested public address
    /// was found to be for.
    fn check_for(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        port: u16,
        chosen: Option<(Ipv4Addr, String)>,
    ) -> Result<Decision, recoverite_arm::ArmError> {
        {
            let mut publics = self.public_targets.lock().expect("public targets").clone();
            if let Some((ip, tid)) = chosen {
                publics.insert(ip, tid);
            }
            self.store
                .view(|r| decide::decide(r, &self.registry, &publics, src, dst, port))
        }
    }

    async fn handle(
        self: Arc<Gateway>,
        mut stream: TcpStream,
        peer: SocketAddr,
        dst: Ipv4Addr,
        port: u16,
    ) {
        let src = match peer.ip() {
            std::net::IpAddr::V4(ip) => ip,
            std::net::IpAddr::V6(_) => return,
        };
        let contested = addressbook::public_of_alias(dst).and_then(|ip| {
            let c = self.contested_publics.lock().expect("contested publics");
            c.get(&ip).map(|t| (ip, t.clone()))
        });
        let chosen = match contested {
            Some((ip, targets)) => http_host(&stream)
                .await
                .and_then(|host| contested_choice(&targets, &host))
                .map(|t| (ip, t)),
            None => None,
        };
        let gw = self.clone();
        let decision =
            tokio::task::spawn_blocking(move || gw.check_for(src, dst, port, chosen)).await;
        let decision = match decision {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => Decision {
                allowed: false,
                reason: format!("internal error: {e}"),
                source: None,
                destination: None,
            },
            Err(_) => return,
        };
        let shared_type = match &decision.destination {
            Some(Destination::Public {
                ip,
                target_id: None,
                ..
            }) if decision.allowed => self
                .shared_publics
                .lock()
                .expect("shared publics")
                .get(ip)
                .cloned(),
            _ => None,
        };
        if let Some(target_type) = shared_type {
            return self
                .serve_shared(stream, src, dst, port, decision, target_type)
                .await;
        }
        let backend = if decision.allowed {
            self.backend_for(&decision, src, port)
        } else {
            None
        };
        let mut rec = FlowRecord {
            time: recoverite_arm::time::now_string(),
            source_alias: src,
            destination_alias: dst,
            port,
            allowed: decision.allowed,
            reason: decision.reason.clone(),
            source: decision.source.clone(),
            destination: decision.destination.clone(),
            source_vm: None,
            source_nic: None,
            destination_name: None,
        };
        let Some((addr, greeting, preface)) = backend.filter(|_| decision.allowed) else {
            if decision.allowed {
                rec.allowed = false;
                rec.reason = "allowed by the network, but no emulated service listens there".into();
            }
            self.record(rec);
            let _ = stream.shutdown().await;
            return;
        };
        self.record(rec);
        proxy(stream, addr, preface, greeting).await;
    }

    /// A service address shared by all instances: the client names the
    /// instance first (`vault <ARM id>`), and that instance's public network
    /// access decides (document 001's public-URL fallback).
    async fn serve_shared(
        self: Arc<Gateway>,
        mut stream: TcpStream,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        port: u16,
        decision: Decision,
        target_type: String,
    ) {
        use tokio::io::AsyncReadExt;
        let mut line = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            let mut b = [0u8; 1];
            while line.len() < 1024 {
                match stream.read(&mut b).await {
                    Ok(1) if b[0] == b'\n' => break,
                    Ok(1) => line.push(b[0]),
                    _ => break,
                }
            }
        })
        .await;
        let text = String::from_utf8_lossy(&line).trim().to_string();
        let named = text.split_whitespace().last().unwrap_or("").to_string();
        let doc = if read.is_ok() && !named.is_empty() {
            self.store.view(|r| resource::get(r, &named)).ok().flatten()
        } else {
            None
        };
        let mut rec = FlowRecord {
            time: recoverite_arm::time::now_string(),
            source_alias: src,
            destination_alias: dst,
            port,
            allowed: false,
            reason: String::new(),
            source: decision.source.clone(),
            destination: decision.destination.clone(),
            source_vm: None,
            source_nic: None,
            destination_name: None,
        };
        let target = self.registry.target_for(&target_type).cloned();
        match (doc, target) {
            (Some(d), Some(t))
                if d["type"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(&target_type)) =>
            {
                if t.public_network_access(&d) {
                    rec.allowed = true;
                    rec.reason =
                        format!("allowed: {} accepts requests over its public URLs", named);
                    let port_backend = self
                        .port_backends
                        .lock()
                        .expect("port backends")
                        .get(&(target_type.to_ascii_lowercase(), port))
                        .cloned();
                    if let Some((addr, secret)) = port_backend {
                        self.record(rec);
                        let greeting = format!(
                            "recoverite {target_type} {} via public URL",
                            d["name"].as_str().unwrap_or("")
                        );
                        let admit = serde_json::json!({"target": d["id"], "via": "public", "sourceAlias": src, "greeting": greeting});
                        let preface = format!("recoverite-admit {secret} {admit}\n{text}\n");
                        proxy(stream, addr, Some(preface), None).await;
                        return;
                    }
                    if port != 443 {
                        rec.allowed = false;
                        rec.reason = format!("allowed by the network, but {target_type} serves nothing on port {port}");
                        self.record(rec);
                        let _ = stream.shutdown().await;
                        return;
                    }
                    self.record(rec);
                    let greeting = format!(
                        "recoverite {target_type} {} via public URL\n",
                        d["name"].as_str().unwrap_or("")
                    );
                    let echo = *self.echo.lock().expect("echo");
                    if let Some(addr) = echo {
                        proxy(stream, addr, None, Some(greeting)).await;
                    }
                    return;
                }
                rec.reason = format!("{named} denies requests over public URLs: its public network access is disabled");
                // The vault itself answers (the network let the request through).
                let _ = stream
                    .write_all(format!("refused {}\n", rec.reason).as_bytes())
                    .await;
            }
            _ => {
                rec.reason = format!(
                    "the request named no {target_type} instance this service knows ('{text}')"
                )
            }
        }
        self.record(rec);
        let _ = stream.shutdown().await;
    }

    /// The emulated service behind a destination, and an optional greeting.
    /// Also the line to send the service first, for admitting services.
    fn backend_for(
        &self,
        d: &Decision,
        src: Ipv4Addr,
        port: u16,
    ) -> Option<(SocketAddr, Option<String>, Option<String>)> {
        // Site Recovery's mobility agents listen on 20004 for multi-VM sync.
        if let Some(Destination::Nic { ipconfig, .. }) = &d.destination {
            if port == MULTI_VM_SYNC_PORT {
                let greeting = format!("recoverite mobility agent at {ipconfig}: multi-VM sync\n");
                return (*self.echo.lock().expect("echo")).map(|a| (a, Some(greeting), None));
            }
        }
        if let Some(Destination::Public {
            service: Some(tag),
            target_id: None,
            ..
        }) = &d.destination
        {
            let svc = self
                .service_backends
                .lock()
                .expect("service backends")
                .get(&tag.to_ascii_lowercase())
                .map(|(a, _)| *a);
            if let Some(addr) = svc.filter(|_| port == 443) {
                return Some((addr, None, None));
            }
        }
        let target = match &d.destination {
            Some(Destination::PrivateEndpoint { target_id, .. }) => Some(target_id.clone()),
            Some(Destination::Public {
                target_id: Some(t), ..
            }) => Some(t.clone()),
            _ => None,
        }?;
        if let Some(addr) = self
            .backends
            .lock()
            .expect("backends")
            .get(&id::key(&target))
        {
            return Some((*addr, None, None));
        }
        let doc = self
            .store
            .view(|r| resource::get(r, &target))
            .ok()
            .flatten()?;
        let ty = doc["type"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if let Some((addr, secret)) = self
            .port_backends
            .lock()
            .expect("port backends")
            .get(&(ty.clone(), port))
        {
            let via = match &d.destination {
                Some(Destination::PrivateEndpoint {
                    endpoint_id, fqdn, ..
                }) => {
                    serde_json::json!({"privateEndpoint": endpoint_id, "fqdn": fqdn})
                }
                _ => serde_json::json!("public"),
            };
            let greeting = greeting_for(&doc, &d.destination);
            let admit = serde_json::json!({"target": doc["id"], "via": via, "sourceAlias": src, "greeting": greeting});
            return Some((
                *addr,
                None,
                Some(format!("recoverite-admit {secret} {admit}\n")),
            ));
        }
        if port != 443 {
            // Only the services registered for a port answer there.
            return None;
        }
        if let Some((addr, secret)) = self.type_backends.lock().expect("type backends").get(&ty) {
            let preface = secret.as_ref().map(|s| {
                format!(
                    "recoverite-admit {s} {}\n",
                    doc["name"].as_str().unwrap_or_default()
                )
            });
            return Some((*addr, None, preface));
        }

        // Targets without a service of their own answer with a greeting and echo.
        let greeting = format!("{}\n", greeting_for(&doc, &d.destination));
        (*self.echo.lock().expect("echo")).map(|a| (a, Some(greeting), None))
    }
}

/// What a target without a service of its own says first:
/// `recoverite {type} {name} via {path}`.
fn greeting_for(doc: &serde_json::Value, dest: &Option<Destination>) -> String {
    let via = match dest {
        Some(Destination::PrivateEndpoint {
            endpoint_id, fqdn, ..
        }) => format!(
            "private endpoint {} ({})",
            endpoint_id.rsplit('/').next().unwrap_or(""),
            fqdn.clone().unwrap_or_default()
        ),
        _ => "public endpoint".to_string(),
    };
    let kind = if doc["type"].as_str() == Some(pl::test_target::TARGET_TYPE) {
        "test target".to_string()
    } else {
        doc["type"].as_str().unwrap_or("").to_string()
    };
    format!(
        "recoverite {kind} {} via {via}",
        doc["name"].as_str().unwrap_or("")
    )
}

/// Proxies an admitted connection to the service at `addr`: `preface` goes
/// to the service first (admitting services), `greeting` to the client
/// first (services without one of their own).
async fn proxy(
    mut stream: TcpStream,
    addr: SocketAddr,
    preface: Option<String>,
    greeting: Option<String>,
) {
    let Ok(mut upstream) = TcpStream::connect(addr).await else {
        let _ = stream.shutdown().await;
        return;
    };
    if let Some(p) = preface {
        if upstream.write_all(p.as_bytes()).await.is_err() {
            let _ = stream.shutdown().await;
            return;
        }
    }
    let _ = stream.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if let Some(g) = greeting {
        if stream.write_all(g.as_bytes()).await.is_err() {
            return;
        }
    }
    idle::copy_until_idle(
        &mut stream,
        &mut upstream,
        PROXY_BUFFER,
        idle::TCP_IDLE_TIMEOUT,
    )
    .await;
}

/// Which of the targets sharing a public address a host name is for: the
/// one whose resource name is the name's first label (`{account}.blob…`).
fn contested_choice(targets: &[String], host: &str) -> Option<String> {
    let name = host.split('.').next().unwrap_or_default();
    targets
        .iter()
        .find(|t| {
            t.rsplit('/')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .cloned()
}
