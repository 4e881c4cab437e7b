//! Virtual networks, their subnets and peerings.

use serde_json::{json, Map, Value};

use recoverite_arm::{paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_netcore::cidr::{self, Ipv4Net};
use recoverite_netcore::ipam;
use recoverite_store::{Reader, WriteTx};

use crate::common::{self, *};
use crate::ipam_store;

pub const VNET_TYPE: &str = "Microsoft.Network/virtualNetworks";
pub const SUBNET_TYPE: &str = "Microsoft.Network/virtualNetworks/subnets";
pub const PEERING_TYPE: &str = "Microsoft.Network/virtualNetworks/virtualNetworkPeerings";

pub fn vnet_prefixes(doc: &Value) -> Vec<Ipv4Net> {
    doc["properties"]["addressSpace"]["addressPrefixes"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

pub fn subnet_prefixes(doc: &Value) -> Vec<Ipv4Net> {
    let p = &doc["properties"];
    let mut out: Vec<Ipv4Net> = p["addressPrefixes"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    if let Some(one) = p["addressPrefix"].as_str().and_then(|s| s.parse().ok()) {
        if !out.contains(&one) {
            out.insert(0, one);
        }
    }
    out
}

/// The subnet's first prefix (where addresses are allocated).
pub fn primary_prefix(doc: &Value) -> Option<Ipv4Net> {
    subnet_prefixes(doc).into_iter().next()
}

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

/// Builds the stored subnet document from a request's properties.
fn subnet_doc(
    r: &impl Reader,
    asked: Asked<'_>,
    sid: &str,
    name: &str,
    props: &Value,
    vnet_location: &str,
    existing: Option<&Value>,
) -> Result<Value, ArmError> {
    let mut p = Map::new();
    for k in [
        "addressPrefix",
        "addressPrefixes",
        "delegations",
        "defaultOutboundAccess",
        "natGateway",
        "sharingScope",
    ] {
        if let Some(v) = props.get(k).filter(|v| !v.is_null()) {
            p.insert(k.into(), v.clone());
        }
    }
    if let Some(nsg) = ref_id(props.get("networkSecurityGroup")) {
        load_ref(r, &nsg, crate::nsg::NSG_TYPE, sid)?;
        asked.require_linked(crate::nsg::JOIN, &nsg)?;
        p.insert("networkSecurityGroup".into(), json!({"id": nsg}));
    }
    if let Some(rt) = ref_id(props.get("routeTable")) {
        load_ref(r, &rt, crate::routetable::ROUTE_TABLE_TYPE, sid)?;
        asked.require_linked(crate::routetable::JOIN, &rt)?;
        p.insert("routeTable".into(), json!({"id": rt}));
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
        if ![
            "Microsoft.Storage",
            "Microsoft.KeyVault",
            "Microsoft.EventHub",
            "Microsoft.ServiceBus",
            "Microsoft.AzureActiveDirectory",
            "Microsoft.Storage.Global",
        ]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(service))
        {
            return Err(ArmError::bad_request(
                "InvalidServiceNameOnServiceEndpoint",
                format!("Subnet {name} has an invalid service endpoint service '{service}'."),
            ));
        }
        // Azure fills in the network's region and its pair when none are given.
        let locations = match se["locations"].as_array() {
            Some(l) if !l.is_empty() => Value::Array(l.clone()),
            _ => {
                let mut l = vec![json!(vnet_location)];
                if let Some(pair) =
                    recoverite_arm::regions::find(vnet_location).and_then(|r| r.paired)
                {
                    l.push(json!(pair));
                }
                Value::Array(l)
            }
        };
        endpoints.push(
            json!({"service": service, "locations": locations, "provisioningState": "Succeeded"}),
        );
    }
    if !endpoints.is_empty() {
        p.insert("serviceEndpoints".into(), Value::Array(endpoints));
    }
    let pen = props
        .get("privateEndpointNetworkPolicies")
        .and_then(Value::as_str)
        .or_else(|| {
            existing.and_then(|e| e["properties"]["privateEndpointNetworkPolicies"].as_str())
        })
        .unwrap_or("Disabled");
    if ![
        "Enabled",
        "Disabled",
        "NetworkSecurityGroupEnabled",
        "RouteTableEnabled",
    ]
    .contains(&pen)
    {
        return Err(ArmError::invalid_parameter(
            "privateEndpointNetworkPolicies",
            format!("privateEndpointNetworkPolicies '{pen}' is not valid; use Enabled, Disabled, NetworkSecurityGroupEnabled or RouteTableEnabled."),
        ));
    }
    p.insert("privateEndpointNetworkPolicies".into(), json!(pen));
    let pls = props
        .get("privateLinkServiceNetworkPolicies")
        .and_then(Value::as_str)
        .unwrap_or("Enabled");
    p.insert("privateLinkServiceNetworkPolicies".into(), json!(pls));
    p.insert("provisioningState".into(), json!("Succeeded"));
    let mut doc = base_doc(
        &stored_id(existing, sid),
        &existing_name(existing, name),
        SUBNET_TYPE,
    );
    doc["properties"] = Value::Object(p);
    Ok(doc)
}

fn existing_name(existing: Option<&Value>, name: &str) -> String {
    existing
        .and_then(|e| e["name"].as_str())
        .unwrap_or(name)
        .to_string()
}

/// Adds the read-only views of a subnet (who uses its addresses).
pub fn assemble_subnet(r: &impl Reader, doc: &Value) -> Result<Value, ArmError> {
    let mut d = doc.clone();
    let sid = d["id"].as_str().unwrap_or_default().to_string();
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

fn peering_state(r: &impl Reader, vnet_id: &str, doc: &Value) -> Result<&'static str, ArmError> {
    let Some(remote) = ref_id(doc["properties"].get("remoteVirtualNetwork")) else {
        return Ok("Disconnected");
    };
    if resource::get(r, &remote)?.is_none() {
        return Ok("Disconnected");
    }
    let back = resource::list_children(r, &remote, "virtualNetworkPeerings")?;
    let connected = back.iter().any(|p| {
        ref_id(p["properties"].get("remoteVirtualNetwork")).is_some_and(|x| key(&x) == key(vnet_id))
    });
    Ok(if connected { "Connected" } else { "Initiated" })
}

fn assemble_peering(r: &impl Reader, vnet_id: &str, doc: &Value) -> Result<Value, ArmError> {
    let mut d = doc.clone();
    let state = peering_state(r, vnet_id, doc)?;
    d["properties"]["peeringState"] = json!(state);
    d["properties"]["peeringSyncLevel"] = json!("FullyInSync");
    if let Some(remote) = ref_id(doc["properties"].get("remoteVirtualNetwork")) {
        if let Some(rv) = resource::get(r, &remote)? {
            d["properties"]["remoteAddressSpace"] = rv["properties"]["addressSpace"].clone();
            d["properties"]["remoteVirtualNetworkAddressSpace"] =
                rv["properties"]["addressSpace"].clone();
        }
    }
    Ok(d)
}

pub fn assemble_vnet(r: &impl Reader, doc: &Value) -> Result<Value, ArmError> {
    let mut d = doc.clone();
    let vid = d["id"].as_str().unwrap_or_default().to_string();
    let subnets: Vec<Value> = resource::list_children(r, &vid, "subnets")?
        .iter()
        .map(|s| assemble_subnet(r, s))
        .collect::<Result<_, _>>()?;
    let peerings: Vec<Value> = resource::list_children(r, &vid, "virtualNetworkPeerings")?
        .iter()
        .map(|p| assemble_peering(r, &vid, p))
        .collect::<Result<_, _>>()?;
    d["properties"]["subnets"] = Value::Array(subnets);
    d["properties"]["virtualNetworkPeerings"] = Value::Array(peerings);
    Ok(d)
}

fn siblings(r: &impl Reader, vnet_id: &str) -> Result<Vec<(String, Vec<Ipv4Net>)>, ArmError> {
    Ok(resource::list_children(r, vnet_id, "subnets")?
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                subnet_prefixes(s),
            )
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
    doc: &Value,
    old: Option<&Value>,
    prefixes: &[Ipv4Net],
) -> Result<(), ArmError> {
    let sid = doc["id"].as_str().unwrap_or_default();
    if let Some(o) = old {
        if subnet_prefixes(o) != prefixes {
            let used = ipam_store::used(tx, sid)?;
            if let Some(a) = used
                .iter()
                .find(|a| !prefixes.first().is_some_and(|p| p.contains(&a.ip)))
            {
                return Err(ArmError::bad_request(
                    "InUseSubnetCannotBeUpdated",
                    format!("Subnet {} is in use by {} and its address range cannot change to exclude {}.", doc["name"].as_str().unwrap_or(""), a.owner, a.ip),
                ));
            }
        }
    }
    resource::put(tx, sid, doc)
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
    if space_raw.is_empty() {
        return Err(ArmError::bad_request(
            "InvalidAddressSpace",
            "A virtual network needs properties.addressSpace.addressPrefixes with at least one CIDR prefix.",
        ));
    }
    let space = parse_prefixes(&space_raw, "addressPrefixes")?;
    for (i, a) in space.iter().enumerate() {
        if let Some(b) = space[i + 1..].iter().find(|b| cidr::overlaps(a, b)) {
            return Err(ArmError::bad_request(
                "NetcfgInvalidAddressSpace",
                format!("Address prefixes {a} and {b} of virtual network '{n}' overlap."),
            ));
        }
    }
    let tags = tags_of(&body)?;
    let requested_subnets = props["subnets"].as_array().cloned().unwrap_or_default();
    ctx.store().write(|tx| {
        let existing = resource::get(tx, &rid)?;
        let location = location_of(&body, VNET_TYPE, existing.as_ref())?;
        let vid = stored_id(existing.as_ref(), &rid);
        // Subnets listed inline replace the set, as in Azure.
        let mut planned: Vec<(String, Vec<Ipv4Net>)> = Vec::new();
        let mut docs = Vec::new();
        for s in &requested_subnets {
            let sname = s["name"]
                .as_str()
                .ok_or_else(|| ArmError::invalid_content("every subnet needs a 'name'"))?
                .to_string();
            let sprops = s.get("properties").cloned().unwrap_or(json!({}));
            let all: Vec<(String, Vec<Ipv4Net>)> = requested_subnets
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
                .collect();
            let prefixes = validate_subnet(&n, &space, &sname, &sprops, &all)?;
            let sid = child_id(&vid, "subnets", &sname);
            let old = resource::get(tx, &sid)?;
            docs.push((
                subnet_doc(
                    tx,
                    Asked {
                        ctx,
                        action: VNET_WRITE,
                        scope: &vid,
                    },
                    &sid,
                    &sname,
                    &sprops,
                    &location,
                    old.as_ref(),
                )?,
                old,
                prefixes.clone(),
            ));
            planned.push((sname, prefixes));
        }
        for old in resource::list_children(tx, &vid, "subnets")? {
            let on = old["name"].as_str().unwrap_or_default();
            if !planned.iter().any(|(p, _)| p.eq_ignore_ascii_case(on)) {
                remove_subnet(tx, old["id"].as_str().unwrap_or_default(), on)?;
            }
        }
        for (doc, old, prefixes) in &docs {
            write_subnet(tx, doc, old.as_ref(), prefixes)?;
        }
        let order: Vec<String> = planned
            .iter()
            .map(|(sname, _)| child_id(&vid, "subnets", sname))
            .collect();
        resource::keep_order(tx, &order)?;
        let mut stored = props.clone();
        if let Some(o) = stored.as_object_mut() {
            o.remove("subnets");
            o.remove("virtualNetworkPeerings");
            o.insert("provisioningState".into(), json!("Succeeded"));
            let guid = existing
                .as_ref()
                .and_then(|e| e["properties"]["resourceGuid"].as_str().map(str::to_string))
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            o.insert("resourceGuid".into(), json!(guid));
            o.entry("enableDdosProtection").or_insert(json!(false));
        }
        let mut doc = base_doc(&vid, &existing_name(existing.as_ref(), &n), VNET_TYPE);
        doc["location"] = json!(location);
        doc["tags"] = tags.clone();
        doc["properties"] = stored;
        resource::put(tx, &vid, &doc)?;
        // The network's own alias: a resolver position "inside" the network.
        crate::aliases::assign(tx, &vid, "virtualNetwork", &vid, None, None)?;
        let op = common::op(ctx, &vid);
        op.save(tx)?;
        Ok(put_reply(
            ctx,
            req,
            existing.is_none(),
            assemble_vnet(tx, &doc)?,
            &op,
            &location,
        ))
    })
}

pub fn get_vnet(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store()
        .view(|r| match resource::get(r, &req.path.id())? {
            Some(d) => Ok(Reply::ok(assemble_vnet(r, &d)?)),
            None => Err(not_found(req, VNET_TYPE)),
        })
}

pub fn list_vnets(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    let items = ctx.store().view(|r| {
        resource::list_of_type(r, &scope, VNET_TYPE)?
            .iter()
            .map(|d| assemble_vnet(r, d))
            .collect::<Result<Vec<_>, ArmError>>()
    })?;
    paging::page_visible(ctx, req, items)
}

pub fn delete_vnet(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store().write(|tx| {
        let Some(doc) = resource::get(tx, &rid)? else {
            return Ok(Reply::empty(204));
        };
        for s in resource::list_children(tx, &rid, "subnets")? {
            remove_subnet(
                tx,
                s["id"].as_str().unwrap_or_default(),
                s["name"].as_str().unwrap_or_default(),
            )?;
        }
        resource::delete_tree(tx, &rid)?;
        ctx.cascade_delete(tx, &rid)?;
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

fn vnet_of(r: &impl Reader, req: &ArmRequest) -> Result<Value, ArmError> {
    parent_of(r, req, VNET_TYPE)
}

pub fn put_subnet(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let sname = name(req);
    let body = req.body.clone().unwrap_or(json!({}));
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    ctx.store().write(|tx| {
        let vnet = vnet_of(tx, req)?;
        let vid = vnet["id"].as_str().unwrap_or_default().to_string();
        let vname = vnet["name"].as_str().unwrap_or_default().to_string();
        let sid = child_id(&vid, "subnets", &sname);
        let old = resource::get(tx, &sid)?;
        let prefixes = validate_subnet(
            &vname,
            &vnet_prefixes(&vnet),
            &sname,
            &props,
            &siblings(tx, &vid)?,
        )?;
        let location = vnet["location"].as_str().unwrap_or_default().to_string();
        let doc = subnet_doc(
            tx,
            Asked {
                ctx,
                action: SUBNET_WRITE,
                scope: &sid,
            },
            &sid,
            &sname,
            &props,
            &location,
            old.as_ref(),
        )?;
        write_subnet(tx, &doc, old.as_ref(), &prefixes)?;
        let op = common::op(ctx, &sid);
        op.save(tx)?;
        Ok(put_reply(
            ctx,
            req,
            old.is_none(),
            assemble_subnet(tx, &doc)?,
            &op,
            &location,
        ))
    })
}

pub fn get_subnet(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store().view(|r| {
        vnet_of(r, req)?;
        Ok(match resource::get(r, &req.path.id())? {
            Some(d) => Reply::ok(assemble_subnet(r, &d)?),
            None => return Err(not_found(req, SUBNET_TYPE)),
        })
    })
}

pub fn list_subnets(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = req.path.parent_id();
    let items = ctx.store().view(|r| {
        if resource::get(r, &vid)?.is_none() {
            return Err(ArmError::resource_not_found(
                VNET_TYPE,
                &names(req)[0],
                req.path.resource_group.as_deref(),
            ));
        }
        resource::list_children(r, &vid, "subnets")?
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
    ctx.store().write(|tx| {
        let vnet = vnet_of(tx, req)?;
        let vid = vnet["id"].as_str().unwrap_or_default().to_string();
        let pid = child_id(&vid, "virtualNetworkPeerings", &pname);
        if key(&remote) == key(&vid) {
            return Err(ArmError::bad_request("CannotPeerVnetToItself", "A virtual network cannot be peered with itself."));
        }
        let rv = load_ref(tx, &remote, VNET_TYPE, &pid)?;
        for a in vnet_prefixes(&vnet) {
            if let Some(b) = vnet_prefixes(&rv).into_iter().find(|b| cidr::overlaps(&a, b)) {
                return Err(ArmError::bad_request(
                    "VnetAddressSpacesOverlap",
                    format!(
                        "Cannot create or update peering {pid}. Virtual networks {vid} and {remote} cannot be peered because their address spaces overlap ({a} and {b})."
                    ),
                ));
            }
        }
        let old = resource::get(tx, &pid)?;
        let mut p = Map::new();
        p.insert("remoteVirtualNetwork".into(), json!({"id": rv["id"]}));
        for (k, d) in [("allowVirtualNetworkAccess", true), ("allowForwardedTraffic", false), ("allowGatewayTransit", false), ("useRemoteGateways", false)] {
            p.insert(k.into(), props.get(k).cloned().filter(Value::is_boolean).unwrap_or(json!(d)));
        }
        p.insert("provisioningState".into(), json!("Succeeded"));
        let mut doc = base_doc(&stored_id(old.as_ref(), &pid), &existing_name(old.as_ref(), &pname), PEERING_TYPE);
        doc["properties"] = Value::Object(p);
        resource::put(tx, &pid, &doc)?;
        let op = common::op(ctx, &pid);
        op.save(tx)?;
        let location = vnet["location"].as_str().unwrap_or_default().to_string();
        Ok(put_reply(ctx, req, old.is_none(), assemble_peering(tx, &vid, &doc)?, &op, &location))
    })
}

pub fn get_peering(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store().view(|r| {
        let vnet = vnet_of(r, req)?;
        let vid = vnet["id"].as_str().unwrap_or_default();
        match resource::get(r, &req.path.id())? {
            Some(d) => Ok(Reply::ok(assemble_peering(r, vid, &d)?)),
            None => Err(not_found(req, PEERING_TYPE)),
        }
    })
}

pub fn list_peerings(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        let vnet = vnet_of(r, req).or_else(|_| {
            resource::get(r, &req.path.parent_id())?.ok_or_else(|| not_found(req, VNET_TYPE))
        })?;
        let vid = vnet["id"].as_str().unwrap_or_default().to_string();
        resource::list_children(r, &vid, "virtualNetworkPeerings")?
            .iter()
            .map(|p| assemble_peering(r, &vid, p))
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
    for p in resource::list_children(r, vnet_id, "virtualNetworkPeerings")? {
        if peering_state(r, vnet_id, &p)? == "Connected"
            && p["properties"]["allowVirtualNetworkAccess"].as_bool() != Some(false)
        {
            if let Some(remote) = ref_id(p["properties"].get("remoteVirtualNetwork"))
                .and_then(|id| resource::get(r, &id).ok().flatten())
            {
                out.extend(vnet_prefixes(&remote));
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
        let vnet = resource::get(r, &vid)?
            .filter(|d| d["type"].as_str() == Some(VNET_TYPE))
            .ok_or_else(|| not_found(req, VNET_TYPE))?;
        for sub in resource::list_of_type(r, vnet["id"].as_str().unwrap_or(&vid), SUBNET_TYPE)? {
            let Some(net) = primary_prefix(&sub) else { continue };
            if net.contains(&ip) {
                let pool = ipam_store::pool(r, sub["id"].as_str().unwrap_or_default(), net)?;
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
            format!("Private static IP address {ip} does not belong to the range of any subnet in virtual network {}.", vnet["name"].as_str().unwrap_or_default()),
        ))
    })
}

/// `GET …/virtualNetworks/{vnet}/usages`: per subnet, the addresses in use
/// against those it offers (Azure's `SubnetSpace`: the five reserved
/// addresses are in neither).
pub fn usages(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = req.path.prefix(req.path.segments.len() - 1);
    let items = ctx.store().view(|r| {
        let vnet = resource::get(r, &vid)?
            .filter(|d| d["type"].as_str() == Some(VNET_TYPE))
            .ok_or_else(|| not_found(req, VNET_TYPE))?;
        let mut out = Vec::new();
        for sub in resource::list_of_type(r, vnet["id"].as_str().unwrap_or(&vid), SUBNET_TYPE)? {
            let Some(net) = primary_prefix(&sub) else {
                continue;
            };
            let sid = sub["id"].as_str().unwrap_or_default();
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
