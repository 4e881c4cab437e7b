//! Site Recovery's setup records as stored (issue 9, point 2): fabrics (one
//! per region), their protection containers, and the container mappings
//! that pair a source container with a target one under a policy. Typed, so
//! the region a fabric stands for or the policy a mapping applies is a
//! field, not a key looked up.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use recoverite_arm::document::{self, Document};
use recoverite_arm::ArmError;
use recoverite_store::{Reader, WriteTx};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FabricDetails {
    pub instance_type: String,
    /// The Azure region the fabric stands for.
    pub location: String,
    #[serde(default)]
    pub container_ids: Vec<String>,
    #[serde(default)]
    pub zones: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FabricProperties {
    pub friendly_name: String,
    pub internal_identifier: String,
    pub bcdr_state: String,
    pub health: String,
    #[serde(default)]
    pub health_error_details: Vec<Value>,
    pub encryption_details: Value,
    pub rollover_encryption_details: Value,
    pub custom_details: FabricDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fabric {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    pub properties: FabricProperties,
}

impl Fabric {
    /// The region whose VMs the fabric holds.
    pub fn region(&self) -> &str {
        &self.properties.custom_details.location
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerProperties {
    pub friendly_name: String,
    pub fabric_friendly_name: String,
    pub fabric_type: String,
    pub protected_item_count: u64,
    /// `Paired` while a mapping pairs it, `NotPaired` otherwise.
    pub pairing_status: String,
    pub role: String,
    pub fabric_specific_details: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtectionContainer {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    pub properties: ContainerProperties,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingProperties {
    pub target_protection_container_id: String,
    pub target_protection_container_friendly_name: String,
    pub source_protection_container_friendly_name: String,
    pub source_fabric_friendly_name: String,
    pub target_fabric_friendly_name: String,
    pub policy_id: String,
    pub policy_friendly_name: Value,
    pub state: String,
    pub health: String,
    #[serde(default)]
    pub health_error_details: Vec<Value>,
    pub provider_specific_details: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerMapping {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    pub properties: MappingProperties,
}

recoverite_arm::impl_document!(Fabric, crate::fabrics::FABRIC_TYPE, "fabric");
recoverite_arm::impl_document!(
    ProtectionContainer,
    crate::fabrics::CONTAINER_TYPE,
    "protection container"
);
recoverite_arm::impl_document!(
    ContainerMapping,
    crate::fabrics::MAPPING_TYPE,
    "protection container mapping"
);

/// Writes a record at its id.
pub fn save<T: Document>(tx: &mut WriteTx, t: &T) -> Result<(), ArmError> {
    document::save(tx, t)
}

pub fn to_value<T: Serialize>(t: &T) -> Result<Value, ArmError> {
    document::to_value(t)
}

fn missing(what: &str, id: &str) -> ArmError {
    ArmError::new(
        404,
        "NotFound",
        format!("The {what} '{id}' was not found in the vault. Create it first."),
    )
}

/// The fabric at `id` (404 naming `what` when missing).
pub fn fabric(r: &impl Reader, id: &str, what: &str) -> Result<Fabric, ArmError> {
    document::load(r, id)?.ok_or_else(|| missing(what, id))
}

/// The protection container at `id`, if there is one.
pub fn container(r: &impl Reader, id: &str) -> Result<Option<ProtectionContainer>, ArmError> {
    document::load(r, id)
}

/// The fabrics of a vault.
pub fn fabrics_of(r: &impl Reader, vault_id: &str) -> Result<Vec<Fabric>, ArmError> {
    document::children(r, vault_id, "replicationFabrics")
}

/// The mappings of a source container.
pub fn mappings_of(r: &impl Reader, container_id: &str) -> Result<Vec<ContainerMapping>, ArmError> {
    document::children(r, container_id, "replicationProtectionContainerMappings")
}

/// Every mapping of a vault.
pub fn mappings_in(r: &impl Reader, vault_id: &str) -> Result<Vec<ContainerMapping>, ArmError> {
    document::list(r, vault_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fabric_stands_for_one_region_and_reads_back_typed() {
        let v = serde_json::json!({"id": "/v/replicationFabrics/f", "name": "f", "type": crate::fabrics::FABRIC_TYPE,
            "location": "westus", "properties": {"friendlyName": "f", "internalIdentifier": "i", "bcdrState": "Valid",
            "health": "Normal", "healthErrorDetails": [], "encryptionDetails": {"kekState": "None"},
            "rolloverEncryptionDetails": {"kekState": "None"},
            "customDetails": {"instanceType": "Azure", "location": "eastus", "containerIds": [], "zones": []}}});
        let f: Fabric = document::read(v.clone()).unwrap();
        assert_eq!(f.region(), "eastus");
        assert_eq!(to_value(&f).unwrap(), v);
        let mut bad = v;
        bad["properties"]["customDetails"]
            .as_object_mut()
            .unwrap()
            .remove("location");
        assert!(document::read::<Fabric>(bad).is_err());
    }
}
