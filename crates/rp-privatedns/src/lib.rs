//! Private DNS zones (Microsoft.Network/privateDnsZones): zones, record sets
//! and virtual network links, with Azure's ETag preconditions. The DNS server
//! reads what is here through [`view`].

pub mod record_set;
mod records;
pub mod route;
pub mod view;
mod zones;

use recoverite_arm::tracked;
use recoverite_arm::{ArmError, ArmRequest, Ctx, Endpoints, ProviderInfo, Reply, ResourceType};
pub use route::Route;
use zones::{Link, Zone};

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

impl PrivateDnsProvider {
    fn info_of(&self) -> ProviderInfo {
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
}

impl Endpoints for PrivateDnsProvider {
    type Endpoint = Route;

    fn info(&self) -> ProviderInfo {
        self.info_of()
    }

    fn parse(&self, req: &ArmRequest) -> Result<Route, ArmError> {
        route::parse(req)
    }

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, route: Route) -> Result<Reply, ArmError> {
        use route::Verb::*;
        match route {
            Route::Zone(Put) => tracked::put::<Zone>(ctx, req, false),
            Route::Zone(Patch) => tracked::put::<Zone>(ctx, req, true),
            Route::Zone(Get) => tracked::get::<Zone>(ctx, req),
            Route::Zone(Delete) => tracked::delete::<Zone>(ctx, req),
            Route::Zone(List) => tracked::list::<Zone>(ctx, req),
            Route::Link(Put) => tracked::put::<Link>(ctx, req, false),
            Route::Link(Patch) => tracked::put::<Link>(ctx, req, true),
            Route::Link(Get) => tracked::get::<Link>(ctx, req),
            Route::Link(Delete) => tracked::delete::<Link>(ctx, req),
            Route::Link(List) => tracked::list::<Link>(ctx, req),
            Route::ListAllRecordSets => records::list(ctx, req, None),
            Route::RecordSet(t, List) => records::list(ctx, req, Some(t.as_str())),
            Route::RecordSet(_, Put) => records::put(ctx, req, false),
            Route::RecordSet(_, Patch) => records::put(ctx, req, true),
            Route::RecordSet(_, Get) => records::get(ctx, req),
            Route::RecordSet(_, Delete) => records::delete(ctx, req),
        }
    }
}

/// ETag preconditions (`If-Match`, `If-None-Match`) as Azure DNS applies them.
pub fn check_preconditions(req: &ArmRequest, current_etag: Option<&str>) -> Result<(), ArmError> {
    tracked::check_preconditions(
        req.header("if-match"),
        req.header("if-none-match"),
        current_etag,
        current_etag.is_some(),
    )
}

pub fn new_etag() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What this crate brings to the server: private DNS zones (under
/// Microsoft.Network, after its root).
pub fn manifest() -> recoverite_manifest::Manifest {
    recoverite_manifest::Manifest::new("recoverite-rp-privatedns").provider(PrivateDnsProvider)
}
