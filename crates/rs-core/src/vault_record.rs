//! The vault as stored (issue 9, points 2 and 5): one typed document that
//! the vault provider writes and Site Recovery, Backup and the server read,
//! so no provider looks keys up in another's JSON. The settings objects
//! Azure only echoes (security, monitoring, encryption) are kept as given;
//! what the vault's rules decide on is typed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use recoverite_arm::document;
use recoverite_arm::ArmError;
use recoverite_store::{Reader, WriteTx};

pub const VAULT_TYPE: &str = "Microsoft.RecoveryServices/vaults";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaultSku {
    pub name: String,
    pub tier: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultProperties {
    pub provisioning_state: String,
    /// `Enabled` or `Disabled`.
    pub public_network_access: String,
    pub redundancy_settings: Value,
    pub security_settings: Value,
    pub monitoring_settings: Value,
    pub backup_storage_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Value>,
}

/// A Recovery Services vault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vault {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    #[serde(default)]
    pub tags: Map<String, Value>,
    pub etag: String,
    pub sku: VaultSku,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Value>,
    pub properties: VaultProperties,
}

impl Vault {
    /// "Public network access" is Disabled: only private endpoints reach it.
    pub fn public_access_disabled(&self) -> bool {
        self.properties.public_network_access == "Disabled"
    }

    /// The vault's system-assigned identity, if it has one.
    pub fn principal_id(&self) -> Option<&str> {
        self.identity
            .as_ref()
            .and_then(|i| i["principalId"].as_str())
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }
}

recoverite_arm::impl_document!(Vault, VAULT_TYPE, "vault");

/// The vault at `id`, if it is one.
pub fn load(r: &impl Reader, id: &str) -> Result<Option<Vault>, ArmError> {
    document::load(r, id)
}

/// Every vault in `scope`.
pub fn list(r: &impl Reader, scope: &str) -> Result<Vec<Vault>, ArmError> {
    document::list(r, scope)
}

/// The vault a request under `…/vaults/{vault}/…` names (404 naming it).
pub fn of_request(r: &impl Reader, req: &recoverite_arm::ArmRequest) -> Result<Vault, ArmError> {
    let vid = req.path.prefix(8);
    load(r, &vid)?.ok_or_else(|| {
        let n = req
            .path
            .provider
            .as_ref()
            .and_then(|p| p.names.first().cloned())
            .unwrap_or_default();
        ArmError::resource_not_found(VAULT_TYPE, &n, req.path.resource_group.as_deref())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vault_reads_back_typed_and_a_malformed_one_is_an_error() {
        let v = serde_json::json!({"id": "/v", "name": "v", "type": VAULT_TYPE, "location": "westus", "tags": {},
            "etag": "W/\"x\"", "sku": {"name": "RS0", "tier": "Standard"},
            "properties": {"provisioningState": "Succeeded", "publicNetworkAccess": "Disabled",
                "redundancySettings": {"standardTierStorageRedundancy": "GeoRedundant"},
                "securitySettings": {}, "monitoringSettings": {}, "backupStorageVersion": "V2"}});
        let vault: Vault = document::read(v.clone()).unwrap();
        assert!(vault.public_access_disabled());
        assert!(vault.identity.is_none());
        assert_eq!(vault.to_value().unwrap(), v);
        let mut bad = v;
        bad["properties"]
            .as_object_mut()
            .unwrap()
            .remove("publicNetworkAccess");
        assert!(document::read::<Vault>(bad).is_err());
    }
}
