//! Azure Backup for Azure VMs (`Microsoft.RecoveryServices/vaults/backup*`):
//! policies, discovery, protection, on-demand backups into a snapshot tier
//! (sparse copies of every disk) and the vault tier (a content-addressed
//! chunk store, `recoverite-backup-store`), recovery points, restores to
//! new disks, jobs and the operation records azure-cli follows
//! (`backupOperations/{id}` → `jobId` → `backupJobs/{jobId}`).
//!
//! Each request is parsed once into a [`Route`]; the handler receives it.

pub mod backup_job;
pub mod config;
pub mod crr;
pub mod endpoint;
pub mod ilr;
pub mod items;
pub mod jobs;
pub mod mab;
pub mod points;
pub mod policy;
pub mod policy_model;
pub mod recovery_point;
pub mod restore_job;
pub mod schedule;
pub mod vm_backup;

use std::path::PathBuf;

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Ctx, Endpoints, ProviderInfo, Reply};
use recoverite_blockstore::BlockStore;
use recoverite_rs_core::vault_record::Vault;
use recoverite_store::Reader;

pub const NAMESPACE: &str = "Microsoft.RecoveryServices";
pub const VAULT_TYPE: &str = "Microsoft.RecoveryServices/vaults";
pub const POLICY_TYPE: &str = "Microsoft.RecoveryServices/vaults/backupPolicies";
pub const ITEM_TYPE: &str = recoverite_rs_core::vault::BACKUP_ITEM_TYPE;
pub const POINT_TYPE: &str =
    "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints";
pub const JOB_TYPE: &str = "Microsoft.RecoveryServices/vaults/backupJobs";

/// The types this provider serves beside the vault provider's.
const TYPES: &[&str] = &[
    "vaults/backupPolicies",
    "vaults/backupFabrics/refreshContainers",
    "vaults/backupFabrics/operationResults",
    "vaults/backupFabrics/protectionContainers/protectedItems",
    "vaults/backupFabrics/protectionContainers/protectedItems/operationResults",
    "vaults/backupFabrics/protectionContainers/protectedItems/operationsStatus",
    "vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints",
    "vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/provisionInstantItemRecovery",
    "vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/revokeInstantItemRecovery",
    "vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/listInstantItemRecoveryOperationResult",
    "vaults/backupProtectableItems",
    "vaults/backupProtectedItems",
    "vaults/backupJobs",
    "vaults/backupJobs/operationResults",
    "vaults/backupstorageconfig",
    "vaults/backupconfig",
    "vaults/backupOperations",
    "vaults/backupOperationResults",
    "vaults/backupEncryptionConfigs",
    "vaults/backupResourceGuardProxies",
    "vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/accessToken",
    "locations/backupAadProperties",
    "locations/backupCrossRegionRestore",
    "locations/backupCrrJob",
    "locations/backupCrrJobs",
    "locations/backupCrrOperationResults",
    "locations/backupCrrOperationsStatus",
];

#[derive(Clone)]
pub struct BackupProvider {
    pub blocks: BlockStore,
    /// Where each vault's tier lives on this machine: `{root}/{vault numeric id}/`.
    pub root: PathBuf,
    /// The vault tiers' objects (`{vault numeric id}/chunks/…`): local files
    /// under `root`, or another object store ([`BackupProvider::with_vault_tier`]).
    pub vault_tier: std::sync::Arc<dyn object_store::ObjectStore>,
    /// Whether `vault_tier` is the files under `root` (synced for durability).
    pub vault_tier_is_local: bool,
    /// ARM calls on the caller's behalf (AlternateLocation restores).
    pub as_caller: recoverite_arm::first_party::AsCaller,
}

impl BackupProvider {
    /// Backup with its vault tiers as local files under `root`.
    pub fn new(
        blocks: BlockStore,
        root: PathBuf,
        as_caller: recoverite_arm::first_party::AsCaller,
    ) -> std::io::Result<BackupProvider> {
        std::fs::create_dir_all(&root)?;
        let local = object_store::local::LocalFileSystem::new_with_prefix(&root)
            .map_err(std::io::Error::other)?;
        Ok(BackupProvider {
            blocks,
            root,
            vault_tier: std::sync::Arc::new(local),
            vault_tier_is_local: true,
            as_caller,
        })
    }

    /// The same, with the vault tiers in another object store (S3, Azure
    /// Blob…): each put there is durable by itself.
    pub fn with_vault_tier(
        mut self,
        objects: std::sync::Arc<dyn object_store::ObjectStore>,
    ) -> BackupProvider {
        self.vault_tier = objects;
        self.vault_tier_is_local = false;
        self
    }

    /// The vault tier under `prefix` (a vault's numeric id, or its copy in
    /// the paired region).
    pub fn tier(&self, prefix: &str) -> recoverite_backup_store::ChunkStore {
        recoverite_backup_store::ChunkStore::new(
            self.vault_tier.clone(),
            prefix,
            self.vault_tier_is_local.then(|| self.root.join(prefix)),
        )
    }
}

#[derive(Debug, Clone)]
pub enum CrrRoute {
    AadProperties,
    Restore,
    Job,
    Jobs,
    OperationResult(String),
    OperationStatus(String),
}

#[derive(Debug, Clone, Copy)]
pub enum FileRecoveryAction {
    Provision,
    Revoke,
    Result,
}

/// A Backup request, parsed once from its path and method.
#[derive(Debug)]
pub enum Route {
    Policies,
    Policy(String),
    RefreshContainers,
    FabricOperationResult(String),
    Item {
        container: String,
        item: String,
    },
    ItemOperation {
        container: String,
        item: String,
        op: String,
        /// `operationsStatus` (else `operationResults`).
        status: bool,
    },
    Backup {
        container: String,
        item: String,
    },
    Points {
        container: String,
        item: String,
    },
    Point {
        container: String,
        item: String,
        point: String,
    },
    Restore {
        container: String,
        item: String,
        point: String,
    },
    /// File recovery: `provisionInstantItemRecovery`,
    /// `revokeInstantItemRecovery`, `listInstantItemRecoveryOperationResult`.
    FileRecovery {
        container: String,
        item: String,
        point: String,
        action: FileRecoveryAction,
    },
    /// A point's cross-region restore token (`accessToken`).
    AccessToken {
        container: String,
        item: String,
        point: String,
    },
    /// `locations/{region}/backup…` of cross-region restore.
    Crr {
        region: String,
        kind: CrrRoute,
    },
    ProtectableItems,
    ProtectedItems,
    Jobs,
    Job(String),
    CancelJob(String),
    /// `backupJobs/{job}/operationResults/{op}`: a cancellation's result.
    JobOperationResult(String, String),
    StorageConfig,
    VaultConfig,
    EncryptionConfig,
    ResourceGuardProxies(Option<String>),
    Operation(String),
    OperationResult(String),
}

pub fn route(req: &ArmRequest) -> Result<Route, ArmError> {
    let p = req.provider_part()?;
    let t = req.types_lower()?;
    let t: Vec<&str> = t.iter().map(String::as_str).collect();
    let n = |i: usize| p.names.get(i).cloned().unwrap_or_default();
    let fabric_ok = || n(1).eq_ignore_ascii_case("Azure");
    let r = match t.as_slice() {
        ["vaults", "backuppolicies"] if p.is_resource() => Route::Policy(n(1)),
        ["vaults", "backuppolicies"] => Route::Policies,
        ["vaults", "backupfabrics", "refreshcontainers"] if fabric_ok() => Route::RefreshContainers,
        ["vaults", "backupfabrics", "operationresults"] if fabric_ok() => Route::FabricOperationResult(n(2)),
        ["vaults", "backupfabrics", "protectioncontainers", "protecteditems"] if fabric_ok() && p.is_resource() => {
            Route::Item { container: n(2), item: n(3) }
        }
        ["vaults", "backupfabrics", "protectioncontainers", "protecteditems", kind @ ("operationresults" | "operationsstatus")] if fabric_ok() => {
            Route::ItemOperation { container: n(2), item: n(3), op: n(4), status: *kind == "operationsstatus" }
        }
        ["vaults", "backupfabrics", "protectioncontainers", "protecteditems", "backup"] if fabric_ok() => {
            Route::Backup { container: n(2), item: n(3) }
        }
        ["vaults", "backupfabrics", "protectioncontainers", "protecteditems", "recoverypoints"] if fabric_ok() && p.is_resource() => {
            Route::Point { container: n(2), item: n(3), point: n(4) }
        }
        ["vaults", "backupfabrics", "protectioncontainers", "protecteditems", "recoverypoints"] if fabric_ok() => {
            Route::Points { container: n(2), item: n(3) }
        }
        ["vaults", "backupfabrics", "protectioncontainers", "protecteditems", "recoverypoints", "restore"] if fabric_ok() => {
            Route::Restore { container: n(2), item: n(3), point: n(4) }
        }
        ["vaults", "backupfabrics", "protectioncontainers", "protecteditems", "recoverypoints", a @ ("provisioninstantitemrecovery" | "revokeinstantitemrecovery" | "listinstantitemrecoveryoperationresult")] if fabric_ok() => {
            Route::FileRecovery {
                container: n(2),
                item: n(3),
                point: n(4),
                action: match *a {
                    "provisioninstantitemrecovery" => FileRecoveryAction::Provision,
                    "revokeinstantitemrecovery" => FileRecoveryAction::Revoke,
                    _ => FileRecoveryAction::Result,
                },
            }
        }
        ["vaults", "backupfabrics", "protectioncontainers", "protecteditems", "recoverypoints", "accesstoken"] if fabric_ok() => {
            Route::AccessToken { container: n(2), item: n(3), point: n(4) }
        }
        ["locations", kind] => Route::Crr {
            region: n(0),
            kind: match *kind {
                "backupaadproperties" => CrrRoute::AadProperties,
                "backupcrossregionrestore" => CrrRoute::Restore,
                "backupcrrjob" => CrrRoute::Job,
                "backupcrrjobs" => CrrRoute::Jobs,
                "backupcrroperationresults" if p.is_resource() => CrrRoute::OperationResult(n(1)),
                "backupcrroperationsstatus" if p.is_resource() => CrrRoute::OperationStatus(n(1)),
                _ => return Err(ArmError::bad_request("InvalidResourceType", format!("recoverite does not implement 'locations/{kind}' of Azure Backup."))),
            },
        },
        ["vaults", "backupprotectableitems"] => Route::ProtectableItems,
        ["vaults", "backupprotecteditems"] => Route::ProtectedItems,
        ["vaults", "backupjobs"] if p.is_resource() => Route::Job(n(1)),
        ["vaults", "backupjobs"] => Route::Jobs,
        ["vaults", "backupjobs", "cancel"] => Route::CancelJob(n(1)),
        ["vaults", "backupjobs", "operationresults"] if p.is_resource() => {
            Route::JobOperationResult(n(1), n(2))
        }
        ["vaults", "backupstorageconfig"] if n(1).eq_ignore_ascii_case("vaultstorageconfig") => Route::StorageConfig,
        ["vaults", "backupconfig"] if n(1).eq_ignore_ascii_case("vaultconfig") => Route::VaultConfig,
        ["vaults", "backupencryptionconfigs"] if n(1).eq_ignore_ascii_case("backupResourceEncryptionConfig") => {
            Route::EncryptionConfig
        }
        ["vaults", "backupresourceguardproxies"] => {
            Route::ResourceGuardProxies(p.is_resource().then(|| n(1)))
        }
        ["vaults", "backupoperations"] if p.is_resource() => Route::Operation(n(1)),
        ["vaults", "backupoperationresults"] if p.is_resource() => Route::OperationResult(n(1)),
        _ => {
            return Err(ArmError::bad_request(
                "InvalidResourceType",
                format!(
                    "recoverite does not implement '{}' of Azure Backup yet (Azure VM backup with fabric 'Azure' is served).",
                    p.type_path()
                ),
            ))
        }
    };
    Ok(r)
}

impl Endpoints for BackupProvider {
    type Endpoint = endpoint::Call;

    fn info(&self) -> ProviderInfo {
        ProviderInfo::from_table(NAMESPACE, TYPES, &recoverite_rs_core::API, false, true)
    }

    fn parse(&self, req: &ArmRequest) -> Result<endpoint::Call, ArmError> {
        endpoint::Call::parse(req)
    }

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, call: endpoint::Call) -> Result<Reply, ArmError> {
        use Method as M;
        match (call.route, call.method) {
            (Route::Policies, M::GET) => policy::list(ctx, req),
            (Route::Policy(n), M::GET) => policy::get(ctx, req, &n),
            (Route::Policy(n), M::PUT) => policy::put(ctx, req, &n),
            (Route::Policy(n), M::DELETE) => policy::delete(ctx, req, &n),
            (Route::RefreshContainers, M::POST) => items::refresh(ctx, req),
            (Route::FabricOperationResult(id), M::GET) => {
                jobs::fabric_operation_result(ctx, req, &id)
            }
            (Route::ProtectableItems, M::GET) => items::protectable(ctx, req),
            (Route::ProtectedItems, M::GET) if crr::is_secondary_view(req) => {
                crr::protected_items(ctx, req)
            }
            (Route::ProtectedItems, M::GET) => items::list(ctx, req),
            (
                Route::AccessToken {
                    container,
                    item,
                    point,
                },
                M::POST,
            ) => crr::access_token(ctx, req, &container, &item, &point),
            (Route::Crr { region, kind }, m) => match (kind, m) {
                (CrrRoute::AadProperties, M::GET) => crr::aad_properties(ctx, &region),
                (CrrRoute::Restore, M::POST) => crr::trigger(ctx, req, self, &region),
                (CrrRoute::Jobs, M::POST) => crr::jobs_list(ctx, req, &region),
                (CrrRoute::Job, M::POST) => crr::job_get(ctx, req, &region),
                (CrrRoute::OperationStatus(op), M::GET) => crr::operation_status(ctx, &region, &op),
                (CrrRoute::OperationResult(op), M::GET) => crr::operation_result(ctx, &region, &op),
                (_, m) => Err(ArmError::method_not_allowed(m.as_str())),
            },
            (Route::Item { container, item }, M::PUT) => items::put(ctx, req, &container, &item),
            (Route::Item { container, item }, M::GET) => items::get(ctx, req, &container, &item),
            (Route::Item { container, item }, M::DELETE) => {
                items::delete(ctx, req, self, &container, &item)
            }
            (Route::ItemOperation { op, .. }, M::GET) => jobs::item_operation(ctx, req, &op),
            (Route::Backup { container, item }, M::POST) => {
                mab::refuse_for_mab(ctx, req, &container, &item)?;
                vm_backup::backup(ctx, req, self, &container, &item)
            }
            (Route::Points { container, item }, M::GET) if crr::is_secondary_view(req) => {
                crr::points_list(ctx, req, &container, &item)
            }
            (Route::Points { container, item }, M::GET) => {
                points::list(ctx, req, &container, &item)
            }
            (
                Route::Point {
                    container,
                    item,
                    point,
                },
                M::GET,
            ) => {
                if crr::is_secondary_view(req) {
                    crr::point_get(ctx, req, &container, &item, &point)
                } else {
                    points::get(ctx, req, &container, &item, &point)
                }
            }
            (
                Route::Restore {
                    container,
                    item,
                    point,
                },
                M::POST,
            ) => {
                mab::refuse_for_mab(ctx, req, &container, &item)?;
                points::restore(ctx, req, self, &container, &item, &point)
            }
            (
                Route::FileRecovery {
                    container,
                    item,
                    point,
                    action,
                },
                M::POST,
            ) => match action {
                FileRecoveryAction::Provision => {
                    ilr::provision(ctx, req, self, &container, &item, &point)
                }
                FileRecoveryAction::Revoke => {
                    ilr::revoke(ctx, req, self, &container, &item, &point)
                }
                FileRecoveryAction::Result => {
                    ilr::operation_result(ctx, req, &container, &item, &point)
                }
            },
            (Route::Jobs, M::GET) => jobs::list(ctx, req),
            (Route::Job(id), M::GET) => jobs::get(ctx, req, &id),
            (Route::CancelJob(id), M::POST) => jobs::cancel(ctx, req, &id),
            (Route::JobOperationResult(id, op), M::GET) => {
                jobs::job_operation_result(ctx, req, &id, &op)
            }
            (Route::StorageConfig, M::GET | M::PUT | M::PATCH) => config::storage(ctx, req),
            (Route::VaultConfig, M::GET | M::PUT | M::PATCH) => config::vault(ctx, req),
            (Route::EncryptionConfig, M::GET | M::PUT | M::PATCH) => config::encryption(ctx, req),
            (Route::ResourceGuardProxies(n), M::GET) => {
                config::resource_guard_proxies(ctx, req, n.as_deref())
            }
            (Route::Operation(id), M::GET) => jobs::operation(ctx, req, &id),
            (Route::OperationResult(id), M::GET) => jobs::operation_result(ctx, req, &id),
            (_, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}

/// The vault a request is under (its id), or 404.
/// The vault at `vid` (typed; gone is an error, never an empty vault).
pub fn vault_record(r: &impl Reader, vid: &str) -> Result<Vault, ArmError> {
    recoverite_rs_core::vault_record::load(r, vid)?.ok_or_else(|| {
        ArmError::resource_not_found(
            VAULT_TYPE,
            vid.rsplit('/').next().unwrap_or_default(),
            recoverite_arm::id::parse_id(vid)
                .and_then(|p| p.resource_group)
                .as_deref(),
        )
    })
}

pub fn vault_of(r: &impl Reader, req: &ArmRequest) -> Result<String, ArmError> {
    let vid = req.path.prefix(8);
    match recoverite_rs_core::vault_record::load(r, &vid)? {
        Some(v) => Ok(v.id),
        _ => Err(ArmError::resource_not_found(
            VAULT_TYPE,
            req.path
                .provider
                .as_ref()
                .map(|p| p.names[0].as_str())
                .unwrap_or(""),
            req.path.resource_group.as_deref(),
        )),
    }
}

/// Azure's names for a VM's container and item.
pub fn container_name(rg: &str, vm: &str) -> String {
    format!("iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}")
}

pub fn item_name(rg: &str, vm: &str) -> String {
    format!("vm;iaasvmcontainerv2;{rg};{vm}")
}

/// `(resource group, vm)` from a container or item name, case kept.
pub fn parse_workload_name(name: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = name.split(';').collect();
    match parts.as_slice() {
        [kind, v2, rg, vm]
            if (kind.eq_ignore_ascii_case("vm")
                || kind.eq_ignore_ascii_case("iaasvmcontainer"))
                && v2.eq_ignore_ascii_case("iaasvmcontainerv2") =>
        {
            Some((rg.to_string(), vm.to_string()))
        }
        _ => None,
    }
}

/// What this crate brings to the server: Azure Backup under
/// Microsoft.RecoveryServices, its vault tiers under `root`.
pub fn manifest(
    blocks: &BlockStore,
    root: PathBuf,
    as_caller: &recoverite_arm::first_party::AsCaller,
) -> std::io::Result<recoverite_manifest::Manifest> {
    Ok(
        recoverite_manifest::Manifest::new("recoverite-rp-backup").provider(BackupProvider::new(
            blocks.clone(),
            root,
            as_caller.clone(),
        )?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names_round_trip() {
        assert_eq!(
            container_name("rg", "vm1"),
            "iaasvmcontainer;iaasvmcontainerv2;rg;vm1"
        );
        assert_eq!(item_name("rg", "vm1"), "vm;iaasvmcontainerv2;rg;vm1");
        assert_eq!(
            parse_workload_name("VM;iaasvmcontainerv2;Rg;Vm1"),
            Some(("Rg".into(), "Vm1".into()))
        );
        assert_eq!(
            parse_workload_name("IaasVMContainer;iaasvmcontainerv2;rg;vm"),
            Some(("rg".into(), "vm".into()))
        );
        assert_eq!(parse_workload_name("sqldatabase;mssqlserver;db"), None);
    }
}
