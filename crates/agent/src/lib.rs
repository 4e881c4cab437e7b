//! The mobility agent: one per protected VM.
//!
//! It acts from the VM's network position — every socket is bound to the
//! VM's loopback alias — so the emulated network decides whether replication
//! works, exactly as it would for a real agent:
//!
//! 1. resolve the vault's Site Recovery name through recoverite's DNS server
//!    (answered for the VM's network: a private zone's address, or public DNS)
//!    and say hello to the vault through the gateway;
//! 2. resolve the cache storage account's blob name the same way and PUT the
//!    batch of changed blocks into it through the gateway.
//!
//! Any step that fails is a [`Blocked`] naming the endpoint and the step, so
//! the protected item's health can say what to fix.

mod dns;
mod http;
mod tls;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

pub use dns::resolve;
pub use tls::client_config;

/// Trust for the emulator's TLS certificate, as agents hold it.
pub type TlsConfig = std::sync::Arc<rustls::ClientConfig>;

/// Where a model port is served on a loopback alias (the gateway's rule,
/// which follows the instance's slot).
pub use recoverite_listen::instance::real_port;

pub const TIMEOUT: Duration = Duration::from_secs(3);
/// The cache container Site Recovery writes change batches to.
pub const CACHE_CONTAINER: &str = "asr-cache";
/// The port VMs of a replication group reach each other on (document 003).
pub const MULTI_VM_SYNC_PORT: u16 = 20004;

/// Everything the agent needs to know about its VM and its vault.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The VM's loopback alias (its primary NIC's IP configuration).
    pub vm_alias: Ipv4Addr,
    pub dns_server: SocketAddr,
    /// The vault's ARM id (named to the shared public Site Recovery URL).
    pub vault_id: String,
    /// The vault's Site Recovery name for the source region.
    pub vault_fqdn: String,
    /// `{account}.blob.core.windows.net`.
    pub cache_host: String,
    /// Blob name prefix of this item's batches.
    pub item_prefix: String,
    /// Bearer token for Azure Storage.
    pub storage_token: String,
    /// An authenticating proxy configured for the VM (`user:pass@host`).
    pub proxy: Option<String>,
    /// Microsoft Entra ID and monitoring (documents 000 and 002): reached
    /// over TLS through the network when the agent has the roots to trust.
    pub services: Option<Services>,
}

/// The public services every agent needs besides its vault and cache.
#[derive(Clone)]
pub struct Services {
    /// The tenant the agent signs in to.
    pub tenant_id: String,
    /// Site Recovery's monitoring namespace in the target region
    /// (`asrmon{geo}.servicebus.windows.net`, behind `EventHub.{region}`).
    pub monitoring_host: String,
    /// The item's name in monitoring messages.
    pub item: String,
    /// Trust for the emulator's TLS certificate.
    pub tls: std::sync::Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("tenant_id", &self.tenant_id)
            .field("monitoring_host", &self.monitoring_host)
            .finish_non_exhaustive()
    }
}

/// Microsoft Entra ID's authority: it has no private endpoint (document 000).
pub const ENTRA_HOST: &str = "login.microsoftonline.com";
/// The endpoint names a [`Blocked`] carries.
pub const VAULT: &str = "vault";
pub const ENTRA: &str = "Microsoft Entra ID";
pub const CACHE: &str = "cache storage";
pub const MONITORING: &str = "monitoring";
pub const PEER: &str = "replication group peer";
pub const AGENT: &str = "agent";

/// The hop of a connection that failed, first to last: the name's
/// resolution, the address, the network's decision, then the service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Hop {
    /// The name did not resolve from the VM's network.
    Dns,
    /// It resolved to an address the VM's network has no such host at.
    Address,
    /// The network (a route, a security rule, an endpoint's approval)
    /// refused the connection; the gateway's verdict says which.
    Network,
    /// The service turned the agent away itself (e.g. public access).
    Service,
    /// The service answered with an HTTP error (status, error code).
    Http(u16, String),
    /// An authenticating proxy is configured.
    Proxy,
    /// The agent itself (its VM, its journal), not the network.
    #[default]
    Agent,
}

impl Hop {
    /// The wire form an external agent reports.
    pub fn as_string(&self) -> String {
        match self {
            Hop::Dns => "dns".into(),
            Hop::Address => "address".into(),
            Hop::Network => "network".into(),
            Hop::Service => "service".into(),
            Hop::Http(s, c) => format!("http:{s}:{c}"),
            Hop::Proxy => "proxy".into(),
            Hop::Agent => "agent".into(),
        }
    }

    pub fn parse(s: &str) -> Hop {
        match s {
            "dns" => Hop::Dns,
            "address" => Hop::Address,
            "network" => Hop::Network,
            "service" => Hop::Service,
            "proxy" => Hop::Proxy,
            other => match other.strip_prefix("http:").and_then(|r| r.split_once(':')) {
                Some((st, code)) => Hop::Http(st.parse().unwrap_or(0), code.to_string()),
                None => Hop::Agent,
            },
        }
    }
}

/// Why the agent could not do its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// `vault`, `cache storage`, or `agent`.
    pub endpoint: String,
    pub fqdn: String,
    /// The address it resolved to, when it did.
    pub address: Option<Ipv4Addr>,
    pub reason: String,
    /// The loopback aliases of the refused connection, for the gateway's verdict.
    pub flow: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Which hop failed.
    pub hop: Hop,
}

impl Blocked {
    /// A failure of the agent itself, not of the network.
    pub fn agent(reason: impl Into<String>) -> Blocked {
        blocked(AGENT, "", None, reason)
    }

    fn at(mut self, hop: Hop) -> Blocked {
        self.hop = hop;
        self
    }
}

/// Maps a resolved model address to the loopback alias the gateway listens
/// on for it, as seen from the VM (private addresses depend on the network).
pub trait Aliases: Send + Sync {
    fn alias_of(&self, from: Ipv4Addr, model: Ipv4Addr) -> Option<Ipv4Addr>;
}

fn blocked(
    endpoint: &str,
    fqdn: &str,
    address: Option<Ipv4Addr>,
    reason: impl Into<String>,
) -> Blocked {
    Blocked {
        endpoint: endpoint.into(),
        fqdn: fqdn.into(),
        address,
        reason: reason.into(),
        flow: None,
        hop: Hop::Agent,
    }
}

/// Site Recovery does not support authenticating proxies (document 003):
/// an agent configured with one refuses to run.
pub fn refuse_authenticating_proxy(proxy: Option<&str>) -> Result<(), Blocked> {
    match proxy {
        Some(p) if p.contains('@') => Err(blocked(AGENT, p, None, "an authenticating proxy is configured; Site Recovery does not support authentication proxies, so replication cannot run through it").at(Hop::Proxy)),
        _ => Ok(()),
    }
}

/// Resolves `fqdn` from the VM and connects to it on model port 443.
async fn reach(
    p: &Placement,
    aliases: &dyn Aliases,
    endpoint: &str,
    fqdn: &str,
) -> Result<(TcpStream, Ipv4Addr), Blocked> {
    let ip = resolve(p.vm_alias, p.dns_server, fqdn)
        .await
        .map_err(|e| blocked(endpoint, fqdn, None, e).at(Hop::Dns))?;
    let alias = aliases.alias_of(p.vm_alias, ip).ok_or_else(|| {
        blocked(endpoint, fqdn, Some(ip), format!("{fqdn} resolves to {ip}, which is not reachable from the VM's network (no such address there)")).at(Hop::Address)
    })?;
    let refused = |why: String| Blocked {
        flow: Some((p.vm_alias, alias)),
        hop: Hop::Network,
        ..blocked(endpoint, fqdn, Some(ip), why)
    };
    connect_from(p.vm_alias, alias, 443)
        .await
        .map(|s| (s, ip))
        .map_err(|e| refused(format!("connection to {ip}:443 failed: {e}")))
}

/// Connects from `from` (the VM's alias) to model `port` at `alias`.
/// Nothing listening yet (a network change still being applied) is
/// transient: retried briefly, as agents do. A refusal by the network is an
/// accepted-then-closed connection and is not retried here.
pub async fn connect_from(
    from: Ipv4Addr,
    alias: Ipv4Addr,
    port: u16,
) -> std::io::Result<TcpStream> {
    let mut wait = Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        let sock = TcpSocket::new_v4()?;
        sock.bind(SocketAddr::from((from, 0)))?;
        match tokio::time::timeout(
            TIMEOUT,
            sock.connect(SocketAddr::from((alias, real_port(port)))),
        )
        .await
        {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused && attempt < 6 => {
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "timed out",
                ))
            }
        }
    }
}

/// Says hello to the vault: the first line back is the service's greeting.
/// A connection the network refuses is closed before any greeting.
pub async fn hello_vault(p: &Placement, aliases: &dyn Aliases) -> Result<String, Blocked> {
    refuse_authenticating_proxy(p.proxy.as_deref())?;
    let (s, ip) = reach(p, aliases, VAULT, &p.vault_fqdn).await?;
    let alias = s.peer_addr().ok().and_then(|a| match a.ip() {
        std::net::IpAddr::V4(v) => Some(v),
        _ => None,
    });
    let mut s = BufReader::new(s);
    let refused = |why: &str| Blocked {
        flow: alias.map(|a| (p.vm_alias, a)),
        hop: Hop::Network,
        ..blocked(VAULT, &p.vault_fqdn, Some(ip), why)
    };
    s.get_mut()
        .write_all(format!("vault {}\n", p.vault_id).as_bytes())
        .await
        .map_err(|_| refused("the connection was closed"))?;
    let mut line = String::new();
    match tokio::time::timeout(TIMEOUT, s.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => match line.trim().strip_prefix("refused ") {
            // The service itself answered: the network let the agent through.
            Some(why) => Err(refused(why).at(Hop::Service)),
            None => Ok(line.trim().to_string()),
        },
        _ => Err(refused(
            "the connection was closed before the service answered",
        )),
    }
}

/// Uploads one batch into the cache account (creating the container the
/// first time).
pub async fn upload(
    p: &Placement,
    aliases: &dyn Aliases,
    name: &str,
    bytes: &[u8],
) -> Result<(), Blocked> {
    refuse_authenticating_proxy(p.proxy.as_deref())?;
    let path = format!("/{CACHE_CONTAINER}/{}/{name}", p.item_prefix);
    // An answer that never came is the network's doing (the gateway closes
    // what it refuses): keep the flow so its verdict can be named.
    let fail = |why: String, ip: Ipv4Addr, flow: Option<(Ipv4Addr, Ipv4Addr)>| Blocked {
        flow,
        hop: Hop::Network,
        ..blocked(CACHE, &p.cache_host, Some(ip), why)
    };
    let answered = |st: &http::Status, ip: Ipv4Addr, why: String| {
        blocked(CACHE, &p.cache_host, Some(ip), why).at(Hop::Http(st.code, st.error_code.clone()))
    };
    for attempt in 0..2 {
        let (s, ip) = reach(p, aliases, CACHE, &p.cache_host).await?;
        let flow = flow_of(&s, p.vm_alias);
        match http::put(s, &p.cache_host, &path, &p.storage_token, bytes).await {
            Ok(st) if st.code == 201 => return Ok(()),
            Ok(st) if attempt == 1 || st.error_code != "ContainerNotFound" => {
                let why = format!("the Blob service answered {} {}", st.code, st.error_code);
                return Err(answered(&st, ip, why));
            }
            Err(e) if attempt == 1 => return Err(fail(e, ip, flow)),
            // The container is missing (the service may cut a large upload
            // short to say so): create it, then upload again.
            _ => {
                let (s, ip) = reach(p, aliases, CACHE, &p.cache_host).await?;
                let flow = flow_of(&s, p.vm_alias);
                let c = http::put(
                    s,
                    &p.cache_host,
                    &format!("/{CACHE_CONTAINER}?restype=container"),
                    &p.storage_token,
                    &[],
                )
                .await
                .map_err(|e| fail(e, ip, flow))?;
                if c.code != 201 && c.code != 409 {
                    let why = format!(
                        "creating container {CACHE_CONTAINER} failed: {} {}",
                        c.code, c.error_code
                    );
                    return Err(answered(&c, ip, why));
                }
            }
        }
    }
    Err(Blocked::agent("the upload did not go through"))
}

fn flow_of(s: &TcpStream, vm: Ipv4Addr) -> Option<(Ipv4Addr, Ipv4Addr)> {
    match s.peer_addr().ok()?.ip() {
        std::net::IpAddr::V4(a) => Some((vm, a)),
        _ => None,
    }
}

/// One HTTPS exchange with a public service from the VM: resolve, connect
/// through the network, TLS, one request. Returns the status and body.
async fn https(
    p: &Placement,
    aliases: &dyn Aliases,
    endpoint: &str,
    host: &str,
    request: String,
) -> Result<(u16, String), Blocked> {
    let Some(svc) = &p.services else {
        return Err(Blocked::agent("no TLS trust configured"));
    };
    let (s, ip) = reach(p, aliases, endpoint, host).await?;
    let flow = flow_of(&s, p.vm_alias);
    let refused = |why: String| Blocked {
        flow,
        hop: Hop::Network,
        ..blocked(endpoint, host, Some(ip), why)
    };
    let text = tls::exchange(s, svc.tls.clone(), request.as_bytes())
        .await
        .map_err(refused)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| {
            refused(format!(
                "{host} closed the connection without an HTTP answer"
            ))
        })?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

/// Reaches Microsoft Entra ID from the VM, as the agent must before it can
/// authenticate to Site Recovery: over TLS, through the network, to the
/// authority's public name, asking for the tenant's OpenID configuration.
pub async fn reach_entra(p: &Placement, aliases: &dyn Aliases) -> Result<(), Blocked> {
    let Some(svc) = &p.services else {
        return Ok(());
    };
    let req = format!(
        "GET /{}/v2.0/.well-known/openid-configuration HTTP/1.1\r\nHost: {ENTRA_HOST}\r\nConnection: close\r\n\r\n",
        svc.tenant_id
    );
    let (status, body) = https(p, aliases, ENTRA, ENTRA_HOST, req).await?;
    if status == 200 && body.contains("token_endpoint") {
        Ok(())
    } else {
        Err(blocked(
            ENTRA,
            ENTRA_HOST,
            None,
            format!("Entra ID answered {status}"),
        )
        .at(Hop::Http(status, String::new())))
    }
}

/// Sends the agent's health to Site Recovery monitoring (an event hub in the
/// target region, document 002): its heartbeat.
pub async fn send_monitoring(
    p: &Placement,
    aliases: &dyn Aliases,
    shipped: u64,
) -> Result<(), Blocked> {
    let Some(svc) = &p.services else {
        return Ok(());
    };
    let body = format!(
        "{{\"item\":\"{}\",\"engine\":\"{}\",\"shippedBytes\":{shipped}}}",
        svc.item.replace('"', ""),
        p.item_prefix
    );
    let req = format!(
        "POST /{MONITORING_HUB}/messages HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        svc.monitoring_host,
        p.storage_token,
        body.len()
    );
    let (status, _) = https(p, aliases, MONITORING, &svc.monitoring_host, req).await?;
    if status == 201 {
        Ok(())
    } else {
        Err(blocked(
            MONITORING,
            &svc.monitoring_host,
            None,
            format!("the event hub answered {status}"),
        )
        .at(Hop::Http(status, String::new())))
    }
}

/// The event hub Site Recovery's agents send health to.
pub const MONITORING_HUB: &str = "asr-agent-health";

/// Site Recovery's monitoring namespace for a target region's geo code.
pub fn monitoring_host(geo: &str) -> String {
    format!("asrmon{geo}.servicebus.windows.net")
}

/// Checks that a peer VM of the replication group is reachable on the
/// multi-VM sync port (its agent answers there).
pub async fn check_peer(p: &Placement, peer: Ipv4Addr, peer_name: &str) -> Result<(), Blocked> {
    let fail = |why: String| Blocked {
        flow: Some((p.vm_alias, peer)),
        hop: Hop::Network,
        ..blocked(PEER, peer_name, None, why)
    };

    let s = connect_from(p.vm_alias, peer, MULTI_VM_SYNC_PORT)
        .await
        .map_err(|e| fail(format!("port {MULTI_VM_SYNC_PORT} connection failed: {e}")))?;
    let mut line = String::new();
    match tokio::time::timeout(TIMEOUT, BufReader::new(s).read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => Ok(()),
        _ => Err(fail(format!("the connection on port {MULTI_VM_SYNC_PORT} was closed: multi-VM consistency needs the group's VMs to reach each other on it"))),
    }
}
