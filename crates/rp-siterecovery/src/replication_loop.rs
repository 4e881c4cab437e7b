//! The replication service's schedule, on the emulator clock: apply what
//! arrived in the cache; seal crash-consistent points at the configured
//! cadence and app-consistent ones at the policy's frequency — for a
//! replication group, one shared point across all its VMs; keep every point
//! of the last two hours, thin older ones to one an hour (app-consistent
//! ones stay), and drop what is past the policy's retention.

use std::collections::BTreeMap;

use serde_json::Value;

use recoverite_arm::{time, ArmError};
use recoverite_replication::{Engine, PointKind, RecoveryPoint};

use crate::groups;
use crate::item::{self, ReplicationItem};
use crate::policies::{self, A2aSettings};
use crate::protected_items::{io, not_found, point_doc};
use crate::runtime::{self, Runtime};

/// Every point of this recent past is kept; older ones are thinned.
pub const KEEP_ALL_MINUTES: i64 = 120;
/// Older crash-consistent points are thinned to one per this many minutes.
pub const THIN_TO_MINUTES: i64 = 60;

/// `Latest`: everything waiting in the cache is processed first, then all
/// the service has received becomes a point (lowest RPO).
pub fn latest_point(
    engine: &Engine,
    rt: &Runtime,
    item: &ReplicationItem,
) -> Result<RecoveryPoint, ArmError> {
    runtime::drain(engine, rt, item)?;
    engine
        .seal(
            item.engine_id(),
            PointKind::CrashConsistent,
            &time::now_string(),
        )
        .map_err(io)
}

/// Items that seal together: a replication group, or a VM on its own.
type Unit = Vec<(ReplicationItem, Option<A2aSettings>)>;

fn units(items: Unit) -> Vec<Unit> {
    let mut grouped: BTreeMap<String, Unit> = BTreeMap::new();
    for (item, pol) in items {
        let key = match groups::group_of(&item) {
            Some(g) => format!(
                "{}|{}",
                item.vault_id().to_ascii_lowercase(),
                g.to_ascii_lowercase()
            ),
            None => item.id.clone(),
        };
        grouped.entry(key).or_default().push((item, pol));
    }
    grouped.into_values().collect()
}

/// What kind of point is due for a unit now, if any (judged on its first VM:
/// a group's VMs always seal together).
fn due(
    engine: &Engine,
    first: &ReplicationItem,
    policy: Option<&A2aSettings>,
    crash_every: ::time::Duration,
    now: ::time::OffsetDateTime,
) -> Option<PointKind> {
    let m = engine.manifest(first.engine_id()).ok()?;
    let age = |t: Option<&String>| t.and_then(|s| time::parse(s)).map(|t| now - t);
    let newest = age(m.points.last().map(|p| &p.time).or(Some(&m.base_time)));
    if newest.is_some_and(|a| a < crash_every) {
        return None;
    }
    let app_every = policy
        .map(|p| p.app_consistent_frequency)
        .unwrap_or(policies::DEFAULT_APP_CONSISTENT_MINUTES);
    let last_app = age(m
        .points
        .iter()
        .rev()
        .find(|p| p.kind == PointKind::AppConsistent)
        .map(|p| &p.time)
        .or(Some(&m.base_time)));
    Some(
        if app_every > 0 && last_app.is_none_or(|a| a >= ::time::Duration::minutes(app_every)) {
            PointKind::AppConsistent
        } else {
            PointKind::CrashConsistent
        },
    )
}

/// Retention for one item: drop what is past the policy's window, thin
/// crash-consistent points older than two hours to one per hour.
fn retain(
    engine: &Engine,
    item: &ReplicationItem,
    policy: Option<&A2aSettings>,
    now: ::time::OffsetDateTime,
) -> Result<(), ArmError> {
    let eid = item.engine_id().to_string();
    let keep = policy
        .map(|p| p.recovery_point_history)
        .unwrap_or(policies::DEFAULT_RETENTION_MINUTES);
    engine
        .prune(&eid, &time::format(now - ::time::Duration::minutes(keep)))
        .map_err(io)?;
    let m = engine.manifest(&eid).map_err(io)?;
    let cutoff = now - ::time::Duration::minutes(KEEP_ALL_MINUTES);
    let mut last_bucket = None;
    let mut drop = Vec::new();
    // Keep the newest point of each hour; the newest point overall is never thinned.
    for p in m.points.iter().rev().skip(1) {
        let Some(t) = time::parse(&p.time) else {
            continue;
        };
        if t >= cutoff {
            continue;
        }
        let bucket = t.unix_timestamp().div_euclid(THIN_TO_MINUTES * 60);
        if p.kind == PointKind::CrashConsistent && last_bucket == Some(bucket) {
            drop.push(p.seq);
        }
        last_bucket = Some(bucket);
    }
    for seq in drop {
        engine.thin(&eid, seq).map_err(io)?;
    }
    Ok(())
}

/// The service's cycle for every replicating item.
pub fn tick(
    store: &recoverite_store::Store,
    engine: &Engine,
    rt: &Runtime,
    crash_every: ::time::Duration,
) -> Result<usize, ArmError> {
    let items = store.view(|r| {
        item::list(r, "").map(|v| {
            v.into_iter()
                .filter(ReplicationItem::is_replicating)
                .map(|i| {
                    let pol = policies::load(r, &i.properties.policy_id)
                        .ok()
                        .flatten()
                        .map(|p| p.settings());
                    (i, pol)
                })
                .collect::<Vec<_>>()
        })
    })?;
    let now = time::now();
    let mut taken = 0;
    for unit in units(items) {
        for (item, _) in &unit {
            if let Err(e) = runtime::drain(engine, rt, item) {
                eprintln!(
                    "replication service: {}: {}",
                    item.id.as_str(),
                    e.body.message
                );
            }
        }
        let Some(kind) = due(engine, &unit[0].0, unit[0].1.as_ref(), crash_every, now) else {
            continue;
        };
        // Points come only from agents heard from since the newest point:
        // a silent (blocked) agent means no new points, and RPO grows.
        let heard = unit.iter().all(|(item, _)| {
            let eid = item.engine_id().to_string();
            let newest = engine.manifest(&eid).ok().and_then(|m| {
                time::parse(
                    m.points
                        .last()
                        .map(|p| p.time.clone())
                        .unwrap_or(m.base_time)
                        .as_str(),
                )
            });
            // Heard since the newest point, and recently (within one cadence).
            let since = newest.map_or(now - crash_every, |n| n.max(now - crash_every));
            rt.last_heartbeat(&eid).is_some_and(|h| h >= since)
        });
        if !heard {
            continue;
        }
        // One time for the whole unit: a group's VMs share the point.
        let at = time::format(now);
        for (item, policy) in &unit {
            // One item's trouble must not stop the others' points.
            let sealed = engine.seal(item.engine_id(), kind, &at).map_err(io);
            if let Err(e) = sealed.and_then(|_| retain(engine, item, policy.as_ref(), now)) {
                eprintln!(
                    "replication service: {}: {}",
                    item.id.as_str(),
                    e.body.message
                );
                continue;
            }
            taken += 1;
        }
    }
    Ok(taken)
}

/// Takes a point now (the admin API's "sync now"): the agents ship what
/// changed (through the network, as always), the service applies it and
/// seals the point (`app`: the agents marked a quiesce point). For a VM in a
/// replication group, every VM of the group gets the same point.
pub fn take_point_now(
    store: &recoverite_store::Store,
    engine: &Engine,
    rt: &Runtime,
    item_id: &str,
    app: bool,
) -> Result<Value, ArmError> {
    let item = store.view(|r| item::load(r, item_id)?.ok_or_else(|| not_found(item_id)))?;
    if !item.is_replicating() {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            "Only a replicating item takes recovery points.",
        ));
    }
    let unit = match groups::group_of(&item) {
        Some(g) => store.view(|r| groups::members(r, groups::vault_of_item(item_id), g))?,
        None => vec![item.clone()],
    };
    let h = tokio::runtime::Handle::try_current()
        .map_err(|_| ArmError::internal("no network runtime for the agent"))?;
    for member in &unit {
        let mid = member.id.as_str().to_string();
        if rt.external_agent(member.engine_id()).is_some() {
            continue; // its own process ships; the point takes what it sent
        }
        if let Err(b) = h.block_on(runtime::agent_cycle(store, engine, rt, member, None)) {
            let _ = runtime::set_health(store, rt, &mid, Some(&b));
            return Err(ArmError::conflict(
                "ReplicationBlocked",
                format!("The agent of '{}' could not ship the VM's changes: the {} ({}) is unreachable: {}", member.name.as_str(), b.endpoint, b.fqdn, b.reason),
            ));
        }
        let _ = runtime::set_health(store, rt, &mid, None);
    }
    let kind = if app {
        PointKind::AppConsistent
    } else {
        PointKind::CrashConsistent
    };
    let at = time::now_string();
    let mut mine = None;
    for member in &unit {
        runtime::drain(engine, rt, member)?;
        let p = engine.seal(member.engine_id(), kind, &at).map_err(io)?;
        if member.id.as_str().eq_ignore_ascii_case(item_id) {
            mine = Some(p);
        }
    }
    let p = mine.ok_or_else(|| ArmError::internal("the item left its group meanwhile"))?;
    // recoverite's own reply adds what the point cost to store.
    let mut doc = point_doc(&item, &p);
    doc["changedBytes"] = serde_json::json!(p.changed_bytes);
    Ok(doc)
}
