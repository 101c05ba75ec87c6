//! Address management, pure: the lowest free address of a subnet (from .2, the gateway being .1),
//! and the first free subnet of Docker's default pools given what the host already routes.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::cidr::Ipv4Net;

/// The lowest address of `subnet` from `.2` on that is not in `used`; `None` when it is full.
pub fn lowest_free(subnet: &Ipv4Net, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    (2..)
        .map_while(|n| subnet.host(n))
        .find(|a| !used.contains(a))
}

/// Docker's default address pools, in order: the /16s of 172.17–172.31, then the /20 blocks of
/// 192.168.0.0/16.
pub fn default_pools() -> impl Iterator<Item = Ipv4Net> {
    let b16 = (17u8..=31).filter_map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).ok());
    let b20 = (0u8..16).filter_map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).ok());
    b16.chain(b20)
}

/// The first pool that overlaps none of `taken` (the host's routes and addresses, other networks).
pub fn first_free_pool(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    default_pools().find(|p| !taken.iter().any(|t| t.overlaps(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn hands_out_in_order_and_reuses_the_lowest() {
        let n = net("172.17.0.0/16");
        let mut used = BTreeSet::new();
        let a = lowest_free(&n, &used).unwrap();
        assert_eq!(a, Ipv4Addr::new(172, 17, 0, 2));
        used.insert(a);
        let b = lowest_free(&n, &used).unwrap();
        assert_eq!(b, Ipv4Addr::new(172, 17, 0, 3));
        used.insert(b);
        used.remove(&a);
        assert_eq!(lowest_free(&n, &used), Some(a));
    }

    #[test]
    fn a_full_subnet_has_nothing() {
        let n = net("10.1.0.0/30");
        let used: BTreeSet<_> = [Ipv4Addr::new(10, 1, 0, 2)].into();
        assert_eq!(lowest_free(&n, &used), None);
    }

    #[test]
    fn skips_pools_in_use_like_docker() {
        assert_eq!(first_free_pool(&[]), Some(net("172.17.0.0/16")));
        let taken = [net("172.17.0.0/16"), net("172.18.3.0/24")];
        assert_eq!(first_free_pool(&taken), Some(net("172.19.0.0/16")));
        let all16: Vec<_> = (17..=31).map(|b| net(&format!("172.{b}.0.0/16"))).collect();
        assert_eq!(first_free_pool(&all16), Some(net("192.168.0.0/20")));
        let mut more = all16.clone();
        more.push(net("192.168.0.0/24"));
        assert_eq!(first_free_pool(&more), Some(net("192.168.16.0/20")));
    }
}
