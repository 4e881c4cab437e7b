//! Service tags and the places traffic can go.
//!
//! Every address in the emulated world is one of: an address inside a virtual
//! network, a public address of an Azure service in a region (what service
//! tags such as `Storage.EastUS` stand for), the Azure load balancer's probe
//! address, or some other Internet address.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Service tags recoverite models, as Azure spells them.
pub const SERVICES: &[&str] = &[
    "Storage",
    "AzureActiveDirectory",
    "EventHub",
    "AzureSiteRecovery",
    "AzureKeyVault",
    "GuestAndHybridManagement",
    "AzureBackup",
    "AzureMonitor",
    "ServiceBus",
];

/// Tags that have regional variants (`Storage.EastUS`).
pub const REGIONAL: &[&str] = &[
    "Storage",
    "EventHub",
    "AzureKeyVault",
    "AzureBackup",
    "AzureMonitor",
    "ServiceBus",
];

pub const AZURE_LOAD_BALANCER_IP: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Endpoint {
    /// An address inside a virtual network (model address, e.g. 10.0.1.4).
    Private { ip: Ipv4Addr },
    /// A public address of an Azure service in a region.
    Service {
        ip: Ipv4Addr,
        service: String,
        region: Option<String>,
    },
    /// The platform's load-balancer probe source.
    LoadBalancer,
    /// Any other public address.
    Internet { ip: Ipv4Addr },
}

impl Endpoint {
    pub fn ip(&self) -> Ipv4Addr {
        match self {
            Endpoint::Private { ip } | Endpoint::Service { ip, .. } | Endpoint::Internet { ip } => {
                *ip
            }
            Endpoint::LoadBalancer => AZURE_LOAD_BALANCER_IP,
        }
    }
}

/// `EastUS`, `eastus`, `East US` → `eastus`.
pub fn fold_region(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

fn service_name(s: &str) -> Option<&'static str> {
    SERVICES.iter().copied().find(|t| t.eq_ignore_ascii_case(s))
}

/// Whether `prefix` (an address prefix field of a security rule) is something
/// recoverite understands: `*`, an IPv4 address or CIDR, or a known service tag.
pub fn is_valid_prefix(prefix: &str) -> bool {
    let p = prefix.trim();
    if p == "*" || p.parse::<Ipv4Net>().is_ok() || p.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    if ["VirtualNetwork", "Internet", "AzureLoadBalancer"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(p))
    {
        return true;
    }
    match p.split_once('.') {
        None => service_name(p).is_some(),
        Some((svc, region)) => {
            service_name(svc).is_some_and(|s| REGIONAL.contains(&s)) && !region.is_empty()
        }
    }
}

/// What the `VirtualNetwork` tag covers for one flow.
#[derive(Debug, Clone, Default)]
pub struct TagContext {
    /// The VNet's own address space plus peered VNets' spaces.
    pub virtual_network: Vec<Ipv4Net>,
}

/// Whether an address prefix of a rule matches an endpoint.
pub fn prefix_matches(prefix: &str, ep: &Endpoint, ctx: &TagContext) -> bool {
    let p = prefix.trim();
    if p == "*" || p.eq_ignore_ascii_case("any") {
        return true;
    }
    if let Ok(net) = p.parse::<Ipv4Net>() {
        return !matches!(ep, Endpoint::LoadBalancer) && net.contains(&ep.ip());
    }
    if let Ok(ip) = p.parse::<Ipv4Addr>() {
        return ep.ip() == ip;
    }
    if p.eq_ignore_ascii_case("VirtualNetwork") {
        return matches!(ep, Endpoint::Private { ip } if ctx.virtual_network.iter().any(|n| n.contains(ip)));
    }
    if p.eq_ignore_ascii_case("AzureLoadBalancer") {
        return matches!(ep, Endpoint::LoadBalancer);
    }
    if p.eq_ignore_ascii_case("Internet") {
        return matches!(ep, Endpoint::Service { .. } | Endpoint::Internet { .. });
    }
    let Endpoint::Service {
        service, region, ..
    } = ep
    else {
        return false;
    };
    let (tag, tag_region) = match p.split_once('.') {
        Some((t, r)) => (t, Some(fold_region(r))),
        None => (p, None),
    };
    if !tag.eq_ignore_ascii_case(service) {
        return false;
    }
    match tag_region {
        None => true,
        Some(r) => region.as_deref().map(fold_region).as_deref() == Some(r.as_str()),
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

    #[test]
    fn service_tags() {
        let ctx = TagContext::default();
        assert!(prefix_matches("Storage", &storage("eastus"), &ctx));
        assert!(prefix_matches("Storage.EastUS", &storage("eastus"), &ctx));
        assert!(!prefix_matches(
            "Storage.CentralUS",
            &storage("eastus"),
            &ctx
        ));
        assert!(prefix_matches("Internet", &storage("eastus"), &ctx));
        assert!(!prefix_matches(
            "AzureSiteRecovery",
            &storage("eastus"),
            &ctx
        ));
        assert!(!prefix_matches("VirtualNetwork", &storage("eastus"), &ctx));
    }

    #[test]
    fn virtual_network_tag_uses_the_context() {
        let ctx = TagContext {
            virtual_network: vec!["10.0.0.0/16".parse().unwrap()],
        };
        let inside = Endpoint::Private {
            ip: "10.0.3.4".parse().unwrap(),
        };
        let outside = Endpoint::Private {
            ip: "10.9.0.4".parse().unwrap(),
        };
        assert!(prefix_matches("VirtualNetwork", &inside, &ctx));
        assert!(!prefix_matches("VirtualNetwork", &outside, &ctx));
        assert!(prefix_matches("10.9.0.0/16", &outside, &ctx));
    }

    #[test]
    fn validation() {
        for ok in [
            "*",
            "10.0.0.0/8",
            "1.2.3.4",
            "Storage.EastUS",
            "AzureSiteRecovery",
            "EventHub.CentralUS",
            "virtualnetwork",
        ] {
            assert!(is_valid_prefix(ok), "{ok}");
        }
        for bad in ["Storge", "AzureSiteRecovery.EastUS", "10.0.0.0/40", ""] {
            assert!(!is_valid_prefix(bad), "{bad}");
        }
    }
}
