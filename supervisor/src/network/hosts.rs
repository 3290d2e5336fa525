//! A container's `/etc/hosts`: docker's localhost lines, the `--add-host` entries
//! (`name:ip`, `name=ip`, `host-gateway`), and the container's own addresses with its host
//! name, container name and aliases.
use std::net::{IpAddr, Ipv4Addr};

/// docker's `--add-host` value that stands for the host's address on the default bridge.
pub const HOST_GATEWAY: &str = "host-gateway";

const LOCALHOST: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
ff02::2\tip6-allrouters\n";

/// One `--add-host` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    pub name: String,
    pub ip: IpAddr,
}

/// Parses `--add-host` values; `gateway` replaces `host-gateway`. The error is docker's line.
pub fn parse_extra(values: &[String], gateway: Ipv4Addr) -> Result<Vec<ExtraHost>, String> {
    values.iter().map(|v| parse_one(v, gateway)).collect()
}

fn parse_one(value: &str, gateway: Ipv4Addr) -> Result<ExtraHost, String> {
    // `name=ip` (docker 25+) first: an IPv6 address has colons of its own.
    let (name, ip) = value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .ok_or_else(|| format!("bad format for add-host: {value:?}"))?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("bad format for add-host: {value:?}"));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = if ip == HOST_GATEWAY {
        IpAddr::V4(gateway)
    } else {
        ip.parse()
            .map_err(|_| format!("invalid IP address in add-host: {ip:?}"))?
    };
    Ok(ExtraHost {
        name: name.to_string(),
        ip,
    })
}

/// The host's `/etc/hosts` on the host network, else docker's lines, then the entries and
/// `own` (address → names).
pub fn render(host_network: bool, extra: &[ExtraHost], own: &[(IpAddr, Vec<String>)]) -> String {
    let mut out = if host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        LOCALHOST.to_string()
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for e in extra {
        out.push_str(&format!("{}\t{}\n", e.ip, e.name));
    }
    for (ip, names) in own {
        let mut seen = std::collections::BTreeSet::new();
        let names: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !n.is_empty() && seen.insert(n.to_string()))
            .collect();
        if !names.is_empty() {
            out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 1);

    fn one(v: &str) -> Result<ExtraHost, String> {
        parse_one(v, GW)
    }

    #[test]
    fn add_host_forms() {
        assert_eq!(
            one("db:10.0.0.5").unwrap().ip,
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
        assert_eq!(one("db=10.0.0.5").unwrap().name, "db");
        assert_eq!(one("v6:::1").unwrap().ip, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            one("v6=[2001:db8::1]").unwrap().ip,
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(one("gw:host-gateway").unwrap().ip, IpAddr::V4(GW));
        assert_eq!(
            one("nocolon").unwrap_err(),
            "bad format for add-host: \"nocolon\""
        );
        assert_eq!(
            one(":1.2.3.4").unwrap_err(),
            "bad format for add-host: \":1.2.3.4\""
        );
        assert_eq!(
            one("db:300.1.1.1").unwrap_err(),
            "invalid IP address in add-host: \"300.1.1.1\""
        );
    }

    #[test]
    fn renders_localhost_entries_and_own_names() {
        let extra = parse_extra(&["db:10.0.0.5".into(), "gw:host-gateway".into()], GW).unwrap();
        let own = vec![(
            Ipv4Addr::new(10, 1, 0, 2).into(),
            vec!["abc".into(), "web".into(), "www".into(), "web".into()],
        )];
        let text = render(false, &extra, &own);
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"), "{text}");
        assert!(
            text.ends_with("10.0.0.5\tdb\n172.17.0.1\tgw\n10.1.0.2\tabc web www\n"),
            "{text}"
        );
    }
}
