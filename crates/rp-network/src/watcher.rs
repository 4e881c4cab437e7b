//! Network Watcher: the network's decisions, asked directly.

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::tracked::TrackedKind;
use recoverite_arm::{resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_netcore::nsg::{Access, Direction, Flow, Protocol};
use recoverite_netcore::tags::Endpoint;
use recoverite_store::{Reader, WriteTx};

use crate::common::{self, *};
use crate::{addressbook, nic, position};

pub const WATCHER_TYPE: &str = "Microsoft.Network/networkWatchers";

/// A watcher's properties: it has none of its own but its state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WatcherProperties {
    pub provisioning_state: String,
}

/// A watcher's properties are read-only; whatever a request sends is ignored.
#[derive(Deserialize, Default)]
pub struct GivenWatcher {}

/// Network watchers, served by the tracked-resource core (one per region is
/// what Azure makes; recoverite does not limit it). Their diagnostics are
/// below.
pub struct NetworkWatcher;

impl TrackedKind for NetworkWatcher {
    const TYPE: &'static str = WATCHER_TYPE;
    const NOUN: &'static str = "network watcher";
    const ETAG: bool = true;
    const ASYNC: bool = true;
    type Properties = WatcherProperties;
    type Given = GivenWatcher;

    fn new_etag() -> String {
        common::etag()
    }

    fn check_name(name: &str) -> Result<(), ArmError> {
        check_name("network watcher", name)
    }

    fn properties(
        _: &Ctx,
        _: &mut WriteTx,
        _: &str,
        _: GivenWatcher,
        existing: Option<&WatcherProperties>,
        _: bool,
    ) -> Result<WatcherProperties, ArmError> {
        Ok(existing.cloned().unwrap_or(WatcherProperties {
            provisioning_state: "Succeeded".into(),
        }))
    }
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

/// What Network Watcher's connectivity check needs from outside this
/// crate — the name resolved from the VM's position and the gateway's
/// decision for the connection — supplied by the server.
pub trait Connectivity: Send + Sync {
    fn probe(&self, source_vm: &str, destination: &str, port: u16) -> Result<Probe, ArmError>;
    /// A VM's primary private address (Compute's VMs are not this crate's
    /// to read).
    fn vm_address(&self, vm_id: &str) -> Result<Option<String>, ArmError>;
}

/// One probe's outcome, as the gateway decided it.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub source_address: String,
    pub destination_address: Option<String>,
    pub destination_resource: Option<String>,
    /// `PrivateLink`, `VirtualNetwork` or `Internet`.
    pub destination_kind: String,
    pub allowed: bool,
    pub reason: String,
    /// How the name was resolved, when a name was given.
    pub dns: Vec<String>,
    /// The name did not resolve.
    pub dns_failed: bool,
}

/// The connectivity provider, set once the gateway and DNS exist.
#[derive(Clone, Default)]
pub struct LateConnectivity(pub Arc<OnceLock<Arc<dyn Connectivity>>>);

impl LateConnectivity {
    pub fn set(&self, c: Arc<dyn Connectivity>) {
        let _ = self.0.set(c);
    }
}

/// The issue a refusal is reported as (`ConnectivityIssue.type`).
pub fn issue_type(p: &Probe) -> &'static str {
    let r = p.reason.to_ascii_lowercase();
    if p.dns_failed {
        "DnsResolution"
    } else if r.contains("security group") || r.contains("security rule") {
        "NetworkSecurityRule"
    } else if r.contains("route") {
        "UserDefinedRoute"
    } else {
        "Platform"
    }
}

/// `POST …/networkWatchers/{nw}/connectivityCheck`: whether the source VM
/// reaches the destination (an address, a name resolved from the VM's
/// network, or a VM) on a TCP port, decided by the gateway exactly as a
/// real connection would be.
pub fn connectivity_check(
    ctx: &Ctx,
    req: &ArmRequest,
    late: &LateConnectivity,
) -> Result<Reply, ArmError> {
    let body = req.body.clone().unwrap_or(json!({}));
    let vm = body["source"]["resourceId"].as_str().ok_or_else(|| {
        ArmError::invalid_parameter(
            "source.resourceId",
            "The connectivity check needs source.resourceId: the VM to check from.",
        )
    })?;
    let watcher = req.path.parent_id();
    ctx.require_linked(
        "Microsoft.Network/networkWatchers/connectivityCheck/action",
        &watcher,
        "Microsoft.Compute/virtualMachines/read",
        vm,
    )?;
    let port = body["destination"]["port"]
        .as_u64()
        .filter(|p| (1..=65535).contains(p))
        .ok_or_else(|| {
            ArmError::invalid_parameter(
                "destination.port",
                "destination.port must be from 1 to 65535.",
            )
        })? as u16;
    match body["protocol"].as_str().map(str::to_ascii_lowercase).as_deref() {
        None | Some("tcp") | Some("http") | Some("https") => {}
        Some(other) => {
            return Err(ArmError::invalid_parameter(
                "protocol",
                format!("protocol '{other}' is not served; recoverite checks TCP connections (Tcp, Http, Https)."),
            ))
        }
    }
    let checker = late
        .0
        .get()
        .ok_or_else(|| ArmError::internal("the connectivity check is not wired"))?;
    let destination = match (
        body["destination"]["address"].as_str(),
        body["destination"]["resourceId"].as_str(),
    ) {
        (Some(a), _) => a.to_string(),
        (None, Some(rid)) => {
            let addr = checker.vm_address(rid)?;
            addr.ok_or_else(|| ArmError::invalid_parameter("destination.resourceId", format!("'{rid}' is not a VM with a network interface; give destination.address instead.")))?
        }
        (None, None) => {
            return Err(ArmError::invalid_parameter(
                "destination",
                "Give destination.address (an address or a name) or destination.resourceId (a VM).",
            ))
        }
    };
    let probe = checker.probe(vm, &destination, port)?;
    let (src, dst) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let issues = if probe.allowed {
        json!([])
    } else {
        json!([{"origin": "Outbound", "severity": "Error", "type": issue_type(&probe),
                 "context": [{"detail": probe.reason}]}])
    };
    let probes_sent = 66;
    let result = json!({
        "hops": [
            {"type": "Source", "id": src, "address": probe.source_address, "resourceId": vm, "nextHopIds": [dst], "issues": []},
            {"type": probe.destination_kind, "id": dst, "address": probe.destination_address,
             "resourceId": probe.destination_resource.clone().unwrap_or_else(|| "Internet".into()),
             "nextHopIds": [], "issues": issues},
        ],
        "connectionStatus": if probe.allowed { "Reachable" } else { "Unreachable" },
        "avgLatencyInMs": if probe.allowed { json!(1) } else { Value::Null },
        "minLatencyInMs": if probe.allowed { json!(1) } else { Value::Null },
        "maxLatencyInMs": if probe.allowed { json!(1) } else { Value::Null },
        "probesSent": probes_sent,
        "probesFailed": if probe.allowed { 0 } else { probes_sent },
    });
    let location = ctx
        .store()
        .view(|r| resource::get(r, &watcher))?
        .and_then(|w| w["location"].as_str().map(str::to_string))
        .unwrap_or_default();
    let op = OperationRecord::new(ctx, "Microsoft.Network", &watcher).succeed(Some(result));
    ctx.store().write(|tx| op.save(tx))?;
    let sub = req.path.subscription.clone().unwrap_or_default();
    let url = lro::result_url(ctx, &sub, &location, &op, &req.api_version);
    Ok(lro::with_retry_after(
        ctx,
        Reply::empty(202).header("Location", url),
    ))
}
