//! The OCI runtime spec of a container, built as docker builds it from the create request and
//! the image, by pure functions of their inputs (no daemon state; the host's facts are an
//! input too).
//!
//! The containers service calls, in order:
//! 1. at create: [`merge::merge`] (image config into the request's; store the result: it is
//!    `inspect`'s `Config`), [`merge::fill_hostname`], [`check`] (bad flag values fail here,
//!    before anything is made), [`mounts::create_bind_sources`] (docker creates missing `-v`
//!    sources);
//! 2. at start: [`build`] with the stored config, the snapshot's rootfs, the /etc files and
//!    the namespaces to join, then writes `config.json`.
pub mod caps;
pub mod devices;
mod error;
pub mod host;
pub mod merge;
pub mod mounts;
pub mod namespaces;
pub mod resources;
pub mod seccomp;
pub mod security;
pub mod signal;
pub mod user;

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Linux, Process, Root, Spec};

pub use error::SpecError;
pub use host::HostFacts;

use crate::containers::config::{self, Config, HostConfig};
use security::Seccomp;

/// The per-container files bind-mounted over the image's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
}

/// Namespaces (and /dev/shm) of others that the container joins: for `--network`, `--ipc`,
/// `--pid container:X` the caller resolves X's (`/proc/<pid>/ns/net`, …). `network` may also
/// be a netns the network service made for this container.
#[derive(Debug, Clone, Copy, Default)]
pub struct Joins<'a> {
    pub network: Option<&'a Path>,
    pub ipc: Option<&'a Path>,
    pub pid: Option<&'a Path>,
    /// X's /dev/shm on the host, for `--ipc container:X`.
    pub shm: Option<&'a Path>,
}

/// Everything a spec is built from.
#[derive(Debug, Clone, Copy)]
pub struct SpecInput<'a> {
    /// The container's full id (64 hex characters).
    pub id: &'a str,
    /// The container's name (without the leading `/`).
    pub name: &'a str,
    /// The merged config (see [`merge::merge`]).
    pub config: &'a Config,
    pub host_config: &'a HostConfig,
    /// The prepared snapshot's mounted root.
    pub rootfs: &'a Path,
    pub etc: &'a EtcFiles,
    pub joins: Joins<'a>,
    pub host: &'a HostFacts,
}

/// The cgroup parent when `--cgroup-parent` is not given.
pub const CGROUP_PARENT: &str = "/berth";

/// Checks what can be checked before anything is made (docker refuses these at create).
pub fn check(config: &Config, host_config: &HostConfig, host: &HostFacts) -> Result<(), SpecError> {
    let h = host_config;
    resources::check(h, host.ncpu)?;
    caps::resolve(
        &host.bounding,
        config::list(&h.cap_add),
        config::list(&h.cap_drop),
    )?;
    security::parse(config::list(&h.security_opt))?;
    let ns = namespaces::namespaces(h, &Joins::default(), host.cgroup_v2).or_else(|e| match e {
        // container:X is resolved at start; only its syntax is checked here.
        SpecError::Invalid { reason, .. } if reason.contains("was not given") => {
            Ok(namespaces::Namespaces {
                list: Vec::new(),
                own: resources::OwnNamespaces {
                    network: false,
                    ipc: false,
                    uts: true,
                },
                shm: mounts::Shm::None,
            })
        }
        e => Err(e),
    })?;
    resources::sysctls(h, &config.domainname, ns.own)?;
    mounts::user_mounts(h)?;
    for d in config::list(&h.devices) {
        devices::mapped(d)?;
    }
    for r in config::list(&h.device_cgroup_rules) {
        devices::parse_cgroup_rule(r)?;
    }
    if !config.stop_signal.is_empty() {
        signal::parse("StopSignal", &config.stop_signal)?;
    }
    if h.init == Some(true) && host.init.is_none() {
        return Err(SpecError::NoInit(host::INIT_NAMES.join(", ")));
    }
    if !config.working_dir.is_empty() && !config.working_dir.starts_with('/') {
        return Err(SpecError::invalid(
            "WorkingDir",
            &config.working_dir,
            "it needs to be an absolute path",
        ));
    }
    check_healthcheck(config)?;
    check_restart(h)
}

/// docker's limits: durations of 0 (inherit) or at least 1 ms, retries not negative.
fn check_healthcheck(config: &Config) -> Result<(), SpecError> {
    let Some(hc) = &config.healthcheck else {
        return Ok(());
    };
    for (field, v) in [
        ("Healthcheck.Interval", hc.interval),
        ("Healthcheck.Timeout", hc.timeout),
        ("Healthcheck.StartPeriod", hc.start_period),
        ("Healthcheck.StartInterval", hc.start_interval),
    ] {
        if v != 0 && v < 1_000_000 {
            return Err(SpecError::invalid(
                field,
                v.to_string(),
                "cannot be less than 1ms",
            ));
        }
    }
    if hc.retries < 0 {
        return Err(SpecError::invalid(
            "Healthcheck.Retries",
            hc.retries.to_string(),
            "cannot be negative",
        ));
    }
    Ok(())
}

/// `no`, `always`, `unless-stopped`, `on-failure[:N]`; a retry count only with on-failure;
/// `--rm` only without a restart policy.
fn check_restart(h: &HostConfig) -> Result<(), SpecError> {
    let p = &h.restart_policy;
    let name = p.name.as_str();
    if !matches!(name, "" | "no" | "always" | "unless-stopped" | "on-failure") {
        return Err(SpecError::invalid(
            "RestartPolicy",
            name,
            "invalid restart policy",
        ));
    }
    if p.maximum_retry_count < 0 {
        return Err(SpecError::invalid(
            "RestartPolicy.MaximumRetryCount",
            p.maximum_retry_count.to_string(),
            "maximum retry count cannot be negative",
        ));
    }
    if p.maximum_retry_count > 0 && name != "on-failure" {
        return Err(SpecError::invalid(
            "RestartPolicy",
            name,
            "maximum retry count cannot be used with this restart policy",
        ));
    }
    if h.auto_remove && !matches!(name, "" | "no") {
        return Err(SpecError::invalid(
            "RestartPolicy",
            name,
            "can't create 'AutoRemove' container with a restart policy",
        ));
    }
    Ok(())
}

/// Builds the spec.
pub fn build(input: &SpecInput) -> Result<Spec, SpecError> {
    let c = input.config;
    let h = input.host_config;
    check(c, h, input.host)?;
    let security = security::parse(config::list(&h.security_opt))?;
    let ns = namespaces::namespaces(h, &input.joins, input.host.cgroup_v2)?;

    let caps = if h.privileged {
        input.host.bounding.clone()
    } else {
        caps::resolve(
            &input.host.bounding,
            config::list(&h.cap_add),
            config::list(&h.cap_drop),
        )?
    };
    let identity = user::resolve(input.rootfs, &c.user, config::list(&h.group_add))?;

    let process = process(input, &caps, &identity, &security)?;
    let mut linux = Linux::default();
    let mut resources = resources::resources(h);
    let mut device_rules = if h.privileged {
        devices::allow_all()
    } else {
        devices::default_rules()
    };
    let mut device_nodes = if h.privileged {
        devices::host_devices(&input.host.dev)?
    } else {
        Vec::new()
    };
    for d in config::list(&h.devices) {
        let (nodes, rules) = devices::mapped(d)?;
        device_nodes.extend(nodes);
        device_rules.extend(rules);
    }
    for r in config::list(&h.device_cgroup_rules) {
        device_rules.push(devices::parse_cgroup_rule(r)?);
    }
    resources.set_devices(Some(device_rules));
    linux.set_resources(Some(resources));
    linux.set_devices(Some(device_nodes).filter(|d| !d.is_empty()));
    linux.set_cgroups_path(Some(cgroups_path(&h.cgroup_parent, input.id)));
    linux.set_namespaces(Some(ns.list.clone()));
    linux.set_sysctl(Some(resources::sysctls(h, &c.domainname, ns.own)?).filter(|s| !s.is_empty()));
    linux.set_uid_mappings(None);
    linux.set_gid_mappings(None);
    let confined_paths = !h.privileged && !security.unconfined_paths;
    linux.set_masked_paths(confined_paths.then(|| {
        h.masked_paths
            .clone()
            .unwrap_or_else(|| mounts::MASKED_PATHS.map(String::from).to_vec())
    }));
    linux.set_readonly_paths(confined_paths.then(|| {
        h.readonly_paths
            .clone()
            .unwrap_or_else(|| mounts::READONLY_PATHS.map(String::from).to_vec())
    }));
    linux.set_seccomp(match (&security.seccomp, h.privileged) {
        (_, true) | (Seccomp::Unconfined, _) => None,
        (Seccomp::Default, _) => Some(seccomp::render(
            &seccomp::default_profile(),
            &caps,
            input.host,
        )?),
        (Seccomp::Custom(p), _) => Some(seccomp::render(p, &caps, input.host)?),
    });

    let mut root = Root::default();
    root.set_path(input.rootfs.to_path_buf());
    root.set_readonly(Some(h.readonly_rootfs).filter(|r| *r));

    let mut spec = Spec::default();
    spec.set_version("1.0.2-dev".into());
    spec.set_process(Some(process));
    spec.set_root(Some(root));
    spec.set_hostname(ns.own.uts.then(|| c.hostname.clone()));
    spec.set_domainname(None);
    spec.set_mounts(Some(all_mounts(input, &ns)?));
    spec.set_annotations(Some(
        [(
            "org.berth.container.name".to_string(),
            input.name.to_string(),
        )]
        .into(),
    ));
    spec.set_linux(Some(linux));
    spec.set_hooks(None);
    Ok(spec)
}

fn process(
    input: &SpecInput,
    caps: &[&str],
    identity: &user::Identity,
    security: &security::SecurityOpts,
) -> Result<Process, SpecError> {
    let c = input.config;
    let h = input.host_config;
    let mut args = merge::args(c)?;
    if h.init == Some(true) {
        args.splice(0..0, [mounts::INIT_PATH.to_string(), "--".to_string()]);
    }
    let mut user = oci_spec::runtime::User::default();
    user.set_uid(identity.uid);
    user.set_gid(identity.gid);
    user.set_additional_gids(Some(identity.additional_gids.clone()));
    let mut p = Process::default();
    p.set_terminal(Some(c.tty).filter(|t| *t));
    p.set_user(user);
    p.set_args(Some(args));
    p.set_env(Some(merge::env(c)));
    p.set_cwd(PathBuf::from(if c.working_dir.is_empty() {
        "/"
    } else {
        &c.working_dir
    }));
    p.set_capabilities(Some(caps::linux_capabilities(caps, identity.uid)?));
    p.set_rlimits(Some(resources::rlimits(config::list(&h.ulimits))?).filter(|r| !r.is_empty()));
    p.set_no_new_privileges(Some(security.no_new_privileges).filter(|n| *n));
    p.set_oom_score_adj(Some(h.oom_score_adj as i32));
    p.set_apparmor_profile(None);
    p.set_selinux_label(None);
    Ok(p)
}

fn all_mounts(
    input: &SpecInput,
    ns: &namespaces::Namespaces,
) -> Result<Vec<oci_spec::runtime::Mount>, SpecError> {
    let h = input.host_config;
    let mut fixed = Vec::new();
    if h.init == Some(true) {
        let init = input
            .host
            .init
            .as_deref()
            .ok_or_else(|| SpecError::NoInit(host::INIT_NAMES.join(", ")))?;
        fixed.push(mounts::init(init));
    }
    let mut rest = mounts::user_mounts(h)?;
    let taken: Vec<PathBuf> = rest.iter().map(|m| m.destination().clone()).collect();
    rest.extend(
        mounts::etc_files(input.etc, h.readonly_rootfs)
            .into_iter()
            .filter(|m| !taken.contains(m.destination())),
    );
    rest.extend(mounts::shm_bind(&ns.shm).filter(|m| !taken.contains(m.destination())));
    Ok(mounts::assemble(
        mounts::defaults(h.privileged, &ns.shm),
        fixed,
        rest,
    ))
}

/// `/berth/<id>`, or `<parent>/<id>` with `--cgroup-parent` (cgroupfs paths, as docker's
/// cgroupfs driver makes them).
pub fn cgroups_path(parent: &str, id: &str) -> PathBuf {
    let parent = if parent.is_empty() {
        CGROUP_PARENT
    } else {
        parent
    };
    Path::new(parent).join(id)
}

#[cfg(test)]
mod tests;
