//! The network service: the predefined networks, user-defined bridge networks, and IPAM.
//!
//! All networks live in memory behind one lock and in the store; every change of a network
//! (its creation, an address reserved or released) is written before the lock is let go, so
//! no address is handed out twice and a restarted daemon finds what it had.
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Deserialize;

use super::ipam::{self, AddressPool};
use super::record::{mac_of, Endpoint, Network, Pool, Pool6, BRIDGE_NAME_OPTION};
use super::store::{Store, StoreError};

/// Errors of the network service, each with docker's status code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    /// The kernel refused (nftables, a host port): docker's 500.
    #[error("{0}")]
    System(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::Forbidden(_) => 403,
            Error::Invalid(_) => 400,
            Error::Unavailable(_) => 503,
            Error::System(_) | Error::Store(_) => 500,
        }
    }
}

impl From<ipam::IpamError> for Error {
    fn from(e: ipam::IpamError) -> Self {
        Error::Invalid(e.to_string())
    }
}

/// Daemon flags of the network service.
#[derive(Debug, Clone)]
pub struct Options {
    pub data_root: PathBuf,
    /// `--bip`: the default bridge's gateway address and subnet.
    pub bip: String,
    /// `--bridge`: the default bridge's kernel name.
    pub bridge: String,
    /// `--default-address-pool`: where subnets of networks without `--subnet` come from.
    pub pools: Vec<AddressPool>,
    /// `--iptables`: berth keeps its nftables table (masquerade, isolation, published ports).
    pub firewall: bool,
}

/// docker's `POST /networks/create` body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateRequest {
    pub name: String,
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Option<IpamRequest>,
    pub options: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamRequest {
    pub driver: String,
    pub config: Option<Vec<PoolRequest>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PoolRequest {
    pub subnet: String,
    #[serde(rename = "IPRange")]
    pub ip_range: String,
    pub gateway: String,
    pub auxiliary_addresses: Option<BTreeMap<String, String>>,
}

/// What a container asks of a network it joins.
#[derive(Debug, Clone, Default)]
pub struct EndpointRequest {
    pub ipv4: String,
    /// `--ip6`.
    pub ipv6: String,
    pub aliases: Vec<String>,
    /// `--mac-address`; empty: docker's MAC of the address.
    pub mac: String,
}

pub struct NetworkService {
    pub(super) store: Store,
    networks: Mutex<HashMap<String, Network>>,
    pools: Vec<AddressPool>,
    pub(super) firewall: bool,
    /// The host ports of published ports, held by container id.
    pub(super) held: Mutex<HashMap<String, Vec<super::ports::Held>>>,
}

impl std::fmt::Debug for NetworkService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkService").finish_non_exhaustive()
    }
}

fn new_id() -> String {
    crate::containers::service::random_hex()
}

fn now() -> String {
    crate::containers::record::now()
}

/// Docker's rule for object names.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn predefined(name: &str, driver: &str) -> Network {
    Network {
        id: new_id(),
        name: name.into(),
        created: now(),
        driver: driver.into(),
        internal: false,
        attachable: false,
        ipv6: false,
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
        pools: Vec::new(),
        pools6: Vec::new(),
        endpoints: BTreeMap::new(),
        predefined: true,
    }
}

/// The default bridge's options, as dockerd shows them.
fn default_bridge_options(bridge: &str) -> BTreeMap<String, String> {
    [
        ("com.docker.network.bridge.default_bridge", "true"),
        ("com.docker.network.bridge.enable_icc", "true"),
        ("com.docker.network.bridge.enable_ip_masquerade", "true"),
        ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
        (BRIDGE_NAME_OPTION, bridge),
        ("com.docker.network.driver.mtu", "1500"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl NetworkService {
    /// Opens the store and makes (or updates, after a `--bip` change) the predefined networks.
    pub fn open(options: &Options) -> Result<NetworkService, Error> {
        let store = super::store::open(&options.data_root)?;
        let mut networks: HashMap<String, Network> = store
            .list()?
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect();
        let (gateway, subnet) =
            ipam::parse_cidr(&options.bip).map_err(|e| Error::Invalid(format!("--bip: {e}")))?;
        let pool = Pool {
            subnet,
            gateway,
            ip_range: None,
            aux: BTreeMap::new(),
        };
        for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
            let existing = networks.values().find(|n| n.predefined && n.name == name);
            let mut n = existing
                .cloned()
                .unwrap_or_else(|| predefined(name, driver));
            if name == "bridge" {
                n.options = default_bridge_options(&options.bridge);
                if n.pools != [pool.clone()] {
                    n.pools = vec![pool.clone()];
                    // Addresses of the old subnet are handed out anew at the next start.
                    n.endpoints.values_mut().for_each(|e| e.ip = None);
                }
            }
            if existing != Some(&n) {
                store.put(&n)?;
            }
            networks.insert(n.id.clone(), n);
        }
        let service = NetworkService {
            store,
            networks: Mutex::new(networks),
            pools: options.pools.clone(),
            firewall: options.firewall,
            held: Mutex::new(HashMap::new()),
        };
        service.restore_firewall()?;
        Ok(service)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, Network>> {
        self.networks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` over the networks under the lock (the DNS responder reads them per query).
    pub fn with_networks<T>(&self, f: impl FnOnce(&HashMap<String, Network>) -> T) -> T {
        f(&self.lock())
    }

    /// Every network, predefined ones first, then by name.
    pub fn list(&self) -> Vec<Network> {
        let mut out: Vec<Network> = self.lock().values().cloned().collect();
        out.sort_by(|a, b| (!a.predefined, &a.name).cmp(&(!b.predefined, &b.name)));
        out
    }

    /// A network by full id, name, or unique id prefix (docker's order).
    pub fn find(&self, name_or_id: &str) -> Result<Network, Error> {
        find_in(&self.lock(), name_or_id).cloned()
    }

    /// `POST /networks/create`.
    pub fn create(&self, req: &CreateRequest) -> Result<Network, Error> {
        if !valid_name(&req.name) {
            return Err(Error::Invalid(format!(
                "invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                req.name
            )));
        }
        match req.driver.as_str() {
            "" | "bridge" => {}
            "host" | "null" => {
                return Err(Error::Forbidden(format!(
                    "only one instance of \"{}\" network is allowed",
                    if req.driver == "null" { "none" } else { "host" }
                )))
            }
            d => {
                return Err(Error::NotFound(format!(
                    "could not find plugin {d} in v1 plugin registry: plugin not found"
                )))
            }
        }
        if let Some(d) = req.ipam.as_ref().map(|i| i.driver.as_str()) {
            if !matches!(d, "" | "default") {
                return Err(Error::NotFound(format!(
                    "could not find plugin {d} in v1 plugin registry: plugin not found"
                )));
            }
        }
        let (requested6, requested): (Vec<PoolRequest>, Vec<PoolRequest>) = req
            .ipam
            .as_ref()
            .and_then(|i| i.config.clone())
            .unwrap_or_default()
            .into_iter()
            .partition(|p| p.subnet.contains(':'));
        let mut networks = self.lock();
        if networks.values().any(|n| n.name == req.name) {
            return Err(Error::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let taken: Vec<Ipv4Net> = networks
            .values()
            .flat_map(|n| n.pools.iter().map(|p| p.subnet))
            .collect();
        let pools = if requested.is_empty() {
            vec![self.default_pool(&taken)?]
        } else {
            requested_pools(&requested, &taken)?
        };
        let taken6: Vec<Ipv6Net> = networks
            .values()
            .flat_map(|n| n.pools6.iter().map(|p| p.subnet))
            .collect();
        let pools6 = requested_pools6(&requested6, &taken6)?;
        if req.enable_ipv6 && pools6.is_empty() {
            // docker 20.10 has no default IPv6 pools.
            return Err(Error::Forbidden(
                "could not find an available, non-overlapping IPv6 address pool among the \
                 defaults to assign to the network"
                    .into(),
            ));
        }
        let mut options = req.options.clone().unwrap_or_default();
        if let Some(bridge) = options.get(BRIDGE_NAME_OPTION) {
            check_bridge_name(bridge, &networks)?;
        }
        options.retain(|_, v| !v.is_empty());
        let n = Network {
            id: new_id(),
            name: req.name.clone(),
            created: now(),
            driver: "bridge".into(),
            internal: req.internal,
            attachable: req.attachable,
            ipv6: req.enable_ipv6,
            options,
            labels: req.labels.clone().unwrap_or_default(),
            pools,
            pools6,
            endpoints: BTreeMap::new(),
            predefined: false,
        };
        networks.insert(n.id.clone(), n.clone());
        if let Err(e) = self.sync_firewall(&networks) {
            networks.remove(&n.id);
            return Err(e);
        }
        self.store.put(&n)?;
        tracing::info!(id = %n.id, name = %n.name, "network created");
        Ok(n)
    }

    fn default_pool(&self, taken: &[Ipv4Net]) -> Result<Pool, Error> {
        let mut avoid = taken.to_vec();
        avoid.extend(ipam::host_routes());
        let subnet = ipam::free_subnet(&self.pools, &avoid).ok_or_else(|| {
            Error::Forbidden(
                "could not find an available, non-overlapping IPv4 address pool among the \
                 defaults to assign to the network"
                    .into(),
            )
        })?;
        Ok(Pool {
            subnet,
            gateway: ipam::first_host(&subnet),
            ip_range: None,
            aux: BTreeMap::new(),
        })
    }

    /// `DELETE /networks/{id}`.
    pub fn remove(&self, name_or_id: &str) -> Result<Network, Error> {
        let mut networks = self.lock();
        let n = find_in(&networks, name_or_id)?.clone();
        if n.predefined {
            return Err(Error::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if !n.endpoints.is_empty() {
            return Err(Error::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        self.store.remove(&n.id)?;
        networks.remove(&n.id);
        self.sync_firewall(&networks)?;
        drop(networks);
        if let Some(bridge) = super::publish::plumbed_bridge(&n) {
            if let Err(e) = super::link::remove_bridge(&bridge) {
                tracing::warn!(network = %n.name, error = %e, "removing the bridge");
            }
        }
        tracing::info!(id = %n.id, name = %n.name, "network removed");
        Ok(n)
    }

    /// `POST /networks/prune`: user-defined networks without endpoints that `keep` spares not.
    pub fn prune(&self, keep: impl Fn(&Network) -> bool) -> Result<Vec<Network>, Error> {
        let mut networks = self.lock();
        let gone: Vec<Network> = networks
            .values()
            .filter(|n| !n.predefined && n.endpoints.is_empty() && !keep(n))
            .cloned()
            .collect();
        for n in &gone {
            self.store.remove(&n.id)?;
            networks.remove(&n.id);
        }
        if !gone.is_empty() {
            self.sync_firewall(&networks)?;
        }
        Ok(gone)
    }

    /// Reserves an endpoint (and an address) for a container on a network.
    pub fn connect(
        &self,
        name_or_id: &str,
        container_id: &str,
        container_name: &str,
        req: &EndpointRequest,
    ) -> Result<(Network, Endpoint), Error> {
        let mut networks = self.lock();
        let mut n = find_in(&networks, name_or_id)?.clone();
        if n.driver != "bridge" {
            return Err(Error::Forbidden(format!(
                "container cannot be connected to network {}: it is the {} network mode",
                n.name, n.name
            )));
        }
        if n.endpoints.contains_key(container_id) {
            return Err(Error::Forbidden(format!(
                "endpoint with name {container_name} already exists in network {}",
                n.name
            )));
        }
        if n.predefined && !(req.ipv4.is_empty() && req.ipv6.is_empty()) {
            return Err(Error::Invalid(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if n.predefined && !req.aliases.is_empty() {
            return Err(Error::Invalid(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        let mac = match req.mac.as_str() {
            "" => None,
            m => Some(parse_mac(m)?),
        };
        let ip = if req.ipv4.is_empty() {
            next_address(&n)?
        } else {
            static_address(&n, &req.ipv4)?
        };
        let ip6 = match (n.v6(), req.ipv6.as_str()) {
            (None, "") => None,
            (None, text) => {
                return Err(Error::Invalid(format!(
                    "Invalid address {text}: It does not belong to any of this network's \
                     subnets (the network has no IPv6)"
                )))
            }
            (Some(_), "") => Some(next_address6(&n)?),
            (Some(_), text) => Some(static_address6(&n, text)?),
        };
        let e = Endpoint {
            container_name: container_name.to_string(),
            endpoint_id: new_id(),
            ip: Some(ip),
            static_ip: !req.ipv4.is_empty(),
            ip6,
            static_ip6: ip6.is_some() && !req.ipv6.is_empty(),
            mac: mac.unwrap_or_else(|| mac_of(ip)),
            aliases: req.aliases.clone(),
            ports: Vec::new(),
        };
        n.endpoints.insert(container_id.to_string(), e.clone());
        self.store.put(&n)?;
        networks.insert(n.id.clone(), n.clone());
        tracing::info!(network = %n.name, container = container_id, %ip, "endpoint reserved");
        Ok((n, e))
    }

    /// Releases a container's endpoint on a network.
    pub fn disconnect(&self, name_or_id: &str, container_id: &str) -> Result<Network, Error> {
        let mut networks = self.lock();
        let mut n = find_in(&networks, name_or_id)?.clone();
        let Some(gone) = n.endpoints.remove(container_id) else {
            return Err(Error::Forbidden(format!(
                "container {container_id} is not connected to network {}",
                n.name
            )));
        };
        self.store.put(&n)?;
        networks.insert(n.id.clone(), n.clone());
        self.ports_gone(&networks, container_id, &gone)?;
        Ok(n)
    }

    /// Releases every endpoint of a removed container.
    pub fn release_all(&self, container_id: &str) -> Result<(), Error> {
        let mut networks = self.lock();
        let mut gone = Vec::new();
        for n in networks.values_mut() {
            if let Some(e) = n.endpoints.remove(container_id) {
                self.store.put(n)?;
                gone.push(e);
            }
        }
        for e in gone {
            self.ports_gone(&networks, container_id, &e)?;
        }
        Ok(())
    }

    /// Renames a container in its endpoints.
    pub fn rename(&self, container_id: &str, name: &str) -> Result<(), Error> {
        let mut networks = self.lock();
        for n in networks.values_mut() {
            if let Some(e) = n.endpoints.get_mut(container_id) {
                e.container_name = name.to_string();
                self.store.put(n)?;
            }
        }
        Ok(())
    }

    /// The networks a container is on, by name, with its endpoint on each.
    pub fn endpoints_of(&self, container_id: &str) -> Vec<(Network, Endpoint)> {
        let mut out: Vec<(Network, Endpoint)> = self
            .lock()
            .values()
            .filter_map(|n| Some((n.clone(), n.endpoints.get(container_id)?.clone())))
            .collect();
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        out
    }
}

fn find_in<'a>(networks: &'a HashMap<String, Network>, key: &str) -> Result<&'a Network, Error> {
    let not_found = || Error::NotFound(format!("network {key} not found"));
    if key.is_empty() {
        return Err(not_found());
    }
    if let Some(n) = networks.get(key) {
        return Ok(n);
    }
    if let Some(n) = networks.values().find(|n| n.name == key) {
        return Ok(n);
    }
    let matches: Vec<&Network> = networks
        .values()
        .filter(|n| n.id.starts_with(key))
        .collect();
    match matches.as_slice() {
        [n] => Ok(n),
        [] => Err(not_found()),
        _ => Err(Error::NotFound(format!(
            "network {key} is ambiguous ({} matches found based on ID prefix)",
            matches.len()
        ))),
    }
}

fn check_bridge_name(bridge: &str, networks: &HashMap<String, Network>) -> Result<(), Error> {
    if bridge.is_empty() || bridge.len() > 15 || bridge.contains(['/', ' ']) {
        return Err(Error::Invalid(format!(
            "invalid bridge name {bridge:?}: at most 15 characters, no '/' or spaces"
        )));
    }
    if networks
        .values()
        .any(|n| n.bridge_name().as_deref() == Some(bridge))
    {
        return Err(Error::Forbidden(format!(
            "bridge name {bridge} is already used by another network"
        )));
    }
    Ok(())
}

/// The pools of `--subnet`/`--gateway`/`--ip-range`/`--aux-address`, checked.
fn requested_pools(requested: &[PoolRequest], taken: &[Ipv4Net]) -> Result<Vec<Pool>, Error> {
    let mut pools: Vec<Pool> = Vec::new();
    for r in requested {
        if r.subnet.is_empty() {
            return Err(Error::Invalid(
                "invalid pool request: a pool needs a subnet".into(),
            ));
        }
        let subnet = ipam::parse_subnet(&r.subnet)?;
        if taken
            .iter()
            .chain(pools.iter().map(|p| &p.subnet))
            .any(|t| ipam::overlaps(t, &subnet))
        {
            return Err(Error::Forbidden(
                "Pool overlaps with other one on this address space".into(),
            ));
        }
        let inside = |what: &str, ip: Ipv4Addr| {
            if subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast() {
                Ok(ip)
            } else {
                Err(Error::Invalid(format!(
                    "invalid pool request: {what} {ip} is not a host address of subnet {subnet}"
                )))
            }
        };
        let gateway = match r.gateway.as_str() {
            "" => ipam::first_host(&subnet),
            g => inside("gateway", ipam::parse_address(g)?)?,
        };
        let ip_range = match r.ip_range.as_str() {
            "" => None,
            text => {
                let range = ipam::parse_subnet(text)?;
                if !subnet.contains(&range) {
                    return Err(Error::Invalid(format!(
                        "invalid pool request: ip range {range} is not within subnet {subnet}"
                    )));
                }
                Some(range)
            }
        };
        let mut aux = BTreeMap::new();
        for (name, a) in r.auxiliary_addresses.clone().unwrap_or_default() {
            aux.insert(name, inside("aux address", ipam::parse_address(&a)?)?);
        }
        pools.push(Pool {
            subnet,
            gateway,
            ip_range,
            aux,
        });
    }
    Ok(pools)
}

/// The IPv6 pools of `--subnet`/`--gateway`/`--ip-range` with an IPv6 subnet, checked.
fn requested_pools6(requested: &[PoolRequest], taken: &[Ipv6Net]) -> Result<Vec<Pool6>, Error> {
    let mut pools: Vec<Pool6> = Vec::new();
    for r in requested {
        let subnet = ipam::parse_subnet6(&r.subnet).map_err(|e| match e {
            ipam::IpamError::Cidr(_) => {
                Error::Invalid(format!("Invalid subnet {} : {e}", r.subnet))
            }
            e => e.into(),
        })?;
        if taken
            .iter()
            .chain(pools.iter().map(|p| &p.subnet))
            .any(|t| ipam::overlaps6(t, &subnet))
        {
            return Err(Error::Forbidden(
                "Pool overlaps with other one on this address space".into(),
            ));
        }
        let inside = |what: &str, ip: Ipv6Addr| {
            if subnet.contains(&ip) && ip != subnet.network() {
                Ok(ip)
            } else {
                Err(Error::Invalid(format!(
                    "invalid pool request: {what} {ip} is not a host address of subnet {subnet}"
                )))
            }
        };
        let gateway = match r.gateway.as_str() {
            "" => ipam::first_host6(&subnet),
            g => inside("gateway", ipam::parse_address6(g)?)?,
        };
        let ip_range = match r.ip_range.as_str() {
            "" => None,
            text => {
                let range = ipam::parse_subnet6(text)?;
                if !subnet.contains(&range) {
                    return Err(Error::Invalid(format!(
                        "invalid pool request: ip range {range} is not within subnet {subnet}"
                    )));
                }
                Some(range)
            }
        };
        pools.push(Pool6 {
            subnet,
            gateway,
            ip_range,
        });
    }
    Ok(pools)
}

/// A `--mac-address`: six hex bytes, `:`-separated, unicast; lower-cased.
fn parse_mac(text: &str) -> Result<String, Error> {
    let bad = || {
        Error::Invalid(format!(
            "invalid MAC address {text:?}: want six hex bytes like 92:d0:c6:0a:29:33"
        ))
    };
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| {
            if b.len() == 2 {
                u8::from_str_radix(b, 16).ok()
            } else {
                None
            }
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    if bytes.len() != 6 || bytes[0] & 1 == 1 {
        return Err(bad());
    }
    Ok(text.to_ascii_lowercase())
}

fn next_address(n: &Network) -> Result<Ipv4Addr, Error> {
    let used = n.used();
    n.pools
        .iter()
        .find_map(|p| ipam::next_free(&p.subnet, p.ip_range.as_ref(), &used))
        .ok_or_else(|| {
            Error::Unavailable(format!(
                "no available IPv4 addresses on this network's address pools: {} ({})",
                n.name, n.id
            ))
        })
}

fn static_address(n: &Network, text: &str) -> Result<Ipv4Addr, Error> {
    let ip: Ipv4Addr = text
        .parse()
        .map_err(|_| Error::Invalid(format!("invalid IPv4 address: {text}")))?;
    let pool = n
        .pools
        .iter()
        .find(|p| p.subnet.contains(&ip) && ip != p.subnet.network() && ip != p.subnet.broadcast())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "Invalid address {ip}: It does not belong to any of this network's subnets"
            ))
        })?;
    let _ = pool;
    if n.used().contains(&ip) {
        return Err(Error::Forbidden(format!(
            "Address already in use: {ip} on network {}",
            n.name
        )));
    }
    Ok(ip)
}

fn next_address6(n: &Network) -> Result<Ipv6Addr, Error> {
    let used = n.used6();
    n.v6()
        .and_then(|p| ipam::next_free6(&p.subnet, p.ip_range.as_ref(), &used))
        .ok_or_else(|| {
            Error::Unavailable(format!(
                "no available IPv6 addresses on this network's address pools: {} ({})",
                n.name, n.id
            ))
        })
}

fn static_address6(n: &Network, text: &str) -> Result<Ipv6Addr, Error> {
    let ip: Ipv6Addr = text
        .parse()
        .map_err(|_| Error::Invalid(format!("invalid IPv6 address: {text}")))?;
    if !n
        .pools6
        .iter()
        .any(|p| p.subnet.contains(&ip) && ip != p.subnet.network())
    {
        return Err(Error::Invalid(format!(
            "Invalid address {ip}: It does not belong to any of this network's subnets"
        )));
    }
    if n.used6().contains(&ip) {
        return Err(Error::Forbidden(format!(
            "Address already in use: {ip} on network {}",
            n.name
        )));
    }
    Ok(ip)
}

#[cfg(test)]
mod tests;
