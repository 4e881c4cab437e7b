//! Next-hop selection: system routes, peering, service endpoints and
//! user-defined routes, longest prefix first; a user route beats a system
//! route of the same length (that is how `0.0.0.0/0` → appliance forces
//! tunneling), and a service endpoint keeps its service's traffic on the
//! Azure backbone whatever the default route says.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::tags::{fold_region, Endpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NextHopType {
    VnetLocal,
    VNetPeering,
    Internet,
    VirtualAppliance,
    VirtualNetworkGateway,
    VirtualNetworkServiceEndpoint,
    None,
}

impl NextHopType {
    pub fn parse(s: &str) -> Option<NextHopType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "vnetlocal" => NextHopType::VnetLocal,
            "vnetpeering" => NextHopType::VNetPeering,
            "internet" => NextHopType::Internet,
            "virtualappliance" => NextHopType::VirtualAppliance,
            "virtualnetworkgateway" => NextHopType::VirtualNetworkGateway,
            "none" => NextHopType::None,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            NextHopType::VnetLocal => "VnetLocal",
            NextHopType::VNetPeering => "VNetPeering",
            NextHopType::Internet => "Internet",
            NextHopType::VirtualAppliance => "VirtualAppliance",
            NextHopType::VirtualNetworkGateway => "VirtualNetworkGateway",
            NextHopType::VirtualNetworkServiceEndpoint => "VirtualNetworkServiceEndpoint",
            NextHopType::None => "None",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRoute {
    pub name: String,
    pub prefix: Ipv4Net,
    pub next_hop: NextHopType,
    pub next_hop_ip: Option<Ipv4Addr>,
}

/// What a subnet's routing is made of.
#[derive(Debug, Clone, Default)]
pub struct RouteContext {
    pub vnet_prefixes: Vec<Ipv4Net>,
    pub peered_prefixes: Vec<Ipv4Net>,
    pub user_routes: Vec<UserRoute>,
    /// `(service, locations)` of the subnet's service endpoints, e.g. `("Microsoft.Storage", ["eastus"])`.
    pub service_endpoints: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextHop {
    pub next_hop: NextHopType,
    pub next_hop_ip: Option<Ipv4Addr>,
    /// The user route that decided, if any.
    pub route: Option<String>,
}

impl RouteContext {
    fn service_endpoint_covers(&self, dst: &Endpoint) -> bool {
        let Endpoint::Service {
            service, region, ..
        } = dst
        else {
            return false;
        };
        self.service_endpoints.iter().any(|(svc, locations)| {
            svc.strip_prefix("Microsoft.")
                .unwrap_or(svc)
                .eq_ignore_ascii_case(service)
                && (locations.is_empty()
                    || locations.iter().any(|l| {
                        l == "*" || region.as_deref().map(fold_region) == Some(fold_region(l))
                    }))
        })
    }

    pub fn next_hop(&self, dst: &Endpoint) -> NextHop {
        let ip = dst.ip();
        // (prefix length, user?, hop)
        let mut best: Option<(u8, bool, NextHop)> = None;
        let mut consider = |len: u8, user: bool, hop: NextHop| {
            let better = match &best {
                None => true,
                Some((l, u, _)) => len > *l || (len == *l && user && !*u),
            };
            if better {
                best = Some((len, user, hop));
            }
        };
        let sys = |t| NextHop {
            next_hop: t,
            next_hop_ip: None,
            route: None,
        };
        for p in self.vnet_prefixes.iter().filter(|p| p.contains(&ip)) {
            consider(p.prefix_len(), false, sys(NextHopType::VnetLocal));
        }
        for p in self.peered_prefixes.iter().filter(|p| p.contains(&ip)) {
            consider(p.prefix_len(), false, sys(NextHopType::VNetPeering));
        }
        if self.service_endpoint_covers(dst) {
            // Service endpoint routes are specific to the service's prefixes.
            consider(32, false, sys(NextHopType::VirtualNetworkServiceEndpoint));
        }
        if !matches!(dst, Endpoint::Private { .. }) {
            consider(0, false, sys(NextHopType::Internet));
        } else {
            // Private ranges outside any known network are dropped by Azure's system routes.
            consider(0, false, sys(NextHopType::None));
        }
        for r in self.user_routes.iter().filter(|r| r.prefix.contains(&ip)) {
            consider(
                r.prefix.prefix_len(),
                true,
                NextHop {
                    next_hop: r.next_hop,
                    next_hop_ip: r.next_hop_ip,
                    route: Some(r.name.clone()),
                },
            );
        }
        best.map(|b| b.2).expect("the default route always applies")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(region: &str) -> Endpoint {
        Endpoint::Service {
            ip: "20.60.1.1".parse().unwrap(),
            service: "Storage".into(),
            region: Some(region.into()),
        }
    }

    fn base() -> RouteContext {
        RouteContext {
            vnet_prefixes: vec!["10.0.0.0/16".parse().unwrap()],
            peered_prefixes: vec!["10.1.0.0/16".parse().unwrap()],
            ..Default::default()
        }
    }

    #[test]
    fn system_routes() {
        let c = base();
        assert_eq!(
            c.next_hop(&Endpoint::Private {
                ip: "10.0.5.5".parse().unwrap()
            })
            .next_hop,
            NextHopType::VnetLocal
        );
        assert_eq!(
            c.next_hop(&Endpoint::Private {
                ip: "10.1.5.5".parse().unwrap()
            })
            .next_hop,
            NextHopType::VNetPeering
        );
        assert_eq!(
            c.next_hop(&storage("eastus")).next_hop,
            NextHopType::Internet
        );
        assert_eq!(
            c.next_hop(&Endpoint::Private {
                ip: "10.9.0.1".parse().unwrap()
            })
            .next_hop,
            NextHopType::None
        );
    }

    #[test]
    fn forced_tunneling_and_the_storage_service_endpoint() {
        let mut c = base();
        c.user_routes.push(UserRoute {
            name: "to-nva".into(),
            prefix: "0.0.0.0/0".parse().unwrap(),
            next_hop: NextHopType::VirtualAppliance,
            next_hop_ip: Some("10.0.9.4".parse().unwrap()),
        });
        let hop = c.next_hop(&storage("eastus"));
        assert_eq!(
            (hop.next_hop, hop.route.as_deref()),
            (NextHopType::VirtualAppliance, Some("to-nva"))
        );
        c.service_endpoints
            .push(("Microsoft.Storage".into(), vec!["eastus".into()]));
        assert_eq!(
            c.next_hop(&storage("eastus")).next_hop,
            NextHopType::VirtualNetworkServiceEndpoint
        );
        // The endpoint covers only its listed locations.
        assert_eq!(
            c.next_hop(&storage("westeurope")).next_hop,
            NextHopType::VirtualAppliance
        );
        // VNet-local traffic stays local.
        assert_eq!(
            c.next_hop(&Endpoint::Private {
                ip: "10.0.5.5".parse().unwrap()
            })
            .next_hop,
            NextHopType::VnetLocal
        );
    }
}
