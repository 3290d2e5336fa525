//! Namespaces from `--network`, `--ipc`, `--pid`, `--uts`, `--userns` and `--cgroupns`.
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use super::mounts::{Shm, DEFAULT_SHM_SIZE};
use super::resources::OwnNamespaces;
use super::{Joins, SpecError};
use crate::containers::config::HostConfig;

/// The container's namespaces, which of them are its own, and how it gets /dev/shm.
#[derive(Debug, Clone, PartialEq)]
pub struct Namespaces {
    pub list: Vec<LinuxNamespace>,
    pub own: OwnNamespaces,
    pub shm: Shm,
}

enum Mode {
    New,
    Host,
    Join(PathBuf),
}

fn ns(kind: LinuxNamespaceType, path: Option<PathBuf>) -> LinuxNamespace {
    let mut n = LinuxNamespace::default();
    n.set_typ(kind);
    n.set_path(path);
    n
}

/// `container:NAME` needs the path of NAME's namespace, which the caller resolves.
fn joined(field: &'static str, mode: &str, path: Option<&Path>) -> Result<Mode, SpecError> {
    path.map(|p| Mode::Join(p.to_path_buf())).ok_or_else(|| {
        SpecError::invalid(
            field,
            mode,
            "the namespace of that container was not given (is it running?)",
        )
    })
}

fn network(mode: &str, joins: &Joins) -> Result<Mode, SpecError> {
    Ok(match mode {
        "host" => Mode::Host,
        m if m.starts_with("container:") => joined("NetworkMode", m, joins.network)?,
        _ => joins
            .network
            .map_or(Mode::New, |p| Mode::Join(p.to_path_buf())),
    })
}

fn simple(
    field: &'static str,
    mode: &str,
    joins: Option<&Path>,
    news: &[&str],
) -> Result<Mode, SpecError> {
    match mode {
        "host" => Ok(Mode::Host),
        m if m.starts_with("container:") && m.len() > "container:".len() => joined(field, m, joins),
        m if news.contains(&m) => Ok(Mode::New),
        m => Err(SpecError::invalid(field, m, "invalid mode")),
    }
}

/// The namespaces for `h`; `cgroup_v2` hosts give a private cgroup namespace by default.
pub fn namespaces(h: &HostConfig, joins: &Joins, cgroup_v2: bool) -> Result<Namespaces, SpecError> {
    let net = network(&h.network_mode, joins)?;
    let ipc = simple(
        "IpcMode",
        &h.ipc_mode,
        joins.ipc,
        &["", "private", "shareable", "none"],
    )?;
    let pid = simple("PidMode", &h.pid_mode, joins.pid, &[""])?;
    let uts = simple("UTSMode", &h.uts_mode, None, &[""])?;
    if !matches!(h.userns_mode.as_str(), "" | "host") {
        return Err(SpecError::invalid(
            "UsernsMode",
            &h.userns_mode,
            "only \"host\" is supported",
        ));
    }
    let cgroup = match h.cgroupns_mode.as_str() {
        "" if cgroup_v2 => Mode::New,
        "" | "host" => Mode::Host,
        "private" => Mode::New,
        m => {
            return Err(SpecError::invalid(
                "CgroupnsMode",
                m,
                "invalid mode (host or private)",
            ))
        }
    };
    let own = OwnNamespaces {
        network: matches!(net, Mode::New)
            || (joins.network.is_some() && !h.network_mode.starts_with("container:")),
        ipc: matches!(ipc, Mode::New),
        uts: matches!(uts, Mode::New),
    };
    let shm = match (&ipc, h.ipc_mode.as_str()) {
        (_, "none") => Shm::None,
        (Mode::Host, _) => Shm::Bind(PathBuf::from("/dev/shm")),
        (Mode::Join(_), m) => Shm::Bind(joins.shm.map(Path::to_path_buf).ok_or_else(|| {
            SpecError::invalid("IpcMode", m, "the /dev/shm of that container was not given")
        })?),
        (Mode::New, _) => Shm::Tmpfs(if h.shm_size > 0 {
            h.shm_size
        } else {
            DEFAULT_SHM_SIZE
        }),
    };
    if h.shm_size < 0 {
        return Err(SpecError::invalid(
            "ShmSize",
            h.shm_size.to_string(),
            "SHM size can not be less than 0",
        ));
    }
    let mut list = vec![ns(LinuxNamespaceType::Mount, None)];
    for (kind, mode) in [
        (LinuxNamespaceType::Network, net),
        (LinuxNamespaceType::Uts, uts),
        (LinuxNamespaceType::Pid, pid),
        (LinuxNamespaceType::Ipc, ipc),
        (LinuxNamespaceType::Cgroup, cgroup),
    ] {
        match mode {
            Mode::New => list.push(ns(kind, None)),
            Mode::Join(p) => list.push(ns(kind, Some(p))),
            Mode::Host => {}
        }
    }
    Ok(Namespaces { list, own, shm })
}
