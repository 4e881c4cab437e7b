//! Site Recovery, Azure to Azure: the vault's `replication*` resources.
//! Every change is a long-running operation answered 202 + Location, and
//! leaves a job behind, as Site Recovery does.

pub mod fabrics;
pub mod failover;
pub mod groups;
pub mod health;
pub mod jobs;
pub mod network_mappings;
pub mod policies;
pub mod protected_items;
pub mod replication_loop;
pub mod reprotect;
pub mod runtime;
pub mod state;
pub mod targets;

use http::Method;
use serde_json::Value;

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{
    resource, ArmError, ArmRequest, Ctx, Provider, ProviderInfo, Reply, ResourceType,
};
use recoverite_store::{Reader, WriteTx};

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

impl Provider for SiteRecoveryProvider {
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
            (["vaults", "replicationfabrics"], true, M::PUT) => fabrics::put_fabric(ctx, req),
            (["vaults", "replicationfabrics"], true, M::GET) => get(ctx, req, "fabric"),
            (["vaults", "replicationfabrics"], true, M::DELETE) => {
                fabrics::delete(ctx, req, "fabric")
            }
            (["vaults", "replicationfabrics"], false, M::GET) => list_children(ctx, req),
            (["vaults", "replicationfabrics", "replicationprotectioncontainers"], true, M::PUT) => {
                fabrics::put_container(ctx, req)
            }
            (["vaults", "replicationfabrics", "replicationprotectioncontainers"], true, M::GET) => {
                get(ctx, req, "protection container")
            }
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers"],
                false,
                M::GET,
            ) => list_children(ctx, req),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotectioncontainermappings"],
                true,
                M::PUT,
            ) => fabrics::put_mapping(ctx, req),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotectioncontainermappings"],
                true,
                M::GET,
            ) => get(ctx, req, "protection container mapping"),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotectioncontainermappings"],
                true,
                M::DELETE,
            ) => fabrics::delete(ctx, req, "mapping"),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotectioncontainermappings"],
                false,
                M::GET,
            ) => list_children(ctx, req),
            (["vaults", "replicationfabrics", "remove"], false, M::POST) => {
                fabrics::delete(ctx, &on_parent(req), "fabric")
            }
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "remove"],
                false,
                M::POST,
            ) => fabrics::delete(ctx, &on_parent(req), "container"),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotectioncontainermappings", "remove"],
                false,
                M::POST,
            ) => fabrics::delete(ctx, &on_parent(req), "mapping"),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotecteditems"],
                true,
                M::PUT,
            ) => protected_items::enable(ctx, req, &self.engine, &self.registry, &self.rt),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotecteditems"],
                true,
                M::GET,
            ) => protected_items::get(ctx, req, &self.engine),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotecteditems"],
                true,
                M::DELETE,
            ) => protected_items::disable(ctx, req, &self.engine),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotecteditems"],
                false,
                M::GET,
            ) => protected_items::list(ctx, req, &self.engine, false),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotecteditems", "remove"],
                false,
                M::POST,
            ) => protected_items::disable(ctx, &on_parent(req), &self.engine),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotecteditems", "unplannedfailover"],
                false,
                M::POST,
            ) => failover::unplanned_failover(ctx, req, &self.engine, &self.rt),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotecteditems", "failovercommit"],
                false,
                M::POST,
            ) => failover::commit(ctx, req, &self.engine),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotecteditems", "testfailover"],
                false,
                M::POST,
            ) => failover::test_failover(ctx, req, &self.engine, &self.rt),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotecteditems", "testfailovercleanup"],
                false,
                M::POST,
            ) => failover::test_failover_cleanup(ctx, req, &self.rt),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotecteditems", "reprotect"],
                false,
                M::POST,
            ) => reprotect::reprotect(ctx, req, &self.engine, &self.rt),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotecteditems", "recoverypoints"],
                true,
                M::GET,
            ) => protected_items::points(ctx, req, &self.engine, true),
            (
                ["vaults", "replicationfabrics", "replicationprotectioncontainers", "replicationprotecteditems", "recoverypoints"],
                false,
                M::GET,
            ) => protected_items::points(ctx, req, &self.engine, false),
            (["vaults", "replicationprotecteditems"], false, M::GET) => {
                protected_items::list(ctx, req, &self.engine, true)
            }
            (["vaults", "replicationprotectioncontainers"], false, M::GET) => {
                list_in_vault(ctx, req, fabrics::CONTAINER_TYPE)
            }
            (["vaults", "replicationprotectioncontainermappings"], false, M::GET) => {
                list_in_vault(ctx, req, fabrics::MAPPING_TYPE)
            }
            (
                ["vaults", "replicationfabrics", "replicationnetworks", "replicationnetworkmappings"],
                true,
                M::PUT | M::PATCH,
            ) => network_mappings::put(ctx, req),
            (
                ["vaults", "replicationfabrics", "replicationnetworks", "replicationnetworkmappings"],
                true,
                M::GET,
            ) => get(ctx, req, "network mapping"),
            (
                ["vaults", "replicationfabrics", "replicationnetworks", "replicationnetworkmappings"],
                true,
                M::DELETE,
            ) => network_mappings::delete(ctx, req),
            (
                ["vaults", "replicationfabrics", "replicationnetworks", "replicationnetworkmappings"],
                false,
                M::GET,
            ) => list_children(ctx, req),
            (["vaults", "replicationnetworkmappings"], false, M::GET) => {
                list_in_vault(ctx, req, network_mappings::MAPPING_TYPE)
            }
            (["vaults", "replicationpolicies"], true, M::PUT) => policies::put(ctx, req, false),
            (["vaults", "replicationpolicies"], true, M::PATCH) => policies::put(ctx, req, true),
            (["vaults", "replicationpolicies"], true, M::GET) => get(ctx, req, "policy"),
            (["vaults", "replicationpolicies"], true, M::DELETE) => policies::delete(ctx, req),
            (["vaults", "replicationpolicies"], false, M::GET) => list_children(ctx, req),
            (["vaults", "replicationjobs"], true, M::GET) => get(ctx, req, "job"),
            (["vaults", "replicationjobs"], false, M::GET) => jobs::list(ctx, req),
            (_, _, m) => Err(ArmError::method_not_allowed(m.as_str())),
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
pub fn vault_of(r: &impl Reader, req: &ArmRequest) -> Result<Value, ArmError> {
    let vid = req.path.prefix(8);
    resource::get(r, &vid)?
        .filter(|v| v["type"].as_str() == Some(VAULT_TYPE))
        .ok_or_else(|| {
            ArmError::resource_not_found(
                VAULT_TYPE,
                req.path
                    .provider
                    .as_ref()
                    .map(|p| p.names[0].as_str())
                    .unwrap_or(""),
                req.path.resource_group.as_deref(),
            )
        })
}

fn get(ctx: &Ctx, req: &ArmRequest, what: &str) -> Result<Reply, ArmError> {
    ctx.store().view(|r| {
        vault_of(r, req)?;
        resource::get(r, &req.path.id())?
            .map(Reply::ok)
            .ok_or_else(|| {
                ArmError::new(
                    404,
                    "NotFound",
                    format!(
                        "The {what} '{}' was not found in the vault.",
                        req.path
                            .provider
                            .as_ref()
                            .and_then(|p| p.name())
                            .unwrap_or("")
                    ),
                )
            })
    })
}

fn list_children(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let parent = req.path.parent_id();
    let segment = req.path.segments.last().cloned().unwrap_or_default();
    let items = ctx.store().view(|r| {
        vault_of(r, req)?;
        resource::list_children(r, &parent, &segment)
    })?;
    Ok(Reply::ok(recoverite_arm::paging::page(ctx, req, items)?))
}

fn list_in_vault(ctx: &Ctx, req: &ArmRequest, full_type: &str) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        let v = vault_of(r, req)?;
        resource::list_of_type(r, v["id"].as_str().unwrap_or_default(), full_type)
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
    Ok((
        op,
        vault["location"].as_str().unwrap_or_default().to_string(),
    ))
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
