//! The management side of a container's immutability and lease: legal
//! holds, the time-based immutability policy (`immutabilityPolicies/
//! default`), the container lease and the move to version-level
//! immutability. The state lives with the container on the Blob data plane
//! (`recoverite_blob::worm`), which enforces it; this module parses ARM's
//! requests and renders ARM's answers.

use serde::Deserialize;
use serde_json::{json, Value};

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_blob::worm::{self, ContainerState, LeaseRequest};

use crate::containers::{self, Store};

/// Containers that keep data by law (a legal hold or a locked policy), as
/// `{account}/{container}`: the management plane's own note of the Blob
/// plane's state, so deleting a resource group (which cannot reach the Blob
/// plane inside its transaction) refuses to take such an account with it.
pub const KEEPING: recoverite_store::Table = recoverite_store::Table("storage_containers_keeping");

/// Notes (or forgets) that a container keeps data.
pub fn note_keeping(
    ctx: &Ctx,
    account: &str,
    container: &str,
    st: &ContainerState,
) -> Result<(), ArmError> {
    let key = format!("{account}/{container}");
    let keeps = st.has_legal_hold() || st.policy.as_ref().is_some_and(|p| p.locked);
    ctx.store().write(|tx| {
        if keeps {
            tx.put_json(KEEPING, &key, &true)?;
        } else {
            tx.delete(KEEPING, &key)?;
        }
        Ok::<_, ArmError>(())
    })
}

/// Forgets what was noted about a container the Blob API deleted.
pub fn forget_container(
    store: &recoverite_store::Store,
    account: &str,
    container: &str,
) -> Result<(), ArmError> {
    store.write(|tx| {
        tx.delete(KEEPING, &format!("{account}/{container}"))?;
        Ok::<_, ArmError>(())
    })
}

/// The first container of `account` noted as keeping data, if any.
pub fn keeping(
    r: &impl recoverite_store::Reader,
    account: &str,
) -> Result<Option<String>, ArmError> {
    Ok(r.scan_json::<bool>(KEEPING, &format!("{account}/"))?
        .into_iter()
        .next()
        .map(|(k, _)| k.split_once('/').map(|(_, c)| c.to_string()).unwrap_or(k)))
}

pub const POLICY_TYPE: &str =
    "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies";

fn blob_error(e: recoverite_blob::BlobError) -> ArmError {
    ArmError::new(e.status, &e.code, e.message)
}

fn if_match(req: &ArmRequest) -> Option<String> {
    req.headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The container the path names: (account name, container name, its ARM id).
fn container(
    ctx: &Ctx,
    req: &ArmRequest,
    blobs: &Store,
) -> Result<(String, String, String), ArmError> {
    let (account_name, name, cid) = containers::locate(ctx, req)?;
    if !blobs.exists(&account_name, &name).map_err(blob_error)? {
        return Err(containers::not_found());
    }
    Ok((account_name, name, cid))
}

/// `legalHold` as ARM shows it (container properties and the legal hold
/// actions' answer).
pub fn legal_hold_json(st: &ContainerState) -> Value {
    json!({
        "hasLegalHold": st.has_legal_hold(),
        "tags": st.legal_hold.iter().map(|(t, when)| json!({"tag": t, "timestamp": when})).collect::<Vec<_>>(),
        "protectedAppendWritesHistory": {"allowProtectedAppendWritesAll": st.allow_protected_append_writes_all},
    })
}

/// The policy as a container's `immutabilityPolicy` shows it (with its
/// `updateHistory`); [`policy_doc`] is the `immutabilityPolicies/default`
/// resource. A container without one answers a period of 0.
fn policy_json(cid: &str, st: &ContainerState) -> Value {
    let (days, state, append, etag, history) = match &st.policy {
        Some(p) => (
            p.days,
            if p.locked { "Locked" } else { "Unlocked" },
            p.allow_protected_append_writes,
            p.etag.clone(),
            p.history.clone(),
        ),
        None => (0, "Unlocked", false, "\"0\"".to_string(), Vec::new()),
    };
    json!({
        "id": format!("{cid}/immutabilityPolicies/default"),
        "name": "default",
        "type": POLICY_TYPE,
        "etag": etag,
        "properties": {
            "immutabilityPeriodSinceCreationInDays": days,
            "state": state,
            "allowProtectedAppendWrites": append,
        },
        "updateHistory": history.iter().map(|(update, d, when)| json!({
            "update": update, "immutabilityPeriodSinceCreationInDays": d, "timestamp": when,
        })).collect::<Vec<_>>(),
    })
}

/// What a container's ARM properties say of its state.
pub fn decorate(props: &mut serde_json::Map<String, Value>, cid: &str, st: &ContainerState) {
    let lease = worm::lease_state(st.lease.as_ref(), time::now());
    props.insert("leaseState".into(), json!(lease.as_str()));
    props.insert("leaseStatus".into(), json!(lease.status()));
    if matches!(lease, worm::LeaseState::Leased) {
        let d = st.lease.as_ref().map(|l| l.duration).unwrap_or(-1);
        props.insert(
            "leaseDuration".into(),
            json!(if d < 0 { "Infinite" } else { "Fixed" }),
        );
    }
    props.insert("hasLegalHold".into(), json!(st.has_legal_hold()));
    props.insert("legalHold".into(), legal_hold_json(st));
    props.insert("hasImmutabilityPolicy".into(), json!(st.policy.is_some()));
    if st.policy.is_some() {
        let mut p = policy_json(cid, st);
        if let Some(o) = p.as_object_mut() {
            for k in ["id", "name", "type"] {
                o.remove(k);
            }
        }
        props.insert("immutabilityPolicy".into(), p);
    }
    if let Some(since) = &st.version_level_since {
        props.insert(
            "immutableStorageWithVersioning".into(),
            json!({"enabled": true, "timeStamp": since, "migrationState": "Completed"}),
        );
    }
}

/// The body of `setLegalHold` / `clearLegalHold`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegalHoldBody {
    tags: Vec<String>,
    allow_protected_append_writes_all: Option<bool>,
}

/// The body of `lease`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseBody {
    action: String,
    lease_id: Option<String>,
    proposed_lease_id: Option<String>,
    lease_duration: Option<i64>,
    break_period: Option<i64>,
}

/// The body of an immutability policy PUT or `extend`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyBody {
    properties: PolicyBodyProperties,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyBodyProperties {
    immutability_period_since_creation_in_days: u32,
    allow_protected_append_writes: Option<bool>,
}

/// POST `setLegalHold` / `clearLegalHold` `{tags}`.
pub fn legal_hold(
    ctx: &Ctx,
    req: &ArmRequest,
    blobs: &Store,
    set: bool,
) -> Result<Reply, ArmError> {
    let (account, name, _) = container(ctx, req, blobs)?;
    let body: LegalHoldBody = req.body_as()?;
    let (tags, append_all) = (body.tags, body.allow_protected_append_writes_all);
    let st = blobs
        .update_state(&account, &name, |st| {
            if set {
                worm::set_legal_hold(st, &tags, time::now())?;
                if let Some(a) = append_all {
                    st.allow_protected_append_writes_all = a;
                }
            } else {
                worm::clear_legal_hold(st, &tags)?;
            }
            Ok(st.clone())
        })
        .map_err(blob_error)?;
    note_keeping(ctx, &account, &name, &st)?;
    let mut out = legal_hold_json(&st);
    out["tags"] = json!(st.legal_hold.iter().map(|(t, _)| t).collect::<Vec<_>>());
    out["allowProtectedAppendWritesAll"] = json!(st.allow_protected_append_writes_all);
    Ok(Reply::ok(out))
}

/// POST `lease` `{action, leaseId, proposedLeaseId, leaseDuration, breakPeriod}`.
pub fn lease(ctx: &Ctx, req: &ArmRequest, blobs: &Store) -> Result<Reply, ArmError> {
    let (account, name, _) = container(ctx, req, blobs)?;
    let body: LeaseBody = req.body_as()?;
    let r = LeaseRequest {
        action: &body.action,
        lease_id: body.lease_id.as_deref(),
        proposed_id: body.proposed_lease_id.as_deref(),
        duration: body.lease_duration,
        break_period: body.break_period,
    };
    let (id, left) = blobs
        .update_state(&account, &name, |st| worm::lease(st, &r, time::now()))
        .map_err(blob_error)?;
    let mut out = json!({});
    if let Some(id) = id {
        out["leaseId"] = json!(id);
    }
    if let Some(s) = left {
        out["leaseTimeSeconds"] = json!(s.to_string());
    }
    Ok(Reply::ok(out))
}

pub fn policy_doc(cid: &str, st: &ContainerState) -> Value {
    let mut doc = policy_json(cid, st);
    if let Some(o) = doc.as_object_mut() {
        o.remove("updateHistory");
    }
    doc
}

fn policy_reply(cid: &str, st: &ContainerState) -> Reply {
    let doc = policy_doc(cid, st);
    let etag = doc["etag"].as_str().unwrap_or_default().to_string();
    Reply::ok(doc).header("ETag", etag)
}

fn days_of(req: &ArmRequest) -> Result<(u32, Option<bool>), ArmError> {
    let body: PolicyBody = req.body_as()?;
    Ok((
        body.properties.immutability_period_since_creation_in_days,
        body.properties.allow_protected_append_writes,
    ))
}

pub enum PolicyAction {
    Get,
    Put,
    Delete,
    Lock,
    Extend,
}

/// `immutabilityPolicies/default`: GET, PUT, DELETE, `lock`, `extend`.
pub fn policy(
    ctx: &Ctx,
    req: &ArmRequest,
    blobs: &Store,
    action: PolicyAction,
) -> Result<Reply, ArmError> {
    let (account, name, cid) = container(ctx, req, blobs)?;
    let policy_name = req
        .provider_part()?
        .names
        .get(3)
        .cloned()
        .unwrap_or_default();
    if !policy_name.eq_ignore_ascii_case("default") {
        return Err(ArmError::invalid_parameter(
            "immutabilityPolicyName",
            format!("A container's immutability policy is named 'default', not '{policy_name}'."),
        ));
    }
    let m = if_match(req);
    let now = time::now();
    let st = match action {
        PolicyAction::Get => blobs.state(&account, &name).map_err(blob_error)?,
        PolicyAction::Put => {
            let (days, append) = days_of(req)?;
            blobs
                .update_state(&account, &name, |st| {
                    worm::put_policy(st, days, append.unwrap_or(false), m.as_deref(), now)?;
                    Ok(st.clone())
                })
                .map_err(blob_error)?
        }
        PolicyAction::Delete => {
            let st = blobs
                .update_state(&account, &name, |st| {
                    worm::delete_policy(st, m.as_deref())?;
                    Ok(st.clone())
                })
                .map_err(blob_error)?;
            note_keeping(ctx, &account, &name, &st)?;
            // "The response of delete has immutabilityPeriodSinceCreationInDays set to 0."
            return Ok(Reply::ok(policy_doc(&cid, &st)));
        }
        PolicyAction::Lock => blobs
            .update_state(&account, &name, |st| {
                worm::lock_policy(st, m.as_deref(), now)?;
                Ok(st.clone())
            })
            .map_err(blob_error)?,
        PolicyAction::Extend => {
            let (days, _) = days_of(req)?;
            blobs
                .update_state(&account, &name, |st| {
                    worm::extend_policy(st, days, m.as_deref(), now)?;
                    Ok(st.clone())
                })
                .map_err(blob_error)?
        }
    };
    note_keeping(ctx, &account, &name, &st)?;
    Ok(policy_reply(&cid, &st))
}

/// POST `migrate` (objectLevelWorm): the container moves to version-level
/// immutability. Azure needs blob versioning on the account for it.
pub fn migrate(ctx: &Ctx, req: &ArmRequest, blobs: &Store) -> Result<Reply, ArmError> {
    let (account, name, cid) = container(ctx, req, blobs)?;
    if !containers::versioning_enabled(ctx, req)? {
        return Err(ArmError::conflict(
            "ContainerOperationFailure",
            "Version-level immutability needs blob versioning: set isVersioningEnabled on the account's blob service first.",
        ));
    }
    blobs
        .update_state(&account, &name, |st| {
            st.version_level_since.get_or_insert_with(time::now_string);
            Ok(())
        })
        .map_err(blob_error)?;
    let op = OperationRecord::new(ctx, "Microsoft.Storage", &cid).succeed(None);
    ctx.store().write(|tx| op.save(tx))?;
    let sub = req.path.subscription.clone().unwrap_or_default();
    let location = containers::account_location(ctx, req)?;
    Ok(lro::with_retry_after(
        ctx,
        Reply::empty(202).header(
            "Location",
            lro::result_url(ctx, &sub, &location, &op, &req.api_version),
        ),
    ))
}
