//! The container's mounts: docker's defaults (proc, dev, devpts, sysfs, cgroup, mqueue, shm),
//! the init binary, `-v`/`--mount` binds, `--tmpfs`/`--mount type=tmpfs`, and the per-container
//! /etc/hosts, /etc/hostname and /etc/resolv.conf.
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Mount;

use super::{EtcFiles, SpecError};
use crate::containers::config::{self, HostConfig};

/// `/dev/shm`'s size when `--shm-size` is not given: 64 MiB.
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;

/// docker's masked paths (`/sys/devices/virtual/powercap` since docker 25).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// docker's read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Where `--init` puts the init binary.
pub const INIT_PATH: &str = "/sbin/docker-init";

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(kind.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

/// How /dev/shm is provided (from `--ipc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shm {
    /// A tmpfs of this many bytes (private/shareable IPC).
    Tmpfs(i64),
    /// A bind of this host path (`--ipc host`: /dev/shm; `container:X`: X's).
    Bind(PathBuf),
    /// None (`--ipc none`).
    None,
}

/// docker's default mounts; `privileged` makes /sys and the cgroup mount writable.
pub fn defaults(privileged: bool, shm: &Shm) -> Vec<Mount> {
    let sys: &[&str] = if privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let cgroup: &[&str] = if privileged {
        &["rw", "nosuid", "noexec", "nodev"]
    } else {
        &["ro", "nosuid", "noexec", "nodev"]
    };
    let mut out = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount("/sys", "sysfs", "sysfs", sys),
        mount("/sys/fs/cgroup", "cgroup", "cgroup", cgroup),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
    ];
    match shm {
        Shm::Tmpfs(size) => out.push(mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &[
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                &format!("size={size}"),
            ],
        )),
        // A shared /dev/shm comes with the user's mounts (see [`shm_bind`]).
        Shm::Bind(_) | Shm::None => {}
    }
    out
}

/// The bind of a shared /dev/shm (`--ipc host|container:X`), placed like docker's: after the
/// /etc files.
pub fn shm_bind(shm: &Shm) -> Option<Mount> {
    match shm {
        Shm::Bind(path) => Some(bind("/dev/shm", path, &["rbind", "rprivate"])),
        _ => None,
    }
}

fn bind(dest: &str, source: &Path, options: &[&str]) -> Mount {
    mount(dest, "bind", &source.to_string_lossy(), options)
}

/// The init binary, read-only at /sbin/docker-init.
pub fn init(host_init: &Path) -> Mount {
    bind(INIT_PATH, host_init, &["bind", "ro"])
}

/// The per-container files (read-only with `--read-only`).
pub fn etc_files(files: &EtcFiles, readonly: bool) -> Vec<Mount> {
    let options: &[&str] = if readonly {
        &["rbind", "ro", "rprivate"]
    } else {
        &["rbind", "rprivate"]
    };
    [
        ("/etc/resolv.conf", &files.resolv_conf),
        ("/etc/hostname", &files.hostname),
        ("/etc/hosts", &files.hosts),
    ]
    .into_iter()
    .map(|(dest, src)| bind(dest, src, options))
    .collect()
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// A `-v` bind: `src:dst[:opts]`, src absolute (named volumes are the volumes service's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: String,
    pub readonly: bool,
    pub propagation: String,
}

/// Parses one `Binds` entry as docker does.
pub fn parse_bind(spec: &str) -> Result<Bind, SpecError> {
    let bad = |reason: &str| SpecError::invalid("Binds", spec, reason);
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => return Err(bad("invalid volume specification")),
    };
    if !source.starts_with('/') {
        return Err(bad(
            "named volumes are not supported yet (the source must be an absolute path)",
        ));
    }
    check_destination("Binds", destination)?;
    let mut bind = Bind {
        source: PathBuf::from(source),
        destination: clean(destination),
        readonly: false,
        propagation: "rprivate".into(),
    };
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => bind.readonly = true,
            "rw" => bind.readonly = false,
            "z" | "Z" | "nocopy" | "consistent" | "cached" | "delegated" => {}
            p if PROPAGATIONS.contains(&p) => bind.propagation = p.to_string(),
            _ => return Err(bad(&format!("invalid mode: {opt}"))),
        }
    }
    Ok(bind)
}

fn check_destination(field: &'static str, dest: &str) -> Result<(), SpecError> {
    if !dest.starts_with('/') {
        return Err(SpecError::invalid(
            field,
            dest,
            "the destination must be an absolute path",
        ));
    }
    if clean(dest) == "/" {
        return Err(SpecError::invalid(
            field,
            dest,
            "the destination can't be '/'",
        ));
    }
    Ok(())
}

/// A lexically cleaned absolute path (`/a/./b/../c/` → `/a/c`).
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().unwrap_or_default()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// The mount of a `-v` bind.
fn bind_mount(b: &Bind) -> Mount {
    let mut options = vec!["rbind"];
    if b.readonly {
        options.push("ro");
    }
    options.push(&b.propagation);
    bind(&b.destination, &b.source, &options)
}

/// Creates the missing sources of `-v` host binds (as directories, like docker). `--mount` sources
/// are not created: [`check`] refuses them.
pub fn create_bind_sources(host_config: &HostConfig) -> Result<(), SpecError> {
    // Named volumes are the volume service's.
    for spec in config::list(&host_config.binds)
        .iter()
        .filter(|b| b.starts_with('/'))
    {
        let b = parse_bind(spec)?;
        if std::fs::symlink_metadata(&b.source).is_err() {
            std::fs::create_dir_all(&b.source)
                .map_err(|e| SpecError::io("create bind source", &b.source, e))?;
        }
    }
    Ok(())
}

/// Why a `--mount` entry is refused at create, in docker's words:
/// `invalid mount config for type "bind": field Source must not be empty`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mount config for type {kind:?}: {reason}")]
pub struct MountConfigError {
    pub kind: String,
    pub reason: String,
}

/// Checks every `Mounts` entry in the request's order, as docker does at create before it
/// resolves any volume: the first bad entry is the error.
pub fn check_mounts(host_config: &HostConfig) -> Result<(), MountConfigError> {
    config::list(&host_config.mounts)
        .iter()
        .try_for_each(check_mount)
}

/// One `Mounts` entry, checked in docker's order: the target (given, not `/`, absolute), then
/// what its type allows (a bind: a source, a known propagation, no volume options, an
/// absolute source that exists; a volume: no bind options, no read-only anonymous volume;
/// a tmpfs: no bind options, no source).
pub fn check_mount(m: &config::Mount) -> Result<(), MountConfigError> {
    let bad = |reason: String| MountConfigError {
        kind: m.r#type.clone(),
        reason,
    };
    let absolute = |path: &str| {
        if path.starts_with('/') {
            Ok(())
        } else {
            Err(bad(format!(
                "invalid mount path: '{path}' mount path must be absolute"
            )))
        }
    };
    if m.target.is_empty() {
        return Err(bad("field Target must not be empty".into()));
    }
    if m.target.starts_with('/') && clean(&m.target) == "/" {
        return Err(bad("invalid specification: destination can't be '/'".into()));
    }
    absolute(&m.target)?;
    match m.r#type.as_str() {
        "bind" => {
            if m.source.is_empty() {
                return Err(bad("field Source must not be empty".into()));
            }
            if let Some(o) = &m.bind_options {
                if !o.propagation.is_empty() && !PROPAGATIONS.contains(&o.propagation.as_str()) {
                    return Err(bad(format!("invalid propagation mode: {}", o.propagation)));
                }
            }
            if m.volume_options.is_some() {
                return Err(bad("field VolumeOptions must not be specified".into()));
            }
            absolute(&m.source)?;
            if std::fs::symlink_metadata(&m.source).is_err() {
                return Err(bad(format!(
                    "bind source path does not exist: {}",
                    m.source
                )));
            }
        }
        "volume" => {
            if m.bind_options.is_some() {
                return Err(bad("field BindOptions must not be specified".into()));
            }
            if m.source.is_empty() && m.read_only {
                return Err(bad(
                    "must not set ReadOnly mode when using anonymous volumes".into(),
                ));
            }
        }
        "tmpfs" => {
            if m.bind_options.is_some() {
                return Err(bad("field BindOptions must not be specified".into()));
            }
            if !m.source.is_empty() {
                return Err(bad("field Source must not be specified".into()));
            }
        }
        _ => return Err(bad("mount type unknown".into())),
    }
    Ok(())
}

/// The mount of one `--mount` entry (bind or tmpfs; volumes are binds of their data by now).
fn api_mount(m: &config::Mount) -> Result<Mount, SpecError> {
    check_mount(m)?;
    let dest = clean(&m.target);
    match m.r#type.as_str() {
        "bind" => {
            let opts = m.bind_options.clone().unwrap_or_default();
            let propagation = if opts.propagation.is_empty() {
                "rprivate"
            } else {
                opts.propagation.as_str()
            };
            let mut options = vec![if opts.non_recursive { "bind" } else { "rbind" }];
            if m.read_only {
                options.push("ro");
            }
            options.push(propagation);
            Ok(bind(&dest, Path::new(&m.source), &options))
        }
        "tmpfs" => {
            let mut opts = Vec::new();
            if m.read_only {
                opts.push("ro".to_string());
            }
            let t = m.tmpfs_options.clone().unwrap_or_default();
            if t.mode != 0 {
                opts.push(format!("mode={:o}", t.mode));
            }
            if t.size_bytes < 0 {
                return Err(SpecError::invalid(
                    "Mounts.TmpfsOptions.SizeBytes",
                    t.size_bytes.to_string(),
                    "negative size",
                ));
            }
            if t.size_bytes > 0 {
                opts.push(format!("size={}", size_with_suffix(t.size_bytes)));
            }
            Ok(tmpfs(&dest, &opts.join(","))?)
        }
        other => Err(SpecError::invalid(
            "Mounts.Type",
            other,
            "a volume mount that was not resolved to its data",
        )),
    }
}

/// docker's tmpfs size text: the largest of g, m, k that divides the size, else bytes.
fn size_with_suffix(size: i64) -> String {
    for (suffix, div) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if size % div == 0 {
            return format!("{}{suffix}", size / div);
        }
    }
    size.to_string()
}

/// A tmpfs at `dest`: docker's `noexec,nosuid,nodev,rprivate`, overridden by `options`
/// (`exec`, `suid`, `dev`, a propagation), then the remaining options in order.
pub fn tmpfs(dest: &str, options: &str) -> Result<Mount, SpecError> {
    let user: Vec<&str> = options.split(',').filter(|o| !o.is_empty()).collect();
    let mut out: Vec<&str> = Vec::new();
    for (default, opposite) in [("noexec", "exec"), ("nosuid", "suid"), ("nodev", "dev")] {
        if !user.iter().any(|o| *o == opposite || *o == default) {
            out.push(default);
        }
    }
    if !user.iter().any(|o| PROPAGATIONS.contains(o)) {
        out.push("rprivate");
    }
    for o in &user {
        let key = o.split('=').next().unwrap_or(o);
        let known = [
            "exec",
            "noexec",
            "suid",
            "nosuid",
            "dev",
            "nodev",
            "ro",
            "rw",
            "size",
            "mode",
            "uid",
            "gid",
            "nr_inodes",
            "nr_blocks",
            "mpol",
            "atime",
            "noatime",
            "diratime",
            "nodiratime",
            "relatime",
            "norelatime",
            "strictatime",
            "nostrictatime",
            "sync",
            "async",
            "dirsync",
            "huge",
            "inode64",
            "tmpcopyup",
            "notmpcopyup",
        ];
        if !known.contains(&key) && !PROPAGATIONS.contains(o) {
            return Err(SpecError::invalid(
                "Tmpfs",
                format!("{dest}:{options}"),
                format!("unknown tmpfs option {o:?}"),
            ));
        }
        if *o != "tmpcopyup" && *o != "notmpcopyup" {
            out.push(o);
        }
    }
    Ok(mount(dest, "tmpfs", "tmpfs", &out))
}

/// The user's mounts in docker's order: binds (`-v`, then `--mount type=bind`), then tmpfs
/// (`--tmpfs`, then `--mount type=tmpfs`); [`assemble`] then sorts them (stably) by depth.
pub fn user_mounts(host_config: &HostConfig) -> Result<Vec<Mount>, SpecError> {
    let mut out = Vec::new();
    for spec in config::list(&host_config.binds) {
        out.push(bind_mount(&parse_bind(spec)?));
    }
    let (binds, others): (Vec<_>, Vec<_>) = config::list(&host_config.mounts)
        .iter()
        .partition(|m| m.r#type == "bind");
    for m in binds {
        out.push(api_mount(m)?);
    }
    if let Some(t) = &host_config.tmpfs {
        for (dest, options) in t {
            check_destination("Tmpfs", dest)?;
            out.push(tmpfs(&clean(dest), options)?);
        }
    }
    for m in others {
        out.push(api_mount(m)?);
    }
    let mut seen = std::collections::HashSet::new();
    for m in &out {
        if !seen.insert(m.destination().clone()) {
            return Err(SpecError::DuplicateMount(
                m.destination().display().to_string(),
            ));
        }
    }
    Ok(out)
}

/// Number of components of a destination (docker's mount order key).
pub fn depth(m: &Mount) -> usize {
    m.destination().components().count()
}

/// Puts `defaults`, `fixed` (init) and the depth-sorted `rest` (user mounts, /etc files)
/// together; a user mount replaces a default at the same destination (e.g. `/dev/shm`).
pub fn assemble(defaults: Vec<Mount>, fixed: Vec<Mount>, mut rest: Vec<Mount>) -> Vec<Mount> {
    let taken: Vec<PathBuf> = rest.iter().map(|m| m.destination().clone()).collect();
    rest.sort_by_key(depth);
    let mut out: Vec<Mount> = defaults
        .into_iter()
        .filter(|m| !taken.contains(m.destination()))
        .collect();
    out.extend(fixed);
    out.extend(rest);
    out
}
