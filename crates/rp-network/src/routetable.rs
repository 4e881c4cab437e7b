//! Route tables and their routes.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use recoverite_arm::tracked::{Tracked, TrackedKind};
use recoverite_arm::{paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_netcore::cidr;
use recoverite_netcore::routes::{NextHopType, UserRoute};
use recoverite_store::{Reader, WriteTx};

use crate::common::{self, *};

pub const ROUTE_TABLE_TYPE: &str = "Microsoft.Network/routeTables";
/// The linked action on this resource for whoever associates it with a subnet or NIC.
pub const JOIN: &str = "Microsoft.Network/routeTables/join/action";
pub const ROUTE_TYPE: &str = "Microsoft.Network/routeTables/routes";

pub fn parse_route(name: &str, props: &Value) -> Result<UserRoute, ArmError> {
    check_name("route", name)?;
    let prefix_s = props["addressPrefix"].as_str().ok_or_else(|| {
        ArmError::invalid_parameter(
            "addressPrefix",
            format!("Route {name} needs an addressPrefix."),
        )
    })?;
    let prefix = cidr::parse_prefix(prefix_s).map_err(|e| {
        ArmError::bad_request(
            "InvalidRouteAddressPrefix",
            format!("Route {name} has an invalid address prefix: {e}."),
        )
    })?;
    let hop_s = props["nextHopType"].as_str().unwrap_or("");
    let next_hop = NextHopType::parse(hop_s).filter(|h| *h != NextHopType::VNetPeering).ok_or_else(|| {
        ArmError::bad_request(
            "InvalidRouteNextHopType",
            format!("Route {name} has next hop type '{hop_s}'; use VirtualNetworkGateway, VnetLocal, Internet, VirtualAppliance or None."),
        )
    })?;
    let ip = props["nextHopIpAddress"].as_str().filter(|s| !s.is_empty());
    let next_hop_ip = match (next_hop, ip) {
        (NextHopType::VirtualAppliance, Some(ip)) => Some(ip.parse().map_err(|_| {
            ArmError::bad_request("InvalidRouteNextHopIpAddress", format!("Route {name} has an invalid nextHopIpAddress '{ip}'."))
        })?),
        (NextHopType::VirtualAppliance, None) => {
            return Err(ArmError::bad_request(
                "InvalidRouteNextHopIpAddress",
                format!("Route {name} has next hop type VirtualAppliance and needs a nextHopIpAddress (the appliance's private IP)."),
            ))
        }
        (_, Some(_)) => {
            return Err(ArmError::bad_request(
                "NextHopIpAddressNotAllowed",
                format!("Route {name}: a nextHopIpAddress is only allowed with next hop type VirtualAppliance."),
            ))
        }
        (_, None) => None,
    };
    Ok(UserRoute {
        name: name.to_string(),
        prefix,
        next_hop,
        next_hop_ip,
    })
}

fn route_doc(rt_id: &str, name: &str, props: &Value, existing: Option<&Value>) -> Value {
    let rid = child_id(rt_id, "routes", name);
    let mut doc = base_doc(
        &stored_id(existing, &rid),
        existing.and_then(|e| e["name"].as_str()).unwrap_or(name),
        ROUTE_TYPE,
    );
    let mut p = Map::new();
    for k in ["addressPrefix", "nextHopType", "nextHopIpAddress"] {
        if let Some(v) = props.get(k).filter(|v| !v.is_null()) {
            p.insert(k.into(), v.clone());
        }
    }
    p.insert("provisioningState".into(), json!("Succeeded"));
    doc["properties"] = Value::Object(p);
    doc
}

pub fn routes_of(r: &impl Reader, rt_id: &str) -> Result<Vec<UserRoute>, ArmError> {
    resource::list_children(r, rt_id, "routes")?
        .iter()
        .map(|d| parse_route(d["name"].as_str().unwrap_or_default(), &d["properties"]))
        .collect()
}

fn subnets_using(r: &impl Reader, sub: &str, rt_id: &str) -> Result<Vec<Value>, ArmError> {
    Ok(crate::network::subnets_of_subscription(r, sub)?
        .into_iter()
        .filter(|s| {
            s.properties
                .route_table
                .as_ref()
                .is_some_and(|x| key(&x.id) == key(rt_id))
        })
        .map(|s| json!({"id": s.id}))
        .collect())
}

/// A route table's stored properties; its routes are child resources and
/// the subnets using it are shown, not kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteTableProperties {
    pub provisioning_state: String,
    pub disable_bgp_route_propagation: bool,
    pub resource_guid: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GivenRouteTable {
    disable_bgp_route_propagation: Option<bool>,
    routes: Option<Vec<GivenChild>>,
}

/// Route tables, served by the tracked-resource core: inline routes replace
/// the table's routes (in the order given); one a subnet uses is not deleted.
pub struct RouteTable;

impl TrackedKind for RouteTable {
    const TYPE: &'static str = ROUTE_TABLE_TYPE;
    const NOUN: &'static str = "route table";
    const ETAG: bool = true;
    const ASYNC: bool = true;
    type Properties = RouteTableProperties;
    type Given = GivenRouteTable;

    fn new_etag() -> String {
        common::etag()
    }

    fn check_name(name: &str) -> Result<(), ArmError> {
        check_name("route table", name)
    }

    fn properties(
        _: &Ctx,
        tx: &mut WriteTx,
        id: &str,
        given: GivenRouteTable,
        existing: Option<&RouteTableProperties>,
        patch: bool,
    ) -> Result<RouteTableProperties, ArmError> {
        // PATCH is Azure's `updateTags` (a TagsObject): it changes nothing else.
        if let (true, Some(e)) = (patch, existing) {
            return Ok(e.clone());
        }
        // A PUT replaces the routes: none given, none kept.
        let routes = named_children(given.routes, "route", |n, p| parse_route(n, p).map(|_| ()))?;
        replace_children(tx, id, "routes", &routes, route_doc)?;
        Ok(RouteTableProperties {
            provisioning_state: "Succeeded".into(),
            disable_bgp_route_propagation: given.disable_bgp_route_propagation.unwrap_or(false),
            resource_guid: existing
                .map(|e| e.resource_guid.clone())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        })
    }

    fn render(r: &impl Reader, doc: &mut Value) -> Result<(), ArmError> {
        let id = doc["id"].as_str().unwrap_or_default().to_string();
        doc["properties"]["routes"] = Value::Array(resource::list_children(r, &id, "routes")?);
        let subnets = subnets_using(r, &subscription_of(&id), &id)?;
        if !subnets.is_empty() {
            doc["properties"]["subnets"] = Value::Array(subnets);
        }
        Ok(())
    }

    fn deleting(tx: &mut WriteTx, doc: &Tracked<RouteTableProperties>) -> Result<(), ArmError> {
        match subnets_using(tx, &subscription_of(&doc.id), &doc.id)?.first() {
            Some(u) => Err(ArmError::bad_request(
                "InUseRouteTableCannotBeDeleted",
                format!("Route table {} is in use by subnet {} and cannot be deleted; dissociate it first.", doc.id, u["id"].as_str().unwrap_or("")),
            )),
            None => Ok(()),
        }
    }
}

fn subscription_of(id: &str) -> String {
    id.split('/').nth(2).unwrap_or_default().to_string()
}

fn table_of(r: &impl Reader, req: &ArmRequest) -> Result<Value, ArmError> {
    parent_of(r, req, ROUTE_TABLE_TYPE)
}

pub fn put_route(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rn = name(req);
    let body = req.body.clone().unwrap_or(json!({}));
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    parse_route(&rn, &props)?;
    ctx.store().write(|tx| {
        let t = table_of(tx, req)?;
        let tid = t["id"].as_str().unwrap_or_default().to_string();
        let id = child_id(&tid, "routes", &rn);
        let old = resource::get(tx, &id)?;
        let doc = route_doc(&tid, &rn, &props, old.as_ref());
        resource::put(tx, &id, &doc)?;
        let op = common::op(ctx, &id);
        op.save(tx)?;
        Ok(put_reply(
            ctx,
            req,
            old.is_none(),
            doc,
            &op,
            t["location"].as_str().unwrap_or_default(),
        ))
    })
}

pub fn get_route(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store().view(|r| {
        table_of(r, req)?;
        resource::get(r, &req.path.id())?
            .map(Reply::ok)
            .ok_or_else(|| not_found(req, ROUTE_TYPE))
    })
}

pub fn list_routes(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let tid = req.path.parent_id();
    let items = ctx.store().view(|r| {
        if resource::get(r, &tid)?.is_none() {
            return Err(ArmError::resource_not_found(
                ROUTE_TABLE_TYPE,
                &names(req)[0],
                req.path.resource_group.as_deref(),
            ));
        }
        resource::list_children(r, &tid, "routes")
    })?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

pub fn delete_route(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    delete_child(ctx, req, ROUTE_TABLE_TYPE, |_, _| Ok(()))
}
