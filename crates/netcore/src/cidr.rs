//! IPv4 prefixes.

use std::net::Ipv4Addr;

pub use ipnet::Ipv4Net;

/// Parses `10.0.0.0/16`; a bare address is a /32. Host bits must be zero,
/// as Azure requires for address spaces and subnets.
pub fn parse_prefix(s: &str) -> Result<Ipv4Net, String> {
    let s = s.trim();
    let net: Ipv4Net = if s.contains('/') {
        s.parse()
            .map_err(|_| format!("'{s}' is not a valid IPv4 CIDR prefix"))?
    } else {
        let ip: Ipv4Addr = s
            .parse()
            .map_err(|_| format!("'{s}' is not a valid IPv4 address"))?;
        Ipv4Net::new(ip, 32).expect("32 is a valid length")
    };
    if net.network() != net.addr() {
        return Err(format!(
            "'{s}' has host bits set; did you mean {}/{}?",
            net.network(),
            net.prefix_len()
        ));
    }
    Ok(net)
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Whether `inner` lies wholly inside `outer`.
pub fn within(inner: &Ipv4Net, outer: &Ipv4Net) -> bool {
    outer.contains(inner)
}

pub fn size(net: &Ipv4Net) -> u64 {
    1u64 << (32 - net.prefix_len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parsing() {
        assert_eq!(parse_prefix("10.0.0.0/16").unwrap().prefix_len(), 16);
        assert!(parse_prefix("10.0.0.1/16")
            .unwrap_err()
            .contains("host bits"));
        assert!(parse_prefix("10.0.0.0/33").is_err());
        assert_eq!(parse_prefix("1.2.3.4").unwrap().prefix_len(), 32);
    }

    proptest! {
        #[test]
        fn overlap_is_symmetric_and_matches_containment(a in any::<u32>(), al in 8u8..=32, b in any::<u32>(), bl in 8u8..=32) {
            let x = Ipv4Net::new(Ipv4Addr::from(a), al).unwrap().trunc();
            let y = Ipv4Net::new(Ipv4Addr::from(b), bl).unwrap().trunc();
            prop_assert_eq!(overlaps(&x, &y), overlaps(&y, &x));
            // Overlap exactly when some address is in both.
            let brute = x.contains(&y.network()) || x.contains(&y.broadcast()) || y.contains(&x.network());
            prop_assert_eq!(overlaps(&x, &y), brute);
            if within(&x, &y) { prop_assert!(overlaps(&x, &y)); }
        }
    }
}
