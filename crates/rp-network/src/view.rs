//! The network's read model for other crates: typed views of network
//! interfaces and subnets, so the gateway (and anything else deciding on
//! traffic) reads what it needs without parsing the network's documents.

use serde::Deserialize;

use recoverite_arm::{id, resource, ArmError};
use recoverite_store::Reader;

use crate::interface::NetworkInterface;

#[derive(Deserialize)]
struct Ref {
    id: String,
}

/// A network interface: a VM's, or the one a private endpoint gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Nic {
    pub id: String,
    /// The private endpoint this NIC belongs to.
    pub private_endpoint: Option<String>,
    /// The network security group on the NIC itself.
    pub network_security_group: Option<String>,
    pub virtual_machine: Option<String>,
    /// Each IP configuration's id and, for an endpoint's, the FQDNs it serves.
    pub ip_configurations: Vec<(String, Vec<String>)>,
}

impl Nic {
    /// The first FQDN an IP configuration serves (endpoints' members).
    pub fn fqdn_of(&self, ip_configuration_id: &str) -> Option<&str> {
        let key = id::key(ip_configuration_id);
        self.ip_configurations
            .iter()
            .find(|(id, _)| id::key(id) == key)
            .and_then(|(_, fqdns)| fqdns.first())
            .map(String::as_str)
    }
}

/// The NIC id an IP configuration id belongs to.
pub fn nic_id_of(ip_configuration_id: &str) -> &str {
    let lower = ip_configuration_id.to_ascii_lowercase();
    match lower.find("/ipconfigurations/") {
        Some(i) => &ip_configuration_id[..i],
        None => ip_configuration_id,
    }
}

fn parse<T: serde::de::DeserializeOwned>(id: &str, doc: serde_json::Value) -> Result<T, ArmError> {
    serde_json::from_value(doc)
        .map_err(|e| ArmError::internal(format!("stored network document {id} is malformed: {e}")))
}

/// The NIC `nic_id`, if it exists.
pub fn nic(r: &impl Reader, nic_id: &str) -> Result<Option<Nic>, ArmError> {
    Ok(crate::interface::load(r, nic_id)?.map(Nic::from))
}

impl From<NetworkInterface> for Nic {
    fn from(n: NetworkInterface) -> Nic {
        let p = n.properties;
        Nic {
            id: n.id,
            private_endpoint: p.private_endpoint.map(|r| r.id),
            network_security_group: p.network_security_group.map(|r| r.id),
            virtual_machine: p.virtual_machine.map(|r| r.id),
            ip_configurations: p
                .ip_configurations
                .into_iter()
                .map(|c| {
                    let fqdns = c
                        .properties
                        .private_link_connection_properties
                        .map(|l| l.fqdns)
                        .unwrap_or_default();
                    (c.id, fqdns)
                })
                .collect(),
        }
    }
}

/// Whether network security groups apply to private endpoints in a subnet:
/// `privateEndpointNetworkPolicies` is `Enabled` or
/// `NetworkSecurityGroupEnabled` (Azure's default is `Disabled`).
pub fn subnet_applies_nsg_to_endpoints(r: &impl Reader, subnet_id: &str) -> Result<bool, ArmError> {
    Ok(crate::network::load_subnet(r, subnet_id)?.is_some_and(|s| s.applies_nsg_to_endpoints()))
}

/// A subnet as another provider references it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubnetRef {
    pub id: String,
    pub name: String,
    /// The services it has service endpoints for.
    pub service_endpoints: Vec<String>,
}

impl SubnetRef {
    /// "Service endpoints enable … Microsoft.Storage" (or its global form).
    pub fn has_storage_endpoint(&self) -> bool {
        self.service_endpoints.iter().any(|s| {
            s.eq_ignore_ascii_case("Microsoft.Storage")
                || s.eq_ignore_ascii_case("Microsoft.Storage.Global")
        })
    }
}

/// The subnet `subnet_id`, if it exists.
pub fn subnet(r: &impl Reader, subnet_id: &str) -> Result<Option<SubnetRef>, ArmError> {
    Ok(
        crate::network::load_subnet(r, subnet_id)?.map(|s| SubnetRef {
            service_endpoints: s
                .properties
                .service_endpoints
                .iter()
                .flatten()
                .map(|e| e.service.clone())
                .collect(),
            id: s.id,
            name: s.name,
        }),
    )
}

/// A virtual network's address space and subnets, in their order.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualNetwork {
    pub id: String,
    pub name: String,
    pub location: String,
    pub address_prefixes: Vec<String>,
    /// Each subnet's name and address prefix.
    pub subnets: Vec<(String, Option<String>)>,
}

/// The virtual network `vnet_id`, if it exists (and is one).
pub fn virtual_network(r: &impl Reader, vnet_id: &str) -> Result<Option<VirtualNetwork>, ArmError> {
    let Some(v) = crate::network::load_vnet(r, vnet_id)? else {
        return Ok(None);
    };
    let subnets = crate::network::subnets_of(r, &v.id)?
        .into_iter()
        .map(|s| (s.name, s.properties.address_prefix))
        .collect();
    Ok(Some(VirtualNetwork {
        id: v.id,
        name: v.name,
        location: v.location,
        address_prefixes: v.properties.address_space.address_prefixes,
        subnets,
    }))
}

#[derive(Deserialize)]
struct EndpointProperties {
    subnet: Ref,
}

#[derive(Deserialize)]
struct EndpointDoc {
    properties: EndpointProperties,
}

/// The subnet a private endpoint sits in, and how many addresses it has free.
pub fn endpoint_subnet_capacity(
    r: &impl Reader,
    endpoint_id: &str,
) -> Result<Option<(String, u64)>, ArmError> {
    let Some(doc) = resource::get(r, endpoint_id)? else {
        return Ok(None);
    };
    let subnet_id = parse::<EndpointDoc>(endpoint_id, doc)?.properties.subnet.id;
    let Some(net) = crate::network::load_subnet(r, &subnet_id)?.and_then(|s| s.primary_prefix())
    else {
        return Ok(None);
    };
    let free = crate::ipam_store::pool(r, &subnet_id, net)?.free();
    Ok(Some((subnet_id, free)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nic_ids_and_fqdns_of_ip_configurations() {
        assert_eq!(
            nic_id_of("/s/x/networkInterfaces/n/ipConfigurations/c"),
            "/s/x/networkInterfaces/n"
        );
        assert_eq!(
            nic_id_of("/s/x/networkInterfaces/n"),
            "/s/x/networkInterfaces/n"
        );
        let mut n = NetworkInterface::new("/n", "n", "eastus");
        n.properties.private_endpoint = Some(crate::interface::Ref::to("/pe"));
        let ip = std::net::Ipv4Addr::new(10, 0, 0, 4);
        let mut a =
            crate::interface::IpConfiguration::new("/n", "a", "/v/subnets/s", ip, false, true);
        a.properties.private_link_connection_properties =
            Some(crate::interface::LinkConnectionProperties {
                group_id: "g".into(),
                required_member_name: "m".into(),
                fqdns: vec!["v.example".into()],
            });
        let b = crate::interface::IpConfiguration::new("/n", "b", "/v/subnets/s", ip, false, false);
        n.properties.ip_configurations = vec![a, b];
        let nic = Nic::from(n);
        assert_eq!(nic.private_endpoint.as_deref(), Some("/pe"));
        assert_eq!(nic.network_security_group, None);
        assert_eq!(nic.fqdn_of("/N/ipconfigurations/A"), Some("v.example"));
        assert_eq!(nic.fqdn_of("/n/ipConfigurations/b"), None);
        assert_eq!(nic.ip_configurations[0].0, "/n/ipConfigurations/a");
    }

    #[test]
    fn storage_acls_need_a_storage_service_endpoint_on_the_subnet() {
        let s = |svc: &[&str]| SubnetRef {
            id: "/s".into(),
            name: "s".into(),
            service_endpoints: svc.iter().map(|x| x.to_string()).collect(),
        };
        assert!(s(&["microsoft.storage"]).has_storage_endpoint());
        assert!(s(&["Microsoft.KeyVault", "Microsoft.Storage.Global"]).has_storage_endpoint());
        assert!(!s(&["Microsoft.KeyVault"]).has_storage_endpoint());
        assert!(!s(&[]).has_storage_endpoint());
    }

    #[test]
    fn a_network_reads_back_with_its_subnets_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = recoverite_store::Store::open(&dir.path().join("s.redb")).unwrap();
        let v = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/app";
        store
            .write(|tx| {
                resource::put(tx, v, &serde_json::json!({"id": v, "name": "app", "type": "Microsoft.Network/virtualNetworks",
                    "etag": "e", "location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                    "provisioningState": "Succeeded", "resourceGuid": "g"}}))?;
                let mut order = Vec::new();
                for (n, p) in [("vms", "10.1.1.0/24"), ("app", "10.1.2.0/24")] {
                    let id = format!("{v}/subnets/{n}");
                    resource::put(tx, &id, &serde_json::json!({"id": id, "name": n, "type": "Microsoft.Network/virtualNetworks/subnets",
                        "etag": "e", "properties": {"addressPrefix": p, "privateEndpointNetworkPolicies": "Disabled",
                        "privateLinkServiceNetworkPolicies": "Enabled", "provisioningState": "Succeeded"}}))?;
                    order.push(id);
                }
                resource::keep_order(tx, &order)
            })
            .unwrap();
        let net = store.view(|r| virtual_network(r, v)).unwrap().unwrap();
        assert_eq!(net.address_prefixes, vec!["10.1.0.0/16".to_string()]);
        assert_eq!(
            net.subnets,
            vec![
                ("vms".to_string(), Some("10.1.1.0/24".to_string())),
                ("app".to_string(), Some("10.1.2.0/24".to_string()))
            ]
        );
        // A subnet is not a network.
        assert!(store
            .view(|r| virtual_network(r, &format!("{v}/subnets/vms")))
            .unwrap()
            .is_none());
    }
}
