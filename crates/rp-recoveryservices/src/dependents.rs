//! Resources the vault rules look at that belong to other services, in the
//! minimal shape those rules need: Backup vaults (Microsoft.DataProtection),
//! which do not support private endpoints, and key vaults
//! (Microsoft.KeyVault), whose network restrictions decide whether their keys
//! can encrypt a private-endpoint-enabled Recovery Services vault.

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use recoverite_arm::tracked::{self, TrackedKind};
use recoverite_arm::{
    resource, ArmError, ArmRequest, Ctx, Provider, ProviderInfo, Reply, ResourceType,
};
use recoverite_privatelink::{
    ConnectionRequest, GroupInfo, Member, PrivateLinkTarget, ReaderDyn, Status,
};
use recoverite_store::{Reader, WriteTx};

pub const BACKUP_VAULT_TYPE: &str = "Microsoft.DataProtection/backupVaults";
pub const KEY_VAULT_TYPE: &str = "Microsoft.KeyVault/vaults";

const DP_API: &[&str] = &[
    "2022-05-01",
    "2023-01-01",
    "2023-05-01",
    "2024-04-01",
    "2025-01-01",
    "2025-07-01",
];
const KV_API: &[&str] = &[
    "2019-09-01",
    "2021-10-01",
    "2022-07-01",
    "2023-02-01",
    "2023-07-01",
    "2024-11-01",
];

/// A provider of one tracked kind on the tracked-resource core.
pub struct KindProvider<K> {
    namespace: &'static str,
    type_name: &'static str,
    api: &'static [&'static str],
    kind: std::marker::PhantomData<fn() -> K>,
}

impl<K: TrackedKind> Provider for KindProvider<K> {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            namespace: self.namespace,
            resource_types: vec![ResourceType {
                name: self.type_name,
                api_versions: self.api,
                global: false,
            }],
            requires_registration: true,
        }
    }

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let p = req.provider_part()?;
        match (p.is_resource(), req.method.clone()) {
            (true, Method::PUT) => tracked::put::<K>(ctx, req, false),
            (true, Method::PATCH) => tracked::put::<K>(ctx, req, true),
            (true, Method::GET) => tracked::get::<K>(ctx, req),
            (true, Method::DELETE) => tracked::delete::<K>(ctx, req),
            (false, Method::GET) => tracked::list::<K>(ctx, req),
            (_, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSetting {
    pub datastore_type: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A Backup vault's stored properties: only what the vault rules read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupVaultProperties {
    pub provisioning_state: String,
    pub storage_settings: Vec<StorageSetting>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GivenBackupVault {
    storage_settings: Option<Vec<StorageSetting>>,
}

/// Microsoft.DataProtection Backup vaults (locally redundant vault store by
/// default).
pub struct BackupVault;

impl TrackedKind for BackupVault {
    const TYPE: &'static str = BACKUP_VAULT_TYPE;
    const NOUN: &'static str = "Backup vault";
    type Properties = BackupVaultProperties;
    type Given = GivenBackupVault;

    fn check_name(name: &str) -> Result<(), ArmError> {
        recoverite_arm::names::check_generic("backupVaults", name)
    }

    fn properties(
        _: &Ctx,
        _: &mut WriteTx,
        _: &str,
        given: GivenBackupVault,
        existing: Option<&BackupVaultProperties>,
        patch: bool,
    ) -> Result<BackupVaultProperties, ArmError> {
        let kept = existing
            .filter(|_| patch)
            .map(|e| e.storage_settings.clone());
        Ok(BackupVaultProperties {
            provisioning_state: "Succeeded".into(),
            storage_settings: given.storage_settings.or(kept).unwrap_or_else(|| {
                vec![StorageSetting {
                    datastore_type: "VaultStore".into(),
                    kind: "LocallyRedundant".into(),
                }]
            }),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyVaultSku {
    pub family: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAcls {
    pub default_action: String,
    pub bypass: String,
}

/// A key vault's stored properties: what decides whether its keys can
/// encrypt a private-endpoint-enabled Recovery Services vault.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeyVaultProperties {
    pub provisioning_state: String,
    pub tenant_id: String,
    pub sku: KeyVaultSku,
    pub network_acls: NetworkAcls,
    pub public_network_access: String,
    pub enable_soft_delete: bool,
    pub vault_uri: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GivenNetworkAcls {
    default_action: Option<String>,
    bypass: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GivenKeyVault {
    tenant_id: Option<String>,
    sku: Option<KeyVaultSku>,
    network_acls: Option<GivenNetworkAcls>,
    public_network_access: Option<String>,
}

/// "defaultAction: The default action when no rule … matches": Allow or Deny.
pub fn check_default_action(a: &str) -> Result<(), ArmError> {
    if ["Allow", "Deny"].contains(&a) {
        Ok(())
    } else {
        Err(ArmError::invalid_parameter(
            "properties.networkAcls.defaultAction",
            "defaultAction must be Allow or Deny.",
        ))
    }
}

/// Microsoft.KeyVault vaults.
pub struct KeyVault;

impl TrackedKind for KeyVault {
    const TYPE: &'static str = KEY_VAULT_TYPE;
    const NOUN: &'static str = "key vault";
    type Properties = KeyVaultProperties;
    type Given = GivenKeyVault;

    fn check_name(name: &str) -> Result<(), ArmError> {
        recoverite_arm::names::check_generic("vaults", name)
    }

    fn properties(
        ctx: &Ctx,
        _: &mut WriteTx,
        _: &str,
        given: GivenKeyVault,
        existing: Option<&KeyVaultProperties>,
        patch: bool,
    ) -> Result<KeyVaultProperties, ArmError> {
        // A PATCH keeps what it does not name; a PUT starts from Azure's defaults.
        let base = existing.filter(|_| patch);
        let acls = given.network_acls.unwrap_or_default();
        let default_action = acls
            .default_action
            .or(base.map(|b| b.network_acls.default_action.clone()))
            .unwrap_or_else(|| "Allow".into());
        check_default_action(&default_action)?;
        Ok(KeyVaultProperties {
            provisioning_state: "Succeeded".into(),
            tenant_id: given
                .tenant_id
                .or(base.map(|b| b.tenant_id.clone()))
                .unwrap_or_else(|| ctx.env().tenant_id.clone()),
            sku: given
                .sku
                .or(base.map(|b| b.sku.clone()))
                .unwrap_or(KeyVaultSku {
                    family: "A".into(),
                    name: "standard".into(),
                }),
            network_acls: NetworkAcls {
                default_action,
                bypass: acls
                    .bypass
                    .or(base.map(|b| b.network_acls.bypass.clone()))
                    .unwrap_or_else(|| "AzureServices".into()),
            },
            public_network_access: given
                .public_network_access
                .or(base.map(|b| b.public_network_access.clone()))
                .unwrap_or_else(|| "Enabled".into()),
            enable_soft_delete: true,
            vault_uri: String::new(),
        })
    }
}

pub fn data_protection() -> KindProvider<BackupVault> {
    KindProvider {
        namespace: "Microsoft.DataProtection",
        type_name: "backupVaults",
        api: DP_API,
        kind: std::marker::PhantomData,
    }
}

pub fn key_vault() -> KindProvider<KeyVault> {
    KindProvider {
        namespace: "Microsoft.KeyVault",
        type_name: "vaults",
        api: KV_API,
        kind: std::marker::PhantomData,
    }
}

/// Backup vaults refuse private endpoints (document 001).
pub struct BackupVaultTarget;

impl PrivateLinkTarget for BackupVaultTarget {
    fn resource_type(&self) -> &'static str {
        BACKUP_VAULT_TYPE
    }
    fn groups(&self, _: &dyn ReaderDyn, _: &Value) -> Result<Vec<GroupInfo>, ArmError> {
        Ok(vec![GroupInfo {
            group_id: "AzureBackup".into(),
            required_members: vec![],
            required_zone_names: vec![],
        }])
    }
    fn validate(
        &self,
        _: &dyn ReaderDyn,
        target: &Value,
        _: &ConnectionRequest,
    ) -> Result<(), ArmError> {
        Err(ArmError::bad_request(
            "PrivateEndpointNotSupportedForBackupVault",
            format!("Private endpoints are not supported for Backup vaults ({BACKUP_VAULT_TYPE}) such as {}; use a Recovery Services vault.", target["name"].as_str().unwrap_or("")),
        ))
    }
    fn members(
        &self,
        _: &dyn ReaderDyn,
        _: &Value,
        _: &str,
        _: &ConnectionRequest,
    ) -> Result<Vec<Member>, ArmError> {
        Ok(Vec::new())
    }
    fn approval_action(&self) -> String {
        format!("{BACKUP_VAULT_TYPE}/privateEndpointConnectionsApproval/action")
    }
    fn public_network_access(&self, _: &Value) -> bool {
        true
    }
}

/// Key vaults accept private endpoints (group `vault`).
pub struct KeyVaultTarget;

impl PrivateLinkTarget for KeyVaultTarget {
    fn resource_type(&self) -> &'static str {
        KEY_VAULT_TYPE
    }
    fn groups(&self, _: &dyn ReaderDyn, _: &Value) -> Result<Vec<GroupInfo>, ArmError> {
        Ok(vec![GroupInfo {
            group_id: "vault".into(),
            required_members: vec!["default".into()],
            required_zone_names: vec!["privatelink.vaultcore.azure.net".into()],
        }])
    }
    fn validate(
        &self,
        _: &dyn ReaderDyn,
        _: &Value,
        _: &ConnectionRequest,
    ) -> Result<(), ArmError> {
        Ok(())
    }
    fn members(
        &self,
        _: &dyn ReaderDyn,
        kv: &Value,
        _: &str,
        _: &ConnectionRequest,
    ) -> Result<Vec<Member>, ArmError> {
        Ok(vec![Member {
            member_name: "default".into(),
            fqdn: format!(
                "{}.privatelink.vaultcore.azure.net",
                kv["name"].as_str().unwrap_or("").to_ascii_lowercase()
            ),
        }])
    }
    fn approval_action(&self) -> String {
        format!("{KEY_VAULT_TYPE}/privateEndpointConnectionsApproval/action")
    }
    fn public_network_access(&self, kv: &Value) -> bool {
        kv["properties"]["publicNetworkAccess"].as_str() != Some("Disabled")
            && kv["properties"]["networkAcls"]["defaultAction"].as_str() != Some("Deny")
    }
}

/// Whether a key vault is network-restricted or reachable through private endpoints.
pub fn key_vault_restricted(r: &dyn ReaderDyn, kid: &str) -> Result<bool, ArmError> {
    let Some(kv) = r.get_value(kid)? else {
        return Ok(false);
    };
    let endpoints = r
        .connections(kid)?
        .into_iter()
        .any(|c| c.status != Status::Disconnected);
    Ok(!KeyVaultTarget.public_network_access(&kv) || endpoints)
}

/// The key vault a `keyUri` (`https://{name}.vault.azure.net/keys/…`) points at.
pub fn key_vault_of_uri(
    r: &impl Reader,
    subscription: &str,
    uri: &str,
) -> Result<Option<String>, ArmError> {
    let host = uri
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let name = host.split('.').next().unwrap_or("").to_string();
    Ok(
        resource::list_of_type(r, &format!("/subscriptions/{subscription}"), KEY_VAULT_TYPE)?
            .into_iter()
            .find(|kv| {
                kv["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&name))
            })
            .and_then(|kv| kv["id"].as_str().map(str::to_string)),
    )
}

pub fn cmk_conflict(vault_name: &str, kid: &str) -> ArmError {
    ArmError::bad_request(
        "CmkWithRestrictedKeyVaultNotSupportedWithPrivateEndpoints",
        format!("Vault {vault_name} uses a customer-managed key from key vault {kid}, which is network-restricted or has private endpoints; that is not supported together with private endpoints on the vault. Use a key vault that allows public access, or remove the private endpoints."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_vaults_default_network_action_is_allow_or_deny() {
        assert!(check_default_action("Allow").is_ok());
        assert!(check_default_action("Deny").is_ok());
        assert_eq!(
            check_default_action("deny").unwrap_err().code(),
            "InvalidParameter"
        );
    }
}
