//! A machine's network position — its NIC, subnet, network, security groups
//! and routes — and what the network decides for traffic from it. The
//! Network Watcher operations, the DNS server and the gateway all ask here.

use std::net::Ipv4Addr;

use serde::Serialize;
use serde_json::{json, Value};

use crate::aliases::vnet_of_subnet;
use recoverite_arm::ArmError;
use recoverite_netcore::nsg::{self, Access, Decision, Direction, Flow, Protocol};
use recoverite_netcore::routes::{NextHop, NextHopType, RouteContext};
use recoverite_netcore::tags::{Endpoint, TagContext};
use recoverite_store::Reader;

use crate::{nsg as nsg_rp, routetable, vnet};

#[derive(Debug, Clone)]
pub struct Position {
    pub nic_id: String,
    pub ip: Ipv4Addr,
    pub subnet_id: String,
    pub vnet_id: String,
    pub location: String,
    pub subnet_nsg: Option<String>,
    pub nic_nsg: Option<String>,
    pub route_table: Option<String>,
    pub routes: RouteContext,
    pub tags: TagContext,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub allowed: bool,
    /// Why, in words a user can act on.
    pub reason: String,
    /// The rules that decided, NIC first then subnet (outbound order).
    pub rules: Vec<(String, Decision)>,
    pub next_hop: NextHop,
}

/// The position of a NIC's primary IP configuration.
pub fn of_nic(r: &impl Reader, nic_id: &str) -> Result<Position, ArmError> {
    let nic = crate::interface::load(r, nic_id)?.ok_or_else(|| {
        ArmError::new(
            404,
            "NotFound",
            format!("Network interface {nic_id} was not found."),
        )
    })?;
    let primary = nic.primary().ok_or_else(|| {
        ArmError::internal(format!("network interface {nic_id} has no private IP"))
    })?;
    let mut pos = of_address(
        r,
        primary.subnet_id(),
        primary.properties.private_ip_address,
    )?;
    pos.nic_id = nic.id.clone();
    pos.nic_nsg = nic.properties.network_security_group.map(|n| n.id);
    Ok(pos)
}

/// The position of an address in a subnet (used for private endpoints too).
pub fn of_address(r: &impl Reader, subnet_id: &str, ip: Ipv4Addr) -> Result<Position, ArmError> {
    let subnet = crate::network::load_subnet(r, subnet_id)?.ok_or_else(|| {
        ArmError::new(
            404,
            "NotFound",
            format!("Subnet {subnet_id} was not found."),
        )
    })?;
    let vnet_id = vnet_of_subnet(subnet_id);
    let v = crate::network::load_vnet(r, &vnet_id)?.ok_or_else(|| {
        ArmError::new(
            404,
            "NotFound",
            format!("Virtual network {vnet_id} was not found."),
        )
    })?;
    let vnet_prefixes = v.prefixes();
    let peered = vnet::peered_prefixes(r, &v.id)?;
    let sp = subnet.properties;
    let route_table = sp.route_table.map(|t| t.id);
    let user_routes = match &route_table {
        Some(t) => routetable::routes_of(r, t)?,
        None => Vec::new(),
    };
    let service_endpoints = sp
        .service_endpoints
        .unwrap_or_default()
        .into_iter()
        .map(|se| (se.service, se.locations))
        .collect();
    let mut vn = vnet_prefixes.clone();
    vn.extend(peered.iter().copied());
    Ok(Position {
        nic_id: String::new(),
        ip,
        subnet_id: subnet.id,
        vnet_id: v.id,
        location: v.location,
        subnet_nsg: sp.network_security_group.map(|n| n.id),
        nic_nsg: None,
        route_table,
        routes: RouteContext {
            vnet_prefixes,
            peered_prefixes: peered,
            user_routes,
            service_endpoints,
        },
        tags: TagContext {
            virtual_network: vn,
        },
    })
}

fn nsgs_in_order(pos: &Position, direction: Direction) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    let nic = pos.nic_nsg.clone().map(|n| ("networkInterface", n));
    let sub = pos.subnet_nsg.clone().map(|n| ("subnet", n));
    // Outbound: the NIC's group first, then the subnet's; inbound the reverse.
    match direction {
        Direction::Outbound => v.extend(nic.into_iter().chain(sub)),
        Direction::Inbound => v.extend(sub.into_iter().chain(nic)),
    }
    v
}

/// Evaluates a flow through both security groups of a position.
pub fn evaluate(
    r: &impl Reader,
    pos: &Position,
    flow: &Flow,
) -> Result<(bool, Vec<(String, Decision)>), ArmError> {
    let mut decisions = Vec::new();
    for (_, nsg_id) in nsgs_in_order(pos, flow.direction) {
        let rules = nsg_rp::rules_of(r, &nsg_id)?;
        let d = nsg::evaluate(&rules, flow, &pos.tags);
        let deny = d.access == Access::Deny;
        decisions.push((nsg_id, d));
        if deny {
            return Ok((false, decisions));
        }
    }
    Ok((true, decisions))
}

/// What happens to a TCP/UDP connection from `pos` to `dst:port`.
pub fn outbound(
    r: &impl Reader,
    pos: &Position,
    dst: &Endpoint,
    protocol: Protocol,
    port: u16,
) -> Result<Verdict, ArmError> {
    let flow = Flow {
        direction: Direction::Outbound,
        protocol,
        source: Endpoint::Private { ip: pos.ip },
        source_port: 49152,
        destination: dst.clone(),
        destination_port: port,
    };
    let (allowed, rules) = evaluate(r, pos, &flow)?;
    let hop = pos.routes.next_hop(dst);
    if !allowed {
        let (nsg_id, d) = rules.last().expect("a denial names its rule");
        return Ok(Verdict {
            allowed: false,
            reason: format!("denied by network security group {nsg_id}, rule {}", d.rule),
            rules,
            next_hop: hop,
        });
    }
    let (ok, reason) = match hop.next_hop {
        NextHopType::None => (false, format!("no route to {}: the next hop is None", dst.ip())),
        NextHopType::VirtualAppliance => (
            false,
            format!(
                "forced tunneling: route {} sends the traffic to virtual appliance {}, which recoverite does not emulate; add a service endpoint or a more specific route",
                hop.route.clone().unwrap_or_default(),
                hop.next_hop_ip.map(|i| i.to_string()).unwrap_or_default()
            ),
        ),
        NextHopType::VirtualNetworkGateway => (false, "the next hop is a virtual network gateway, which recoverite does not emulate".to_string()),
        _ => (true, format!("allowed by {}", rules.last().map(|(n, d)| format!("{n} rule {}", d.rule)).unwrap_or_else(|| "no network security group".into()))),
    };
    Ok(Verdict {
        allowed: ok,
        reason,
        rules,
        next_hop: hop,
    })
}

fn rule_json(r: &nsg::Rule, kind: &str) -> Value {
    let ports = |p: &Vec<nsg::PortRange>| {
        p.iter()
            .map(|x| format!("{}-{}", x.from, x.to))
            .collect::<Vec<_>>()
    };
    let protocol = match r.protocol {
        Protocol::Any => "All".to_string(),
        p => format!("{p:?}"),
    };
    let sp = ports(&r.source_ports);
    let dp = ports(&r.destination_ports);
    json!({
        "name": format!("{kind}/{}", r.name),
        "protocol": protocol,
        "sourcePortRange": sp.first(),
        "destinationPortRange": dp.first(),
        "sourcePortRanges": sp,
        "destinationPortRanges": dp,
        "sourceAddressPrefix": r.source_prefixes.first(),
        "destinationAddressPrefix": r.destination_prefixes.first(),
        "sourceAddressPrefixes": r.source_prefixes,
        "destinationAddressPrefixes": r.destination_prefixes,
        "expandedSourceAddressPrefix": [],
        "expandedDestinationAddressPrefix": [],
        "access": format!("{:?}", r.access),
        "priority": r.priority,
        "direction": format!("{:?}", r.direction),
    })
}

pub fn effective_security_rules(r: &impl Reader, pos: &Position) -> Result<Vec<Value>, ArmError> {
    let mut out = Vec::new();
    for (assoc, nsg_id) in nsgs_in_order(pos, Direction::Outbound) {
        let mut rules: Vec<Value> = nsg_rp::rules_of(r, &nsg_id)?
            .iter()
            .map(|x| rule_json(x, "securityRules"))
            .collect();
        rules.extend(
            nsg::default_rules()
                .iter()
                .map(|x| rule_json(x, "defaultSecurityRules")),
        );
        let association = if assoc == "subnet" {
            json!({"subnet": {"id": pos.subnet_id}})
        } else {
            json!({"networkInterface": {"id": pos.nic_id}})
        };
        out.push(json!({"networkSecurityGroup": {"id": nsg_id}, "association": association, "effectiveSecurityRules": rules}));
    }
    Ok(out)
}

pub fn effective_routes(pos: &Position) -> Vec<Value> {
    let user = &pos.routes.user_routes;
    let overridden = |p: &str| user.iter().any(|u| u.prefix.to_string() == p);
    let mut out = Vec::new();
    let mut system = |prefix: String, hop: &str| {
        let state = if overridden(&prefix) {
            "Invalid"
        } else {
            "Active"
        };
        out.push(json!({"source": "Default", "state": state, "addressPrefix": [prefix], "nextHopIpAddress": [], "nextHopType": hop}));
    };
    for p in &pos.routes.vnet_prefixes {
        system(p.to_string(), "VnetLocal");
    }
    for p in &pos.routes.peered_prefixes {
        system(p.to_string(), "VNetPeering");
    }
    system("0.0.0.0/0".into(), "Internet");
    for p in [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
    ] {
        if !pos
            .routes
            .vnet_prefixes
            .iter()
            .chain(&pos.routes.peered_prefixes)
            .any(|v| v.to_string() == p)
        {
            system(p.to_string(), "None");
        }
    }
    for (svc, _) in &pos.routes.service_endpoints {
        out.push(json!({"source": "Default", "state": "Active", "addressPrefix": [format!("{svc} service prefixes")], "nextHopIpAddress": [], "nextHopType": "VirtualNetworkServiceEndpoint"}));
    }
    for u in user {
        out.push(json!({
            "source": "User", "state": "Active", "name": u.name,
            "addressPrefix": [u.prefix.to_string()],
            "nextHopIpAddress": u.next_hop_ip.map(|i| vec![i.to_string()]).unwrap_or_default(),
            "nextHopType": u.next_hop.as_str(),
        }));
    }
    out
}
