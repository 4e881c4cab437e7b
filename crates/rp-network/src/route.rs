//! Every Microsoft.Network request this crate serves, parsed once into a
//! [`Route`]: a resource kind and what is done to it, or one of the kinds'
//! POST/GET actions. Each declares its RBAC action.

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Endpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    VirtualNetwork,
    Subnet,
    Peering,
    SecurityGroup,
    SecurityRule,
    DefaultSecurityRule,
    RouteTable,
    /// A route of a route table.
    TableRoute,
    NetworkInterface,
    IpConfiguration,
    NetworkWatcher,
    PrivateEndpoint,
    ZoneGroup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Put,
    /// Tags only (`update_tags`): nothing else changes.
    PatchTags,
    Get,
    Delete,
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Resource(Kind, Verb),
    VirtualNetworkUsages,
    CheckIpAddressAvailability,
    EffectiveSecurityGroups,
    EffectiveRouteTable,
    IpFlowVerify,
    NextHop,
    ConnectivityCheck,
}

/// read, write, delete of a type path under Microsoft.Network.
macro_rules! rwd {
    ($t:literal) => {
        [
            concat!("Microsoft.Network/", $t, "/read"),
            concat!("Microsoft.Network/", $t, "/write"),
            concat!("Microsoft.Network/", $t, "/delete"),
        ]
    };
}

impl Kind {
    fn actions(self) -> [&'static str; 3] {
        match self {
            Kind::VirtualNetwork => rwd!("virtualNetworks"),
            Kind::Subnet => rwd!("virtualNetworks/subnets"),
            Kind::Peering => rwd!("virtualNetworks/virtualNetworkPeerings"),
            Kind::SecurityGroup => rwd!("networkSecurityGroups"),
            Kind::SecurityRule => rwd!("networkSecurityGroups/securityRules"),
            Kind::DefaultSecurityRule => rwd!("networkSecurityGroups/defaultSecurityRules"),
            Kind::RouteTable => rwd!("routeTables"),
            Kind::TableRoute => rwd!("routeTables/routes"),
            Kind::NetworkInterface => rwd!("networkInterfaces"),
            Kind::IpConfiguration => rwd!("networkInterfaces/ipConfigurations"),
            Kind::NetworkWatcher => rwd!("networkWatchers"),
            Kind::PrivateEndpoint => rwd!("privateEndpoints"),
            Kind::ZoneGroup => rwd!("privateEndpoints/privateDnsZoneGroups"),
        }
    }

    /// The verbs each kind takes: nested configuration read-only where
    /// Azure serves it read-only, tags-only PATCH on the top-level kinds
    /// that have tags.
    fn takes(self, verb: Verb) -> bool {
        use Kind::*;
        match verb {
            Verb::Get | Verb::List => true,
            Verb::Put | Verb::Delete => !matches!(self, DefaultSecurityRule | IpConfiguration),
            Verb::PatchTags => matches!(
                self,
                VirtualNetwork
                    | SecurityGroup
                    | RouteTable
                    | NetworkInterface
                    | PrivateEndpoint
                    | NetworkWatcher
            ),
        }
    }
}

impl Endpoint for Route {
    fn action(&self) -> &'static str {
        match self {
            Route::Resource(kind, verb) => {
                let [read, write, delete] = kind.actions();
                match verb {
                    Verb::Get | Verb::List => read,
                    Verb::Put | Verb::PatchTags => write,
                    Verb::Delete => delete,
                }
            }
            Route::VirtualNetworkUsages => "Microsoft.Network/virtualNetworks/usages/read",
            Route::CheckIpAddressAvailability => {
                "Microsoft.Network/virtualNetworks/CheckIPAddressAvailability/read"
            }
            Route::EffectiveSecurityGroups => {
                "Microsoft.Network/networkInterfaces/effectiveNetworkSecurityGroups/action"
            }
            Route::EffectiveRouteTable => {
                "Microsoft.Network/networkInterfaces/effectiveRouteTable/action"
            }
            Route::IpFlowVerify => "Microsoft.Network/networkWatchers/ipFlowVerify/action",
            Route::NextHop => "Microsoft.Network/networkWatchers/nextHop/action",
            Route::ConnectivityCheck => {
                "Microsoft.Network/networkWatchers/connectivityCheck/action"
            }
        }
    }

    fn is_list(&self) -> bool {
        matches!(
            self,
            Route::Resource(_, Verb::List)
                | Route::VirtualNetworkUsages
                | Route::CheckIpAddressAvailability
        )
    }
}

/// (method, path) → route; a served type with a method it does not take is
/// ARM's 405.
pub fn parse(req: &ArmRequest) -> Result<Route, ArmError> {
    let p = req.provider_part()?;
    let types = req.types_lower()?;
    let t: Vec<&str> = types.iter().map(String::as_str).collect();
    let res = p.is_resource();
    let m = &req.method;
    let refused = || ArmError::method_not_allowed(m.as_str());
    use Kind::*;
    let kind = match t.as_slice() {
        ["virtualnetworks"] => VirtualNetwork,
        ["virtualnetworks", "subnets"] => Subnet,
        ["virtualnetworks", "virtualnetworkpeerings"] => Peering,
        ["networksecuritygroups"] => SecurityGroup,
        ["networksecuritygroups", "securityrules"] => SecurityRule,
        ["networksecuritygroups", "defaultsecurityrules"] => DefaultSecurityRule,
        ["routetables"] => RouteTable,
        ["routetables", "routes"] => TableRoute,
        ["networkinterfaces"] => NetworkInterface,
        ["networkinterfaces", "ipconfigurations"] => IpConfiguration,
        ["networkwatchers"] => NetworkWatcher,
        ["privateendpoints"] => PrivateEndpoint,
        ["privateendpoints", "privatednszonegroups"] => ZoneGroup,
        // The kinds' actions: never on a named child.
        [parent, verb] if !res => {
            let action = match (*parent, *verb, m) {
                ("virtualnetworks", "usages", &Method::GET) => Route::VirtualNetworkUsages,
                ("virtualnetworks", "checkipaddressavailability", &Method::GET) => {
                    Route::CheckIpAddressAvailability
                }
                ("networkinterfaces", "effectivenetworksecuritygroups", &Method::POST) => {
                    Route::EffectiveSecurityGroups
                }
                ("networkinterfaces", "effectiveroutetable", &Method::POST) => {
                    Route::EffectiveRouteTable
                }
                ("networkwatchers", "ipflowverify", &Method::POST) => Route::IpFlowVerify,
                ("networkwatchers", "nexthop", &Method::POST) => Route::NextHop,
                ("networkwatchers", "connectivitycheck", &Method::POST) => Route::ConnectivityCheck,
                _ => return Err(refused()),
            };
            return Ok(action);
        }
        _ => return Err(refused()),
    };
    let verb = match (res, m) {
        (true, &Method::PUT) => Verb::Put,
        (true, &Method::PATCH) => Verb::PatchTags,
        (true, &Method::GET) => Verb::Get,
        (true, &Method::DELETE) => Verb::Delete,
        (false, &Method::GET) => Verb::List,
        _ => return Err(refused()),
    };
    if !kind.takes(verb) {
        return Err(refused());
    }
    Ok(Route::Resource(kind, verb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use recoverite_arm::endpoint_checks::{assert_declared_actions, parse_any, request};

    const G: &str = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network";

    /// Every route declares the action ARM derives from its path, and is a
    /// list exactly when ARM treats the request as one.
    #[test]
    fn declared_actions_are_arms() {
        use Method as M;
        let collections = [
            "virtualNetworks",
            "virtualNetworks/v/subnets",
            "virtualNetworks/v/virtualNetworkPeerings",
            "networkSecurityGroups",
            "networkSecurityGroups/n/securityRules",
            "networkSecurityGroups/n/defaultSecurityRules",
            "routeTables",
            "routeTables/t/routes",
            "networkInterfaces",
            "networkInterfaces/nic/ipConfigurations",
            "networkWatchers",
            "privateEndpoints",
            "privateEndpoints/pe/privateDnsZoneGroups",
        ];
        let mut cases: Vec<(Method, String)> = vec![];
        for c in collections {
            let one = format!("{G}/{c}/x");
            cases.push((M::GET, format!("{G}/{c}")));
            cases.push((M::GET, one.clone()));
            if !c.ends_with("defaultSecurityRules") && !c.ends_with("ipConfigurations") {
                cases.push((M::PUT, one.clone()));
                cases.push((M::DELETE, one.clone()));
            }
            if !c.contains('/') && c != "networkWatchers" {
                cases.push((M::PATCH, one));
            }
        }
        cases.extend([
            (M::GET, format!("{G}/virtualNetworks/v/usages")),
            (
                M::GET,
                format!("{G}/virtualNetworks/v/CheckIPAddressAvailability"),
            ),
            (
                M::POST,
                format!("{G}/networkInterfaces/nic/effectiveNetworkSecurityGroups"),
            ),
            (
                M::POST,
                format!("{G}/networkInterfaces/nic/effectiveRouteTable"),
            ),
            (M::POST, format!("{G}/networkWatchers/w/ipFlowVerify")),
            (M::POST, format!("{G}/networkWatchers/w/nextHop")),
            (M::POST, format!("{G}/networkWatchers/w/connectivityCheck")),
        ]);
        let seen = assert_declared_actions(&crate::NetworkProvider::info_of(), &cases, parse);
        assert_eq!(
            seen.len(),
            13 * 2 + 11 * 2 + 5 + 7,
            "every route is covered"
        );
    }

    #[test]
    fn what_a_kind_does_not_take_is_405() {
        for (m, path) in [
            (
                Method::PUT,
                format!("{G}/networkSecurityGroups/n/defaultSecurityRules/AllowVnetInBound"),
            ),
            (Method::PATCH, format!("{G}/virtualNetworks/v/subnets/s")),
            (Method::POST, format!("{G}/virtualNetworks/v")),
            (Method::POST, format!("{G}/networkWatchers/w/explode")),
        ] {
            assert_eq!(
                parse(&request(m.clone(), &path)).unwrap_err().status,
                405,
                "{m} {path}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// The parser never panics, whatever the path under the namespace.
        #[test]
        fn parse_never_panics(rest in "(/[A-Za-z0-9%._~;-]{0,10}){0,7}", m in 0..6u8) {
            parse_any(G, &rest, m, |r| {
                let _ = parse(r);
            });
        }
    }
}
