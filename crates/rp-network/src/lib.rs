//! Microsoft.Network: virtual networks, subnets, peerings, network security
//! groups, route tables, network interfaces and Network Watcher.

pub mod addressbook;
pub mod aliases;
pub mod child;
mod common;
pub mod endpoint;
pub mod interface;
pub mod ipam_store;
pub mod network;
pub mod nic;
pub mod nsg;
pub mod position;
pub mod private_endpoint;
pub mod route;
pub mod routetable;
pub mod view;
pub mod vnet;
pub mod watcher;
pub mod zone_group;

use std::sync::Arc;

use recoverite_privatelink::Registry;

use recoverite_arm::{
    ArmError, ArmRequest, Ctx, Endpoints, ProviderInfo, Reply, ResourceType, ScopeCascade,
};
use recoverite_store::WriteTx;

pub use common::{API, NAMESPACE};
pub use route::Route;

pub struct NetworkProvider {
    pub registry: Arc<Registry>,
    /// Network Watcher's connectivity check (set by the server).
    pub connectivity: watcher::LateConnectivity,
}

/// The types this crate serves (other Microsoft.Network types, such as
/// private DNS zones, come from their own crates).
pub const TYPES: &[&str] = &[
    "virtualNetworks",
    "virtualNetworks/subnets",
    "virtualNetworks/virtualNetworkPeerings",
    "virtualNetworks/CheckIPAddressAvailability",
    "virtualNetworks/usages",
    "networkSecurityGroups",
    "networkSecurityGroups/securityRules",
    "networkSecurityGroups/defaultSecurityRules",
    "routeTables",
    "routeTables/routes",
    "networkInterfaces",
    "networkInterfaces/ipConfigurations",
    "networkWatchers",
    "privateEndpoints",
    "privateEndpoints/privateDnsZoneGroups",
];

impl NetworkProvider {
    fn info_of() -> ProviderInfo {
        ProviderInfo {
            namespace: NAMESPACE,
            resource_types: TYPES
                .iter()
                .map(|t| ResourceType {
                    name: t,
                    api_versions: API.versions(t),
                    global: false,
                })
                .collect(),
            requires_registration: true,
        }
    }
}

impl Endpoints for NetworkProvider {
    type Endpoint = Route;

    fn info(&self) -> ProviderInfo {
        Self::info_of()
    }

    fn parse(&self, req: &ArmRequest) -> Result<Route, ArmError> {
        route::parse(req)
    }

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, route: Route) -> Result<Reply, ArmError> {
        use route::Kind::*;
        use route::Verb::*;
        let registry = &self.registry;
        let (kind, verb) = match route {
            Route::Resource(kind, verb) => (kind, verb),
            Route::VirtualNetworkUsages => return vnet::usages(ctx, req),
            Route::CheckIpAddressAvailability => return vnet::check_ip_availability(ctx, req),
            Route::EffectiveSecurityGroups => return nic::effective_nsgs(ctx, req),
            Route::EffectiveRouteTable => return nic::effective_routes(ctx, req),
            Route::IpFlowVerify => return watcher::ip_flow_verify(ctx, req),
            Route::NextHop => return watcher::next_hop(ctx, req),
            Route::ConnectivityCheck => {
                return watcher::connectivity_check(ctx, req, &self.connectivity)
            }
        };
        match kind {
            RouteTable => return tracked_verb::<routetable::RouteTable>(ctx, req, verb),
            SecurityGroup => return tracked_verb::<nsg::SecurityGroup>(ctx, req, verb),
            NetworkWatcher => return tracked_verb::<watcher::NetworkWatcher>(ctx, req, verb),
            _ => {}
        }
        // A tags-only PATCH changes the tags, then answers as a GET.
        if verb == PatchTags {
            let ty = match kind {
                VirtualNetwork => vnet::VNET_TYPE,
                NetworkInterface => nic::NIC_TYPE,
                _ => private_endpoint::PE_TYPE,
            };
            common::patch_tags(ctx, req, ty)?;
        }
        match (kind, verb) {
            (VirtualNetwork, Put) => vnet::put_vnet(ctx, req),
            (VirtualNetwork, Get | PatchTags) => vnet::get_vnet(ctx, req),
            (VirtualNetwork, Delete) => vnet::delete_vnet(ctx, req),
            (VirtualNetwork, List) => vnet::list_vnets(ctx, req),
            (Subnet, Put) => vnet::put_subnet(ctx, req),
            (Subnet, Get) => vnet::get_subnet(ctx, req),
            (Subnet, Delete) => vnet::delete_subnet(ctx, req),
            (Subnet, List) => vnet::list_subnets(ctx, req),
            (Peering, Put) => vnet::put_peering(ctx, req),
            (Peering, Get) => vnet::get_peering(ctx, req),
            (Peering, Delete) => vnet::delete_peering(ctx, req),
            (Peering, List) => vnet::list_peerings(ctx, req),
            (SecurityRule, Put) => nsg::put_rule(ctx, req),
            (SecurityRule, Get) => nsg::get_rule(ctx, req, false),
            (SecurityRule, Delete) => nsg::delete_rule(ctx, req),
            (SecurityRule, List) => nsg::list_rules(ctx, req, false),
            (DefaultSecurityRule, Get) => nsg::get_rule(ctx, req, true),
            (DefaultSecurityRule, List) => nsg::list_rules(ctx, req, true),
            (TableRoute, Put) => routetable::put_route(ctx, req),
            (TableRoute, Get) => routetable::get_route(ctx, req),
            (TableRoute, Delete) => routetable::delete_route(ctx, req),
            (TableRoute, List) => routetable::list_routes(ctx, req),
            (NetworkInterface, Put) => nic::put(ctx, req),
            (NetworkInterface, Get | PatchTags) => nic::get(ctx, req),
            (NetworkInterface, Delete) => nic::delete(ctx, req),
            (NetworkInterface, List) => nic::list(ctx, req),
            (IpConfiguration, Get) => nic::get_ipconfig(ctx, req),
            (IpConfiguration, List) => nic::list_ipconfigs(ctx, req),
            (PrivateEndpoint, Put) => private_endpoint::put(ctx, req, registry),
            (PrivateEndpoint, Get | PatchTags) => private_endpoint::get(ctx, req),
            (PrivateEndpoint, Delete) => private_endpoint::delete(ctx, req, registry),
            (PrivateEndpoint, List) => private_endpoint::list(ctx, req),
            (ZoneGroup, Put) => zone_group::put(ctx, req),
            (ZoneGroup, Get) => zone_group::get(ctx, req),
            (ZoneGroup, Delete) => zone_group::delete(ctx, req),
            (ZoneGroup, List) => zone_group::list(ctx, req),
            // `route::parse` admits only the verbs each kind takes.
            _ => Err(ArmError::method_not_allowed(req.method.as_str())),
        }
    }
}

/// Frees addresses held by, and allocation tables of, deleted scopes.
pub struct NetworkCascade;

impl ScopeCascade for NetworkCascade {
    fn scope_deleted(&self, tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
        ipam_store::release_owned_by(tx, scope)?;
        tx.delete_prefix(
            ipam_store::ALLOCATIONS,
            &format!("{}/", recoverite_arm::id::key(scope)),
        )?;
        Ok(())
    }
}

/// What this crate brings to the server: Microsoft.Network's root, the
/// host of private endpoints, and the address allocations' clean-up.
pub fn manifest(
    registry: &Arc<Registry>,
    connectivity: &watcher::LateConnectivity,
) -> recoverite_manifest::Manifest {
    recoverite_manifest::Manifest::new("recoverite-rp-network")
        .provider(NetworkProvider {
            registry: registry.clone(),
            connectivity: connectivity.clone(),
        })
        .endpoint_host(private_endpoint::Host)
        .cascade(recoverite_manifest::Stage::Network, NetworkCascade)
}

/// A network kind served by the tracked-resource core.
fn tracked_verb<K: recoverite_arm::tracked::TrackedKind>(
    ctx: &Ctx,
    req: &ArmRequest,
    verb: route::Verb,
) -> Result<Reply, ArmError> {
    use recoverite_arm::tracked;
    use route::Verb::*;
    match verb {
        Put => tracked::put::<K>(ctx, req, false),
        PatchTags => tracked::put::<K>(ctx, req, true),
        Get => tracked::get::<K>(ctx, req),
        Delete => tracked::delete::<K>(ctx, req),
        List => tracked::list::<K>(ctx, req),
    }
}
