//! The replication service's schedule: crash-consistent points at the
//! configured cadence, app-consistent ones at the policy's frequency, and
//! pruning to the policy's retention — all on the emulator clock.

use serde_json::Value;

use recoverite_arm::{resource, time, ArmError};
use recoverite_replication::{Engine, PointKind, RecoveryPoint};

use crate::fabrics::found;
use crate::policies;
use crate::protected_items::{engine_id, io, point_doc, str_of, ITEM_TYPE};

/// `Latest`: everything the service has received becomes a point now.
pub fn latest_point(engine: &Engine, eid: &str) -> Result<RecoveryPoint, ArmError> {
    engine
        .take_point(eid, PointKind::CrashConsistent, &time::now_string())
        .map_err(io)
}

/// One replication cycle for every replicating item: a crash-consistent point
/// when `crash_every` has passed since the newest, app-consistent when the
/// policy's frequency has, and pruning to the policy's retention.
pub fn tick(
    store: &recoverite_store::Store,
    engine: &Engine,
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
        engine
            .take_point(&eid, kind, &time::format(now))
            .map_err(io)?;
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

/// Takes a point for one item now (the admin API's "sync now").
pub fn take_point_now(
    store: &recoverite_store::Store,
    engine: &Engine,
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
    let kind = if app {
        PointKind::AppConsistent
    } else {
        PointKind::CrashConsistent
    };
    let p = engine
        .take_point(&engine_id(&item), kind, &time::now_string())
        .map_err(io)?;
    Ok(point_doc(&item, &p))
}
