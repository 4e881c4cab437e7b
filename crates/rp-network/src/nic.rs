//! Network interfaces: IP configurations with dynamic or static addresses
//! from their subnet, and the effective rules and routes that apply to them.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use recoverite_arm::{paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, WriteTx};

use crate::common::{self, *};
use crate::{ipam_store, position, vnet};

use crate::interface::{self, IpConfiguration, NetworkInterface, Ref};
pub use crate::interface::{IPCONFIG_TYPE, NIC_TYPE};

fn mac_for(id: &str) -> String {
    // Stable per NIC, in Azure's dash-separated form.
    let h = id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let b = h.to_be_bytes();
    format!("00-0D-3A-{:02X}-{:02X}-{:02X}", b[0], b[1], b[2])
}

struct IpConfigIn {
    name: String,
    subnet: String,
    static_ip: Option<Ipv4Addr>,
    primary: bool,
}

fn parse_ipconfigs(props: &Value) -> Result<Vec<IpConfigIn>, ArmError> {
    let list = props["ipConfigurations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        return Err(ArmError::bad_request(
            "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
            "A network interface needs at least one entry in properties.ipConfigurations.",
        ));
    }
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let name = c["name"]
            .as_str()
            .ok_or_else(|| ArmError::invalid_content("every ipConfiguration needs a 'name'"))?
            .to_string();
        let p = &c["properties"];
        let subnet = ref_id(p.get("subnet")).ok_or_else(|| {
            ArmError::invalid_parameter(
                "properties.ipConfigurations.properties.subnet",
                format!("IP configuration {name} needs a subnet id."),
            )
        })?;
        let method = p["privateIPAllocationMethod"].as_str().unwrap_or("Dynamic");
        let static_ip = match (
            method.to_ascii_lowercase().as_str(),
            p["privateIPAddress"].as_str(),
        ) {
            ("static", Some(ip)) => Some(ip.parse().map_err(|_| {
                ArmError::bad_request(
                    "InvalidPrivateIPAddress",
                    format!("'{ip}' is not a valid IPv4 address."),
                )
            })?),
            ("static", None) => {
                return Err(ArmError::bad_request(
                    "PrivateIPAddressRequired",
                    format!(
                    "IP configuration {name} uses Static allocation and needs privateIPAddress."
                ),
                ))
            }
            ("dynamic", _) => None,
            _ => {
                return Err(ArmError::invalid_parameter(
                    "privateIPAllocationMethod",
                    format!(
                        "privateIPAllocationMethod '{method}' is not valid; use Dynamic or Static."
                    ),
                ))
            }
        };
        let primary = p["primary"].as_bool().unwrap_or(i == 0);
        out.push(IpConfigIn {
            name,
            subnet,
            static_ip,
            primary,
        });
    }
    if out.iter().filter(|c| c.primary).count() != 1 {
        return Err(ArmError::bad_request(
            "NetworkInterfaceMustHaveOnePrimaryIpConfiguration",
            "Exactly one IP configuration of a network interface must be primary.",
        ));
    }
    Ok(out)
}

/// Allocates (or keeps) the addresses of a NIC's IP configurations.
/// `previous`: the NIC's last addresses by configuration name, kept when still valid.
pub fn allocate(
    tx: &mut WriteTx,
    owner_base: &str,
    configs: &[(String, String, Option<Ipv4Addr>)],
    previous: &[(String, String, Ipv4Addr)],
) -> Result<Vec<Ipv4Addr>, ArmError> {
    ipam_store::release_owned_by(tx, owner_base)?;
    let mut out = Vec::new();
    for (name, subnet_id, wanted) in configs {
        let net = crate::network::load_subnet(tx, subnet_id)?
            .and_then(|s| s.primary_prefix())
            .ok_or_else(|| invalid_reference(subnet_id, owner_base))?;
        let mut pool = ipam_store::pool(tx, subnet_id, net)?;
        let keep = previous
            .iter()
            .find(|(n, s, _)| n.eq_ignore_ascii_case(name) && key(s) == key(subnet_id))
            .map(|(_, _, ip)| *ip);
        let ip = match (wanted, keep) {
            (Some(ip), _) => pool.claim(*ip).map(|_| *ip),
            (None, Some(ip)) => pool.claim(ip).map(|_| ip).or_else(|_| pool.allocate()),
            (None, None) => pool.allocate(),
        }
        .map_err(|e| ipam_store::ipam_error(e, subnet_id, &net))?;
        ipam_store::record(
            tx,
            subnet_id,
            ip,
            &child_id(owner_base, "ipConfigurations", name),
        )?;
        out.push(ip);
    }
    Ok(out)
}

fn previous_addresses(nic: Option<&NetworkInterface>) -> Vec<(String, String, Ipv4Addr)> {
    nic.map(|n| {
        n.properties
            .ip_configurations
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.subnet_id().to_string(),
                    c.properties.private_ip_address,
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The parts of a NIC request that are not its IP configurations.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Given {
    #[serde(rename = "enableIPForwarding")]
    enable_ip_forwarding: Option<bool>,
    enable_accelerated_networking: Option<bool>,
    #[serde(default)]
    dns_settings: interface::DnsSettings,
    network_security_group: Option<Ref>,
}

const NIC_WRITE: &str = "Microsoft.Network/networkInterfaces/write";
/// The linked action on a NIC for whoever attaches it to a VM.
pub const JOIN: &str = "Microsoft.Network/networkInterfaces/join/action";

pub fn put(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let n = name(req);
    check_name("network interface", &n)?;
    let body = req.body.clone().unwrap_or(Value::Null);
    if !body.is_object() {
        return Err(ArmError::invalid_content("the body must be a JSON object"));
    }
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let configs = parse_ipconfigs(&props)?;
    let tags = tags_of(&body)?;
    let rid = req.path.id();
    let given: Given = serde_json::from_value(props.clone()).map_err(ArmError::invalid_content)?;
    ctx.store().write(|tx| {
        let existing = interface::load(tx, &rid)?;
        if existing
            .as_ref()
            .is_some_and(|e| e.properties.private_endpoint.is_some())
        {
            return Err(ArmError::bad_request(
                "CannotModifyNicAttachedToPrivateEndpoint",
                "This network interface belongs to a private endpoint and is managed through it.",
            ));
        }
        let existing_doc = existing
            .as_ref()
            .map(NetworkInterface::to_value)
            .transpose()?;
        let location = location_of(&body, NIC_TYPE, existing_doc.as_ref())?;
        let nid = existing
            .as_ref()
            .map(|e| e.id.clone())
            .unwrap_or_else(|| rid.clone());
        let asked = vnet::Asked {
            ctx,
            action: NIC_WRITE,
            scope: &nid,
        };
        for c in &configs {
            let subnet = load_ref(tx, &c.subnet, vnet::SUBNET_TYPE, &nid)?;
            asked.require_linked(vnet::SUBNET_JOIN, &c.subnet)?;
            let vnet_id = c.subnet[..c
                .subnet
                .to_ascii_lowercase()
                .rfind("/subnets/")
                .unwrap_or(0)]
                .to_string();
            let v =
                resource::get(tx, &vnet_id)?.ok_or_else(|| invalid_reference(&c.subnet, &nid))?;
            common::check_same_region(
                "network interface",
                &nid,
                &location,
                subnet["id"].as_str().unwrap_or(&c.subnet),
                v["location"].as_str().unwrap_or(""),
            )?;
        }
        if let Some(nsg) = &given.network_security_group {
            load_ref(tx, &nsg.id, crate::nsg::NSG_TYPE, &nid)?;
            asked.require_linked(crate::nsg::JOIN, &nsg.id)?;
        }
        let wanted: Vec<(String, String, Option<Ipv4Addr>)> = configs
            .iter()
            .map(|c| (c.name.clone(), c.subnet.clone(), c.static_ip))
            .collect();
        let ips = allocate(tx, &nid, &wanted, &previous_addresses(existing.as_ref()))?;
        let name = existing
            .as_ref()
            .map(|e| e.name.clone())
            .unwrap_or(n.clone());
        let mut nic = NetworkInterface::new(&nid, &name, &location);
        nic.tags = tags.as_object().cloned();
        let p = &mut nic.properties;
        p.resource_guid = Some(
            existing
                .as_ref()
                .and_then(|e| e.properties.resource_guid.clone())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        );
        p.ip_configurations = configs
            .iter()
            .zip(&ips)
            .map(|(c, ip)| {
                IpConfiguration::new(
                    &nid,
                    &c.name,
                    &c.subnet,
                    *ip,
                    c.static_ip.is_some(),
                    c.primary,
                )
            })
            .collect();
        p.mac_address = mac_for(&key(&nid));
        p.enable_ip_forwarding = Some(given.enable_ip_forwarding.unwrap_or(false));
        p.enable_accelerated_networking =
            Some(given.enable_accelerated_networking.unwrap_or(false));
        p.dns_settings = interface::DnsSettings {
            dns_servers: given.dns_settings.dns_servers,
            applied_dns_servers: Vec::new(),
        };
        p.network_security_group = given.network_security_group;
        p.virtual_machine = existing.and_then(|e| e.properties.virtual_machine);
        nic.save(tx)?;
        let op = common::op(ctx, &nid);
        op.save(tx)?;
        Ok(put_reply(
            ctx,
            req,
            existing_doc.is_none(),
            nic.to_value()?,
            &op,
            &location,
        ))
    })
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store()
        .view(|r| interface::load(r, &req.path.id()))?
        .ok_or_else(|| not_found(req, NIC_TYPE))?
        .to_value()
        .map(Reply::ok)
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    let items = ctx.store().view(|r| {
        interface::list(r, &scope)?
            .iter()
            .map(NetworkInterface::to_value)
            .collect::<Result<Vec<_>, ArmError>>()
    })?;
    paging::page_visible(ctx, req, items)
}

/// "A network interface in use cannot be deleted": an endpoint's NIC goes
/// with its endpoint, a VM's once the VM lets it go.
pub fn check_deletable(nic: &NetworkInterface) -> Result<(), ArmError> {
    let rid = &nic.id;
    if let Some(pe) = &nic.properties.private_endpoint {
        return Err(ArmError::bad_request(
            "CannotDeleteNicAttachedToPrivateEndpoint",
            format!("Network interface {rid} belongs to private endpoint {}; delete the private endpoint instead.", pe.id),
        ));
    }
    if let Some(vm) = &nic.properties.virtual_machine {
        return Err(ArmError::bad_request(
            "NicInUse",
            format!("Network Interface {rid} is used by existing resource {}. In order to delete the network interface, it must be dissociated from the resource.", vm.id),
        ));
    }
    Ok(())
}

pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store().write(|tx| {
        let Some(nic) = interface::load(tx, &rid)? else {
            return Ok(Reply::empty(204));
        };
        check_deletable(&nic)?;
        ipam_store::release_owned_by(tx, &rid)?;
        resource::delete_tree(tx, &rid)?;
        ctx.cascade_delete(tx, &rid)?;
        let op = common::op(ctx, &rid);
        op.save(tx)?;
        Ok(delete_reply(ctx, req, &op, &nic.location))
    })
}

fn nic_of(r: &impl Reader, req: &ArmRequest) -> Result<NetworkInterface, ArmError> {
    let nid = req.path.prefix(6 + 2);
    interface::load(r, &nid)?.ok_or_else(|| {
        ArmError::resource_not_found(NIC_TYPE, &names(req)[0], req.path.resource_group.as_deref())
    })
}

pub fn get_ipconfig(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let nic = ctx.store().view(|r| nic_of(r, req))?;
    let n = name(req);
    nic.properties
        .ip_configurations
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(&n))
        .ok_or_else(|| not_found(req, IPCONFIG_TYPE))?
        .to_value()
        .map(Reply::ok)
}

pub fn list_ipconfigs(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let nic = ctx.store().view(|r| nic_of(r, req))?;
    let items = nic
        .properties
        .ip_configurations
        .iter()
        .map(IpConfiguration::to_value)
        .collect::<Result<Vec<_>, ArmError>>()?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

/// POST …/effectiveNetworkSecurityGroups
pub fn effective_nsgs(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let nid = req.path.parent_id();
    let value = ctx.store().view(|r| {
        let pos = position::of_nic(r, &nid)?;
        position::effective_security_rules(r, &pos)
    })?;
    Ok(Reply::ok(json!({ "value": value })))
}

/// POST …/effectiveRouteTable
pub fn effective_routes(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let nid = req.path.parent_id();
    let value = ctx.store().view(|r| {
        let pos = position::of_nic(r, &nid)?;
        Ok::<_, ArmError>(position::effective_routes(&pos))
    })?;
    Ok(Reply::ok(json!({ "value": value })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nic_in_use_is_not_deleted() {
        let mut n = NetworkInterface::new("/n/nic", "nic", "westus");
        assert!(check_deletable(&n).is_ok());
        n.properties.virtual_machine = Some(Ref::to("/vm"));
        assert_eq!(check_deletable(&n).unwrap_err().code(), "NicInUse");
        n.properties.virtual_machine = None;
        n.properties.private_endpoint = Some(Ref::to("/pe"));
        assert_eq!(
            check_deletable(&n).unwrap_err().code(),
            "CannotDeleteNicAttachedToPrivateEndpoint"
        );
    }
}
