//! berth's own nftables tables, `ip berth`: outbound masquerade, `--internal`, isolation
//! between bridge networks, and the DNAT rules of published ports; and `ip6 berth`, there
//! only while a network has IPv6: the same masquerade, `--internal` and isolation for IPv6,
//! and the DNAT rules of ports published on every address (as docker's ip6tables does) to
//! the containers' IPv6 addresses.
//!
//! The table is derived whole from the network records (networks, and the port mappings of
//! their endpoints) and replaced in one `nft` transaction on every change, so it is never
//! half-made, a lost table comes back at the next change or daemon start, and nobody else's
//! table or chain is ever touched. Conntrack keeps the NAT of open connections across a
//! replacement. Rules go through the `nftables` crate: typed objects of nft's own JSON API
//! (`nft -j -f -`), not strings of nft's command language.
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use nftables::batch::Batch;
use nftables::expr::{Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression};
use nftables::expr::{Payload, PayloadField, Prefix, CT};
use nftables::schema::{Chain, NfListObject, Rule, Table};
use nftables::stmt::{JumpTarget, Match, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::ports::Proto;

/// The table's name (family `ip`).
pub const TABLE: &str = "berth";
const FAMILY: NfFamily = NfFamily::IP;
const FAMILY6: NfFamily = NfFamily::IP6;

/// What the table needs to know of one bridge network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnets: Vec<Ipv4Net>,
    /// Its IPv6 subnets, when it has IPv6 on.
    pub subnets6: Vec<Ipv6Net>,
    pub internal: bool,
    /// `com.docker.network.bridge.enable_ip_masquerade` (true unless set to "false").
    pub masquerade: bool,
}

/// One published port: traffic to a local address (or `host_ip`) at `host_port` goes to
/// `to:to_port`; in the `ip6` table when `to` is an IPv6 address (then `host_ip` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dnat {
    pub proto: Proto,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub to: IpAddr,
    pub to_port: u16,
}

/// A failed `nft` run.
#[derive(Debug, thiserror::Error)]
#[error("nftables table ip {TABLE}: {0}")]
pub struct FirewallError(String);

/// Replaces berth's table with the one these networks and ports make.
pub fn apply(bridges: &[BridgeRules], dnats: &[Dnat]) -> Result<(), FirewallError> {
    let nft = batch(bridges, dnats).to_nftables();
    nftables::helper::apply_ruleset(&nft).map_err(|e| match e {
        nftables::helper::NftablesError::NftFailed { stderr, .. } => {
            FirewallError(stderr.trim().to_string())
        }
        e => FirewallError(e.to_string()),
    })?;
    tracing::debug!(
        bridges = bridges.len(),
        ports = dnats.len(),
        "nftables table replaced"
    );
    Ok(())
}

/// docker's daemon turns forwarding on when it manages the firewall; so does berth (IPv6's
/// too once a network has IPv6, as docker does).
pub fn enable_forwarding(ipv6: bool) -> Result<(), FirewallError> {
    let mut paths = vec!["/proc/sys/net/ipv4/ip_forward"];
    if ipv6 {
        paths.push("/proc/sys/net/ipv6/conf/all/forwarding");
    }
    for path in paths {
        if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
            continue;
        }
        std::fs::write(path, "1").map_err(|e| FirewallError(format!("{path}: {e}")))?;
    }
    Ok(())
}

/// Lets DNAT'ed packets from 127.0.0.1 leave through `bridge` (published ports on localhost).
pub fn enable_route_localnet(bridge: &str) -> Result<(), FirewallError> {
    let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    std::fs::write(&path, "1").map_err(|e| FirewallError(format!("{path}: {e}")))
}

/// The transaction: the table made (if missing), deleted, and made anew with its chains.
pub fn batch(bridges: &[BridgeRules], dnats: &[Dnat]) -> Batch<'static> {
    let mut b = Batch::new();
    b.add(table(FAMILY));
    b.delete(table(FAMILY));
    b.add(table(FAMILY));
    let base = |name, kind, hook, prio| base_chain(FAMILY, name, kind, hook, prio);
    for chain in [
        base("prerouting", NfChainType::NAT, NfHook::Prerouting, -100),
        base("output", NfChainType::NAT, NfHook::Output, -100),
        base("postrouting", NfChainType::NAT, NfHook::Postrouting, 100),
        base("forward", NfChainType::Filter, NfHook::Forward, 0),
        // Before conntrack and NAT (raw): what route_localnet must not let in.
        base("guard", NfChainType::Filter, NfHook::Prerouting, -300),
        Chain {
            family: FAMILY,
            table: TABLE.into(),
            name: "ports".into(),
            ..Chain::default()
        },
    ] {
        b.add(NfListObject::Chain(chain));
    }
    for chain in ["prerouting", "output"] {
        b.add(rule(chain, vec![local_daddr(), jump("ports")]));
    }
    for d in dnats.iter().filter(|d| d.to.is_ipv4()) {
        b.add(rule("ports", dnat_rule(d)));
    }
    let mut rules: Vec<(&str, Vec<Statement<'static>>)> = Vec::new();
    for r in bridges {
        rules.extend(bridge_rules(r));
    }
    // --internal's drops come first; then what reaches a published port passes (it is the
    // host's service, open to every network); then isolation between the bridges.
    rules.sort_by_key(|(chain, _)| *chain != "forward");
    let at = rules.iter().take_while(|(c, _)| *c == "forward").count();
    let mut tail = rules.split_off(at);
    rules.push(("forward", accept_dnatted()));
    for r in bridges {
        rules.extend(isolation_rule(r, bridges));
    }
    rules.append(&mut tail);
    for (chain, stmts) in rules {
        b.add(rule(chain, stmts));
    }
    batch6(&mut b, bridges, dnats);
    b
}

/// The `ip6 berth` table, made anew: forwarding rules, masquerade and published ports of
/// the networks with IPv6; gone (deleted, not made again) while no network has IPv6.
fn batch6(b: &mut Batch<'static>, bridges: &[BridgeRules], dnats: &[Dnat]) {
    b.add(table(FAMILY6));
    b.delete(table(FAMILY6));
    let v6: Vec<BridgeRules> = bridges
        .iter()
        .filter(|r| !r.subnets6.is_empty())
        .cloned()
        .collect();
    if v6.is_empty() {
        return;
    }
    b.add(table(FAMILY6));
    for (name, kind, hook, prio) in [
        ("prerouting", NfChainType::NAT, NfHook::Prerouting, -100),
        ("output", NfChainType::NAT, NfHook::Output, -100),
        ("postrouting", NfChainType::NAT, NfHook::Postrouting, 100),
        ("forward", NfChainType::Filter, NfHook::Forward, 0),
    ] {
        b.add(NfListObject::Chain(base_chain(
            FAMILY6, name, kind, hook, prio,
        )));
    }
    b.add(NfListObject::Chain(Chain {
        family: FAMILY6,
        table: TABLE.into(),
        name: "ports".into(),
        ..Chain::default()
    }));
    let mut rules: Vec<(&str, Vec<Statement<'static>>)> = Vec::new();
    // Not ::1: the kernel has no route_localnet for IPv6, replies de-NATed to ::1 would be
    // dropped on the bridge.
    let not_loopback = || {
        matches(
            Operator::NEQ,
            payload("ip6", "daddr"),
            text(&Ipv6Addr::LOCALHOST.to_string()),
        )
    };
    for chain in ["prerouting", "output"] {
        rules.push((chain, vec![local_daddr(), not_loopback(), jump("ports")]));
    }
    for d in dnats.iter().filter(|d| d.to.is_ipv6()) {
        rules.push(("ports", dnat_rule(d)));
    }
    for r in v6.iter().filter(|r| r.internal) {
        rules.extend(internal_drops(r));
    }
    rules.push(("forward", accept_dnatted()));
    for r in &v6 {
        rules.extend(isolation_rule(r, &v6));
    }
    for r in &v6 {
        let out = r.masquerade && !r.internal;
        for subnet in &r.subnets6 {
            let subnet = IpNet::V6(*subnet);
            rules.push(("postrouting", subnet_masquerade(&subnet, &r.bridge, true)));
            if out {
                rules.push(("postrouting", subnet_masquerade(&subnet, &r.bridge, false)));
            }
        }
    }
    for (chain, stmts) in rules {
        b.add(rule_of(FAMILY6, chain, stmts));
    }
}

/// berth's table in `family`.
fn table(family: NfFamily) -> NfListObject<'static> {
    NfListObject::Table(Table {
        family,
        name: TABLE.into(),
        handle: None,
    })
}

/// A base chain of berth's table, accepting by default.
fn base_chain(
    family: NfFamily,
    name: &'static str,
    kind: NfChainType,
    hook: NfHook,
    prio: i32,
) -> Chain<'static> {
    Chain {
        family,
        table: TABLE.into(),
        name: name.into(),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }
}

/// What reaches a published port passes (it is the host's service, open to every network).
fn accept_dnatted() -> Vec<Statement<'static>> {
    vec![
        matches(Operator::IN, ct_status(), text("dnat")),
        Statement::Accept(None),
    ]
}

/// Isolation: nothing from this bridge to another of berth's.
fn isolation_rule(
    r: &BridgeRules,
    all: &[BridgeRules],
) -> Option<(&'static str, Vec<Statement<'static>>)> {
    let others: Vec<Expression<'static>> = all
        .iter()
        .filter(|o| o.bridge != r.bridge)
        .map(|o| text(&o.bridge))
        .collect();
    if others.is_empty() {
        return None;
    }
    Some((
        "forward",
        vec![
            matches(Operator::EQ, meta(MetaKey::Iifname), text(&r.bridge)),
            matches(Operator::EQ, meta(MetaKey::Oifname), set(others)),
            Statement::Drop(None),
        ],
    ))
}

fn rule(chain: &str, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
    rule_of(FAMILY, chain, expr)
}

fn rule_of(family: NfFamily, chain: &str, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family,
        table: TABLE.into(),
        chain: Cow::Owned(chain.to_string()),
        expr: expr.into(),
        ..Rule::default()
    })
}

fn matches(
    op: Operator,
    left: Expression<'static>,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn text(s: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(s.to_string()))
}

fn prefix(net: &Ipv4Net) -> Expression<'static> {
    prefix_of(net.network().to_string(), net.prefix_len())
}

fn prefix6(net: &Ipv6Net) -> Expression<'static> {
    prefix_of(net.network().to_string(), net.prefix_len())
}

fn prefix_of(addr: String, len: u8) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(Cow::Owned(addr))),
        len: len.into(),
    }))
}

fn jump(chain: &'static str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: chain.into(),
    })
}

/// `fib daddr type local`: the packet is for one of this host's addresses.
fn local_daddr() -> Statement<'static> {
    let fib = Fib {
        result: FibResult::Type,
        flags: [FibFlag::Daddr].into_iter().collect(),
    };
    matches(
        Operator::EQ,
        Expression::Named(NamedExpression::Fib(fib)),
        text("local"),
    )
}

fn masquerade() -> Statement<'static> {
    Statement::Masquerade(None)
}

/// `[ip daddr HOST_IP] tcp dport HOST_PORT dnat to IP:PORT` (in `ip6`: `dnat to [IP]:PORT`).
fn dnat_rule(d: &Dnat) -> Vec<Statement<'static>> {
    let mut s = Vec::new();
    if let Some(ip) = d.host_ip {
        s.push(matches(
            Operator::EQ,
            payload("ip", "daddr"),
            text(&ip.to_string()),
        ));
    }
    s.push(matches(
        Operator::EQ,
        payload(d.proto.as_str(), "dport"),
        Expression::Number(d.host_port.into()),
    ));
    s.push(Statement::DNAT(Some(NAT {
        addr: Some(text(&d.to.to_string())),
        family: None,
        port: Some(Expression::Number(d.to_port.into())),
        flags: None,
    })));
    s
}

/// One network's guard, `--internal` and postrouting rules.
fn bridge_rules(r: &BridgeRules) -> Vec<(&'static str, Vec<Statement<'static>>)> {
    let mut out = Vec::new();
    let iif = || meta(MetaKey::Iifname);
    let oif = || meta(MetaKey::Oifname);
    let me = || text(&r.bridge);
    let loopback = || prefix(&"127.0.0.0/8".parse().expect("valid"));
    // route_localnet is on for the bridge: nothing from a container with a loopback
    // source or destination (a container must not reach the host's 127.0.0.1 services).
    for field in ["saddr", "daddr"] {
        out.push((
            "guard",
            vec![
                matches(Operator::EQ, iif(), me()),
                matches(Operator::EQ, payload("ip", field), loopback()),
                Statement::Drop(None),
            ],
        ));
    }
    if r.internal {
        out.extend(internal_drops(r));
    }
    // Published ports reached from 127.0.0.1 (route_localnet) need a source the
    // container can answer.
    out.push((
        "postrouting",
        vec![
            matches(Operator::EQ, payload("ip", "saddr"), loopback()),
            matches(Operator::EQ, oif(), me()),
            masquerade(),
        ],
    ));
    for subnet in &r.subnets {
        let subnet = IpNet::V4(*subnet);
        out.push(("postrouting", subnet_masquerade(&subnet, &r.bridge, true)));
        if r.masquerade && !r.internal {
            out.push(("postrouting", subnet_masquerade(&subnet, &r.bridge, false)));
        }
    }
    out
}

/// Masquerade of a bridge's subnet (either family): `hairpin`, a container reaching a
/// published port through a host address (DNAT'ed back out on its own bridge); else its
/// traffic leaving by another interface.
fn subnet_masquerade(subnet: &IpNet, bridge: &str, hairpin: bool) -> Vec<Statement<'static>> {
    let (family, from) = match subnet {
        IpNet::V4(n) => ("ip", prefix(n)),
        IpNet::V6(n) => ("ip6", prefix6(n)),
    };
    let mut s = Vec::new();
    if hairpin {
        s.push(matches(Operator::IN, ct_status(), text("dnat")));
    }
    s.push(matches(Operator::EQ, payload(family, "saddr"), from));
    let op = if hairpin { Operator::EQ } else { Operator::NEQ };
    s.push(matches(op, meta(MetaKey::Oifname), text(bridge)));
    s.push(masquerade());
    s
}

/// `--internal`: no way out, and no way in from anywhere but the bridge itself.
fn internal_drops(r: &BridgeRules) -> Vec<(&'static str, Vec<Statement<'static>>)> {
    let (iif, oif) = (meta(MetaKey::Iifname), meta(MetaKey::Oifname));
    [(iif.clone(), oif.clone()), (oif, iif)]
        .into_iter()
        .map(|(this, other)| {
            (
                "forward",
                vec![
                    matches(Operator::EQ, this, text(&r.bridge)),
                    matches(Operator::NEQ, other, text(&r.bridge)),
                    Statement::Drop(None),
                ],
            )
        })
        .collect()
}

fn ct_status() -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: "status".into(),
        family: None,
        dir: None,
    }))
}

fn set(items: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Set(
        items
            .into_iter()
            .map(nftables::expr::SetItem::Element)
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(bridge: &str, subnet: &str, internal: bool) -> BridgeRules {
        BridgeRules {
            bridge: bridge.into(),
            subnets: vec![subnet.parse().unwrap()],
            subnets6: Vec::new(),
            internal,
            masquerade: true,
        }
    }

    fn json(bridges: &[BridgeRules], dnats: &[Dnat]) -> String {
        serde_json::to_string(&batch(bridges, dnats).to_nftables()).unwrap()
    }

    #[test]
    fn the_table_is_replaced_whole_and_touches_nothing_else() {
        let text = json(&[], &[]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let cmds = v["nftables"].as_array().unwrap();
        assert_eq!(cmds[0]["add"]["table"]["name"], "berth");
        assert_eq!(cmds[1]["delete"]["table"]["name"], "berth");
        assert_eq!(cmds[2]["add"]["table"]["name"], "berth");
        for c in cmds {
            let obj = c.as_object().unwrap().values().next().unwrap();
            let inner = obj.as_object().unwrap().values().next().unwrap();
            let table = inner.get("table").or(inner.get("name")).unwrap();
            assert_eq!(table, "berth", "{c}");
            assert!(
                matches!(inner["family"].as_str(), Some("ip" | "ip6")),
                "{c}"
            );
        }
        assert!(!text.contains("flush"), "{text}");
        // Without IPv6 networks, the ip6 table is deleted and not made again.
        let six: Vec<&serde_json::Value> = cmds
            .iter()
            .filter(|c| c.to_string().contains(r#""family":"ip6""#))
            .collect();
        assert_eq!(six.len(), 2, "{six:?}");
        assert!(six[1].get("delete").is_some(), "{six:?}");
    }

    #[test]
    fn ipv6_networks_get_masquerade_isolation_and_internal_drops_in_ip6() {
        let mut a = net("br-a", "10.1.0.0/24", false);
        a.subnets6 = vec!["fd00:1::/64".parse().unwrap()];
        let mut i = net("br-i", "10.2.0.0/24", true);
        i.subnets6 = vec!["fd00:2::/64".parse().unwrap()];
        let v: serde_json::Value =
            serde_json::from_str(&json(&[a, i, net("br-4", "10.3.0.0/24", false)], &[])).unwrap();
        let rules: Vec<String> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .filter(|r| r["family"] == "ip6")
            .map(|r| r.to_string())
            .collect();
        // Out (oifname != the bridge), not the hairpin ones.
        let masq: Vec<&String> = rules
            .iter()
            .filter(|r| r.contains("masquerade") && r.contains(r#""op":"!=""#))
            .collect();
        assert_eq!(masq.len(), 1, "{masq:?}");
        assert!(masq[0].contains("fd00:1::"), "{masq:?}");
        assert!(!rules.iter().any(|r| r.contains("br-4")), "{rules:?}");
        // two --internal drops, isolation each way, the dnat accept.
        assert_eq!(
            rules.iter().filter(|r| r.contains("forward")).count(),
            5,
            "{rules:?}"
        );
    }

    #[test]
    fn internal_networks_get_no_masquerade_and_drops_both_ways() {
        let text = json(
            &[
                net("br-a", "10.1.0.0/24", false),
                net("br-i", "10.2.0.0/24", true),
            ],
            &[],
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let rules: Vec<&serde_json::Value> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .collect();
        let masq: Vec<String> = rules
            .iter()
            .filter(|r| r["chain"] == "postrouting" && r.to_string().contains("\"!=\""))
            .map(|r| r.to_string())
            .collect();
        assert_eq!(masq.len(), 1, "{masq:?}");
        assert!(masq[0].contains("10.1.0.0"), "{masq:?}");
        let drops = rules
            .iter()
            .filter(|r| r["chain"] == "forward" && r.to_string().contains("br-i"))
            .count();
        // two for --internal, one isolation rule each way.
        assert_eq!(drops, 4, "{rules:?}");
    }

    #[test]
    fn a_published_port_is_a_dnat_rule_in_the_ports_chain() {
        let d = Dnat {
            proto: Proto::Udp,
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: 5353,
            to: Ipv4Addr::new(10, 1, 0, 2).into(),
            to_port: 53,
        };
        let text = json(&[], &[d]);
        assert!(
            text.contains(r#"{"dnat":{"addr":"10.1.0.2","port":53}}"#),
            "{text}"
        );
        assert!(
            text.contains(r#""protocol":"udp","field":"dport"}},"right":5353"#),
            "{text}"
        );
        assert!(text.contains(r#""right":"127.0.0.1""#), "{text}");
    }

    #[test]
    fn a_port_published_on_every_address_is_dnat_ed_in_ip6_to_the_v6_address() {
        let mut a = net("br-a", "10.1.0.0/24", false);
        a.subnets6 = vec!["fd00:1::/64".parse().unwrap()];
        let to6 = |to: IpAddr| Dnat {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            to,
            to_port: 80,
        };
        let dnats = [
            to6(Ipv4Addr::new(10, 1, 0, 2).into()),
            to6("fd00:1::2".parse().unwrap()),
        ];
        let v: serde_json::Value = serde_json::from_str(&json(&[a], &dnats)).unwrap();
        let rules: Vec<&serde_json::Value> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .filter(|r| r["chain"] == "ports")
            .collect();
        assert_eq!(rules.len(), 2, "{rules:?}");
        let family = |r: &serde_json::Value| r["family"].as_str().unwrap().to_string();
        let (four, six): (Vec<&serde_json::Value>, Vec<_>) =
            rules.into_iter().partition(|r| family(r) == "ip");
        assert!(
            four[0].to_string().contains(r#""addr":"10.1.0.2""#),
            "{four:?}"
        );
        assert!(
            six[0].to_string().contains(r#""addr":"fd00:1::2""#),
            "{six:?}"
        );
        assert_eq!(family(six[0]), "ip6");
        // The ip6 jump to ports is for the host's addresses but ::1.
        let jumps: Vec<String> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .filter(|r| r["family"] == "ip6" && r.to_string().contains(r#""jump""#))
            .map(|r| r.to_string())
            .collect();
        assert_eq!(jumps.len(), 2, "{jumps:?}");
        for j in &jumps {
            assert!(
                j.contains(r#""op":"!=""#) && j.contains(r#""right":"::1""#),
                "{j}"
            );
        }
    }
}
