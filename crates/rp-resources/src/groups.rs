//! Resource groups and generic resource listing.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{
    document, id, names, paging, regions, resource, ArmError, ArmRequest, Ctx, Reply, RESOURCES,
};
use recoverite_store::Reader;

const RG_TYPE: &str = "Microsoft.Resources/resourceGroups";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupProperties {
    pub provisioning_state: String,
}

/// A resource group as stored and shown (`ResourceGroup`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceGroup {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub tags: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    pub properties: GroupProperties,
}

recoverite_arm::impl_document!(ResourceGroup, RG_TYPE, "resource group");

impl ResourceGroup {
    fn new(id: String, name: &str, location: &str) -> Self {
        ResourceGroup {
            id,
            name: name.to_string(),
            kind: RG_TYPE.into(),
            location: location.to_string(),
            tags: Map::new(),
            managed_by: None,
            properties: GroupProperties {
                provisioning_state: "Succeeded".into(),
            },
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GroupBody {
    location: Option<String>,
    tags: Option<Value>,
    managed_by: Option<String>,
    #[serde(default)]
    properties: Option<Value>,
    // Read-only fields that clients may echo back.
    id: Option<Value>,
    name: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<Value>,
}

fn rg_id(req: &ArmRequest, rg: &str) -> String {
    id::resource_group_id(req.path.subscription.as_deref().unwrap_or_default(), rg)
}

fn load(r: &impl Reader, rg_id: &str) -> Result<Option<ResourceGroup>, ArmError> {
    document::load(r, rg_id)
}

/// Whether the resource group `rg_id` exists (the read other providers ask).
pub fn group_exists(r: &impl Reader, rg_id: &str) -> Result<bool, ArmError> {
    Ok(load(r, rg_id)?.is_some())
}

pub fn get(ctx: &Ctx, req: &ArmRequest, rg: &str) -> Result<Reply, ArmError> {
    let group = ctx.store().read(|r| Ok(load(r, &rg_id(req, rg))))??;
    let group = group.ok_or_else(|| ArmError::resource_group_not_found(rg))?;
    Ok(Reply::ok(document::to_value(&group)?))
}

pub fn exists(ctx: &Ctx, req: &ArmRequest, rg: &str) -> Result<Reply, ArmError> {
    let doc = ctx.store().read(|r| Ok(load(r, &rg_id(req, rg))))??;
    Ok(Reply::empty(if doc.is_some() { 204 } else { 404 }))
}

pub fn put(ctx: &Ctx, req: &ArmRequest, rg: &str) -> Result<Reply, ArmError> {
    names::RESOURCE_GROUP.check("resource group", rg)?;
    let body: GroupBody = req.body_as()?;
    let _ = (&body.properties, &body.id, &body.name, &body.kind);
    let location = body
        .location
        .ok_or_else(|| ArmError::bad_request("LocationRequired", "The location property is required for this definition; add \"location\": \"eastus\" (or another region)."))?;
    let region = regions::find(&location).ok_or_else(|| {
        ArmError::bad_request(
            "LocationNotAvailableForResourceGroup",
            format!(
                "The provided location '{location}' is not available for resource group. List of available regions is '{}'.",
                regions::all_names().join(",")
            ),
        )
    })?;
    let tags = resource::validate_tags(body.tags.as_ref())?;
    let rid = rg_id(req, rg);
    ctx.store().write(|tx| {
        let existing = load(tx, &rid)?;
        if let Some(e) = &existing {
            let current = e.location.as_str();
            if current != region.name {
                return Err(ArmError::conflict(
                    "InvalidResourceGroupLocation",
                    format!("Invalid resource group location '{location}'. The Resource group already exists in location '{current}'."),
                ));
            }
        }
        // ARM keeps the name as first created.
        let name = existing.as_ref().map_or(rg, |e| e.name.as_str());
        let mut group = ResourceGroup::new(rg_id(req, name), name, region.name);
        group.tags = tags;
        group.managed_by = body.managed_by.clone();
        document::save(tx, &group)?;
        let doc = document::to_value(&group)?;
        Ok(if existing.is_some() { Reply::ok(doc) } else { Reply::created(doc) })
    })
}

/// A group a service makes for its own resources in a subscription (Azure
/// Backup's `AzureBackupRG_{region}_1` for instant-restore snapshots): made
/// in `location` if missing, left as it is otherwise. Returns its id.
pub fn ensure(
    tx: &mut recoverite_store::WriteTx,
    subscription: &str,
    name: &str,
    location: &str,
) -> Result<String, ArmError> {
    names::RESOURCE_GROUP.check("resource group", name)?;
    let rid = id::resource_group_id(subscription, name);
    if load(tx, &rid)?.is_none() {
        document::save(tx, &ResourceGroup::new(rid.clone(), name, location))?;
    }
    Ok(rid)
}

pub fn patch(ctx: &Ctx, req: &ArmRequest, rg: &str) -> Result<Reply, ArmError> {
    let body: GroupBody = req.body_or_empty()?;
    let tags = match &body.tags {
        Some(t) => Some(resource::validate_tags(Some(t))?),
        None => None,
    };
    let rid = rg_id(req, rg);
    ctx.store().write(|tx| {
        let mut group = load(tx, &rid)?.ok_or_else(|| ArmError::resource_group_not_found(rg))?;
        if let Some(loc) = &body.location {
            let same = regions::find(loc).is_some_and(|r| r.name == group.location);
            if !same {
                return Err(ArmError::conflict(
                    "InvalidResourceGroupLocation",
                    format!("Invalid resource group location '{loc}'. The location of a resource group cannot change."),
                ));
            }
        }
        if let Some(t) = tags {
            group.tags = t;
        }
        if let Some(m) = &body.managed_by {
            group.managed_by = Some(m.clone());
        }
        document::save(tx, &group)?;
        Ok(Reply::ok(document::to_value(&group)?))
    })
}

/// Deletes the group and everything in it in one transaction, then answers
/// as ARM does: 202 with a `Location` to poll.
pub fn delete(ctx: &Ctx, req: &ArmRequest, rg: &str) -> Result<Reply, ArmError> {
    let rid = rg_id(req, rg);
    let sub = req.path.subscription.clone().unwrap_or_default();
    let op = ctx.store().write(|tx| {
        if load(tx, &rid)?.is_none() {
            return Err(ArmError::resource_group_not_found(rg));
        }
        ctx.cascade_deleting(tx, &rid)?;
        resource::delete_tree(tx, &rid)?;
        ctx.cascade_delete(tx, &rid)?;
        let op = OperationRecord::new(ctx, "Microsoft.Resources", &rid).succeed(None);
        op.save(tx)?;
        Ok(op)
    })?;
    let url = format!(
        "{}/subscriptions/{sub}/operationresults/{}?api-version={}",
        ctx.base_url, op.id, req.api_version
    );
    Ok(lro::with_retry_after(
        ctx,
        Reply::empty(202).header("Location", url),
    ))
}

pub fn operation_result(ctx: &Ctx, req: &ArmRequest, op_id: &str) -> Result<Reply, ArmError> {
    let rec = ctx.store().read(|r| Ok(lro::load(r, op_id)))??;
    let rec = rec
        .filter(|r| {
            r.started_by == ctx.caller.object_id
                || ctx
                    .is_allowed(
                        "Microsoft.Resources/subscriptions/resourceGroups/read",
                        &r.scope,
                    )
                    .unwrap_or(false)
        })
        .ok_or_else(|| {
            ArmError::new(
                404,
                "OperationNotFound",
                format!("The operation '{op_id}' was not found."),
            )
        })?;
    let url = format!(
        "{}{}?api-version={}",
        ctx.base_url, req.raw_path, req.api_version
    );
    lro::result_reply(ctx, &rec, &url)
}

/// `tagName eq 'a' and tagValue eq 'b'` → (a, Some(b)).
fn tag_filter(filter: &str) -> Option<(String, Option<String>)> {
    let grab = |key: &str| -> Option<String> {
        let lower = filter.to_ascii_lowercase();
        let at = lower.find(key)?;
        let rest = &filter[at + key.len()..];
        let s = rest.find('\'')? + 1;
        let e = rest[s..].find('\'')? + s;
        Some(rest[s..e].to_string())
    };
    grab("tagname eq").map(|n| (n, grab("tagvalue eq")))
}

fn matches_tag(tags: Option<&Map<String, Value>>, tf: &Option<(String, Option<String>)>) -> bool {
    let Some((name, value)) = tf else { return true };
    let Some(tags) = tags else {
        return false;
    };
    tags.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case(name)
            && value
                .as_ref()
                .is_none_or(|want| v.as_str() == Some(want.as_str()))
    })
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let sub = req.path.subscription.clone().unwrap_or_default();
    let prefix = format!(
        "/subscriptions/{}/resourcegroups/",
        sub.to_ascii_lowercase()
    );
    let tf = req.query_get("$filter").and_then(tag_filter);
    let docs = ctx
        .store()
        .read(|r| r.scan_json::<Value>(RESOURCES, &prefix))?;
    let mut items = Vec::new();
    for (k, doc) in docs {
        if k[prefix.len()..].contains('/') {
            continue;
        }
        let group: ResourceGroup = document::read(doc)?;
        if matches_tag(Some(&group.tags), &tf) && ctx.can_see(&group.id)? {
            items.push(document::to_value(&group)?);
        }
    }
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

/// Tracked resources under a scope, in the GenericResource shape.
pub fn list_resources(ctx: &Ctx, req: &ArmRequest, scope: &str) -> Result<Reply, ArmError> {
    let prefix = format!("{}/", id::key(scope));
    let filter = req.query_get("$filter").unwrap_or("").to_string();
    let type_filter = {
        let lower = filter.to_ascii_lowercase();
        lower.find("resourcetype eq").and_then(|at| {
            let rest = &filter[at..];
            let s = rest.find('\'')? + 1;
            let e = rest[s..].find('\'')? + s;
            Some(rest[s..e].to_string())
        })
    };
    let tf = tag_filter(&filter);
    let docs = ctx
        .store()
        .read(|r| r.scan_json::<Value>(RESOURCES, &prefix))?;
    let mut items = Vec::new();
    for (_, doc) in docs {
        let Some(t) = doc.get("type").and_then(Value::as_str) else {
            continue;
        };
        // Only tracked resources (they have a location); not groups or extension resources.
        if t.eq_ignore_ascii_case(RG_TYPE) || doc.get("location").is_none() {
            continue;
        }
        if type_filter
            .as_ref()
            .is_some_and(|f| !f.eq_ignore_ascii_case(t))
            || !matches_tag(doc.get("tags").and_then(Value::as_object), &tf)
        {
            continue;
        }
        let rid = doc["id"].as_str().unwrap_or_default();
        if !ctx.can_see(rid)? {
            continue;
        }
        let mut g =
            json!({"id": doc["id"], "name": doc["name"], "type": t, "location": doc["location"]});
        for k in [
            "tags",
            "kind",
            "sku",
            "identity",
            "managedBy",
            "plan",
            "zones",
        ] {
            if let Some(v) = doc.get(k) {
                g[k] = v.clone();
            }
        }
        items.push(g);
    }
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}
