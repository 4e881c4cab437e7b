//! What Site Recovery asks of a cache storage account (documents 000, 002).
//! Kept here, beside the account, so the rule lives in one place; the Site
//! Recovery provider calls it when replication is enabled or reprotected.

use recoverite_arm::{ArmError, Authorizer, Caller};
use recoverite_store::Reader;

use crate::account::StorageAccount;

pub const BLOB_WRITE: &str =
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write";
/// Only Storage Blob Data Owner (`blobs/*`) grants this among the built-ins.
pub const BLOB_OWNERSHIP: &str =
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/manageOwnership/action";
/// What Contributor grants on the account that Storage Blob Data roles don't.
pub const ACCOUNT_WRITE: &str = "Microsoft.Storage/storageAccounts/write";

fn is_premium(account: &StorageAccount) -> bool {
    account.sku.tier == "Premium"
}

/// The roles the vault's managed identity needs on the account (document
/// 000): Contributor plus Storage Blob Data Contributor (Standard) or Storage
/// Blob Data Owner (Premium). Returns the missing ones.
pub fn missing_roles(
    authz: &dyn Authorizer,
    principal_id: &str,
    account: &StorageAccount,
) -> Result<Vec<&'static str>, ArmError> {
    let aid = account.id.as_str();
    let caller = Caller {
        object_id: principal_id.to_string(),
        tenant_id: String::new(),
        app_id: String::new(),
    };
    let mut missing = Vec::new();
    if !authz.is_allowed(&caller, ACCOUNT_WRITE, aid)? {
        missing.push("Contributor");
    }
    if is_premium(account) {
        if !authz.is_allowed_data(principal_id, BLOB_OWNERSHIP, aid)? {
            missing.push("Storage Blob Data Owner");
        }
    } else if !authz.is_allowed_data(principal_id, BLOB_WRITE, aid)? {
        missing.push("Storage Blob Data Contributor");
    }
    Ok(missing)
}

/// Whether the replication service (a trusted Microsoft service) may read the
/// account: a firewalled account must allow trusted Microsoft services.
pub fn trusted_services_allowed(account: &StorageAccount) -> bool {
    let acls = &account.properties.network_acls;
    !acls.denies_by_default() || acls.trusts_azure_services()
}

/// Checks a cache account for replicating VMs of `source_vnet` in
/// `source_region`, with the vault's identity (`vault_principal`) when the
/// vault uses private endpoints. Every failure says what to change.
pub fn check_for_replication(
    r: &impl Reader,
    authz: &dyn Authorizer,
    account: &StorageAccount,
    source_region: &str,
    source_vnet: Option<&str>,
    vault_private: Option<Option<&str>>,
) -> Result<(), ArmError> {
    let name = account.name.as_str();
    let bad = |code: &str, m: String| Err(ArmError::bad_request(code, m));
    if !account.location.eq_ignore_ascii_case(source_region) {
        return bad("CacheStorageAccountWrongRegion", format!("Cache storage account {name} is in {}; Site Recovery needs it in the source region {source_region}.", account.location));
    }
    if !trusted_services_allowed(account) {
        return bad("CacheStorageAccountFirewall", format!("Cache storage account {name} denies network access by default without allowing trusted Microsoft services; select 'Allow trusted Microsoft services to access this storage account' (networkAcls.bypass AzureServices)."));
    }
    let acls = &account.properties.network_acls;
    if acls.denies_by_default() {
        let vnet = source_vnet.unwrap_or_default().to_ascii_lowercase();
        let subnet_listed = acls.virtual_network_rules.iter().any(|rule| {
            !vnet.is_empty()
                && rule
                    .id
                    .to_ascii_lowercase()
                    .starts_with(&format!("{vnet}/subnets/"))
        });
        let has_endpoint = recoverite_privatelink::of_target(r, &account.id)?
            .iter()
            .any(|c| c.carries_traffic());
        if !subnet_listed && !has_endpoint {
            return bad("CacheStorageAccountFirewall", format!("Cache storage account {name} denies network access by default and allows no subnet of the source network {}; add a virtual network rule for the VMs' subnet (with a Microsoft.Storage service endpoint) or a private endpoint.", source_vnet.unwrap_or("")));
        }
    }
    if let Some(identity) = vault_private {
        let Some(pid) = identity else {
            return bad("VaultIdentityRequired", "The vault uses private endpoints, so Site Recovery reaches the cache storage account with the vault's managed identity; enable the vault's system-assigned identity first.".to_string());
        };
        let missing = missing_roles(authz, pid, account)?;
        if !missing.is_empty() {
            return bad("VaultIdentityLacksStorageRoles", format!("The vault's managed identity {pid} lacks {} on cache storage account {name}. Assign {} to it at the account's scope (document: grant required permissions to the vault).", missing.join(" and "), missing.join(" and ")));
        }
    }
    Ok(())
}
