//! Microsoft.RecoveryServices: vaults with private endpoints for Site
//! Recovery and Backup (documents 000, 001 and 004).

pub mod certificates;
pub mod connections;
pub mod containers;
pub mod dependents;
pub mod extended_info;
/// Vault records live in the Recovery Services core, shared with Site Recovery and Backup.
pub use recoverite_rs_core::vault as meta;
pub mod target;
pub mod vault;

use http::Method;
use serde_json::{json, Value};

use recoverite_arm::{
    ArmError, ArmRequest, Ctx, Provider, ProviderInfo, Reply, ResourceType, ScopeCascade,
};
use recoverite_privatelink::PrivateLinkTarget;
use recoverite_store::WriteTx;

pub use target::VaultTarget;

pub const NAMESPACE: &str = "Microsoft.RecoveryServices";

const TYPES: &[&str] = &[
    "vaults",
    "vaults/certificates",
    "vaults/registeredIdentities",
    "vaults/privateEndpointConnections",
    "vaults/privateEndpointConnections/operationsStatus",
    "vaults/privateLinkResources",
    "vaults/usages",
    "vaults/extendedInformation",
    "vaults/replicationUsages",
    "vaults/backupFabrics",
    "vaults/backupFabrics/protectionContainers",
    "vaults/backupProtectionContainers",
    "locations",
    "locations/checkNameAvailability",
];

pub struct RecoveryServicesProvider;

impl Provider for RecoveryServicesProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            namespace: NAMESPACE,
            resource_types: TYPES
                .iter()
                .map(|t| ResourceType {
                    name: t,
                    api_versions: recoverite_rs_core::API.versions(t),
                    global: false,
                })
                .collect(),
            requires_registration: true,
        }
    }

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let p = req.provider_part()?;
        let types: Vec<String> = p.types.iter().map(|t| t.to_ascii_lowercase()).collect();
        let t: Vec<&str> = types.iter().map(String::as_str).collect();
        use Method as M;
        match (t.as_slice(), p.is_resource(), req.method.clone()) {
            (["vaults"], true, M::PUT) => vault::put(ctx, req, false),
            (["vaults"], true, M::PATCH) => vault::put(ctx, req, true),
            (["vaults"], true, M::GET) => vault::get(ctx, req),
            (["vaults"], true, M::DELETE) => vault::delete(ctx, req),
            (["vaults"], false, M::GET) => vault::list(ctx, req),
            (["vaults", "extendedinformation"], true, M::PUT) => {
                extended_info::put(ctx, req, false)
            }
            (["vaults", "extendedinformation"], true, M::PATCH) => {
                extended_info::put(ctx, req, true)
            }
            (["vaults", "extendedinformation"], true, M::GET) => extended_info::get(ctx, req),
            (["vaults", "certificates"], true, M::PUT) => certificates::put(ctx, req),
            (["vaults", "registeredidentities"], true, M::DELETE) => {
                certificates::delete_registered_identity(ctx, req)
            }
            (["vaults", "privateendpointconnections"], true, M::GET) => connections::get(ctx, req),
            (["vaults", "privateendpointconnections"], true, M::PUT) => connections::put(ctx, req),
            (["vaults", "privateendpointconnections"], true, M::DELETE) => {
                connections::delete(ctx, req)
            }
            (["vaults", "privateendpointconnections"], false, M::GET) => {
                connections::list(ctx, req)
            }
            (["vaults", "privateendpointconnections", "operationsstatus"], true, M::GET) => {
                connections::operation_status(ctx, req)
            }
            (["vaults", "privatelinkresources"], _, M::GET) => private_link_resources(ctx, req),
            (["vaults", "usages"], false, M::GET) => vault::usages(ctx, req),
            (["vaults", "replicationusages"], false, M::GET) => vault::replication_usages(ctx, req),
            (["vaults", "backupfabrics", "protectioncontainers"], true, M::PUT) => {
                containers::register(ctx, req)
            }
            (["vaults", "backupfabrics", "protectioncontainers"], true, M::GET) => {
                containers::get(ctx, req)
            }
            (["vaults", "backupfabrics", "protectioncontainers"], true, M::DELETE) => {
                containers::unregister(ctx, req)
            }
            (["vaults", "backupprotectioncontainers"], false, M::GET) => containers::list(ctx, req),
            (["locations", "checknameavailability"], false, M::POST) => {
                vault::check_name_availability(ctx, req)
            }
            (_, _, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}

fn resource_name(group: &str) -> &'static str {
    match group {
        target::SITE_RECOVERY => "siteRecoveryResource",
        target::BACKUP => "backupResource",
        _ => "backupSecondaryResource",
    }
}

fn private_link_resources(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let v = ctx.store().view(|r| vault::vault_of(r, req))?;
    let vid = v["id"].as_str().unwrap_or_default().to_string();
    let groups = ctx.store().view(|r| VaultTarget.groups(r, &v))?;
    let items: Vec<Value> = groups
        .iter()
        .map(|g| {
            json!({
                "id": format!("{vid}/privateLinkResources/{}", resource_name(&g.group_id)),
                "name": resource_name(&g.group_id),
                "type": format!("{}/privateLinkResources", target::VAULT_TYPE),
                "properties": {"groupId": g.group_id, "requiredMembers": g.required_members, "requiredZoneNames": g.required_zone_names},
            })
        })
        .collect();
    let p = req.provider_part()?;
    if let Some(n) = p.name() {
        return items
            .into_iter()
            .find(|i| i["name"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(n)))
            .map(Reply::ok)
            .ok_or_else(|| ArmError::new(404, "PrivateLinkResourceNotFound", format!("Private link resource '{n}' does not exist; use siteRecoveryResource, backupResource or backupSecondaryResource.")));
    }
    Ok(Reply::ok(recoverite_arm::paging::page(ctx, req, items)?))
}

/// Forgets vault records of deleted scopes.
pub struct VaultCascade;

impl ScopeCascade for VaultCascade {
    fn scope_deleted(&self, tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
        meta::forget_under(tx, scope)
    }
}
