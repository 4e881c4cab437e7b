//! Network Watcher: the network's decisions, asked directly.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use recoverite_arm::{paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_netcore::nsg::{Access, Direction, Flow, Protocol};
use recoverite_netcore::tags::Endpoint;
use recoverite_store::Reader;

use crate::common::{self, *};
use crate::{addressbook, nic, position};

pub const WATCHER_TYPE: &str = "Microsoft.Network/networkWatchers";

pub fn put(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let n = name(req);
    check_name("network watcher", &n)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let rid = req.path.id();
    let tags = tags_of(&body)?;
    ctx.store().write(|tx| {
        let existing = resource::get(tx, &rid)?;
        let location = location_of(&body, WATCHER_TYPE, existing.as_ref())?;
        let mut doc = base_doc(&stored_id(existing.as_ref(), &rid), &n, WATCHER_TYPE);
        doc["location"] = json!(location);
        doc["tags"] = tags.clone();
        doc["properties"] = json!({"provisioningState": "Succeeded"});
        resource::put(tx, &rid, &doc)?;
        // Azure answers a watcher PUT synchronously.
        Ok(if existing.is_some() {
            Reply::ok(doc)
        } else {
            Reply::created(doc)
        })
    })
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store()
        .view(|r| resource::get(r, &req.path.id()))?
        .map(Reply::ok)
        .ok_or_else(|| not_found(req, WATCHER_TYPE))
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    let items = ctx
        .store()
        .view(|r| resource::list_of_type(r, &scope, WATCHER_TYPE))?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store().write(|tx| {
        let Some(doc) = resource::get(tx, &rid)? else {
            return Ok(Reply::empty(204));
        };
        resource::delete_tree(tx, &rid)?;
        let op = common::op(ctx, &rid);
        op.save(tx)?;
        Ok(delete_reply(
            ctx,
            req,
            &op,
            doc["location"].as_str().unwrap_or("global"),
        ))
    })
}

/// The NIC a diagnostic targets: `targetNicResourceId`, a NIC id, or a VM's primary NIC.
fn target_nic(r: &impl Reader, body: &Value) -> Result<String, ArmError> {
    if let Some(n) = body["targetNicResourceId"].as_str() {
        return Ok(n.to_string());
    }
    let target = body["targetResourceId"].as_str().ok_or_else(|| {
        ArmError::invalid_parameter(
            "targetResourceId",
            "targetResourceId (a VM or NIC id) is required.",
        )
    })?;
    let doc = resource::get(r, target)?.ok_or_else(|| {
        ArmError::new(
            404,
            "NotFound",
            format!("Target resource {target} was not found."),
        )
    })?;
    if doc["type"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case(nic::NIC_TYPE))
    {
        return Ok(doc["id"].as_str().unwrap_or(target).to_string());
    }
    doc["properties"]["networkProfile"]["networkInterfaces"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|n| n["id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            ArmError::invalid_parameter(
                "targetResourceId",
                format!("{target} has no network interface."),
            )
        })
}

/// Classifies an address as seen from a position: inside a known network, or public.
pub fn classify(
    r: &impl Reader,
    pos: &position::Position,
    ip: Ipv4Addr,
) -> Result<Endpoint, ArmError> {
    let _ = r;
    if pos.tags.virtual_network.iter().any(|n| n.contains(&ip))
        || ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
            .iter()
            .any(|p| p.parse::<ipnet::Ipv4Net>().is_ok_and(|n| n.contains(&ip)))
    {
        return Ok(Endpoint::Private { ip });
    }
    Ok(addressbook::classify_public(ip))
}

fn ip_field(body: &Value, f: &str) -> Result<Ipv4Addr, ArmError> {
    body[f]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ArmError::invalid_parameter(f, format!("{f} must be an IPv4 address.")))
}

fn port_field(body: &Value, f: &str) -> Result<u16, ArmError> {
    let v = &body[f];
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64().and_then(|n| u16::try_from(n).ok()))
        .ok_or_else(|| ArmError::invalid_parameter(f, format!("{f} must be a port number.")))
}

/// POST …/ipFlowVerify
pub fn ip_flow_verify(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let body = req.body.clone().unwrap_or(json!({}));
    let direction = match body["direction"]
        .as_str()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("inbound") => Direction::Inbound,
        Some("outbound") => Direction::Outbound,
        _ => {
            return Err(ArmError::invalid_parameter(
                "direction",
                "direction must be Inbound or Outbound.",
            ))
        }
    };
    let protocol = match body["protocol"]
        .as_str()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        _ => {
            return Err(ArmError::invalid_parameter(
                "protocol",
                "protocol must be TCP or UDP.",
            ))
        }
    };
    let local_ip = ip_field(&body, "localIPAddress")?;
    let remote_ip = ip_field(&body, "remoteIPAddress")?;
    let local_port = port_field(&body, "localPort")?;
    let remote_port = port_field(&body, "remotePort")?;
    let (access, rule) = ctx.store().view(|r| {
        let nic_id = target_nic(r, &body)?;
        let mut pos = position::of_nic(r, &nic_id)?;
        pos.ip = local_ip;
        let local = Endpoint::Private { ip: local_ip };
        let remote = classify(r, &pos, remote_ip)?;
        let flow = match direction {
            Direction::Outbound => Flow {
                direction,
                protocol,
                source: local,
                source_port: local_port,
                destination: remote,
                destination_port: remote_port,
            },
            Direction::Inbound => Flow {
                direction,
                protocol,
                source: remote,
                source_port: remote_port,
                destination: local,
                destination_port: local_port,
            },
        };
        let (allowed, decisions) = position::evaluate(r, &pos, &flow)?;
        let rule = decisions
            .last()
            .map(|(_, d)| d.rule.clone())
            .unwrap_or_default();
        Ok::<_, ArmError>((if allowed { Access::Allow } else { Access::Deny }, rule))
    })?;
    Ok(Reply::ok(
        json!({"access": format!("{access:?}"), "ruleName": rule}),
    ))
}

/// POST …/nextHop
pub fn next_hop(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let body = req.body.clone().unwrap_or(json!({}));
    let dst = ip_field(&body, "destinationIPAddress")?;
    let hop = ctx.store().view(|r| {
        let nic_id = target_nic(r, &body)?;
        let pos = position::of_nic(r, &nic_id)?;
        let ep = classify(r, &pos, dst)?;
        Ok::<_, ArmError>((pos.routes.next_hop(&ep), pos.route_table.clone()))
    })?;
    let (h, table) = hop;
    let route_table = match (&h.route, table) {
        (Some(_), Some(t)) => t,
        _ => "System Route".to_string(),
    };
    Ok(Reply::ok(json!({
        "nextHopType": h.next_hop.as_str(),
        "nextHopIpAddress": h.next_hop_ip.map(|i| i.to_string()),
        "routeTableId": route_table,
    })))
}
