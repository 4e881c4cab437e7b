//! Microsoft.Network: virtual networks, subnets, peerings, network security
//! groups, route tables, network interfaces and Network Watcher.

pub mod addressbook;
pub mod aliases;
mod common;
pub mod ipam_store;
pub mod nic;
pub mod nsg;
pub mod position;
pub mod private_endpoint;
pub mod routetable;
pub mod vnet;
pub mod watcher;

use std::sync::Arc;

use http::Method;
use recoverite_privatelink::Registry;

use recoverite_arm::{
    ArmError, ArmRequest, Ctx, Provider, ProviderInfo, Reply, ResourceType, ScopeCascade,
};
use recoverite_store::WriteTx;

pub use common::{API, NAMESPACE};

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

impl Provider for NetworkProvider {
    fn info(&self) -> ProviderInfo {
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

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let p = req.provider_part()?;
        let types: Vec<String> = p.types.iter().map(|t| t.to_ascii_lowercase()).collect();
        let t: Vec<&str> = types.iter().map(String::as_str).collect();
        let res = p.is_resource();
        let m = req.method.clone();
        use Method as M;
        match (t.as_slice(), res, m) {
            (["virtualnetworks"], true, M::PUT) => vnet::put_vnet(ctx, req),
            (["virtualnetworks"], true, M::PATCH) => {
                common::patch_tags(ctx, req, vnet::VNET_TYPE)?;
                vnet::get_vnet(ctx, req)
            }
            (["virtualnetworks"], true, M::GET) => vnet::get_vnet(ctx, req),
            (["virtualnetworks"], true, M::DELETE) => vnet::delete_vnet(ctx, req),
            (["virtualnetworks"], false, M::GET) => vnet::list_vnets(ctx, req),
            (["virtualnetworks", "usages"], false, M::GET) => vnet::usages(ctx, req),
            (["virtualnetworks", "checkipaddressavailability"], false, M::GET) => {
                vnet::check_ip_availability(ctx, req)
            }
            (["virtualnetworks", "subnets"], true, M::PUT) => vnet::put_subnet(ctx, req),
            (["virtualnetworks", "subnets"], true, M::GET) => vnet::get_subnet(ctx, req),
            (["virtualnetworks", "subnets"], true, M::DELETE) => vnet::delete_subnet(ctx, req),
            (["virtualnetworks", "subnets"], false, M::GET) => vnet::list_subnets(ctx, req),
            (["virtualnetworks", "virtualnetworkpeerings"], true, M::PUT) => {
                vnet::put_peering(ctx, req)
            }
            (["virtualnetworks", "virtualnetworkpeerings"], true, M::GET) => {
                vnet::get_peering(ctx, req)
            }
            (["virtualnetworks", "virtualnetworkpeerings"], true, M::DELETE) => {
                vnet::delete_peering(ctx, req)
            }
            (["virtualnetworks", "virtualnetworkpeerings"], false, M::GET) => {
                vnet::list_peerings(ctx, req)
            }
            (["networksecuritygroups"], true, M::PUT) => nsg::put_nsg(ctx, req),
            (["networksecuritygroups"], true, M::PATCH) => {
                common::patch_tags(ctx, req, nsg::NSG_TYPE)?;
                nsg::get_nsg(ctx, req)
            }
            (["networksecuritygroups"], true, M::GET) => nsg::get_nsg(ctx, req),
            (["networksecuritygroups"], true, M::DELETE) => nsg::delete_nsg(ctx, req),
            (["networksecuritygroups"], false, M::GET) => nsg::list_nsgs(ctx, req),
            (["networksecuritygroups", "securityrules"], true, M::PUT) => nsg::put_rule(ctx, req),
            (["networksecuritygroups", "securityrules"], true, M::GET) => {
                nsg::get_rule(ctx, req, false)
            }
            (["networksecuritygroups", "securityrules"], true, M::DELETE) => {
                nsg::delete_rule(ctx, req)
            }
            (["networksecuritygroups", "securityrules"], false, M::GET) => {
                nsg::list_rules(ctx, req, false)
            }
            (["networksecuritygroups", "defaultsecurityrules"], true, M::GET) => {
                nsg::get_rule(ctx, req, true)
            }
            (["networksecuritygroups", "defaultsecurityrules"], false, M::GET) => {
                nsg::list_rules(ctx, req, true)
            }
            (["routetables"], true, M::PUT) => routetable::put_table(ctx, req),
            (["routetables"], true, M::PATCH) => {
                common::patch_tags(ctx, req, routetable::ROUTE_TABLE_TYPE)?;
                routetable::get_table(ctx, req)
            }
            (["routetables"], true, M::GET) => routetable::get_table(ctx, req),
            (["routetables"], true, M::DELETE) => routetable::delete_table(ctx, req),
            (["routetables"], false, M::GET) => routetable::list_tables(ctx, req),
            (["routetables", "routes"], true, M::PUT) => routetable::put_route(ctx, req),
            (["routetables", "routes"], true, M::GET) => routetable::get_route(ctx, req),
            (["routetables", "routes"], true, M::DELETE) => routetable::delete_route(ctx, req),
            (["routetables", "routes"], false, M::GET) => routetable::list_routes(ctx, req),
            (["networkinterfaces"], true, M::PUT) => nic::put(ctx, req),
            (["networkinterfaces"], true, M::PATCH) => {
                common::patch_tags(ctx, req, nic::NIC_TYPE)?;
                nic::get(ctx, req)
            }
            (["networkinterfaces"], true, M::GET) => nic::get(ctx, req),
            (["networkinterfaces"], true, M::DELETE) => nic::delete(ctx, req),
            (["networkinterfaces"], false, M::GET) => nic::list(ctx, req),
            (["networkinterfaces", "ipconfigurations"], true, M::GET) => {
                nic::get_ipconfig(ctx, req)
            }
            (["networkinterfaces", "ipconfigurations"], false, M::GET) => {
                nic::list_ipconfigs(ctx, req)
            }
            (["networkinterfaces", "effectivenetworksecuritygroups"], false, M::POST) => {
                nic::effective_nsgs(ctx, req)
            }
            (["networkinterfaces", "effectiveroutetable"], false, M::POST) => {
                nic::effective_routes(ctx, req)
            }
            (["networkwatchers"], true, M::PUT) => watcher::put(ctx, req),
            (["networkwatchers"], true, M::GET) => watcher::get(ctx, req),
            (["networkwatchers"], true, M::DELETE) => watcher::delete(ctx, req),
            (["networkwatchers"], false, M::GET) => watcher::list(ctx, req),
            (["networkwatchers", "ipflowverify"], false, M::POST) => {
                watcher::ip_flow_verify(ctx, req)
            }
            (["networkwatchers", "nexthop"], false, M::POST) => watcher::next_hop(ctx, req),
            (["networkwatchers", "connectivitycheck"], false, M::POST) => {
                watcher::connectivity_check(ctx, req, &self.connectivity)
            }
            (["privateendpoints"], true, M::PUT) => private_endpoint::put(ctx, req, &self.registry),
            (["privateendpoints"], true, M::PATCH) => {
                common::patch_tags(ctx, req, private_endpoint::PE_TYPE)?;
                private_endpoint::get(ctx, req, &self.registry)
            }
            (["privateendpoints"], true, M::GET) => private_endpoint::get(ctx, req, &self.registry),
            (["privateendpoints"], true, M::DELETE) => {
                private_endpoint::delete(ctx, req, &self.registry)
            }
            (["privateendpoints"], false, M::GET) => {
                private_endpoint::list(ctx, req, &self.registry)
            }
            (["privateendpoints", "privatednszonegroups"], true, M::PUT) => {
                private_endpoint::put_zone_group(ctx, req)
            }
            (["privateendpoints", "privatednszonegroups"], true, M::GET) => {
                private_endpoint::get_zone_group(ctx, req)
            }
            (["privateendpoints", "privatednszonegroups"], true, M::DELETE) => {
                private_endpoint::delete_zone_group(ctx, req)
            }
            (["privateendpoints", "privatednszonegroups"], false, M::GET) => {
                private_endpoint::list_zone_groups(ctx, req)
            }
            (_, _, m) => Err(ArmError::method_not_allowed(m.as_str())),
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
