//! Microsoft.RecoveryServices: vaults with private endpoints for Site
//! Recovery and Backup (documents 000, 001 and 004).

pub mod certificates;
pub mod connections;
pub mod containers;
pub mod deleted_vaults;
pub mod dependents;
pub mod extended_info;
pub mod operations;
/// Vault records live in the Recovery Services core, shared with Site Recovery and Backup.
pub use recoverite_rs_core::vault as meta;
pub mod route;
pub mod target;
pub mod vault;

use serde_json::{json, Value};

use recoverite_arm::{
    ArmError, ArmRequest, Ctx, Endpoints, ProviderInfo, Reply, ResourceType, ScopeCascade,
};
use recoverite_privatelink::PrivateLinkTarget;
use recoverite_store::WriteTx;

pub use route::Route;
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
    "vaults/operationStatus",
    "vaults/operationResults",
    "locations/capabilities",
    "locations/deletedVaults",
    "locations/deletedVaults/undelete",
    "locations/deletedVaults/operations",
];

pub struct RecoveryServicesProvider;

impl RecoveryServicesProvider {
    fn info_of(&self) -> ProviderInfo {
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
}

impl Endpoints for RecoveryServicesProvider {
    type Endpoint = Route;

    fn info(&self) -> ProviderInfo {
        self.info_of()
    }

    fn parse(&self, req: &ArmRequest) -> Result<Route, ArmError> {
        route::parse(req)
    }

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, route: Route) -> Result<Reply, ArmError> {
        use Route::*;
        match route {
            CreateVault => vault::put(ctx, req, false),
            UpdateVault => vault::put(ctx, req, true),
            GetVault => vault::get(ctx, req),
            DeleteVault => vault::delete(ctx, req),
            ListVaults => vault::list(ctx, req),
            PutExtendedInfo => extended_info::put(ctx, req, false),
            PatchExtendedInfo => extended_info::put(ctx, req, true),
            GetExtendedInfo => extended_info::get(ctx, req),
            UploadCertificate => certificates::put(ctx, req),
            DeleteRegisteredIdentity => certificates::delete_registered_identity(ctx, req),
            GetConnection => connections::get(ctx, req),
            PutConnection => connections::put(ctx, req),
            DeleteConnection => connections::delete(ctx, req),
            ListConnections => connections::list(ctx, req),
            ConnectionOperationStatus => connections::operation_status(ctx, req),
            GetPrivateLinkResource | ListPrivateLinkResources => private_link_resources(ctx, req),
            Usages => vault::usages(ctx, req),
            ReplicationUsages => vault::replication_usages(ctx, req),
            RegisterContainer => containers::register(ctx, req),
            GetContainer => containers::get(ctx, req),
            UnregisterContainer => containers::unregister(ctx, req),
            ListContainers => containers::list(ctx, req),
            CheckNameAvailability => vault::check_name_availability(ctx, req),
            VaultOperationStatus => operations::vault_operation(ctx, req, true),
            VaultOperationResult => operations::vault_operation(ctx, req, false),
            Capabilities => operations::capabilities(req),
            ListDeletedVaults => deleted_vaults::list(ctx, req),
            GetDeletedVault => deleted_vaults::get(ctx, req),
            UndeleteVault => deleted_vaults::undelete(ctx, req),
            DeletedVaultOperationStatus => deleted_vaults::operation_status(ctx, req),
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
    let vid = v.id.clone();
    let groups = ctx
        .store()
        .view(|r| VaultTarget.groups(r, &v.to_value()?))?;
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

/// What this crate brings to the server: vaults (the root of
/// Microsoft.RecoveryServices), the Backup vault and key vault they depend
/// on, their private link targets, and the vault records' clean-up.
pub fn manifest() -> recoverite_manifest::Manifest {
    recoverite_manifest::Manifest::new("recoverite-rp-recoveryservices")
        .provider(RecoveryServicesProvider)
        .provider(dependents::data_protection())
        .provider(dependents::key_vault())
        .private_link_target(VaultTarget)
        .private_link_target(dependents::BackupVaultTarget)
        .private_link_target(dependents::KeyVaultTarget)
        .cascade(recoverite_manifest::Stage::RecoveryServices, VaultCascade)
}
