//! The network service's firewall side: berth's nftables table derived from the records,
//! and the published ports of running containers (kept on their endpoint, so that a
//! restarted daemon finds them and re-makes their rules).
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use super::firewall::{self, BridgeRules, Dnat};
use super::ports::{self, PortError, PortMapping, PortRequest};
use super::record::{Endpoint, Network};
use super::service::{Error, NetworkService};

/// The kernel bridge of a network berth plumbs (`--bridge none` turns the default one off).
pub fn plumbed_bridge(n: &Network) -> Option<String> {
    n.bridge_name().filter(|b| b != "none")
}

fn bridge_rules(networks: &HashMap<String, Network>) -> Vec<BridgeRules> {
    let mut out: Vec<BridgeRules> = networks
        .values()
        .filter_map(|n| {
            Some(BridgeRules {
                bridge: plumbed_bridge(n)?,
                subnets: n.pools.iter().map(|p| p.subnet).collect(),
                subnets6: n.v6().map(|p| p.subnet).into_iter().collect(),
                internal: n.internal,
                masquerade: n
                    .options
                    .get("com.docker.network.bridge.enable_ip_masquerade")
                    .is_none_or(|v| v != "false"),
            })
        })
        .collect();
    out.sort_by(|a, b| a.bridge.cmp(&b.bridge));
    out
}

fn dnats(networks: &HashMap<String, Network>) -> Vec<Dnat> {
    let mut out = Vec::new();
    for n in networks.values().filter(|n| !n.internal) {
        for e in n.endpoints.values() {
            for m in &e.ports {
                let dnat = |host_ip, to: IpAddr| Dnat {
                    proto: m.proto,
                    host_ip,
                    host_port: m.host_port,
                    to,
                    to_port: m.container_port,
                };
                match m.host_ip {
                    // Every address: the host's IPv6 ones too (docker's ip6tables).
                    None => {
                        out.extend(e.ip.map(|ip| dnat(None, ip.into())));
                        out.extend(e.ip6.map(|ip| dnat(None, ip.into())));
                    }
                    Some(IpAddr::V4(host)) => {
                        out.extend(e.ip.map(|ip| dnat(Some(host), ip.into())))
                    }
                    // One IPv6 address: the forwarder's.
                    Some(IpAddr::V6(_)) => {}
                }
            }
        }
    }
    out.sort_by_key(|d| (d.host_port, d.proto, d.host_ip, d.to.is_ipv6()));
    out
}

/// Where the forwarder sends a published port's IPv6 clients: the container's IPv4 address
/// (its IPv6 one when it has no other).
fn forward_to(e: &Endpoint, m: &PortMapping) -> Option<SocketAddr> {
    let ip: IpAddr = match (e.ip, e.ip6) {
        (Some(ip), _) => ip.into(),
        (None, Some(ip)) => ip.into(),
        (None, None) => return None,
    };
    Some(SocketAddr::new(ip, m.container_port))
}

fn port_error(e: PortError, container: &str, endpoint: &str) -> Error {
    match e {
        PortError::Invalid(_) | PortError::Unsupported(_) => Error::Invalid(e.to_string()),
        e => Error::System(format!(
            "driver failed programming external connectivity on endpoint {container} ({endpoint}): {e}"
        )),
    }
}

impl NetworkService {
    /// Whether berth keeps its nftables table (`--iptables`).
    pub fn manages_firewall(&self) -> bool {
        self.firewall
    }

    /// Replaces berth's table with what `networks` needs (nothing when `--iptables=false`).
    pub(super) fn sync_firewall(&self, networks: &HashMap<String, Network>) -> Result<(), Error> {
        if !self.firewall {
            return Ok(());
        }
        let bridges = bridge_rules(networks);
        if bridges.iter().any(|b| !b.subnets6.is_empty()) {
            firewall::enable_forwarding(true).map_err(|e| Error::System(e.to_string()))?;
        }
        firewall::apply(&bridges, &dnats(networks)).map_err(|e| Error::System(e.to_string()))
    }

    /// At daemon start: forwarding on, the table re-made from the records, and the host
    /// ports of the running containers' published ports held again.
    pub(super) fn restore_firewall(&self) -> Result<(), Error> {
        if !self.firewall {
            return Ok(());
        }
        firewall::enable_forwarding(false).map_err(|e| Error::System(e.to_string()))?;
        let networks = self.lock();
        self.sync_firewall(&networks)?;
        let mut held = self.held_lock();
        for n in networks.values() {
            for (id, e) in &n.endpoints {
                for m in &e.ports {
                    match ports::hold(m) {
                        Ok(mut h) => {
                            if let Some(to) = forward_to(e, m) {
                                h.forward(to);
                            }
                            held.entry(id.clone()).or_default().push(h)
                        }
                        Err(err) => tracing::warn!(
                            container = %id, port = m.host_port, error = %err,
                            "published port taken while the daemon was away"
                        ),
                    }
                }
            }
        }
        Ok(())
    }

    fn held_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<ports::Held>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a starting container's ports on its endpoint of `network`: every host port
    /// allocated and its DNAT rule made, or nothing.
    pub fn publish(
        &self,
        network: &str,
        container_id: &str,
        reqs: &[PortRequest],
    ) -> Result<Vec<PortMapping>, Error> {
        let mut networks = self.lock();
        let n = networks
            .get_mut(network)
            .ok_or_else(|| Error::NotFound(format!("network {network} not found")))?;
        let e = n.endpoints.get_mut(container_id).ok_or_else(|| {
            Error::NotFound(format!(
                "container {container_id} is not connected to network {network}"
            ))
        })?;
        let (mappings, mut held) = ports::allocate_all(reqs)
            .map_err(|err| port_error(err, &e.container_name, &e.endpoint_id))?;
        for (m, h) in mappings.iter().zip(&mut held) {
            if let Some(to) = forward_to(e, m) {
                h.forward(to);
            }
        }
        e.ports = mappings.clone();
        let n = n.clone();
        if let Err(err) = self.sync_firewall(&networks) {
            if let Some(e) = networks
                .get_mut(network)
                .and_then(|n| n.endpoints.get_mut(container_id))
            {
                e.ports.clear();
            }
            return Err(err);
        }
        self.store.put(&n)?;
        self.held_lock()
            .entry(container_id.to_string())
            .or_default()
            .extend(held);
        Ok(mappings)
    }

    /// Takes a stopped container's published ports away.
    pub fn unpublish(&self, container_id: &str) -> Result<(), Error> {
        let mut networks = self.lock();
        let mut changed = Vec::new();
        for n in networks.values_mut() {
            if let Some(e) = n.endpoints.get_mut(container_id) {
                if !e.ports.is_empty() {
                    e.ports.clear();
                    changed.push(n.clone());
                }
            }
        }
        self.held_lock().remove(container_id);
        if changed.is_empty() {
            return Ok(());
        }
        for n in &changed {
            self.store.put(n)?;
        }
        self.sync_firewall(&networks)
    }

    /// At daemon start, after the containers were re-adopted: the ports of containers that
    /// are not running any more go.
    pub fn unpublish_all_but(&self, running: &HashSet<String>) {
        let stale: Vec<String> = self
            .lock()
            .values()
            .flat_map(|n| n.endpoints.iter())
            .filter(|(id, e)| !e.ports.is_empty() && !running.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Err(e) = self.unpublish(&id) {
                tracing::warn!(container = %id, error = %e, "unpublishing stale ports");
            }
        }
    }

    /// After an endpoint left its network: its ports' rules and held host ports go too.
    pub(super) fn ports_gone(
        &self,
        networks: &HashMap<String, Network>,
        container_id: &str,
        gone: &super::record::Endpoint,
    ) -> Result<(), Error> {
        if gone.ports.is_empty() {
            return Ok(());
        }
        self.held_lock().remove(container_id);
        self.sync_firewall(networks)
    }

    /// A container's published ports.
    pub fn published(&self, container_id: &str) -> Vec<PortMapping> {
        self.lock()
            .values()
            .filter_map(|n| n.endpoints.get(container_id))
            .flat_map(|e| e.ports.clone())
            .collect()
    }
}
