//! A private endpoint as stored (issue 9, point 2): its subnet, its NIC,
//! its one connection to a private link target (automatic or manual) and
//! the static addresses it asked for, typed. The connection's state lives
//! in the private link store and is shown over the stored copy.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use recoverite_arm::document;
use recoverite_arm::ArmError;
use recoverite_store::{Reader, WriteTx};

use crate::interface::Ref;

pub const PE_TYPE: &str = "Microsoft.Network/privateEndpoints";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkServiceConnectionProperties {
    pub provisioning_state: String,
    pub private_link_service_id: String,
    pub group_ids: Vec<String>,
    #[serde(default)]
    pub request_message: Option<String>,
    /// As it was when the endpoint was made; answers show the current one.
    pub private_link_service_connection_state: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkServiceConnection {
    pub id: String,
    pub name: String,
    pub etag: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub properties: LinkServiceConnectionProperties,
}

/// A static address an endpoint asked for, as it asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaticIpProperties {
    #[serde(default)]
    pub group_id: String,
    #[serde(default)]
    pub member_name: String,
    #[serde(rename = "privateIPAddress")]
    pub private_ip_address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticIpConfiguration {
    #[serde(default)]
    pub name: String,
    pub properties: StaticIpProperties,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointProperties {
    pub provisioning_state: String,
    pub subnet: Ref,
    pub network_interfaces: Vec<Ref>,
    #[serde(default)]
    pub private_link_service_connections: Vec<LinkServiceConnection>,
    #[serde(default)]
    pub manual_private_link_service_connections: Vec<LinkServiceConnection>,
    #[serde(default)]
    pub custom_network_interface_name: String,
    #[serde(default)]
    pub ip_configurations: Vec<StaticIpConfiguration>,
    #[serde(default)]
    pub application_security_groups: Vec<Value>,
}

/// A private endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivateEndpoint {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub etag: String,
    pub location: String,
    #[serde(default)]
    pub tags: Map<String, Value>,
    pub properties: EndpointProperties,
}

impl PrivateEndpoint {
    /// Its NIC (Azure gives an endpoint exactly one).
    pub fn nic_id(&self) -> Option<&str> {
        self.properties
            .network_interfaces
            .first()
            .map(|r| r.id.as_str())
    }

    pub fn subnet_id(&self) -> &str {
        &self.properties.subnet.id
    }

    /// Its connections, automatic and manual.
    pub fn connections_mut(&mut self) -> impl Iterator<Item = &mut LinkServiceConnection> {
        let p = &mut self.properties;
        p.private_link_service_connections
            .iter_mut()
            .chain(p.manual_private_link_service_connections.iter_mut())
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }
}

recoverite_arm::impl_document!(PrivateEndpoint, PE_TYPE, "private endpoint");

/// The private endpoint at `id`, if it is one.
pub fn load(r: &impl Reader, id: &str) -> Result<Option<PrivateEndpoint>, ArmError> {
    document::load(r, id)
}

/// Every private endpoint in `scope`.
pub fn list(r: &impl Reader, scope: &str) -> Result<Vec<PrivateEndpoint>, ArmError> {
    document::list(r, scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_reads_back_with_its_connection_and_static_addresses() {
        let v = serde_json::json!({"id": "/pe", "name": "pe", "type": PE_TYPE, "etag": "e", "location": "eastus", "tags": {},
            "properties": {"provisioningState": "Succeeded", "subnet": {"id": "/v/subnets/pe"},
              "networkInterfaces": [{"id": "/n/pe.nic"}],
              "privateLinkServiceConnections": [],
              "manualPrivateLinkServiceConnections": [{"id": "/pe/manualPrivateLinkServiceConnections/c", "name": "c", "etag": "e",
                 "type": "Microsoft.Network/privateEndpoints/privateLinkServiceConnections",
                 "properties": {"provisioningState": "Succeeded", "privateLinkServiceId": "/vault", "groupIds": ["AzureBackup"],
                   "requestMessage": "please", "privateLinkServiceConnectionState": {"status": "Pending"}}}],
              "customNetworkInterfaceName": "", "applicationSecurityGroups": [],
              "ipConfigurations": [{"name": "a", "properties": {"groupId": "AzureBackup", "memberName": "m", "privateIPAddress": "10.0.0.9"}}]}});
        let mut pe: PrivateEndpoint = document::read(v.clone()).unwrap();
        assert_eq!(pe.nic_id(), Some("/n/pe.nic"));
        assert_eq!(pe.subnet_id(), "/v/subnets/pe");
        assert_eq!(pe.connections_mut().count(), 1);
        assert_eq!(
            pe.properties.ip_configurations[0]
                .properties
                .private_ip_address,
            "10.0.0.9"
        );
        assert_eq!(pe.to_value().unwrap(), v);
        let mut bad = v;
        bad["properties"]["networkInterfaces"] = serde_json::json!("nic");
        assert!(document::read::<PrivateEndpoint>(bad).is_err());
    }
}
