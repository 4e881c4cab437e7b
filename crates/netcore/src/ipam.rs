//! Address management inside a subnet, as Azure does it: the first four
//! addresses and the last one are reserved, dynamic allocation takes the
//! lowest free address, and a request that cannot be met whole changes nothing.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Azure reserves x.x.x.0 (network), .1 (gateway), .2 and .3 (DNS) and the last address.
pub const RESERVED_LOW: u32 = 4;
pub const RESERVED_HIGH: u32 = 1;
/// The smallest subnet Azure allows.
pub const SMALLEST_PREFIX: u8 = 29;
/// The largest subnet Azure allows.
pub const LARGEST_PREFIX: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpamError {
    /// Not enough free addresses: how many were needed and how many are free.
    Exhausted {
        needed: u64,
        free: u64,
    },
    Reserved(Ipv4Addr),
    InUse(Ipv4Addr),
    OutOfRange(Ipv4Addr),
}

impl std::fmt::Display for IpamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpamError::Exhausted { needed, free } => write!(
                f,
                "the subnet needs {needed} free IP address(es) for this operation but has only {free}"
            ),
            IpamError::Reserved(ip) => write!(
                f,
                "{ip} is one of the five addresses Azure reserves in every subnet (the first four and the last)"
            ),
            IpamError::InUse(ip) => write!(f, "{ip} is already in use in the subnet"),
            IpamError::OutOfRange(ip) => write!(f, "{ip} is not inside the subnet's address prefix"),
        }
    }
}

/// The allocation state of one subnet.
#[derive(Debug, Clone)]
pub struct SubnetPool {
    net: Ipv4Net,
    words: Vec<u64>,
    used: u64,
    /// No free address lies in a word below this one.
    hint: usize,
}

impl SubnetPool {
    pub fn new(net: Ipv4Net) -> SubnetPool {
        let n = crate::cidr::size(&net) as usize;
        let mut pool = SubnetPool {
            net,
            words: vec![0; n.div_ceil(64)],
            used: 0,
            hint: 0,
        };
        // Mark what lies past the end of a short last word, and the reserved addresses, as taken.
        for i in n..pool.words.len() * 64 {
            pool.set(i);
        }
        for i in 0..(RESERVED_LOW as usize).min(n) {
            pool.set(i);
        }
        if n > RESERVED_LOW as usize {
            pool.set(n - 1);
        }
        pool.used = 0;
        pool
    }

    /// A pool with the given addresses already in use (ignores those outside).
    pub fn with_used(net: Ipv4Net, used: impl IntoIterator<Item = Ipv4Addr>) -> SubnetPool {
        let mut p = SubnetPool::new(net);
        for ip in used {
            let _ = p.claim(ip);
        }
        p
    }

    pub fn prefix(&self) -> Ipv4Net {
        self.net
    }

    /// Addresses a subnet of this size offers to resources.
    pub fn capacity(&self) -> u64 {
        crate::cidr::size(&self.net).saturating_sub((RESERVED_LOW + RESERVED_HIGH) as u64)
    }

    pub fn free(&self) -> u64 {
        self.capacity() - self.used
    }

    fn index(&self, ip: Ipv4Addr) -> Option<usize> {
        if !self.net.contains(&ip) {
            return None;
        }
        Some((u32::from(ip) - u32::from(self.net.network())) as usize)
    }

    fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    fn is_set(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    pub fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        match self.index(ip) {
            Some(i) => i < RESERVED_LOW as usize || i as u64 == crate::cidr::size(&self.net) - 1,
            None => false,
        }
    }

    /// Takes a specific address (static allocation).
    pub fn claim(&mut self, ip: Ipv4Addr) -> Result<(), IpamError> {
        let i = self.index(ip).ok_or(IpamError::OutOfRange(ip))?;
        if self.is_reserved(ip) {
            return Err(IpamError::Reserved(ip));
        }
        if self.is_set(i) {
            return Err(IpamError::InUse(ip));
        }
        self.set(i);
        self.used += 1;
        Ok(())
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(i) = self.index(ip) {
            if !self.is_reserved(ip) && self.is_set(i) {
                self.words[i / 64] &= !(1 << (i % 64));
                self.used -= 1;
                self.hint = self.hint.min(i / 64);
            }
        }
    }

    /// Whether `ip` could be taken now (in range, not reserved, not in use)
    /// and, as Azure's CheckIPAddressAvailability answers, up to five free
    /// addresses, lowest first, when it cannot.
    pub fn availability(&self, ip: Ipv4Addr) -> (bool, Vec<Ipv4Addr>) {
        let free_now = self
            .index(ip)
            .is_some_and(|i| !self.is_reserved(ip) && !self.is_set(i));
        if free_now {
            return (true, Vec::new());
        }
        let mut probe = self.clone();
        let n = probe.free().min(5);
        (false, probe.allocate_n(n).unwrap_or_default())
    }

    /// The lowest free address.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, IpamError> {
        Ok(self.allocate_n(1)?[0])
    }

    /// `n` addresses, lowest first, or none at all.
    pub fn allocate_n(&mut self, n: u64) -> Result<Vec<Ipv4Addr>, IpamError> {
        if n > self.free() {
            return Err(IpamError::Exhausted {
                needed: n,
                free: self.free(),
            });
        }
        let base = u32::from(self.net.network());
        let mut out = Vec::with_capacity(n as usize);
        let mut w = self.hint;
        while (out.len() as u64) < n {
            let word = self.words[w];
            if word == u64::MAX {
                w += 1;
                self.hint = w;
                continue;
            }
            let bit = (!word).trailing_zeros() as usize;
            let i = w * 64 + bit;
            self.set(i);
            self.used += 1;
            out.push(Ipv4Addr::from(base + i as u32));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pool(s: &str) -> SubnetPool {
        SubnetPool::new(s.parse().unwrap())
    }

    #[test]
    fn reserved_addresses_and_lowest_first() {
        let mut p = pool("10.0.1.0/24");
        assert_eq!(p.capacity(), 251);
        assert_eq!(
            p.allocate().unwrap(),
            "10.0.1.4".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(
            p.allocate().unwrap(),
            "10.0.1.5".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(
            p.claim("10.0.1.255".parse().unwrap()),
            Err(IpamError::Reserved("10.0.1.255".parse().unwrap()))
        );
        assert_eq!(
            p.claim("10.0.1.3".parse().unwrap()),
            Err(IpamError::Reserved("10.0.1.3".parse().unwrap()))
        );
        p.release("10.0.1.4".parse().unwrap());
        assert_eq!(
            p.allocate().unwrap(),
            "10.0.1.4".parse::<Ipv4Addr>().unwrap()
        );
    }

    #[test]
    fn exhaustion_says_needed_and_free_and_changes_nothing() {
        let mut p = pool("10.0.0.0/29");
        assert_eq!(p.capacity(), 3);
        p.allocate().unwrap();
        let err = p.allocate_n(5).unwrap_err();
        assert_eq!(err, IpamError::Exhausted { needed: 5, free: 2 });
        assert!(err.to_string().contains("needs 5") && err.to_string().contains("only 2"));
        assert_eq!(p.free(), 2);
    }

    #[test]
    fn a_whole_slash_16() {
        let mut p = pool("10.1.0.0/16");
        let all = p.allocate_n(p.capacity()).unwrap();
        assert_eq!(all.len(), 65531);
        assert_eq!(all[0], "10.1.0.4".parse::<Ipv4Addr>().unwrap());
        assert_eq!(
            *all.last().unwrap(),
            "10.1.255.254".parse::<Ipv4Addr>().unwrap()
        );
        assert!(p.allocate().is_err());
    }

    proptest! {
        #[test]
        fn allocations_are_unique_in_range_and_never_reserved(len in 24u8..=29, n in 0u64..300, frees in proptest::collection::vec(any::<u8>(), 0..20)) {
            let net: Ipv4Net = format!("172.16.8.0/{len}").parse().unwrap();
            let mut p = SubnetPool::new(net);
            let want = n.min(p.capacity());
            let got = p.allocate_n(want).unwrap();
            let mut seen = std::collections::HashSet::new();
            for ip in &got {
                prop_assert!(net.contains(ip));
                prop_assert!(!p.is_reserved(*ip));
                prop_assert!(seen.insert(*ip));
            }
            for f in frees {
                if let Some(ip) = got.get(f as usize % got.len().max(1)) { p.release(*ip); }
            }
            let before = p.free();
            // Lowest-first: the next allocation is the smallest free address.
            if before > 0 {
                let next = p.allocate().unwrap();
                let smallest = got.iter().filter(|ip| !p.clone().is_set_ip(**ip)).min().copied();
                if let Some(s) = smallest { prop_assert!(next <= s || !got.contains(&next)); }
            }
        }
    }

    impl SubnetPool {
        fn is_set_ip(&self, ip: Ipv4Addr) -> bool {
            self.index(ip).map(|i| self.is_set(i)).unwrap_or(false)
        }
    }

    #[test]
    fn availability_says_free_or_offers_the_lowest_free_five() {
        let net: Ipv4Net = "10.0.1.0/29".parse().unwrap();
        let mut p = SubnetPool::new(net);
        let first = p.allocate().unwrap();
        assert_eq!(first, "10.0.1.4".parse::<Ipv4Addr>().unwrap());
        let (ok, alt) = p.availability(first);
        assert!(
            !ok && alt
                == vec![
                    "10.0.1.5".parse::<Ipv4Addr>().unwrap(),
                    "10.0.1.6".parse().unwrap()
                ]
        );
        assert_eq!(p.availability("10.0.1.5".parse().unwrap()), (true, vec![]));
        // Azure's reserved addresses are never available.
        assert!(!p.availability("10.0.1.1".parse().unwrap()).0);
        assert!(!p.availability("10.0.2.9".parse().unwrap()).0);
    }
}
