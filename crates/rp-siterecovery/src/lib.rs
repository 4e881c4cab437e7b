#![recursion_limit = "256"]
//! Site Recovery, Azure to Azure: the vault's `replication*` resources.
//! Every change is a long-running operation answered 202 + Location, and
//! leaves a job behind, as Site Recovery does.

pub mod enable_rules;
pub mod fabrics;
pub mod failover;
pub mod groups;
pub mod health;
pub mod item;
pub mod jobs;
pub mod network_mappings;
pub mod policies;
pub mod protected_items;
pub mod records;
pub mod replication_loop;
pub mod reprotect;
pub mod route;
pub mod runtime;
pub mod targets;

use serde_json::Value;

use recoverite_arm::document::{self, Document};
use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{
    resource, ArmError, ArmRequest, Ctx, Endpoints, ProviderInfo, Reply, ResourceType,
};
use recoverite_rs_core::vault_record::Vault;
use recoverite_store::{Reader, WriteTx};

pub use route::Route;

pub const NAMESPACE: &str = "Microsoft.RecoveryServices";
pub const VAULT_TYPE: &str = "Microsoft.RecoveryServices/vaults";

const TYPES: &[&str] = &[
    "vaults/replicationFabrics",
    "vaults/replicationFabrics/replicationProtectionContainers",
    "vaults/replicationFabrics/replicationProtectionContainers/replicationProtectionContainerMappings",
    "vaults/replicationProtectionContainers",
    "vaults/replicationProtectionContainerMappings",
    "vaults/replicationPolicies",
    "vaults/replicationJobs",
    "vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems",
    "vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems/recoveryPoints",
    "vaults/replicationProtectedItems",
    "vaults/replicationFabrics/replicationNetworks",
    "vaults/replicationFabrics/replicationNetworks/replicationNetworkMappings",
    "vaults/replicationNetworkMappings",
];

pub struct SiteRecoveryProvider {
    pub engine: recoverite_replication::Engine,
    /// Enabling replication adds the region pair's names to the vault's private endpoints.
    pub registry: std::sync::Arc<recoverite_privatelink::Registry>,
    /// DNS, tokens, the cache and first-party ARM calls, wired by the server.
    pub rt: std::sync::Arc<runtime::Runtime>,
}

impl SiteRecoveryProvider {
    fn info_of() -> ProviderInfo {
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

impl Endpoints for SiteRecoveryProvider {
    type Endpoint = Route;

    fn info(&self) -> ProviderInfo {
        Self::info_of()
    }

    fn parse(&self, req: &ArmRequest) -> Result<Route, ArmError> {
        route::parse(req)
    }

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, route: Route) -> Result<Reply, ArmError> {
        let (engine, rt) = (&self.engine, &self.rt);
        use Route::*;
        match route {
            PutFabric => fabrics::put_fabric(ctx, req),
            GetFabric => get::<records::Fabric>(ctx, req),
            DeleteFabric => fabrics::delete(ctx, req, "fabric"),
            RemoveFabric => fabrics::delete(ctx, &on_parent(req), "fabric"),
            PutContainer => fabrics::put_container(ctx, req),
            GetContainer => get::<records::ProtectionContainer>(ctx, req),
            RemoveContainer => fabrics::delete(ctx, &on_parent(req), "container"),
            PutContainerMapping => fabrics::put_mapping(ctx, req),
            GetContainerMapping => get::<records::ContainerMapping>(ctx, req),
            DeleteContainerMapping => fabrics::delete(ctx, req, "mapping"),
            RemoveContainerMapping => fabrics::delete(ctx, &on_parent(req), "mapping"),
            ListFabrics => list_children::<records::Fabric>(ctx, req),
            ListContainers => list_children::<records::ProtectionContainer>(ctx, req),
            ListContainerMappings => list_children::<records::ContainerMapping>(ctx, req),
            ListNetworkMappings => list_children::<network_mappings::NetworkMapping>(ctx, req),
            ListPolicies => list_children::<policies::ReplicationPolicy>(ctx, req),
            EnableProtection => protected_items::enable(ctx, req, engine, &self.registry, rt),
            GetProtectedItem => protected_items::get(ctx, req, engine),
            PurgeProtectedItem => protected_items::disable(ctx, req, engine),
            DisableProtection => protected_items::disable(ctx, &on_parent(req), engine),
            ListProtectedItems => protected_items::list(ctx, req, engine, false),
            ListVaultProtectedItems => protected_items::list(ctx, req, engine, true),
            UnplannedFailover => failover::unplanned_failover(ctx, req, engine, rt),
            FailoverCommit => failover::commit(ctx, req, engine),
            TestFailover => failover::test_failover(ctx, req, engine, rt),
            TestFailoverCleanup => failover::test_failover_cleanup(ctx, req, rt),
            Reprotect => reprotect::reprotect(ctx, req, engine, rt),
            GetRecoveryPoint => protected_items::points(ctx, req, engine, true),
            ListRecoveryPoints => protected_items::points(ctx, req, engine, false),
            ListVaultContainers => list_in_vault(ctx, req, fabrics::CONTAINER_TYPE),
            ListVaultContainerMappings => list_in_vault(ctx, req, fabrics::MAPPING_TYPE),
            PutNetworkMapping => network_mappings::put(ctx, req),
            GetNetworkMapping => get::<network_mappings::NetworkMapping>(ctx, req),
            DeleteNetworkMapping => network_mappings::delete(ctx, req),
            ListVaultNetworkMappings => list_in_vault(ctx, req, network_mappings::MAPPING_TYPE),
            CreatePolicy => policies::put(ctx, req, false),
            UpdatePolicy => policies::put(ctx, req, true),
            GetPolicy => get::<policies::ReplicationPolicy>(ctx, req),
            DeletePolicy => policies::delete(ctx, req),
            GetJob => get::<jobs::ReplicationJob>(ctx, req),
            ListJobs => jobs::list(ctx, req),
        }
    }
}

/// A `POST …/{resource}/remove` request seen as a request on the resource.
fn on_parent(req: &ArmRequest) -> ArmRequest {
    let mut r = req.clone();
    r.path.segments.pop();
    if let Some(p) = r.path.provider.as_mut() {
        p.types.pop();
    }
    r
}

/// The vault a request is under.
pub fn vault_of(r: &impl Reader, req: &ArmRequest) -> Result<Vault, ArmError> {
    recoverite_rs_core::vault_record::of_request(r, req)
}

/// GET of one of a vault's typed Site Recovery documents.
fn get<T: Document>(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store().view(|r| {
        vault_of(r, req)?;
        match document::load::<T>(r, &req.path.id())? {
            Some(t) => Ok(Reply::ok(document::to_value(&t)?)),
            None => Err(ArmError::new(
                404,
                "NotFound",
                format!(
                    "The {} '{}' was not found in the vault.",
                    T::NOUN,
                    req.resource_name()
                ),
            )),
        }
    })
}

/// A list of one of a vault's typed Site Recovery documents under its parent.
fn list_children<T: Document>(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let parent = req.path.parent_id();
    let segment = req.path.segments.last().cloned().unwrap_or_default();
    let items = ctx.store().view(|r| {
        vault_of(r, req)?;
        document::children::<T>(r, &parent, &segment)?
            .iter()
            .map(document::to_value)
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(Reply::ok(recoverite_arm::paging::page(ctx, req, items)?))
}

fn list_in_vault(ctx: &Ctx, req: &ArmRequest, full_type: &str) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        let v = vault_of(r, req)?;
        resource::list_of_type(r, &v.id, full_type)
    })?;
    Ok(Reply::ok(recoverite_arm::paging::page(ctx, req, items)?))
}

/// The operation record of a finished change, saved in the same transaction
/// as the change; its result is `doc` (None: 204 No Content).
pub fn finish(
    ctx: &Ctx,
    req: &ArmRequest,
    tx: &mut WriteTx,
    doc: Option<Value>,
) -> Result<(OperationRecord, String), ArmError> {
    let vault = vault_of(tx, req)?;
    let op = OperationRecord::new(ctx, NAMESPACE, &req.path.id()).succeed(doc);
    op.save(tx)?;
    Ok((op, vault.location.clone()))
}

/// Site Recovery's reply to a change: 202 with a Location to poll.
pub fn accepted(ctx: &Ctx, req: &ArmRequest, done: &(OperationRecord, String)) -> Reply {
    let (op, location) = done;
    let sub = req.path.subscription.clone().unwrap_or_default();
    lro::with_retry_after(
        ctx,
        Reply::empty(202).header(
            "Location",
            lro::result_url(ctx, &sub, location, op, &req.api_version),
        ),
    )
}

/// What this crate brings to the server: Site Recovery under
/// Microsoft.RecoveryServices.
pub fn manifest(
    engine: &recoverite_replication::Engine,
    registry: &std::sync::Arc<recoverite_privatelink::Registry>,
    rt: &std::sync::Arc<runtime::Runtime>,
) -> recoverite_manifest::Manifest {
    recoverite_manifest::Manifest::new("recoverite-rp-siterecovery").provider(
        SiteRecoveryProvider {
            engine: engine.clone(),
            registry: registry.clone(),
            rt: rt.clone(),
        },
    )
}
