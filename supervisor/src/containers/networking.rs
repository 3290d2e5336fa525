//! A container's networks: the endpoints reserved at create (`--network`, `--ip`,
//! `--network-alias`), `network connect`/`disconnect`, and their release at removal.
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::config::{EndpointSettings, NetworkingConfig};
use super::naming::NameFiles;
use super::record::Container;
use super::service::{ContainerService, Error};
use crate::network::dns::Dns;
use crate::network::link::{self, Attachment};
use crate::network::ports;
use crate::network::publish::plumbed_bridge;
use crate::network::record::{Endpoint, Network};
use crate::network::service::{EndpointRequest, Error as NetError};

impl From<NetError> for Error {
    fn from(e: NetError) -> Self {
        match e {
            NetError::NotFound(m) => Error::NotFound(m),
            NetError::Conflict(m) => Error::Conflict(m),
            NetError::Invalid(m) => Error::Invalid(m),
            NetError::Forbidden(m) => Error::Forbidden(m),
            NetError::Unavailable(m) => Error::Unavailable(m),
            NetError::System(m) => Error::Task(m),
            NetError::Store(e) => Error::Task(e.to_string()),
        }
    }
}

/// The network a `NetworkMode` names, if it is one a container gets an endpoint on.
pub fn network_of_mode(mode: &str) -> Option<&str> {
    match mode {
        "" | "default" | "bridge" => Some("bridge"),
        "host" | "none" => None,
        m if m.starts_with("container:") => None,
        m => Some(m),
    }
}

fn endpoint_request(settings: Option<&EndpointSettings>) -> EndpointRequest {
    let Some(s) = settings else {
        return EndpointRequest::default();
    };
    EndpointRequest {
        ipv4: s
            .ipam_config
            .as_ref()
            .map(|c| c.ipv4_address.clone())
            .unwrap_or_default(),
        ipv6: s
            .ipam_config
            .as_ref()
            .map(|c| c.ipv6_address.clone())
            .unwrap_or_default(),
        aliases: s.aliases.clone().unwrap_or_default(),
        mac: s.mac_address.clone(),
    }
}

impl ContainerService {
    /// Reserves the endpoints of a container being created: its `NetworkMode` network first,
    /// then any other `EndpointsConfig` entry, all or none. What cannot be joined (an unknown
    /// network, a bad or taken address, a bad MAC, a full pool) refuses the create, so that
    /// nothing is left half-made (docker 25+ checks endpoints at create too); an unknown network
    /// is a 400 there, since the docker CLIs take a 404 from create for a missing image.
    pub(super) fn reserve_networks(
        &self,
        c: &mut Container,
        networking: &NetworkingConfig,
    ) -> Result<(), Error> {
        let mode = c.host_config["NetworkMode"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let endpoints = networking.endpoints_config.clone().unwrap_or_default();
        let Some(primary) = network_of_mode(&mode) else {
            return Ok(());
        };
        let mut settings = endpoints
            .get(primary)
            .or_else(|| endpoints.get(&mode))
            .cloned()
            .flatten();
        // API < 1.44 sends `--mac-address` as Config.MacAddress: the primary network's.
        let mac = c.config["MacAddress"].as_str().unwrap_or("").to_string();
        if !mac.is_empty() {
            let s = settings.get_or_insert_with(Default::default);
            if s.mac_address.is_empty() {
                s.mac_address = mac;
            }
        }
        let mut wanted = vec![(primary.to_string(), settings)];
        for (name, s) in endpoints {
            if name != primary && name != mode {
                wanted.push((name, s));
            }
        }
        self.join_all(c, &wanted).map_err(|e| match e {
            Error::NotFound(m) => Error::Invalid(m),
            e => e,
        })
    }

    /// Joins every network of `wanted`, or none of them.
    fn join_all(
        &self,
        c: &Container,
        wanted: &[(String, Option<EndpointSettings>)],
    ) -> Result<(), Error> {
        let mut joined = Vec::new();
        for (name, settings) in wanted {
            match self
                .networks
                .connect(name, &c.id, &c.name, &endpoint_request(settings.as_ref()))
            {
                Ok((n, _)) => joined.push(n.id),
                Err(e) => {
                    for id in joined {
                        let _ = self.networks.disconnect(&id, &c.id);
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// At start: the networks create could not join, joined now or the start refused.
    pub(super) fn join_pending_networks(&self, c: &mut Container) -> Result<(), Error> {
        let Some(pending) = c.pending_networks.clone() else {
            return Ok(());
        };
        let wanted: Vec<(String, Option<EndpointSettings>)> =
            serde_json::from_value::<std::collections::BTreeMap<_, _>>(pending)
                .map_err(|e| Error::Invalid(format!("pending networks: {e}")))?
                .into_iter()
                .collect();
        self.join_all(c, &wanted)?;
        c.pending_networks = None;
        self.store.put(c).map_err(Error::from)
    }

    /// `POST /networks/{id}/connect`, on created and running containers alike.
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        settings: Option<&EndpointSettings>,
    ) -> Result<(), Error> {
        let entry = self.find(container)?;
        let c = entry.record.lock().await;
        let mode = c.host_config["NetworkMode"].as_str().unwrap_or("");
        if network_of_mode(mode).is_none() {
            return Err(Error::Forbidden(format!(
                "container sharing network namespace with another container or host cannot be connected to any other network (network mode {mode})"
            )));
        }
        let (n, e) = self
            .networks
            .connect(network, &c.id, &c.name, &endpoint_request(settings))?;
        if c.state.status.is_live() {
            if let Err(err) = self.connect_live(&c, &n, &e).await {
                let _ = self.networks.disconnect(&n.id, &c.id);
                return Err(err);
            }
        }
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_network(
        &self,
        network: &str,
        container: &str,
        force: bool,
    ) -> Result<(), Error> {
        let entry = match self.find(container) {
            Ok(entry) => entry,
            // -f: the endpoint of a container that is gone.
            Err(_) if force => {
                self.networks.disconnect(network, container)?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let c = entry.record.lock().await;
        let n = self.networks.find(network)?;
        let endpoint = n.endpoints.get(&c.id).cloned();
        self.networks.disconnect(&n.id, &c.id)?;
        if let (Some(e), true) = (endpoint, c.state.status.is_live()) {
            if let Err(err) = self.disconnect_live(&c, &e).await {
                tracing::warn!(id = %c.id, network = %n.name, error = %err, "disconnect");
                if !force {
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// Docker's `NetworkSettings.Networks` of a container.
    pub fn network_settings(&self, container_id: &str) -> Value {
        let mut networks = serde_json::Map::new();
        for (n, e) in self.networks.endpoints_of(container_id) {
            let mut v = n.endpoint_settings(&e);
            if !n.predefined {
                // What the embedded resolver answers to (docker 25+'s DNSNames); Aliases with
                // the short id, as docker shows it to API 1.41 clients.
                let short = container_id[..12.min(container_id.len())].to_string();
                let mut aliases = e.aliases.clone();
                if !aliases.contains(&short) {
                    aliases.push(short);
                }
                v["Aliases"] = serde_json::json!(aliases);
                v["DNSNames"] = serde_json::json!(crate::network::dns::table::names_of(
                    container_id,
                    &e.container_name,
                    &e.aliases
                ));
            }
            networks.insert(n.name.clone(), v);
        }
        Value::Object(networks)
    }
}

impl ContainerService {
    /// `<exec-root>/netns/<id>`: the container's network namespace while it runs.
    pub(super) fn netns_path(&self, id: &str) -> PathBuf {
        self.paths.exec_root.join("netns").join(id)
    }

    /// The veths a container gets at start: one per bridge network it is on (`eth0`,
    /// `eth1`, … by network name), the default `bridge` too unless the daemon runs with
    /// `--bridge none`.
    pub(super) fn attachments(&self, id: &str) -> Vec<Attachment> {
        self.plumbed_endpoints(id)
            .into_iter()
            .map(|(_, a)| a)
            .collect()
    }

    /// [`Self::attachments`] with the id of each one's network.
    fn plumbed_endpoints(&self, id: &str) -> Vec<(String, Attachment)> {
        let mut out: Vec<(String, Attachment)> = Vec::new();
        for (n, e) in self.networks.endpoints_of(id) {
            let (Some(ip), Some(bridge)) = (e.ip, plumbed_bridge(&n)) else {
                continue;
            };
            let Some(pool) = n.pool_of(ip) else { continue };
            let attachment = Attachment {
                bridge,
                gateway: pool.gateway,
                prefix: pool.subnet.prefix_len(),
                ip,
                mac: e.mac.clone(),
                ifname: format!("eth{}", out.len()),
                default_route: out.is_empty() && !n.internal,
                route_localnet: self.networks.manages_firewall(),
                v6: address6(&n, &e),
            };
            out.push((n.id.clone(), attachment));
        }
        out
    }

    /// At start: the container's published ports (`PortBindings`, `-P` with its
    /// `ExposedPorts`), on the network of its default route, as docker does; none for
    /// `host`/`none` or an `--internal` first network.
    pub(super) fn publish_ports(&self, c: &Container) -> Result<(), Error> {
        let reqs = ports::requests(
            &c.host_config["PortBindings"],
            &c.config["ExposedPorts"],
            c.host_config["PublishAllPorts"].as_bool().unwrap_or(false),
        )
        .map_err(|e| Error::Invalid(e.to_string()))?;
        if reqs.is_empty() {
            return Ok(());
        }
        let Some((network, a)) = self.plumbed_endpoints(&c.id).into_iter().next() else {
            return Ok(());
        };
        if !a.default_route {
            return Ok(());
        }
        self.networks.publish(&network, &c.id, &reqs)?;
        Ok(())
    }

    /// After re-adoption at daemon start: ports of containers that are not running go.
    pub(super) async fn release_stale_ports(&self) {
        let mut running = std::collections::HashSet::new();
        for c in self.list().await {
            if c.state.status.is_live() {
                running.insert(c.id.clone());
            }
        }
        self.networks.unpublish_all_but(&running);
    }

    /// The container stopped (or failed to start): its published ports go.
    pub(super) fn unpublish_ports(&self, id: &str) {
        if let Err(e) = self.networks.unpublish(id) {
            tracing::warn!(id, error = %e, "unpublishing ports");
        }
    }

    /// Docker's `NetworkSettings.Ports` of a container: none unless it runs (dockerd
    /// releases them with the network on stop, and has none before the first start).
    pub fn ports_settings(&self, c: &Container) -> Value {
        if !c.state.status.is_live() {
            return Value::Object(Default::default());
        }
        ports::settings_ports(
            &c.config["ExposedPorts"],
            &c.host_config["PortBindings"],
            &self.networks.published(&c.id),
        )
    }

    /// The `Ports` of a container in `GET /containers/json` (none unless it runs, as
    /// dockerd's).
    pub fn ports_summary(&self, c: &Container) -> Value {
        if !c.state.status.is_live() {
            return Value::Array(Vec::new());
        }
        ports::summary_ports(&c.config["ExposedPorts"], &self.networks.published(&c.id))
    }
}

/// The IPv6 address of endpoint `e` on `n`, with its prefix and gateway.
pub(super) fn address6(n: &Network, e: &Endpoint) -> Option<link::Address6> {
    let ip = e.ip6?;
    let pool = n.pool6_of(ip)?;
    Some(link::Address6 {
        ip,
        prefix: pool.subnet.prefix_len(),
        gateway: pool.gateway,
    })
}

/// The bridge of `a` made if missing, with `route_localnet` on when `a` asks for it.
pub(super) fn ready_bridge(a: &Attachment) -> Result<(), link::LinkError> {
    link::ensure_bridge(&a.bridge, a.gateway, a.prefix, a.v6)?;
    if a.route_localnet {
        crate::network::firewall::enable_route_localnet(&a.bridge).map_err(|e| {
            link::LinkError {
                what: format!("bridge {}", a.bridge),
                message: e.to_string(),
            }
        })?;
    }
    Ok(())
}

/// Writes the container's name files, makes its namespace with its veths (nothing if it has
/// none to get), and starts its DNS responder when it is on a user-defined network: the
/// namespace's path.
pub(super) fn plumb(
    netns: &Path,
    attachments: &[Attachment],
    files: &Path,
    names: &NameFiles,
    dns: &Dns,
    id: &str,
) -> Result<Option<PathBuf>, Error> {
    names.write(files)?;
    if attachments.is_empty() {
        return Ok(None);
    }
    link::remove_netns(netns);
    let made = (|| {
        link::create_netns(netns)?;
        for a in attachments {
            ready_bridge(a)?;
            link::attach(netns, a)?;
        }
        Ok::<(), link::LinkError>(())
    })();
    if let Err(e) = made {
        link::remove_netns(netns);
        return Err(Error::Task(format!("network setup: {e}")));
    }
    if names.embedded {
        if let Err(e) = dns.serve(id, netns, names.upstreams.clone()) {
            link::remove_netns(netns);
            return Err(Error::Task(format!("network setup: {e}")));
        }
    }
    Ok(Some(netns.to_path_buf()))
}
