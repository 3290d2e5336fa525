//! IPv4 address management: CIDR parsing with docker's wording, overlap checks, subnets from
//! the default address pools, and the next free address of a subnet.
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// A bad address or CIDR, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("invalid CIDR address: {0}")]
    Cidr(String),
    #[error("invalid address: {0}")]
    Address(String),
    #[error("invalid pool request: {0}")]
    Pool(String),
}

/// `a.b.c.d/n`, host bits allowed (`--bip 10.1.0.1/16`): the address and its network.
pub fn parse_cidr(text: &str) -> Result<(Ipv4Addr, Ipv4Net), IpamError> {
    let net: Ipv4Net = text
        .parse()
        .map_err(|_| IpamError::Cidr(text.to_string()))?;
    Ok((net.addr(), net.trunc()))
}

/// A network's subnet: host bits must be zero (docker: "invalid pool request").
pub fn parse_subnet(text: &str) -> Result<Ipv4Net, IpamError> {
    let (addr, net) = parse_cidr(text)?;
    if addr != net.network() {
        return Err(IpamError::Pool(format!(
            "Pool {text} has host bits set; the subnet is {net}"
        )));
    }
    if net.prefix_len() > 30 {
        return Err(IpamError::Pool(format!(
            "Pool {text} is too small: a subnet needs at least a /30"
        )));
    }
    Ok(net)
}

pub fn parse_address(text: &str) -> Result<Ipv4Addr, IpamError> {
    text.parse()
        .map_err(|_| IpamError::Address(text.to_string()))
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// One `--default-address-pool base=CIDR,size=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    pub base: Ipv4Net,
    pub size: u8,
}

impl std::str::FromStr for AddressPool {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mut base, mut size) = (None, None);
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("base", v)) => base = Some(parse_cidr(v).map_err(|e| e.to_string())?.1),
                Some(("size", v)) => {
                    size = Some(v.parse::<u8>().map_err(|_| format!("invalid size {v:?}"))?)
                }
                _ => return Err(format!("invalid address pool {s:?}: base=CIDR,size=N")),
            }
        }
        let base = base.ok_or_else(|| format!("address pool {s:?}: no base"))?;
        let size = size.ok_or_else(|| format!("address pool {s:?}: no size"))?;
        if size < base.prefix_len() || size > 30 {
            return Err(format!(
                "address pool {s:?}: size {size} must lie between /{} and /30",
                base.prefix_len()
            ));
        }
        Ok(AddressPool { base, size })
    }
}

/// Docker's default pools: 172.17-31.0.0/16, then 192.168.0.0/16 cut in /20s.
pub fn default_pools() -> Vec<AddressPool> {
    let mut pools: Vec<AddressPool> = (17..=31)
        .map(|b| AddressPool {
            base: Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("valid"),
            size: 16,
        })
        .collect();
    pools.push(AddressPool {
        base: Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).expect("valid"),
        size: 20,
    });
    pools
}

/// The first subnet of `pools` that overlaps none of `taken`.
pub fn free_subnet(pools: &[AddressPool], taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    pools.iter().find_map(|p| {
        p.base
            .subnets(p.size)
            .ok()?
            .find(|s| !taken.iter().any(|t| overlaps(s, t)))
    })
}

/// The host's routes (`/proc/net/route`) other than the default one: subnets a new network
/// must not take (docker skips pools that collide with the host's own networks).
pub fn host_routes() -> Vec<Ipv4Net> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            let prefix = u32::from_be(mask).leading_ones() as u8;
            (prefix > 0)
                .then(|| Ipv4Net::new(Ipv4Addr::from(u32::from_be(dest)), prefix).ok())
                .flatten()
        })
        .collect()
}

/// The first free host address of `range` (or of `subnet`), skipping the network and
/// broadcast addresses and everything in `used`.
pub fn next_free(
    subnet: &Ipv4Net,
    range: Option<&Ipv4Net>,
    used: &BTreeSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let within = range.unwrap_or(subnet);
    within
        .hosts()
        .find(|a| subnet.contains(a) && !used.contains(a) && *a != subnet.broadcast())
}

/// The first host address of a subnet: the default gateway.
pub fn first_host(subnet: &Ipv4Net) -> Ipv4Addr {
    subnet.hosts().next().unwrap_or(subnet.network())
}

/// An IPv6 subnet: host bits must be zero, at most a /126 (docker: "Invalid subnet").
pub fn parse_subnet6(text: &str) -> Result<Ipv6Net, IpamError> {
    let net: Ipv6Net = text
        .parse()
        .map_err(|_| IpamError::Cidr(text.to_string()))?;
    if net.addr() != net.network() {
        return Err(IpamError::Pool(format!(
            "Pool {text} has host bits set; the subnet is {}",
            net.trunc()
        )));
    }
    if net.prefix_len() > 126 {
        return Err(IpamError::Pool(format!(
            "Pool {text} is too small: a subnet needs at least a /126"
        )));
    }
    Ok(net)
}

pub fn parse_address6(text: &str) -> Result<Ipv6Addr, IpamError> {
    text.parse()
        .map_err(|_| IpamError::Address(text.to_string()))
}

pub fn overlaps6(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// `::1` of a subnet: the default IPv6 gateway (docker's).
pub fn first_host6(subnet: &Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) + 1)
}

/// The first free address of `range` (or of `subnet`) after the subnet's `::0`, skipping
/// `used`; bounded, so that a /64 full of holes is not walked for ever.
pub fn next_free6(
    subnet: &Ipv6Net,
    range: Option<&Ipv6Net>,
    used: &BTreeSet<Ipv6Addr>,
) -> Option<Ipv6Addr> {
    let within = range.unwrap_or(subnet);
    let first = u128::from(within.network()).max(u128::from(subnet.network()) + 1);
    let last = u128::from(within.broadcast());
    (first..=last)
        .take(used.len() + 1)
        .map(Ipv6Addr::from)
        .find(|a| subnet.contains(a) && !used.contains(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_subnets() {
        assert_eq!(
            parse_cidr("10.1.2.3/16").unwrap(),
            (Ipv4Addr::new(10, 1, 2, 3), "10.1.0.0/16".parse().unwrap())
        );
        assert_eq!(
            parse_subnet("10.1.0.0/33").unwrap_err().to_string(),
            "invalid CIDR address: 10.1.0.0/33"
        );
        assert_eq!(
            parse_subnet("nonsense").unwrap_err().to_string(),
            "invalid CIDR address: nonsense"
        );
        assert!(parse_subnet("10.1.0.1/16")
            .unwrap_err()
            .to_string()
            .contains("host bits"));
    }

    #[test]
    fn overlap_both_ways() {
        let a: Ipv4Net = "10.0.0.0/8".parse().unwrap();
        let b: Ipv4Net = "10.5.0.0/16".parse().unwrap();
        let c: Ipv4Net = "10.6.0.0/16".parse().unwrap();
        assert!(overlaps(&a, &b) && overlaps(&b, &a));
        assert!(!overlaps(&b, &c));
    }

    #[test]
    fn pools_hand_out_free_subnets() {
        let pools: Vec<AddressPool> = vec!["base=10.9.0.0/22,size=24".parse().unwrap()];
        let taken = vec![
            "10.9.0.0/24".parse().unwrap(),
            "10.9.2.0/23".parse().unwrap(),
        ];
        assert_eq!(
            free_subnet(&pools, &taken),
            Some("10.9.1.0/24".parse().unwrap())
        );
        let all = vec!["10.9.0.0/22".parse().unwrap()];
        assert_eq!(free_subnet(&pools, &all), None);
        assert!("base=10.0.0.0/16,size=8".parse::<AddressPool>().is_err());
        assert_eq!(default_pools()[0].base.to_string(), "172.17.0.0/16");
    }

    #[test]
    fn ipv6_subnets_gateways_and_free_addresses() {
        let net = parse_subnet6("fd00:1::/64").unwrap();
        assert_eq!(first_host6(&net), "fd00:1::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            parse_subnet6("fd00:zz::/64").unwrap_err().to_string(),
            "invalid CIDR address: fd00:zz::/64"
        );
        assert!(parse_subnet6("fd00::1/64").is_err());
        let used = BTreeSet::from([first_host6(&net), "fd00:1::2".parse().unwrap()]);
        assert_eq!(
            next_free6(&net, None, &used),
            Some("fd00:1::3".parse().unwrap())
        );
        let tiny = parse_subnet6("fd00:2::/126").unwrap();
        let full: BTreeSet<Ipv6Addr> = (1..4u128)
            .map(|i| Ipv6Addr::from(u128::from(tiny.network()) + i))
            .collect();
        assert_eq!(next_free6(&tiny, None, &full), None);
        assert!(overlaps6(&net, &parse_subnet6("fd00:1::/80").unwrap()));
    }

    #[test]
    fn next_free_skips_used_and_broadcast() {
        let net: Ipv4Net = "10.0.0.0/30".parse().unwrap();
        let mut used = BTreeSet::from([Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!(
            next_free(&net, None, &used),
            Some(Ipv4Addr::new(10, 0, 0, 2))
        );
        used.insert(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(next_free(&net, None, &used), None);
        let big: Ipv4Net = "10.1.0.0/16".parse().unwrap();
        let range: Ipv4Net = "10.1.5.0/24".parse().unwrap();
        assert_eq!(
            next_free(&big, Some(&range), &BTreeSet::new()),
            Some(Ipv4Addr::new(10, 1, 5, 1))
        );
    }
}
