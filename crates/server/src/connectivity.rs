//! Network Watcher's connectivity check, answered with the real thing: the
//! destination name resolved by the DNS server from the source VM's
//! network, the address mapped to the loopback alias the gateway listens
//! on, and the gateway's decision for that connection.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use recoverite_arm::{id, ArmError};
use recoverite_gateway::decide::Destination;
use recoverite_rp_network::watcher::{Connectivity, Probe};
use recoverite_rp_network::{addressbook, aliases};
use recoverite_store::Store;

pub struct GatewayConnectivity {
    pub store: Store,
    pub resolver: Arc<recoverite_dns::Resolver>,
    pub gateway: Arc<recoverite_gateway::Gateway>,
}

impl GatewayConnectivity {
    /// The alias the gateway knows a model address by, from `from`'s view
    /// (private addresses repeat across networks: the VM's own first).
    fn alias_of(&self, from: Ipv4Addr, model: Ipv4Addr) -> Result<Option<Ipv4Addr>, ArmError> {
        if !model.is_private() {
            return Ok(Some(addressbook::public_alias(model)));
        }
        self.store.view(|r| {
            let mine = aliases::lookup(r, from)?.map(|a| id::key(&a.vnet_id));
            let all: Vec<_> = aliases::all(r)?
                .into_iter()
                .filter(|a| a.private_ip == Some(model))
                .collect();
            Ok(all
                .iter()
                .find(|a| Some(id::key(&a.vnet_id)) == mine)
                .or(all.first())
                .map(|a| a.alias))
        })
    }
}

impl Connectivity for GatewayConnectivity {
    fn vm_address(&self, vm_id: &str) -> Result<Option<String>, ArmError> {
        self.store.view(|r| {
            Ok(recoverite_rp_compute::view::primary_ipconfig(r, vm_id)?
                .map(|c| c.properties.private_ip_address.to_string()))
        })
    }

    fn probe(&self, source_vm: &str, destination: &str, port: u16) -> Result<Probe, ArmError> {
        let (src_alias, src_ip) = self.store.view(|r| {
            let cfg =
                recoverite_rp_compute::view::primary_ipconfig(r, source_vm)?.ok_or_else(|| {
                    ArmError::invalid_parameter(
                        "source.resourceId",
                        format!("'{source_vm}' is not a VM with a network interface."),
                    )
                })?;
            let a = aliases::of_owner(r, &cfg.id)?.ok_or_else(|| {
                ArmError::internal("the VM's network interface has no network position")
            })?;
            Ok::<_, ArmError>((
                a.alias,
                a.private_ip.map(|i| i.to_string()).unwrap_or_default(),
            ))
        })?;
        let mut probe = Probe {
            source_address: src_ip,
            destination_kind: "Internet".into(),
            ..Probe::default()
        };
        let model: Ipv4Addr = match destination.parse() {
            Ok(ip) => ip,
            Err(_) => {
                let snap = self.resolver.snapshot();
                let vnet = self.resolver.vnet_of(&snap, IpAddr::V4(src_alias));
                let res = recoverite_dns::resolve(
                    &snap,
                    vnet.as_deref(),
                    destination,
                    recoverite_dns::RType::A,
                );
                probe.dns = res.trace.clone();
                let a = res.answers.iter().rev().find_map(|a| match a.value {
                    recoverite_dns::resolve::Value::A(ip) => Some(ip),
                    _ => None,
                });
                match a {
                    Some(ip) => ip,
                    None => {
                        probe.dns_failed = true;
                        probe.reason = format!(
                            "DNS: '{destination}' does not resolve from the VM's network ({}).",
                            res.trace.join("; ")
                        );
                        return Ok(probe);
                    }
                }
            }
        };
        probe.destination_address = Some(model.to_string());
        let Some(dst_alias) = self.alias_of(src_alias, model)? else {
            probe.reason = format!("Nothing listens at {model} in the model: no NIC, private endpoint or service has that address.");
            return Ok(probe);
        };
        let d = match destination.parse::<Ipv4Addr>() {
            Ok(_) => self.gateway.check(src_alias, dst_alias, port)?,
            // A name decides which account a shared public address is for.
            Err(_) => self
                .gateway
                .check_host(src_alias, dst_alias, port, destination)?,
        };
        probe.allowed = d.allowed;
        probe.reason = d.reason.clone();
        match &d.destination {
            Some(Destination::PrivateEndpoint { endpoint_id, .. }) => {
                probe.destination_kind = "PrivateLink".into();
                probe.destination_resource = Some(endpoint_id.clone());
            }
            Some(Destination::Nic { ipconfig, .. }) => {
                probe.destination_kind = "VirtualNetwork".into();
                probe.destination_resource = Some(
                    ipconfig
                        .split("/ipConfigurations/")
                        .next()
                        .unwrap_or(ipconfig)
                        .to_string(),
                );
            }
            Some(Destination::Public { target_id, .. }) => {
                probe.destination_resource = target_id.clone();
            }
            None => {}
        }
        Ok(probe)
    }
}
