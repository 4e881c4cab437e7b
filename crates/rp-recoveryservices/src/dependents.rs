//! Resources the vault rules look at that belong to other services, in the
//! minimal shape those rules need: Backup vaults (Microsoft.DataProtection),
//! which do not support private endpoints, and key vaults
//! (Microsoft.KeyVault), whose network restrictions decide whether their keys
//! can encrypt a private-endpoint-enabled Recovery Services vault.

use http::Method;
use serde_json::{json, Value};

use recoverite_arm::{
    paging, regions, resource, ArmError, ArmRequest, Ctx, Provider, ProviderInfo, Reply,
    ResourceType,
};
use recoverite_privatelink::{
    ConnectionRequest, GroupInfo, Member, PrivateLinkTarget, ReaderDyn, Status,
};
use recoverite_store::Reader;

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

/// A small tracked-resource provider: PUT/GET/DELETE/list of one type with
/// the properties it is given (plus provisioningState).
pub struct SimpleProvider {
    pub namespace: &'static str,
    pub type_name: &'static str,
    pub full_type: &'static str,
    pub api: &'static [&'static str],
    /// Fills defaults and checks the properties of a PUT.
    pub shape: fn(&Ctx, &Value) -> Result<Value, ArmError>,
}

impl Provider for SimpleProvider {
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
        let rid = req.path.id();
        match (p.is_resource(), req.method.clone()) {
            (true, Method::PUT) => {
                let n = p.name().unwrap_or("").to_string();
                recoverite_arm::names::check_generic(self.type_name, &n)?;
                let body = req.body.clone().unwrap_or(json!({}));
                let location =
                    regions::require(body["location"].as_str().unwrap_or(""), self.full_type)?.name;
                let props = (self.shape)(ctx, body.get("properties").unwrap_or(&json!({})))?;
                let doc = json!({"id": rid, "name": n, "type": self.full_type, "location": location,
                                 "tags": body.get("tags").cloned().unwrap_or(json!({})), "properties": props});
                let existed = ctx.store().write(|tx| {
                    let e = resource::get(tx, &rid)?.is_some();
                    resource::put(tx, &rid, &doc)?;
                    Ok::<_, ArmError>(e)
                })?;
                Ok(if existed {
                    Reply::ok(doc)
                } else {
                    Reply::created(doc)
                })
            }
            (true, Method::GET) => ctx
                .store()
                .view(|r| resource::get(r, &rid))?
                .map(Reply::ok)
                .ok_or_else(|| {
                    ArmError::resource_not_found(
                        self.full_type,
                        p.name().unwrap_or(""),
                        req.path.resource_group.as_deref(),
                    )
                }),
            (true, Method::DELETE) => ctx.store().write(|tx| {
                if !resource::delete_tree(tx, &rid)? {
                    return Ok(Reply::empty(204));
                }
                ctx.cascade_delete(tx, &rid)?;
                Ok(Reply::empty(200))
            }),
            (false, Method::GET) => {
                let items = ctx
                    .store()
                    .view(|r| resource::list_of_type(r, &req.path.scope(), self.full_type))?;
                Ok(Reply::ok(paging::page(ctx, req, items)?))
            }
            (_, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}

fn backup_vault_shape(_: &Ctx, p: &Value) -> Result<Value, ArmError> {
    Ok(json!({
        "provisioningState": "Succeeded",
        "storageSettings": p.get("storageSettings").cloned().unwrap_or(json!([{"datastoreType": "VaultStore", "type": "LocallyRedundant"}])),
    }))
}

fn key_vault_shape(ctx: &Ctx, p: &Value) -> Result<Value, ArmError> {
    let default_action = p["networkAcls"]["defaultAction"]
        .as_str()
        .unwrap_or("Allow");
    if !["Allow", "Deny"].contains(&default_action) {
        return Err(ArmError::invalid_parameter(
            "properties.networkAcls.defaultAction",
            "defaultAction must be Allow or Deny.",
        ));
    }
    Ok(json!({
        "provisioningState": "Succeeded",
        "tenantId": p["tenantId"].as_str().unwrap_or(&ctx.env().tenant_id),
        "sku": p.get("sku").cloned().unwrap_or(json!({"family": "A", "name": "standard"})),
        "networkAcls": {"defaultAction": default_action, "bypass": p["networkAcls"]["bypass"].as_str().unwrap_or("AzureServices")},
        "publicNetworkAccess": p["publicNetworkAccess"].as_str().unwrap_or("Enabled"),
        "enableSoftDelete": true,
        "vaultUri": "",
    }))
}

pub fn data_protection() -> SimpleProvider {
    SimpleProvider {
        namespace: "Microsoft.DataProtection",
        type_name: "backupVaults",
        full_type: BACKUP_VAULT_TYPE,
        api: DP_API,
        shape: backup_vault_shape,
    }
}

pub fn key_vault() -> SimpleProvider {
    SimpleProvider {
        namespace: "Microsoft.KeyVault",
        type_name: "vaults",
        full_type: KEY_VAULT_TYPE,
        api: KV_API,
        shape: key_vault_shape,
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
