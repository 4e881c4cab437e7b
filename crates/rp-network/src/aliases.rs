//! Loopback aliases: every address holder (NIC and private endpoint IP
//! configurations) and every virtual network gets an address in 127.0.0.0/8.
//! A process acting inside a VM binds its sockets to the VM's alias; the DNS
//! server and the gateway map the source address back to a network position.
//! Linux routes the whole /8 to loopback, so nothing needs configuring and no
//! traffic can leave the machine.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use recoverite_arm::{id, ArmError};
use recoverite_store::{Reader, Table, WriteTx};

pub const BY_OWNER: Table = Table("loopback_alias_by_owner");
pub const BY_ALIAS: Table = Table("loopback_alias_by_address");
const NEXT: &str = "next";
pub const META: Table = Table("loopback_alias_meta");

/// Aliases of private positions come from 127.100.0.0 upward.
pub const FIRST: Ipv4Addr = Ipv4Addr::new(127, 100, 0, 1);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Alias {
    pub alias: Ipv4Addr,
    /// The IP configuration or virtual network the alias stands for.
    pub owner: String,
    /// `ipConfiguration` or `virtualNetwork`.
    pub kind: String,
    pub subnet_id: Option<String>,
    pub vnet_id: String,
    /// The model private address (absent for a network's own alias).
    pub private_ip: Option<Ipv4Addr>,
}

fn next_free(tx: &mut WriteTx) -> Result<Ipv4Addr, ArmError> {
    let mut n: u32 = tx.get_json::<u32>(META, NEXT)?.unwrap_or(u32::from(FIRST));
    loop {
        let ip = Ipv4Addr::from(n);
        n += 1;
        let last = ip.octets()[3];
        if last == 0 || last == 255 {
            continue;
        }
        if ip.octets()[0] != 127 {
            return Err(ArmError::internal("the loopback alias range is exhausted"));
        }
        if tx.get(BY_ALIAS, &ip.to_string())?.is_none() {
            tx.put_json(META, NEXT, &n)?;
            return Ok(ip);
        }
    }
}

/// Gives `owner` an alias (keeping an existing one).
pub fn assign(
    tx: &mut WriteTx,
    owner: &str,
    kind: &str,
    vnet_id: &str,
    subnet_id: Option<&str>,
    private_ip: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, ArmError> {
    let k = id::key(owner);
    if let Some(a) = tx.get_json::<Alias>(BY_OWNER, &k)? {
        if a.private_ip == private_ip {
            return Ok(a.alias);
        }
        tx.delete(BY_ALIAS, &a.alias.to_string())?;
    }
    let alias = next_free(tx)?;
    let a = Alias {
        alias,
        owner: owner.to_string(),
        kind: kind.to_string(),
        subnet_id: subnet_id.map(str::to_string),
        vnet_id: vnet_id.to_string(),
        private_ip,
    };
    tx.put_json(BY_OWNER, &k, &a)?;
    tx.put_json(BY_ALIAS, &alias.to_string(), &a)?;
    Ok(alias)
}

/// Frees the aliases of every owner at or under `scope`.
pub fn release_under(tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
    let s = id::key(scope);
    for (k, a) in tx.scan_json::<Alias>(BY_OWNER, "")? {
        if id::scope_contains(&s, &k) {
            tx.delete(BY_OWNER, &k)?;
            tx.delete(BY_ALIAS, &a.alias.to_string())?;
        }
    }
    Ok(())
}

pub fn of_owner(r: &impl Reader, owner: &str) -> Result<Option<Alias>, ArmError> {
    Ok(r.get_json(BY_OWNER, &id::key(owner))?)
}

pub fn lookup(r: &impl Reader, alias: Ipv4Addr) -> Result<Option<Alias>, ArmError> {
    Ok(r.get_json(BY_ALIAS, &alias.to_string())?)
}

pub fn all(r: &impl Reader) -> Result<Vec<Alias>, ArmError> {
    Ok(r.scan_json::<Alias>(BY_OWNER, "")?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

/// The virtual network that owns an IP configuration's subnet.
pub fn vnet_of_subnet(subnet_id: &str) -> String {
    subnet_id[..subnet_id
        .to_ascii_lowercase()
        .rfind("/subnets/")
        .unwrap_or(subnet_id.len())]
        .to_string()
}
