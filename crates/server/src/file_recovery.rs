//! The vault's file recovery service (Azure Backup's item-level recovery):
//! behind the gateway on model port 3260 of every vault's private endpoint
//! addresses and public Backup addresses. A connection the network let
//! through arrives with the gateway's admission line (which vault, by which
//! path, from which alias); the client then names the vault, and asks for
//! one disk of its session:
//!
//! ```text
//! vault {vault id}
//! ilr {session} {password} {disk}
//! ```
//!
//! Answered `ok {size}` and then NBD (read-only) on the same connection, or
//! `refused {reason}` and closed.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use recoverite_blockstore::nbd::{Export, Exports};
use recoverite_blockstore::BlockStore;
use recoverite_privatelink as pl;
use recoverite_rp_backup::ilr;
use recoverite_rp_network::{aliases, private_endpoint};
use recoverite_store::Store;

/// The one disk a connection was admitted for.
struct OneDisk(Export);

impl Exports for OneDisk {
    fn find(&self, _name: &str) -> Option<Export> {
        Some(self.0.clone())
    }
    fn list(&self) -> Vec<String> {
        vec![self.0.name.clone()]
    }
}

/// Starts the service and registers it with the gateway.
pub async fn start(
    store: Store,
    blocks: BlockStore,
    gateway: &Arc<recoverite_gateway::Gateway>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    crate::vault_port::serve(gateway, ilr::PORT, move |stream, secret| {
        let (store, blocks) = (store.clone(), blocks.clone());
        tokio::spawn(async move {
            if let Err(e) = serve(stream, store, blocks, &secret).await {
                tracing::debug!("file recovery session ended: {e}");
            }
        });
    })
    .await
}

async fn line(r: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        // Bounded: a line longer than 8 KiB is not one of ours.
        let mut limited = (&mut *r).take(8192);
        tokio::io::AsyncBufReadExt::read_until(&mut limited, b'\n', &mut out).await
    })
    .await;
    match read {
        Ok(Ok(_)) => Ok(String::from_utf8_lossy(&out).trim().to_string()),
        _ => Err(std::io::Error::other("no request line")),
    }
}

async fn serve(
    stream: TcpStream,
    store: Store,
    blocks: BlockStore,
    secret: &str,
) -> std::io::Result<()> {
    let mut r = BufReader::new(stream);
    let admit = line(&mut r).await?;
    let Some(json) = admit
        .strip_prefix("recoverite-admit ")
        .and_then(|rest| rest.strip_prefix(secret))
        .map(str::trim)
    else {
        return Ok(());
    };
    let admitted: Value = serde_json::from_str(json).unwrap_or_default();
    let named = line(&mut r).await?;
    let ask = line(&mut r).await?;
    let decided = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || decide(&store, &admitted, &named, &ask))
            .await
            .map_err(std::io::Error::other)?
    };
    match decided {
        Ok(disk) => {
            r.get_mut()
                .write_all(format!("ok {}\n", disk.size_bytes).as_bytes())
                .await?;
            let export = Export {
                name: disk.name.clone(),
                image: blocks.image(&disk.image),
                journal: blocks.journal(&disk.image),
                size: disk.size_bytes,
                read_only: true,
            };
            recoverite_blockstore::nbd::session(r, Arc::new(OneDisk(export))).await
        }
        Err(why) => {
            tracing::info!(reason = %why.0, "file recovery refused");
            r.get_mut()
                .write_all(format!("refused {}\n", why.0).as_bytes())
                .await?;
            r.get_mut().shutdown().await
        }
    }
}

/// Whether this connection may read the disk it asks for.
fn decide(
    store: &Store,
    admitted: &Value,
    named: &str,
    ask: &str,
) -> Result<ilr::SessionDisk, ilr::Refused> {
    let refused = |m: &str| ilr::Refused(m.to_string());
    let vault = admitted["target"].as_str().unwrap_or_default();
    let claimed = named.strip_prefix("vault ").unwrap_or_default().trim();
    if vault.is_empty() || !claimed.eq_ignore_ascii_case(vault) {
        return Err(refused(
            "the connection did not name the vault it reached (send 'vault {id}' first)",
        ));
    }
    let parts: Vec<&str> = ask.split_whitespace().collect();
    let ["ilr", session, password, disk] = parts.as_slice() else {
        return Err(refused(
            "expected 'ilr {session} {password} {disk}' (run the script the provision handed out)",
        ));
    };
    let via_endpoint = admitted["via"]["privateEndpoint"].is_string();
    let source: Option<Ipv4Addr> = admitted["sourceAlias"]
        .as_str()
        .and_then(|a| a.parse().ok());
    store
        .view(|r| {
            let source_vnet = match source {
                Some(a) => aliases::lookup(r, a)?
                    .map(|x| x.vnet_id)
                    .filter(|v| !v.is_empty()),
                None => None,
            };
            let mut vnets = Vec::new();
            for c in pl::of_target(r, vault)? {
                if c.carries_traffic() && c.group_ids.iter().any(|g| g.starts_with("AzureBackup")) {
                    if let Some(v) = private_endpoint::vnet_of(r, &c.endpoint_id)? {
                        vnets.push(v);
                    }
                }
            }
            vnets.sort();
            vnets.dedup();
            Ok::<_, recoverite_arm::ArmError>(
                ilr::reachable_from(&vnets, source_vnet.as_deref(), via_endpoint)
                    .and_then(|_| ilr::admit(r, vault, session, password, disk)),
            )
        })
        .unwrap_or_else(|e| Err(ilr::Refused(e.body.message.clone())))
}
