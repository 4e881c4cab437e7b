//! Microsoft.Storage: storage accounts. The account is a private link target
//! (`blob`, `queue`, `table`, `file`, `web`, `dfs`; endpoints only on General
//! Purpose v2), its firewall (`networkAcls`) and public network access
//! decide who reaches its data plane through the gateway, and
//! [`cache::check_for_replication`] holds the rules Site Recovery's cache
//! accounts must meet (document 000 and 002).

pub mod account;
pub mod accounts;
pub mod blob_docs;
pub mod cache;
pub mod containers;
pub mod keys;
pub mod route;
pub mod sas;
pub mod target;
pub mod worm;

use worm::PolicyAction;

use recoverite_arm::{ArmError, ArmRequest, Ctx, Endpoints, ProviderInfo, Reply};
pub use route::Route;

pub const NAMESPACE: &str = "Microsoft.Storage";

recoverite_arm::api_versions!(
    "../api-versions.txt",
    ["storageAccounts", "checkNameAvailability", "operations"]
);
pub const ACCOUNT_TYPE: &str = "Microsoft.Storage/storageAccounts";

pub struct StorageProvider {
    /// The Blob data plane's containers (ARM's `blobServices/default/containers`).
    pub containers: containers::Store,
}

impl StorageProvider {
    fn info_of() -> ProviderInfo {
        ProviderInfo::new(
            NAMESPACE,
            &[
                "storageAccounts",
                "storageAccounts/privateEndpointConnections",
                "storageAccounts/privateLinkResources",
                "storageAccounts/blobServices",
                "storageAccounts/blobServices/containers",
                "storageAccounts/blobServices/containers/immutabilityPolicies",
                "checkNameAvailability",
                "operations",
            ],
            API.versions("storageAccounts"),
            false,
            true,
        )
    }
}

impl Endpoints for StorageProvider {
    type Endpoint = Route;

    fn info(&self) -> ProviderInfo {
        Self::info_of()
    }

    fn parse(&self, req: &ArmRequest) -> Result<Route, ArmError> {
        route::parse(req)
    }

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, route: Route) -> Result<Reply, ArmError> {
        let account_name = || -> Result<String, ArmError> {
            Ok(req.provider_part()?.names[0].to_ascii_lowercase())
        };
        use Route::*;
        match route {
            CreateAccount => {
                // A new account starts empty: blobs a deleted account of the
                // same name left (its purge not yet swept) are not inherited.
                // (Only for a valid name: found by the arm fuzz target, an
                // over-long one reached the blob store first and was a 500.)
                let name = account_name()?;
                accounts::check_account_name(&name)?;
                let exists = ctx
                    .store()
                    .view(|r| accounts::find_by_name(r, &name))?
                    .is_some();
                if !exists {
                    containers::delete_all(&self.containers, &name)?;
                }
                accounts::put(ctx, req)
            }
            UpdateAccount => accounts::patch(ctx, req),
            GetAccount => accounts::get(ctx, req),
            DeleteAccount => {
                let name = account_name()?;
                if accounts::check_account_name(&name).is_ok() {
                    containers::check_account_delete(&self.containers, &name)?;
                }
                let reply = accounts::delete(ctx, req)?;
                if reply.status == 200 {
                    containers::delete_all(&self.containers, &account_name()?)?;
                }
                Ok(reply)
            }
            ListAccounts => accounts::list(ctx, req),
            CheckNameAvailability => accounts::check_name(ctx, req),
            ListKeys => keys::list(ctx, req),
            RegenerateKey => keys::regenerate(ctx, req),
            ListAccountSas | ListServiceSas => {
                let aid = keys::account_id(ctx, req)?;
                let account = aid
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if route == ListAccountSas {
                    sas::account(ctx, req, &aid, &account)
                } else {
                    sas::service(ctx, req, &aid, &account)
                }
            }
            GetBlobService => containers::get_service(ctx, req),
            PutBlobService => containers::put_service(ctx, req),
            ListBlobServices => containers::list_services(ctx, req),
            PutContainer => containers::put_container(ctx, req, &self.containers, false),
            PatchContainer => containers::put_container(ctx, req, &self.containers, true),
            GetContainer => containers::get_container(ctx, req, &self.containers),
            DeleteContainer => containers::delete_container(ctx, req, &self.containers),
            ListContainers => containers::list_containers(ctx, req, &self.containers),
            ContainerLease => worm::lease(ctx, req, &self.containers),
            SetLegalHold => worm::legal_hold(ctx, req, &self.containers, true),
            ClearLegalHold => worm::legal_hold(ctx, req, &self.containers, false),
            MigrateContainer => worm::migrate(ctx, req, &self.containers),
            GetImmutabilityPolicy => worm::policy(ctx, req, &self.containers, PolicyAction::Get),
            PutImmutabilityPolicy => worm::policy(ctx, req, &self.containers, PolicyAction::Put),
            DeleteImmutabilityPolicy => {
                worm::policy(ctx, req, &self.containers, PolicyAction::Delete)
            }
            LockImmutabilityPolicy => worm::policy(ctx, req, &self.containers, PolicyAction::Lock),
            ExtendImmutabilityPolicy => {
                worm::policy(ctx, req, &self.containers, PolicyAction::Extend)
            }
            ListPrivateLinkResources => target::link_resources(ctx, req),
            ListConnections => target::list_connections(ctx, req),
            GetConnection | PutConnection | DeleteConnection => {
                target::connection(ctx, req, req.method.clone())
            }
        }
    }
}

/// What this crate brings to the server: storage accounts over the Blob
/// plane's containers, their private link target, and keys' clean-up.
pub fn manifest(containers: containers::Store) -> recoverite_manifest::Manifest {
    recoverite_manifest::Manifest::new("recoverite-rp-storage")
        .provider(StorageProvider { containers })
        .private_link_target(target::StorageTarget)
        .cascade(recoverite_manifest::Stage::Storage, keys::KeysCascade)
}
