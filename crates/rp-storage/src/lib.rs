//! Microsoft.Storage: storage accounts. The account is a private link target
//! (`blob`, `queue`, `table`, `file`, `web`, `dfs`; endpoints only on General
//! Purpose v2), its firewall (`networkAcls`) and public network access
//! decide who reaches its data plane through the gateway, and
//! [`cache::check_for_replication`] holds the rules Site Recovery's cache
//! accounts must meet (document 000 and 002).

pub mod accounts;
pub mod cache;
pub mod containers;
pub mod keys;
pub mod sas;
pub mod target;

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Ctx, Provider, ProviderInfo, Reply};

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

impl Provider for StorageProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo::new(
            NAMESPACE,
            &[
                "storageAccounts",
                "storageAccounts/privateEndpointConnections",
                "storageAccounts/privateLinkResources",
                "storageAccounts/blobServices",
                "storageAccounts/blobServices/containers",
                "checkNameAvailability",
                "operations",
            ],
            API.versions("storageAccounts"),
            false,
            true,
        )
    }

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let p = req.provider_part()?;
        let types: Vec<String> = p.types.iter().map(|t| t.to_ascii_lowercase()).collect();
        let t: Vec<&str> = types.iter().map(String::as_str).collect();
        use Method as M;
        match (t.as_slice(), p.is_resource(), req.method.clone()) {
            (["storageaccounts"], true, M::PUT) => {
                // A new account starts empty: blobs a deleted account of the
                // same name left (its purge not yet swept) are not inherited.
                // (Only for a valid name: found by the arm fuzz target, an
                // over-long one reached the blob store first and was a 500.)
                let name = p.names[0].to_ascii_lowercase();
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
            (["storageaccounts"], true, M::PATCH) => accounts::patch(ctx, req),
            (["storageaccounts"], true, M::GET) => accounts::get(ctx, req),
            (["storageaccounts"], true, M::DELETE) => {
                let reply = accounts::delete(ctx, req)?;
                if reply.status == 200 {
                    let name = p.names[0].to_ascii_lowercase();
                    containers::delete_all(&self.containers, &name)?;
                }
                Ok(reply)
            }
            (["storageaccounts", "blobservices"], true, M::GET) => {
                containers::get_service(ctx, req)
            }
            (["storageaccounts", "blobservices"], true, M::PUT) => {
                containers::put_service(ctx, req)
            }
            (["storageaccounts", "blobservices"], false, M::GET) => {
                containers::list_services(ctx, req)
            }
            (["storageaccounts", "blobservices", "containers"], true, M::PUT | M::PATCH) => {
                containers::put_container(ctx, req, &self.containers, req.method == M::PATCH)
            }
            (["storageaccounts", "blobservices", "containers"], true, M::GET) => {
                containers::get_container(ctx, req, &self.containers)
            }
            (["storageaccounts", "blobservices", "containers"], true, M::DELETE) => {
                containers::delete_container(ctx, req, &self.containers)
            }
            (["storageaccounts", "blobservices", "containers"], false, M::GET) => {
                containers::list_containers(ctx, req, &self.containers)
            }
            (["storageaccounts"], false, M::GET) => accounts::list(ctx, req),
            (["checknameavailability"], false, M::POST) => accounts::check_name(ctx, req),
            (["storageaccounts", verb], false, M::POST)
                if verb.eq_ignore_ascii_case("listkeys") =>
            {
                keys::list(ctx, req)
            }
            (["storageaccounts", verb], false, M::POST)
                if verb.eq_ignore_ascii_case("regeneratekey") =>
            {
                keys::regenerate(ctx, req)
            }
            (["storageaccounts", verb], false, M::POST)
                if verb.eq_ignore_ascii_case("listaccountsas")
                    || verb.eq_ignore_ascii_case("listservicesas") =>
            {
                let aid = keys::account_id(ctx, req)?;
                let account = aid
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if verb.eq_ignore_ascii_case("listaccountsas") {
                    sas::account(ctx, req, &aid, &account)
                } else {
                    sas::service(ctx, req, &aid, &account)
                }
            }
            (["storageaccounts", "privatelinkresources"], false, M::GET) => {
                target::link_resources(ctx, req)
            }
            (["storageaccounts", "privateendpointconnections"], false, M::GET) => {
                target::list_connections(ctx, req)
            }
            (["storageaccounts", "privateendpointconnections"], true, m) => {
                target::connection(ctx, req, m)
            }
            (_, _, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}
