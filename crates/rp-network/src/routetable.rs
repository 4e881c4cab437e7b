//! Route tables and their routes.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::tracked::{Tracked, TrackedKind};
use recoverite_arm::{ArmError, ArmRequest, Ctx, Reply};
use recoverite_netcore::cidr;
use recoverite_netcore::routes::{NextHopType, UserRoute};
use recoverite_store::{Reader, WriteTx};

use crate::child::{self, ChildKind, GivenChild};
use crate::common::{self, *};

pub const ROUTE_TABLE_TYPE: &str = "Microsoft.Network/routeTables";
/// The linked action on this resource for whoever associates it with a subnet or NIC.
pub const JOIN: &str = "Microsoft.Network/routeTables/join/action";
pub const ROUTE_TYPE: &str = "Microsoft.Network/routeTables/routes";

/// A route as stored and shown (`RoutePropertiesFormat`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteProperties {
    pub address_prefix: String,
    pub next_hop_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_ip_address: Option<String>,
    pub provisioning_state: String,
}

impl ChildKind for RouteProperties {
    const TYPE: &'static str = ROUTE_TYPE;
    const NOUN: &'static str = "route";
    const SEGMENT: &'static str = "routes";
    const PARENT_TYPE: &'static str = ROUTE_TABLE_TYPE;
}

impl RouteProperties {
    /// A route's body, read into its fields and checked as a route.
    pub fn given(name: &str, props: &Value) -> Result<Self, ArmError> {
        check_name("route", name)?;
        let text = |k: &str| props[k].as_str().map(str::to_string);
        let p = RouteProperties {
            address_prefix: text("addressPrefix").ok_or_else(|| {
                ArmError::invalid_parameter(
                    "addressPrefix",
                    format!("Route {name} needs an addressPrefix."),
                )
            })?,
            next_hop_type: text("nextHopType").unwrap_or_default(),
            next_hop_ip_address: text("nextHopIpAddress").filter(|s| !s.is_empty()),
            provisioning_state: "Succeeded".into(),
        };
        p.route(name)?;
        Ok(p)
    }

    /// The route the network follows, or Azure's error for the first field
    /// that cannot be one.
    pub fn route(&self, name: &str) -> Result<UserRoute, ArmError> {
        let prefix = cidr::parse_prefix(&self.address_prefix).map_err(|e| {
            ArmError::bad_request(
                "InvalidRouteAddressPrefix",
                format!("Route {name} has an invalid address prefix: {e}."),
            )
        })?;
        let hop_s = &self.next_hop_type;
        let next_hop = NextHopType::parse(hop_s).filter(|h| *h != NextHopType::VNetPeering).ok_or_else(|| {
            ArmError::bad_request(
                "InvalidRouteNextHopType",
                format!("Route {name} has next hop type '{hop_s}'; use VirtualNetworkGateway, VnetLocal, Internet, VirtualAppliance or None."),
            )
        })?;
        let next_hop_ip = match (next_hop, &self.next_hop_ip_address) {
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
}

pub fn routes_of(r: &impl Reader, rt_id: &str) -> Result<Vec<UserRoute>, ArmError> {
    child::list::<RouteProperties>(r, rt_id)?
        .iter()
        .map(|c| c.properties.route(&c.name))
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
        let routes = child::named(given.routes, RouteProperties::given)?;
        child::replace(tx, id, routes)?;
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
        doc["properties"]["routes"] =
            Value::Array(child::values(&child::list::<RouteProperties>(r, &id)?)?);
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

pub fn put_route(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let body = req.body.clone().unwrap_or(json!({}));
    let props = RouteProperties::given(&name(req), &body["properties"])?;
    child::put(ctx, req, props, |_| Ok(()))
}

pub fn get_route(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    child::get::<RouteProperties>(ctx, req)
}

pub fn list_routes(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    child::list_reply::<RouteProperties>(ctx, req, |_, routes| child::values(&routes))
}

pub fn delete_route(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    delete_child(ctx, req, ROUTE_TABLE_TYPE, |_, _| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_body_reads_into_typed_fields_and_back_into_the_route_followed() {
        let p = RouteProperties::given(
            "fw",
            &json!({"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.0.9.4"}),
        )
        .unwrap();
        let r = p.route("fw").unwrap();
        assert_eq!(r.next_hop, NextHopType::VirtualAppliance);
        assert_eq!(r.next_hop_ip, Some("10.0.9.4".parse().unwrap()));
        let stored: RouteProperties =
            serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(stored.route("fw").unwrap(), r);
    }

    #[test]
    fn each_field_that_cannot_be_a_route_has_its_own_code() {
        let code = |b: Value| {
            RouteProperties::given("r", &b)
                .unwrap_err()
                .code()
                .to_string()
        };
        assert_eq!(code(json!({"nextHopType": "Internet"})), "InvalidParameter");
        assert_eq!(
            code(json!({"addressPrefix": "10.0.0.0/33", "nextHopType": "Internet"})),
            "InvalidRouteAddressPrefix"
        );
        assert_eq!(
            code(json!({"addressPrefix": "10.0.0.0/8", "nextHopType": "VNetPeering"})),
            "InvalidRouteNextHopType"
        );
        assert_eq!(
            code(json!({"addressPrefix": "10.0.0.0/8", "nextHopType": "VirtualAppliance"})),
            "InvalidRouteNextHopIpAddress"
        );
        assert_eq!(
            code(
                json!({"addressPrefix": "10.0.0.0/8", "nextHopType": "Internet", "nextHopIpAddress": "10.0.0.4"})
            ),
            "NextHopIpAddressNotAllowed"
        );
    }
}
