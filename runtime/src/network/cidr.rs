//! IPv4 subnets (`172.17.0.0/16`): parsing, containment, overlap and host addresses by index, the
//! arithmetic IPAM and subnet selection are built on.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 network: its base address (host bits zero) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    base: Ipv4Addr,
    prefix: u8,
}

/// A subnet string that is not `A.B.C.D/N` with N in 8..=30.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid subnet {0:?}: expected an IPv4 CIDR such as 172.18.0.0/16 (prefix 8 to 30)")]
pub struct CidrError(pub String);

impl Ipv4Net {
    /// The network containing `addr` with `prefix` bits; host bits are cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Net, CidrError> {
        if !(8..=30).contains(&prefix) {
            return Err(CidrError(format!("{addr}/{prefix}")));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Ipv4Net {
            base: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    /// The network address.
    pub fn base(&self) -> Ipv4Addr {
        self.base
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    /// Whether `addr` lies inside this network.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.base)
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.base) || other.contains(self.base)
    }

    /// The `n`th address of the network (`1` is the gateway by convention); `None` past the last
    /// host address (the broadcast address is never handed out).
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u32 << (32 - self.prefix);
        (n >= 1 && n < size - 1).then(|| Ipv4Addr::from(u32::from(self.base) + n))
    }

    /// The gateway address: the first host.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }
}

impl FromStr for Ipv4Net {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Ipv4Net, CidrError> {
        let bad = || CidrError(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Ipv4Net::new(addr, prefix).map_err(|_| bad())
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = CidrError;
    fn try_from(s: String) -> Result<Ipv4Net, CidrError> {
        s.parse()
    }
}

impl From<Ipv4Net> for String {
    fn from(n: Ipv4Net) -> String {
        n.to_string()
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        let n: Ipv4Net = "172.17.3.4/16".parse().unwrap();
        assert_eq!(n.to_string(), "172.17.0.0/16");
        assert_eq!(n.gateway(), Ipv4Addr::new(172, 17, 0, 1));
        assert!("172.17.0.0".parse::<Ipv4Net>().is_err());
        assert!("172.17.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("abc/16".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn hosts_exclude_network_and_broadcast() {
        let n: Ipv4Net = "10.0.0.0/30".parse().unwrap();
        assert_eq!(n.host(0), None);
        assert_eq!(n.host(1), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(n.host(2), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(n.host(3), None);
    }

    #[test]
    fn overlap_both_ways() {
        let a: Ipv4Net = "172.17.0.0/16".parse().unwrap();
        let b: Ipv4Net = "172.17.5.0/24".parse().unwrap();
        let c: Ipv4Net = "172.18.0.0/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }
}
