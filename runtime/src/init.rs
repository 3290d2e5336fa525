//! The container's init: runs in the cloned child, sets the container up, waits for `start`
//! on the exec fifo, and execs the user process. Every failure goes back to `create`.
use crate::namespaces::Plan;
use crate::procfs::Procfs;
use crate::sync::{Channel, Msg};
use crate::{hooks, process, protect, rootfs, seccomp, sysctl, tty, Error, Result};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use oci_spec::runtime::{ContainerState, LinuxNamespaceType, Spec, State};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Everything the init needs, prepared by `create` before clone.
pub struct Init<'a> {
    pub spec: &'a Spec,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub state_dir: &'a Path,
    pub plan: &'a Plan,
    pub channel: Channel,
    /// The container's cgroup: born in its cgroup2 part, the init walks into the v1 ones.
    pub cgroup: Option<crate::cgroups::Doors>,
    pub console: Option<OwnedFd>,
    pub preserve_fds: i32,
    pub listen_fds: i32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// `linux.seccomp`, compiled before the fork.
    pub seccomp: Option<&'a crate::seccomp::Prepared>,
}

/// Never returns: execs the user process or exits non-zero after telling `create` why.
pub fn run(mut init: Init) -> ! {
    let joined = init.cgroup.take().map_or(Ok(()), |d| d.walk_in());
    let err = match joined.map_err(Error::from).and_then(|()| setup(&init)) {
        Ok(()) => unreachable!("setup returns only on error"),
        Err(e) => e,
    };
    let _ = init.channel.send(&Msg::Failed(err.to_string()));
    unsafe { libc::_exit(1) }
}

fn setup(init: &Init) -> Result<()> {
    let spec = init.spec;
    let linux = spec.linux().as_ref().expect("checked by Bundle::load");
    let process = spec.process().as_ref().expect("checked by Bundle::load");
    // The pid `create` knows us by, read before /proc is the container's.
    let host_pid: i32 = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0);
    tracing::debug!("child process in init(): setting up container {}", init.id);
    prepare_fds(init.listen_fds + init.preserve_fds)?;
    // Nothing the caller left open reaches the waiting init: only what it needs stays.
    // The log (close-on-exec) stays for the records written until exec.
    let keep: Vec<i32> = [
        Some(init.channel.raw()),
        init.console.as_ref().map(|c| c.as_raw_fd()),
        crate::logging::fd(),
    ]
    .into_iter()
    .flatten()
    .collect();
    close_all_but(3 + init.listen_fds.max(0) + init.preserve_fds.max(0), &keep)?;
    for (kind, fd) in init.plan.open_joins()? {
        crate::namespaces::enter(kind, &fd)?;
    }
    expect(&init.channel, Msg::Proceed)?;
    if init.plan.new_user || in_joined_user_ns(init.plan) {
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .map_err(|e| Error::sys("setresgid", 0, e))?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .map_err(|e| Error::sys("setresuid", 0, e))?;
    }
    if !init.plan.late_flags.is_empty() {
        let late = init.plan.late_flags;
        nix::sched::unshare(late).map_err(|e| Error::sys("unshare", format!("{late:?}"), e))?;
        if late.contains(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)) {
            write_time_offsets(spec)?;
        }
    }
    if !init.no_new_keyring {
        join_session_keyring(init.id);
    }
    set_hostname(spec, init.plan)?;
    let in_userns = init.plan.has(LinuxNamespaceType::User);
    // The exec fifo (and nothing else of the host: no directory to walk up from), held to
    // reopen it for writing from inside the new root.
    let fifo_path = init.state_dir.join(crate::state::EXEC_FIFO);
    let fifo = nix::fcntl::open(
        &fifo_path,
        OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", fifo_path.display(), e))?;
    // Without a mount namespace of its own the container shares the host's mounts: it gets a
    // chroot and nothing is mounted (that would change the host).
    let own_mounts = init.plan.has(LinuxNamespaceType::Mount);
    if own_mounts {
        rootfs::prepare(spec, init.rootfs)?;
        let root = rootfs::open_root(init.rootfs)?;
        let sources = if in_userns {
            bind_sources_from_parent(init)?
        } else {
            rootfs::Sources::new()
        };
        rootfs::mount_all(
            spec,
            &root,
            init.bundle,
            &sources,
            in_userns,
            init.plan.has(LinuxNamespaceType::Cgroup),
        )?;
        rootfs::create_devices(spec, &root, in_userns)?;
        rootfs::create_dev_links(&root)?;
    }
    if hooks::has_runtime_create_hooks(spec.hooks().as_ref()) {
        init.channel.send(&Msg::RunCreateHooks)?;
        expect(&init.channel, Msg::Proceed)?;
    }
    let state = oci_state(init, host_pid);
    if let Some(hooks) = spec.hooks() {
        // As runc: createContainer hooks start in the container's rootfs.
        nix::unistd::chdir(init.rootfs)
            .map_err(|e| Error::sys("chdir", init.rootfs.display(), e))?;
        hooks::run(
            "createContainer",
            hooks.create_container().as_deref().unwrap_or(&[]),
            &state,
        )?;
    }
    // The chroot of a container without its own mounts has no procfs (nothing is mounted
    // for it): the exec fifo is reopened through this process's fd directory, opened first.
    let mut fd_dir = None;
    if !own_mounts {
        fd_dir = Some(
            nix::fcntl::open(
                "/proc/self/fd",
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| Error::sys("open", "/proc/self/fd", e))?,
        );
        rootfs::chroot(init.rootfs)?;
    } else {
        if init.no_pivot {
            rootfs::move_root(init.rootfs)?;
        } else {
            rootfs::pivot(init.rootfs)?;
        }
        rootfs::set_root_propagation(spec)?;
    }
    if let Some(sysctls) = linux.sysctl().as_ref().filter(|m| !m.is_empty()) {
        sysctl::apply(sysctls, &Procfs::open()?)?;
    }
    if own_mounts {
        protect::mask(linux.masked_paths().as_deref().unwrap_or(&[]))?;
        protect::make_readonly(linux.readonly_paths().as_deref().unwrap_or(&[]))?;
        rootfs::readonly_tmpfs_last(spec)?;
        if spec
            .root()
            .as_ref()
            .is_some_and(|r| r.readonly() == Some(true))
        {
            rootfs::remount_readonly("/")?;
        }
    }
    match (&init.console, process.terminal() == Some(true)) {
        (Some(socket), true) => {
            let size = process
                .console_size()
                .as_ref()
                .map(|b| (b.height() as u16, b.width() as u16));
            tty::setup(socket, size, process.user().uid())?;
        }
        (None, true) => {
            return Err(Error::Spec(
                "process.terminal requires --console-socket".into(),
            ))
        }
        _ => {
            nix::unistd::setsid().map_err(|e| Error::sys("setsid", "init", e))?;
        }
    }
    process::set_oom_score_adj(process.oom_score_adj())?;
    process::set_rlimits(process.rlimits().as_deref().unwrap_or(&[]))?;
    let mut env = process.env().clone().unwrap_or_default();
    process::default_home(&mut env, process.user().uid());
    if init.listen_fds > 0 {
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={}", init.listen_fds));
        env.push("LISTEN_PID=1".into());
    }
    let args = process.args().clone().unwrap_or_default();
    let exe = process::find_executable(&args[0], &env, process.cwd())?;
    // Enter the working directory now, as root and before seccomp can refuse getcwd; it must
    // resolve inside the container (CVE-2024-21626).
    // A missing working directory is made, as runc does (resolved inside the new root).
    if !process.cwd().exists() {
        std::fs::create_dir_all(process.cwd()).map_err(|e| Error::io("mkdir", process.cwd(), e))?;
    }
    nix::unistd::chdir(process.cwd())
        .map_err(|e| Error::sys("chdir", process.cwd().display(), e))?;
    check_cwd_inside()?;
    crate::lsm::apply(process)?;
    let nnp = process.no_new_privileges() == Some(true);
    if let Some(s) = init.seccomp.filter(|_| !nnp) {
        load_seccomp_over(&init.channel, s)?;
    }
    let caps = process.capabilities().as_ref();
    process::drop_bounding(caps)?;
    process::set_user(process, !in_userns || setgroups_allowed())?;
    process::apply_capabilities(caps)?;
    if nnp {
        process::set_no_new_privs()?;
    }
    if let Some(s) = init.seccomp.filter(|_| nnp) {
        load_seccomp_over(&init.channel, s)?;
    }
    let argv = process::cstrings(&args, "process.args")?;
    let envp = process::cstrings(&env, "process.env")?;
    let exe_c = std::ffi::CString::new(exe.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Spec("process.args[0]: NUL byte".into()))?;
    tracing::debug!("init: closing the pipe to signal completion (ready, waiting for start)");
    crate::logging::release();
    init.channel.send(&Msg::Ready)?;
    // Blocks until `start` opens the fifo for reading.
    let mut fifo_w = std::fs::File::from(reopen_fifo(fifo, fd_dir)?);
    let _ = fifo_w.write_all(b"0");
    if let Some(hooks) = spec.hooks() {
        let mut state = state;
        state.set_status(ContainerState::Running);
        if let Err(e) = hooks::run(
            "startContainer",
            hooks.start_container().as_deref().unwrap_or(&[]),
            &state,
        ) {
            let _ = write!(fifo_w, "E{e}");
            unsafe { libc::_exit(1) }
        }
    }
    if let Err(e) = process::restore_sigpipe() {
        let _ = write!(fifo_w, "E{e}");
        unsafe { libc::_exit(1) }
    }
    let err = nix::unistd::execve(&exe_c, &argv, &envp).unwrap_err();
    let _ = write!(fifo_w, "Eexec {}: {err}", exe.display());
    unsafe { libc::_exit(127) }
}

/// Open the exec fifo held as `O_PATH` for writing (blocking until `start` reads), through the
/// container's /proc like runc; what opens must be that very fifo (fstat), not something a
/// fake /proc put there.
/// Open the exec fifo for writing (blocks until `start` opens it) through /proc, or through
/// `fd_dir` (our /proc/self/fd, closed once done) where the root has no procfs.
fn reopen_fifo(fifo: OwnedFd, fd_dir: Option<OwnedFd>) -> Result<OwnedFd> {
    let flags = OFlag::O_WRONLY | OFlag::O_CLOEXEC;
    let mode = nix::sys::stat::Mode::empty();
    let (path, w) = match &fd_dir {
        Some(dir) => {
            let name = fifo.as_raw_fd().to_string();
            let w = nix::fcntl::openat(dir, name.as_str(), flags, mode);
            (format!("/proc/self/fd/{name}"), w)
        }
        None => {
            let path = format!("/proc/thread-self/fd/{}", fifo.as_raw_fd());
            let w = nix::fcntl::open(path.as_str(), flags, mode);
            (path, w)
        }
    };
    drop(fd_dir);
    let w = w.map_err(|e| Error::sys("open exec fifo through", &path, e))?;
    let same = |a: &nix::sys::stat::FileStat, b: &nix::sys::stat::FileStat| {
        (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    };
    match (nix::sys::stat::fstat(&fifo), nix::sys::stat::fstat(&w)) {
        (Ok(a), Ok(b)) if same(&a, &b) => Ok(w),
        _ => Err(Error::Other(format!(
            "open exec fifo through {path}: not the exec fifo (is /proc a real procfs?)"
        ))),
    }
}

/// In a user namespace the bind sources come from the parent (host root), opened in our
/// mounts: a 0700 directory on the way is no obstacle then.
fn bind_sources_from_parent(init: &Init) -> Result<rootfs::Sources> {
    let mut sources = rootfs::Sources::new();
    if rootfs::bind_sources(init.spec, init.bundle).is_empty() {
        return Ok(sources);
    }
    init.channel.send(&Msg::MountSources)?;
    loop {
        match init.channel.recv_with_fd()? {
            (Msg::MountSource(i), Some(fd)) => {
                sources.insert(i, fd);
            }
            (Msg::Proceed, _) => return Ok(sources),
            (msg, _) => {
                return Err(Error::Other(format!(
                    "sync: unexpected {msg:?} from create"
                )))
            }
        }
    }
}

fn expect(channel: &Channel, want: Msg) -> Result<()> {
    match channel.recv()? {
        m if m == want => Ok(()),
        m => Err(Error::Other(format!("sync: expected {want:?}, got {m:?}"))),
    }
}

fn oci_state(init: &Init, pid: i32) -> State {
    let mut state = State::default();
    state.set_version(oci_spec::runtime::VERSION.to_string());
    state.set_id(init.id.to_string());
    state.set_status(ContainerState::Created);
    state.set_pid(Some(pid));
    state.set_bundle(init.bundle.to_path_buf());
    state.set_annotations(init.spec.annotations().clone());
    state
}

/// Load the filter; a notify listener goes to the runtime over `channel` (which passes it to
/// the agent) and the process waits until it has.
pub(crate) fn load_seccomp_over(channel: &Channel, s: &seccomp::Prepared) -> Result<()> {
    if let Some(listener) = s.install()? {
        channel.send_with_fd(&Msg::SeccompListener, Some(listener.as_raw_fd()))?;
        expect(channel, Msg::Proceed)?;
    }
    Ok(())
}

/// First thing in a process that will exec into a container: every fd above stdio and the
/// preserved ones closes at exec (CVE-2024-21626 class), and the signal mask `run` and `exec`
/// use for forwarding is cleared.
pub(crate) fn prepare_fds(preserve: i32) -> Result<()> {
    mark_fds_cloexec(preserve)?;
    nix::sys::signal::SigSet::empty()
        .thread_set_mask()
        .map_err(|e| Error::sys("sigprocmask", "init", e))
}

fn mark_fds_cloexec(preserve: i32) -> Result<()> {
    let first = 3 + preserve.max(0) as u32;
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r != 0 {
        return Err(Error::sys("close_range", first, nix::errno::Errno::last()));
    }
    for fd in 3..first as i32 {
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let res = nix::fcntl::fcntl(
            &owned,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        );
        std::mem::forget(owned);
        res.map_err(|e| Error::sys("preserve fd", fd, e))?;
    }
    Ok(())
}

/// Close every fd from `first` up, except those in `keep`.
pub(crate) fn close_all_but(first: i32, keep: &[RawFd]) -> Result<()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd >= first).collect();
    keep.sort_unstable();
    let mut from = first as u32;
    for k in keep.into_iter().map(|k| k as u32) {
        if k > from {
            close_range(from, k - 1)?;
        }
        from = from.max(k + 1);
    }
    close_range(from, u32::MAX)
}

fn close_range(from: u32, to: u32) -> Result<()> {
    // SAFETY: close_range(2) takes no pointers; the fds it closes are not used afterwards.
    let r = unsafe { libc::syscall(libc::SYS_close_range, from, to, 0) };
    if r != 0 {
        return Err(Error::sys("close_range", from, nix::errno::Errno::last()));
    }
    Ok(())
}

/// The working directory must be inside the container's root (CVE-2024-21626).
fn check_cwd_inside() -> Result<()> {
    let cwd = nix::unistd::getcwd().map_err(|e| Error::sys("getcwd", "process.cwd", e))?;
    if !cwd.is_absolute() || cwd.starts_with("(unreachable)") {
        return Err(Error::Other(format!(
            "process.cwd {cwd:?} is outside the container"
        )));
    }
    Ok(())
}

fn in_joined_user_ns(plan: &Plan) -> bool {
    plan.join
        .iter()
        .any(|(k, _)| *k == LinuxNamespaceType::User)
}

pub(crate) fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() == "allow")
        .unwrap_or(true)
}

fn set_hostname(spec: &Spec, plan: &Plan) -> Result<()> {
    let has_uts = plan.has(LinuxNamespaceType::Uts);
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        if !has_uts {
            return Err(Error::Spec("hostname: needs a new uts namespace".into()));
        }
        nix::unistd::sethostname(h).map_err(|e| Error::sys("sethostname", h, e))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        if !has_uts {
            return Err(Error::Spec("domainname: needs a new uts namespace".into()));
        }
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(Error::sys("setdomainname", d, nix::errno::Errno::last()));
        }
    }
    Ok(())
}

fn write_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in offsets {
        let clock = match clock.as_str() {
            "monotonic" | "boottime" => clock.as_str(),
            other => {
                return Err(Error::Spec(format!(
                    "linux.timeOffsets: unknown clock {other:?}"
                )))
            }
        };
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", text)
        .map_err(|e| Error::io("write", PathBuf::from("/proc/self/timens_offsets"), e))
}

/// A fresh session keyring named after the container, so containers don't share keys.
fn join_session_keyring(id: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    if let Ok(name) = std::ffi::CString::new(format!("_ses.{id}")) {
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    }
}
