//! Microsoft.ManagedIdentity: user-assigned identities, and the read-only
//! `identities/default` view of any resource's system-assigned identity.

use http::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use recoverite_arm::{
    names, paging, regions, resource, ArmError, ArmRequest, Ctx, Provider, ProviderInfo, Reply,
    ResourceType,
};
use recoverite_identity::principals::{self, PrincipalKind};

pub const NAMESPACE: &str = "Microsoft.ManagedIdentity";

recoverite_arm::api_versions!(
    "../api-versions.txt",
    ["userAssignedIdentities", "identities"]
);
const UAI_TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";

pub struct ManagedIdentityProvider;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UaiBody {
    location: Option<String>,
    tags: Option<Value>,
    #[serde(default)]
    properties: Option<UaiProps>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UaiProps {
    isolation_scope: Option<String>,
}

impl Provider for ManagedIdentityProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            namespace: NAMESPACE,
            resource_types: vec![
                ResourceType {
                    name: "userAssignedIdentities",
                    api_versions: API.versions("userAssignedIdentities"),
                    global: false,
                },
                ResourceType {
                    name: "identities",
                    api_versions: API.versions("userAssignedIdentities"),
                    global: false,
                },
            ],
            requires_registration: true,
        }
    }

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let p = req.provider_part()?;
        let kind = p.types[0].to_ascii_lowercase();
        match (kind.as_str(), p.is_resource(), req.method.clone()) {
            ("identities", true, Method::GET) => system_identity(ctx, req),
            ("userassignedidentities", true, Method::GET) => get(ctx, req),
            ("userassignedidentities", true, Method::PUT) => put(ctx, req, false),
            ("userassignedidentities", true, Method::PATCH) => put(ctx, req, true),
            ("userassignedidentities", true, Method::DELETE) => delete(ctx, req),
            ("userassignedidentities", false, Method::GET) => list(ctx, req),
            (_, _, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}

fn not_found(req: &ArmRequest) -> ArmError {
    let name = req
        .path
        .provider
        .as_ref()
        .and_then(|p| p.name())
        .unwrap_or("");
    ArmError::resource_not_found(UAI_TYPE, name, req.path.resource_group.as_deref())
}

fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let doc = ctx
        .store()
        .read(|r| Ok(resource::get(r, &req.path.id())))??;
    doc.map(Reply::ok).ok_or_else(|| not_found(req))
}

fn put(ctx: &Ctx, req: &ArmRequest, patch: bool) -> Result<Reply, ArmError> {
    let name = req
        .path
        .provider
        .as_ref()
        .and_then(|p| p.name())
        .unwrap_or("")
        .to_string();
    names::USER_ASSIGNED_IDENTITY.check("user-assigned identity", &name)?;
    let body: UaiBody = if patch {
        req.body_or_empty()?
    } else {
        req.body_as()?
    };
    let tags = match &body.tags {
        Some(t) => Some(resource::validate_tags(Some(t))?),
        None => None,
    };
    let isolation = body
        .properties
        .as_ref()
        .and_then(|p| p.isolation_scope.clone());
    if let Some(i) = &isolation {
        if !matches!(i.as_str(), "None" | "Regional") {
            return Err(ArmError::invalid_parameter(
                "properties.isolationScope",
                format!("isolationScope '{i}' is not valid; use 'None' or 'Regional'."),
            ));
        }
    }
    let rid = req.path.id();
    ctx.store().write(|tx| {
        let existing = resource::get(tx, &rid)?;
        let location = match (&existing, &body.location) {
            (Some(e), Some(l)) => {
                let region = regions::require(l, UAI_TYPE)?;
                if Some(region.name) != e["location"].as_str() {
                    return Err(ArmError::bad_request(
                        "LocationCannotBeChanged",
                        "The location of a user-assigned identity cannot change; create a new identity instead.",
                    ));
                }
                region.name.to_string()
            }
            (Some(e), None) => e["location"].as_str().unwrap_or_default().to_string(),
            (None, Some(l)) => regions::require(l, UAI_TYPE)?.name.to_string(),
            (None, None) if patch => return Err(not_found(req)),
            (None, None) => {
                return Err(ArmError::bad_request(
                    "LocationRequired",
                    "The location property is required for a user-assigned identity.",
                ))
            }
        };
        let principal = principals::ensure_managed_identity(tx, &rid, PrincipalKind::UserAssigned)?;
        let stored_name = existing
            .as_ref()
            .and_then(|e| e["name"].as_str().map(str::to_string))
            .unwrap_or(name.clone());
        let stored_id = existing
            .as_ref()
            .and_then(|e| e["id"].as_str().map(str::to_string))
            .unwrap_or(rid.clone());
        let tags = tags
            .map(Value::Object)
            .or_else(|| existing.as_ref().and_then(|e| e.get("tags").cloned()))
            .unwrap_or(json!({}));
        let isolation = isolation
            .or_else(|| existing.as_ref().and_then(|e| e["properties"]["isolationScope"].as_str().map(str::to_string)))
            .unwrap_or_else(|| "None".into());
        let doc = json!({
            "id": stored_id,
            "name": stored_name,
            "type": UAI_TYPE,
            "location": location,
            "tags": tags,
            "properties": {
                "tenantId": ctx.env().tenant_id,
                "principalId": principal.object_id,
                "clientId": principal.app_id,
                "isolationScope": isolation,
            }
        });
        resource::put(tx, &rid, &doc)?;
        Ok(if existing.is_some() || patch { Reply::ok(doc) } else { Reply::created(doc) })
    })
}

fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store().write(|tx| {
        if !resource::delete_tree(tx, &rid)? {
            return Ok(Reply::empty(204));
        }
        ctx.cascade_delete(tx, &rid)?;
        Ok(Reply::empty(200))
    })
}

fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    let docs = ctx
        .store()
        .read(|r| Ok(resource::list_of_type(r, &scope, UAI_TYPE)))??;
    let mut items = Vec::new();
    for d in docs {
        if ctx.can_see(d["id"].as_str().unwrap_or_default())? {
            items.push(d);
        }
    }
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

/// `GET {resource}/providers/Microsoft.ManagedIdentity/identities/default`.
fn system_identity(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    let p = ctx.store().read(|r| {
        Ok(principals::for_resource(
            r,
            &scope,
            PrincipalKind::SystemAssigned,
        ))
    })??;
    let p = p.ok_or_else(|| {
        ArmError::new(
            404,
            "ResourceNotFound",
            format!("The resource '{scope}' has no system-assigned identity; enable it with \"identity\": {{\"type\": \"SystemAssigned\"}}."),
        )
    })?;
    Ok(Reply::ok(json!({
        "id": req.path.id(),
        "name": "default",
        "type": "Microsoft.ManagedIdentity/identities",
        "properties": {
            "tenantId": ctx.env().tenant_id,
            "principalId": p.object_id,
            "clientId": p.app_id,
            "clientSecretUrl": format!("{}/recoverite/identities/{}/credentials", ctx.base_url, p.object_id),
        }
    })))
}
