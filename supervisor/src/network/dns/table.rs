//! Which names a container sees: on each user-defined network it is on, every endpoint's
//! container name, 12-char short id and aliases, bare or qualified with the network's name
//! (`web`, `web.backend`). Nothing of the networks it is not on, nothing of the default bridge.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::network::record::Network;

/// What the local table says about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name is a container's on one of the asker's networks (an IPv4 address per
    /// endpoint, and its IPv6 one on networks with IPv6).
    Addresses(Vec<IpAddr>),
    /// The name is local (a single label, or under one of the asker's network names) and
    /// nobody has it: NXDOMAIN at once, no forwarding.
    NoSuchName,
    /// Not ours: ask the upstream servers.
    Elsewhere,
}

/// The user-defined networks `asker` is on.
fn networks_of<'a>(
    networks: &'a HashMap<String, Network>,
    asker: &'a str,
) -> impl Iterator<Item = &'a Network> + 'a {
    networks
        .values()
        .filter(move |n| !n.predefined && n.endpoints.contains_key(asker))
}

/// Every name an endpoint answers to on its network (lower case, no duplicates).
pub fn names_of(id: &str, container_name: &str, aliases: &[String]) -> Vec<String> {
    let mut out = vec![container_name.to_ascii_lowercase()];
    for a in aliases {
        out.push(a.to_ascii_lowercase());
    }
    out.push(id[..12.min(id.len())].to_ascii_lowercase());
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|n| !n.is_empty() && seen.insert(n.clone()));
    out
}

/// Looks `name` (any case, with or without the final dot) up for the container `asker`.
pub fn lookup(networks: &HashMap<String, Network>, asker: &str, name: &str) -> Answer {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let mut found = Vec::new();
    let mut local = !name.contains('.');
    for n in networks_of(networks, asker) {
        let net = n.name.to_ascii_lowercase();
        let bare = match name.strip_suffix(&format!(".{net}")) {
            Some(b) => {
                local = true;
                b
            }
            None => name.as_str(),
        };
        for (id, e) in &n.endpoints {
            if !names_of(id, &e.container_name, &e.aliases)
                .iter()
                .any(|x| x == bare)
            {
                continue;
            }
            let ips = e.ip.map(IpAddr::V4).into_iter();
            for ip in ips.chain(e.ip6.filter(|_| n.ipv6).map(IpAddr::V6)) {
                if !found.contains(&ip) {
                    found.push(ip);
                }
            }
        }
    }
    found.sort();
    match (found.is_empty(), local) {
        (false, _) => Answer::Addresses(found),
        (true, true) => Answer::NoSuchName,
        (true, false) => Answer::Elsewhere,
    }
}

/// The reverse of [`lookup`]: `ip` on one of the asker's networks is `name.network`. `None`
/// with `local` true: an address of those subnets that nobody holds.
pub fn reverse(
    networks: &HashMap<String, Network>,
    asker: &str,
    ip: Ipv4Addr,
) -> (Option<String>, bool) {
    let mut local = false;
    for n in networks_of(networks, asker) {
        if n.pool_of(ip).is_none() {
            continue;
        }
        local = true;
        if let Some(e) = n.endpoints.values().find(|e| e.ip == Some(ip)) {
            return (Some(format!("{}.{}", e.container_name, n.name)), true);
        }
    }
    (None, local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::record::{Endpoint, Pool};
    use std::collections::BTreeMap;

    fn network(name: &str, subnet: &str, members: &[(&str, &str, u8, &[&str])]) -> Network {
        let subnet: ipnet::Ipv4Net = subnet.parse().unwrap();
        let endpoints = members
            .iter()
            .map(|(id, cname, host, aliases)| {
                let o = subnet.network().octets();
                let ip = Ipv4Addr::new(o[0], o[1], o[2], *host);
                (
                    id.to_string(),
                    Endpoint {
                        container_name: cname.to_string(),
                        endpoint_id: "e".into(),
                        ip: Some(ip),
                        static_ip: false,
                        ip6: None,
                        static_ip6: false,
                        mac: String::new(),
                        aliases: aliases.iter().map(|a| a.to_string()).collect(),
                        ports: Vec::new(),
                    },
                )
            })
            .collect();
        Network {
            id: format!("{name}-id"),
            name: name.into(),
            created: String::new(),
            driver: "bridge".into(),
            internal: false,
            attachable: false,
            ipv6: false,
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
            pools6: Vec::new(),
            pools: vec![Pool {
                subnet,
                gateway: Ipv4Addr::new(10, 0, 0, 1),
                ip_range: None,
                aux: BTreeMap::new(),
            }],
            endpoints,
            predefined: false,
        }
    }

    const A: &str = "aaaaaaaaaaaa1111";
    const B: &str = "bbbbbbbbbbbb2222";
    const C: &str = "cccccccccccc3333";

    fn table() -> HashMap<String, Network> {
        let front = network(
            "front",
            "10.1.0.0/24",
            &[(A, "web", 2, &["www", "Site"]), (B, "api", 3, &[])],
        );
        let back = network(
            "back",
            "10.2.0.0/24",
            &[(B, "api", 2, &[]), (C, "db", 3, &[])],
        );
        let mut bridge = network(
            "bridge",
            "10.3.0.0/24",
            &[(A, "web", 2, &[]), (C, "db", 4, &[])],
        );
        bridge.predefined = true;
        [front, back, bridge]
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect()
    }

    fn ip(s: &str) -> Answer {
        Answer::Addresses(s.split(',').map(|a| a.parse().unwrap()).collect())
    }

    #[test]
    fn ipv6_addresses_come_with_the_ipv4_ones_on_ipv6_networks_only() {
        let mut t = table();
        let front = t.values_mut().find(|n| n.name == "front").unwrap();
        for e in front.endpoints.values_mut() {
            e.ip6 = Some(
                format!("fd00::{}", e.ip.unwrap().octets()[3])
                    .parse()
                    .unwrap(),
            );
        }
        assert_eq!(lookup(&t, A, "api"), ip("10.1.0.3"), "EnableIPv6 is off");
        t.values_mut().find(|n| n.name == "front").unwrap().ipv6 = true;
        assert_eq!(lookup(&t, A, "api"), ip("10.1.0.3,fd00::3"));
    }

    #[test]
    fn names_aliases_and_short_ids_on_shared_networks_only() {
        let t = table();
        assert_eq!(lookup(&t, A, "api"), ip("10.1.0.3"));
        assert_eq!(lookup(&t, A, "WWW."), ip("10.1.0.2"));
        assert_eq!(lookup(&t, A, "site"), ip("10.1.0.2"));
        assert_eq!(lookup(&t, A, "bbbbbbbbbbbb"), ip("10.1.0.3"));
        assert_eq!(lookup(&t, A, "api.front"), ip("10.1.0.3"));
        // db shares only the default bridge with web: not resolvable there.
        assert_eq!(lookup(&t, A, "db"), Answer::NoSuchName);
        assert_eq!(lookup(&t, A, "db.back"), Answer::Elsewhere);
        assert_eq!(lookup(&t, A, "nobody.front"), Answer::NoSuchName);
        assert_eq!(lookup(&t, A, "example.com"), Answer::Elsewhere);
        // api is on both networks: both addresses when asked from one on both.
        assert_eq!(lookup(&t, B, "api"), ip("10.1.0.3,10.2.0.2"));
        assert_eq!(lookup(&t, C, "api"), ip("10.2.0.2"));
        assert_eq!(lookup(&t, C, "web"), Answer::NoSuchName);
        // A container on no user network has no local names.
        assert_eq!(lookup(&t, "zzzz", "web"), Answer::NoSuchName);
    }

    #[test]
    fn reverse_names_on_shared_networks() {
        let t = table();
        let q = |a: &str, ip: &str| reverse(&t, a, ip.parse().unwrap());
        assert_eq!(q(A, "10.1.0.3"), (Some("api.front".into()), true));
        assert_eq!(q(A, "10.1.0.99"), (None, true));
        assert_eq!(q(A, "10.2.0.3"), (None, false));
        assert_eq!(q(A, "10.3.0.4"), (None, false));
    }

    #[test]
    fn names_of_dedups_and_lowers() {
        assert_eq!(
            names_of(A, "Web", &["web".into(), "aaaaaaaaaaaa".into(), "x".into()]),
            vec!["web", "aaaaaaaaaaaa", "x"]
        );
    }
}
