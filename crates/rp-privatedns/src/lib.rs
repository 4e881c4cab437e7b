//! Private DNS zones (Microsoft.Network/privateDnsZones): zones, record sets
//! and virtual network links, with Azure's ETag preconditions. The DNS server
//! reads what is here through [`view`].

mod records;
pub mod view;
mod zones;

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Ctx, Provider, ProviderInfo, Reply, ResourceType};

pub const NAMESPACE: &str = "Microsoft.Network";

recoverite_arm::api_versions!(
    "../api-versions.txt",
    ["privateDnsZones", "privateDnsZones/A"]
);
pub const ZONE_TYPE: &str = "Microsoft.Network/privateDnsZones";
pub const LINK_TYPE: &str = "Microsoft.Network/privateDnsZones/virtualNetworkLinks";
pub const RECORD_TYPES: &[&str] = &["A", "AAAA", "CNAME", "MX", "PTR", "SOA", "SRV", "TXT"];

pub struct PrivateDnsProvider;

const TYPE_NAMES: &[&str] = &[
    "privateDnsZones",
    "privateDnsZones/virtualNetworkLinks",
    "privateDnsZones/ALL",
    "privateDnsZones/A",
    "privateDnsZones/AAAA",
    "privateDnsZones/CNAME",
    "privateDnsZones/MX",
    "privateDnsZones/PTR",
    "privateDnsZones/SOA",
    "privateDnsZones/SRV",
    "privateDnsZones/TXT",
];

impl Provider for PrivateDnsProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            namespace: NAMESPACE,
            resource_types: TYPE_NAMES
                .iter()
                .map(|name| ResourceType {
                    name,
                    api_versions: API.versions(name),
                    global: true,
                })
                .collect(),
            requires_registration: true,
        }
    }

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let p = req.provider_part()?;
        let second = p.types.get(1).map(|t| t.to_ascii_lowercase());
        let m = req.method.clone();
        match (p.types.len(), second.as_deref(), p.is_resource(), m) {
            (1, None, true, Method::PUT) => zones::put(ctx, req, false),
            (1, None, true, Method::PATCH) => zones::put(ctx, req, true),
            (1, None, true, Method::GET) => zones::get(ctx, req),
            (1, None, true, Method::DELETE) => zones::delete(ctx, req),
            (1, None, false, Method::GET) => zones::list(ctx, req),
            (2, Some("virtualnetworklinks"), true, Method::PUT) => zones::put_link(ctx, req, false),
            (2, Some("virtualnetworklinks"), true, Method::PATCH) => {
                zones::put_link(ctx, req, true)
            }
            (2, Some("virtualnetworklinks"), true, Method::GET) => zones::get_link(ctx, req),
            (2, Some("virtualnetworklinks"), true, Method::DELETE) => zones::delete_link(ctx, req),
            (2, Some("virtualnetworklinks"), false, Method::GET) => zones::list_links(ctx, req),
            (2, Some("all"), false, Method::GET) => records::list(ctx, req, None),
            (2, Some(t), false, Method::GET) => records::list(ctx, req, Some(t)),
            (2, Some(_), true, Method::PUT) => records::put(ctx, req, false),
            (2, Some(_), true, Method::PATCH) => records::put(ctx, req, true),
            (2, Some(_), true, Method::GET) => records::get(ctx, req),
            (2, Some(_), true, Method::DELETE) => records::delete(ctx, req),
            (_, _, _, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}

/// ETag preconditions (`If-Match`, `If-None-Match`) as Azure DNS applies them.
pub fn check_preconditions(req: &ArmRequest, current_etag: Option<&str>) -> Result<(), ArmError> {
    let unquote = |s: &str| {
        s.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_string()
    };
    if let Some(m) = req.header("if-match") {
        let ok = match current_etag {
            None => false,
            Some(e) => m.trim() == "*" || unquote(m) == unquote(e),
        };
        if !ok {
            return Err(ArmError::new(
                412,
                "PreconditionFailed",
                "The condition in If-Match was not met: the resource does not exist or its etag has changed. Read it again and retry with the current etag.",
            ));
        }
    }
    if let Some(m) = req.header("if-none-match") {
        let clash = match current_etag {
            None => false,
            Some(e) => m.trim() == "*" || unquote(m) == unquote(e),
        };
        if clash {
            return Err(ArmError::new(
                412,
                "PreconditionFailed",
                "The condition in If-None-Match was not met: the resource already exists.",
            ));
        }
    }
    Ok(())
}

pub fn new_etag() -> String {
    uuid::Uuid::new_v4().to_string()
}
