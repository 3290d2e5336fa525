//! Published ports: docker's `PortBindings`/`ExposedPorts`/`PublishAllPorts` read and
//! checked, host ports allocated (a given one, one of a range, or an ephemeral one) and held
//! with a bound socket of the daemon's, so that no other process (nor another container)
//! takes a port while its DNAT rule points it at a container. Nothing listens on those
//! sockets but the IPv6 ones that [`super::forward`] serves: the kernel's NAT rules carry
//! the rest, with no proxy process.
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use socket2::{Domain, Socket, Type};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A published port of a running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub proto: Proto,
    /// The host address it is published on; `None`: every address (`0.0.0.0`).
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    /// On every address, and on every IPv6 one too (`[::]`): a host with IPv6.
    #[serde(default)]
    pub also_v6: bool,
}

impl PortMapping {
    /// docker's `HostIp`s of the mapping: `0.0.0.0` and `::` for every address.
    pub fn host_ip_texts(&self) -> Vec<String> {
        match self.host_ip {
            Some(ip) => vec![ip.to_string()],
            None if self.also_v6 => vec!["0.0.0.0".into(), "::".into()],
            None => vec!["0.0.0.0".into()],
        }
    }
}

/// What a container asks for one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    pub proto: Proto,
    pub container_port: u16,
    pub host_ip: Option<IpAddr>,
    /// `None`: an ephemeral port; else the first free one of this range.
    pub host_ports: Option<(u16, u16)>,
}

/// A bad port specification (docker's wording), or a port that cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("invalid port specification: {0:?}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("Bind for {ip}:{port} failed: port is already allocated")]
    Allocated { ip: String, port: String },
    #[error("Bind for {ip}:{port} failed: {message}")]
    Bind {
        ip: String,
        port: String,
        message: String,
    },
}

/// `80`, `80/tcp`, `53/udp`: a container port key of `ExposedPorts`/`PortBindings`.
pub fn parse_port_key(key: &str) -> Result<(u16, Proto), PortError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" | "" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => {
            return Err(PortError::Unsupported(format!(
                "port {key}: sctp is not supported by berth"
            )))
        }
        _ => return Err(PortError::Invalid(key.to_string())),
    };
    Ok((
        parse_port(port).ok_or_else(|| PortError::Invalid(port.into()))?,
        proto,
    ))
}

fn parse_port(text: &str) -> Option<u16> {
    text.parse::<u16>().ok().filter(|p| *p > 0)
}

/// `""` (ephemeral), `8080`, `8000-8010`.
fn parse_host_ports(text: &str) -> Result<Option<(u16, u16)>, PortError> {
    let bad = || PortError::Invalid(text.to_string());
    if text.is_empty() || text == "0" {
        return Ok(None);
    }
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let (a, b) = (
        parse_port(a).ok_or_else(bad)?,
        parse_port(b).ok_or_else(bad)?,
    );
    if a > b {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

/// `""` and `0.0.0.0`: every address (`None`); `::` is every IPv6 one only.
fn parse_host_ip(text: &str) -> Result<Option<IpAddr>, PortError> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    if text.is_empty() {
        return Ok(None);
    }
    let ip: IpAddr = text
        .parse()
        .map_err(|_| PortError::Invalid(text.to_string()))?;
    Ok((ip != Ipv4Addr::UNSPECIFIED).then_some(ip))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Binding {
    host_ip: Option<String>,
    host_port: Option<String>,
}

/// The ports a container publishes: its `PortBindings`, and with `PublishAllPorts` every
/// `ExposedPorts` entry not bound there, on an ephemeral port. Checked whole.
pub fn requests(
    port_bindings: &Value,
    exposed: &Value,
    publish_all: bool,
) -> Result<Vec<PortRequest>, PortError> {
    let bindings: BTreeMap<String, Option<Vec<Binding>>> = match port_bindings {
        Value::Null => BTreeMap::new(),
        v => serde_json::from_value(v.clone())
            .map_err(|e| PortError::Invalid(format!("PortBindings: {e}")))?,
    };
    let mut out = Vec::new();
    let mut bound = Vec::new();
    for (key, list) in &bindings {
        let (container_port, proto) = parse_port_key(key)?;
        bound.push((container_port, proto));
        for b in list.iter().flatten() {
            out.push(PortRequest {
                proto,
                container_port,
                host_ip: parse_host_ip(b.host_ip.as_deref().unwrap_or(""))?,
                host_ports: parse_host_ports(b.host_port.as_deref().unwrap_or(""))?,
            });
        }
    }
    if publish_all {
        for key in exposed.as_object().into_iter().flat_map(|m| m.keys()) {
            let (container_port, proto) = parse_port_key(key)?;
            if !bound.contains(&(container_port, proto)) {
                out.push(PortRequest {
                    proto,
                    container_port,
                    host_ip: None,
                    host_ports: None,
                });
            }
        }
    }
    Ok(out)
}

/// Checks a create request's `PortBindings` (the daemon's side of docker's checks).
pub fn check(port_bindings: &Value, exposed: &Value) -> Result<(), PortError> {
    requests(port_bindings, exposed, true).map(|_| ())
}

/// A host port held by the daemon: its socket on the address it is published on, and for
/// every address (`0.0.0.0`) also one on `[::]` (`IPV6_V6ONLY`), so that nothing else takes
/// the IPv6 port either. Once [`Held::forward`] is called, the IPv6 socket is served by the
/// daemon's forwarder.
#[derive(Debug)]
pub struct Held {
    proto: Proto,
    _v4: Option<Socket>,
    v6: Option<Socket>,
    _forwarder: Option<super::forward::Forwarder>,
}

impl Held {
    /// From now on, what reaches the IPv6 socket goes to `to` (the container's address):
    /// the clients that NAT rules do not carry.
    pub fn forward(&mut self, to: SocketAddr) {
        let Some(socket) = self.v6.take() else {
            return;
        };
        let forwarder = match self.proto {
            Proto::Tcp => super::forward::tcp(socket, to),
            Proto::Udp => super::forward::udp(socket, to),
        };
        match forwarder {
            Ok(f) => self._forwarder = Some(f),
            Err(e) => tracing::warn!(to = %to, error = %e, "no IPv6 forwarder"),
        }
    }
}

/// A bind that failed, with the address it was for (docker's text: `0.0.0.0`, `[::]`).
#[derive(Debug)]
struct BindFailure {
    ip: String,
    error: std::io::Error,
}

fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    }
}

/// A socket bound to `ip:port`; an IPv6 one for IPv6 only (it leaves `0.0.0.0:port` to
/// its v4 twin), and listening if TCP (the forwarder accepts on it).
fn bind_one(proto: Proto, ip: IpAddr, port: u16) -> Result<(Socket, u16), BindFailure> {
    let failure = |error| BindFailure {
        ip: ip_text(ip),
        error,
    };
    let kind = match proto {
        Proto::Tcp => Type::STREAM,
        Proto::Udp => Type::DGRAM,
    };
    let addr = SocketAddr::new(ip, port);
    let s = Socket::new(Domain::for_address(addr), kind, None).map_err(failure)?;
    if ip.is_ipv6() {
        s.set_only_v6(true).map_err(failure)?;
        // It listens, for the forwarder: the connections it closed first must not keep
        // the port from the next container in TIME_WAIT. A listening socket still
        // keeps every other socket off the port, SO_REUSEADDR or not.
        if proto == Proto::Tcp {
            s.set_reuse_address(true).map_err(failure)?;
        }
    }
    s.bind(&addr.into()).map_err(failure)?;
    if ip.is_ipv6() && proto == Proto::Tcp {
        s.listen(1024).map_err(failure)?;
    }
    let got = s
        .local_addr()
        .map_err(failure)?
        .as_socket()
        .map_or(port, |a| a.port());
    Ok((s, got))
}

/// Tries for an ephemeral port free on both `0.0.0.0` and `[::]` this many times.
const EPHEMERAL_TRIES: usize = 16;

fn bind(proto: Proto, ip: Option<IpAddr>, port: u16) -> Result<(Held, u16), BindFailure> {
    let held = |v4, v6| Held {
        proto,
        _v4: v4,
        v6,
        _forwarder: None,
    };
    match ip {
        Some(ip @ IpAddr::V4(_)) => {
            return bind_one(proto, ip, port).map(|(s, got)| (held(Some(s), None), got))
        }
        Some(ip @ IpAddr::V6(_)) => {
            return bind_one(proto, ip, port).map(|(s, got)| (held(None, Some(s)), got))
        }
        None => {}
    }
    let tries = if port == 0 { EPHEMERAL_TRIES } else { 1 };
    let mut failure = None;
    for _ in 0..tries {
        let (v4, got) = bind_one(proto, Ipv4Addr::UNSPECIFIED.into(), port)?;
        let v6 = match bind_one(proto, Ipv6Addr::UNSPECIFIED.into(), got) {
            Ok((v6, _)) => Some(v6),
            Err(f) if f.error.kind() == std::io::ErrorKind::AddrInUse => {
                failure = Some(f);
                continue;
            }
            // A host without IPv6 (disabled, or no such family): the v4 port is all
            // there is.
            Err(f) => {
                tracing::debug!(port = got, error = %f.error, "no [::] port held");
                None
            }
        };
        return Ok((held(Some(v4), v6), got));
    }
    Err(failure.expect("tried at least once"))
}

fn bind_error(port: String, f: BindFailure) -> PortError {
    let ip = f.ip;
    if f.error.kind() == std::io::ErrorKind::AddrInUse {
        PortError::Allocated { ip, port }
    } else {
        PortError::Bind {
            ip,
            port,
            message: f.error.to_string(),
        }
    }
}

/// Allocates and holds the host port of one request.
pub fn allocate(r: &PortRequest) -> Result<(PortMapping, Held), PortError> {
    let mapping = |host_port, held: Held| {
        let m = PortMapping {
            proto: r.proto,
            host_ip: r.host_ip,
            host_port,
            container_port: r.container_port,
            also_v6: r.host_ip.is_none() && held.v6.is_some(),
        };
        (m, held)
    };
    let Some((first, last)) = r.host_ports else {
        let (held, port) = bind(r.proto, r.host_ip, 0).map_err(|e| bind_error("0".into(), e))?;
        return Ok(mapping(port, held));
    };
    let mut last_error = None;
    for port in first..=last {
        match bind(r.proto, r.host_ip, port) {
            Ok((held, _)) => return Ok(mapping(port, held)),
            Err(e) => last_error = Some(e),
        }
    }
    let range = if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    };
    Err(bind_error(
        range,
        last_error.unwrap_or_else(|| BindFailure {
            ip: ip_text(r.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED.into())),
            error: std::io::ErrorKind::AddrInUse.into(),
        }),
    ))
}

/// Holds the port of a mapping made before (a restarted daemon taking its ports back).
pub fn hold(m: &PortMapping) -> std::io::Result<Held> {
    bind(m.proto, m.host_ip, m.host_port)
        .map(|(h, _)| h)
        .map_err(|f| std::io::Error::new(f.error.kind(), format!("{}: {}", f.ip, f.error)))
}

/// Allocates every request, or none.
pub fn allocate_all(reqs: &[PortRequest]) -> Result<(Vec<PortMapping>, Vec<Held>), PortError> {
    let mut mappings = Vec::new();
    let mut held = Vec::new();
    for r in reqs {
        let (m, h) = allocate(r)?;
        mappings.push(m);
        held.push(h);
    }
    Ok((mappings, held))
}

/// Docker's `NetworkSettings.Ports`: every exposed or published port, with its bindings
/// (`null` for one that is exposed only).
pub fn settings_ports(exposed: &Value, port_bindings: &Value, mappings: &[PortMapping]) -> Value {
    let mut out = serde_json::Map::new();
    let keys = exposed
        .as_object()
        .into_iter()
        .chain(port_bindings.as_object())
        .flat_map(|m| m.keys());
    for key in keys {
        if let Ok((port, proto)) = parse_port_key(key) {
            out.insert(format!("{port}/{}", proto.as_str()), Value::Null);
        }
    }
    for m in mappings {
        let key = format!("{}/{}", m.container_port, m.proto.as_str());
        let entry = out.entry(key).or_insert(Value::Null);
        if !entry.is_array() {
            *entry = Value::Array(Vec::new());
        }
        if let Value::Array(list) = entry {
            for ip in m.host_ip_texts() {
                list.push(serde_json::json!({
                    "HostIp": ip,
                    "HostPort": m.host_port.to_string(),
                }));
            }
        }
    }
    Value::Object(out)
}

/// The `Ports` of a container summary (`GET /containers/json`).
pub fn summary_ports(exposed: &Value, mappings: &[PortMapping]) -> Value {
    let mut out: Vec<Value> = mappings
        .iter()
        .flat_map(|m| {
            m.host_ip_texts().into_iter().map(|ip| {
                serde_json::json!({
                    "IP": ip,
                    "PrivatePort": m.container_port,
                    "PublicPort": m.host_port,
                    "Type": m.proto.as_str(),
                })
            })
        })
        .collect();
    for key in exposed.as_object().into_iter().flat_map(|m| m.keys()) {
        let Ok((port, proto)) = parse_port_key(key) else {
            continue;
        };
        if !mappings
            .iter()
            .any(|m| m.container_port == port && m.proto == proto)
        {
            out.push(serde_json::json!({ "PrivatePort": port, "Type": proto.as_str() }));
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bindings_and_publish_all_make_requests() {
        let reqs = requests(
            &json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                    "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
                    "90": [{"HostPort": "9000-9010"}]}),
            &json!({"80/tcp": {}, "443/tcp": {}}),
            true,
        )
        .unwrap();
        assert_eq!(reqs.len(), 4, "{reqs:?}");
        assert!(reqs.contains(&PortRequest {
            proto: Proto::Udp,
            container_port: 53,
            host_ip: Some(Ipv4Addr::LOCALHOST.into()),
            host_ports: None
        }));
        assert!(reqs.contains(&PortRequest {
            proto: Proto::Tcp,
            container_port: 90,
            host_ip: None,
            host_ports: Some((9000, 9010))
        }));
        assert!(reqs.contains(&PortRequest {
            proto: Proto::Tcp,
            container_port: 443,
            host_ip: None,
            host_ports: None
        }));
    }

    #[test]
    fn bad_specs_are_refused_with_the_value() {
        for (bindings, bad) in [
            (json!({"abc/tcp": []}), "abc"),
            (json!({"80/xyz": []}), "80/xyz"),
            (json!({"0/tcp": []}), "0"),
            (json!({"80/tcp": [{"HostPort": "abc"}]}), "abc"),
            (json!({"80/tcp": [{"HostPort": "70000"}]}), "70000"),
            (json!({"80/tcp": [{"HostPort": "90-80"}]}), "90-80"),
            (
                json!({"80/tcp": [{"HostIp": "1.2.3", "HostPort": "80"}]}),
                "1.2.3",
            ),
        ] {
            let e = requests(&bindings, &Value::Null, false).unwrap_err();
            assert_eq!(e, PortError::Invalid(bad.into()), "{bindings}");
            assert_eq!(
                e.to_string(),
                format!("invalid port specification: {bad:?}")
            );
        }
    }

    #[test]
    fn a_port_in_use_is_already_allocated_and_ephemeral_ports_differ() {
        let (first, _held) = allocate(&PortRequest {
            proto: Proto::Udp,
            container_port: 53,
            host_ip: Some(Ipv4Addr::LOCALHOST.into()),
            host_ports: None,
        })
        .unwrap();
        assert_ne!(first.host_port, 0);
        let again = PortRequest {
            proto: Proto::Udp,
            container_port: 53,
            host_ip: Some(Ipv4Addr::LOCALHOST.into()),
            host_ports: Some((first.host_port, first.host_port)),
        };
        let e = allocate(&again).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "Bind for 127.0.0.1:{} failed: port is already allocated",
                first.host_port
            )
        );
    }

    #[test]
    fn every_address_holds_the_v6_port_too_and_a_taken_v6_port_is_allocated() {
        for proto in [Proto::Tcp, Proto::Udp] {
            let every = |host_ports| PortRequest {
                proto,
                container_port: 80,
                host_ip: None,
                host_ports,
            };
            let (m, held) = allocate(&every(None)).unwrap();
            // [::]:P is held (IPV6_V6ONLY): no one else binds it.
            assert!(m.also_v6, "{m:?}");
            assert_eq!(
                bind_one(proto, Ipv6Addr::UNSPECIFIED.into(), m.host_port)
                    .unwrap_err()
                    .error
                    .kind(),
                std::io::ErrorKind::AddrInUse
            );
            drop(held);
            // Someone else on [::]:P only: docker's text for the v6 address, nothing held.
            let other = bind_one(proto, Ipv6Addr::UNSPECIFIED.into(), m.host_port).unwrap();
            let e = allocate(&every(Some((m.host_port, m.host_port)))).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "Bind for [::]:{} failed: port is already allocated",
                    m.host_port
                )
            );
            bind_one(proto, Ipv4Addr::UNSPECIFIED.into(), m.host_port)
                .expect("the v4 port was let go");
            drop(other);
        }
    }

    #[test]
    fn settings_show_exposed_ports_as_null_and_bindings_as_lists() {
        let mut m = PortMapping {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            also_v6: false,
        };
        let exposed = json!({"80/tcp": {}, "443/tcp": {}});
        let v = settings_ports(&exposed, &Value::Null, std::slice::from_ref(&m));
        assert_eq!(
            v,
            json!({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": null})
        );
        // Held on [::] too, and one on ::1: listed as dockerd lists them.
        m.also_v6 = true;
        let lo6 = PortMapping {
            host_ip: Some(Ipv6Addr::LOCALHOST.into()),
            host_port: 8081,
            also_v6: false,
            ..m.clone()
        };
        let v = settings_ports(&exposed, &Value::Null, &[m.clone(), lo6.clone()]);
        assert_eq!(
            v["80/tcp"],
            json!([{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"},
                   {"HostIp": "::1", "HostPort": "8081"}])
        );
        let ips: Vec<Value> = summary_ports(&Value::Null, &[m, lo6])
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["IP"].clone())
            .collect();
        assert_eq!(ips, [json!("0.0.0.0"), json!("::"), json!("::1")]);
    }

    #[test]
    fn v6_host_addresses_are_taken_and_bad_ones_refused() {
        let reqs = requests(
            &json!({"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}, {"HostIp": "[::]", "HostPort": "8081"},
                               {"HostIp": "0.0.0.0", "HostPort": "8082"}]}),
            &Value::Null,
            false,
        )
        .unwrap();
        let ips: Vec<Option<IpAddr>> = reqs.iter().map(|r| r.host_ip).collect();
        assert_eq!(
            ips,
            [
                Some(Ipv6Addr::LOCALHOST.into()),
                Some(Ipv6Addr::UNSPECIFIED.into()),
                None
            ]
        );
        let e = requests(
            &json!({"80/tcp": [{"HostIp": "fd00::zz", "HostPort": "1"}]}),
            &Value::Null,
            false,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "invalid port specification: \"fd00::zz\"");
    }

    /// A server on 127.0.0.1 standing for a container: TCP echoes a line, UDP a datagram.
    fn echo_server(proto: Proto) -> SocketAddr {
        use std::io::{BufRead, Write};
        match proto {
            Proto::Tcp => {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                std::thread::spawn(move || {
                    for c in l.incoming().flatten() {
                        let mut line = String::new();
                        let mut r = std::io::BufReader::new(&c);
                        if r.read_line(&mut line).is_ok() {
                            let _ = (&c).write_all(format!("echo:{line}").as_bytes());
                        }
                    }
                });
                addr
            }
            Proto::Udp => {
                let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let addr = s.local_addr().unwrap();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok((n, from)) = s.recv_from(&mut buf) {
                        let mut answer = b"echo:".to_vec();
                        answer.extend_from_slice(&buf[..n]);
                        let _ = s.send_to(&answer, from);
                    }
                });
                addr
            }
        }
    }

    /// What `[::1]:port` answers to `message`.
    fn ask_v6_loopback(proto: Proto, port: u16, message: &str) -> String {
        use std::io::{Read, Write};
        let to = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        let timeout = Some(std::time::Duration::from_secs(5));
        match proto {
            Proto::Tcp => {
                let mut c = std::net::TcpStream::connect(to).unwrap();
                c.set_read_timeout(timeout).unwrap();
                c.write_all(format!("{message}\n").as_bytes()).unwrap();
                let mut got = String::new();
                c.read_to_string(&mut got).unwrap();
                got
            }
            Proto::Udp => {
                let c = std::net::UdpSocket::bind("[::1]:0").unwrap();
                c.set_read_timeout(timeout).unwrap();
                c.send_to(message.as_bytes(), to).unwrap();
                let mut buf = [0u8; 64];
                let n = c.recv(&mut buf).unwrap();
                String::from_utf8_lossy(&buf[..n]).into_owned()
            }
        }
    }

    #[test]
    fn ipv6_clients_are_forwarded_and_a_dropped_forwarder_lets_the_port_go() {
        for proto in [Proto::Tcp, Proto::Udp] {
            let container = echo_server(proto);
            // Again and again: the port must be free the moment drop returns, not soon after.
            for _ in 0..10 {
                for host_ip in [None, Some(Ipv6Addr::LOCALHOST.into())] {
                    let (m, mut held) = allocate(&PortRequest {
                        proto,
                        container_port: container.port(),
                        host_ip,
                        host_ports: None,
                    })
                    .unwrap();
                    held.forward(container);
                    let want = match proto {
                        Proto::Tcp => "echo:ping\n",
                        Proto::Udp => "echo:ping",
                    };
                    assert_eq!(ask_v6_loopback(proto, m.host_port, "ping"), want, "{m:?}");
                    drop(held);
                    let ip = host_ip.unwrap_or(Ipv6Addr::UNSPECIFIED.into());
                    bind_one(proto, ip, m.host_port).expect("the port is free once dropped");
                }
            }
        }
    }
}
