//! A network interface as stored and as returned (issue 9, point 2): a VM's
//! NIC (written by the NIC PUT) or a private endpoint's (written by the
//! endpoint), one typed document whichever made it. Compute attaches and
//! releases VMs through [`set_virtual_machine`] rather than editing the
//! document.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use recoverite_arm::document;
use recoverite_arm::{id, ArmError};
use recoverite_store::{Reader, WriteTx};

pub const NIC_TYPE: &str = "Microsoft.Network/networkInterfaces";
pub const IPCONFIG_TYPE: &str = "Microsoft.Network/networkInterfaces/ipConfigurations";

/// `{"id": …}`, how one resource names another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ref {
    pub id: String,
}

impl Ref {
    pub fn to(id: &str) -> Ref {
        Ref { id: id.to_string() }
    }
}

/// What an endpoint's address serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkConnectionProperties {
    pub group_id: String,
    pub required_member_name: String,
    #[serde(default)]
    pub fqdns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpConfigurationProperties {
    #[serde(rename = "privateIPAddress")]
    pub private_ip_address: Ipv4Addr,
    /// `Static` or `Dynamic`.
    #[serde(rename = "privateIPAllocationMethod")]
    pub private_ip_allocation_method: String,
    #[serde(rename = "privateIPAddressVersion")]
    pub private_ip_address_version: String,
    pub subnet: Ref,
    pub primary: bool,
    pub provisioning_state: String,
    /// A private endpoint's address: the group, member and names it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_link_connection_properties: Option<LinkConnectionProperties>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfiguration {
    pub id: String,
    pub name: String,
    pub etag: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub properties: IpConfigurationProperties,
}

impl IpConfiguration {
    /// The configuration `name` of NIC `nic_id`: `ip` in `subnet_id`.
    pub fn new(
        nic_id: &str,
        name: &str,
        subnet_id: &str,
        ip: Ipv4Addr,
        static_alloc: bool,
        primary: bool,
    ) -> IpConfiguration {
        IpConfiguration {
            id: crate::common::child_id(nic_id, "ipConfigurations", name),
            name: name.to_string(),
            etag: crate::common::etag(),
            kind: IPCONFIG_TYPE.to_string(),
            properties: IpConfigurationProperties {
                private_ip_address: ip,
                private_ip_allocation_method: if static_alloc { "Static" } else { "Dynamic" }
                    .into(),
                private_ip_address_version: "IPv4".into(),
                subnet: Ref::to(subnet_id),
                primary,
                provisioning_state: "Succeeded".into(),
                private_link_connection_properties: None,
            },
        }
    }

    pub fn subnet_id(&self) -> &str {
        &self.properties.subnet.id
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        serde_json::to_value(self).map_err(|e| ArmError::internal(e.to_string()))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsSettings {
    #[serde(default)]
    pub dns_servers: Vec<String>,
    #[serde(default)]
    pub applied_dns_servers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NicProperties {
    pub provisioning_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_guid: Option<String>,
    /// In the order the request gave them.
    pub ip_configurations: Vec<IpConfiguration>,
    pub mac_address: String,
    #[serde(
        rename = "enableIPForwarding",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ip_forwarding: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_accelerated_networking: Option<bool>,
    #[serde(default)]
    pub dns_settings: DnsSettings,
    pub nic_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_security_group: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_machine: Option<Ref>,
    /// Set on the NIC a private endpoint gets; such a NIC is managed
    /// through its endpoint only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_endpoint: Option<Ref>,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkInterface {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub etag: String,
    pub location: String,
    /// A private endpoint's NIC carries no tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    pub properties: NicProperties,
}

impl NetworkInterface {
    /// A NIC with no configurations yet, Azure's defaults otherwise.
    pub fn new(nic_id: &str, name: &str, location: &str) -> NetworkInterface {
        NetworkInterface {
            id: nic_id.to_string(),
            name: name.to_string(),
            kind: NIC_TYPE.to_string(),
            etag: crate::common::etag(),
            location: location.to_string(),
            tags: None,
            properties: NicProperties {
                provisioning_state: "Succeeded".into(),
                resource_guid: None,
                ip_configurations: Vec::new(),
                mac_address: String::new(),
                enable_ip_forwarding: None,
                enable_accelerated_networking: None,
                dns_settings: DnsSettings::default(),
                nic_type: "Standard".into(),
                network_security_group: None,
                virtual_machine: None,
                private_endpoint: None,
            },
        }
    }

    /// The primary IP configuration (or the first).
    pub fn primary(&self) -> Option<&IpConfiguration> {
        let c = &self.properties.ip_configurations;
        c.iter().find(|c| c.properties.primary).or(c.first())
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }
}

recoverite_arm::impl_document!(NetworkInterface, NIC_TYPE, "network interface");

/// The NIC at `nic_id`, if there is one.
pub fn load(r: &impl Reader, nic_id: &str) -> Result<Option<NetworkInterface>, ArmError> {
    document::load(r, nic_id)
}

/// Every NIC in `scope`.
pub fn list(r: &impl Reader, scope: &str) -> Result<Vec<NetworkInterface>, ArmError> {
    document::list(r, scope)
}

/// "A network interface can be attached to one virtual machine", and not
/// when it belongs to a private endpoint; it is in the VM's region.
pub fn check_attachable(
    nic: &NetworkInterface,
    vm_id: &str,
    location: &str,
) -> Result<(), ArmError> {
    let nid = &nic.id;
    if nic.location != location {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!(
                "Network interface {nid} is in {} but the VM is in {location}.",
                nic.location
            ),
        ));
    }
    if let Some(owner) = &nic.properties.virtual_machine {
        if id::key(&owner.id) != id::key(vm_id) {
            return Err(ArmError::bad_request(
                "NicInUse",
                format!(
                    "Network interface {nid} is used by virtual machine {}.",
                    owner.id
                ),
            ));
        }
    }
    if nic.properties.private_endpoint.is_some() {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!("Network interface {nid} belongs to a private endpoint."),
        ));
    }
    Ok(())
}

/// Records (or clears) the VM a NIC is attached to; a missing NIC is
/// nothing to do.
pub fn set_virtual_machine(
    tx: &mut WriteTx,
    nic_id: &str,
    vm_id: Option<&str>,
) -> Result<(), ArmError> {
    if let Some(mut nic) = load(tx, nic_id)? {
        nic.properties.virtual_machine = vm_id.map(Ref::to);
        nic.save(tx)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic() -> NetworkInterface {
        let mut n = NetworkInterface::new("/n/nic1", "nic1", "westus");
        n.properties.ip_configurations = vec![
            IpConfiguration::new(
                "/n/nic1",
                "a",
                "/v/subnets/s",
                Ipv4Addr::new(10, 0, 0, 4),
                false,
                false,
            ),
            IpConfiguration::new(
                "/n/nic1",
                "b",
                "/v/subnets/s",
                Ipv4Addr::new(10, 0, 0, 5),
                true,
                true,
            ),
        ];
        n
    }

    #[test]
    fn a_nic_reads_back_as_written_with_its_configurations_in_order() {
        let n = nic();
        let v = n.to_value().unwrap();
        assert_eq!(v["properties"]["ipConfigurations"][0]["name"], "a");
        assert_eq!(
            v["properties"]["ipConfigurations"][1]["properties"]["privateIPAddress"],
            "10.0.0.5"
        );
        assert_eq!(
            v["properties"]["ipConfigurations"][1]["properties"]["privateIPAllocationMethod"],
            "Static"
        );
        assert!(v["properties"].get("privateEndpoint").is_none());
        assert_eq!(document::read::<NetworkInterface>(v).unwrap(), n);
        assert_eq!(n.primary().unwrap().name, "b");
    }

    #[test]
    fn a_nic_attaches_to_one_vm_in_its_region_and_never_an_endpoints() {
        let mut n = nic();
        assert!(check_attachable(&n, "/vm1", "westus").is_ok());
        assert_eq!(
            check_attachable(&n, "/vm1", "eastus").unwrap_err().code(),
            "InvalidParameter"
        );
        n.properties.virtual_machine = Some(Ref::to("/VM1"));
        assert!(check_attachable(&n, "/vm1", "westus").is_ok());
        assert_eq!(
            check_attachable(&n, "/vm2", "westus").unwrap_err().code(),
            "NicInUse"
        );
        n.properties.virtual_machine = None;
        n.properties.private_endpoint = Some(Ref::to("/pe"));
        assert!(check_attachable(&n, "/vm1", "westus").is_err());
    }

    #[test]
    fn a_malformed_address_does_not_read_back() {
        let mut v = nic().to_value().unwrap();
        v["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] =
            serde_json::json!("10.0.0");
        assert!(document::read::<NetworkInterface>(v).is_err());
    }
}
