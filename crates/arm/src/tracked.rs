//! The tracked-resource core: what every tracked resource kind shares, served
//! once for any kind through its hooks (issue 9, point 2).
//!
//! A kind declares its type, its typed `properties` and how a request's
//! properties become the stored ones ([`TrackedKind::properties`]); the core
//! does the rest the way ARM does it for every resource: the name rule,
//! location (required on create, never changed), tags (validated; a PATCH
//! with only tags changes nothing else), `If-Match` / `If-None-Match`
//! preconditions, get, list by resource group or subscription with paging
//! and the caller's visibility, and delete with the scope cascade — each
//! write in one transaction.
//!
//! The stored document is a typed [`Tracked`]: it reads back as that struct
//! or fails loudly, never as a silently empty field.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use recoverite_store::{Reader, WriteTx};

use crate::error::ArmError;
use crate::lro::{self, OperationRecord};
use crate::provider::{ArmRequest, Ctx, Reply};
use crate::{paging, regions, resource};

/// A tracked resource as stored and as returned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tracked<P> {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    #[serde(default)]
    pub tags: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<Sku>,
    pub properties: P,
}

/// A resource's `sku`, for the kinds that have one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sku {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

/// One kind of tracked resource.
pub trait TrackedKind {
    /// The full type, e.g. `Microsoft.ManagedIdentity/userAssignedIdentities`.
    const TYPE: &'static str;
    /// What a user calls one, in messages ("user-assigned identity").
    const NOUN: &'static str;
    /// Whether Azure shows an `etag` on this kind.
    const ETAG: bool = false;
    /// The status of a PUT that creates (some kinds answer 200 either way).
    const CREATED: u16 = 201;
    /// The one location a kind lives in (`global` for private DNS), if any.
    const LOCATION: Option<&'static str> = None;
    /// Whether writes answer as long-running operations (the record saved in
    /// the transaction of the change).
    const ASYNC: bool = false;
    /// For a child kind, its parent's type: the parent must exist, and a list
    /// is of the parent's children.
    const PARENT: Option<&'static str> = None;

    /// A new ETag (Microsoft.Network writes weak ones, `W/"…"`).
    fn new_etag() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    type Properties: Serialize + DeserializeOwned + Clone;
    /// The properties a request gives (unknown fields ignored, as Azure does).
    type Given: DeserializeOwned + Default;

    /// The kind's name rule.
    fn check_name(name: &str) -> Result<(), ArmError>;

    /// The properties to store: `given` validated (the kind's rules); a
    /// PATCH merges them over `existing`, a PUT replaces (keeping only what
    /// the resource keeps for life, such as its principal).
    fn properties(
        ctx: &Ctx,
        tx: &mut WriteTx,
        id: &str,
        given: Self::Given,
        existing: Option<&Self::Properties>,
        patch: bool,
    ) -> Result<Self::Properties, ArmError>;

    /// The `sku` to store (kinds without one keep none).
    fn sku(
        given: Option<Sku>,
        existing: Option<&Sku>,
        patch: bool,
    ) -> Result<Option<Sku>, ArmError> {
        let _ = (given, existing, patch);
        Ok(None)
    }

    /// Adds what the stored document does not hold but the answer shows
    /// (views computed from other resources).
    fn render(r: &impl Reader, doc: &mut Value) -> Result<(), ArmError> {
        let _ = (r, doc);
        Ok(())
    }

    /// Refuses a delete the kind does not allow (in the deleting transaction).
    fn deleting(tx: &mut WriteTx, doc: &Tracked<Self::Properties>) -> Result<(), ArmError> {
        let _ = (tx, doc);
        Ok(())
    }
}

#[derive(Deserialize, Default)]
struct Body<G> {
    location: Option<String>,
    tags: Option<Value>,
    sku: Option<Sku>,
    #[serde(default = "Option::default")]
    properties: Option<G>,
}

/// The stored resource of `kind` at `id`, typed.
pub fn load<K: TrackedKind>(
    r: &impl Reader,
    id: &str,
) -> Result<Option<Tracked<K::Properties>>, ArmError> {
    match resource::get(r, id)? {
        Some(doc)
            if doc["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(K::TYPE)) =>
        {
            typed::<K>(doc).map(Some)
        }
        _ => Ok(None),
    }
}

fn typed<K: TrackedKind>(doc: Value) -> Result<Tracked<K::Properties>, ArmError> {
    serde_json::from_value(doc)
        .map_err(|e| ArmError::internal(format!("a stored {} does not read back: {e}", K::NOUN)))
}

fn to_value<P: Serialize>(t: &Tracked<P>) -> Result<Value, ArmError> {
    serde_json::to_value(t).map_err(|e| ArmError::internal(e.to_string()))
}

fn shown<K: TrackedKind>(r: &impl Reader, t: &Tracked<K::Properties>) -> Result<Value, ArmError> {
    let mut v = to_value(t)?;
    K::render(r, &mut v)?;
    Ok(v)
}

pub fn not_found<K: TrackedKind>(req: &ArmRequest) -> ArmError {
    ArmError::resource_not_found(
        K::TYPE,
        req.resource_name(),
        req.path.resource_group.as_deref(),
    )
}

/// The parent a child kind's request names must exist (404 naming it).
fn check_parent<K: TrackedKind>(
    r: &impl Reader,
    req: &ArmRequest,
    collection: bool,
) -> Result<Option<String>, ArmError> {
    let Some(parent_type) = K::PARENT else {
        return Ok(None);
    };
    let n = req.path.segments.len();
    let pid = req
        .path
        .prefix(n.saturating_sub(if collection { 1 } else { 2 }));
    let found = resource::get(r, &pid)?.filter(|d| {
        d["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(parent_type))
    });
    match found {
        Some(_) => Ok(Some(pid)),
        None => Err(ArmError::resource_not_found(
            parent_type,
            pid.rsplit('/').next().unwrap_or_default(),
            req.path.resource_group.as_deref(),
        )),
    }
}

fn namespace<K: TrackedKind>() -> &'static str {
    K::TYPE.split('/').next().unwrap_or(K::TYPE)
}

fn header<'a>(req: &'a ArmRequest, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// ARM's conditional writes: `If-Match` names the current ETag (or `*`,
/// "it exists"); `If-None-Match: *` only creates, and with an ETag refuses
/// a resource that still has it. ETags compare without quotes or `W/`.
pub fn check_preconditions(
    if_match: Option<&str>,
    if_none_match: Option<&str>,
    current_etag: Option<&str>,
    exists: bool,
) -> Result<(), ArmError> {
    let bare = |s: &str| {
        s.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_string()
    };
    let matches = |given: &str| {
        exists && (given.trim() == "*" || current_etag.is_some_and(|e| bare(e) == bare(given)))
    };
    if let Some(m) = if_match {
        if !matches(m) {
            return Err(ArmError::new(
                412,
                "PreconditionFailed",
                "The condition in If-Match was not met: the resource does not exist or its etag has changed. Read it again and retry with the current etag.",
            ));
        }
    }
    if let Some(m) = if_none_match {
        if matches(m) {
            return Err(ArmError::new(
                412,
                "PreconditionFailed",
                "The condition in If-None-Match was not met: the resource already exists.",
            ));
        }
    }
    Ok(())
}

fn preconditions(
    req: &ArmRequest,
    current_etag: Option<&str>,
    exists: bool,
) -> Result<(), ArmError> {
    check_preconditions(
        header(req, "if-match"),
        header(req, "if-none-match"),
        current_etag,
        exists,
    )
}

/// Answers a write as a long-running operation whose record was saved with
/// the change: `Azure-AsyncOperation` (and `Location` for a delete).
fn async_reply(
    ctx: &Ctx,
    req: &ArmRequest,
    reply: Reply,
    location: &str,
    op: &OperationRecord,
    delete: bool,
) -> Reply {
    let sub = req.path.subscription.clone().unwrap_or_default();
    let mut reply = reply.header(
        "Azure-AsyncOperation",
        lro::status_url(ctx, &sub, location, op, &req.api_version),
    );
    if delete {
        reply = reply.header(
            "Location",
            lro::result_url(ctx, &sub, location, op, &req.api_version),
        );
    }
    lro::with_retry_after(ctx, reply)
}

/// PUT (create or replace) and PATCH (update) of a tracked resource.
pub fn put<K: TrackedKind>(ctx: &Ctx, req: &ArmRequest, patch: bool) -> Result<Reply, ArmError> {
    let name = req.resource_name().to_string();
    K::check_name(&name)?;
    let body: Body<K::Given> = if patch {
        req.body_or_empty()?
    } else {
        req.body_as()?
    };
    let tags = match &body.tags {
        Some(t) => Some(resource::validate_tags(Some(t))?),
        None => None,
    };
    let rid = req.path.id();
    ctx.store().write(|tx| {
        check_parent::<K>(tx, req, false)?;
        let existing = load::<K>(tx, &rid)?;
        preconditions(
            req,
            existing.as_ref().and_then(|e| e.etag.as_deref()),
            existing.is_some(),
        )?;
        // A PATCH updates; it never creates.
        if patch && existing.is_none() {
            return Err(not_found::<K>(req));
        }
        if let (Some(fixed), Some(l)) = (K::LOCATION, &body.location) {
            if !l.eq_ignore_ascii_case(fixed) {
                return Err(ArmError::bad_request(
                    "InvalidLocation",
                    format!(
                        "A {} is {fixed}; its location must be '{fixed}', not '{l}'.",
                        K::NOUN
                    ),
                ));
            }
        }
        let given_location = body.location.clone().or(K::LOCATION.map(str::to_string));
        let location = match (&existing, &given_location) {
            (Some(e), Some(_)) if K::LOCATION.is_some() => e.location.clone(),
            (Some(e), Some(l)) => {
                let region = regions::require(l, K::TYPE)?;
                if !region.name.eq_ignore_ascii_case(&e.location) {
                    return Err(ArmError::bad_request(
                        "LocationCannotBeChanged",
                        format!(
                            "The location of a {} cannot change; create a new one instead.",
                            K::NOUN
                        ),
                    ));
                }
                e.location.clone()
            }
            (Some(e), None) => e.location.clone(),
            (None, Some(l)) if K::LOCATION.is_some() => l.to_ascii_lowercase(),
            (None, Some(l)) => regions::require(l, K::TYPE)?.name.to_string(),
            (None, None) => {
                return Err(ArmError::bad_request(
                    "LocationRequired",
                    format!("The location property is required for a {}.", K::NOUN),
                ))
            }
        };
        let given = body.properties.unwrap_or_default();
        let properties = K::properties(
            ctx,
            tx,
            &rid,
            given,
            existing.as_ref().map(|e| &e.properties),
            patch,
        )?;
        let sku = K::sku(
            body.sku,
            existing.as_ref().and_then(|e| e.sku.as_ref()),
            patch,
        )?;
        let doc = Tracked {
            // Names keep their first spelling.
            id: existing
                .as_ref()
                .map(|e| e.id.clone())
                .unwrap_or(rid.clone()),
            name: existing
                .as_ref()
                .map(|e| e.name.clone())
                .unwrap_or(name.clone()),
            kind: K::TYPE.to_string(),
            location,
            // A PUT replaces the tags (none given: none kept); a PATCH
            // changes them only when it names them.
            tags: match (tags, patch) {
                (Some(t), _) => t,
                (None, true) => existing
                    .as_ref()
                    .map(|e| e.tags.clone())
                    .unwrap_or_default(),
                (None, false) => Map::new(),
            },
            etag: K::ETAG.then(K::new_etag),
            sku,
            properties,
        };
        resource::put(tx, &rid, &to_value(&doc)?)?;
        let value = shown::<K>(tx, &doc)?;
        let reply = if existing.is_some() || patch {
            Reply::ok(value)
        } else {
            Reply::json(K::CREATED, value)
        };
        if !K::ASYNC {
            return Ok(reply);
        }
        let op = OperationRecord::new(ctx, namespace::<K>(), &doc.id).succeed(None);
        op.save(tx)?;
        Ok(async_reply(ctx, req, reply, &doc.location, &op, false))
    })
}

pub fn get<K: TrackedKind>(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store().view(|r| {
        check_parent::<K>(r, req, false)?;
        match load::<K>(r, &req.path.id())? {
            Some(doc) => Ok(Reply::ok(shown::<K>(r, &doc)?)),
            None => Err(not_found::<K>(req)),
        }
    })
}

/// Every resource of the kind in the request's scope (a resource group or a
/// subscription), paged, showing only what the caller may read.
pub fn list<K: TrackedKind>(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    let items = ctx.store().view(|r| {
        let docs = match check_parent::<K>(r, req, true)? {
            Some(parent) => {
                let child = K::TYPE.rsplit('/').next().unwrap_or(K::TYPE);
                resource::list_children(r, &parent, child)?
            }
            None => resource::list_of_type(r, &scope, K::TYPE)?,
        };
        // Read typed, so a stored document that no longer fits is an error
        // here rather than a silently odd list item.
        docs.into_iter()
            .map(|d| shown::<K>(r, &typed::<K>(d)?))
            .collect::<Result<Vec<_>, ArmError>>()
    })?;
    paging::page_visible(ctx, req, items)
}

/// DELETE: 200 with the resource and what hangs off it gone, 204 when
/// there was nothing to delete.
pub fn delete<K: TrackedKind>(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store().write(|tx| {
        check_parent::<K>(tx, req, false)?;
        let Some(doc) = load::<K>(tx, &rid)? else {
            return Ok(Reply::empty(204));
        };
        preconditions(req, doc.etag.as_deref(), true)?;
        K::deleting(tx, &doc)?;
        resource::delete_tree(tx, &rid)?;
        ctx.cascade_delete(tx, &rid)?;
        if !K::ASYNC {
            return Ok(Reply::empty(200));
        }
        let op = OperationRecord::new(ctx, namespace::<K>(), &rid).succeed(None);
        op.save(tx)?;
        Ok(async_reply(
            ctx,
            req,
            Reply::empty(202),
            &doc.location,
            &op,
            true,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_star_only_creates() {
        assert!(check_preconditions(None, Some("*"), None, false).is_ok());
        assert_eq!(
            check_preconditions(None, Some("*"), None, true)
                .unwrap_err()
                .status,
            412
        );
    }

    #[test]
    fn if_match_needs_the_current_etag_of_an_existing_resource() {
        assert!(check_preconditions(Some("*"), None, None, true).is_ok());
        assert!(check_preconditions(Some("W/\"a\""), None, Some("W/\"a\""), true).is_ok());
        assert_eq!(
            check_preconditions(Some("W/\"b\""), None, Some("W/\"a\""), true)
                .unwrap_err()
                .status,
            412
        );
        assert_eq!(
            check_preconditions(Some("*"), None, None, false)
                .unwrap_err()
                .code(),
            "PreconditionFailed"
        );
        assert!(check_preconditions(None, None, None, false).is_ok());
    }

    #[test]
    fn a_stored_document_reads_back_typed_or_fails() {
        #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
        struct P {
            n: u32,
        }
        let good = serde_json::json!({"id": "/x", "name": "x", "type": "T", "location": "eastus", "properties": {"n": 3}});
        let t: Tracked<P> = serde_json::from_value(good).unwrap();
        assert_eq!(t.properties, P { n: 3 });
        assert!(t.tags.is_empty() && t.etag.is_none());
        let bad = serde_json::json!({"id": "/x", "name": "x", "type": "T", "location": "eastus", "properties": {"n": "three"}});
        assert!(serde_json::from_value::<Tracked<P>>(bad).is_err());
    }
}
