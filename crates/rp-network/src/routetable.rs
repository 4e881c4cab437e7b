//! Route tables and their routes.

use serde_json::{json, Map, Value};

use recoverite_arm::{paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_netcore::cidr;
use recoverite_netcore::routes::{NextHopType, UserRoute};
use recoverite_store::Reader;

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
    let all = r.scan_json::<Value>(
        recoverite_arm::RESOURCES,
        &format!("/subscriptions/{}/", sub.to_ascii_lowercase()),
    )?;
    Ok(all
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| {
            d["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(crate::vnet::SUBNET_TYPE))
        })
        .filter(|d| {
            ref_id(d["properties"].get("routeTable")).is_some_and(|x| key(&x) == key(rt_id))
        })
        .map(|d| json!({"id": d["id"]}))
        .collect())
}

fn assemble(r: &impl Reader, sub: &str, doc: &Value) -> Result<Value, ArmError> {
    let mut d = doc.clone();
    let id = d["id"].as_str().unwrap_or_default().to_string();
    d["properties"]["routes"] = Value::Array(resource::list_children(r, &id, "routes")?);
    let subnets = subnets_using(r, sub, &id)?;
    if !subnets.is_empty() {
        d["properties"]["subnets"] = Value::Array(subnets);
    }
    Ok(d)
}

fn sub_of(req: &ArmRequest) -> String {
    req.path.subscription.clone().unwrap_or_default()
}

pub fn put_table(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let n = name(req);
    check_name("route table", &n)?;
    let body = req.body.clone().unwrap_or(Value::Null);
    if !body.is_object() {
        return Err(ArmError::invalid_content("the body must be a JSON object"));
    }
    let rid = req.path.id();
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let mut parsed = Vec::new();
    for r in props["routes"].as_array().cloned().unwrap_or_default() {
        let rn = r["name"]
            .as_str()
            .ok_or_else(|| ArmError::invalid_content("every route needs a 'name'"))?
            .to_string();
        let rp = r.get("properties").cloned().unwrap_or(json!({}));
        parse_route(&rn, &rp)?;
        parsed.push((rn, rp));
    }
    let tags = tags_of(&body)?;
    ctx.store().write(|tx| {
        let existing = resource::get(tx, &rid)?;
        let location = location_of(&body, ROUTE_TABLE_TYPE, existing.as_ref())?;
        let tid = stored_id(existing.as_ref(), &rid);
        for old in resource::list_children(tx, &tid, "routes")? {
            let on = old["name"].as_str().unwrap_or_default();
            if !parsed.iter().any(|(n, _)| n.eq_ignore_ascii_case(on)) {
                resource::delete_tree(tx, old["id"].as_str().unwrap_or_default())?;
            }
        }
        let mut order = Vec::new();
        for (rn, rp) in &parsed {
            let id = child_id(&tid, "routes", rn);
            let old = resource::get(tx, &id)?;
            resource::put(tx, &id, &route_doc(&tid, rn, rp, old.as_ref()))?;
            order.push(id);
        }
        resource::keep_order(tx, &order)?;
        let mut doc = base_doc(&tid, existing.as_ref().and_then(|e| e["name"].as_str()).unwrap_or(&n), ROUTE_TABLE_TYPE);
        doc["location"] = json!(location);
        doc["tags"] = tags.clone();
        doc["properties"] = json!({
            "provisioningState": "Succeeded",
            "disableBgpRoutePropagation": props.get("disableBgpRoutePropagation").cloned().unwrap_or(json!(false)),
            "resourceGuid": existing.as_ref().and_then(|e| e["properties"]["resourceGuid"].as_str().map(str::to_string)).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        });
        resource::put(tx, &tid, &doc)?;
        let op = common::op(ctx, &tid);
        op.save(tx)?;
        Ok(put_reply(ctx, req, existing.is_none(), assemble(tx, &sub_of(req), &doc)?, &op, &location))
    })
}

pub fn get_table(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store()
        .view(|r| match resource::get(r, &req.path.id())? {
            Some(d) => Ok(Reply::ok(assemble(r, &sub_of(req), &d)?)),
            None => Err(not_found(req, ROUTE_TABLE_TYPE)),
        })
}

pub fn list_tables(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    let items = ctx.store().view(|r| {
        resource::list_of_type(r, &scope, ROUTE_TABLE_TYPE)?
            .iter()
            .map(|d| assemble(r, &sub_of(req), d))
            .collect::<Result<Vec<_>, _>>()
    })?;
    paging::page_visible(ctx, req, items)
}

pub fn delete_table(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store().write(|tx| {
        let Some(doc) = resource::get(tx, &rid)? else { return Ok(Reply::empty(204)) };
        if let Some(u) = subnets_using(tx, &sub_of(req), &rid)?.first() {
            return Err(ArmError::bad_request(
                "InUseRouteTableCannotBeDeleted",
                format!("Route table {rid} is in use by subnet {} and cannot be deleted; dissociate it first.", u["id"].as_str().unwrap_or("")),
            ));
        }
        resource::delete_tree(tx, &rid)?;
        ctx.cascade_delete(tx, &rid)?;
        let op = common::op(ctx, &rid);
        op.save(tx)?;
        Ok(delete_reply(ctx, req, &op, doc["location"].as_str().unwrap_or("global")))
    })
}

fn table_of(r: &impl Reader, req: &ArmRequest) -> Result<Value, ArmError> {
    let tid = req.path.prefix(req.path.segments.len() - 2);
    resource::get(r, &tid)?.ok_or_else(|| {
        ArmError::resource_not_found(
            ROUTE_TABLE_TYPE,
            &names(req)[0],
            req.path.resource_group.as_deref(),
        )
    })
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
    let id = req.path.id();
    ctx.store().write(|tx| {
        let t = table_of(tx, req)?;
        if !resource::delete_tree(tx, &id)? {
            return Ok(Reply::empty(204));
        }
        let op = common::op(ctx, &id);
        op.save(tx)?;
        Ok(delete_reply(
            ctx,
            req,
            &op,
            t["location"].as_str().unwrap_or("global"),
        ))
    })
}
