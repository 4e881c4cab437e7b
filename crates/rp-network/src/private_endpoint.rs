//! Private endpoints: a NIC with one address per member of the target's
//! group, the connection to the target (auto-approved or pending), custom
//! DNS configs, and DNS zone groups that write A records into private zones.

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::aliases::vnet_of_subnet;
use recoverite_arm::{paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_privatelink::{
    self as pl, Connection, ConnectionRequest, Member, Registry, StaticIp, Status,
};
use recoverite_store::{Reader, WriteTx};

use crate::common::{self, *};
use crate::interface::{self, IpConfiguration, LinkConnectionProperties, NetworkInterface, Ref};
use crate::{ipam_store, vnet, zone_group};

pub use crate::endpoint::PE_TYPE;
use crate::endpoint::{
    self, EndpointProperties, LinkServiceConnection, LinkServiceConnectionProperties,
    PrivateEndpoint, StaticIpConfiguration, StaticIpProperties,
};
pub use crate::zone_group::{ZONE_GROUP_TTL, ZONE_GROUP_TYPE};

struct ConnIn {
    name: String,
    target: String,
    group_ids: Vec<String>,
    message: Option<String>,
    manual: bool,
}

fn parse_connections(props: &Value) -> Result<ConnIn, ArmError> {
    let auto = props["privateLinkServiceConnections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let manual = props["manualPrivateLinkServiceConnections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if auto.len() + manual.len() != 1 {
        return Err(ArmError::bad_request(
            "PrivateEndpointMustHaveOneConnection",
            "A private endpoint needs exactly one entry in privateLinkServiceConnections or manualPrivateLinkServiceConnections.",
        ));
    }
    let (c, is_manual) = if let Some(c) = auto.first() {
        (c, false)
    } else {
        (&manual[0], true)
    };
    let p = &c["properties"];
    let target = p["privateLinkServiceId"].as_str().ok_or_else(|| {
        ArmError::invalid_parameter(
            "privateLinkServiceId",
            "The connection needs properties.privateLinkServiceId (the target resource id).",
        )
    })?;
    let group_ids: Vec<String> = p["groupIds"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if group_ids.is_empty() {
        return Err(ArmError::invalid_parameter(
            "groupIds",
            "The connection needs groupIds (the target sub-resource, e.g. AzureSiteRecovery).",
        ));
    }
    Ok(ConnIn {
        name: c["name"].as_str().unwrap_or("connection").to_string(),
        target: target.to_string(),
        group_ids,
        message: p["requestMessage"].as_str().map(str::to_string),
        manual: is_manual,
    })
}

fn parse_static(props: &Value) -> Result<Vec<StaticIp>, ArmError> {
    props["ipConfigurations"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let p = &c["properties"];
                    Ok(StaticIp {
                        name: c["name"].as_str().unwrap_or_default().to_string(),
                        group_id: p["groupId"].as_str().unwrap_or_default().to_string(),
                        member_name: p["memberName"].as_str().unwrap_or_default().to_string(),
                        ip: p["privateIPAddress"]
                            .as_str()
                            .ok_or_else(|| {
                                ArmError::invalid_parameter(
                                    "ipConfigurations",
                                    "Every static ipConfiguration needs privateIPAddress.",
                                )
                            })?
                            .to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or(Ok(Vec::new()))
}

/// One address of an endpoint: the group and member it serves, its FQDNs.
#[derive(Debug, Clone)]
pub struct EndpointMember {
    pub group_id: String,
    pub member: String,
    pub fqdns: Vec<String>,
    pub ip: Ipv4Addr,
}

/// The virtual network an endpoint's subnet is in.
pub fn vnet_of(r: &impl Reader, endpoint_id: &str) -> Result<Option<String>, ArmError> {
    Ok(endpoint::load(r, endpoint_id)?.map(|pe| crate::aliases::vnet_of_subnet(pe.subnet_id())))
}

/// The members of an endpoint, from its NIC.
pub fn members_of(r: &impl Reader, pe: &PrivateEndpoint) -> Result<Vec<EndpointMember>, ArmError> {
    let mut out = Vec::new();
    for n in &pe.properties.network_interfaces {
        let Some(nic) = interface::load(r, &n.id)? else {
            continue;
        };
        for c in nic.properties.ip_configurations {
            let lc = c.properties.private_link_connection_properties;
            out.push(EndpointMember {
                group_id: lc.as_ref().map(|l| l.group_id.clone()).unwrap_or_default(),
                member: lc
                    .as_ref()
                    .map(|l| l.required_member_name.clone())
                    .unwrap_or_default(),
                fqdns: lc
                    .map(|l| l.fqdns.into_iter().filter(|f| !f.is_empty()).collect())
                    .unwrap_or_default(),
                ip: c.properties.private_ip_address,
            });
        }
    }
    Ok(out)
}

/// The IP configuration of member `m` of `group`: its address, the group
/// and member it serves, and the member's name.
fn member_ipconfig(
    nic_id: &str,
    idx: usize,
    subnet: &str,
    ip: Ipv4Addr,
    group: &str,
    m: &Member,
    static_alloc: bool,
) -> IpConfiguration {
    let name = format!("privateEndpointIpConfig.{group}.{}.{idx}", m.member_name);
    let mut c = IpConfiguration::new(nic_id, &name, subnet, ip, static_alloc, idx == 0);
    c.properties.private_link_connection_properties = Some(LinkConnectionProperties {
        group_id: group.to_string(),
        required_member_name: m.member_name.clone(),
        fqdns: vec![m.fqdn.clone()],
    });
    c
}

/// The endpoint as returned: connection states come from the connection store.
pub fn assemble(r: &impl Reader, pe: &PrivateEndpoint) -> Result<Value, ArmError> {
    let conns = pl::of_endpoint(r, &pe.id)?;
    let mut shown = pe.clone();
    for c in shown.connections_mut() {
        let target = recoverite_arm::id::key(&c.properties.private_link_service_id);
        if let Some(conn) = conns
            .iter()
            .find(|x| recoverite_arm::id::key(&x.target_id) == target)
        {
            c.properties.private_link_service_connection_state = conn.state_json("actionsRequired");
        }
    }
    let mut d = shown.to_value()?;
    let members = members_of(r, pe)?;
    d["properties"]["customDnsConfigs"] = Value::Array(
        members
            .iter()
            .flat_map(|EndpointMember { fqdns, ip, .. }| {
                fqdns
                    .iter()
                    .map(move |f| json!({"fqdn": f, "ipAddresses": [ip.to_string()]}))
            })
            .collect(),
    );
    Ok(d)
}

/// "groupIds: the sub-resources of the target the endpoint connects to",
/// each one the target offers.
pub fn check_group_ids(
    asked: &[String],
    offered: &[&str],
    target_id: &str,
) -> Result<(), ArmError> {
    for g in asked {
        if !offered.iter().any(|x| x.eq_ignore_ascii_case(g)) {
            return Err(ArmError::bad_request(
                "InvalidGroupId",
                format!(
                    "Group id '{g}' is not a sub-resource of {target_id}; valid group ids: {}.",
                    offered.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Claims each member's address in the endpoint's subnet (its static IP,
/// or the next free one) and records it: the NIC's IP configurations.
fn allocate_members(
    tx: &mut WriteTx,
    pool: &mut recoverite_netcore::ipam::SubnetPool,
    wanted: &[(String, Member)],
    statics: &[StaticIp],
    nic_id: &str,
    subnet_id: &str,
    net: &recoverite_netcore::cidr::Ipv4Net,
) -> Result<Vec<IpConfiguration>, ArmError> {
    let mut ipconfigs = Vec::new();
    for (i, (g, m)) in wanted.iter().enumerate() {
        let st = statics.iter().find(|s| {
            s.group_id.eq_ignore_ascii_case(g) && s.member_name.eq_ignore_ascii_case(&m.member_name)
        });
        let ip = match st {
            Some(s) => {
                let ip: Ipv4Addr = s.ip.parse().map_err(|_| {
                    ArmError::bad_request(
                        "InvalidPrivateIPAddress",
                        format!("'{}' is not a valid IPv4 address.", s.ip),
                    )
                })?;
                pool.claim(ip).map(|_| ip)
            }
            None => pool.allocate(),
        }
        .map_err(|e| ipam_store::ipam_error(e, subnet_id, net))?;
        let cfg = member_ipconfig(nic_id, i, subnet_id, ip, g, m, st.is_some());
        ipam_store::record(tx, subnet_id, ip, &cfg.id)?;
        ipconfigs.push(cfg);
    }
    Ok(ipconfigs)
}

/// The NIC Azure makes for an endpoint: no tags, no MAC address, its
/// addresses the endpoint's members.
fn endpoint_nic(
    nic_id: &str,
    nic_name: &str,
    location: &str,
    endpoint_id: &str,
    ipconfigs: Vec<IpConfiguration>,
) -> NetworkInterface {
    let mut nic = NetworkInterface::new(nic_id, nic_name, location);
    nic.properties.ip_configurations = ipconfigs;
    nic.properties.private_endpoint = Some(Ref::to(endpoint_id));
    nic
}

/// What a new endpoint is: its id, name, region, tags, subnet and NIC.
struct Made<'a> {
    id: &'a str,
    name: &'a str,
    location: &'a str,
    tags: &'a Value,
    subnet_id: &'a str,
    nic_id: &'a str,
}

/// A new endpoint, its one connection under the field it was asked with
/// (automatic or manual).
fn endpoint_document(
    e: &Made,
    conn: &ConnIn,
    connection: &Connection,
    statics: &[StaticIp],
    custom_nic_name: &str,
) -> PrivateEndpoint {
    let field = if conn.manual {
        "manualPrivateLinkServiceConnections"
    } else {
        "privateLinkServiceConnections"
    };
    let link = LinkServiceConnection {
        id: format!("{}/{field}/{}", e.id, conn.name),
        name: conn.name.clone(),
        etag: etag(),
        kind: format!("{PE_TYPE}/privateLinkServiceConnections"),
        properties: LinkServiceConnectionProperties {
            provisioning_state: "Succeeded".into(),
            private_link_service_id: connection.target_id.clone(),
            group_ids: conn.group_ids.clone(),
            request_message: conn.message.clone(),
            private_link_service_connection_state: connection.state_json("actionsRequired"),
        },
    };
    let (auto, manual) = if conn.manual {
        (Vec::new(), vec![link])
    } else {
        (vec![link], Vec::new())
    };
    PrivateEndpoint {
        id: e.id.to_string(),
        name: e.name.to_string(),
        kind: PE_TYPE.into(),
        etag: etag(),
        location: e.location.to_string(),
        tags: e.tags.as_object().cloned().unwrap_or_default(),
        properties: EndpointProperties {
            provisioning_state: "Succeeded".into(),
            subnet: Ref::to(e.subnet_id),
            network_interfaces: vec![Ref::to(e.nic_id)],
            private_link_service_connections: auto,
            manual_private_link_service_connections: manual,
            custom_network_interface_name: custom_nic_name.to_string(),
            ip_configurations: statics
                .iter()
                .map(|st| StaticIpConfiguration {
                    name: st.name.clone(),
                    properties: StaticIpProperties {
                        group_id: st.group_id.clone(),
                        member_name: st.member_name.clone(),
                        private_ip_address: st.ip.clone(),
                    },
                })
                .collect(),
            application_security_groups: Vec::new(),
        },
    }
}

/// The private link target an endpoint names: its document, id as stored,
/// and the provider's target (its type must take private endpoints).
fn resolve_target(
    r: &impl Reader,
    registry: &Registry,
    wanted: &str,
) -> Result<(Value, String, Arc<dyn pl::PrivateLinkTarget>), ArmError> {
    let doc = resource::get(r, wanted)?.ok_or_else(|| {
        ArmError::bad_request(
            "PrivateLinkServiceNotFound",
            format!("The private link target {wanted} was not found."),
        )
    })?;
    let id = doc["id"].as_str().unwrap_or(wanted).to_string();
    let ttype = doc["type"].as_str().unwrap_or_default();
    let target = registry.target_for(ttype).cloned().ok_or_else(|| {
        ArmError::bad_request(
            "PrivateLinkServiceNotSupported",
            format!("Resources of type {ttype} do not support private endpoints."),
        )
    })?;
    Ok((doc, id, target))
}

/// The endpoint's connection: approved at once when the caller may approve
/// the target's connections and did not ask for a manual one, else pending.
fn new_connection(
    ctx: &Ctx,
    target: &dyn pl::PrivateLinkTarget,
    target_id: &str,
    endpoint_id: &str,
    conn: &ConnIn,
    static_ips: bool,
) -> Result<Connection, ArmError> {
    let approved = !conn.manual
        && pl::may_approve(ctx.platform.authz.as_ref(), &ctx.caller, target, target_id)?;
    let endpoint_name = endpoint_id.rsplit('/').next().unwrap_or_default();
    Ok(Connection {
        name: format!("{endpoint_name}.{}", uuid::Uuid::new_v4()),
        target_id: target_id.to_string(),
        endpoint_id: endpoint_id.to_string(),
        group_ids: conn.group_ids.clone(),
        status: if approved {
            Status::Approved
        } else {
            Status::Pending
        },
        description: if approved {
            "Auto-Approved"
        } else {
            "Awaiting approval"
        }
        .into(),
        actions_required: "None".into(),
        request_message: conn.message.clone(),
        endpoint_connection_name: conn.name.clone(),
        manual: conn.manual,
        static_ips,
    })
}

/// The subnet an endpoint is made in: it exists, the caller may join it,
/// it is in the endpoint's region, and it has a prefix to allocate from.
fn endpoint_subnet(
    ctx: &Ctx,
    tx: &WriteTx,
    rid: &str,
    subnet_id: &str,
    location: &str,
) -> Result<(crate::network::Subnet, recoverite_netcore::cidr::Ipv4Net), ArmError> {
    load_ref(tx, subnet_id, vnet::SUBNET_TYPE, rid)?;
    ctx.require_linked(
        "Microsoft.Network/privateEndpoints/write",
        rid,
        vnet::SUBNET_JOIN,
        subnet_id,
    )?;
    let v = crate::network::load_vnet(tx, &vnet_of_subnet(subnet_id))?
        .ok_or_else(|| invalid_reference(subnet_id, rid))?;
    common::check_same_region("private endpoint", rid, location, subnet_id, &v.location)?;
    let subnet = crate::network::load_subnet(tx, subnet_id)?
        .ok_or_else(|| invalid_reference(subnet_id, rid))?;
    let net = subnet
        .primary_prefix()
        .ok_or_else(|| invalid_reference(subnet_id, rid))?;
    Ok((subnet, net))
}

/// A PUT of an existing endpoint: only its tags change (Azure keeps the
/// rest of an endpoint as made).
fn retag(
    ctx: &Ctx,
    req: &ArmRequest,
    tx: &mut WriteTx,
    mut pe: PrivateEndpoint,
    tags: &Value,
    location: &str,
) -> Result<Reply, ArmError> {
    pe.tags = tags.as_object().cloned().unwrap_or_default();
    pe.etag = etag();
    pe.save(tx)?;
    let op = common::op(ctx, &pe.id);
    op.save(tx)?;
    Ok(put_reply(
        ctx,
        req,
        false,
        assemble(tx, &pe)?,
        &op,
        location,
    ))
}

/// The members the target gives each requested group: one address each.
fn wanted_members(
    tx: &mut WriteTx,
    target: &dyn pl::PrivateLinkTarget,
    target_doc: &Value,
    request: &ConnectionRequest,
) -> Result<Vec<(String, Member)>, ArmError> {
    let mut wanted = Vec::new();
    for g in &request.group_ids {
        for m in target.members(tx, target_doc, g, request)? {
            wanted.push((g.clone(), m));
        }
    }
    Ok(wanted)
}

pub fn put(ctx: &Ctx, req: &ArmRequest, registry: &Arc<Registry>) -> Result<Reply, ArmError> {
    let n = name(req);
    check_name("private endpoint", &n)?;
    let body = req.body.clone().unwrap_or(Value::Null);
    if !body.is_object() {
        return Err(ArmError::invalid_content("the body must be a JSON object"));
    }
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let tags = tags_of(&body)?;
    let rid = req.path.id();
    let subnet_id = ref_id(props.get("subnet")).ok_or_else(|| {
        ArmError::invalid_parameter(
            "properties.subnet",
            "A private endpoint needs properties.subnet.id.",
        )
    })?;
    let conn = parse_connections(&props)?;
    let statics = parse_static(&props)?;
    ctx.store().write(|tx| {
        let existing = endpoint::load(tx, &rid)?;
        let existing_doc = existing
            .as_ref()
            .map(PrivateEndpoint::to_value)
            .transpose()?;
        let location = location_of(&body, PE_TYPE, existing_doc.as_ref())?;
        if let Some(pe) = existing {
            return retag(ctx, req, tx, pe, &tags, &location);
        }
        let (subnet, net) = endpoint_subnet(ctx, tx, &rid, &subnet_id, &location)?;
        let mut pool = ipam_store::pool(tx, &subnet_id, net)?;
        let (target_doc, target_id, target) = resolve_target(tx, registry, &conn.target)?;
        let groups = target.groups(tx, &target_doc)?;
        let offered: Vec<&str> = groups.iter().map(|x| x.group_id.as_str()).collect();
        check_group_ids(&conn.group_ids, &offered, &target_id)?;
        let request = ConnectionRequest {
            endpoint_id: rid.clone(),
            endpoint_name: n.clone(),
            endpoint_location: location.clone(),
            subnet_id: subnet_id.clone(),
            group_ids: conn.group_ids.clone(),
            manual: conn.manual,
            static_ips: statics.clone(),
            free_ips: pool.free(),
            request_message: conn.message.clone(),
        };
        target.validate(tx, &target_doc, &request)?;
        let wanted = wanted_members(tx, target.as_ref(), &target_doc, &request)?;
        if (wanted.len() as u64) > pool.free() {
            return Err(ipam_store::ipam_error(
                recoverite_netcore::ipam::IpamError::Exhausted {
                    needed: wanted.len() as u64,
                    free: pool.free(),
                },
                &subnet_id,
                &net,
            ));
        }
        let nic_name = props["customNetworkInterfaceName"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{n}.nic.{}", uuid::Uuid::new_v4()));
        let rg_id = req.path.resource_group_id().unwrap_or_default();
        let nic_id = format!("{rg_id}/providers/Microsoft.Network/networkInterfaces/{nic_name}");
        let ipconfigs =
            allocate_members(tx, &mut pool, &wanted, &statics, &nic_id, &subnet_id, &net)?;
        endpoint_nic(&nic_id, &nic_name, &location, &rid, ipconfigs).save(tx)?;

        let connection = new_connection(
            ctx,
            target.as_ref(),
            &target_id,
            &rid,
            &conn,
            !statics.is_empty(),
        )?;
        pl::save(tx, &connection)?;
        target.connections_changed(tx, &target_id)?;
        let pe = endpoint_document(
            &Made {
                id: &rid,
                name: &n,
                location: &location,
                tags: &tags,
                subnet_id: &subnet.id,
                nic_id: &nic_id,
            },
            &conn,
            &connection,
            &statics,
            props["customNetworkInterfaceName"].as_str().unwrap_or(""),
        );
        pe.save(tx)?;
        let op = common::op(ctx, &rid);
        op.save(tx)?;
        Ok(put_reply(
            ctx,
            req,
            true,
            assemble(tx, &pe)?,
            &op,
            &location,
        ))
    })
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store()
        .view(|r| match endpoint::load(r, &req.path.id())? {
            Some(pe) => Ok(Reply::ok(assemble(r, &pe)?)),
            None => Err(not_found(req, PE_TYPE)),
        })
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    let items = ctx.store().view(|r| {
        endpoint::list(r, &scope)?
            .iter()
            .map(|pe| assemble(r, pe))
            .collect::<Result<Vec<_>, ArmError>>()
    })?;
    paging::page_visible(ctx, req, items)
}

/// Removes an endpoint with everything it owns (inside `tx`).
pub fn remove(tx: &mut WriteTx, registry: &Registry, pe: &PrivateEndpoint) -> Result<(), ArmError> {
    let pe_id = pe.id.clone();
    for zg in zone_group::of_endpoint(tx, &pe_id)? {
        zone_group::clear(tx, pe, &zg)?;
    }
    for n in &pe.properties.network_interfaces {
        ipam_store::release_owned_by(tx, &n.id)?;
        resource::delete_tree(tx, &n.id)?;
    }
    for c in pl::of_endpoint(tx, &pe_id)? {
        pl::remove(tx, &c.target_id, &pe_id)?;
        if let Some(t) = resource::get(tx, &c.target_id)? {
            if let Some(target) = registry.target_for(t["type"].as_str().unwrap_or_default()) {
                target.connections_changed(tx, &c.target_id)?;
            }
        }
    }
    resource::delete_tree(tx, &pe_id)?;
    Ok(())
}

pub fn delete(ctx: &Ctx, req: &ArmRequest, registry: &Registry) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store().write(|tx| {
        let Some(pe) = endpoint::load(tx, &rid)? else {
            return Ok(Reply::empty(204));
        };
        remove(tx, registry, &pe)?;
        ctx.cascade_delete(tx, &rid)?;
        let op = common::op(ctx, &rid);
        op.save(tx)?;
        Ok(delete_reply(ctx, req, &op, &pe.location))
    })
}

/// The network provider as host of endpoints: adds members to every endpoint
/// of a target (Site Recovery's two extra FQDNs), or fails whole.
pub struct Host;

impl pl::EndpointHost for Host {
    fn add_members(
        &self,
        tx: &mut WriteTx,
        target_id: &str,
        group_id: &str,
        members: &[Member],
    ) -> Result<(), ArmError> {
        for c in pl::of_target(tx, target_id)? {
            if !c.group_ids.iter().any(|g| g.eq_ignore_ascii_case(group_id)) {
                continue;
            }
            let Some(pe) = endpoint::load(tx, &c.endpoint_id)? else {
                continue;
            };
            let Some(nic_id) = pe.nic_id().map(str::to_string) else {
                continue;
            };
            let Some(mut nic) = interface::load(tx, &nic_id)? else {
                continue;
            };
            let existing = members_of(tx, &pe)?;
            let new: Vec<&Member> = members
                .iter()
                .filter(|m| {
                    !existing
                        .iter()
                        .any(|em| em.fqdns.iter().any(|x| x.eq_ignore_ascii_case(&m.fqdn)))
                })
                .collect();
            if new.is_empty() {
                continue;
            }
            let subnet_id = pe.subnet_id().to_string();
            let net = crate::network::load_subnet(tx, &subnet_id)?
                .and_then(|s| s.primary_prefix())
                .ok_or_else(|| invalid_reference(&subnet_id, &c.endpoint_id))?;
            let mut pool = ipam_store::pool(tx, &subnet_id, net)?;
            if (new.len() as u64) > pool.free() {
                return Err(ArmError::bad_request(
                    "SubnetIsFull",
                    format!(
                        "Private endpoint {} needs {} more IP address(es) in subnet {subnet_id} ({net}) but the subnet has {} free. Free addresses or use a larger subnet, then retry.",
                        c.endpoint_id,
                        new.len(),
                        pool.free()
                    ),
                ));
            }
            let cfgs = &mut nic.properties.ip_configurations;
            for m in new {
                let ip = pool
                    .allocate()
                    .map_err(|e| ipam_store::ipam_error(e, &subnet_id, &net))?;
                let cfg = member_ipconfig(&nic_id, cfgs.len(), &subnet_id, ip, group_id, m, false);
                ipam_store::record(tx, &subnet_id, ip, &cfg.id)?;
                cfgs.push(cfg);
            }
            nic.save(tx)?;
            zone_group::refresh(tx, &pe)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod group_tests {
    use super::*;

    #[test]
    fn an_endpoint_asks_only_for_sub_resources_the_target_offers() {
        let offered = ["AzureBackup", "AzureSiteRecovery"];
        assert!(check_group_ids(&["azurebackup".into()], &offered, "/v").is_ok());
        let e = check_group_ids(&["blob".into()], &offered, "/v").unwrap_err();
        assert_eq!(e.code(), "InvalidGroupId");
        assert!(e.body.message.contains("AzureBackup, AzureSiteRecovery"));
    }
}
