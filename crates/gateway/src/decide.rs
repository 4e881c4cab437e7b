//! What Azure's network decides for one connection: from a source position
//! to a destination, through security groups, routes, private endpoint
//! approval and the target's public network access.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use recoverite_arm::{id, resource, ArmError};
use recoverite_netcore::nsg::{Direction, Flow, Protocol};
use recoverite_netcore::tags::Endpoint;
use recoverite_privatelink as pl;
use recoverite_rp_network::{addressbook, aliases, position, view};
use recoverite_store::Reader;

/// Where a connection is going, as the gateway knows it from the address it arrived on.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Destination {
    /// An IP configuration of a private endpoint.
    PrivateEndpoint {
        ip: Ipv4Addr,
        endpoint_id: String,
        ipconfig: String,
        target_id: String,
        fqdn: Option<String>,
    },
    /// An IP configuration of a VM's NIC.
    Nic {
        ip: Ipv4Addr,
        ipconfig: String,
        subnet_id: String,
    },
    /// A public address of a service (`target_id` when it is a known resource).
    Public {
        ip: Ipv4Addr,
        service: Option<String>,
        region: Option<String>,
        target_id: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
    pub source: Option<String>,
    pub destination: Option<Destination>,
}

fn refuse(
    reason: impl Into<String>,
    source: Option<String>,
    destination: Option<Destination>,
) -> Decision {
    Decision {
        allowed: false,
        reason: reason.into(),
        source,
        destination,
    }
}

/// Identifies what listens at a loopback alias.
pub fn destination(
    r: &impl Reader,
    alias: Ipv4Addr,
    public_targets: &HashMap<Ipv4Addr, String>,
) -> Result<Option<Destination>, ArmError> {
    if let Some(a) = aliases::lookup(r, alias)? {
        let Some(ip) = a.private_ip else {
            return Ok(None);
        };
        let owner = a.owner.clone();
        let nic = view::nic(r, view::nic_id_of(&owner))?;
        if let Some((pe_id, fqdn)) = nic.as_ref().and_then(|n| {
            let pe = n.private_endpoint.clone()?;
            Some((pe, n.fqdn_of(&owner).map(str::to_string)))
        }) {
            let target_id = pl::of_endpoint(r, &pe_id)?
                .first()
                .map(|c| c.target_id.clone())
                .unwrap_or_default();
            return Ok(Some(Destination::PrivateEndpoint {
                ip,
                endpoint_id: pe_id,
                ipconfig: owner,
                target_id,
                fqdn,
            }));
        }
        return Ok(Some(Destination::Nic {
            ip,
            ipconfig: owner,
            subnet_id: a.subnet_id.unwrap_or_default(),
        }));
    }
    let Some(public) = addressbook::public_of_alias(alias) else {
        return Ok(None);
    };
    let (service, region) = match addressbook::classify_public(public) {
        Endpoint::Service {
            service, region, ..
        } => (Some(service), region),
        _ => (None, None),
    };
    // A public address answered for a private link target's name identifies the target.
    let target_id = public_targets.get(&public).cloned();
    Ok(Some(Destination::Public {
        ip: public,
        service,
        region,
        target_id,
    }))
}

fn model_endpoint(d: &Destination) -> Endpoint {
    match d {
        Destination::PrivateEndpoint { ip, .. } | Destination::Nic { ip, .. } => {
            Endpoint::Private { ip: *ip }
        }
        Destination::Public { ip, .. } => addressbook::classify_public(*ip),
    }
}

/// The source's position: the IP configuration (NIC or endpoint) behind an alias.
fn source_position(
    r: &impl Reader,
    alias: Ipv4Addr,
) -> Result<Option<(String, position::Position)>, ArmError> {
    let Some(a) = aliases::lookup(r, alias)? else {
        return Ok(None);
    };
    let (Some(ip), Some(subnet)) = (a.private_ip, a.subnet_id.clone()) else {
        return Ok(None);
    };
    let mut pos = position::of_address(r, &subnet, ip)?;
    let nic_id = view::nic_id_of(&a.owner);
    if let Some(nic) = view::nic(r, nic_id)? {
        pos.nic_id = nic.id;
        pos.nic_nsg = nic.network_security_group;
    }
    Ok(Some((a.owner, pos)))
}

/// Whether a target admits a connection from `source_subnet` that does not
/// come through its approved endpoints (Err: why not).
fn target_admits(
    r: &impl Reader,
    registry: &pl::Registry,
    target_id: &str,
    source_subnet: Option<&str>,
) -> Result<Result<(), String>, ArmError> {
    let Some(doc) = resource::get(r, target_id)? else {
        return Ok(Ok(()));
    };
    Ok(registry
        .target_for(doc["type"].as_str().unwrap_or_default())
        .map(|t| t.admits(&doc, source_subnet))
        .unwrap_or(Ok(())))
}

/// Decides a TCP connection from `src` alias to `dst` alias on model `port`.
pub fn decide(
    r: &impl Reader,
    registry: &pl::Registry,
    public_targets: &HashMap<Ipv4Addr, String>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    port: u16,
) -> Result<Decision, ArmError> {
    let destination = destination(r, dst, public_targets)?;
    let Some(dest) = destination.clone() else {
        return Ok(refuse(format!("nothing listens at {dst}"), None, None));
    };
    let source = source_position(r, src)?;
    let source_name = source.as_ref().map(|(o, _)| o.clone());
    match (&source, &dest) {
        (None, Destination::PrivateEndpoint { .. } | Destination::Nic { .. }) => {
            return Ok(refuse(
                format!("{src} is not inside any virtual network, so private address {} is unreachable from it", model_endpoint(&dest).ip()),
                source_name,
                destination,
            ));
        }
        (Some((_, pos)), _) => {
            let v = position::outbound(r, pos, &model_endpoint(&dest), Protocol::Tcp, port)?;
            if !v.allowed {
                return Ok(refuse(v.reason, source_name, destination));
            }
            // A private destination must be in the source's network or a peered one.
            let dest_subnet = match &dest {
                Destination::Nic { subnet_id, .. } => Some(subnet_id.clone()),
                Destination::PrivateEndpoint { ipconfig, .. } => {
                    aliases::of_owner(r, ipconfig)?.and_then(|a| a.subnet_id)
                }
                _ => None,
            };
            if let Some(ds) = dest_subnet {
                let dvnet = id::key(&aliases::vnet_of_subnet(&ds));
                let reachable = dvnet == id::key(&pos.vnet_id) || {
                    let dpos = position::of_address(r, &ds, model_endpoint(&dest).ip())?;
                    dpos.routes
                        .vnet_prefixes
                        .iter()
                        .all(|p| pos.routes.peered_prefixes.contains(p))
                        && !dpos.routes.vnet_prefixes.is_empty()
                };
                if !reachable {
                    return Ok(refuse(
                        format!(
                            "{} is in network {} which is neither {} nor peered with it",
                            model_endpoint(&dest).ip(),
                            aliases::vnet_of_subnet(&ds),
                            pos.vnet_id
                        ),
                        source_name,
                        destination,
                    ));
                }
                // Inbound rules at the destination NIC's subnet and NIC (not for endpoints
                // unless their subnet enables network policies).
                let dpos = position::of_address(r, &ds, model_endpoint(&dest).ip())?;
                let applies = matches!(dest, Destination::Nic { .. })
                    || view::subnet_applies_nsg_to_endpoints(r, &ds)?;
                if applies {
                    let flow = Flow {
                        direction: Direction::Inbound,
                        protocol: Protocol::Tcp,
                        source: Endpoint::Private { ip: pos.ip },
                        source_port: 49152,
                        destination: model_endpoint(&dest),
                        destination_port: port,
                    };
                    let mut dpos = dpos;
                    if let Destination::Nic { ipconfig, .. } = &dest {
                        dpos.nic_nsg = view::nic(r, view::nic_id_of(ipconfig))?
                            .and_then(|n| n.network_security_group);
                    }
                    let (ok, decisions) = position::evaluate(r, &dpos, &flow)?;
                    if !ok {
                        let (nsg, rule) = decisions
                            .last()
                            .map(|(n, d)| (n.clone(), d.rule.clone()))
                            .unwrap_or_default();
                        return Ok(refuse(
                            format!("denied inbound by network security group {nsg}, rule {rule}"),
                            source_name,
                            destination,
                        ));
                    }
                }
            }
        }
        (None, Destination::Public { .. }) => {}
    }
    match &dest {
        Destination::PrivateEndpoint {
            endpoint_id,
            target_id,
            ..
        } => {
            let conn = pl::of_endpoint(r, endpoint_id)?.into_iter().next();
            match conn {
                Some(c) if c.carries_traffic() => {}
                Some(c) => {
                    return Ok(refuse(
                        format!("private endpoint {endpoint_id} carries no traffic: its connection to {target_id} is {}", c.status.as_str()),
                        source_name,
                        destination,
                    ))
                }
                None => return Ok(refuse(format!("private endpoint {endpoint_id} has no connection"), source_name, destination)),
            }
        }
        Destination::Public {
            target_id: Some(t), ..
        } => {
            let subnet = source.as_ref().map(|(_, p)| p.subnet_id.clone());
            if let Err(why) = target_admits(r, registry, t, subnet.as_deref())? {
                return Ok(refuse(why, source_name, destination));
            }
        }
        _ => {}
    }
    Ok(Decision {
        allowed: true,
        reason: "allowed".into(),
        source: source_name,
        destination,
    })
}
