//! Microsoft.ManagedIdentity: user-assigned identities, and the read-only
//! `identities/default` view of any resource's system-assigned identity.
//!
//! The first provider on the tracked-resource core (`arm::tracked`): the
//! request is parsed once into a [`Route`], a user-assigned identity is a
//! typed [`Identity`] document, and its rules are the functions below.

pub mod route;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::tracked::{self, TrackedKind};
use recoverite_arm::{names, resource, ArmError, ArmRequest, Ctx, Endpoints, ProviderInfo, Reply};
use recoverite_identity::principals::{self, PrincipalKind};
use recoverite_store::WriteTx;

pub use route::Route;

pub const NAMESPACE: &str = "Microsoft.ManagedIdentity";

recoverite_arm::api_versions!(
    "../api-versions.txt",
    ["userAssignedIdentities", "identities"]
);
pub const UAI_TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";

pub struct ManagedIdentityProvider;

/// A user-assigned identity's properties, as stored and returned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProperties {
    pub tenant_id: String,
    pub principal_id: String,
    pub client_id: String,
    pub isolation_scope: IsolationScope,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum IsolationScope {
    #[default]
    None,
    Regional,
}

/// What a request may set.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GivenProperties {
    isolation_scope: Option<String>,
}

/// "isolationScope: None or Regional" (the identity's region isolation).
pub fn isolation_scope(given: &str) -> Result<IsolationScope, ArmError> {
    match given {
        "None" => Ok(IsolationScope::None),
        "Regional" => Ok(IsolationScope::Regional),
        other => Err(ArmError::invalid_parameter(
            "properties.isolationScope",
            format!("isolationScope '{other}' is not valid; use 'None' or 'Regional'."),
        )),
    }
}

pub struct Identity;

impl TrackedKind for Identity {
    const TYPE: &'static str = UAI_TYPE;
    const NOUN: &'static str = "user-assigned identity";
    type Properties = IdentityProperties;
    type Given = GivenProperties;

    fn check_name(name: &str) -> Result<(), ArmError> {
        names::USER_ASSIGNED_IDENTITY.check(Self::NOUN, name)
    }

    /// The identity's principal is made with it (once) and keeps its ids.
    fn properties(
        ctx: &Ctx,
        tx: &mut WriteTx,
        id: &str,
        given: GivenProperties,
        existing: Option<&IdentityProperties>,
        patch: bool,
    ) -> Result<IdentityProperties, ArmError> {
        let scope = match (given.isolation_scope.as_deref(), existing) {
            (Some(s), _) => isolation_scope(s)?,
            (None, Some(e)) if patch => e.isolation_scope,
            _ => IsolationScope::None,
        };
        let principal = principals::ensure_managed_identity(tx, id, PrincipalKind::UserAssigned)?;
        Ok(IdentityProperties {
            tenant_id: ctx.env().tenant_id.clone(),
            principal_id: principal.object_id,
            client_id: principal.app_id,
            isolation_scope: scope,
        })
    }
}

impl Endpoints for ManagedIdentityProvider {
    type Endpoint = Route;

    fn info(&self) -> ProviderInfo {
        info_of()
    }

    fn parse(&self, req: &ArmRequest) -> Result<Route, ArmError> {
        route::parse(req)
    }

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, route: Route) -> Result<Reply, ArmError> {
        match route {
            Route::Create => tracked::put::<Identity>(ctx, req, false),
            Route::Update => tracked::put::<Identity>(ctx, req, true),
            Route::Get => tracked::get::<Identity>(ctx, req),
            Route::Delete => tracked::delete::<Identity>(ctx, req),
            Route::List => tracked::list::<Identity>(ctx, req),
            Route::ListAssociatedResources => associated_resources(ctx, req),
            Route::SystemIdentity => system_identity(ctx, req),
        }
    }
}

pub fn info_of() -> ProviderInfo {
    ProviderInfo::new(
        NAMESPACE,
        &["userAssignedIdentities", "identities"],
        API.versions("userAssignedIdentities"),
        false,
        true,
    )
}

/// Whether a resource document names `identity_id` among its user-assigned
/// identities (the `identity` block every ARM resource shares).
pub fn uses_identity(doc: &Value, identity_id: &str) -> bool {
    doc["identity"]["userAssignedIdentities"]
        .as_object()
        .is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(identity_id)))
}

/// POST `…/userAssignedIdentities/{name}/listAssociatedResources`: the
/// resources that use the identity, those the caller may read.
fn associated_resources(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let uid = req.path.prefix(req.path.segments.len() - 1);
    let identity = ctx
        .store()
        .view(|r| tracked::load::<Identity>(r, &uid))?
        .ok_or_else(|| tracked::not_found::<Identity>(req))?;
    let docs = ctx
        .store()
        .view(|r| resource::scan_mentioning(r, "/subscriptions/", &[&identity.id]))?;
    let mut value = Vec::new();
    for (_, d) in docs {
        let id = d["id"].as_str().unwrap_or_default();
        if !uses_identity(&d, &identity.id) || !ctx.can_see(id)? {
            continue;
        }
        let path = recoverite_arm::id::parse_id(id);
        value.push(json!({
            "id": id,
            "name": d["name"],
            "type": d["type"],
            "resourceGroup": path.as_ref().and_then(|p| p.resource_group.clone()),
            "subscriptionId": path.as_ref().and_then(|p| p.subscription.clone()),
        }));
    }
    Ok(Reply::ok(
        json!({"totalCount": value.len(), "value": value}),
    ))
}

/// `GET {resource}/providers/Microsoft.ManagedIdentity/identities/default`.
fn system_identity(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    let p = ctx
        .store()
        .view(|r| principals::for_resource(r, &scope, PrincipalKind::SystemAssigned))?;
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

/// What this crate brings to the server: user-assigned identities.
pub fn manifest() -> recoverite_manifest::Manifest {
    recoverite_manifest::Manifest::new("recoverite-rp-msi").provider(ManagedIdentityProvider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_scope_is_none_or_regional() {
        assert_eq!(isolation_scope("None").unwrap(), IsolationScope::None);
        assert_eq!(
            isolation_scope("Regional").unwrap(),
            IsolationScope::Regional
        );
        assert_eq!(
            isolation_scope("regional").unwrap_err().code(),
            "InvalidParameter"
        );
    }

    #[test]
    fn a_resource_uses_an_identity_it_names() {
        let id = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u";
        let doc = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {id.to_uppercase(): {}}}});
        assert!(uses_identity(&doc, id));
        assert!(!uses_identity(
            &json!({"identity": {"type": "SystemAssigned"}}),
            id
        ));
    }

    #[test]
    fn properties_round_trip_as_azure_spells_them() {
        let p = IdentityProperties {
            tenant_id: "t".into(),
            principal_id: "p".into(),
            client_id: "c".into(),
            isolation_scope: IsolationScope::Regional,
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            json!({"tenantId": "t", "principalId": "p", "clientId": "c", "isolationScope": "Regional"})
        );
        assert_eq!(serde_json::from_value::<IdentityProperties>(v).unwrap(), p);
    }
}
