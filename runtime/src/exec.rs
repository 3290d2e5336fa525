//! `exec`: run another process in a running container — every namespace, its cgroup, its
//! credentials and seccomp — and wait for it unless detached.
use crate::namespaces::name;
use crate::spec::Bundle;
use crate::state::Container;
use crate::sync::{self, Channel, Msg};
use crate::{container, foreground, process, seccomp, tty, Error, Result};
use oci_spec::runtime::{ContainerState, LinuxNamespaceType, LinuxSeccomp, Process};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub id: String,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
    pub ignore_paused: bool,
    /// How to name the AppArmor/SELinux requests in errors (flags or `--process` fields).
    pub lsm_fields: crate::lsm::Fields,
    /// `--cgroup`: the sub-cgroups the process joins.
    pub sub_cgroups: crate::cgroups::SubCgroups,
}

/// Namespace kinds in the order a process joins them: user first, mount last.
const JOIN_ORDER: [LinuxNamespaceType; 6] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Mount,
];

/// Run `opts.process` in container `opts.id`; returns its exit code (0 when detached).
pub fn exec(root: &Path, opts: &ExecOptions) -> Result<i32> {
    let c = Container::load(root, &opts.id)?;
    match c.status(root) {
        ContainerState::Running | ContainerState::Created => {}
        s => return Err(Error::State(format!("cannot exec in a {s} container"))),
    }
    if !opts.ignore_paused && c.status_word(root) == "paused" {
        return Err(Error::State(
            "cannot exec in a paused container (use --ignore-paused)".into(),
        ));
    }
    crate::lsm::check(&opts.process, None, opts.lsm_fields)?;
    let bundle = Bundle::load(&c.bundle)?;
    let linux = bundle
        .spec
        .linux()
        .as_ref()
        .expect("checked by Bundle::load");
    let kinds: Vec<LinuxNamespaceType> = linux
        .namespaces()
        .iter()
        .flatten()
        .map(|n| n.typ())
        .collect();
    let terminal = opts.process.terminal() == Some(true);
    if terminal && opts.console_socket.is_none() && opts.detach {
        return Err(Error::Spec(
            "exec --detach with a terminal needs --console-socket".into(),
        ));
    }
    // A terminal without a console socket: make our own and relay it.
    let own_console = (terminal && opts.console_socket.is_none())
        .then(foreground::console_pair)
        .transpose()?;
    let joins = open_namespaces(c.pid, &kinds)?;
    // Entered last, by the first child: they only apply to the process it forks.
    let mut late = Vec::new();
    for kind in [LinuxNamespaceType::Pid, LinuxNamespaceType::Time] {
        if kinds.contains(&kind) {
            late.push((kind, crate::namespaces::open_ns(&ns_path(c.pid, kind))?));
        }
    }
    let (own_console, console) = match own_console {
        Some((ours, theirs)) => (Some(ours), Some(theirs)),
        None => (
            None,
            opts.console_socket
                .as_deref()
                .filter(|_| terminal)
                .map(tty::connect)
                .transpose()?,
        ),
    };
    tracing::debug!("nsexec container setup: exec in container {}", opts.id);
    // The process forked into the container must become our child when the first exits.
    set_child_subreaper()?;
    let (parent, child) = sync::pair()?;
    // Born in the container's cgroup2 part, the first child walks into the v1 ones before it
    // enters anything; what it forks into the container inherits them (see cgroups/join.rs).
    let seccomp = linux
        .seccomp()
        .as_ref()
        .map(|s| crate::seccomp::prepare(s, Some(&crate::seccomp_cache::dir(root))))
        .transpose()?;
    let mut doors = c.cgroup.doors(&opts.sub_cgroups)?;
    let first = doors.clone(0)?;
    if first == 0 {
        drop(parent);
        let joined = doors.walk_in().map_err(Error::from);
        let err = match joined
            .and_then(|()| enter(&child, joins, late, opts.preserve_fds, console.as_ref()))
        {
            Ok(0) => child_setup(
                &child,
                opts,
                console.as_ref(),
                seccomp.as_ref(),
                kinds.contains(&LinuxNamespaceType::User),
            )
            .unwrap_err(),
            Ok(pid) => {
                let code = i32::from(child.send(&Msg::Child(pid)).is_err());
                unsafe { libc::_exit(code) }
            }
            Err(e) => e,
        };
        let _ = child.send(&Msg::Failed(err.to_string()));
        unsafe { libc::_exit(1) }
    }
    drop(doors);
    drop(child);
    drop(console);
    drop(joins);
    drop(late);
    let pid = match parent.recv() {
        Ok(Msg::Child(pid)) => pid,
        Ok(Msg::Failed(e)) => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(first), None);
            return Err(Error::Other(e));
        }
        Ok(other) => return Err(Error::Other(format!("exec: unexpected {other:?}"))),
        Err(e) => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(first), None);
            return Err(e);
        }
    };
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(first), None);
    let forward = (!opts.detach).then(foreground::block_signals).transpose()?;
    parent.send(&Msg::Proceed)?;
    if let Err(e) = until_exec(&parent, &c, linux.seccomp().as_ref(), pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(e);
    }
    let master = own_console
        .as_ref()
        .map(foreground::receive_master)
        .transpose()?;
    if let Some(path) = &opts.pid_file {
        container::write_pid_file(path, pid)?;
    }
    match forward {
        Some(mask) => foreground::wait(pid, &mask, master),
        None => Ok(0),
    }
}

/// Serve the process until it execs: the channel closes on exec (close-on-exec), so silence
/// means it runs. A seccomp notify listener it sends goes to the agent, as the init's does.
fn until_exec(
    parent: &Channel,
    c: &Container,
    seccomp_cfg: Option<&LinuxSeccomp>,
    pid: i32,
) -> Result<()> {
    loop {
        match parent.recv_with_fd() {
            Ok((Msg::SeccompListener, fd)) => {
                let fd =
                    fd.ok_or_else(|| Error::Other("seccomp listener: no fd received".into()))?;
                if let Some(path) = seccomp_cfg.and_then(|s| s.listener_path().as_deref()) {
                    let state = c.oci_state(ContainerState::Running);
                    let metadata = seccomp_cfg.and_then(|s| s.listener_metadata().as_deref());
                    seccomp::send_listener(
                        path,
                        metadata,
                        &state,
                        pid,
                        std::os::fd::AsFd::as_fd(&fd),
                    )?;
                }
                parent.send(&Msg::Proceed)?;
            }
            Ok((Msg::Failed(e), _)) => return Err(Error::Other(e)),
            Ok((other, _)) => return Err(Error::Other(format!("exec: unexpected {other:?}"))),
            Err(_) => return Ok(()),
        }
    }
}

fn ns_path(pid: i32, kind: LinuxNamespaceType) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{}", name(kind)))
}

/// Open the container's namespaces that the caller is not already in.
fn open_namespaces(
    pid: i32,
    kinds: &[LinuxNamespaceType],
) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    let mut out = Vec::new();
    for kind in JOIN_ORDER.iter().filter(|k| kinds.contains(k)) {
        let theirs = ns_path(pid, *kind);
        let ours = PathBuf::from(format!("/proc/self/ns/{}", name(*kind)));
        let same = match (std::fs::metadata(&theirs), std::fs::metadata(&ours)) {
            (Ok(a), Ok(b)) => {
                use std::os::unix::fs::MetadataExt;
                a.ino() == b.ino() && a.dev() == b.dev()
            }
            _ => false,
        };
        if !same {
            out.push((*kind, crate::namespaces::open_ns(&theirs)?));
        }
    }
    Ok(out)
}

/// In exec's first child, still outside the container's pid namespace (so not visible from
/// it): stop being dumpable, close every fd not meant for the container, join its namespaces
/// (mount last), then the pid and time namespaces, and fork. Returns the new process's pid in
/// the first child, 0 in the new process, which is visible in the container only from here on,
/// already inside its mount namespace (CVE-2016-9962).
fn enter(
    channel: &Channel,
    joins: Vec<(LinuxNamespaceType, OwnedFd)>,
    late: Vec<(LinuxNamespaceType, OwnedFd)>,
    preserve_fds: i32,
    console: Option<&OwnedFd>,
) -> Result<i32> {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(Error::sys(
            "prctl",
            "PR_SET_DUMPABLE",
            nix::errno::Errno::last(),
        ));
    }
    crate::init::prepare_fds(preserve_fds)?;
    let mut keep: Vec<RawFd> = joins
        .iter()
        .chain(&late)
        .map(|(_, fd)| fd.as_raw_fd())
        .collect();
    keep.push(channel.raw());
    keep.extend(console.map(|c| c.as_raw_fd()));
    // The log (close-on-exec) stays for the records written until exec.
    keep.extend(crate::logging::fd());
    crate::init::close_all_but(3 + preserve_fds.max(0), &keep)?;
    for (kind, fd) in joins.iter().chain(&late) {
        crate::namespaces::enter(*kind, fd)?;
    }
    drop(joins);
    drop(late);
    crate::process::fork_with(0)
}

fn set_child_subreaper() -> Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(Error::sys(
            "prctl",
            "PR_SET_CHILD_SUBREAPER",
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

/// In the process forked into the container: wait for its cgroup, then set up and exec.
fn child_setup(
    channel: &Channel,
    opts: &ExecOptions,
    console: Option<&OwnedFd>,
    seccomp: Option<&crate::seccomp::Prepared>,
    in_userns: bool,
) -> Result<()> {
    tracing::debug!("child process in init(): joining container {}", opts.id);
    match channel.recv()? {
        Msg::Proceed => {}
        m => return Err(Error::Other(format!("exec: unexpected {m:?}"))),
    }
    let p = &opts.process;
    if let Some(socket) = console {
        let size = p
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        tty::setup(socket, size, p.user().uid())?;
    }
    process::set_oom_score_adj(p.oom_score_adj())?;
    process::set_rlimits(p.rlimits().as_deref().unwrap_or(&[]))?;
    let mut env = p.env().clone().unwrap_or_default();
    process::default_home(&mut env, p.user().uid());
    let args = p.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::Spec("exec: no command given".into()))?;
    nix::unistd::chdir(p.cwd()).map_err(|e| Error::sys("chdir", p.cwd().display(), e))?;
    let exe = process::find_executable(arg0, &env, p.cwd())?;
    crate::lsm::apply(p)?;
    let nnp = p.no_new_privileges() == Some(true);
    if let Some(s) = seccomp.filter(|_| !nnp) {
        crate::init::load_seccomp_over(channel, s)?;
    }
    let caps = p.capabilities().as_ref();
    process::drop_bounding(caps)?;
    process::set_user(p, !in_userns || crate::init::setgroups_allowed())?;
    process::apply_capabilities(caps)?;
    if nnp {
        process::set_no_new_privs()?;
    }
    if let Some(s) = seccomp.filter(|_| nnp) {
        crate::init::load_seccomp_over(channel, s)?;
    }
    let argv = process::cstrings(&args, "process.args")?;
    let envp = process::cstrings(&env, "process.env")?;
    let exe_c = std::ffi::CString::new(exe.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Spec("exec: NUL byte in path".into()))?;
    tracing::debug!("setns_init: about to exec {}", exe.display());
    process::restore_sigpipe()?;
    let err = nix::unistd::execve(&exe_c, &argv, &envp).unwrap_err();
    Err(Error::sys("exec", exe.display(), err))
}

/// The process `exec` runs: from `--process FILE`, or the container's own process with the
/// command line's overrides.
pub fn process_from_flags(base: &Process, f: &ExecFlags) -> Result<Process> {
    let mut p = base.clone();
    p.set_args(Some(f.args.clone()));
    p.set_terminal(Some(f.tty));
    if let Some(cwd) = &f.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    process::default_home(&mut env, p.user().uid());
    for e in &f.env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|old| old.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(user) = &f.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        let uid = uid
            .parse()
            .map_err(|_| Error::Spec(format!("--user: invalid uid {uid:?}")))?;
        let gid = gid
            .parse()
            .map_err(|_| Error::Spec(format!("--user: invalid gid {gid:?}")))?;
        let mut u = p.user().clone();
        u.set_uid(uid);
        u.set_gid(gid);
        p.set_user(u);
    }
    if !f.additional_gids.is_empty() {
        let mut u = p.user().clone();
        u.set_additional_gids(Some(f.additional_gids.clone()));
        p.set_user(u);
    }
    if f.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &f.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &f.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    if !f.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &f.caps {
            let cap: oci_spec::runtime::Capability = name
                .trim_start_matches("CAP_")
                .parse()
                .map_err(|_| Error::Spec(format!("--cap: unknown capability {name:?}")))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// The command-line overrides of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecFlags {
    pub args: Vec<String>,
    pub tty: bool,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
}

/// Read a `--process` JSON file (or `-`); errors name the file and the field.
/// As for runc, only `cwd` (and `args`) are required: a missing `user` is root.
pub fn process_from_file(path: &Path) -> Result<Process> {
    let mut doc: serde_json::Value = crate::spec::read_json_arg(path)?;
    let bad = |msg: &str| Error::Spec(format!("{}: {msg}", path.display()));
    let fields = doc
        .as_object_mut()
        .ok_or_else(|| bad("not a JSON object (a runtime-spec Process)"))?;
    if !fields.contains_key("cwd") {
        return Err(bad("cwd: missing (it is required)"));
    }
    fields
        .entry("user")
        .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    let text = serde_json::to_vec(&doc).map_err(|e| bad(&e.to_string()))?;
    crate::spec::parse_json(&text).map_err(|e| bad(&e.to_string()))
}
