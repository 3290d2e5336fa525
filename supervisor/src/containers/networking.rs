//! A container's networks: the endpoints reserved at create (`--network`, `--ip`,
//! `--network-alias`), `network connect`/`disconnect`, and their release at removal.
use serde_json::Value;

use super::config::{EndpointSettings, NetworkingConfig};
use super::record::Container;
use super::service::{ContainerService, Error};
use crate::network::service::{EndpointRequest, Error as NetError};

impl From<NetError> for Error {
    fn from(e: NetError) -> Self {
        match e {
            NetError::NotFound(m) => Error::NotFound(m),
            NetError::Conflict(m) => Error::Conflict(m),
            NetError::Invalid(m) => Error::Invalid(m),
            NetError::Forbidden(m) => Error::Forbidden(m),
            NetError::Unavailable(m) => Error::Unavailable(m),
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
        aliases: s.aliases.clone().unwrap_or_default(),
    }
}

impl ContainerService {
    /// Reserves the endpoints of a container being created: its `NetworkMode` network first,
    /// then any other `EndpointsConfig` entry. What cannot be joined now (an unknown network,
    /// a bad address) is kept in the record and reported by `start`, as docker does.
    pub(super) fn reserve_networks(&self, c: &mut Container, networking: &NetworkingConfig) {
        let mode = c.host_config["NetworkMode"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let endpoints = networking.endpoints_config.clone().unwrap_or_default();
        let Some(primary) = network_of_mode(&mode) else {
            return;
        };
        let settings = endpoints
            .get(primary)
            .or_else(|| endpoints.get(&mode))
            .cloned()
            .flatten();
        let mut wanted = vec![(primary.to_string(), settings)];
        for (name, s) in endpoints {
            if name != primary && name != mode {
                wanted.push((name, s));
            }
        }
        if let Err(e) = self.join_all(c, &wanted) {
            tracing::info!(id = %c.id, error = %e, "networks joined at start");
            c.pending_networks = serde_json::to_value(
                wanted
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
            .ok();
        }
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
        self.networks
            .connect(network, &c.id, &c.name, &endpoint_request(settings))?;
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_network(
        &self,
        network: &str,
        container: &str,
        force: bool,
    ) -> Result<(), Error> {
        let id = match self.find(container) {
            Ok(entry) => entry.record.lock().await.id.clone(),
            // -f: the endpoint of a container that is gone.
            Err(_) if force => container.to_string(),
            Err(e) => return Err(e),
        };
        self.networks.disconnect(network, &id)?;
        Ok(())
    }

    /// Docker's `NetworkSettings.Networks` of a container.
    pub fn network_settings(&self, container_id: &str) -> Value {
        let mut networks = serde_json::Map::new();
        for (n, e) in self.networks.endpoints_of(container_id) {
            networks.insert(n.name.clone(), n.endpoint_settings(&e));
        }
        Value::Object(networks)
    }
}
