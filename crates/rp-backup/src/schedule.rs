//! What happens on the emulator clock: scheduled backups from each item's
//! policy, recovery points pruned when they expire, snapshot-tier copies
//! dropped when their instant-restore days end, and soft-deleted items
//! purged after their 14 days.

use ::time::{Duration, OffsetDateTime, Time, Weekday};

use recoverite_arm::{resource, time, ArmError};
use recoverite_store::{Reader, Store, Table};

use crate::points::{self, PointData};
use recoverite_rs_core::backup_item::{self as core_item, BackupOp, ProtectedItem};

use crate::policy_model::Schedule;
use crate::{policy, BackupProvider};

/// When each item's schedule last ran (or was first seen: no backfill).
const LAST_RUN: Table = Table("backup_schedule");
/// The tenant's Backup items, so a tick reads them by key instead of
/// scanning every resource (entries whose item is gone are dropped).
const ITEMS: Table = Table("backup_items");

fn time_of_day(rfc3339: &str) -> Option<Time> {
    time::parse(rfc3339).map(|t| t.time())
}

fn weekday(name: &str) -> Option<Weekday> {
    use Weekday::*;
    [
        Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
    ]
    .into_iter()
    .find(|d| format!("{d:?}").eq_ignore_ascii_case(name))
}

/// The latest slot of `schedule` at or before `now` (UTC), if any: daily
/// at the run time; weekly at the run time on the run days; hourly every
/// `interval` hours from the window's start, within the window.
pub fn latest_slot(schedule: &Schedule, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let times: Vec<Time> = schedule
        .run_times()
        .iter()
        .filter_map(|t| time_of_day(t))
        .collect();
    match schedule.frequency() {
        // Every run time counts (a MARS policy has up to three a day).
        "Daily" => times
            .iter()
            .map(|at| {
                let today = now.replace_time(*at);
                if today <= now {
                    today
                } else {
                    today - Duration::days(1)
                }
            })
            .max(),
        "Weekly" => {
            let at = *times.first()?;
            let days: Vec<Weekday> = schedule
                .run_days()
                .iter()
                .filter_map(|d| weekday(d))
                .collect();
            (0..8)
                .map(|back| now.replace_time(at) - Duration::days(back))
                .find(|t| *t <= now && days.contains(&t.weekday()))
        }
        "Hourly" => {
            let h = schedule.hourly()?;
            let interval = Some(h.interval).filter(|i| *i > 0)?;
            let window = h.schedule_window_duration;
            let start = h
                .schedule_window_start_time
                .as_deref()
                .and_then(time_of_day)?;
            // The window opened today or yesterday; the last slot in it at or before now.
            for back in 0..2 {
                let open = now.replace_time(start) - Duration::days(back);
                if open > now {
                    continue;
                }
                let elapsed = (now - open).whole_hours();
                let last = (elapsed / interval) * interval;
                if last < window {
                    return Some(open + Duration::hours(last));
                }
                return Some(open + Duration::hours(((window - 1) / interval) * interval));
            }
            None
        }
        _ => None,
    }
}

/// A newly protected item's schedule starts with the first slot after now.
pub fn start(tx: &mut recoverite_store::WriteTx, item_id: &str) -> Result<(), ArmError> {
    let k = recoverite_arm::id::key(item_id);
    tx.put_json(LAST_RUN, &k, &time::now_string())?;
    tx.put_json(ITEMS, &k, &item_id.to_string())?;
    Ok(())
}

/// Whether a slot is due: newer than the last run.
pub fn due(slot: Option<OffsetDateTime>, last: Option<OffsetDateTime>) -> bool {
    matches!((slot, last), (Some(s), Some(l)) if s > l)
}

/// One pass over every Backup item of the tenant.
pub fn tick(store: &Store, bp: &BackupProvider) -> Result<(), ArmError> {
    // Backups accepted before a restart run again first.
    crate::vm_backup::resume(store, bp)?;
    // Restores cut short by a restart end Failed.
    crate::restore_job::fail_interrupted(store)?;
    crate::crr::fail_interrupted(store)?;
    let now = time::now();
    let ids = store.read(|r| r.scan_json::<String>(ITEMS, ""))?;
    let mut items = Vec::new();
    for (k, id) in ids {
        match store.view(|r| core_item::load(r, &id))? {
            Some(d) => items.push(d),
            // Gone (deleted, or its resource group was): forget it.
            _ => {
                store.write(|tx| {
                    tx.delete(ITEMS, &k)?;
                    tx.delete(LAST_RUN, &k)?;
                    Ok::<_, ArmError>(())
                })?;
            }
        }
    }
    for item in items {
        if let Err(e) = tick_item(store, bp, &item, now) {
            // One item's trouble never stops the others.
            tracing::warn!(item = %item.id, err = %e.body.message, "backup schedule");
        }
    }
    crate::ilr::expire(store, bp)?;
    crate::crr::replicate(store, bp)
}

fn tick_item(
    store: &Store,
    bp: &BackupProvider,
    item: &ProtectedItem,
    now: OffsetDateTime,
) -> Result<(), ArmError> {
    let rid = item.id.clone();
    let vid = item.properties.vault_id.clone();
    // Soft-deleted items go once their 14 days are over.
    if item.properties.is_scheduled_for_deferred_delete {
        if item.purge_due(now) {
            let gone = store.write(|tx| {
                let gone = points::forget_points(tx, &rid)?;
                resource::delete_tree(tx, &rid)?;
                tx.delete(LAST_RUN, &recoverite_arm::id::key(&rid))?;
                Ok::<_, ArmError>(gone)
            })?;
            points::free(bp, &gone);
        }
        return Ok(());
    }
    prune(store, bp, &rid, now)?;
    // Only items the state machine lets back up are backed up on schedule.
    if item.state().check(BackupOp::Backup).is_err() {
        return Ok(());
    }
    let Some(pol) = store.view(|r| policy::find(r, &vid, &item.properties.policy_id))? else {
        return Ok(());
    };
    let Some(schedule) = pol.schedule() else {
        return Ok(());
    };
    let slot = latest_slot(schedule, now);
    let key = recoverite_arm::id::key(&rid);
    let last = store.read(|r| Ok(r.get_json::<String>(LAST_RUN, &key)))??;
    match last.as_deref().and_then(time::parse) {
        None => {
            // First seen: the schedule starts with the next slot.
            let mark = slot.unwrap_or(now);
            store.write(|tx| tx.put_json(LAST_RUN, &key, &time::format(mark)))?;
        }
        Some(l) if due(slot, Some(l)) => {
            let s = slot.unwrap_or(now);
            store.write(|tx| tx.put_json(LAST_RUN, &key, &time::format(s)))?;
            if item.is_mab() {
                // The agent on the machine backs MARS items up; it asks what is due.
                store.write(|tx| crate::mab::mark_due(tx, &rid, &time::format(s)))?;
            } else {
                crate::vm_backup::take_point(store, bp, &vid, &rid, None, false)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Points past their expiry go (the newest stays while the item is
/// protected); snapshot copies past their instant-restore days go.
fn prune(
    store: &Store,
    bp: &BackupProvider,
    rid: &str,
    now: OffsetDateTime,
) -> Result<(), ArmError> {
    let pts = store.view(|r| crate::recovery_point::of_item(r, rid))?;
    let newest = pts.last().map(|p| p.id.clone());
    let mut expired: Vec<String> = Vec::new();
    let mut snapshots: Vec<String> = Vec::new();
    let mut shown: Vec<String> = Vec::new();
    for p in &pts {
        let pid = p.id.clone();
        if p.expired(now) && Some(&pid) != newest.as_ref() {
            expired.push(pid);
        } else if let Some(d) = store.view(|r| points::point_data(r, &pid))? {
            if time::parse(&d.snapshot_until).is_some_and(|t| t <= now) {
                snapshots.extend(d.disks.iter().map(|x| x.snapshot.clone()));
                if d.restore_point.is_some() {
                    shown.push(pid.clone());
                }
            }
        }
    }
    // The restore points showing them go first, then their bytes.
    if !shown.is_empty() {
        store.write(|tx| {
            for pid in &shown {
                if let Some(mut d) = points::point_data(tx, pid)? {
                    points::forget_snapshot_point(tx, &d)?;
                    d.restore_point = None;
                    points::put_point_data(tx, pid, &d)?;
                }
            }
            Ok::<_, ArmError>(())
        })?;
    }
    for s in snapshots {
        if bp.blocks.image(&s).exists() {
            let _ = bp.blocks.delete(&s);
        }
    }
    if expired.is_empty() {
        return Ok(());
    }
    let gone: Vec<PointData> = store.write(|tx| {
        let mut gone = Vec::new();
        for pid in &expired {
            if let Some(d) = points::point_data(tx, pid)? {
                gone.push(d);
            }
            points::forget_point(tx, pid)?;
        }
        if let Some(mut it) = core_item::load(tx, rid)? {
            let left = crate::recovery_point::of_item(tx, rid)?;
            let oldest = left.first().map(|p| p.time_str().to_string());
            it.set_points(left.len(), oldest);
            it.save(tx)?;
        }
        Ok::<_, ArmError>(gone)
    })?;
    points::free(bp, &gone);
    Ok(())
}

#[cfg(test)]
mod tests {

    fn sched(v: serde_json::Value) -> Schedule {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_daily_schedule_with_several_run_times_uses_the_latest_passed() {
        let sched = &sched(
            serde_json::json!({"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily",
            "scheduleRunTimes": ["2026-01-01T02:00:00Z", "2026-01-01T14:00:00Z"]}),
        );
        let at = |s: &str| time::parse(s).unwrap();
        assert_eq!(
            latest_slot(sched, at("2026-05-05T15:00:00Z")),
            Some(at("2026-05-05T14:00:00Z"))
        );
        assert_eq!(
            latest_slot(sched, at("2026-05-05T10:00:00Z")),
            Some(at("2026-05-05T02:00:00Z"))
        );
        assert_eq!(
            latest_slot(sched, at("2026-05-05T01:00:00Z")),
            Some(at("2026-05-04T14:00:00Z"))
        );
    }

    use super::*;
    use serde_json::json;

    fn at(s: &str) -> OffsetDateTime {
        time::parse(s).unwrap()
    }

    #[test]
    fn daily_and_weekly_slots() {
        let daily = &sched(
            json!({"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily", "scheduleRunTimes": ["2020-01-01T02:30:00Z"]}),
        );
        assert_eq!(
            latest_slot(daily, at("2026-12-01T03:00:00Z")),
            Some(at("2026-12-01T02:30:00Z"))
        );
        assert_eq!(
            latest_slot(daily, at("2026-12-01T02:00:00Z")),
            Some(at("2026-11-30T02:30:00Z"))
        );
        // 2026-12-01 is a Tuesday.
        let weekly = &sched(
            json!({"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Weekly",
                            "scheduleRunTimes": ["2020-01-01T02:30:00Z"], "scheduleRunDays": ["Sunday"]}),
        );
        assert_eq!(
            latest_slot(weekly, at("2026-12-01T03:00:00Z")),
            Some(at("2026-11-29T02:30:00Z"))
        );
    }

    #[test]
    fn hourly_slots_stay_in_their_window() {
        let h = |window: i64| {
            sched(
                json!({"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Hourly",
                                     "hourlySchedule": {"interval": 4, "scheduleWindowStartTime": "2020-01-01T08:00:00Z", "scheduleWindowDuration": window}}),
            )
        };
        assert_eq!(
            latest_slot(&h(24), at("2026-12-01T13:10:00Z")),
            Some(at("2026-12-01T12:00:00Z"))
        );
        assert_eq!(
            latest_slot(&h(24), at("2026-12-01T07:00:00Z")),
            Some(at("2026-11-30T08:00:00Z") + Duration::hours(20))
        );
        // An 8-hour window from 08:00: slots at 08:00 and 12:00 only.
        assert_eq!(
            latest_slot(&h(8), at("2026-12-01T20:00:00Z")),
            Some(at("2026-12-01T12:00:00Z"))
        );
    }

    #[test]
    fn a_slot_is_due_once() {
        let s = Some(at("2026-12-01T02:30:00Z"));
        assert!(due(s, Some(at("2026-11-30T02:30:00Z"))));
        assert!(!due(s, s));
        assert!(!due(None, s));
    }

    #[test]
    fn enhanced_daily_and_weekly_slots_read_their_own_parts() {
        let daily = &sched(
            json!({"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Daily",
            "dailySchedule": {"scheduleRunTimes": ["2020-01-01T22:00:00Z"]}}),
        );
        assert_eq!(
            latest_slot(daily, at("2026-12-01T03:00:00Z")),
            Some(at("2026-11-30T22:00:00Z"))
        );
        // 2026-12-01 is a Tuesday.
        let weekly = &sched(
            json!({"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Weekly",
            "weeklySchedule": {"scheduleRunDays": ["Monday"], "scheduleRunTimes": ["2020-01-01T05:00:00Z"]}}),
        );
        assert_eq!(
            latest_slot(weekly, at("2026-12-01T03:00:00Z")),
            Some(at("2026-11-30T05:00:00Z"))
        );
        let empty = &sched(
            json!({"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Weekly"}),
        );
        assert_eq!(latest_slot(empty, at("2026-12-01T03:00:00Z")), None);
    }
}
