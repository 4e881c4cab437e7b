//! The process side of Site Recovery's runtime: the Blob service behind
//! every storage account, the cache the replication service drains, storage
//! tokens for agents, the gateway's verdicts, and the loop that runs every
//! protected VM's agent and the replication service once a second.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use object_store::path::Path as ObjPath;
use object_store::ObjectStore;

use recoverite_blob::{Access, Authorize, BlobError};
use recoverite_identity::{principals, rbac, Principal, TokenService};
use recoverite_replication::Engine;
use recoverite_rp_siterecovery::runtime::{self, ChangeCache, Explain, Runtime, StorageTokens};
use recoverite_store::Store;

pub fn object_store(data_dir: &Path) -> std::io::Result<Arc<dyn ObjectStore>> {
    let dir = data_dir.join("blobs");
    std::fs::create_dir_all(&dir)?;
    // Durable puts: a 201 from the Blob service survives a power cut.
    let fs = recoverite_blob::durable::DurableLocal::new_with_prefix(&dir)
        .map_err(std::io::Error::other)?;
    Ok(Arc::new(fs))
}

const LIST_KEYS: &str = "Microsoft.Storage/storageAccounts/listkeys/action";

/// Blob data-plane authorization: an Entra token for Azure Storage whose
/// principal holds the data action on the account (Site Recovery's own
/// principal writes to cache accounts as Azure's first party does).
pub struct BlobAuth {
    pub store: Store,
    pub tokens: Arc<TokenService>,
    pub first_party: String,
}

impl BlobAuth {
    /// The storage account a Blob request names, or the Blob service's 404.
    fn account(
        &self,
        account: &str,
    ) -> Result<recoverite_rp_storage::account::StorageAccount, BlobError> {
        self.store
            .view(|r| recoverite_rp_storage::accounts::find_by_name(r, account))
            .map_err(|e| BlobError::new(500, "InternalError", e.body.message.clone()))?
            .ok_or_else(|| {
                BlobError::new(
                    404,
                    "ResourceNotFound",
                    format!("Storage account {account} does not exist."),
                )
            })
    }
}

impl Authorize for BlobAuth {
    fn now(&self) -> time::OffsetDateTime {
        recoverite_arm::time::now()
    }

    fn container_deleted(&self, account: &str, container: &str) {
        if let Err(e) =
            recoverite_rp_storage::worm::forget_container(&self.store, account, container)
        {
            tracing::warn!(account, container, err = %e.body.message, "forgetting a deleted container's note");
        }
    }

    fn authorize(
        &self,
        account: &str,
        authorization: Option<&str>,
        access: Access,
    ) -> Result<(), BlobError> {
        let doc = self.account(account)?;
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .ok_or_else(|| BlobError::new(401, "NoAuthenticationInformation", "Server failed to authenticate the request. Send an Entra token for https://storage.azure.com as 'Authorization: Bearer'."))?;
        let claims = self.tokens.verify_for_storage(token.trim()).map_err(|e| {
            BlobError::new(401, "InvalidAuthenticationInfo", e.body.message.clone())
        })?;
        let aid = doc.id.as_str();
        // Site Recovery's first party writes to cache accounts with the
        // account's keys, as Azure's does: it may when its role assignments
        // let it list them (Contributor on the subscription, given at start),
        // and not when that assignment has been taken away.
        if claims.oid == self.first_party {
            let may_list_keys = self
                .store
                .view(|r| rbac::is_allowed(r, &claims.oid, LIST_KEYS, aid))
                .map_err(|e| BlobError::new(500, "InternalError", e.body.message.clone()))?;
            return if may_list_keys {
                Ok(())
            } else {
                Err(BlobError::new(403, "AuthorizationPermissionMismatch", format!("This request is not authorized to perform this operation using this permission: Site Recovery's principal {} may not list the keys of {aid} ({LIST_KEYS}).", claims.oid)))
            };
        }
        let (data, action) = match access {
            Access::Read | Access::List => (
                true,
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
            ),
            Access::Write => (
                true,
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
            ),
            Access::Delete => (
                true,
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
            ),
            Access::ManageContainer => (
                false,
                "Microsoft.Storage/storageAccounts/blobServices/containers/write",
            ),
        };
        let ok = self
            .store
            .view(|r| {
                if data {
                    rbac::is_allowed_data(r, &claims.oid, action, aid)
                } else {
                    rbac::is_allowed(r, &claims.oid, action, aid)
                }
            })
            .map_err(|e| BlobError::new(500, "InternalError", e.body.message.clone()))?;
        if ok {
            Ok(())
        } else {
            Err(BlobError::new(403, "AuthorizationPermissionMismatch", format!("This request is not authorized to perform this operation using this permission: principal {} lacks {action} on {aid}.", claims.oid)))
        }
    }

    fn shared_keys(&self, account: &str) -> Result<Vec<Vec<u8>>, BlobError> {
        use base64::Engine;
        let internal = |e: recoverite_arm::ArmError| {
            BlobError::new(500, "InternalError", e.body.message.clone())
        };
        let doc = self.account(account)?;
        if !doc.properties.allow_shared_key_access {
            return Err(BlobError::new(403, "KeyBasedAuthenticationNotPermitted", format!("Key based authentication is not permitted on this storage account ({account} has allowSharedKeyAccess false); use an Entra token.")));
        }
        let aid = doc.id.clone();
        let keys = self
            .store
            .view(|r| recoverite_rp_storage::keys::of(r, &aid))
            .map_err(internal)?;
        Ok(keys
            .iter()
            .filter_map(|k| {
                base64::engine::general_purpose::STANDARD
                    .decode(&k.value)
                    .ok()
            })
            .collect())
    }
}

/// Storage tokens for agents: the vault's managed identity, or Site Recovery's own.
pub struct AgentTokens {
    pub store: Store,
    pub tokens: Arc<TokenService>,
    pub first_party: Principal,
}

impl StorageTokens for AgentTokens {
    fn token(&self, principal: Option<&str>) -> Result<String, String> {
        let p = match principal {
            Some(oid) => self
                .store
                .view(|r| principals::get(r, oid))
                .map_err(|e| e.body.message.clone())?
                .ok_or_else(|| format!("the vault's managed identity {oid} no longer exists"))?,
            None => self.first_party.clone(),
        };
        self.tokens.issue(&p, "https://storage.azure.com/", 3600)
    }
}

/// The cache container, read by the replication service.
pub struct BlobCache {
    pub store: Arc<dyn ObjectStore>,
    pub handle: tokio::runtime::Handle,
}

fn dir(account: &str, prefix: &str) -> ObjPath {
    ObjPath::from(format!(
        "{account}/{}/{prefix}",
        recoverite_agent::CACHE_CONTAINER
    ))
}

impl ChangeCache for BlobCache {
    fn pending(&self, account: &str, prefix: &str) -> Result<Vec<String>, String> {
        use futures::TryStreamExt;
        self.handle.block_on(async {
            let mut names: Vec<String> = self
                .store
                .list(Some(&dir(account, prefix)))
                .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
                .try_collect()
                .await
                .map_err(|e| e.to_string())?;
            names.sort();
            Ok(names)
        })
    }

    fn get(&self, account: &str, prefix: &str, name: &str) -> Result<Vec<u8>, String> {
        let p = ObjPath::from(format!("{}/{name}", dir(account, prefix).as_ref()));
        self.handle.block_on(async {
            let got = self.store.get(&p).await.map_err(|e| e.to_string())?;
            got.bytes()
                .await
                .map(|b| b.to_vec())
                .map_err(|e| e.to_string())
        })
    }

    fn remove(&self, account: &str, prefix: &str, name: &str) -> Result<(), String> {
        let p = ObjPath::from(format!("{}/{name}", dir(account, prefix).as_ref()));
        self.handle
            .block_on(self.store.delete(&p))
            .map_err(|e| e.to_string())
    }
}

pub struct GatewayExplain(pub Arc<recoverite_gateway::Gateway>);

impl Explain for GatewayExplain {
    /// The flow log's newest record of this connection when it was refused
    /// (it knows what the service itself refused, too), else a fresh decision.
    fn explain(&self, from: Ipv4Addr, to: Ipv4Addr) -> Option<String> {
        let logged = self
            .0
            .flow_log()
            .into_iter()
            .rev()
            .find(|f| f.source_alias == from && f.destination_alias == to)
            .filter(|f| !f.allowed)
            .map(|f| f.reason);
        logged.or_else(|| {
            self.0
                .check(from, to, 443)
                .ok()
                .filter(|d| !d.allowed)
                .map(|d| d.reason)
        })
    }

    fn refused_flows(&self, vm_id: &str, since: &str) -> Vec<serde_json::Value> {
        let from = recoverite_arm::time::parse(since);
        let filter = recoverite_gateway::flowlog::Filter {
            allowed: Some(false),
            vm: Some(vm_id.to_string()),
            dest: None,
        };
        self.0
            .flows(&filter)
            .into_iter()
            .filter(|f| match (from, recoverite_arm::time::parse(&f.time)) {
                (Some(a), Some(t)) => t >= a,
                _ => true,
            })
            .filter_map(|f| serde_json::to_value(f).ok())
            .collect()
    }
}

/// Once a second: every replicating VM's agent ships its changes through the
/// network; the replication service drains the caches and seals points.
pub fn spawn(
    data_dir: std::path::PathBuf,
    store: Store,
    engine: Engine,
    rt: Arc<Runtime>,
    every_secs: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = time::Duration::seconds(every_secs.max(1) as i64);
        let mut busy = false;
        loop {
            // Once a second, or straight on while agents still have changes
            // to ship (each cycle has a budget, so every VM gets its turn).
            let pause = if busy { 5 } else { 1000 };
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            busy = false;
            crate::clock::save(&data_dir);
            let items = match runtime::replicating(&store) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(err = %e.body.message, "replication: listing items");
                    continue;
                }
            };
            for item in &items {
                let id = item.id.clone();
                let eid = item.engine_id().to_string();
                if rt.external_agent(&eid).is_some() {
                    continue; // its own process ships (`recoverite agent`)
                }
                let res = runtime::agent_cycle(
                    &store,
                    &engine,
                    &rt,
                    item,
                    Some(std::time::Duration::from_millis(500)),
                )
                .await;
                busy |= matches!(res, Ok(n) if n > 0);
                let (s, r) = (store.clone(), rt.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    runtime::set_health(&s, &r, &id, res.as_ref().err())
                })
                .await;
            }
            let (s, e, r) = (store.clone(), engine.clone(), rt.clone());
            match tokio::task::spawn_blocking(move || {
                recoverite_rp_siterecovery::replication_loop::tick(&s, &e, &r, every)
            })
            .await
            {
                Ok(Err(err)) => tracing::warn!(err = %err.body.message, "replication cycle failed"),
                Err(err) => tracing::warn!(%err, "replication cycle stopped"),
                Ok(Ok(_)) => {}
            }
        }
    })
}
