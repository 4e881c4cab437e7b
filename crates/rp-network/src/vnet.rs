//! Virtual networks, their subnets and peerings.

use serde_json::{json, Map, Value};

use recoverite_arm::{paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_netcore::cidr::{self, Ipv4Net};
use recoverite_netcore::ipam;
use recoverite_store::{Reader, WriteTx};

use crate::common::{self, *};
use crate::ipam_store;

use crate::interface::Ref;
use crate::network::{
    self, AddressSpace, NetworkProperties, Peering, PeeringProperties, ServiceEndpoint, Subnet,
    SubnetProperties, VirtualNetwork,
};
pub use crate::network::{PEERING_TYPE, SUBNET_TYPE, VNET_TYPE};

fn parse_prefixes(values: &[Value], field: &str) -> Result<Vec<Ipv4Net>, ArmError> {
    values
        .iter()
        .map(|v| {
            let s = v
                .as_str()
                .ok_or_else(|| ArmError::invalid_content(format!("'{field}' must list strings")))?;
            cidr::parse_prefix(s).map_err(|e| {
                ArmError::bad_request(
                    "InvalidAddressPrefixFormat",
                    format!("Address prefix {s} is not valid: {e}."),
                )
            })
        })
        .collect()
}

/// Checks a subnet against its network and its siblings; returns its prefixes.
fn validate_subnet(
    vnet_name: &str,
    vnet_space: &[Ipv4Net],
    name: &str,
    props: &Value,
    siblings: &[(String, Vec<Ipv4Net>)],
) -> Result<Vec<Ipv4Net>, ArmError> {
    check_name("subnet", name)?;
    let mut raw: Vec<Value> = props["addressPrefixes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(p) = props.get("addressPrefix").filter(|v| !v.is_null()) {
        raw.insert(0, p.clone());
    }
    if raw.is_empty() {
        return Err(ArmError::bad_request(
            "NetcfgInvalidSubnet",
            format!("Subnet '{name}' is not valid in virtual network '{vnet_name}': it needs an addressPrefix."),
        ));
    }
    let prefixes = parse_prefixes(&raw, "addressPrefixes")?;
    for p in &prefixes {
        if p.prefix_len() > ipam::SMALLEST_PREFIX {
            return Err(ArmError::bad_request(
                "NetcfgInvalidSubnet",
                format!("Subnet '{name}' is not valid in virtual network '{vnet_name}': {p} is smaller than /{}, the smallest subnet Azure supports.", ipam::SMALLEST_PREFIX),
            ));
        }
        if !vnet_space.iter().any(|s| cidr::within(p, s)) {
            return Err(ArmError::bad_request(
                "NetcfgSubnetRangeOutsideVnet",
                format!("Subnet '{name}' is not valid because its IP address range {p} is outside the IP address range of virtual network '{vnet_name}'."),
            ));
        }
        for (other, theirs) in siblings
            .iter()
            .filter(|(o, _)| !o.eq_ignore_ascii_case(name))
        {
            if theirs.iter().any(|t| cidr::overlaps(p, t)) {
                return Err(ArmError::bad_request(
                    "NetcfgSubnetRangesOverlap",
                    format!("Subnet '{name}' is not valid because its IP address range overlaps with that of an existing subnet '{other}' in virtual network '{vnet_name}'."),
                ));
            }
        }
    }
    Ok(prefixes)
}

/// The linked action on a subnet for whoever puts a NIC or private endpoint in it.
pub const SUBNET_JOIN: &str = "Microsoft.Network/virtualNetworks/subnets/join/action";
const VNET_WRITE: &str = "Microsoft.Network/virtualNetworks/write";
const SUBNET_WRITE: &str = "Microsoft.Network/virtualNetworks/subnets/write";

/// The operation a request was authorized for, for the linked checks of
/// the resources its body references.
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    pub ctx: &'a Ctx,
    pub action: &'a str,
    pub scope: &'a str,
}

impl Asked<'_> {
    pub fn require_linked(&self, linked_action: &str, linked_scope: &str) -> Result<(), ArmError> {
        self.ctx
            .require_linked(self.action, self.scope, linked_action, linked_scope)
    }
}

/// The services a subnet may have a service endpoint for.
const SERVICES: [&str; 6] = [
    "Microsoft.Storage",
    "Microsoft.KeyVault",
    "Microsoft.EventHub",
    "Microsoft.ServiceBus",
    "Microsoft.AzureActiveDirectory",
    "Microsoft.Storage.Global",
];

/// "Service endpoints are available for" Azure's listed services; with no
/// locations given, Azure fills in the network's region and its pair.
pub fn service_endpoint(
    subnet: &str,
    service: &str,
    locations: Vec<String>,
    vnet_location: &str,
) -> Result<ServiceEndpoint, ArmError> {
    if !SERVICES.iter().any(|s| s.eq_ignore_ascii_case(service)) {
        return Err(ArmError::bad_request(
            "InvalidServiceNameOnServiceEndpoint",
            format!("Subnet {subnet} has an invalid service endpoint service '{service}'."),
        ));
    }
    let locations = if locations.is_empty() {
        let mut l = vec![vnet_location.to_string()];
        if let Some(pair) = recoverite_arm::regions::find(vnet_location).and_then(|r| r.paired) {
            l.push(pair.to_string());
        }
        l
    } else {
        locations
    };
    Ok(ServiceEndpoint {
        service: service.to_string(),
        locations,
        provisioning_state: "Succeeded".into(),
    })
}

/// `privateEndpointNetworkPolicies` is one of Azure's four words.
pub fn check_endpoint_policies(pen: &str) -> Result<(), ArmError> {
    if [
        "Enabled",
        "Disabled",
        "NetworkSecurityGroupEnabled",
        "RouteTableEnabled",
    ]
    .contains(&pen)
    {
        return Ok(());
    }
    Err(ArmError::invalid_parameter(
        "privateEndpointNetworkPolicies",
        format!("privateEndpointNetworkPolicies '{pen}' is not valid; use Enabled, Disabled, NetworkSecurityGroupEnabled or RouteTableEnabled."),
    ))
}

/// Builds the stored subnet from a request's properties.
fn subnet_doc(
    r: &impl Reader,
    asked: Asked<'_>,
    sid: &str,
    name: &str,
    props: &Value,
    vnet_location: &str,
    existing: Option<&Subnet>,
) -> Result<Subnet, ArmError> {
    let mut given = Map::new();
    for k in [
        "delegations",
        "defaultOutboundAccess",
        "natGateway",
        "sharingScope",
    ] {
        if let Some(v) = props.get(k).filter(|v| !v.is_null()) {
            given.insert(k.into(), v.clone());
        }
    }
    let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_string);
    let address_prefixes = match props.get("addressPrefixes").filter(|v| !v.is_null()) {
        Some(v) => Some(
            serde_json::from_value::<Vec<String>>(v.clone())
                .map_err(|_| ArmError::invalid_content("'addressPrefixes' must list strings"))?,
        ),
        None => None,
    };
    let nsg = ref_id(props.get("networkSecurityGroup"));
    if let Some(nsg) = &nsg {
        load_ref(r, nsg, crate::nsg::NSG_TYPE, sid)?;
        asked.require_linked(crate::nsg::JOIN, nsg)?;
    }
    let rt = ref_id(props.get("routeTable"));
    if let Some(rt) = &rt {
        load_ref(r, rt, crate::routetable::ROUTE_TABLE_TYPE, sid)?;
        asked.require_linked(crate::routetable::JOIN, rt)?;
    }
    let mut endpoints = Vec::new();
    for se in props["serviceEndpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let service = se["service"].as_str().ok_or_else(|| {
            ArmError::invalid_content("serviceEndpoints[].service must be a string")
        })?;
        let locations = se["locations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str().map(str::to_string))
            .collect();
        endpoints.push(service_endpoint(name, service, locations, vnet_location)?);
    }
    let pen = text("privateEndpointNetworkPolicies")
        .or_else(|| existing.map(|e| e.properties.private_endpoint_network_policies.clone()))
        .unwrap_or_else(|| "Disabled".into());
    check_endpoint_policies(&pen)?;
    Ok(Subnet {
        id: existing
            .map(|e| e.id.clone())
            .unwrap_or_else(|| sid.to_string()),
        name: existing
            .map(|e| e.name.clone())
            .unwrap_or_else(|| name.to_string()),
        kind: SUBNET_TYPE.into(),
        etag: etag(),
        properties: SubnetProperties {
            address_prefix: text("addressPrefix"),
            address_prefixes,
            network_security_group: nsg.as_deref().map(Ref::to),
            route_table: rt.as_deref().map(Ref::to),
            service_endpoints: (!endpoints.is_empty()).then_some(endpoints),
            private_endpoint_network_policies: pen,
            private_link_service_network_policies: text("privateLinkServiceNetworkPolicies")
                .unwrap_or_else(|| "Enabled".into()),
            provisioning_state: "Succeeded".into(),
            given,
        },
    })
}

fn existing_name(existing: Option<&Value>, name: &str) -> String {
    existing
        .and_then(|e| e["name"].as_str())
        .unwrap_or(name)
        .to_string()
}

/// Adds the read-only views of a subnet (who uses its addresses).
pub fn assemble_subnet(r: &impl Reader, subnet: &Subnet) -> Result<Value, ArmError> {
    let mut d = subnet.to_value()?;
    let sid = subnet.id.clone();
    let used = ipam_store::used(r, &sid)?;
    let mut ipconfigs = Vec::new();
    let mut pes = Vec::new();
    for a in used {
        let lower = a.owner.to_ascii_lowercase();
        if let Some(pe) = lower.find("/privateendpoints/").map(|i| {
            let rest = &a.owner[i + "/privateEndpoints/".len()..];
            format!(
                "{}{}",
                &a.owner[..i + "/privateEndpoints/".len()],
                rest.split('/').next().unwrap_or("")
            )
        }) {
            if !pes.contains(&json!({"id": pe})) {
                pes.push(json!({"id": pe}));
            }
        } else {
            ipconfigs.push(json!({"id": a.owner}));
        }
    }
    if !ipconfigs.is_empty() {
        d["properties"]["ipConfigurations"] = Value::Array(ipconfigs);
    }
    if !pes.is_empty() {
        d["properties"]["privateEndpoints"] = Value::Array(pes);
    }
    Ok(d)
}

fn peering_state(r: &impl Reader, vnet_id: &str, p: &Peering) -> Result<&'static str, ArmError> {
    let remote = &p.properties.remote_virtual_network.id;
    if network::load_vnet(r, remote)?.is_none() {
        return Ok("Disconnected");
    }
    let connected = network::peerings_of(r, remote)?
        .iter()
        .any(|b| key(&b.properties.remote_virtual_network.id) == key(vnet_id));
    Ok(if connected { "Connected" } else { "Initiated" })
}

fn assemble_peering(r: &impl Reader, vnet_id: &str, p: &Peering) -> Result<Value, ArmError> {
    let mut d = serde_json::to_value(p).map_err(|e| ArmError::internal(e.to_string()))?;
    d["properties"]["peeringState"] = json!(peering_state(r, vnet_id, p)?);
    d["properties"]["peeringSyncLevel"] = json!("FullyInSync");
    if let Some(rv) = network::load_vnet(r, &p.properties.remote_virtual_network.id)? {
        let space = json!(rv.properties.address_space);
        d["properties"]["remoteAddressSpace"] = space.clone();
        d["properties"]["remoteVirtualNetworkAddressSpace"] = space;
    }
    Ok(d)
}

pub fn assemble_vnet(r: &impl Reader, vnet: &VirtualNetwork) -> Result<Value, ArmError> {
    let mut d = vnet.to_value()?;
    let subnets: Vec<Value> = network::subnets_of(r, &vnet.id)?
        .iter()
        .map(|s| assemble_subnet(r, s))
        .collect::<Result<_, _>>()?;
    let peerings: Vec<Value> = network::peerings_of(r, &vnet.id)?
        .iter()
        .map(|p| assemble_peering(r, &vnet.id, p))
        .collect::<Result<_, _>>()?;
    d["properties"]["subnets"] = Value::Array(subnets);
    d["properties"]["virtualNetworkPeerings"] = Value::Array(peerings);
    Ok(d)
}

fn siblings(r: &impl Reader, vnet_id: &str) -> Result<Vec<(String, Vec<Ipv4Net>)>, ArmError> {
    Ok(network::subnets_of(r, vnet_id)?
        .into_iter()
        .map(|s| {
            let p = s.prefixes();
            (s.name, p)
        })
        .collect())
}

fn in_use_error(subnet: &str, owner: &str) -> ArmError {
    ArmError::bad_request(
        "InUseSubnetCannotBeDeleted",
        format!("Subnet {subnet} is in use by {owner} and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet."),
    )
}

/// Removes a subnet, refusing while any address in it is allocated.
fn remove_subnet(tx: &mut WriteTx, sid: &str, name: &str) -> Result<(), ArmError> {
    if let Some(a) = ipam_store::used(tx, sid)?.first() {
        return Err(in_use_error(name, &a.owner));
    }
    resource::delete_tree(tx, sid)?;
    ipam_store::forget_subnet(tx, sid)?;
    Ok(())
}

/// Writes a subnet, refusing to move an address range that is in use.
fn write_subnet(
    tx: &mut WriteTx,
    subnet: &Subnet,
    old: Option<&Subnet>,
    prefixes: &[Ipv4Net],
) -> Result<(), ArmError> {
    if let Some(o) = old {
        if o.prefixes() != prefixes {
            let used = ipam_store::used(tx, &subnet.id)?;
            if let Some(a) = used
                .iter()
                .find(|a| !prefixes.first().is_some_and(|p| p.contains(&a.ip)))
            {
                return Err(ArmError::bad_request(
                    "InUseSubnetCannotBeUpdated",
                    format!("Subnet {} is in use by {} and its address range cannot change to exclude {}.", subnet.name, a.owner, a.ip),
                ));
            }
        }
    }
    subnet.save(tx)
}

/// "The address space of a virtual network" is one or more CIDR prefixes
/// that do not overlap each other.
pub fn check_address_space(vnet: &str, raw: &[Value]) -> Result<Vec<Ipv4Net>, ArmError> {
    if raw.is_empty() {
        return Err(ArmError::bad_request(
            "InvalidAddressSpace",
            "A virtual network needs properties.addressSpace.addressPrefixes with at least one CIDR prefix.",
        ));
    }
    let space = parse_prefixes(raw, "addressPrefixes")?;
    for (i, a) in space.iter().enumerate() {
        if let Some(b) = space[i + 1..].iter().find(|b| cidr::overlaps(a, b)) {
            return Err(ArmError::bad_request(
                "NetcfgInvalidAddressSpace",
                format!("Address prefixes {a} and {b} of virtual network '{vnet}' overlap."),
            ));
        }
    }
    Ok(space)
}

/// Each requested subnet's name and prefixes (those that parse), for the
/// overlap checks among siblings of one request.
fn requested_prefixes(requested: &[Value]) -> Vec<(String, Vec<Ipv4Net>)> {
    requested
        .iter()
        .filter_map(|o| {
            let on = o["name"].as_str()?.to_string();
            let mut ps: Vec<Value> = o["properties"]["addressPrefixes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(p) = o["properties"]
                .get("addressPrefix")
                .filter(|v| !v.is_null())
            {
                ps.insert(0, p.clone());
            }
            Some((on, parse_prefixes(&ps, "addressPrefixes").ok()?))
        })
        .collect()
}

/// What a network PUT asks for, checked outside the transaction.
struct NetworkPut<'a> {
    name: &'a str,
    space: Vec<Ipv4Net>,
    location: &'a str,
    requested: &'a [Value],
}

/// Subnets listed inline replace the set, as in Azure: the listed ones are
/// checked and written in the order given, the others removed (refused
/// while in use).
fn replace_subnets(ctx: &Ctx, tx: &mut WriteTx, vid: &str, p: &NetworkPut) -> Result<(), ArmError> {
    let all = requested_prefixes(p.requested);
    let mut planned: Vec<String> = Vec::new();
    let mut docs = Vec::new();
    for s in p.requested {
        let sname = s["name"]
            .as_str()
            .ok_or_else(|| ArmError::invalid_content("every subnet needs a 'name'"))?
            .to_string();
        let sprops = s.get("properties").cloned().unwrap_or(json!({}));
        let prefixes = validate_subnet(p.name, &p.space, &sname, &sprops, &all)?;
        let sid = child_id(vid, "subnets", &sname);
        let old = network::load_subnet(tx, &sid)?;
        let asked = Asked {
            ctx,
            action: VNET_WRITE,
            scope: vid,
        };
        let doc = subnet_doc(tx, asked, &sid, &sname, &sprops, p.location, old.as_ref())?;
        docs.push((doc, old, prefixes));
        planned.push(sname);
    }
    for old in network::subnets_of(tx, vid)? {
        if !planned.iter().any(|p| p.eq_ignore_ascii_case(&old.name)) {
            remove_subnet(tx, &old.id, &old.name)?;
        }
    }
    for (doc, old, prefixes) in &docs {
        write_subnet(tx, doc, old.as_ref(), prefixes)?;
    }
    let order: Vec<String> = planned
        .iter()
        .map(|sname| child_id(vid, "subnets", sname))
        .collect();
    resource::keep_order(tx, &order)
}

pub fn put_vnet(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let n = name(req);
    check_name("virtual network", &n)?;
    let body = req.body.clone().unwrap_or(Value::Null);
    if !body.is_object() {
        return Err(ArmError::invalid_content("the body must be a JSON object"));
    }
    let rid = req.path.id();
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let space_raw = props["addressSpace"]["addressPrefixes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let space = check_address_space(&n, &space_raw)?;
    let tags = tags_of(&body)?;
    let requested_subnets = props["subnets"].as_array().cloned().unwrap_or_default();
    ctx.store().write(|tx| {
        let existing = network::load_vnet(tx, &rid)?;
        let existing_doc = existing
            .as_ref()
            .map(VirtualNetwork::to_value)
            .transpose()?;
        let location = location_of(&body, VNET_TYPE, existing_doc.as_ref())?;
        let vid = existing
            .as_ref()
            .map(|e| e.id.clone())
            .unwrap_or_else(|| rid.clone());
        let planned = NetworkPut {
            name: &n,
            space: space.clone(),
            location: &location,
            requested: &requested_subnets,
        };
        replace_subnets(ctx, tx, &vid, &planned)?;
        let mut given = props.as_object().cloned().unwrap_or_default();
        for k in [
            "subnets",
            "virtualNetworkPeerings",
            "addressSpace",
            "provisioningState",
            "resourceGuid",
            "enableDdosProtection",
        ] {
            given.remove(k);
        }
        let vnet = VirtualNetwork {
            id: vid.clone(),
            name: existing
                .as_ref()
                .map(|e| e.name.clone())
                .unwrap_or(n.clone()),
            kind: VNET_TYPE.into(),
            etag: etag(),
            location: location.clone(),
            tags: tags.as_object().cloned().unwrap_or_default(),
            properties: NetworkProperties {
                address_space: AddressSpace {
                    address_prefixes: space_raw
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                },
                provisioning_state: "Succeeded".into(),
                resource_guid: existing
                    .as_ref()
                    .map(|e| e.properties.resource_guid.clone())
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                enable_ddos_protection: props["enableDdosProtection"].as_bool().unwrap_or(false),
                given,
            },
        };
        vnet.save(tx)?;
        // The network's own alias: a resolver position "inside" the network.
        crate::aliases::assign(tx, &vid, "virtualNetwork", &vid, None, None)?;
        let op = common::op(ctx, &vid);
        op.save(tx)?;
        Ok(put_reply(
            ctx,
            req,
            existing.is_none(),
            assemble_vnet(tx, &vnet)?,
            &op,
            &location,
        ))
    })
}

pub fn get_vnet(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store()
        .view(|r| match network::load_vnet(r, &req.path.id())? {
            Some(v) => Ok(Reply::ok(assemble_vnet(r, &v)?)),
            None => Err(not_found(req, VNET_TYPE)),
        })
}

pub fn list_vnets(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    let items = ctx.store().view(|r| {
        network::list_vnets(r, &scope)?
            .iter()
            .map(|v| assemble_vnet(r, v))
            .collect::<Result<Vec<_>, ArmError>>()
    })?;
    paging::page_visible(ctx, req, items)
}

pub fn delete_vnet(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store().write(|tx| {
        let Some(vnet) = network::load_vnet(tx, &rid)? else {
            return Ok(Reply::empty(204));
        };
        for s in network::subnets_of(tx, &rid)? {
            remove_subnet(tx, &s.id, &s.name)?;
        }
        resource::delete_tree(tx, &rid)?;
        ctx.cascade_delete(tx, &rid)?;
        let op = common::op(ctx, &rid);
        op.save(tx)?;
        Ok(delete_reply(ctx, req, &op, &vnet.location))
    })
}

/// The network a subnet or peering request names (404 naming it).
fn vnet_of(r: &impl Reader, req: &ArmRequest) -> Result<VirtualNetwork, ArmError> {
    let pid = req.path.prefix(req.path.segments.len().saturating_sub(2));
    network::load_vnet(r, &pid)?.ok_or_else(|| {
        ArmError::resource_not_found(
            VNET_TYPE,
            names(req).first().map(String::as_str).unwrap_or_default(),
            req.path.resource_group.as_deref(),
        )
    })
}

pub fn put_subnet(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let sname = name(req);
    let body = req.body.clone().unwrap_or(json!({}));
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    ctx.store().write(|tx| {
        let vnet = vnet_of(tx, req)?;
        let sid = child_id(&vnet.id, "subnets", &sname);
        let old = network::load_subnet(tx, &sid)?;
        let prefixes = validate_subnet(
            &vnet.name,
            &vnet.prefixes(),
            &sname,
            &props,
            &siblings(tx, &vnet.id)?,
        )?;
        let asked = Asked {
            ctx,
            action: SUBNET_WRITE,
            scope: &sid,
        };
        let subnet = subnet_doc(
            tx,
            asked,
            &sid,
            &sname,
            &props,
            &vnet.location,
            old.as_ref(),
        )?;
        write_subnet(tx, &subnet, old.as_ref(), &prefixes)?;
        let op = common::op(ctx, &sid);
        op.save(tx)?;
        Ok(put_reply(
            ctx,
            req,
            old.is_none(),
            assemble_subnet(tx, &subnet)?,
            &op,
            &vnet.location,
        ))
    })
}

pub fn get_subnet(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store().view(|r| {
        vnet_of(r, req)?;
        match network::load_subnet(r, &req.path.id())? {
            Some(s) => Ok(Reply::ok(assemble_subnet(r, &s)?)),
            None => Err(not_found(req, SUBNET_TYPE)),
        }
    })
}

pub fn list_subnets(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = req.path.parent_id();
    let items = ctx.store().view(|r| {
        if network::load_vnet(r, &vid)?.is_none() {
            return Err(ArmError::resource_not_found(
                VNET_TYPE,
                &names(req)[0],
                req.path.resource_group.as_deref(),
            ));
        }
        network::subnets_of(r, &vid)?
            .iter()
            .map(|s| assemble_subnet(r, s))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

pub fn delete_subnet(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    delete_child(ctx, req, VNET_TYPE, |tx, doc| {
        remove_subnet(
            tx,
            doc["id"].as_str().unwrap_or_default(),
            doc["name"].as_str().unwrap_or_default(),
        )
    })
}

/// "Virtual networks with overlapping address spaces cannot be peered",
/// nor a network with itself.
pub fn check_peering(
    pid: &str,
    local: &VirtualNetwork,
    remote: &VirtualNetwork,
) -> Result<(), ArmError> {
    if key(&remote.id) == key(&local.id) {
        return Err(ArmError::bad_request(
            "CannotPeerVnetToItself",
            "A virtual network cannot be peered with itself.",
        ));
    }
    for a in local.prefixes() {
        if let Some(b) = remote
            .prefixes()
            .into_iter()
            .find(|b| cidr::overlaps(&a, b))
        {
            return Err(ArmError::bad_request(
                "VnetAddressSpacesOverlap",
                format!(
                    "Cannot create or update peering {pid}. Virtual networks {} and {} cannot be peered because their address spaces overlap ({a} and {b}).",
                    local.id, remote.id
                ),
            ));
        }
    }
    Ok(())
}

pub fn put_peering(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let pname = name(req);
    check_name("virtual network peering", &pname)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let remote = ref_id(props.get("remoteVirtualNetwork")).ok_or_else(|| {
        ArmError::invalid_parameter(
            "properties.remoteVirtualNetwork",
            "A peering needs properties.remoteVirtualNetwork.id.",
        )
    })?;
    // Peering with a network (in any subscription) takes the right to peer
    // with it.
    ctx.require_linked(
        "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write",
        &req.path.id(),
        "Microsoft.Network/virtualNetworks/peer/action",
        &remote,
    )?;
    let flag = |k: &str, d: bool| props[k].as_bool().unwrap_or(d);
    ctx.store().write(|tx| {
        let vnet = vnet_of(tx, req)?;
        let pid = child_id(&vnet.id, "virtualNetworkPeerings", &pname);
        load_ref(tx, &remote, VNET_TYPE, &pid)?;
        let rv =
            network::load_vnet(tx, &remote)?.ok_or_else(|| invalid_reference(&remote, &pid))?;
        check_peering(&pid, &vnet, &rv)?;
        let old = resource::get(tx, &pid)?;
        let peering = Peering {
            id: stored_id(old.as_ref(), &pid),
            name: existing_name(old.as_ref(), &pname),
            kind: PEERING_TYPE.into(),
            etag: etag(),
            properties: PeeringProperties {
                remote_virtual_network: Ref::to(&rv.id),
                allow_virtual_network_access: flag("allowVirtualNetworkAccess", true),
                allow_forwarded_traffic: flag("allowForwardedTraffic", false),
                allow_gateway_transit: flag("allowGatewayTransit", false),
                use_remote_gateways: flag("useRemoteGateways", false),
                provisioning_state: "Succeeded".into(),
            },
        };
        peering.save(tx)?;
        let op = common::op(ctx, &pid);
        op.save(tx)?;
        Ok(put_reply(
            ctx,
            req,
            old.is_none(),
            assemble_peering(tx, &vnet.id, &peering)?,
            &op,
            &vnet.location,
        ))
    })
}

pub fn get_peering(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store().view(|r| {
        let vnet = vnet_of(r, req)?;
        match network::peerings_of(r, &vnet.id)?
            .into_iter()
            .find(|p| key(&p.id) == key(&req.path.id()))
        {
            Some(p) => Ok(Reply::ok(assemble_peering(r, &vnet.id, &p)?)),
            None => Err(not_found(req, PEERING_TYPE)),
        }
    })
}

pub fn list_peerings(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        let vnet = match network::load_vnet(r, &req.path.parent_id())? {
            Some(v) => v,
            None => vnet_of(r, req)?,
        };
        network::peerings_of(r, &vnet.id)?
            .iter()
            .map(|p| assemble_peering(r, &vnet.id, p))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

pub fn delete_peering(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    delete_child(ctx, req, VNET_TYPE, |_, _| Ok(()))
}

/// Address spaces of the networks peered (both directions) with `vnet_id`.
pub fn peered_prefixes(r: &impl Reader, vnet_id: &str) -> Result<Vec<Ipv4Net>, ArmError> {
    let mut out = Vec::new();
    for p in network::peerings_of(r, vnet_id)? {
        if peering_state(r, vnet_id, &p)? == "Connected"
            && p.properties.allow_virtual_network_access
        {
            if let Some(remote) = network::load_vnet(r, &p.properties.remote_virtual_network.id)? {
                out.extend(remote.prefixes());
            }
        }
    }
    Ok(out)
}

/// `GET …/virtualNetworks/{vnet}/CheckIPAddressAvailability?ipAddress=…`:
/// whether the address is free in the subnet holding it, and up to five
/// free ones when it is not.
pub fn check_ip_availability(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let raw = req.query_get("ipAddress").unwrap_or_default();
    let ip: std::net::Ipv4Addr = raw.parse().map_err(|_| {
        ArmError::invalid_parameter("ipAddress", format!("'{raw}' is not an IPv4 address."))
    })?;
    let vid = req.path.prefix(req.path.segments.len() - 1);
    ctx.store().view(|r| {
        let vnet = network::load_vnet(r, &vid)?.ok_or_else(|| not_found(req, VNET_TYPE))?;
        for sub in network::subnets_of(r, &vnet.id)? {
            let Some(net) = sub.primary_prefix() else { continue };
            if net.contains(&ip) {
                let pool = ipam_store::pool(r, &sub.id, net)?;
                let (available, others) = pool.availability(ip);
                let mut body = json!({"available": available});
                if !available {
                    body["availableIPAddresses"] = json!(others.iter().map(|a| a.to_string()).collect::<Vec<_>>());
                }
                return Ok(Reply::ok(body));
            }
        }
        Err(ArmError::bad_request(
            "PrivateIPAddressNotInAnySubnet",
            format!("Private static IP address {ip} does not belong to the range of any subnet in virtual network {}.", vnet.name),
        ))
    })
}

/// `GET …/virtualNetworks/{vnet}/usages`: per subnet, the addresses in use
/// against those it offers (Azure's `SubnetSpace`: the five reserved
/// addresses are in neither).
pub fn usages(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = req.path.prefix(req.path.segments.len() - 1);
    let items = ctx.store().view(|r| {
        let vnet = network::load_vnet(r, &vid)?.ok_or_else(|| not_found(req, VNET_TYPE))?;
        let mut out = Vec::new();
        for sub in network::subnets_of(r, &vnet.id)? {
            let Some(net) = sub.primary_prefix() else {
                continue;
            };
            let sid = sub.id.as_str();
            let pool = ipam_store::pool(r, sid, net)?;
            out.push(json!({
                "id": sid,
                "currentValue": pool.capacity() - pool.free(),
                "limit": pool.capacity(),
                "name": {"value": "SubnetSpace", "localizedValue": "Subnet size and usage"},
                "unit": "Count",
            }));
        }
        Ok::<_, ArmError>(out)
    })?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

#[cfg(test)]
mod rule_tests {
    use super::*;

    fn net(id: &str, prefixes: &[&str]) -> VirtualNetwork {
        VirtualNetwork {
            id: id.into(),
            name: id.rsplit('/').next().unwrap_or_default().into(),
            kind: VNET_TYPE.into(),
            etag: "e".into(),
            location: "eastus".into(),
            tags: Map::new(),
            properties: NetworkProperties {
                address_space: AddressSpace {
                    address_prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
                },
                provisioning_state: "Succeeded".into(),
                resource_guid: "g".into(),
                enable_ddos_protection: false,
                given: Map::new(),
            },
        }
    }

    #[test]
    fn networks_peer_only_with_others_whose_space_does_not_overlap() {
        let a = net("/v/a", &["10.0.0.0/16"]);
        assert!(check_peering("/p", &a, &net("/v/b", &["10.1.0.0/16"])).is_ok());
        assert_eq!(
            check_peering("/p", &a, &net("/v/b", &["10.0.128.0/17"]))
                .unwrap_err()
                .code(),
            "VnetAddressSpacesOverlap"
        );
        assert_eq!(
            check_peering("/p", &a, &net("/V/A", &["10.9.0.0/16"]))
                .unwrap_err()
                .code(),
            "CannotPeerVnetToItself"
        );
    }

    #[test]
    fn service_endpoints_are_azures_services_in_the_region_and_its_pair() {
        let se = service_endpoint("s", "Microsoft.Storage", vec![], "eastus").unwrap();
        assert_eq!(
            se.locations,
            vec!["eastus".to_string(), "westus".to_string()]
        );
        let given =
            service_endpoint("s", "microsoft.keyvault", vec!["*".into()], "eastus").unwrap();
        assert_eq!(given.locations, vec!["*".to_string()]);
        assert_eq!(
            service_endpoint("s", "Microsoft.Web", vec![], "eastus")
                .unwrap_err()
                .code(),
            "InvalidServiceNameOnServiceEndpoint"
        );
    }

    #[test]
    fn an_address_space_is_prefixes_that_do_not_overlap() {
        let raw = |p: &[&str]| p.iter().map(|x| serde_json::json!(x)).collect::<Vec<_>>();
        assert_eq!(
            check_address_space("v", &raw(&["10.0.0.0/16", "10.1.0.0/16"]))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            check_address_space("v", &[]).unwrap_err().code(),
            "InvalidAddressSpace"
        );
        assert_eq!(
            check_address_space("v", &raw(&["10.0.0.0/16", "10.0.1.0/24"]))
                .unwrap_err()
                .code(),
            "NetcfgInvalidAddressSpace"
        );
    }

    #[test]
    fn endpoint_network_policies_are_one_of_four_words() {
        for ok in [
            "Enabled",
            "Disabled",
            "NetworkSecurityGroupEnabled",
            "RouteTableEnabled",
        ] {
            assert!(check_endpoint_policies(ok).is_ok());
        }
        assert_eq!(
            check_endpoint_policies("On").unwrap_err().code(),
            "InvalidParameter"
        );
    }
}
