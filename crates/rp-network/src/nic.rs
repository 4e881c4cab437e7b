//! Network interfaces: IP configurations with dynamic or static addresses
//! from their subnet, and the effective rules and routes that apply to them.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use recoverite_arm::{paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, WriteTx};

use crate::common::{self, *};
use crate::{ipam_store, position, vnet};

pub const NIC_TYPE: &str = "Microsoft.Network/networkInterfaces";
pub const IPCONFIG_TYPE: &str = "Microsoft.Network/networkInterfaces/ipConfigurations";

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
        let subnet = resource::get(tx, subnet_id)?
            .ok_or_else(|| invalid_reference(subnet_id, owner_base))?;
        let net = vnet::primary_prefix(&subnet)
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

fn previous_addresses(doc: Option<&Value>) -> Vec<(String, String, Ipv4Addr)> {
    doc.and_then(|d| d["properties"]["ipConfigurations"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    Some((
                        c["name"].as_str()?.to_string(),
                        ref_id(c["properties"].get("subnet"))?,
                        c["properties"]["privateIPAddress"].as_str()?.parse().ok()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
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
    ctx.store().write(|tx| {
        let existing = resource::get(tx, &rid)?;
        if existing.as_ref().is_some_and(|e| e["properties"].get("privateEndpoint").is_some()) {
            return Err(ArmError::bad_request(
                "CannotModifyNicAttachedToPrivateEndpoint",
                "This network interface belongs to a private endpoint and is managed through it.",
            ));
        }
        let location = location_of(&body, NIC_TYPE, existing.as_ref())?;
        let nid = stored_id(existing.as_ref(), &rid);
        let asked = vnet::Asked { ctx, action: NIC_WRITE, scope: &nid };
        for c in &configs {
            let subnet = load_ref(tx, &c.subnet, vnet::SUBNET_TYPE, &nid)?;
            asked.require_linked(vnet::SUBNET_JOIN, &c.subnet)?;
            let vnet_id = c.subnet[..c.subnet.to_ascii_lowercase().rfind("/subnets/").unwrap_or(0)].to_string();
            let v = resource::get(tx, &vnet_id)?.ok_or_else(|| invalid_reference(&c.subnet, &nid))?;
            common::check_same_region("network interface", &nid, &location, subnet["id"].as_str().unwrap_or(&c.subnet), v["location"].as_str().unwrap_or(""))?;
        }
        let nsg = ref_id(props.get("networkSecurityGroup"));
        if let Some(nsg) = &nsg {
            load_ref(tx, nsg, crate::nsg::NSG_TYPE, &nid)?;
            asked.require_linked(crate::nsg::JOIN, nsg)?;
        }
        let wanted: Vec<(String, String, Option<Ipv4Addr>)> =
            configs.iter().map(|c| (c.name.clone(), c.subnet.clone(), c.static_ip)).collect();
        let ips = allocate(tx, &nid, &wanted, &previous_addresses(existing.as_ref()))?;
        let ipconfigs: Vec<Value> = configs
            .iter()
            .zip(&ips)
            .map(|(c, ip)| {
                json!({
                    "id": child_id(&nid, "ipConfigurations", &c.name),
                    "name": c.name,
                    "etag": etag(),
                    "type": IPCONFIG_TYPE,
                    "properties": {
                        "privateIPAddress": ip.to_string(),
                        "privateIPAllocationMethod": if c.static_ip.is_some() { "Static" } else { "Dynamic" },
                        "privateIPAddressVersion": "IPv4",
                        "subnet": {"id": c.subnet},
                        "primary": c.primary,
                        "provisioningState": "Succeeded",
                    }
                })
            })
            .collect();
        let mut doc = base_doc(&nid, existing.as_ref().and_then(|e| e["name"].as_str()).unwrap_or(&n), NIC_TYPE);
        doc["location"] = json!(location);
        doc["tags"] = tags.clone();
        doc["properties"] = json!({
            "provisioningState": "Succeeded",
            "resourceGuid": existing.as_ref().and_then(|e| e["properties"]["resourceGuid"].as_str().map(str::to_string)).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            "ipConfigurations": ipconfigs,
            "macAddress": mac_for(&key(&nid)),
            "enableIPForwarding": props.get("enableIPForwarding").cloned().unwrap_or(json!(false)),
            "enableAcceleratedNetworking": props.get("enableAcceleratedNetworking").cloned().unwrap_or(json!(false)),
            "dnsSettings": {"dnsServers": props["dnsSettings"]["dnsServers"].as_array().cloned().unwrap_or_default(), "appliedDnsServers": []},
            "nicType": "Standard",
        });
        if let Some(nsg) = nsg {
            doc["properties"]["networkSecurityGroup"] = json!({"id": nsg});
        }
        if let Some(vm) = existing.as_ref().and_then(|e| e["properties"].get("virtualMachine")) {
            doc["properties"]["virtualMachine"] = vm.clone();
        }
        resource::put(tx, &nid, &doc)?;
        let op = common::op(ctx, &nid);
        op.save(tx)?;
        Ok(put_reply(ctx, req, existing.is_none(), doc, &op, &location))
    })
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store()
        .view(|r| resource::get(r, &req.path.id()))?
        .map(Reply::ok)
        .ok_or_else(|| not_found(req, NIC_TYPE))
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    let items = ctx
        .store()
        .view(|r| resource::list_of_type(r, &scope, NIC_TYPE))?;
    paging::page_visible(ctx, req, items)
}

pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store().write(|tx| {
        let Some(doc) = resource::get(tx, &rid)? else { return Ok(Reply::empty(204)) };
        if let Some(pe) = ref_id(doc["properties"].get("privateEndpoint")) {
            return Err(ArmError::bad_request(
                "CannotDeleteNicAttachedToPrivateEndpoint",
                format!("Network interface {rid} belongs to private endpoint {pe}; delete the private endpoint instead."),
            ));
        }
        if let Some(vm) = ref_id(doc["properties"].get("virtualMachine")) {
            return Err(ArmError::bad_request(
                "NicInUse",
                format!("Network Interface {rid} is used by existing resource {vm}. In order to delete the network interface, it must be dissociated from the resource."),
            ));
        }
        ipam_store::release_owned_by(tx, &rid)?;
        resource::delete_tree(tx, &rid)?;
        ctx.cascade_delete(tx, &rid)?;
        let op = common::op(ctx, &rid);
        op.save(tx)?;
        Ok(delete_reply(ctx, req, &op, doc["location"].as_str().unwrap_or("global")))
    })
}

fn nic_of(r: &impl Reader, req: &ArmRequest) -> Result<Value, ArmError> {
    let nid = req.path.prefix(6 + 2);
    resource::get(r, &nid)?.ok_or_else(|| {
        ArmError::resource_not_found(NIC_TYPE, &names(req)[0], req.path.resource_group.as_deref())
    })
}

pub fn get_ipconfig(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let nic = ctx.store().view(|r| nic_of(r, req))?;
    let n = name(req);
    nic["properties"]["ipConfigurations"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|c| {
                    c["name"]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(&n))
                })
                .cloned()
        })
        .map(Reply::ok)
        .ok_or_else(|| not_found(req, IPCONFIG_TYPE))
}

pub fn list_ipconfigs(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let nic = ctx.store().view(|r| nic_of(r, req))?;
    let items = nic["properties"]["ipConfigurations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
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
