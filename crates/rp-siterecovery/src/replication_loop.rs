//! The replication service's schedule: crash-consistent points at the
//! configured cadence, app-consistent ones at the policy's frequency, and
//! pruning to the policy's retention — all on the emulator clock.

use serde_json::Value;

use recoverite_arm::{resource, time, ArmError};
use recoverite_replication::{Engine, PointKind, RecoveryPoint};

use crate::fabrics::found;
use crate::policies;
use crate::protected_items::{engine_id, io, point_doc, str_of, ITEM_TYPE};
use crate::runtime::{self, Runtime};

/// `Latest`: everything waiting in the cache is processed first, then all
/// the service has received becomes a point (lowest RPO).
pub fn latest_point(
    engine: &Engine,
    rt: &Runtime,
    item: &Value,
) -> Result<RecoveryPoint, ArmError> {
    runtime::drain(engine, rt, item)?;
    engine
        .seal(
            &engine_id(item),
            PointKind::CrashConsistent,
            &time::now_string(),
        )
        .map_err(io)
}

/// The service's cycle for every replicating item: apply what arrived in
/// the cache; seal a crash-consistent point when `crash_every` has passed
/// since the newest, app-consistent when the policy's frequency has; prune
/// to the policy's retention.
pub fn tick(
    store: &recoverite_store::Store,
    engine: &Engine,
    rt: &Runtime,
    crash_every: ::time::Duration,
) -> Result<usize, ArmError> {
    let items = store.view(|r| {
        resource::list_of_type(r, "", ITEM_TYPE).map(|v| {
            v.into_iter()
                .filter(|i| i["properties"]["protectionState"] == "Protected")
                .map(|i| {
                    let pol = resource::get(r, str_of(&i["properties"], "policyId"))
                        .ok()
                        .flatten()
                        .and_then(|p| policies::A2aSettings::from_doc(&p));
                    (i, pol)
                })
                .collect::<Vec<_>>()
        })
    })?;
    let now = time::now();
    let mut taken = 0;
    for (item, policy) in items {
        let eid = engine_id(&item);
        if let Err(e) = runtime::drain(engine, rt, &item) {
            tracing_warn(&eid, &e);
        }
        let Ok(m) = engine.manifest(&eid) else {
            continue;
        };
        let age = |t: Option<&String>| t.and_then(|s| time::parse(s)).map(|t| now - t);
        let newest = age(m.points.last().map(|p| &p.time).or(Some(&m.base_time)));
        if newest.is_some_and(|a| a < crash_every) {
            continue;
        }
        let app_every = policy
            .as_ref()
            .map(|p| p.app_consistent_frequency)
            .unwrap_or(policies::DEFAULT_APP_CONSISTENT_MINUTES);
        let last_app = age(m
            .points
            .iter()
            .rev()
            .find(|p| p.kind == PointKind::AppConsistent)
            .map(|p| &p.time)
            .or(Some(&m.base_time)));
        let kind = if app_every > 0
            && last_app.is_none_or(|a| a >= ::time::Duration::minutes(app_every))
        {
            PointKind::AppConsistent
        } else {
            PointKind::CrashConsistent
        };
        engine.seal(&eid, kind, &time::format(now)).map_err(io)?;
        taken += 1;
        let keep = policy
            .map(|p| p.recovery_point_history)
            .unwrap_or(policies::DEFAULT_RETENTION_MINUTES);
        engine
            .prune(&eid, &time::format(now - ::time::Duration::minutes(keep)))
            .map_err(io)?;
    }
    Ok(taken)
}

fn tracing_warn(item: &str, e: &ArmError) {
    eprintln!("replication service: item {item}: {}", e.body.message);
}

/// Takes a point for one item now (the admin API's "sync now"): the agent
/// ships what changed (through the network, as always), the service applies
/// it and seals the point (`app`: the agent marked a quiesce point).
pub fn take_point_now(
    store: &recoverite_store::Store,
    engine: &Engine,
    rt: &Runtime,
    item_id: &str,
    app: bool,
) -> Result<Value, ArmError> {
    let item = store.view(|r| found(r, item_id, "replication protected item"))?;
    if item["properties"]["protectionState"] != "Protected" {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            "Only a replicating item takes recovery points.",
        ));
    }
    let h = tokio::runtime::Handle::try_current()
        .map_err(|_| ArmError::internal("no network runtime for the agent"))?;
    if let Err(b) = h.block_on(runtime::agent_cycle(store, engine, rt, &item)) {
        let _ = runtime::set_health(store, item_id, Some(&b));
        return Err(ArmError::conflict(
            "ReplicationBlocked",
            format!(
                "The agent could not ship the VM's changes: the {} ({}) is unreachable: {}",
                b.endpoint, b.fqdn, b.reason
            ),
        ));
    }
    let _ = runtime::set_health(store, item_id, None);
    let p = latest_point(engine, rt, &item)?;
    let p = if app {
        // The agent's quiesce point: the point just sealed is app-consistent.
        engine
            .mark_app_consistent(&engine_id(&item), p.seq)
            .map_err(io)?
    } else {
        p
    };
    Ok(point_doc(&item, &p))
}
