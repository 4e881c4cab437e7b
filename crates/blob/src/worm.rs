//! What a container holds besides its blobs: legal holds, its time-based
//! immutability policy and its lease. Kept in the container's marker object
//! (so both planes see the same state) and enforced on the data plane: an
//! immutable blob cannot be overwritten or deleted, and a container that
//! still protects blobs, or is leased, cannot be deleted without its lease.
//!
//! Each rule is a pure function of the state and the time, with the
//! sentence of Azure's documentation it implements.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::BlobError;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerState {
    /// Legal hold tags with when each was set.
    #[serde(default)]
    pub legal_hold: Vec<(String, String)>,
    #[serde(default)]
    pub allow_protected_append_writes_all: bool,
    #[serde(default)]
    pub policy: Option<Policy>,
    #[serde(default)]
    pub lease: Option<Lease>,
    /// Version-level immutability (after `migrate`): when it was enabled.
    #[serde(default)]
    pub version_level_since: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Policy {
    pub days: u32,
    pub locked: bool,
    pub allow_protected_append_writes: bool,
    pub etag: String,
    /// How often a locked policy was extended.
    pub extensions: u32,
    /// (update kind, period, time) — `updateHistory` in ARM's answer.
    pub history: Vec<(String, u32, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lease {
    pub id: String,
    /// Seconds, or -1 for infinite.
    pub duration: i64,
    /// Unix seconds when a finite lease lapses.
    pub expires: Option<i64>,
    /// Unix seconds when a breaking lease is broken.
    pub breaks_at: Option<i64>,
}

/// The lease as Azure reports it: `leaseState`, `leaseStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    Available,
    Leased,
    Expired,
    Breaking,
    Broken,
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Available => "Available",
            LeaseState::Leased => "Leased",
            LeaseState::Expired => "Expired",
            LeaseState::Breaking => "Breaking",
            LeaseState::Broken => "Broken",
        }
    }
    /// `leaseStatus`: Locked while someone holds (or is breaking) the lease.
    pub fn status(self) -> &'static str {
        match self {
            LeaseState::Leased | LeaseState::Breaking => "Locked",
            _ => "Unlocked",
        }
    }
}

pub fn lease_state(lease: Option<&Lease>, now: OffsetDateTime) -> LeaseState {
    let t = now.unix_timestamp();
    match lease {
        None => LeaseState::Available,
        Some(l) => match (l.breaks_at, l.expires) {
            (Some(b), _) if t < b => LeaseState::Breaking,
            (Some(_), _) => LeaseState::Broken,
            (None, Some(e)) if t >= e => LeaseState::Expired,
            _ => LeaseState::Leased,
        },
    }
}

const MAX_DAYS: u32 = 146_000;

fn conflict(code: &str, msg: impl Into<String>) -> BlobError {
    BlobError::new(409, code, msg)
}

fn invalid(msg: impl Into<String>) -> BlobError {
    BlobError::new(400, "InvalidParameter", msg)
}

impl ContainerState {
    pub fn has_legal_hold(&self) -> bool {
        !self.legal_hold.is_empty()
    }

    /// "A blob … is immutable for the retention interval … measured from the
    /// blob's creation time" (a blob under a policy is never rewritten, so
    /// its last write is its creation).
    pub fn protects_until(&self, blob_written: OffsetDateTime) -> Option<OffsetDateTime> {
        self.policy
            .as_ref()
            .filter(|p| p.days > 0)
            .map(|p| blob_written + Duration::days(p.days as i64))
    }

    /// "Legal hold … blobs can be created and read, but not modified or
    /// deleted"; "time-based retention … blobs can be created and read, but
    /// not modified or deleted" until the interval has passed.
    pub fn check_blob_change(
        &self,
        blob_written: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(), BlobError> {
        let Some(written) = blob_written else {
            return Ok(()); // a new blob may always be created
        };
        if self.has_legal_hold() {
            return Err(conflict(
                "BlobImmutableDueToLegalHold",
                "This operation is not permitted as the blob is immutable due to one or more legal holds. Clear the container's legal hold tags first.",
            ));
        }
        if let Some(until) = self.protects_until(written) {
            if now < until {
                return Err(conflict(
                    "BlobImmutableDueToPolicy",
                    format!("This operation is not permitted as the blob is immutable due to a policy: it is protected until {until}."),
                ));
            }
        }
        Ok(())
    }

    /// A leased container is deleted only with its lease id; one with a legal
    /// hold, or still protecting blobs under its policy, not at all
    /// ("delete the container after deleting all expired blobs inside").
    pub fn check_container_delete(
        &self,
        lease_id: Option<&str>,
        protected_blobs: usize,
        now: OffsetDateTime,
    ) -> Result<(), BlobError> {
        if self.has_legal_hold() {
            return Err(conflict(
                "ContainerOperationFailure",
                "The container has a legal hold and cannot be deleted; clear its legal hold tags first.",
            ));
        }
        if protected_blobs > 0 {
            return Err(conflict(
                "ContainerOperationFailure",
                format!("The container's immutability policy still protects {protected_blobs} blob(s); it can be deleted once they are past their retention and deleted."),
            ));
        }
        let held = matches!(
            lease_state(self.lease.as_ref(), now),
            LeaseState::Leased | LeaseState::Breaking
        );
        match (held, lease_id, self.lease.as_ref()) {
            (true, None, _) => Err(BlobError::new(
                412,
                "LeaseIdMissing",
                "There is currently a lease on the container and no lease ID was specified in the request.",
            )),
            (true, Some(given), Some(l)) if !given.eq_ignore_ascii_case(&l.id) => {
                Err(BlobError::new(
                    412,
                    "LeaseIdMismatchWithContainerOperation",
                    "The lease ID specified did not match the lease ID for the container.",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// "Each legal hold tag … 3 to 23 alphanumeric characters"; "up to 10 legal
/// hold tags" per container. Tags are kept lower-case, as Azure shows them.
pub fn check_tags(tags: &[String]) -> Result<Vec<String>, BlobError> {
    if tags.is_empty() {
        return Err(invalid("Give at least one legal hold tag."));
    }
    let mut out = Vec::new();
    for t in tags {
        if !(3..=23).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(format!(
                "Legal hold tag '{t}' is not valid: 3 to 23 letters and digits."
            )));
        }
        let t = t.to_ascii_lowercase();
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Adds tags (at most ten in all).
pub fn set_legal_hold(
    s: &mut ContainerState,
    tags: &[String],
    now: OffsetDateTime,
) -> Result<(), BlobError> {
    let when = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    for t in check_tags(tags)? {
        if !s.legal_hold.iter().any(|(x, _)| *x == t) {
            s.legal_hold.push((t, when.clone()));
        }
    }
    if s.legal_hold.len() > 10 {
        return Err(invalid("A container takes at most 10 legal hold tags."));
    }
    Ok(())
}

/// "Clearing the same or non-existent tag results in an idempotent
/// operation. ClearLegalHold clears out only the specified tags."
pub fn clear_legal_hold(s: &mut ContainerState, tags: &[String]) -> Result<(), BlobError> {
    let gone = check_tags(tags)?;
    s.legal_hold.retain(|(t, _)| !gone.contains(t));
    Ok(())
}

fn check_days(days: u32) -> Result<(), BlobError> {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(invalid(format!(
            "immutabilityPeriodSinceCreationInDays must be from 1 to {MAX_DAYS}."
        )));
    }
    Ok(())
}

fn check_etag(p: &Policy, if_match: Option<&str>, required: bool) -> Result<(), BlobError> {
    match if_match {
        None if required => Err(BlobError::new(
            400,
            "MissingRequiredHeader",
            "This operation needs the policy's ETag in If-Match; get the immutability policy for it.",
        )),
        Some(m) if m != "*" && m.trim_matches('"') != p.etag.trim_matches('"') => {
            Err(BlobError::new(
                412,
                "ConditionNotMet",
                "The If-Match ETag is not the immutability policy's current ETag; get the policy again.",
            ))
        }
        _ => Ok(()),
    }
}

fn new_etag(now: OffsetDateTime) -> String {
    format!("\"{:x}\"", now.unix_timestamp_nanos() as u64)
}

fn stamp(now: OffsetDateTime) -> String {
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// "Creates or updates an unlocked immutability policy. ETag in If-Match is
/// honored if given but not required." A locked policy is only extended.
pub fn put_policy(
    s: &mut ContainerState,
    days: u32,
    allow_append: bool,
    if_match: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), BlobError> {
    check_days(days)?;
    if let Some(p) = &s.policy {
        if p.locked {
            return Err(conflict(
                "ImmutabilityPolicyLocked",
                "The immutability policy is locked: the only change it takes is an extension (extendImmutabilityPolicy).",
            ));
        }
        check_etag(p, if_match, false)?;
    }
    let mut history = s.policy.take().map(|p| p.history).unwrap_or_default();
    history.push(("put".into(), days, stamp(now)));
    s.policy = Some(Policy {
        days,
        locked: false,
        allow_protected_append_writes: allow_append,
        etag: new_etag(now),
        extensions: 0,
        history,
    });
    Ok(())
}

/// "Aborts an unlocked immutability policy … ETag in If-Match is required
/// … Deleting a locked immutability policy is not allowed."
pub fn delete_policy(s: &mut ContainerState, if_match: Option<&str>) -> Result<(), BlobError> {
    let Some(p) = &s.policy else {
        return Ok(());
    };
    check_etag(p, if_match, true)?;
    if p.locked {
        return Err(conflict(
            "ImmutabilityPolicyLocked",
            "A locked immutability policy cannot be deleted; the container can be deleted once every blob in it is past its retention and deleted.",
        ));
    }
    s.policy = None;
    Ok(())
}

/// Locking needs the policy's ETag in If-Match.
pub fn lock_policy(
    s: &mut ContainerState,
    if_match: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), BlobError> {
    let p = s.policy.as_mut().ok_or_else(|| {
        conflict(
            "ImmutabilityPolicyNotFound",
            "The container has no immutability policy to lock; create one first.",
        )
    })?;
    check_etag(p, if_match, true)?;
    if !p.locked {
        p.locked = true;
        p.etag = new_etag(now);
        p.history.push(("lock".into(), p.days, stamp(now)));
    }
    Ok(())
}

/// "Extends the immutabilityPeriodSinceCreationInDays of a locked
/// immutabilityPolicy. The only action allowed on a Locked policy" — the
/// period only grows, at most five times.
pub fn extend_policy(
    s: &mut ContainerState,
    days: u32,
    if_match: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), BlobError> {
    check_days(days)?;
    let p = s.policy.as_mut().ok_or_else(|| {
        conflict(
            "ImmutabilityPolicyNotFound",
            "The container has no immutability policy to extend.",
        )
    })?;
    check_etag(p, if_match, true)?;
    if !p.locked {
        return Err(conflict(
            "ImmutabilityPolicyNotLocked",
            "Only a locked immutability policy is extended; change an unlocked one with createOrUpdateImmutabilityPolicy.",
        ));
    }
    if days <= p.days {
        return Err(invalid(format!(
            "A locked policy's period only grows: give more than {} days.",
            p.days
        )));
    }
    if p.extensions >= 5 {
        return Err(conflict(
            "ImmutabilityPolicyExtensionLimitReached",
            "A locked immutability policy can be extended at most 5 times.",
        ));
    }
    p.days = days;
    p.extensions += 1;
    p.etag = new_etag(now);
    p.history.push(("extend".into(), days, stamp(now)));
    Ok(())
}

/// The lease request of ARM's `lease` action.
pub struct LeaseRequest<'a> {
    pub action: &'a str,
    pub lease_id: Option<&'a str>,
    pub proposed_id: Option<&'a str>,
    pub duration: Option<i64>,
    pub break_period: Option<i64>,
}

/// Applies a lease action; returns (lease id, seconds left) for the answer.
pub fn lease(
    s: &mut ContainerState,
    r: &LeaseRequest,
    now: OffsetDateTime,
) -> Result<(Option<String>, Option<i64>), BlobError> {
    let t = now.unix_timestamp();
    let state = lease_state(s.lease.as_ref(), now);
    let current = s.lease.clone();
    let same = |given: Option<&str>| matches!((given, &current), (Some(g), Some(l)) if g.eq_ignore_ascii_case(&l.id));
    let need_id = || -> Result<&str, BlobError> {
        r.lease_id
            .ok_or_else(|| invalid("leaseId is required for this lease action."))
    };
    match r.action.to_ascii_lowercase().as_str() {
        "acquire" => {
            let d = r.duration.unwrap_or(-1);
            if d != -1 && !(15..=60).contains(&d) {
                return Err(invalid(
                    "leaseDuration is -1 (infinite) or from 15 to 60 seconds.",
                ));
            }
            match state {
                LeaseState::Leased if !same(r.proposed_id) => {
                    return Err(conflict(
                        "LeaseAlreadyPresent",
                        "There is already a lease present.",
                    ))
                }
                LeaseState::Breaking => {
                    return Err(conflict(
                        "LeaseIsBreakingAndCannotBeAcquired",
                        "There is already a breaking lease present; wait until it is broken.",
                    ))
                }
                _ => {}
            }
            let id = r
                .proposed_id
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            s.lease = Some(Lease {
                id: id.clone(),
                duration: d,
                expires: (d > 0).then_some(t + d),
                breaks_at: None,
            });
            Ok((Some(id), None))
        }
        "renew" => {
            let id = need_id()?;
            if !same(Some(id)) || matches!(state, LeaseState::Breaking | LeaseState::Broken) {
                return Err(conflict(
                    "LeaseIdMismatchWithLeaseOperation",
                    "The lease ID specified did not match the container's lease, or the lease is broken.",
                ));
            }
            let l = held(s)?;
            l.expires = (l.duration > 0).then_some(t + l.duration);
            Ok((Some(l.id.clone()), None))
        }
        "change" => {
            let id = need_id()?;
            let new = r
                .proposed_id
                .ok_or_else(|| invalid("proposedLeaseId is required to change a lease."))?;
            if !same(Some(id)) || state != LeaseState::Leased {
                return Err(conflict(
                    "LeaseIdMismatchWithLeaseOperation",
                    "The lease ID specified did not match the container's lease.",
                ));
            }
            let l = held(s)?;
            l.id = new.to_string();
            Ok((Some(l.id.clone()), None))
        }
        "release" => {
            let id = need_id()?;
            if !same(Some(id)) {
                return Err(conflict(
                    "LeaseIdMismatchWithLeaseOperation",
                    "The lease ID specified did not match the container's lease.",
                ));
            }
            s.lease = None;
            Ok((None, None))
        }
        "break" => {
            if matches!(state, LeaseState::Available | LeaseState::Expired) {
                return Err(conflict(
                    "LeaseNotPresentWithLeaseOperation",
                    "There is currently no lease on the container.",
                ));
            }
            let l = held(s)?;
            let left = match (l.breaks_at, l.expires) {
                (Some(b), _) => (b - t).max(0),
                (None, Some(e)) => r.break_period.unwrap_or(e - t).clamp(0, e - t),
                (None, None) => r.break_period.unwrap_or(0).clamp(0, 60),
            };
            if l.breaks_at.is_none() {
                l.breaks_at = Some(t + left);
            }
            Ok((None, Some(left)))
        }
        other => Err(invalid(format!(
            "Lease action '{other}' is not one of Acquire, Renew, Change, Release, Break."
        ))),
    }
}

fn held(s: &mut ContainerState) -> Result<&mut Lease, BlobError> {
    s.lease.as_mut().ok_or_else(|| {
        conflict(
            "LeaseNotPresentWithLeaseOperation",
            "There is currently no lease on the container.",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn legal_hold_freezes_existing_blobs_but_not_new_ones() {
        let mut s = ContainerState::default();
        set_legal_hold(&mut s, &["Case42".into()], at(0)).unwrap();
        assert_eq!(s.legal_hold[0].0, "case42");
        assert!(s.check_blob_change(None, at(1)).is_ok());
        assert_eq!(
            s.check_blob_change(Some(at(0)), at(1)).unwrap_err().code,
            "BlobImmutableDueToLegalHold"
        );
        assert_eq!(
            s.check_container_delete(None, 0, at(1)).unwrap_err().status,
            409
        );
        clear_legal_hold(&mut s, &["case42".into(), "other1".into()]).unwrap();
        assert!(s.check_blob_change(Some(at(0)), at(1)).is_ok());
        assert!(check_tags(&["ab".into()]).is_err());
        assert!(check_tags(&["has-dash".into()]).is_err());
        let many: Vec<String> = (0..11).map(|i| format!("tag{i:03}")).collect();
        assert!(set_legal_hold(&mut s, &many, at(2)).is_err());
    }

    #[test]
    fn a_policy_protects_blobs_for_its_days_since_creation() {
        let mut s = ContainerState::default();
        put_policy(&mut s, 2, false, None, at(0)).unwrap();
        let day = 86_400;
        assert_eq!(
            s.check_blob_change(Some(at(0)), at(day)).unwrap_err().code,
            "BlobImmutableDueToPolicy"
        );
        assert!(s.check_blob_change(Some(at(0)), at(2 * day)).is_ok());
        assert!(put_policy(&mut s, 0, false, None, at(1)).is_err());
        assert!(put_policy(&mut s, 146_001, false, None, at(1)).is_err());
    }

    #[test]
    fn locking_and_extending_need_the_etag_and_only_grow_the_period() {
        let mut s = ContainerState::default();
        put_policy(&mut s, 5, false, None, at(0)).unwrap();
        let etag = s.policy.as_ref().unwrap().etag.clone();
        assert_eq!(lock_policy(&mut s, None, at(1)).unwrap_err().status, 400);
        assert_eq!(
            lock_policy(&mut s, Some("\"nope\""), at(1))
                .unwrap_err()
                .status,
            412
        );
        lock_policy(&mut s, Some(&etag), at(1)).unwrap();
        let etag = s.policy.as_ref().unwrap().etag.clone();
        assert_eq!(
            put_policy(&mut s, 9, false, None, at(2)).unwrap_err().code,
            "ImmutabilityPolicyLocked"
        );
        assert_eq!(
            delete_policy(&mut s, Some(&etag)).unwrap_err().code,
            "ImmutabilityPolicyLocked"
        );
        assert!(extend_policy(&mut s, 4, Some(&etag), at(2)).is_err());
        let mut tag = etag;
        for d in 6..=10 {
            extend_policy(&mut s, d, Some(&tag), at(d as i64)).unwrap();
            tag = s.policy.as_ref().unwrap().etag.clone();
        }
        assert_eq!(
            extend_policy(&mut s, 11, Some(&tag), at(20))
                .unwrap_err()
                .code,
            "ImmutabilityPolicyExtensionLimitReached"
        );
    }

    #[test]
    fn an_unlocked_policy_is_deleted_with_its_etag() {
        let mut s = ContainerState::default();
        put_policy(&mut s, 5, true, None, at(0)).unwrap();
        assert_eq!(delete_policy(&mut s, None).unwrap_err().status, 400);
        let etag = s.policy.as_ref().unwrap().etag.clone();
        delete_policy(&mut s, Some(&etag)).unwrap();
        assert!(s.policy.is_none());
    }

    #[test]
    fn leases_guard_container_deletes_and_follow_their_states() {
        let mut s = ContainerState::default();
        let req = |action, id: Option<&'static str>| LeaseRequest {
            action,
            lease_id: id,
            proposed_id: None,
            duration: None,
            break_period: None,
        };
        let mut acquire = req("Acquire", None);
        acquire.duration = Some(10);
        assert!(lease(&mut s, &acquire, at(0)).is_err()); // 15–60 or -1
        acquire.duration = Some(30);
        acquire.proposed_id = Some("11111111-1111-1111-1111-111111111111");
        let (id, _) = lease(&mut s, &acquire, at(0)).unwrap();
        assert_eq!(id.as_deref(), Some("11111111-1111-1111-1111-111111111111"));
        assert_eq!(lease_state(s.lease.as_ref(), at(10)), LeaseState::Leased);
        assert_eq!(
            s.check_container_delete(None, 0, at(10)).unwrap_err().code,
            "LeaseIdMissing"
        );
        assert!(s
            .check_container_delete(Some("11111111-1111-1111-1111-111111111111"), 0, at(10))
            .is_ok());
        assert_eq!(lease_state(s.lease.as_ref(), at(31)), LeaseState::Expired);
        assert!(s.check_container_delete(None, 0, at(31)).is_ok());
        let mut again = req("Acquire", None);
        again.duration = Some(-1);
        lease(&mut s, &again, at(40)).unwrap();
        assert_eq!(
            lease(&mut s, &again, at(41)).unwrap_err().code,
            "LeaseAlreadyPresent"
        );
        let mut brk = req("Break", None);
        brk.break_period = Some(5);
        assert_eq!(lease(&mut s, &brk, at(42)).unwrap().1, Some(5));
        assert_eq!(lease_state(s.lease.as_ref(), at(43)), LeaseState::Breaking);
        assert_eq!(lease_state(s.lease.as_ref(), at(47)), LeaseState::Broken);
        assert!(s.check_container_delete(None, 0, at(47)).is_ok());
        assert!(lease(&mut s, &req("Renew", Some("x")), at(48)).is_err());
    }
}
