//! Virtual networks, subnets and peerings as stored (issue 9, point 2):
//! typed documents, so the rules, the positions the gateway decides on and
//! the read models read fields rather than look keys up. What Azure only
//! echoes back on a network (DHCP options, encryption, …) is kept as given
//! beside the typed fields.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use recoverite_arm::document;
use recoverite_arm::ArmError;
use recoverite_netcore::cidr::Ipv4Net;
use recoverite_store::{Reader, WriteTx};

use crate::interface::Ref;

pub const VNET_TYPE: &str = "Microsoft.Network/virtualNetworks";
pub const SUBNET_TYPE: &str = "Microsoft.Network/virtualNetworks/subnets";
pub const PEERING_TYPE: &str = "Microsoft.Network/virtualNetworks/virtualNetworkPeerings";

fn of_type(doc: &Value, kind: &str) -> bool {
    doc["type"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case(kind))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressSpace {
    #[serde(default)]
    pub address_prefixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProperties {
    pub address_space: AddressSpace,
    pub provisioning_state: String,
    pub resource_guid: String,
    #[serde(default)]
    pub enable_ddos_protection: bool,
    /// What the network's PUT gave that recoverite only shows back.
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

/// A virtual network (its subnets and peerings are child resources).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualNetwork {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub etag: String,
    pub location: String,
    #[serde(default)]
    pub tags: Map<String, Value>,
    pub properties: NetworkProperties,
}

impl VirtualNetwork {
    /// The address space, parsed (prefixes were checked when written).
    pub fn prefixes(&self) -> Vec<Ipv4Net> {
        self.properties
            .address_space
            .address_prefixes
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceEndpoint {
    pub service: String,
    #[serde(default)]
    pub locations: Vec<String>,
    #[serde(rename = "provisioningState")]
    pub provisioning_state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubnetProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_prefixes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_security_group: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_endpoints: Option<Vec<ServiceEndpoint>>,
    /// `Disabled` (Azure's default), `Enabled`, `NetworkSecurityGroupEnabled`
    /// or `RouteTableEnabled`.
    pub private_endpoint_network_policies: String,
    pub private_link_service_network_policies: String,
    pub provisioning_state: String,
    /// Delegations, NAT gateway, default outbound access, sharing scope:
    /// shown back as given.
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

/// A subnet of a virtual network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub etag: String,
    pub properties: SubnetProperties,
}

impl Subnet {
    /// Its prefixes, `addressPrefix` first.
    pub fn prefixes(&self) -> Vec<Ipv4Net> {
        let p = &self.properties;
        let mut out: Vec<Ipv4Net> = p
            .address_prefixes
            .iter()
            .flatten()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let Some(one) = p.address_prefix.as_ref().and_then(|s| s.parse().ok()) {
            if !out.contains(&one) {
                out.insert(0, one);
            }
        }
        out
    }

    /// The first prefix, where addresses are allocated.
    pub fn primary_prefix(&self) -> Option<Ipv4Net> {
        self.prefixes().into_iter().next()
    }

    /// "Network security groups apply to private endpoints in a subnet" only
    /// when `privateEndpointNetworkPolicies` is Enabled or
    /// NetworkSecurityGroupEnabled.
    pub fn applies_nsg_to_endpoints(&self) -> bool {
        matches!(
            self.properties.private_endpoint_network_policies.as_str(),
            "Enabled" | "NetworkSecurityGroupEnabled"
        )
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeeringProperties {
    pub remote_virtual_network: Ref,
    pub allow_virtual_network_access: bool,
    pub allow_forwarded_traffic: bool,
    pub allow_gateway_transit: bool,
    pub use_remote_gateways: bool,
    pub provisioning_state: String,
}

/// One direction of a peering between two networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peering {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub etag: String,
    pub properties: PeeringProperties,
}

impl Peering {
    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }
}

recoverite_arm::impl_document!(VirtualNetwork, VNET_TYPE, "virtual network");
recoverite_arm::impl_document!(Subnet, SUBNET_TYPE, "subnet");
recoverite_arm::impl_document!(Peering, PEERING_TYPE, "virtual network peering");

/// The virtual network at `id`, if it is one.
pub fn load_vnet(r: &impl Reader, id: &str) -> Result<Option<VirtualNetwork>, ArmError> {
    document::load(r, id)
}

/// Every virtual network in `scope`.
pub fn list_vnets(r: &impl Reader, scope: &str) -> Result<Vec<VirtualNetwork>, ArmError> {
    document::list(r, scope)
}

/// The subnet at `id`, if it is one.
pub fn load_subnet(r: &impl Reader, id: &str) -> Result<Option<Subnet>, ArmError> {
    document::load(r, id)
}

/// A network's subnets, in the order its PUT gave them.
pub fn subnets_of(r: &impl Reader, vnet_id: &str) -> Result<Vec<Subnet>, ArmError> {
    document::children(r, vnet_id, "subnets")
}

/// Every subnet of the subscription `sub` (subnets have no location, so
/// they are found by key).
pub fn subnets_of_subscription(r: &impl Reader, sub: &str) -> Result<Vec<Subnet>, ArmError> {
    let prefix = format!("/subscriptions/{}/", sub.to_ascii_lowercase());
    r.scan_json::<Value>(recoverite_arm::RESOURCES, &prefix)?
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| of_type(d, SUBNET_TYPE))
        .map(document::read)
        .collect()
}

/// A network's peerings.
pub fn peerings_of(r: &impl Reader, vnet_id: &str) -> Result<Vec<Peering>, ArmError> {
    document::children(r, vnet_id, "virtualNetworkPeerings")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(prefix: Option<&str>, prefixes: Option<Vec<&str>>, pen: &str) -> Subnet {
        Subnet {
            id: "/v/subnets/s".into(),
            name: "s".into(),
            kind: SUBNET_TYPE.into(),
            etag: "e".into(),
            properties: SubnetProperties {
                address_prefix: prefix.map(str::to_string),
                address_prefixes: prefixes.map(|p| p.into_iter().map(str::to_string).collect()),
                network_security_group: None,
                route_table: None,
                service_endpoints: None,
                private_endpoint_network_policies: pen.into(),
                private_link_service_network_policies: "Enabled".into(),
                provisioning_state: "Succeeded".into(),
                given: Map::new(),
            },
        }
    }

    #[test]
    fn a_subnets_address_prefix_comes_first_and_is_where_addresses_go() {
        let s = subnet(
            Some("10.0.1.0/24"),
            Some(vec!["10.0.2.0/24", "10.0.3.0/24"]),
            "Disabled",
        );
        let p: Vec<String> = s.prefixes().iter().map(|p| p.to_string()).collect();
        assert_eq!(p, vec!["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]);
        assert_eq!(s.primary_prefix().unwrap().to_string(), "10.0.1.0/24");
        // Listed in both, it keeps its place in the list.
        let s = subnet(
            Some("10.0.3.0/24"),
            Some(vec!["10.0.2.0/24", "10.0.3.0/24"]),
            "Disabled",
        );
        assert_eq!(s.primary_prefix().unwrap().to_string(), "10.0.2.0/24");
        assert!(subnet(None, None, "Disabled").primary_prefix().is_none());
    }

    #[test]
    fn nsgs_apply_to_endpoints_only_when_the_subnet_says_so() {
        assert!(!subnet(None, None, "Disabled").applies_nsg_to_endpoints());
        assert!(!subnet(None, None, "RouteTableEnabled").applies_nsg_to_endpoints());
        assert!(subnet(None, None, "Enabled").applies_nsg_to_endpoints());
        assert!(subnet(None, None, "NetworkSecurityGroupEnabled").applies_nsg_to_endpoints());
    }

    #[test]
    fn what_azure_only_echoes_is_kept_beside_the_typed_fields() {
        let v = serde_json::json!({"id": "/v", "name": "v", "type": VNET_TYPE, "etag": "e", "location": "eastus",
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "provisioningState": "Succeeded",
                "resourceGuid": "g", "dhcpOptions": {"dnsServers": ["10.0.0.4"]}}});
        let n: VirtualNetwork = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(n.prefixes().len(), 1);
        assert!(!n.properties.enable_ddos_protection);
        assert_eq!(
            n.properties.given["dhcpOptions"]["dnsServers"][0],
            "10.0.0.4"
        );
        let back = n.to_value().unwrap();
        assert_eq!(
            back["properties"]["dhcpOptions"],
            v["properties"]["dhcpOptions"]
        );
        // A subnet without its policies does not read back as one.
        let bad = serde_json::json!({"id": "/s", "name": "s", "type": SUBNET_TYPE, "etag": "e", "properties": {}});
        assert!(serde_json::from_value::<Subnet>(bad).is_err());
    }
}
