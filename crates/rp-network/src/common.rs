//! What every Microsoft.Network resource shares: api-versions, etags, the
//! long-running-operation replies Azure's network RP sends, references.

use serde_json::Value;

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{id, regions, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, WriteTx};

pub const NAMESPACE: &str = "Microsoft.Network";

recoverite_arm::api_versions!(
    "../api-versions.txt",
    [
        "virtualNetworks",
        "virtualNetworks/subnets",
        "networkSecurityGroups",
        "routeTables",
        "networkInterfaces",
        "networkWatchers",
        "privateEndpoints/privateDnsZoneGroups",
    ]
);

pub fn etag() -> String {
    format!("W/\"{}\"", uuid::Uuid::new_v4())
}

/// The resource's name from the request path.
pub fn name(req: &ArmRequest) -> String {
    req.resource_name().to_string()
}

/// Names of every level, e.g. `[vnet, subnet]`.
pub fn names(req: &ArmRequest) -> Vec<String> {
    req.path
        .provider
        .as_ref()
        .map(|p| p.names.clone())
        .unwrap_or_default()
}

/// Network resource names: 1–80 characters, letters, digits, `_ . -`,
/// starting alphanumeric and ending alphanumeric or `_`.
pub fn check_name(kind: &str, n: &str) -> Result<(), ArmError> {
    let ok = (1..=80).contains(&n.chars().count())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ArmError::bad_request(
            "InvalidResourceName",
            format!("Resource name {n} is invalid. The name can be up to 80 characters long. It must begin with a word character, and it must end with a word character or with '_'. The name may contain word characters or '.', '-', '_'. ({kind})"),
        ))
    }
}

pub fn location_of(body: &Value, kind: &str, existing: Option<&Value>) -> Result<String, ArmError> {
    match (body.get("location").and_then(Value::as_str), existing) {
        (Some(l), Some(e)) => {
            let r = regions::require(l, kind)?;
            if Some(r.name) != e["location"].as_str() {
                return Err(ArmError::bad_request(
                    "LocationCannotBeChanged",
                    format!(
                        "The location of {} cannot change from '{}' to '{l}'.",
                        e["name"].as_str().unwrap_or(""),
                        e["location"].as_str().unwrap_or("")
                    ),
                ));
            }
            Ok(r.name.to_string())
        }
        (Some(l), None) => Ok(regions::require(l, kind)?.name.to_string()),
        (None, Some(e)) => Ok(e["location"].as_str().unwrap_or_default().to_string()),
        (None, None) => Err(ArmError::bad_request(
            "LocationRequired",
            format!("The location property is required for resource type '{kind}'."),
        )),
    }
}

/// `PATCH` with a tags object (the SDKs' `update_tags`): replaces the
/// resource's tags and its etag and changes nothing else; the caller then
/// answers with the resource as GET renders it. A body without `tags` is
/// refused rather than read as "remove every tag".
pub fn patch_tags(ctx: &Ctx, req: &ArmRequest, kind: &str) -> Result<(), ArmError> {
    let body = req.body.clone().unwrap_or(Value::Null);
    if body.get("tags").is_none() {
        return Err(ArmError::invalid_parameter(
            "tags",
            "PATCH on this resource updates its tags only: send {\"tags\": {…}} (use PUT to change anything else).",
        ));
    }
    let tags = tags_of(&body)?;
    let rid = req.path.id();
    ctx.store().write(|tx| {
        let mut doc = resource::get(tx, &rid)?
            .filter(|d| {
                d["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case(kind))
            })
            .ok_or_else(|| {
                ArmError::resource_not_found(
                    kind,
                    rid.rsplit('/').next().unwrap_or_default(),
                    req.path.resource_group.as_deref(),
                )
            })?;
        doc["tags"] = tags.clone();
        doc["etag"] = Value::String(etag());
        resource::put(tx, &rid, &doc)
    })
}

pub fn tags_of(body: &Value) -> Result<Value, ArmError> {
    Ok(Value::Object(resource::validate_tags(body.get("tags"))?))
}

/// `{"id": "..."}` references inside a body.
pub fn ref_id(v: Option<&Value>) -> Option<String> {
    v.and_then(|x| x.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

pub fn invalid_reference(referenced: &str, by: &str) -> ArmError {
    ArmError::bad_request(
        "InvalidResourceReference",
        format!("Resource {referenced} referenced by resource {by} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."),
    )
}

/// Loads a referenced resource of an expected type or fails as Azure does.
pub fn load_ref(
    r: &impl Reader,
    referenced: &str,
    expected_type: &str,
    by: &str,
) -> Result<Value, ArmError> {
    match resource::get(r, referenced)? {
        Some(doc)
            if doc["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(expected_type)) =>
        {
            Ok(doc)
        }
        _ => Err(invalid_reference(referenced, by)),
    }
}

/// Azure's reply to a network PUT: 201 (create) or 200 (update) with the
/// resource and an `Azure-AsyncOperation` to poll.
pub fn put_reply(
    ctx: &Ctx,
    req: &ArmRequest,
    created: bool,
    doc: Value,
    op: &OperationRecord,
    location: &str,
) -> Reply {
    let sub = req.path.subscription.clone().unwrap_or_default();
    let url = lro::status_url(ctx, &sub, location, op, &req.api_version);
    let reply = if created {
        Reply::created(doc)
    } else {
        Reply::ok(doc)
    };
    lro::with_retry_after(ctx, reply.header("Azure-AsyncOperation", url))
}

/// Azure's reply to a network DELETE: 202 with `Location` and `Azure-AsyncOperation`.
pub fn delete_reply(ctx: &Ctx, req: &ArmRequest, op: &OperationRecord, location: &str) -> Reply {
    let sub = req.path.subscription.clone().unwrap_or_default();
    let status = lro::status_url(ctx, &sub, location, op, &req.api_version);
    let result = lro::result_url(ctx, &sub, location, op, &req.api_version);
    lro::with_retry_after(
        ctx,
        Reply::empty(202)
            .header("Azure-AsyncOperation", status)
            .header("Location", result),
    )
}

pub fn op(ctx: &Ctx, scope: &str) -> OperationRecord {
    OperationRecord::new(ctx, NAMESPACE, scope).succeed(None)
}

pub fn not_found(req: &ArmRequest, kind: &str) -> ArmError {
    ArmError::resource_not_found(kind, &name(req), req.path.resource_group.as_deref())
}

/// A child-collection id: `{parent}/{segment}/{name}`.
pub fn child_id(parent: &str, segment: &str, n: &str) -> String {
    format!("{parent}/{segment}/{n}")
}

/// The stored document's original spelling of the id, or the request's.
pub fn stored_id(existing: Option<&Value>, rid: &str) -> String {
    existing
        .and_then(|e| e["id"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| rid.to_string())
}

pub fn key(s: &str) -> String {
    id::key(s)
}

/// "The network interface (or private endpoint) must be in the same region
/// as the virtual network of its subnet." One rule for both kinds.
pub fn check_same_region(
    kind: &str,
    id: &str,
    location: &str,
    subnet_id: &str,
    vnet_location: &str,
) -> Result<(), ArmError> {
    if vnet_location.eq_ignore_ascii_case(location) {
        return Ok(());
    }
    Err(ArmError::bad_request(
        "InvalidResourceReference",
        format!("Subnet {subnet_id} referenced by resource {id} is in region {vnet_location} but the {kind} is in {location}; a {kind} must be in its virtual network's region."),
    ))
}

/// The parent a child request names (`…/{parent}/{segment}/{name}`), or
/// ARM's 404 naming the parent.
pub fn parent_of(r: &impl Reader, req: &ArmRequest, parent_type: &str) -> Result<Value, ArmError> {
    let pid = req.path.prefix(req.path.segments.len().saturating_sub(2));
    resource::get(r, &pid)?.ok_or_else(|| {
        ArmError::resource_not_found(
            parent_type,
            names(req).first().map(String::as_str).unwrap_or_default(),
            req.path.resource_group.as_deref(),
        )
    })
}

/// DELETE of a child resource: 204 when it is not there; otherwise
/// `removing` runs (its rules, then anything beyond the child's documents),
/// the child goes, and the answer is a network delete in the parent's region.
pub fn delete_child(
    ctx: &Ctx,
    req: &ArmRequest,
    parent_type: &str,
    removing: impl FnOnce(&mut WriteTx, &Value) -> Result<(), ArmError>,
) -> Result<Reply, ArmError> {
    let id = req.path.id();
    ctx.store().write(|tx| {
        let parent = parent_of(tx, req, parent_type)?;
        let Some(doc) = resource::get(tx, &id)? else {
            return Ok(Reply::empty(204));
        };
        removing(tx, &doc)?;
        resource::delete_tree(tx, &id)?;
        ctx.cascade_delete(tx, &id)?;
        let op = self::op(ctx, &id);
        op.save(tx)?;
        Ok(delete_reply(
            ctx,
            req,
            &op,
            parent["location"].as_str().unwrap_or("global"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nic_or_endpoint_is_in_its_networks_region() {
        assert!(check_same_region("network interface", "/n", "eastus", "/s", "EastUS").is_ok());
        let e = check_same_region("private endpoint", "/pe", "westus", "/s", "eastus").unwrap_err();
        assert_eq!(e.code(), "InvalidResourceReference");
        assert!(e
            .body
            .message
            .contains("private endpoint must be in its virtual network's region"));
    }
}
