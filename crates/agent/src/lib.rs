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

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

pub use dns::resolve;

/// Where a model port is served on a loopback alias (the gateway's rule).
pub fn real_port(model: u16) -> u16 {
    if model < 1024 {
        model + 10000
    } else {
        model
    }
}

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
    }
}

/// Site Recovery does not support authenticating proxies (document 003):
/// an agent configured with one refuses to run.
pub fn refuse_authenticating_proxy(proxy: Option<&str>) -> Result<(), Blocked> {
    match proxy {
        Some(p) if p.contains('@') => Err(blocked("agent", p, None, "an authenticating proxy is configured; Site Recovery does not support authentication proxies, so replication cannot run through it")),
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
        .map_err(|e| blocked(endpoint, fqdn, None, e))?;
    let alias = aliases.alias_of(p.vm_alias, ip).ok_or_else(|| {
        blocked(endpoint, fqdn, Some(ip), format!("{fqdn} resolves to {ip}, which is not reachable from the VM's network (no such address there)"))
    })?;
    let refused = |why: String| Blocked {
        flow: Some((p.vm_alias, alias)),
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
    let (s, ip) = reach(p, aliases, "vault", &p.vault_fqdn).await?;
    let alias = s.peer_addr().ok().and_then(|a| match a.ip() {
        std::net::IpAddr::V4(v) => Some(v),
        _ => None,
    });
    let mut s = BufReader::new(s);
    let refused = |why: &str| Blocked {
        flow: alias.map(|a| (p.vm_alias, a)),
        ..blocked("vault", &p.vault_fqdn, Some(ip), why)
    };
    s.get_mut()
        .write_all(format!("vault {}\n", p.vault_id).as_bytes())
        .await
        .map_err(|_| refused("the connection was closed"))?;
    let mut line = String::new();
    match tokio::time::timeout(TIMEOUT, s.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => match line.trim().strip_prefix("refused ") {
            Some(why) => Err(refused(why)),
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
    let fail = |why: String| blocked("cache storage", &p.cache_host, None, why);
    for attempt in 0..2 {
        let (s, _) = reach(p, aliases, "cache storage", &p.cache_host).await?;
        match http::put(s, &p.cache_host, &path, &p.storage_token, bytes).await {
            Ok(st) if st.code == 201 => return Ok(()),
            Ok(st) if attempt == 1 || st.error_code != "ContainerNotFound" => {
                return Err(fail(format!(
                    "the Blob service answered {} {}",
                    st.code, st.error_code
                )));
            }
            Err(e) if attempt == 1 => return Err(fail(e)),
            // The container is missing (the service may cut a large upload
            // short to say so): create it, then upload again.
            _ => {
                let (s, _) = reach(p, aliases, "cache storage", &p.cache_host).await?;
                let c = http::put(
                    s,
                    &p.cache_host,
                    &format!("/{CACHE_CONTAINER}?restype=container"),
                    &p.storage_token,
                    &[],
                )
                .await
                .map_err(fail)?;
                if c.code != 201 && c.code != 409 {
                    return Err(fail(format!(
                        "creating container {CACHE_CONTAINER} failed: {} {}",
                        c.code, c.error_code
                    )));
                }
            }
        }
    }
    Err(fail("the upload did not go through".into()))
}

/// Checks that a peer VM of the replication group is reachable on the
/// multi-VM sync port (its agent answers there).
pub async fn check_peer(p: &Placement, peer: Ipv4Addr, peer_name: &str) -> Result<(), Blocked> {
    let fail = |why: String| Blocked {
        endpoint: "replication group peer".into(),
        fqdn: peer_name.into(),
        address: None,
        reason: why,
        flow: Some((p.vm_alias, peer)),
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
