//! The compose model: services, networks and volumes read from the merged, interpolated tree.
//! Unknown keys and wrong types are refused with their path; `x-` keys are extensions.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{self, Kind};
pub use super::files::{FileObject, FileRef};
use super::read::{At, Child};
use super::Error;

const SERVICE_KEYS: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "volumes",
    "tmpfs",
    "networks",
    "network_mode",
    "depends_on",
    "healthcheck",
    "restart",
    "deploy",
    "scale",
    "labels",
    "user",
    "working_dir",
    "hostname",
    "domainname",
    "cap_add",
    "cap_drop",
    "privileged",
    "read_only",
    "init",
    "stop_signal",
    "stop_grace_period",
    "logging",
    "ulimits",
    "sysctls",
    "extra_hosts",
    "dns",
    "dns_search",
    "dns_opt",
    "shm_size",
    "devices",
    "profiles",
    "container_name",
    "stdin_open",
    "tty",
    "pull_policy",
    "platform",
    "mem_limit",
    "pids_limit",
    "security_opt",
    "annotations",
    "links",
    "external_links",
    "group_add",
    "pid",
    "ipc",
    "mac_address",
    "secrets",
    "configs",
];

/// A whole project, as `up` and `config` see it.
#[derive(Debug, Clone, Serialize)]
pub struct Project {
    pub name: String,
    #[serde(skip)]
    pub working_dir: PathBuf,
    #[serde(skip)]
    pub config_files: Vec<PathBuf>,
    pub services: BTreeMap<String, Service>,
    /// Services whose profiles are not active.
    #[serde(skip)]
    pub disabled: BTreeMap<String, Service>,
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, Volume>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileObject>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileObject>,
}

impl Project {
    /// An empty project of that name and directory.
    pub fn new(name: &str, working_dir: &Path, config_files: Vec<PathBuf>) -> Self {
        Project {
            name: name.to_string(),
            working_dir: working_dir.to_path_buf(),
            config_files,
            services: BTreeMap::new(),
            disabled: BTreeMap::new(),
            networks: BTreeMap::new(),
            volumes: BTreeMap::new(),
            secrets: BTreeMap::new(),
            configs: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Service {
    #[serde(skip)]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// Networks and this service's endpoint settings on each.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Dependency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// `deploy.replicas` or `scale` (not part of the config hash).
    #[serde(skip)]
    pub scale: Option<u32>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, (i64, i64)>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileRef>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Build {
    pub context: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Port {
    pub target: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    pub protocol: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Mount {
    /// `volume`, `bind` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A project volume's key, a host path (absolute), or none (anonymous, tmpfs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub target: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_size: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Endpoint {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dependency {
    /// `service_started`, `service_healthy` or `service_completed_successfully`.
    pub condition: String,
    pub required: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Healthcheck {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disable: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Logging {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Network {
    /// The engine's name: `P_KEY`, `name:`, or the external name.
    pub name: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub attachable: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipam: Vec<IpamConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam_driver: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IpamConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Volume {
    pub name: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn opt<T>(
    at: At<'_>,
    key: &str,
    f: impl Fn(At<'_>) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    at.get(key).map(|c| f(c.at())).transpose()
}

fn strings(at: At<'_>, key: &str) -> Result<Vec<String>, Error> {
    Ok(opt(at, key, |a| a.string_or_list())?.unwrap_or_default())
}

fn flag(at: At<'_>, key: &str) -> Result<bool, Error> {
    Ok(opt(at, key, |a| a.bool())?.unwrap_or(false))
}

fn plain_map(at: At<'_>) -> Result<BTreeMap<String, String>, Error> {
    Ok(at
        .string_map()?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// Reads one service; `dir` resolves relative paths (build contexts, binds, env files).
pub fn service(name: &str, c: &Child<'_>, dir: &Path) -> Result<Service, Error> {
    let at = c.at();
    at.only_keys(SERVICE_KEYS)?;
    let mut s = Service {
        name: name.to_string(),
        image: opt(at, "image", |a| a.string())?,
        build: opt(at, "build", |a| build(a, dir))?,
        command: opt(at, "command", |a| a.command())?,
        entrypoint: opt(at, "entrypoint", |a| a.command())?,
        environment: environment(at, dir)?,
        ports: opt(at, "ports", ports)?.unwrap_or_default(),
        expose: strings(at, "expose")?,
        volumes: opt(at, "volumes", |a| mounts(a, dir))?.unwrap_or_default(),
        tmpfs: strings(at, "tmpfs")?,
        networks: opt(at, "networks", endpoints)?.unwrap_or_default(),
        network_mode: opt(at, "network_mode", |a| a.string())?,
        depends_on: opt(at, "depends_on", dependencies)?.unwrap_or_default(),
        healthcheck: opt(at, "healthcheck", healthcheck)?,
        restart: opt(at, "restart", restart)?,
        labels: opt(at, "labels", plain_map)?.unwrap_or_default(),
        user: opt(at, "user", |a| a.string())?,
        working_dir: opt(at, "working_dir", |a| a.string())?,
        hostname: opt(at, "hostname", |a| a.string())?,
        domainname: opt(at, "domainname", |a| a.string())?,
        cap_add: strings(at, "cap_add")?,
        cap_drop: strings(at, "cap_drop")?,
        privileged: flag(at, "privileged")?,
        read_only: flag(at, "read_only")?,
        init: opt(at, "init", |a| a.bool())?,
        stop_signal: opt(at, "stop_signal", |a| a.string())?,
        stop_grace_period: opt(at, "stop_grace_period", |a| a.duration())?,
        logging: opt(at, "logging", logging)?,
        ulimits: opt(at, "ulimits", ulimits)?.unwrap_or_default(),
        sysctls: opt(at, "sysctls", plain_map)?.unwrap_or_default(),
        extra_hosts: opt(at, "extra_hosts", extra_hosts)?.unwrap_or_default(),
        dns: strings(at, "dns")?,
        dns_search: strings(at, "dns_search")?,
        shm_size: opt(at, "shm_size", |a| a.bytes())?,
        devices: strings(at, "devices")?,
        profiles: strings(at, "profiles")?,
        container_name: opt(at, "container_name", |a| a.string())?,
        stdin_open: flag(at, "stdin_open")?,
        tty: flag(at, "tty")?,
        pull_policy: opt(at, "pull_policy", pull_policy)?,
        memory: opt(at, "mem_limit", |a| a.bytes())?,
        pids_limit: opt(at, "pids_limit", |a| a.int())?,
        security_opt: strings(at, "security_opt")?,
        secrets: opt(at, "secrets", |a| files::references(Kind::Secret, a))?.unwrap_or_default(),
        configs: opt(at, "configs", |a| files::references(Kind::Config, a))?.unwrap_or_default(),
        ..Default::default()
    };
    s.scale = opt(at, "scale", count)?;
    if let Some(d) = at.get("deploy") {
        deploy(d.at(), &mut s)?;
    }
    if s.image.is_none() && s.build.is_none() {
        return Err(at.invalid("has neither an image nor a build context"));
    }
    if s.network_mode.is_some() && !s.networks.is_empty() {
        return Err(at.invalid("network_mode and networks cannot be combined"));
    }
    Ok(s)
}

fn count(a: At<'_>) -> Result<u32, Error> {
    let n = a.int()?;
    u32::try_from(n).map_err(|_| a.invalid(format!("{n} is not a count of containers")))
}

fn pull_policy(a: At<'_>) -> Result<String, Error> {
    let p = a.string()?;
    match p.as_str() {
        "always" | "never" | "missing" | "if_not_present" | "build" | "daily" | "weekly" => Ok(p),
        _ => Err(a.invalid(format!(
            "{p:?} is not a pull policy (always, never, missing, build)"
        ))),
    }
}

fn restart(a: At<'_>) -> Result<String, Error> {
    let r = a.string()?;
    let name = r.split(':').next().unwrap_or("");
    match name {
        "no" | "always" | "on-failure" | "unless-stopped" => Ok(r),
        _ => Err(a.invalid(format!(
            "{r:?} is not a restart policy (no, always, on-failure[:N], unless-stopped)"
        ))),
    }
}

fn deploy(at: At<'_>, s: &mut Service) -> Result<(), Error> {
    at.only_keys(&[
        "replicas",
        "resources",
        "restart_policy",
        "labels",
        "mode",
        "placement",
        "update_config",
        "rollback_config",
        "endpoint_mode",
    ])?;
    if let Some(n) = opt(at, "replicas", count)? {
        s.scale = Some(n);
    }
    let Some(resources) = at.get("resources") else {
        return Ok(());
    };
    resources.at().only_keys(&["limits", "reservations"])?;
    if let Some(limits) = resources.at().get("limits") {
        let l = limits.at();
        l.only_keys(&["cpus", "memory", "pids"])?;
        if let Some(m) = opt(l, "memory", |a| a.bytes())? {
            s.memory = Some(m);
        }
        if let Some(cpus) = opt(l, "cpus", |a| a.float())? {
            s.nano_cpus = Some((cpus * 1e9) as i64);
        }
        if let Some(p) = opt(l, "pids", |a| a.int())? {
            s.pids_limit = Some(p);
        }
    }
    Ok(())
}

fn build(at: At<'_>, dir: &Path) -> Result<Build, Error> {
    at.only_keys(&[
        "context",
        "dockerfile",
        "args",
        "target",
        "labels",
        "network",
        "cache_from",
        "extra_hosts",
        "shm_size",
    ])?;
    let context = opt(at, "context", |a| a.string())?.unwrap_or_else(|| ".".into());
    Ok(Build {
        context: normalize(&dir.join(context)),
        dockerfile: opt(at, "dockerfile", |a| a.string())?,
        args: opt(at, "args", |a| a.string_map())?.unwrap_or_default(),
        target: opt(at, "target", |a| a.string())?,
        labels: opt(at, "labels", plain_map)?.unwrap_or_default(),
        network: opt(at, "network", |a| a.string())?,
    })
}

/// `env_file` entries first, then `environment` over them.
fn environment(at: At<'_>, dir: &Path) -> Result<BTreeMap<String, Option<String>>, Error> {
    let mut env = BTreeMap::new();
    if let Some(files) = at.get("env_file") {
        for item in env_files(files.at())? {
            let path = dir.join(&item.0);
            if !path.exists() && !item.1 {
                continue;
            }
            let pairs = super::env::read(&path).map_err(|e| files.at().invalid(e.to_string()))?;
            for (k, v) in pairs {
                env.insert(k, v);
            }
        }
    }
    if let Some(e) = at.get("environment") {
        env.extend(e.at().string_map()?);
    }
    Ok(env)
}

/// Paths and whether each is required.
fn env_files(at: At<'_>) -> Result<Vec<(String, bool)>, Error> {
    match &at.node.value {
        super::yaml::Value::Seq(_) => at
            .items()?
            .iter()
            .map(|c| match &c.node.value {
                super::yaml::Value::Map(_) => {
                    let a = c.at();
                    a.only_keys(&["path", "required"])?;
                    let path = a.get("path").ok_or_else(|| a.invalid("needs a path"))?;
                    Ok((
                        path.at().string()?,
                        opt(a, "required", |r| r.bool())?.unwrap_or(true),
                    ))
                }
                _ => Ok((c.at().string()?, true)),
            })
            .collect(),
        _ => Ok(vec![(at.string()?, true)]),
    }
}

fn ports(at: At<'_>) -> Result<Vec<Port>, Error> {
    let mut out = Vec::new();
    for item in at.items()? {
        let a = item.at();
        match &item.node.value {
            super::yaml::Value::Map(_) => {
                a.only_keys(&["target", "published", "host_ip", "protocol", "mode", "name"])?;
                let target = a.get("target").ok_or_else(|| a.invalid("needs a target"))?;
                out.push(Port {
                    target: port_number(target.at())?,
                    published: opt(a, "published", |p| p.string())?,
                    host_ip: opt(a, "host_ip", |p| p.string())?,
                    protocol: opt(a, "protocol", |p| p.string())?.unwrap_or_else(|| "tcp".into()),
                });
            }
            super::yaml::Value::Str(_) | super::yaml::Value::Int(_) => {
                out.extend(short_port(&a.string()?).map_err(|m| a.invalid(m))?)
            }
            _ => return Err(a.type_error("a string or a mapping")),
        }
    }
    Ok(out)
}

fn port_number(a: At<'_>) -> Result<u16, Error> {
    let n = a.int()?;
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| a.invalid(format!("{n} is not a port number")))
}

/// `[[ip:]published:]target[/protocol]`, with ranges (`8000-8001:80-81`).
pub fn short_port(text: &str) -> Result<Vec<Port>, String> {
    let bad = || format!("{text:?} is not a port mapping ([[ip:]host:]container[/protocol])");
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((s, p)) if matches!(p, "tcp" | "udp" | "sctp") => (s, p),
        Some(_) => return Err(bad()),
        None => (text, "tcp"),
    };
    // An IPv6 host address is written in brackets.
    let (host_ip, rest) = match spec.strip_prefix('[') {
        Some(r) => {
            let (ip, rest) = r.split_once("]:").ok_or_else(bad)?;
            (Some(ip.to_string()), rest)
        }
        None => match spec.matches(':').count() {
            2 => {
                let (ip, rest) = spec.split_once(':').ok_or_else(bad)?;
                (Some(ip.to_string()).filter(|s| !s.is_empty()), rest)
            }
            _ => (None, spec),
        },
    };
    let (published, target) = match rest.rsplit_once(':') {
        Some((p, t)) => (Some(p).filter(|p| !p.is_empty()), t),
        None => (None, rest),
    };
    let range = |s: &str| -> Result<(u16, u16), String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u16 = a.parse().map_err(|_| bad())?;
        let b: u16 = b.parse().map_err(|_| bad())?;
        if a == 0 || b < a {
            return Err(bad());
        }
        Ok((a, b))
    };
    let (t0, t1) = range(target)?;
    let published = published.map(range).transpose()?;
    if let Some((p0, p1)) = published {
        if p1 - p0 != t1 - t0 && p0 != p1 {
            return Err(format!(
                "{text:?}: the host and container port ranges differ in size"
            ));
        }
    }
    Ok((t0..=t1)
        .enumerate()
        .map(|(i, t)| Port {
            target: t,
            published: published.map(|(p0, p1)| match p0 == p1 {
                true => p0.to_string(),
                false => (p0 + i as u16).to_string(),
            }),
            host_ip: host_ip.clone(),
            protocol: protocol.to_string(),
        })
        .collect())
}

fn mounts(at: At<'_>, dir: &Path) -> Result<Vec<Mount>, Error> {
    let mut out = Vec::new();
    for item in at.items()? {
        let a = item.at();
        let m = match &item.node.value {
            super::yaml::Value::Map(_) => long_mount(a, dir)?,
            super::yaml::Value::Str(_) => {
                short_mount(&a.string()?, dir).map_err(|m| a.invalid(m))?
            }
            _ => return Err(a.type_error("a string or a mapping")),
        };
        out.push(m);
    }
    Ok(out)
}

pub(super) fn host_path(source: &str, dir: &Path) -> String {
    if let Some(rest) = source.strip_prefix("~/") {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        return Path::new(&home).join(rest).display().to_string();
    }
    normalize(&dir.join(source)).display().to_string()
}

/// Drops `.` and resolves `..` lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn is_path(source: &str) -> bool {
    source.starts_with('/') || source.starts_with('.') || source.starts_with('~')
}

/// `target`, `source:target[:mode]`.
pub fn short_mount(text: &str, dir: &Path) -> Result<Mount, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, ""),
        [s, t] => (Some(*s), *t, ""),
        [s, t, m] => (Some(*s), *t, *m),
        _ => return Err(format!("{text:?} is not a volume (source:target[:mode])")),
    };
    if !target.starts_with('/') {
        return Err(format!("{text:?}: the container path must be absolute"));
    }
    let modes: Vec<&str> = mode.split(',').filter(|m| !m.is_empty()).collect();
    for m in &modes {
        if !matches!(
            *m,
            "ro" | "rw"
                | "z"
                | "Z"
                | "nocopy"
                | "shared"
                | "rshared"
                | "slave"
                | "rslave"
                | "private"
                | "rprivate"
                | "cached"
                | "delegated"
                | "consistent"
        ) {
            return Err(format!("{text:?}: unknown mode {m:?}"));
        }
    }
    let kind = match source {
        Some(s) if is_path(s) => "bind",
        _ => "volume",
    };
    Ok(Mount {
        kind: kind.into(),
        source: source.map(|s| match kind {
            "bind" => host_path(s, dir),
            _ => s.to_string(),
        }),
        target: target.to_string(),
        read_only: modes.contains(&"ro"),
        nocopy: modes.contains(&"nocopy"),
        tmpfs_size: None,
    })
}

fn long_mount(a: At<'_>, dir: &Path) -> Result<Mount, Error> {
    a.only_keys(&[
        "type",
        "source",
        "target",
        "read_only",
        "bind",
        "volume",
        "tmpfs",
        "consistency",
    ])?;
    let kind = opt(a, "type", |t| t.string())?.unwrap_or_else(|| "volume".into());
    if !matches!(kind.as_str(), "volume" | "bind" | "tmpfs") {
        return Err(a.invalid(format!("type {kind:?} is not volume, bind or tmpfs")));
    }
    let target = a
        .get("target")
        .ok_or_else(|| a.invalid("needs a target"))?
        .at()
        .string()?;
    let source = opt(a, "source", |s| s.string())?;
    if kind == "bind" && source.is_none() {
        return Err(a.invalid("a bind mount needs a source"));
    }
    let nocopy = match a.get("volume") {
        Some(v) => {
            v.at().only_keys(&["nocopy", "subpath"])?;
            flag(v.at(), "nocopy")?
        }
        None => false,
    };
    let tmpfs_size = match a.get("tmpfs") {
        Some(t) => {
            t.at().only_keys(&["size", "mode"])?;
            opt(t.at(), "size", |s| s.bytes())?
        }
        None => None,
    };
    Ok(Mount {
        source: source.map(|s| match kind.as_str() {
            "bind" => host_path(&s, dir),
            _ => s,
        }),
        kind,
        target,
        read_only: flag(a, "read_only")?,
        nocopy,
        tmpfs_size,
    })
}

fn endpoints(at: At<'_>) -> Result<BTreeMap<String, Endpoint>, Error> {
    let mut out = BTreeMap::new();
    for (name, c) in at.entries()? {
        let a = c.at();
        let endpoint = match &c.node.value {
            super::yaml::Value::Null => Endpoint::default(),
            _ => {
                a.only_keys(&[
                    "aliases",
                    "ipv4_address",
                    "ipv6_address",
                    "priority",
                    "link_local_ips",
                    "mac_address",
                ])?;
                Endpoint {
                    aliases: strings(a, "aliases")?,
                    ipv4_address: opt(a, "ipv4_address", |s| s.string())?,
                }
            }
        };
        out.insert(name, endpoint);
    }
    Ok(out)
}

fn dependencies(at: At<'_>) -> Result<BTreeMap<String, Dependency>, Error> {
    let mut out = BTreeMap::new();
    for (name, c) in at.entries()? {
        let a = c.at();
        a.only_keys(&["condition", "required", "restart"])?;
        let condition =
            opt(a, "condition", |s| s.string())?.unwrap_or_else(|| "service_started".into());
        if !matches!(
            condition.as_str(),
            "service_started" | "service_healthy" | "service_completed_successfully"
        ) {
            return Err(a.get("condition").map(|c| c.at().invalid(format!(
                "{condition:?} is not service_started, service_healthy or service_completed_successfully"
            ))).unwrap_or_else(|| a.invalid("bad condition")));
        }
        let required = opt(a, "required", |s| s.bool())?.unwrap_or(true);
        out.insert(
            name,
            Dependency {
                condition,
                required,
            },
        );
    }
    Ok(out)
}

fn healthcheck(at: At<'_>) -> Result<Healthcheck, Error> {
    at.only_keys(&[
        "test",
        "interval",
        "timeout",
        "retries",
        "start_period",
        "start_interval",
        "disable",
    ])?;
    let test = match at.get("test") {
        Some(t) => match &t.node.value {
            super::yaml::Value::Seq(_) => t.at().strings()?,
            _ => vec!["CMD-SHELL".to_string(), t.at().string()?],
        },
        None => Vec::new(),
    };
    if let Some(first) = test.first() {
        if !matches!(first.as_str(), "CMD" | "CMD-SHELL" | "NONE") {
            return Err(at
                .get("test")
                .map(|t| {
                    t.at()
                        .invalid("a test list starts with CMD, CMD-SHELL or NONE")
                })
                .unwrap_or_else(|| at.invalid("bad test")));
        }
    }
    Ok(Healthcheck {
        test,
        interval: opt(at, "interval", |a| a.duration())?,
        timeout: opt(at, "timeout", |a| a.duration())?,
        retries: opt(at, "retries", |a| a.int())?,
        start_period: opt(at, "start_period", |a| a.duration())?,
        disable: flag(at, "disable")?,
    })
}

fn logging(at: At<'_>) -> Result<Logging, Error> {
    at.only_keys(&["driver", "options"])?;
    Ok(Logging {
        driver: opt(at, "driver", |a| a.string())?,
        options: opt(at, "options", plain_map)?.unwrap_or_default(),
    })
}

fn ulimits(at: At<'_>) -> Result<BTreeMap<String, (i64, i64)>, Error> {
    let mut out = BTreeMap::new();
    for (name, c) in at.entries()? {
        let a = c.at();
        let pair = match &c.node.value {
            super::yaml::Value::Map(_) => {
                a.only_keys(&["soft", "hard"])?;
                let soft = a
                    .get("soft")
                    .ok_or_else(|| a.invalid("needs soft"))?
                    .at()
                    .int()?;
                let hard = a
                    .get("hard")
                    .ok_or_else(|| a.invalid("needs hard"))?
                    .at()
                    .int()?;
                (soft, hard)
            }
            _ => {
                let n = a.int()?;
                (n, n)
            }
        };
        out.insert(name, pair);
    }
    Ok(out)
}

/// `["host:ip"]` or `{host: ip}`, kept as `host:ip`.
fn extra_hosts(at: At<'_>) -> Result<Vec<String>, Error> {
    match &at.node.value {
        super::yaml::Value::Map(_) => Ok(plain_map(at)?
            .into_iter()
            .map(|(h, ip)| format!("{h}:{ip}"))
            .collect()),
        _ => at.strings(),
    }
}

fn external(at: At<'_>) -> Result<(bool, Option<String>), Error> {
    match at.get("external") {
        None => Ok((false, None)),
        Some(c) => match &c.node.value {
            super::yaml::Value::Map(_) => {
                c.at().only_keys(&["name"])?;
                Ok((true, opt(c.at(), "name", |a| a.string())?))
            }
            _ => Ok((c.at().bool()?, None)),
        },
    }
}

/// A top-level network; `project` makes the engine's name.
pub fn network(key: &str, c: &Child<'_>, project: &str) -> Result<Network, Error> {
    let at = c.at();
    if at.node.value == super::yaml::Value::Null {
        return Ok(Network {
            name: format!("{project}_{key}"),
            ..Default::default()
        });
    }
    at.only_keys(&[
        "driver",
        "driver_opts",
        "external",
        "name",
        "labels",
        "ipam",
        "internal",
        "attachable",
        "enable_ipv6",
    ])?;
    let (external, external_name) = external(at)?;
    let name = opt(at, "name", |a| a.string())?
        .or(external_name)
        .unwrap_or_else(|| match external {
            true => key.to_string(),
            false => format!("{project}_{key}"),
        });
    let mut n = Network {
        name,
        external,
        driver: opt(at, "driver", |a| a.string())?,
        driver_opts: opt(at, "driver_opts", plain_map)?.unwrap_or_default(),
        labels: opt(at, "labels", plain_map)?.unwrap_or_default(),
        internal: flag(at, "internal")?,
        attachable: flag(at, "attachable")?,
        ..Default::default()
    };
    if let Some(ipam) = at.get("ipam") {
        let a = ipam.at();
        a.only_keys(&["driver", "config", "options"])?;
        n.ipam_driver = opt(a, "driver", |d| d.string())?;
        if let Some(configs) = a.get("config") {
            for item in configs.at().items()? {
                let i = item.at();
                i.only_keys(&["subnet", "gateway", "ip_range", "aux_addresses"])?;
                n.ipam.push(IpamConfig {
                    subnet: opt(i, "subnet", |s| s.string())?,
                    gateway: opt(i, "gateway", |s| s.string())?,
                    ip_range: opt(i, "ip_range", |s| s.string())?,
                    aux_addresses: opt(i, "aux_addresses", plain_map)?.unwrap_or_default(),
                });
            }
        }
    }
    Ok(n)
}

/// A top-level volume.
pub fn volume(key: &str, c: &Child<'_>, project: &str) -> Result<Volume, Error> {
    let at = c.at();
    if at.node.value == super::yaml::Value::Null {
        return Ok(Volume {
            name: format!("{project}_{key}"),
            ..Default::default()
        });
    }
    at.only_keys(&["driver", "driver_opts", "external", "name", "labels"])?;
    let (external, external_name) = external(at)?;
    let name = opt(at, "name", |a| a.string())?
        .or(external_name)
        .unwrap_or_else(|| match external {
            true => key.to_string(),
            false => format!("{project}_{key}"),
        });
    Ok(Volume {
        name,
        external,
        driver: opt(at, "driver", |a| a.string())?,
        driver_opts: opt(at, "driver_opts", plain_map)?.unwrap_or_default(),
        labels: opt(at, "labels", plain_map)?.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ports() {
        let p = short_port("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(p[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p[0].published.as_deref(), Some("8080"));
        assert_eq!((p[0].target, p[0].protocol.as_str()), (80, "udp"));
        let r = short_port("9000-9001:80-81").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].published.as_deref(), Some("9001"));
        assert_eq!(r[1].target, 81);
        assert_eq!(short_port("80").unwrap()[0].published, None);
        assert!(short_port("80:x").is_err());
        assert!(short_port("1-3:80-81").is_err());
    }

    #[test]
    fn short_mounts() {
        let dir = Path::new("/p");
        let m = short_mount("data:/var/lib:ro", dir).unwrap();
        assert_eq!(
            (m.kind.as_str(), m.source.as_deref()),
            ("volume", Some("data"))
        );
        assert!(m.read_only);
        let b = short_mount("./html:/www", dir).unwrap();
        assert_eq!(
            (b.kind.as_str(), b.source.as_deref()),
            ("bind", Some("/p/html"))
        );
        let anon = short_mount("/cache", dir).unwrap();
        assert_eq!(anon.source, None);
        assert!(short_mount("data:rel", dir).is_err());
        assert!(short_mount("data:/x:bogus", dir).is_err());
    }
}
