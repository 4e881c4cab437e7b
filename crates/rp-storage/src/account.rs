//! A storage account as stored (issue 9, point 2): kind, SKU, endpoints
//! and the settings the Blob plane, the cache-account rules and the
//! private link target decide on — the firewall, public network access,
//! Shared Key and anonymous access — typed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use recoverite_arm::{document, ArmError};
use recoverite_store::{Reader, WriteTx};

use crate::ACCOUNT_TYPE;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountSku {
    pub name: String,
    pub tier: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualNetworkRule {
    pub id: String,
    pub action: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpRule {
    pub value: String,
    pub action: String,
}

/// `networkAcls`: the account's firewall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRuleSet {
    /// Comma-separated: None, Logging, Metrics, AzureServices.
    pub bypass: String,
    /// `Allow` or `Deny`.
    pub default_action: String,
    #[serde(default)]
    pub virtual_network_rules: Vec<VirtualNetworkRule>,
    #[serde(default)]
    pub ip_rules: Vec<IpRule>,
    #[serde(default)]
    pub resource_access_rules: Vec<Value>,
}

impl NetworkRuleSet {
    /// Azure's default: everything allowed, trusted services bypassing.
    pub fn open() -> NetworkRuleSet {
        NetworkRuleSet {
            bypass: "AzureServices".into(),
            default_action: "Allow".into(),
            virtual_network_rules: Vec::new(),
            ip_rules: Vec::new(),
            resource_access_rules: Vec::new(),
        }
    }

    pub fn denies_by_default(&self) -> bool {
        self.default_action.eq_ignore_ascii_case("Deny")
    }

    /// Whether "Allow trusted Microsoft services" is on.
    pub fn trusts_azure_services(&self) -> bool {
        self.bypass
            .split(',')
            .any(|b| b.trim().eq_ignore_ascii_case("AzureServices"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountProperties {
    pub provisioning_state: String,
    pub creation_time: String,
    pub primary_endpoints: Map<String, Value>,
    pub primary_location: String,
    pub status_of_primary: String,
    pub network_acls: NetworkRuleSet,
    /// `Enabled`, `Disabled` or `SecuredByPerimeter`.
    pub public_network_access: String,
    pub minimum_tls_version: String,
    pub allow_blob_public_access: bool,
    pub allow_shared_key_access: bool,
    pub supports_https_traffic_only: bool,
    pub is_hns_enabled: bool,
    pub encryption: Value,
    /// General-purpose v2 and Blob storage accounts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_tier: Option<Value>,
}

/// A storage account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageAccount {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind_of_resource: String,
    pub location: String,
    #[serde(default)]
    pub tags: Map<String, Value>,
    /// StorageV2, Storage, BlobStorage, FileStorage or BlockBlobStorage.
    pub kind: String,
    pub sku: AccountSku,
    pub properties: AccountProperties,
}

impl StorageAccount {
    pub fn public_access_disabled(&self) -> bool {
        self.properties.public_network_access == "Disabled"
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }

    pub fn of(doc: Value) -> Result<StorageAccount, ArmError> {
        document::read(doc)
    }
}

recoverite_arm::impl_document!(StorageAccount, ACCOUNT_TYPE, "storage account");

/// The storage account at `id`, if it is one.
pub fn load(r: &impl Reader, id: &str) -> Result<Option<StorageAccount>, ArmError> {
    document::load(r, id)
}

/// Every storage account in `scope` ("" for all).
pub fn list(r: &impl Reader, scope: &str) -> Result<Vec<StorageAccount>, ArmError> {
    document::list(r, scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_firewall_trusts_azure_services_only_when_its_bypass_says_so() {
        let mut acls = NetworkRuleSet::open();
        assert!(!acls.denies_by_default() && acls.trusts_azure_services());
        acls.default_action = "Deny".into();
        acls.bypass = "Logging, Metrics".into();
        assert!(acls.denies_by_default() && !acls.trusts_azure_services());
        acls.bypass = "Logging,azureservices".into();
        assert!(acls.trusts_azure_services());
    }

    #[test]
    fn an_account_reads_back_as_written_or_not_at_all() {
        let v = serde_json::json!({"id": "/a", "name": "a", "type": ACCOUNT_TYPE, "location": "westus", "tags": {},
            "kind": "StorageV2", "sku": {"name": "Standard_LRS", "tier": "Standard"},
            "properties": {"provisioningState": "Succeeded", "creationTime": "t", "primaryEndpoints": {"blob": "https://a.blob.core.windows.net/"},
              "primaryLocation": "westus", "statusOfPrimary": "available",
              "networkAcls": {"bypass": "AzureServices", "defaultAction": "Allow", "virtualNetworkRules": [], "ipRules": [], "resourceAccessRules": []},
              "publicNetworkAccess": "Disabled", "minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": false,
              "allowSharedKeyAccess": true, "supportsHttpsTrafficOnly": true, "isHnsEnabled": false,
              "encryption": {"keySource": "Microsoft.Storage"}, "accessTier": "Hot"}});
        let a = StorageAccount::of(v.clone()).unwrap();
        assert!(a.public_access_disabled());
        assert_eq!(a.to_value().unwrap(), v);
        let mut bad = v;
        bad["properties"]["allowSharedKeyAccess"] = serde_json::json!("yes");
        assert!(StorageAccount::of(bad).is_err());
    }
}
