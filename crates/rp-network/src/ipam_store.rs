//! Persistent IP allocations: which address of which subnet belongs to whom.
//! The allocation and the resource that holds it are written in the same
//! transaction, so an address is never lost or double-booked.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use recoverite_arm::{id, ArmError};
use recoverite_netcore::cidr::Ipv4Net;
use recoverite_netcore::ipam::{IpamError, SubnetPool};
use recoverite_store::{Reader, Table, WriteTx};

pub const ALLOCATIONS: Table = Table("network_ip_allocations");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Allocation {
    pub ip: Ipv4Addr,
    /// The ip configuration (NIC or private endpoint) holding the address.
    pub owner: String,
}

fn prefix(subnet_id: &str) -> String {
    format!("{}|", id::key(subnet_id))
}

pub fn used(r: &impl Reader, subnet_id: &str) -> Result<Vec<Allocation>, ArmError> {
    Ok(r.scan_json::<Allocation>(ALLOCATIONS, &prefix(subnet_id))?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

pub fn pool(r: &impl Reader, subnet_id: &str, net: Ipv4Net) -> Result<SubnetPool, ArmError> {
    Ok(SubnetPool::with_used(
        net,
        used(r, subnet_id)?.into_iter().map(|a| a.ip),
    ))
}

pub fn record(
    tx: &mut WriteTx,
    subnet_id: &str,
    ip: Ipv4Addr,
    owner: &str,
) -> Result<(), ArmError> {
    let k = format!("{}{:08x}", prefix(subnet_id), u32::from(ip));
    tx.put_json(
        ALLOCATIONS,
        &k,
        &Allocation {
            ip,
            owner: owner.to_string(),
        },
    )?;
    // Every address holder gets a loopback alias (its network position).
    crate::aliases::assign(
        tx,
        owner,
        "ipConfiguration",
        &crate::aliases::vnet_of_subnet(subnet_id),
        Some(subnet_id),
        Some(ip),
    )?;
    Ok(())
}

/// Frees every address held by owners at or under `owner_scope`.
pub fn release_owned_by(tx: &mut WriteTx, owner_scope: &str) -> Result<(), ArmError> {
    let all = tx.scan_json::<Allocation>(ALLOCATIONS, "")?;
    for (k, a) in all {
        if id::scope_contains(owner_scope, &a.owner) {
            tx.delete(ALLOCATIONS, &k)?;
        }
    }
    crate::aliases::release_under(tx, owner_scope)
}

/// Drops the allocation table of a deleted subnet.
pub fn forget_subnet(tx: &mut WriteTx, subnet_id: &str) -> Result<(), ArmError> {
    tx.delete_prefix(ALLOCATIONS, &prefix(subnet_id))?;
    Ok(())
}

/// Maps an IPAM failure to Azure's error for the subnet.
pub fn ipam_error(e: IpamError, subnet_id: &str, net: &Ipv4Net) -> ArmError {
    match e {
        IpamError::Exhausted { needed, free } => ArmError::bad_request(
            "SubnetIsFull",
            format!(
                "Subnet {subnet_id} with address prefix {net} does not have enough capacity: this operation needs {needed} free IP address(es) and the subnet has {free}. Use a larger subnet or free addresses."
            ),
        ),
        IpamError::Reserved(ip) => ArmError::bad_request(
            "PrivateIPAddressInReservedRange",
            format!("Private static IP address {ip} falls within reserved IP range of subnet prefix {net}: Azure reserves the first four and the last address of every subnet."),
        ),
        IpamError::InUse(ip) => ArmError::bad_request(
            "PrivateIPAddressIsAllocated",
            format!("IP configuration requests private IP address {ip}, which is already allocated in subnet {subnet_id}."),
        ),
        IpamError::OutOfRange(ip) => ArmError::bad_request(
            "PrivateIPAddressNotInSubnet",
            format!("Private static IP address {ip} does not belong to the range of subnet prefix {net}."),
        ),
    }
}
