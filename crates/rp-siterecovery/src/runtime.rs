//! Replication at run time: where each protected VM's agent stands in the
//! network, one agent cycle (hello to the vault, ship the changes to the
//! cache account, through DNS and the gateway), the replication service
//! draining the cache into recovery points, and the item's health.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};

use recoverite_agent::{self as agent, Blocked, Hop, Placement};
use recoverite_arm::first_party::LateClient;
use recoverite_arm::{id, resource, time, ArmError, Authorizer};
use recoverite_replication::Engine;
use recoverite_rp_network::{addressbook, aliases};
use recoverite_store::{Reader, Store};

use crate::health;
use crate::item::{self, ReplicationItem};
use crate::protected_items::{io, not_found};

/// Batches waiting in cache storage accounts (the replication service reads
/// them as a trusted Microsoft service, not through the customer's network).
pub trait ChangeCache: Send + Sync {
    /// Names of the batches under `prefix` of `account`'s cache container, oldest first.
    fn pending(&self, account: &str, prefix: &str) -> Result<Vec<String>, String>;
    fn get(&self, account: &str, prefix: &str, name: &str) -> Result<Vec<u8>, String>;
    fn remove(&self, account: &str, prefix: &str, name: &str) -> Result<(), String>;
}

/// Storage tokens for the identity Site Recovery writes to the cache with:
/// the vault's managed identity, or (no identity) Site Recovery's own.
pub trait StorageTokens: Send + Sync {
    fn token(&self, principal_object_id: Option<&str>) -> Result<String, String>;
}

/// The gateway's verdict on a refused connection (why it was refused).
pub trait Explain: Send + Sync {
    fn explain(&self, from: Ipv4Addr, to: Ipv4Addr) -> Option<String>;
    /// The flow log's refused flows from `vm_id` since `since` (the
    /// emulator's time), oldest first.
    fn refused_flows(&self, vm_id: &str, since: &str) -> Vec<Value>;
}

/// What the runtime needs, wired once the server has it.
#[derive(Default)]
pub struct Runtime {
    pub dns: OnceLock<SocketAddr>,
    pub tokens: OnceLock<Arc<dyn StorageTokens>>,
    pub cache: OnceLock<Arc<dyn ChangeCache>>,
    pub explain: OnceLock<Arc<dyn Explain>>,
    /// Role checks for naming what a refused cache writer lacks.
    pub authz: OnceLock<Arc<dyn Authorizer>>,
    /// The tenant agents sign in to and the trust for the emulator's TLS:
    /// with them, agents reach Entra ID and monitoring through the network.
    pub services: OnceLock<(String, agent::TlsConfig)>,
    pub arm: LateClient,
    /// Per item: when its agent last reached Entra ID, and its last
    /// monitoring attempt (when, and why it failed if it did).
    signed_in: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    monitored:
        std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Option<Blocked>)>>,
    /// When each item's agent last got through (emulated time): the service
    /// makes points only from agents it hears from.
    pub heartbeats: std::sync::Mutex<std::collections::HashMap<String, ::time::OffsetDateTime>>,
    locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One lock per protected item for the operations that change its
    /// protection state (failover, test failover, reprotect): the state a
    /// request checks stays the state it commits from.
    transitions: std::sync::Mutex<std::collections::HashMap<String, Arc<std::sync::Mutex<()>>>>,
    /// Items whose agent runs as its own process (`recoverite agent`), with
    /// when it last checked in (wall clock): the built-in agent stands aside.
    external: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, String)>>,
}

/// How long an external agent's check-in holds its item.
pub const EXTERNAL_LEASE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long an agent's Entra ID sign-in and its monitoring heartbeat hold
/// before the agent goes through the network again (emulator time scale:
/// a refused path shows on the item within seconds).
pub const SERVICE_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

impl Runtime {
    /// One lock per item and role (`agent` / `service`): two agents (the
    /// loop and a "sync now") must not ship the same journal range as two
    /// batches, nor two drains apply one batch twice.
    pub fn lock(&self, role: &str, engine_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format!("{role}/{engine_id}"))
            .or_default()
            .clone()
    }

    /// The transition lock of one protected item (by its ARM id). Handlers
    /// run on blocking threads, so holding it across disk copies is fine.
    pub fn transition_lock(&self, item_id: &str) -> Arc<std::sync::Mutex<()>> {
        self.transitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(item_id.to_ascii_lowercase())
            .or_default()
            .clone()
    }

    /// An external agent checks in for an item.
    pub fn external_check_in(&self, engine_id: &str, who: &str) {
        self.external
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                engine_id.to_string(),
                (std::time::Instant::now(), who.to_string()),
            );
    }

    /// Who runs an item's agent, when it is an external process still checking in.
    pub fn external_agent(&self, engine_id: &str) -> Option<String> {
        self.external
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(engine_id)
            .filter(|(at, _)| at.elapsed() < EXTERNAL_LEASE)
            .map(|(_, who)| who.clone())
    }

    pub fn heard_from(&self, engine_id: &str) {
        self.heartbeats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(engine_id.to_string(), time::now());
    }

    fn signed_in_recently(&self, engine_id: &str) -> bool {
        self.signed_in
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(engine_id)
            .is_some_and(|at| at.elapsed() < SERVICE_RECHECK)
    }

    fn mark_signed_in(&self, engine_id: &str, ok: bool) {
        let mut m = self.signed_in.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            m.insert(engine_id.to_string(), std::time::Instant::now());
        } else {
            m.remove(engine_id);
        }
    }

    fn monitoring_due(&self, engine_id: &str) -> bool {
        self.monitored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(engine_id)
            .is_none_or(|(at, _)| at.elapsed() >= SERVICE_RECHECK)
    }

    /// Records the item's monitoring attempt (an external agent's too).
    pub fn monitoring_result(&self, engine_id: &str, blocked: Option<Blocked>) {
        self.monitored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(engine_id.to_string(), (std::time::Instant::now(), blocked));
    }

    /// Why the item's monitoring fails now, if it does.
    pub fn monitoring_blocked(&self, engine_id: &str) -> Option<Blocked> {
        self.monitored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(engine_id)
            .and_then(|(_, b)| b.clone())
    }

    pub fn last_heartbeat(&self, engine_id: &str) -> Option<::time::OffsetDateTime> {
        self.heartbeats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(engine_id)
            .copied()
    }
}

fn unwired(what: &str) -> Blocked {
    Blocked::agent(format!("the {what} is not running"))
}

/// Resolved addresses → the gateway's loopback aliases, from a VM's view.
pub struct StoreAliases(pub Store);

impl agent::Aliases for StoreAliases {
    fn alias_of(&self, from: Ipv4Addr, model: Ipv4Addr) -> Option<Ipv4Addr> {
        if !model.is_private() {
            return Some(addressbook::public_alias(model));
        }
        self.0
            .view(|r| {
                let mine = aliases::lookup(r, from)?.map(|a| id::key(&a.vnet_id));
                let all: Vec<_> = aliases::all(r)?
                    .into_iter()
                    .filter(|a| a.private_ip == Some(model))
                    .collect();
                // Private addresses repeat across networks: the VM's own first.
                Ok::<_, ArmError>(
                    all.iter()
                        .find(|a| Some(id::key(&a.vnet_id)) == mine)
                        .or(all.first())
                        .map(|a| a.alias),
                )
            })
            .ok()
            .flatten()
    }
}

fn no(why: String) -> Blocked {
    Blocked::agent(why)
}

/// The loopback alias of the VM an item runs on (its active side).
pub fn vm_alias(r: &impl Reader, item: &ReplicationItem) -> Result<Ipv4Addr, Blocked> {
    let vm_id = item.vm_on(item.side());
    recoverite_rp_compute::view::vm(r, vm_id)
        .ok()
        .flatten()
        .ok_or_else(|| no(format!("VM {vm_id} does not exist, so no agent runs")))?;
    let cfg = recoverite_rp_compute::view::primary_ipconfig(r, vm_id)
        .ok()
        .flatten()
        .ok_or_else(|| no("the VM's network interface does not exist".into()))?;
    aliases::of_owner(r, &cfg.id)
        .ok()
        .flatten()
        .map(|a| a.alias)
        .ok_or_else(|| no("the VM has no network position".into()))
}

/// The protected item's agent placement on its active side.
pub fn placement(
    r: &impl Reader,
    rt: &Runtime,
    item: &ReplicationItem,
) -> Result<Placement, Blocked> {
    let side = item.side();
    let vm_alias = vm_alias(r, item)?;
    let vm_id = item.vm_on(side);
    let vm = resource::get(r, vm_id).ok().flatten().unwrap_or_default();
    let vault_id = item.vault_id().to_string();
    let meta = recoverite_rp_recoveryservices::target::meta_of(r, &vault_id)
        .map_err(|e| no(e.body.message.clone()))?;
    let region = item.source_location(side).to_string();
    let geo = recoverite_rp_recoveryservices::target::geo(&region);
    let vault_fqdn = format!(
        "{}-asr-pod01-{}.{geo}.siterecovery.windowsazure.com",
        meta.numeric_id,
        recoverite_rp_recoveryservices::target::ASR_PAIR_TYPE
    );
    let cache_id = item.cache_account_id(side).to_string();
    let account = cache_id
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let vault = recoverite_rs_core::vault_record::load(r, &vault_id)
        .ok()
        .flatten();
    let principal = vault.as_ref().and_then(|v| v.principal_id());
    let tokens = rt.tokens.get().ok_or_else(|| unwired("token service"))?;
    let storage_token = tokens.token(principal).map_err(no)?;
    Ok(Placement {
        vm_alias,
        dns_server: *rt.dns.get().ok_or_else(|| unwired("DNS server"))?,
        vault_id,
        vault_fqdn,
        cache_host: format!("{account}.blob.core.windows.net"),
        item_prefix: item.engine_id().to_string(),
        storage_token,
        proxy: vm["tags"]["recoverite-proxy"].as_str().map(str::to_string),
        services: rt.services.get().map(|(tenant, tls)| agent::Services {
            tenant_id: tenant.clone(),
            monitoring_host: agent::monitoring_host(&recoverite_rp_recoveryservices::target::geo(
                item.target_location(side),
            )),
            item: item.id.as_str().to_string(),
            tls: tls.clone(),
        }),
    })
}

/// Fills in the gateway's reason for a refused connection.
fn explained(rt: &Runtime, mut b: Blocked) -> Blocked {
    if let (Some((from, to)), Some(e)) = (b.flow, rt.explain.get()) {
        if let Some(why) = e
            .explain(from, to)
            .filter(|w| !b.reason.contains(w.as_str()))
        {
            b.reason = format!("{} (gateway: {why})", b.reason);
        }
    }
    b
}

/// One agent cycle for an item: hello to the vault, then ship what changed.
/// Returns the change bytes shipped.
pub async fn agent_cycle(
    store: &Store,
    engine: &Engine,
    rt: &Runtime,
    item: &ReplicationItem,
    budget: Option<std::time::Duration>,
) -> Result<u64, Blocked> {
    let p = store
        .view(|r| Ok::<_, ArmError>(placement(r, rt, item)))
        .map_err(|e| unwired(&e.body.message))??;
    let al = StoreAliases(store.clone());
    agent::hello_vault(&p, &al)
        .await
        .map_err(|b| explained(rt, b))?;
    // The agent authenticates to Site Recovery through Entra ID, which has
    // no private endpoint (documents 000, 002): its public name, through the
    // VM's network.
    let eid = item.engine_id().to_string();
    if !rt.signed_in_recently(&eid) {
        let res = agent::reach_entra(&p, &al).await;
        rt.mark_signed_in(&eid, res.is_ok());
        res.map_err(|b| explained(rt, b))?;
    }
    // A replication group's VMs must reach each other on port 20004.
    if let Some(g) = crate::groups::group_of(item) {
        let vault = item.vault_id();
        let peers = store
            .view(|r| crate::groups::members(r, vault, g))
            .map_err(|e| unwired(&e.body.message))?;
        for peer in peers.iter().filter(|m| m.id.as_str() != item.id.as_str()) {
            let alias = store
                .view(|r| Ok::<_, ArmError>(vm_alias(r, peer)))
                .map_err(|e| unwired(&e.body.message))?;
            if let Ok(a) = alias {
                let name = peer.properties.friendly_name.as_str();
                agent::check_peer(&p, a, name)
                    .await
                    .map_err(|b| explained(rt, b))?;
            }
        }
    }
    let lock = rt.lock("agent", &eid);
    let _one_agent = lock.lock().await;
    // Bounded batches, one after another, until caught up or the budget is
    // spent (the next cycle goes on from the cursor).
    let started = std::time::Instant::now();
    let mut shipped = 0;
    loop {
        let (e2, id2) = (engine.clone(), eid.clone());
        let batch = tokio::task::spawn_blocking(move || e2.ship(&id2))
            .await
            .map_err(|e| unwired(&e.to_string()))?
            .map_err(|e| unwired(&format!("change journal: {e}")))?;
        let Some(b) = batch else {
            rt.heard_from(&eid);
            monitor(rt, &p, &al, &eid, shipped).await;
            return Ok(shipped);
        };
        agent::upload(&p, &al, &format!("{:020}.batch", b.seq), &b.bytes)
            .await
            .map_err(|b| explained(rt, b))?;
        engine
            .shipped(&eid, &b)
            .map_err(|e| unwired(&format!("agent state: {e}")))?;
        rt.heard_from(&eid);
        shipped += b.payload();
        if budget.is_some_and(|b| started.elapsed() >= b) {
            monitor(rt, &p, &al, &eid, shipped).await;
            return Ok(shipped);
        }
    }
}

/// Site Recovery monitoring in the target region (document 002): when it is
/// refused, replication goes on and the item carries a warning.
async fn monitor(rt: &Runtime, p: &Placement, al: &StoreAliases, eid: &str, shipped: u64) {
    if !rt.monitoring_due(eid) {
        return;
    }
    let res = agent::send_monitoring(p, al, shipped).await;
    rt.monitoring_result(eid, res.err().map(|b| explained(rt, b)));
}

/// Checks, from the item's active side, that its agent can reach the vault
/// (reprotect refuses when it cannot: document 000's DNS trap).
pub fn check_vault_reachable(
    store: &Store,
    rt: &Runtime,
    item: &ReplicationItem,
) -> Result<(), Blocked> {
    let p = store
        .view(|r| Ok::<_, ArmError>(placement(r, rt, item)))
        .map_err(|e| unwired(&e.body.message))??;
    let al = StoreAliases(store.clone());
    let h = tokio::runtime::Handle::try_current().map_err(|_| unwired("network runtime"))?;
    h.block_on(agent::hello_vault(&p, &al))
        .map(|_| ())
        .map_err(|b| explained(rt, b))
}

/// The replication service: applies every batch waiting in the cache.
pub fn drain(engine: &Engine, rt: &Runtime, item: &ReplicationItem) -> Result<u64, ArmError> {
    let Some(cache) = rt.cache.get() else {
        return Ok(0);
    };
    let eid = item.engine_id().to_string();
    let account = item
        .cache_account_id(item.side())
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let lock = rt.lock("service", &eid);
    let _one_drain = lock.blocking_lock();
    let names = cache.pending(&account, &eid).map_err(ArmError::internal)?;
    if names.is_empty() {
        return Ok(0);
    }
    // All waiting batches in one go (one in memory at a time), durable
    // together; only then are they removed from the cache.
    let mut queue = names.iter();
    let applied = engine
        .apply_stream(&eid, &time::now_string(), || match queue.next() {
            Some(name) => cache
                .get(&account, &eid, name)
                .map(Some)
                .map_err(std::io::Error::other),
            None => Ok(None),
        })
        .map_err(io)?;
    for name in &names {
        cache
            .remove(&account, &eid, name)
            .map_err(ArmError::internal)?;
    }
    Ok(applied)
}

/// Records the agent's state on the item when it changes: one health
/// error per cause, named at the first hop that failed (`health`); an
/// error makes the item Critical, a warning (monitoring) Warning; a fixed
/// cause clears, a persisting one keeps the time it was first seen.
pub fn set_health(
    store: &Store,
    rt: &Runtime,
    item_id: &str,
    blocked: Option<&Blocked>,
) -> Result<(), ArmError> {
    let Some(item) = store.view(|r| item::load(r, item_id))? else {
        return Ok(());
    };
    let eid = item.engine_id().to_string();
    let now = time::now_string();
    let mut errors = Vec::new();
    let monitoring = rt.monitoring_blocked(&eid);
    for b in blocked.into_iter().chain(monitoring.as_ref()) {
        let f = store.view(|r| facts(r, rt, &item, b))?;
        errors.push(health::health_error(health::diagnose(b, &f), b, &f, &now));
    }
    store.write(|tx| {
        let Some(mut item) = item::load(tx, item_id)? else {
            return Ok(());
        };
        let before: Vec<health::HealthError> = serde_json::from_value(Value::Array(
            item.properties.health_errors.clone(),
        ))
        .map_err(|e| ArmError::internal(format!("stored health errors of {item_id}: {e}")))?;
        let after = health::carry_over(&before, errors.clone());
        if before == after {
            return Ok(());
        }
        let level = if after.iter().any(|e| e.is_error()) {
            "Critical"
        } else if after.is_empty() {
            "Normal"
        } else {
            "Warning"
        };
        item.properties.health_errors = after
            .iter()
            .map(|e| serde_json::to_value(e).map_err(|e| ArmError::internal(e.to_string())))
            .collect::<Result<_, _>>()?;
        item.properties.replication_health = level.to_string();
        item.save(tx)
    })
}

/// What the platform knows about a failed connection of `item`'s agent.
fn facts(
    r: &impl Reader,
    rt: &Runtime,
    item: &ReplicationItem,
    b: &Blocked,
) -> Result<health::Facts, ArmError> {
    let side = item.side();
    let vm_id = item.vm_on(side);
    let vnet_id = match vm_alias(r, item) {
        Ok(a) => aliases::lookup(r, a)?
            .map(|a| a.vnet_id)
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let vault_id = item.vault_id().to_string();
    let cache_id = item.cache_account_id(side).to_string();
    let approved = |target: &str, group: &str| -> Result<bool, ArmError> {
        Ok(recoverite_privatelink::of_target(r, target)?
            .iter()
            .any(|c| {
                c.carries_traffic() && c.group_ids.iter().any(|g| g.eq_ignore_ascii_case(group))
            }))
    };
    let private_endpoint = match b.endpoint.as_str() {
        agent::VAULT => approved(&vault_id, "AzureSiteRecovery")?,
        agent::CACHE => approved(&cache_id, "blob")?,
        _ => false,
    };
    let verdict = match (b.flow, rt.explain.get()) {
        (Some((from, to)), Some(e)) if b.hop == Hop::Network => e.explain(from, to),
        _ => None,
    };
    let mut roles = None;
    if matches!(&b.hop, Hop::Http(403, c) if c == "AuthorizationPermissionMismatch") {
        let vault = recoverite_rs_core::vault_record::load(r, &vault_id)?;
        let account = recoverite_rp_storage::account::load(r, &cache_id)?;
        if let (Some(pid), Some(acct), Some(authz)) = (
            vault.as_ref().and_then(|v| v.principal_id()),
            account.as_ref(),
            rt.authz.get(),
        ) {
            let missing = recoverite_rp_storage::cache::missing_roles(&**authz, pid, acct)?;
            roles = Some(health::RolesGap {
                principal: pid.to_string(),
                account: acct.name.clone(),
                roles: missing.iter().map(|m| m.to_string()).collect(),
            });
        }
    }
    Ok(health::Facts {
        vnet_id,
        private_endpoint,
        verdict,
        roles,
        target_region: item.target_location(side).to_string(),
        source_region: item.source_location(side).to_string(),
        vm_id: vm_id.to_string(),
        cache_id,
    })
}

/// Items replicating now.
pub fn replicating(store: &Store) -> Result<Vec<ReplicationItem>, ArmError> {
    store.view(|r| {
        Ok(item::list(r, "")?
            .into_iter()
            .filter(ReplicationItem::is_replicating)
            .collect())
    })
}

/// The replicating item whose agent runs on `vm_id` now (its active side's VM).
pub fn item_of_vm(store: &Store, vm_id: &str) -> Result<Option<ReplicationItem>, ArmError> {
    Ok(replicating(store)?.into_iter().find(|i| {
        let active = i.vm_on(i.side());
        active.eq_ignore_ascii_case(vm_id)
    }))
}

/// What an external agent (`recoverite agent --vm ID`) needs for one cycle;
/// asking is its check-in, so the built-in agent stands aside.
pub fn external_placement(
    store: &Store,
    rt: &Runtime,
    vm_id: &str,
    who: &str,
) -> Result<Value, ArmError> {
    let item = item_of_vm(store, vm_id)?.ok_or_else(|| {
        ArmError::new(404, "NotFound", format!("No replicating protected item runs on VM '{vm_id}'; enable replication for it first."))
    })?;
    let p = store
        .view(|r| Ok::<_, ArmError>(placement(r, rt, &item)))?
        .map_err(|b| ArmError::conflict("AgentCannotRun", b.reason))?;
    let peers = match crate::groups::group_of(&item) {
        Some(g) => store.view(|r| {
            Ok::<_, ArmError>(
                crate::groups::members(r, item.vault_id(), g)?
                    .iter()
                    .filter(|m| m.id.as_str() != item.id.as_str())
                    .filter_map(|m| vm_alias(r, m).ok().map(|a| serde_json::json!({"name": m.properties.friendly_name.as_str(), "alias": a.to_string()})))
                    .collect::<Vec<_>>(),
            )
        })?,
        None => Vec::new(),
    };
    let eid = item.engine_id().to_string();
    rt.external_check_in(&eid, who);
    Ok(json!({
        "itemId": item.id, "engineId": eid, "vmAlias": p.vm_alias.to_string(), "dnsServer": p.dns_server.to_string(),
        "vaultId": p.vault_id, "vaultFqdn": p.vault_fqdn, "cacheHost": p.cache_host, "itemPrefix": p.item_prefix,
        "storageToken": p.storage_token, "proxy": p.proxy, "peers": peers,
        "tenantId": rt.services.get().map(|(t, _)| t.clone()),
        "monitoringHost": p.services.as_ref().map(|s| s.monitoring_host.clone()),
    }))
}

/// An external agent's report after a cycle: heard from (points go on), or
/// blocked (the item's health says where and why).
pub fn external_report(
    store: &Store,
    rt: &Runtime,
    item_id: &str,
    who: &str,
    blocked: Option<Blocked>,
) -> Result<(), ArmError> {
    let item = store.view(|r| item::load(r, item_id)?.ok_or_else(|| not_found(item_id)))?;
    let eid = item.engine_id().to_string();
    rt.external_check_in(&eid, who);
    match blocked {
        None => {
            rt.heard_from(&eid);
            rt.monitoring_result(&eid, None);
            set_health(store, rt, item_id, None)
        }
        // Monitoring is the last step: the changes went through.
        Some(b) if b.endpoint == agent::MONITORING => {
            rt.heard_from(&eid);
            rt.monitoring_result(&eid, Some(b));
            set_health(store, rt, item_id, None)
        }
        Some(b) => set_health(store, rt, item_id, Some(&b)),
    }
}
