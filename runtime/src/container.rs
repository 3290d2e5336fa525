//! The runtime's operations on containers: create, start, state, kill, delete, list.
use crate::cgroups::{Cgroup, PidNs};
use crate::init::{self, Init};
use crate::namespaces::Plan;
use crate::spec::Bundle;
use crate::state::{self, Container, EXEC_FIFO};
use crate::sync::{self, Msg};
use crate::{hooks, rootfs, seccomp, tty, Error, Result};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::{ContainerState, LinuxIdMapping};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    /// Socket-activation fds (systemd's LISTEN_FDS) handed to the container before the
    /// preserved ones, as runc does.
    pub listen_fds: i32,
    pub systemd_cgroup: bool,
}

/// Removes what a failed create made, unless disarmed.
struct Undo {
    dir: PathBuf,
    pid: Option<i32>,
    cgroup: Option<Cgroup>,
    armed: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            let _ = cg.delete();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Create a container: it is waiting on its exec fifo for `start` when this returns.
pub fn create(root: &Path, opts: &CreateOptions) -> Result<Container> {
    create_with_console(root, opts, None).map(|(c, _)| c)
}

/// `create`, with the console socket already connected (`run` makes its own for a terminal).
/// Also says whether the config asked for a terminal (`run` then relays it), so that `run`
/// does not read and parse the config a second time.
pub fn create_with_console(
    root: &Path,
    opts: &CreateOptions,
    console: Option<OwnedFd>,
) -> Result<(Container, bool)> {
    state::check_id(&opts.id)?;
    let bundle = Bundle::load(&opts.bundle)?;
    let spec = &bundle.spec;
    let linux = spec.linux().as_ref().expect("checked by Bundle::load");
    let plan = Plan::new(linux.namespaces().as_deref().unwrap_or(&[]))?;
    plan.check_paths()?;
    if let Some(process) = spec.process() {
        crate::lsm::check(
            process,
            linux.mount_label().as_deref(),
            crate::lsm::CONFIG_FIELDS,
        )?;
    }
    if let Some(sysctls) = linux.sysctl() {
        crate::sysctl::validate(sysctls, &plan)?;
    }
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    if terminal && opts.console_socket.is_none() && console.is_none() {
        return Err(Error::Spec(
            "process.terminal is true but no --console-socket was given".into(),
        ));
    }
    // Refused before anything is made: a cgroup shared with other processes (runc's check).
    let mut cgroup = Cgroup::new_exclusive(
        linux.cgroups_path().as_deref(),
        &opts.id,
        opts.systemd_cgroup,
    )?;
    let dir = make_state_dir(root, &opts.id)?;
    let mut undo = Undo {
        dir: dir.clone(),
        pid: None,
        cgroup: None,
        armed: true,
    };
    let seccomp = linux
        .seccomp()
        .as_ref()
        .map(|s| seccomp::prepare(s, Some(&crate::seccomp_cache::dir(root))))
        .transpose()?;
    make_creating_marker(&dir, &cgroup)?;
    let fifo = dir.join(EXEC_FIFO);
    make_exec_fifo(
        &fifo,
        linux.uid_mappings().as_deref(),
        linux.gid_mappings().as_deref(),
    )?;
    let console = match console {
        Some(fd) => Some(fd),
        None => opts
            .console_socket
            .as_deref()
            .filter(|_| terminal)
            .map(tty::connect)
            .transpose()?,
    };
    let (parent, child) = sync::pair()?;
    if let Some(path) = &plan.join_pid {
        let fd = crate::namespaces::open_ns(path)?;
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWPID)
            .map_err(|e| Error::sys("setns", path.display(), e))?;
    }
    tracing::debug!(
        "nsexec container setup: cloning the init of {} ({:?})",
        opts.id,
        plan.clone_flags
    );
    // The cgroup exists before the init: the init is born in it (a pid written to
    // cgroup.procs would wait for an RCU grace period; see cgroups/join.rs). Its limits come
    // once the init's mounts are done (sync_with_init). A cgroup that was there before
    // (refused if frozen or busy) is not ours to remove.
    cgroup.create_unlimited(linux.resources().as_ref())?;
    undo.cgroup = Some(cgroup.clone());
    let mut doors = cgroup.doors(&crate::cgroups::SubCgroups::default())?;
    let pid = doors.clone(plan.clone_flags.bits() as libc::c_ulong)?;
    if pid == 0 {
        drop(parent);
        init::run(Init {
            cgroup: Some(doors),
            spec,
            id: &opts.id,
            bundle: &bundle.dir,
            rootfs: &bundle.rootfs,
            state_dir: &dir,
            plan: &plan,
            channel: child,
            console,
            preserve_fds: opts.preserve_fds,
            listen_fds: opts.listen_fds,
            no_pivot: opts.no_pivot,
            no_new_keyring: opts.no_new_keyring,
            seccomp: seccomp.as_ref(),
        });
    }
    drop(child);
    drop(console);
    drop(doors);
    undo.pid = Some(pid);
    if plan.new_user {
        write_id_maps(
            pid,
            linux.uid_mappings().as_deref(),
            linux.gid_mappings().as_deref(),
        )?;
    }
    cgroup.owner_pid_ns =
        Some(PidNs::of(pid).map_err(|e| Error::io("stat", format!("/proc/{pid}/ns/pid"), e))?);
    let container = Container {
        id: opts.id.clone(),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        pid,
        pid_start: state::process_start_time(pid).unwrap_or(0),
        created: state::now_rfc3339(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup,
        owner: String::new(),
        systemd_cgroup: opts.systemd_cgroup,
        hooks: spec.hooks().clone(),
        oci_version: spec.version().clone(),
    };
    // A create killed from here on is undone by `delete --force`, which finds the pid and
    // the cgroup in this record (before it, through the creating marker).
    container.save(root)?;
    undo.cgroup = Some(container.cgroup.clone());
    if let Err(e) = sync_with_init(&parent, &container, spec, pid) {
        return Err(init_failure(&parent, &mut undo, e));
    }
    remove_creating_marker(&dir)?;
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, pid)?;
    }
    undo.armed = false;
    Ok((container, terminal))
}

/// Drive the init through its setup until it waits for `start`: hooks, the seccomp listener.
fn sync_with_init(
    parent: &sync::Channel,
    container: &Container,
    spec: &oci_spec::runtime::Spec,
    pid: i32,
) -> Result<()> {
    let linux = spec.linux().as_ref().expect("checked by Bundle::load");
    // The resource values are written once the init's mounts are done, as runc does: before
    // the prestart/createRuntime hooks (which may rely on them), else when the init is ready
    // (see Cgroup::create_unlimited).
    let mut limited = false;
    let limit = |limited: &mut bool| -> Result<()> {
        if !std::mem::replace(limited, true) {
            container.cgroup.limit(linux.resources().as_ref())?;
        }
        Ok(())
    };
    parent.send(&Msg::Proceed)?;
    loop {
        let (msg, fd) = parent.recv_with_fd()?;
        match msg {
            Msg::RunCreateHooks => {
                limit(&mut limited)?;
                // runtime-tools expects these hooks to see the container as created.
                let state = container.oci_state(ContainerState::Created);
                if let Some(h) = spec.hooks() {
                    #[allow(deprecated)]
                    hooks::run("prestart", h.prestart().as_deref().unwrap_or(&[]), &state)?;
                    hooks::run(
                        "createRuntime",
                        h.create_runtime().as_deref().unwrap_or(&[]),
                        &state,
                    )?;
                }
                parent.send(&Msg::Proceed)?;
            }
            Msg::SeccompListener => {
                let fd =
                    fd.ok_or_else(|| Error::Other("seccomp listener: no fd received".into()))?;
                let s = linux
                    .seccomp()
                    .as_ref()
                    .expect("init only sends a listener when seccomp is set");
                if let Some(path) = s.listener_path() {
                    let state = container.oci_state(ContainerState::Creating);
                    seccomp::send_listener(
                        path,
                        s.listener_metadata().as_deref(),
                        &state,
                        pid,
                        std::os::fd::AsFd::as_fd(&fd),
                    )?;
                }
                parent.send(&Msg::Proceed)?;
            }
            Msg::MountSources => {
                for (i, source) in rootfs::bind_sources(spec, &container.bundle) {
                    let fd = rootfs::open_source_of(pid, &source)?;
                    parent.send_with_fd(
                        &Msg::MountSource(i),
                        Some(std::os::fd::AsRawFd::as_raw_fd(&fd)),
                    )?;
                }
                parent.send(&Msg::Proceed)?;
            }
            Msg::Ready => {
                limit(&mut limited)?;
                break;
            }
            Msg::Failed(e) => return Err(Error::Other(e)),
            Msg::Proceed | Msg::Child(_) | Msg::MountSource(_) => {
                return Err(Error::Other(format!("sync: unexpected {msg:?} from init")))
            }
        }
    }
    Ok(())
}

/// What to report when talking to the init failed: the reason it sent if there is one, how
/// it ended if it is gone without one (it is reaped then), else the error itself.
fn init_failure(parent: &sync::Channel, undo: &mut Undo, e: Error) -> Error {
    use nix::sys::wait::{waitpid, WaitStatus};
    let gone = match &e {
        Error::InitExited => true,
        Error::Sys { op, errno, .. } => {
            op.starts_with("sync ")
                && matches!(
                    errno,
                    nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET
                )
        }
        _ => false,
    };
    if !gone {
        return e;
    }
    if let Ok(Msg::Failed(reason)) = parent.recv() {
        return Error::Other(reason);
    }
    let Some(pid) = undo.pid else { return e };
    let ended = match waitpid(Pid::from_raw(pid), None) {
        Ok(WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
        Ok(WaitStatus::Signaled(_, sig, _)) => format!("was killed by signal {sig:?}"),
        _ => return e,
    };
    undo.pid = None;
    Error::Other(format!(
        "container init {ended} during setup, without saying why"
    ))
}

/// How many socket-activation fds systemd passed us: `LISTEN_FDS` when `LISTEN_PID` is ours.
pub fn listen_fds_from_env() -> i32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let n = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    if ours {
        n.max(0)
    } else {
        0
    }
}

/// The fifo the init blocks on until `start`: writable by the container's root and users,
/// whatever the umask and however ids are mapped.
fn make_exec_fifo(
    path: &Path,
    uids: Option<&[LinuxIdMapping]>,
    gids: Option<&[LinuxIdMapping]>,
) -> Result<()> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .map_err(|e| Error::sys("mkfifo", path.display(), e))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .map_err(|e| Error::io("chmod", path, e))?;
    let host_root = |maps: Option<&[LinuxIdMapping]>| {
        maps.unwrap_or(&[])
            .iter()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
    };
    if let (Some(uid), gid) = (host_root(uids), host_root(gids)) {
        std::os::unix::fs::chown(path, Some(uid), gid).map_err(|e| Error::io("chown", path, e))?;
    }
    Ok(())
}

fn make_state_dir(root: &Path, id: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .map_err(|e| Error::io("mkdir", root, e))?;
    let dir = state::dir(root, id);
    match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(Error::Exists(id.to_string()))
        }
        Err(e) => Err(Error::io("mkdir", dir, e)),
    }
}

/// The marker names the cgroup, made before the record that names it otherwise: a create
/// killed in between leaves it for `delete` to remove.
fn make_creating_marker(dir: &Path, cgroup: &Cgroup) -> Result<()> {
    let path = dir.join(state::CREATING_MARKER);
    let text = serde_json::to_vec(cgroup).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| Error::io("create", &path, e))
}

/// What an aborted create left: its processes (the init exits once its `create` is gone) and
/// its cgroup, named by the creating marker.
fn remove_aborted_create(dir: &Path) {
    let marker = dir.join(state::CREATING_MARKER);
    let cgroup = std::fs::read(&marker)
        .ok()
        .and_then(|t| serde_json::from_slice::<Cgroup>(&t).ok());
    if let Some(cg) = cgroup {
        let _ = cg.kill_all(libc::SIGKILL);
        if let Err(e) = cg.delete() {
            tracing::warn!("aborted create: {e}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn remove_creating_marker(dir: &Path) -> Result<()> {
    let path = dir.join(state::CREATING_MARKER);
    std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))
}

fn write_id_maps(
    pid: i32,
    uids: Option<&[LinuxIdMapping]>,
    gids: Option<&[LinuxIdMapping]>,
) -> Result<()> {
    let fmt = |maps: Option<&[LinuxIdMapping]>| {
        maps.unwrap_or(&[])
            .iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    for (file, text) in [("uid_map", fmt(uids)), ("gid_map", fmt(gids))] {
        if text.is_empty() {
            return Err(Error::Spec(format!(
                "linux.{}Mappings: required with a new user namespace",
                &file[..3]
            )));
        }
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, &text).map_err(|e| Error::io("write", path, e))?;
    }
    Ok(())
}

/// Write the pid file atomically, like runc (temp file, rename).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.to_string()).map_err(|e| Error::io("write pid file", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("write pid file", path, e))
}

/// Start a created container: returns once its user process is exec'd.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    match c.status(root) {
        ContainerState::Created => {}
        ContainerState::Stopped => {
            return Err(Error::State(
                "cannot start a container that has stopped".into(),
            ))
        }
        ContainerState::Running => {
            return Err(Error::State(
                "cannot start an already running container".into(),
            ))
        }
        _ => {
            return Err(Error::State(format!(
                "cannot start a container in the {} state",
                c.status(root)
            )))
        }
    }
    let fifo_path = state::dir(root, id).join(EXEC_FIFO);
    let output = read_exec_fifo(&fifo_path, &c)?;
    let _ = std::fs::remove_file(&fifo_path);
    if let Some(err) = output.split_once('E').map(|(_, e)| e.to_string()) {
        return Err(Error::Other(err));
    }
    if output.is_empty() {
        return Err(Error::State("container init exited before start".into()));
    }
    if let Some(h) = &c.hooks {
        run_poststart(&c, h.poststart().as_deref().unwrap_or(&[]))?;
    }
    Ok(())
}

/// Poststart hooks: from spec 1.3 the first failure stops the container and fails `start`;
/// before, every hook runs and failures are warnings.
fn run_poststart(c: &Container, list: &[oci_spec::runtime::Hook]) -> Result<()> {
    let state = c.oci_state(ContainerState::Running);
    if !hooks::poststart_is_fatal(&c.oci_version) {
        for e in hooks::run_each("poststart", list, &state) {
            tracing::warn!("{e}");
        }
        return Ok(());
    }
    hooks::run("poststart", list, &state).map_err(|e| {
        let _ = c.cgroup.kill_all(libc::SIGKILL);
        let _ = nix::sys::signal::kill(Pid::from_raw(c.pid), Signal::SIGKILL);
        Error::from(e)
    })
}

/// Open the fifo's read end without blocking, wait for the init's byte, then for EOF (its
/// write end closes on exec). Returns what the init wrote: "0", or "0E<error>".
fn read_exec_fifo(path: &Path, c: &Container) -> Result<String> {
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", path.display(), e))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&fd),
            nix::poll::PollFlags::POLLIN,
        )];
        let ready = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(100u16));
        match ready {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {
                if !c.is_alive() {
                    break;
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => return Err(Error::sys("poll", path.display(), e)),
        }
        match nix::unistd::read(&fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EAGAIN) => continue,
            Err(e) => return Err(Error::sys("read", path.display(), e)),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Send a signal (a raw number: real-time ones and 0 included) to the init, or with `all` to
/// every process of the container.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let c = Container::load(root, id)?;
    if all {
        c.cgroup.kill_all(signal)?;
        if c.is_alive() {
            let _ = send_signal(c.pid, signal);
        }
        return Ok(());
    }
    if c.status(root) == ContainerState::Stopped {
        return Err(Error::State("container not running".into()));
    }
    send_signal(c.pid, signal).map_err(|e| Error::sys("kill", c.pid, e))
}

fn send_signal(pid: i32, signal: i32) -> nix::Result<()> {
    // SAFETY: kill(2) takes any pid and signal number; errors come back in errno.
    let r = unsafe { libc::kill(pid, signal) };
    nix::errno::Errno::result(r).map(drop)
}

/// Delete a stopped container (or any, with `force`): processes, cgroup, state; then poststop.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    state::check_id(id)?;
    let c = match Container::load(root, id) {
        Ok(c) => c,
        Err(Error::NotFound(_)) => {
            // An aborted create can leave a directory without state.json.
            let dir = state::dir(root, id);
            let existed = dir.exists();
            remove_aborted_create(&dir);
            return if force || existed {
                Ok(())
            } else {
                Err(Error::NotFound(id.into()))
            };
        }
        Err(e) => return Err(e),
    };
    let status = c.status(root);
    if status != ContainerState::Stopped {
        if !force {
            return Err(Error::State(format!(
                "cannot delete container {id} that is not stopped: {status}"
            )));
        }
        let _ = c.cgroup.kill_all(libc::SIGKILL);
        let _ = nix::sys::signal::kill(Pid::from_raw(c.pid), Signal::SIGKILL);
        wait_gone(&c, Duration::from_secs(10));
    } else {
        // The init is gone but what it left (a child in a shared pid namespace) is still the
        // container's: killed, so that its cgroup can go (runc does the same). An empty cgroup
        // (the usual case) cannot gain a process from inside: no freeze, kill and thaw then.
        if !c.cgroup.pids()?.is_empty() {
            c.cgroup.kill_all(libc::SIGKILL)?;
        }
    }
    c.cgroup.delete()?;
    let dir = state::dir(root, id);
    std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", dir, e))?;
    if let Some(h) = &c.hooks {
        let state = c.oci_state(ContainerState::Stopped);
        for e in hooks::run_each("poststop", h.poststop().as_deref().unwrap_or(&[]), &state) {
            tracing::warn!("{e}");
        }
    }
    Ok(())
}

fn wait_gone(c: &Container, limit: Duration) {
    let until = Instant::now() + limit;
    // Our own child (from `run`) must be reaped; others are reaped by their parent.
    while c.is_alive() && Instant::now() < until {
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(c.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn list(root: &Path) -> Result<Vec<Container>> {
    state::list_ids(root)?
        .iter()
        .map(|id| Container::load(root, id))
        .collect()
}
