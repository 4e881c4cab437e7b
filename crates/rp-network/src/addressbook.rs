//! The public side of the emulated world: which (model) public address
//! belongs to which Azure service in which region. Service tags are matched
//! against this, the DNS server answers public names with it, and the
//! gateway maps each address to a loopback alias.

use std::net::Ipv4Addr;

use recoverite_arm::regions::REGIONS;
use recoverite_netcore::tags::Endpoint;

/// (service tag, first two octets of its model range, regional?)
const PLAN: &[(&str, [u8; 2], bool)] = &[
    ("Storage", [20, 60], true),
    ("EventHub", [20, 42], true),
    ("AzureSiteRecovery", [52, 136], true),
    ("AzureBackup", [20, 40], true),
    ("AzureKeyVault", [20, 38], true),
    ("AzureMonitor", [20, 50], true),
    ("ServiceBus", [20, 48], true),
    ("GuestAndHybridManagement", [13, 66], false),
    ("AzureActiveDirectory", [20, 190], false),
];

fn region_index(region: &str) -> Option<u8> {
    let r = recoverite_netcore::tags::fold_region(region);
    REGIONS
        .iter()
        .position(|x| x.name == r)
        .map(|i| i as u8 + 1)
}

/// The model public address of `service` in `region` (host part `host`).
pub fn service_ip(service: &str, region: Option<&str>, host: u8) -> Option<Ipv4Addr> {
    let (_, base, regional) = PLAN
        .iter()
        .find(|(s, _, _)| s.eq_ignore_ascii_case(service))?;
    let third = if *regional { region_index(region?)? } else { 0 };
    Some(Ipv4Addr::new(base[0], base[1], third, host.max(1)))
}

/// The test target's public side lives in TEST-NET-3 (an "Internet" address).
pub const TEST_TARGET_PUBLIC: [u8; 3] = [203, 0, 113];

/// The loopback alias standing for a public model address: service `k` of
/// the plan maps `a.b.c.d` to `127.(200+k).c.d`; other addresses to 127.250.c.d.
pub fn public_alias(ip: Ipv4Addr) -> Ipv4Addr {
    let o = ip.octets();
    let k = PLAN
        .iter()
        .position(|(_, base, _)| o[0] == base[0] && o[1] == base[1])
        .map(|k| 200 + k as u8)
        .unwrap_or(250);
    Ipv4Addr::new(127, k, o[2], o[3])
}

/// The model public address behind a public alias, if it is one.
pub fn public_of_alias(alias: Ipv4Addr) -> Option<Ipv4Addr> {
    let o = alias.octets();
    if o[0] != 127 {
        return None;
    }
    match o[1] {
        k @ 200..=249 => PLAN
            .get((k - 200) as usize)
            .map(|(_, base, _)| Ipv4Addr::new(base[0], base[1], o[2], o[3])),
        250 => Some(Ipv4Addr::new(
            TEST_TARGET_PUBLIC[0],
            TEST_TARGET_PUBLIC[1],
            TEST_TARGET_PUBLIC[2],
            o[3],
        )),
        _ => None,
    }
}

/// Classifies any non-VNet address.
pub fn classify_public(ip: Ipv4Addr) -> Endpoint {
    let o = ip.octets();
    if ip == recoverite_netcore::tags::AZURE_LOAD_BALANCER_IP {
        return Endpoint::LoadBalancer;
    }
    for (service, base, regional) in PLAN {
        if o[0] == base[0] && o[1] == base[1] {
            let region = if *regional {
                REGIONS
                    .get((o[2] as usize).wrapping_sub(1))
                    .map(|r| r.name.to_string())
            } else {
                None
            };
            if *regional && region.is_none() {
                break;
            }
            return Endpoint::Service {
                ip,
                service: service.to_string(),
                region,
            };
        }
    }
    Endpoint::Internet { ip }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ip = service_ip("Storage", Some("East US"), 7).unwrap();
        match classify_public(ip) {
            Endpoint::Service {
                service, region, ..
            } => {
                assert_eq!(service, "Storage");
                assert_eq!(region.as_deref(), Some("eastus"));
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            classify_public("8.8.8.8".parse().unwrap()),
            Endpoint::Internet { .. }
        ));
        assert!(service_ip("Storage", None, 1).is_none());
        assert!(service_ip("AzureActiveDirectory", None, 1).is_some());
        assert_eq!(public_of_alias(public_alias(ip)), Some(ip));
        let t = Ipv4Addr::new(203, 0, 113, 9);
        assert_eq!(public_of_alias(public_alias(t)), Some(t));
    }
}
