//! A network's record (what survives the daemon) and its docker JSON.
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One IPAM pool of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub ip_range: Option<Ipv4Net>,
    /// `--aux-address`: name → address, never handed out.
    #[serde(default)]
    pub aux: BTreeMap<String, Ipv4Addr>,
}

/// One IPv6 IPAM pool of a network (`--ipv6 --subnet fd00::/64`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool6 {
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
    pub ip_range: Option<Ipv6Net>,
}

/// A container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub container_name: String,
    pub endpoint_id: String,
    pub ip: Option<Ipv4Addr>,
    /// Asked for with `--ip` (kept across restarts as docker's IPAMConfig).
    pub static_ip: bool,
    /// Its IPv6 address, on a network with `EnableIPv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// Asked for with `--ip6`.
    #[serde(default)]
    pub static_ip6: bool,
    pub mac: String,
    pub aliases: Vec<String>,
    /// The container's published ports on this network, while it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<super::ports::PortMapping>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub created: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    pub ipv6: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub pools: Vec<Pool>,
    /// IPv6 pools (addresses are handed out from them only when `ipv6` is on, as docker does).
    #[serde(default)]
    pub pools6: Vec<Pool6>,
    /// Container id → endpoint.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// `bridge`, `host`, `none`: made by the daemon, never removed.
    pub predefined: bool,
}

/// docker's `com.docker.network.bridge.name` option.
pub const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

impl Network {
    /// Addresses that are not free: gateways, aux addresses, endpoints.
    pub fn used(&self) -> BTreeSet<Ipv4Addr> {
        let mut used: BTreeSet<Ipv4Addr> = self
            .pools
            .iter()
            .flat_map(|p| std::iter::once(p.gateway).chain(p.aux.values().copied()))
            .collect();
        used.extend(self.endpoints.values().filter_map(|e| e.ip));
        used
    }

    /// IPv6 addresses that are not free: gateways, endpoints.
    pub fn used6(&self) -> BTreeSet<Ipv6Addr> {
        let mut used: BTreeSet<Ipv6Addr> = self.pools6.iter().map(|p| p.gateway).collect();
        used.extend(self.endpoints.values().filter_map(|e| e.ip6));
        used
    }

    /// The IPv6 pool holding `ip`.
    pub fn pool6_of(&self, ip: Ipv6Addr) -> Option<&Pool6> {
        self.pools6.iter().find(|p| p.subnet.contains(&ip))
    }

    /// The IPv6 pool that addresses come from: the first, when the network has IPv6 on.
    pub fn v6(&self) -> Option<&Pool6> {
        self.pools6.first().filter(|_| self.ipv6)
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    /// Whether this is a user-defined network (docker's `type=custom`).
    pub fn is_custom(&self) -> bool {
        !self.predefined
    }

    /// The kernel bridge of a bridge network.
    pub fn bridge_name(&self) -> Option<String> {
        if self.driver != "bridge" {
            return None;
        }
        Some(
            self.options
                .get(BRIDGE_NAME_OPTION)
                .cloned()
                .unwrap_or_else(|| format!("br-{}", self.short_id())),
        )
    }

    /// The pool holding `ip`.
    pub fn pool_of(&self, ip: Ipv4Addr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.subnet.contains(&ip))
    }

    /// Docker's `NetworkResource` (`GET /networks/{id}`); `containers` adds the endpoints.
    pub fn to_json(&self, containers: bool) -> Value {
        let mut config: Vec<Value> = self
            .pools
            .iter()
            .map(|p| {
                let mut c =
                    json!({ "Subnet": p.subnet.to_string(), "Gateway": p.gateway.to_string() });
                if let Some(r) = p.ip_range {
                    c["IPRange"] = json!(r.to_string());
                }
                if !p.aux.is_empty() {
                    c["AuxiliaryAddresses"] = json!(p
                        .aux
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect::<BTreeMap<_, _>>());
                }
                c
            })
            .collect();
        config.extend(self.pools6.iter().map(|p| {
            let mut c = json!({ "Subnet": p.subnet.to_string(), "Gateway": p.gateway.to_string() });
            if let Some(r) = p.ip_range {
                c["IPRange"] = json!(r.to_string());
            }
            c
        }));
        let mut v = json!({
            "Name": self.name,
            "Id": self.id,
            "Created": self.created,
            "Scope": "local",
            "Driver": self.driver,
            "EnableIPv6": self.ipv6,
            "IPAM": { "Driver": "default", "Options": null, "Config": config },
            "Internal": self.internal,
            "Attachable": self.attachable,
            "Ingress": false,
            "ConfigFrom": { "Network": "" },
            "ConfigOnly": false,
            "Containers": {},
            "Options": self.options,
            "Labels": self.labels,
        });
        if containers {
            v["Containers"] = self
                .endpoints
                .iter()
                .map(|(id, e)| (id.clone(), self.endpoint_json(e)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        v
    }

    fn endpoint_json(&self, e: &Endpoint) -> Value {
        let ip = e.ip.and_then(|ip| {
            self.pool_of(ip)
                .map(|p| format!("{ip}/{}", p.subnet.prefix_len()))
        });
        let ip6 = e.ip6.and_then(|ip| {
            self.pool6_of(ip)
                .map(|p| format!("{ip}/{}", p.subnet.prefix_len()))
        });
        json!({
            "Name": e.container_name,
            "EndpointID": e.endpoint_id,
            "MacAddress": e.mac,
            "IPv4Address": ip.unwrap_or_default(),
            "IPv6Address": ip6.unwrap_or_default(),
        })
    }

    /// Docker's `EndpointSettings` of a container on this network (container inspect).
    pub fn endpoint_settings(&self, e: &Endpoint) -> Value {
        let pool = e.ip.and_then(|ip| self.pool_of(ip));
        let pool6 = e.ip6.and_then(|ip| self.pool6_of(ip));
        let mut ipam = serde_json::Map::new();
        if let (true, Some(ip)) = (e.static_ip, e.ip) {
            ipam.insert("IPv4Address".into(), json!(ip.to_string()));
        }
        if let (true, Some(ip)) = (e.static_ip6, e.ip6) {
            ipam.insert("IPv6Address".into(), json!(ip.to_string()));
        }
        let ipam = if ipam.is_empty() {
            Value::Null
        } else {
            Value::Object(ipam)
        };
        json!({
            "IPAMConfig": ipam,
            "Links": null,
            "Aliases": if e.aliases.is_empty() { Value::Null } else { json!(e.aliases) },
            "NetworkID": self.id,
            "EndpointID": e.endpoint_id,
            "Gateway": pool.map(|p| p.gateway.to_string()).unwrap_or_default(),
            "IPAddress": e.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "IPPrefixLen": pool.map(|p| p.subnet.prefix_len()).unwrap_or(0),
            "IPv6Gateway": pool6.map(|p| p.gateway.to_string()).unwrap_or_default(),
            "GlobalIPv6Address": e.ip6.map(|ip| ip.to_string()).unwrap_or_default(),
            "GlobalIPv6PrefixLen": pool6.map(|p| p.subnet.prefix_len()).unwrap_or(0),
            "MacAddress": e.mac,
            "DriverOpts": null,
        })
    }
}

/// Docker's MAC for an address: 02:42 and the four bytes of the IPv4 address.
pub fn mac_of(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}
