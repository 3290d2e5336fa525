//! A container's name resolution: its `/etc/hosts` and `/etc/resolv.conf` (written at
//! create, again at each start and at each live connect/disconnect), the checks of
//! `--add-host` and `--dns` at create, and its embedded DNS responder while it runs.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use serde_json::Value;

use super::record::Container;
use super::service::{io_at, ContainerService, Error};
use crate::network::hosts::{self, ExtraHost};
use crate::network::resolvconf::{self, Asked, Mode};

/// What a container's files say, and where its responder forwards to.
#[derive(Debug, Clone)]
pub struct NameFiles {
    pub hosts: String,
    pub resolv_conf: String,
    /// On a user-defined network: served by the embedded resolver.
    pub embedded: bool,
    pub upstreams: Vec<SocketAddr>,
}

impl NameFiles {
    /// Writes `hosts` and `resolv.conf` into the container's files directory, in place (the
    /// files are bind-mounted into a running container: same inode).
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        for (name, text) in [("hosts", &self.hosts), ("resolv.conf", &self.resolv_conf)] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(io_at(&path))?;
        }
        Ok(())
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

fn asked(host_config: &Value) -> Asked {
    Asked {
        dns: strings(&host_config["Dns"]),
        search: strings(&host_config["DnsSearch"]),
        options: strings(&host_config["DnsOptions"]),
    }
}

impl ContainerService {
    /// The default bridge's gateway: what `host-gateway` stands for.
    fn host_gateway(&self) -> Ipv4Addr {
        self.networks
            .find("bridge")
            .ok()
            .and_then(|n| n.pools.first().map(|p| p.gateway))
            .unwrap_or(Ipv4Addr::new(172, 17, 0, 1))
    }

    /// Create's checks of `HostConfig.ExtraHosts` and `HostConfig.Dns`: docker's words, 400.
    pub(super) fn check_names(&self, body: &Value) -> Result<(), Error> {
        let host_config = &body["HostConfig"];
        hosts::parse_extra(&strings(&host_config["ExtraHosts"]), self.host_gateway())
            .map_err(Error::Invalid)?;
        resolvconf::check(&asked(host_config)).map_err(Error::Invalid)
    }

    /// The files `c` gets now, from its endpoints and flags.
    pub(super) fn name_files(&self, c: &Container) -> NameFiles {
        let host_network = c.host_config["NetworkMode"].as_str() == Some("host");
        let hostname = c.config["Hostname"].as_str().unwrap_or("").to_string();
        let extra: Vec<ExtraHost> =
            hosts::parse_extra(&strings(&c.host_config["ExtraHosts"]), self.host_gateway())
                .unwrap_or_default();
        let mut own = Vec::new();
        for (n, e) in self.networks.endpoints_of(&c.id) {
            let Some(ip) = e.ip.filter(|_| !n.predefined) else {
                continue;
            };
            let mut names = vec![hostname.clone(), c.name.clone()];
            names.extend(e.aliases.iter().cloned());
            own.push((ip.into(), names.clone()));
            if let Some(ip6) = e.ip6.filter(|_| n.ipv6) {
                own.push((ip6.into(), names));
            }
        }
        let embedded = !host_network && !own.is_empty();
        let mode = match (host_network, embedded) {
            (true, _) => Mode::Host,
            (false, true) => Mode::Embedded,
            (false, false) => Mode::Plain,
        };
        let host_text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let host = resolvconf::host();
        let asked = asked(&c.host_config);
        NameFiles {
            hosts: hosts::render(host_network, &extra, &own),
            resolv_conf: resolvconf::render(mode, &host, &host_text, &asked),
            embedded,
            upstreams: resolvconf::upstreams(&host, &asked),
        }
    }

    /// After a daemon start: the responder of a running container on user-defined networks,
    /// made again in its (still living) namespace.
    pub(super) fn restore_dns(&self, c: &Container) {
        let netns = self.netns_path(&c.id);
        let files = self.name_files(c);
        if !files.embedded || !netns.exists() {
            return;
        }
        match self.dns.serve(&c.id, &netns, files.upstreams) {
            Ok(()) => tracing::info!(id = %c.id, "DNS responder restored"),
            Err(e) => tracing::warn!(id = %c.id, error = %e, "DNS responder not restored"),
        }
    }
}
