//! `network connect`/`disconnect` on a running container: a new `ethN` in its namespace (or
//! the link with the endpoint's MAC removed), its `/etc/hosts` and resolv.conf written again,
//! and its DNS responder started when it joins its first user-defined network. The names it
//! answers to change with the network records themselves.
use std::path::PathBuf;

use super::record::Container;
use super::service::{ContainerService, Error};
use crate::network::link::{self, Attachment};
use crate::network::{Endpoint, Network};

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, link::LinkError> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| {
            Err(link::LinkError {
                what: "network thread".into(),
                message: e.to_string(),
            })
        })
        .map_err(|e| Error::Task(format!("network setup: {e}")))
}

impl ContainerService {
    /// The namespace of a running container: the daemon's bind mount, else its init's.
    fn live_netns(&self, c: &Container) -> PathBuf {
        let ours = self.netns_path(&c.id);
        if ours.exists() {
            return ours;
        }
        PathBuf::from(format!("/proc/{}/ns/net", c.state.pid))
    }

    /// Plumbs the endpoint `e` of `n` into the running container `c`.
    pub(super) async fn connect_live(
        &self,
        c: &Container,
        n: &Network,
        e: &Endpoint,
    ) -> Result<(), Error> {
        if n.predefined {
            return Ok(());
        }
        let (Some(ip), Some(bridge)) = (e.ip, n.bridge_name()) else {
            return Ok(());
        };
        let Some(pool) = n.pool_of(ip).cloned() else {
            return Ok(());
        };
        let netns = self.live_netns(c);
        let (mac, internal) = (e.mac.clone(), n.internal);
        let route_localnet = self.networks.manages_firewall();
        let v6 = super::networking::address6(n, e);
        let ns = netns.clone();
        blocking(move || {
            let a = Attachment {
                bridge,
                gateway: pool.gateway,
                prefix: pool.subnet.prefix_len(),
                ip,
                mac,
                ifname: link::free_ifname(&ns)?,
                default_route: !internal && !link::has_default_route(&ns)?,
                route_localnet,
                v6,
            };
            super::networking::ready_bridge(&a)?;
            link::attach(&ns, &a)
        })
        .await?;
        self.names_changed(c, &netns)
    }

    /// Removes the link of the endpoint `e` from the running container `c`.
    pub(super) async fn disconnect_live(&self, c: &Container, e: &Endpoint) -> Result<(), Error> {
        let netns = self.live_netns(c);
        let (ns, mac) = (netns.clone(), e.mac.clone());
        blocking(move || link::detach(&ns, &mac)).await?;
        self.names_changed(c, &netns)
    }

    /// The container's files again, and a responder if it now needs one.
    fn names_changed(&self, c: &Container, netns: &std::path::Path) -> Result<(), Error> {
        let files = self.name_files(c);
        files.write(&self.files_dir(&c.id))?;
        if files.embedded && !self.dns.serving(&c.id) {
            self.dns
                .serve(&c.id, netns, files.upstreams)
                .map_err(|e| Error::Task(format!("network setup: {e}")))?;
        }
        Ok(())
    }
}
