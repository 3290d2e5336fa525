//! `-p/--publish`, `-P`, `--expose` of `run`/`create` (docker's client-side parsing and
//! errors), `berth port`, and the PORTS column of `ps`.
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::client::Body;
use super::{encode, Context, Exit};

/// A bad `-p` or `--expose` value, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("no port specified: {0}<empty>")]
    Empty(String),
    #[error("invalid containerPort: {0}")]
    ContainerPort(String),
    #[error("invalid hostPort: {0}")]
    HostPort(String),
    #[error("invalid proto: {0}")]
    Proto(String),
    #[error("invalid IP address: {0}")]
    Ip(String),
    #[error("invalid ranges specified for container and host Ports: {0} and {1}")]
    Ranges(String, String),
}

/// `80`, `8000-8010`: (first, last).
fn range(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a > 0 && a <= b).then_some((a, b))
}

fn split_proto(spec: &str) -> Result<(&str, &str), SpecError> {
    let (port, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    match proto.to_ascii_lowercase().as_str() {
        "tcp" | "udp" | "sctp" => Ok((port, proto)),
        _ => Err(SpecError::Proto(proto.to_string())),
    }
}

/// `[ip:][hostPort:]containerPort[/proto]`: the `ExposedPorts` keys and `PortBindings` it
/// makes (one per port of a range).
pub fn parse_publish(spec: &str) -> Result<Vec<(String, Value)>, SpecError> {
    let (rest, proto) = split_proto(spec)?;
    let (ip, host, container) = match rest.rsplitn(3, ':').collect::<Vec<_>>().as_slice() {
        [c] => ("", "", *c),
        [c, h] => ("", *h, *c),
        [c, h, ip] => (*ip, *h, *c),
        _ => unreachable!("rsplitn(3) yields 1 to 3 parts"),
    };
    if container.is_empty() {
        return Err(SpecError::Empty(String::new()));
    }
    let bare_ip = ip.trim_start_matches('[').trim_end_matches(']');
    if !bare_ip.is_empty() && bare_ip.parse::<std::net::IpAddr>().is_err() {
        return Err(SpecError::Ip(bare_ip.to_string()));
    }
    let (c1, c2) = range(container).ok_or_else(|| SpecError::ContainerPort(container.into()))?;
    let hosts = match host {
        "" => None,
        h => Some(range(h).ok_or_else(|| SpecError::HostPort(h.into()))?),
    };
    if let Some((h1, h2)) = hosts {
        if c2 - c1 != h2 - h1 && c1 != c2 {
            return Err(SpecError::Ranges(container.into(), host.into()));
        }
    }
    let mut out = Vec::new();
    for (i, port) in (c1..=c2).enumerate() {
        let host_port = match hosts {
            None => String::new(),
            // One container port, a host range: the daemon picks one of the range.
            Some((h1, h2)) if c1 == c2 && h1 != h2 => format!("{h1}-{h2}"),
            Some((h1, _)) => (h1 + i as u16).to_string(),
        };
        out.push((
            format!("{port}/{proto}"),
            json!({"HostIp": bare_ip, "HostPort": host_port}),
        ));
    }
    Ok(out)
}

/// `--expose 80`, `--expose 7000-7002/udp`.
pub fn parse_expose(spec: &str) -> Result<Vec<String>, SpecError> {
    let (port, proto) = split_proto(spec)?;
    let (a, b) = range(port).ok_or_else(|| SpecError::ContainerPort(port.into()))?;
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// Fills `ExposedPorts`, `HostConfig.PortBindings` and `PublishAllPorts` of a create body.
pub fn fill_body(
    body: &mut Value,
    publish: &[String],
    expose: &[String],
    publish_all: bool,
) -> Result<(), SpecError> {
    let mut exposed = serde_json::Map::new();
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for spec in publish {
        for (key, binding) in parse_publish(spec)? {
            exposed.insert(key.clone(), json!({}));
            bindings.entry(key).or_default().push(binding);
        }
    }
    for spec in expose {
        for key in parse_expose(spec)? {
            exposed.insert(key, json!({}));
        }
    }
    if !exposed.is_empty() {
        body["ExposedPorts"] = Value::Object(exposed);
    }
    if !bindings.is_empty() {
        body["HostConfig"]["PortBindings"] = json!(bindings);
    }
    body["HostConfig"]["PublishAllPorts"] = json!(publish_all);
    Ok(())
}

/// `(port, proto)` of a `NetworkSettings.Ports` key.
fn key_parts(key: &str) -> (u32, String) {
    let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    (p.parse().unwrap_or(0), proto.to_string())
}

/// docker's `port` lines: `80/tcp -> 0.0.0.0:8080`, sorted by port.
pub fn port_lines(ports: &Value, only: Option<&str>) -> Vec<String> {
    let mut keys: Vec<&String> = ports
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .collect();
    keys.sort_by_key(|k| key_parts(k));
    let wanted = only.map(|o| {
        if o.contains('/') {
            o.to_string()
        } else {
            format!("{o}/tcp")
        }
    });
    let mut out = Vec::new();
    for key in keys {
        if wanted.as_ref().is_some_and(|w| w != key) {
            continue;
        }
        for b in ports[key].as_array().into_iter().flatten() {
            let ip = b["HostIp"].as_str().unwrap_or("");
            let port = b["HostPort"].as_str().unwrap_or("");
            let host = join_host(ip, port);
            out.push(match only {
                Some(_) => host,
                None => format!("{key} -> {host}"),
            });
        }
    }
    out
}

/// `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`.
pub fn port(ctx: &Context, container: &str, only: Option<&str>) -> anyhow::Result<()> {
    let path = format!("/containers/{}/json", encode(container));
    let c: Value = ctx
        .client
        .request("GET", &path, &[], Body::None)?
        .ok()?
        .json()?;
    let lines = port_lines(&c["NetworkSettings"]["Ports"], only);
    if lines.is_empty() {
        if let Some(p) = only {
            eprintln!("Error: No public port '{p}' published for {container}");
            return Err(Exit(1).into());
        }
    }
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

/// One summary port: (ip, public, private, proto).
fn summary_port(p: &Value) -> (String, Option<u64>, u64, String) {
    (
        p["IP"].as_str().unwrap_or("").to_string(),
        p["PublicPort"].as_u64(),
        p["PrivatePort"].as_u64().unwrap_or(0),
        p["Type"].as_str().unwrap_or("tcp").to_string(),
    )
}

/// docker's PORTS column (its `DisplayablePorts`): sorted by private port; ports published
/// on the same number fold into ranges per address and protocol
/// (`0.0.0.0:8000-8001->8000-8001/tcp`), exposed-only ones too (`443/tcp`); the others
/// follow one by one (`0.0.0.0:8080->80/tcp`).
pub fn ps_column(ports: &Value) -> String {
    let mut list: Vec<_> = ports
        .as_array()
        .into_iter()
        .flatten()
        .map(summary_port)
        .collect();
    list.sort_by(|a, b| (a.2, &a.0, a.1, &a.3).cmp(&(b.2, &b.0, b.1, &b.3)));
    let group = |key: &str, first: u64, last: u64| {
        let span = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        match key.rsplit_once('/') {
            Some((ip, proto)) => format!("{}->{span}/{proto}", join_host(ip, &span)),
            None => format!("{span}/{key}"),
        }
    };
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    let mut groups: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (ip, public, private, proto) in list {
        let mut key = proto.clone();
        if !ip.is_empty() {
            let public = public.unwrap_or(0);
            if public != private {
                mappings.push(format!(
                    "{}->{private}/{proto}",
                    join_host(&ip, &public.to_string())
                ));
                continue;
            }
            key = format!("{ip}/{proto}");
        }
        match groups.get_mut(&key) {
            None => {
                groups.insert(key.clone(), (private, private));
                order.push(key);
            }
            Some(g) if g.1 + 1 == private => g.1 = private,
            Some(g) => {
                result.push(group(&key, g.0, g.1));
                *g = (private, private);
            }
        }
    }
    for key in order {
        let (first, last) = groups[&key];
        result.push(group(&key, first, last));
    }
    result.extend(mappings);
    result.join(", ")
}

/// `ip:port`, with an IPv6 address in brackets (`[::]:8080`).
pub fn join_host(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_make_docker_bindings() {
        assert_eq!(
            parse_publish("127.0.0.1:8080:80/udp").unwrap(),
            vec![(
                "80/udp".to_string(),
                json!({"HostIp": "127.0.0.1", "HostPort": "8080"})
            )]
        );
        assert_eq!(
            parse_publish("80").unwrap(),
            vec![("80/tcp".to_string(), json!({"HostIp": "", "HostPort": ""}))]
        );
        let range = parse_publish("8000-8001:80-81").unwrap();
        assert_eq!(range[1].0, "81/tcp");
        assert_eq!(range[1].1["HostPort"], "8001");
        assert_eq!(
            parse_publish("[::1]:8081:80").unwrap(),
            vec![(
                "80/tcp".to_string(),
                json!({"HostIp": "::1", "HostPort": "8081"})
            )]
        );
        let one_of = parse_publish("9000-9010:90").unwrap();
        assert_eq!(one_of[0].1["HostPort"], "9000-9010");
    }

    #[test]
    fn bad_specs_say_what_docker_says() {
        for (spec, message) in [
            ("", "no port specified: <empty>"),
            ("abc", "invalid containerPort: abc"),
            ("80/xyz", "invalid proto: xyz"),
            ("8080:abc", "invalid containerPort: abc"),
            ("abc:80", "invalid hostPort: abc"),
            ("70000:80", "invalid hostPort: 70000"),
            ("8080-abc:80", "invalid hostPort: 8080-abc"),
            ("1.2.3:80:80", "invalid IP address: 1.2.3"),
            ("[fd00::zz]:1:2", "invalid IP address: fd00::zz"),
            (
                "8080-8081:80-82",
                "invalid ranges specified for container and host Ports: 80-82 and 8080-8081",
            ),
        ] {
            assert_eq!(
                parse_publish(spec).unwrap_err().to_string(),
                message,
                "{spec:?}"
            );
        }
    }

    #[test]
    fn the_ps_column_folds_ranges_like_docker() {
        let ports = json!([
            {"IP": "0.0.0.0", "PrivatePort": 8001, "PublicPort": 8001, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 8000, "PublicPort": 8000, "Type": "tcp"},
            {"PrivatePort": 443, "Type": "tcp"},
            {"IP": "127.0.0.1", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        ]);
        assert_eq!(
            ps_column(&ports),
            "443/tcp, 0.0.0.0:8000-8001->8000-8001/tcp, 127.0.0.1:5353->53/udp, 0.0.0.0:8080->80/tcp"
        );
    }

    #[test]
    fn port_lines_are_docker_s() {
        let ports = json!({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                           "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
                           "443/tcp": null});
        assert_eq!(
            port_lines(&ports, None),
            vec!["53/udp -> 127.0.0.1:5353", "80/tcp -> 0.0.0.0:8080"]
        );
        assert_eq!(port_lines(&ports, Some("80")), vec!["0.0.0.0:8080"]);
    }
}
