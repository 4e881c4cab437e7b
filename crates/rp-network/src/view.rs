//! The network's read model for other crates: typed views of network
//! interfaces and subnets, so the gateway (and anything else deciding on
//! traffic) reads what it needs without parsing the network's documents.

use serde::Deserialize;

use recoverite_arm::{id, resource, ArmError};
use recoverite_store::Reader;

#[derive(Deserialize)]
struct Ref {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkProperties {
    #[serde(default)]
    fqdns: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct IpConfigProperties {
    private_link_connection_properties: Option<LinkProperties>,
}

#[derive(Deserialize)]
struct IpConfigDoc {
    id: String,
    #[serde(default)]
    properties: IpConfigProperties,
}

/// The parts of a NIC document this view reads; absent references are
/// absent in Azure's document too (a NIC of no endpoint has no
/// `privateEndpoint`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NicProperties {
    private_endpoint: Option<Ref>,
    network_security_group: Option<Ref>,
    virtual_machine: Option<Ref>,
    #[serde(default)]
    ip_configurations: Vec<IpConfigDoc>,
}

#[derive(Deserialize)]
struct NicDoc {
    id: String,
    properties: NicProperties,
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
    let Some(doc) = resource::get(r, nic_id)? else {
        return Ok(None);
    };
    Ok(Some(parse::<NicDoc>(nic_id, doc)?.into()))
}

impl From<NicDoc> for Nic {
    fn from(d: NicDoc) -> Nic {
        let p = d.properties;
        Nic {
            id: d.id,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubnetProperties {
    private_endpoint_network_policies: Option<String>,
}

#[derive(Deserialize)]
struct SubnetDoc {
    properties: SubnetProperties,
}

/// Whether network security groups apply to private endpoints in a subnet:
/// `privateEndpointNetworkPolicies` is `Enabled` or
/// `NetworkSecurityGroupEnabled` (Azure's default is `Disabled`).
pub fn subnet_applies_nsg_to_endpoints(r: &impl Reader, subnet_id: &str) -> Result<bool, ArmError> {
    let Some(doc) = resource::get(r, subnet_id)? else {
        return Ok(false);
    };
    let d: SubnetDoc = parse(subnet_id, doc)?;
    Ok(matches!(
        d.properties.private_endpoint_network_policies.as_deref(),
        Some("Enabled") | Some("NetworkSecurityGroupEnabled")
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddressSpace {
    #[serde(default)]
    address_prefixes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VnetProperties {
    address_space: AddressSpace,
}

#[derive(Deserialize)]
struct VnetDoc {
    id: String,
    name: String,
    location: String,
    properties: VnetProperties,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubnetPrefix {
    address_prefix: Option<String>,
}

#[derive(Deserialize)]
struct SubnetEntry {
    name: String,
    properties: SubnetPrefix,
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
    let Some(doc) = resource::get(r, vnet_id)?.filter(|d| {
        d["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(crate::vnet::VNET_TYPE))
    }) else {
        return Ok(None);
    };
    let d: VnetDoc = parse(vnet_id, doc)?;
    let subnets = resource::list_children(r, &d.id, "subnets")?
        .into_iter()
        .map(|s| {
            let id = s["id"].as_str().unwrap_or_default().to_string();
            parse::<SubnetEntry>(&id, s).map(|e| (e.name, e.properties.address_prefix))
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(VirtualNetwork {
        id: d.id,
        name: d.name,
        location: d.location,
        address_prefixes: d.properties.address_space.address_prefixes,
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
    let Some(subnet) = resource::get(r, &subnet_id)? else {
        return Ok(None);
    };
    let Some(net) = crate::vnet::primary_prefix(&subnet) else {
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
        let d: NicDoc = serde_json::from_value(serde_json::json!({
            "id": "/n",
            "properties": {"privateEndpoint": {"id": "/pe"}, "ipConfigurations": [
                {"id": "/n/ipConfigurations/a", "properties": {"privateLinkConnectionProperties": {"fqdns": ["v.example"]}}},
                {"id": "/n/ipConfigurations/b", "properties": {}}
            ]}
        }))
        .unwrap();
        let nic = Nic::from(d);
        assert_eq!(nic.private_endpoint.as_deref(), Some("/pe"));
        assert_eq!(nic.network_security_group, None);
        assert_eq!(nic.fqdn_of("/N/ipconfigurations/A"), Some("v.example"));
        assert_eq!(nic.fqdn_of("/n/ipConfigurations/b"), None);
    }

    #[test]
    fn a_network_reads_back_with_its_subnets_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = recoverite_store::Store::open(&dir.path().join("s.redb")).unwrap();
        let v = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/app";
        store
            .write(|tx| {
                resource::put(tx, v, &serde_json::json!({"id": v, "name": "app", "type": "Microsoft.Network/virtualNetworks",
                    "location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}}}))?;
                let mut order = Vec::new();
                for (n, p) in [("vms", "10.1.1.0/24"), ("app", "10.1.2.0/24")] {
                    let id = format!("{v}/subnets/{n}");
                    resource::put(tx, &id, &serde_json::json!({"id": id, "name": n, "type": "Microsoft.Network/virtualNetworks/subnets",
                        "properties": {"addressPrefix": p}}))?;
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
