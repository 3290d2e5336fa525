//! The user process's credentials and limits: user and groups, capabilities, rlimits,
//! no_new_privs, oom score, and finding the executable.
use crate::{Error, Result};
use caps::{CapSet, Capability as Cap, CapsHashSet};
use nix::sys::signal::{SigHandler, Signal};
use oci_spec::runtime::{Capabilities, LinuxCapabilities, PosixRlimit, Process};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Set resource limits; a refused raise names the limit and values.
pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for r in rlimits {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let resource = rlimit_resource(&name)
            .ok_or_else(|| Error::Spec(format!("process.rlimits: unknown type {name:?}")))?;
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            let e = nix::errno::Errno::last();
            return Err(Error::sys(
                "setrlimit",
                format!("{name} soft={} hard={}", r.soft(), r.hard()),
                e,
            ));
        }
    }
    Ok(())
}

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

pub fn set_oom_score_adj(score: Option<i32>) -> Result<()> {
    if let Some(score) = score {
        std::fs::write("/proc/self/oom_score_adj", score.to_string())
            .map_err(|e| Error::io("write oom_score_adj", format!("{score}"), e))?;
    }
    Ok(())
}

/// Become the process's user: groups, gid, uid — keeping capabilities across the uid change
/// so that `apply_capabilities` decides what stays.
pub fn set_user(process: &Process, setgroups_allowed: bool) -> Result<()> {
    let user = process.user();
    let uid = user.uid();
    let gid = user.gid();
    if setgroups_allowed {
        let groups: Vec<nix::unistd::Gid> = user
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&groups)
            .map_err(|e| Error::sys("setgroups", format!("{:?}", user.additional_gids()), e))?;
    } else if user
        .additional_gids()
        .as_ref()
        .is_some_and(|g| !g.is_empty())
    {
        return Err(Error::Spec(
            "process.user.additionalGids: setgroups is denied in this user namespace".into(),
        ));
    }
    nix::sys::prctl::set_keepcaps(true).map_err(|e| Error::sys("prctl", "PR_SET_KEEPCAPS", e))?;
    let g = nix::unistd::Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g).map_err(|e| Error::sys("setresgid", gid, e))?;
    let u = nix::unistd::Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u).map_err(|e| Error::sys("setresuid", uid, e))?;
    if let Some(umask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    }
    Ok(())
}

/// Capabilities this kernel knows (read once: probing each costs a syscall).
fn kernel_caps() -> &'static CapsHashSet {
    static SUPPORTED: std::sync::OnceLock<CapsHashSet> = std::sync::OnceLock::new();
    SUPPORTED.get_or_init(|| {
        let last: u8 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        caps::all()
            .into_iter()
            .filter(|c| c.index() <= last)
            .collect()
    })
}

fn to_caps(set: &Option<Capabilities>) -> CapsHashSet {
    set.iter()
        .flatten()
        .filter_map(|c| Cap::from_str(&format!("CAP_{c}")).ok())
        .filter(|c| kernel_caps().contains(c))
        .collect()
}

/// Drop the bounding set first (needs CAP_SETPCAP), then set the others.
pub fn drop_bounding(capabilities: Option<&LinuxCapabilities>) -> Result<()> {
    let keep = to_caps(&capabilities.and_then(|c| c.bounding().clone()));
    for cap in kernel_caps().iter().filter(|c| !keep.contains(c)) {
        caps::drop(None, CapSet::Bounding, *cap)
            .map_err(|e| Error::Other(format!("drop bounding {cap}: {e}")))?;
    }
    Ok(())
}

pub fn apply_capabilities(capabilities: Option<&LinuxCapabilities>) -> Result<()> {
    let get = |f: fn(&LinuxCapabilities) -> &Option<Capabilities>| {
        to_caps(&capabilities.and_then(|c| f(c).clone()))
    };
    let permitted = get(LinuxCapabilities::permitted);
    let effective = get(LinuxCapabilities::effective);
    let inheritable = get(LinuxCapabilities::inheritable);
    let ambient = get(LinuxCapabilities::ambient);
    for (set, caps_) in [
        (CapSet::Inheritable, &inheritable),
        (CapSet::Effective, &effective),
        (CapSet::Permitted, &permitted),
    ] {
        caps::set(None, set, caps_).map_err(|e| Error::Other(format!("capset {set:?}: {e}")))?;
    }
    caps::clear(None, CapSet::Ambient).ok();
    // The kernel only lets a capability be ambient if it is permitted and inheritable; runc
    // and crun skip the others, and configs (`runc spec`'s) rely on that. Only a debug record:
    // runc says nothing on stderr, where tools read the process's own output too.
    for cap in ambient {
        if !(permitted.contains(&cap) && inheritable.contains(&cap)) {
            tracing::debug!("ambient {cap} skipped: not in the permitted and inheritable sets");
            continue;
        }
        caps::raise(None, CapSet::Ambient, cap)
            .map_err(|e| Error::Other(format!("raise ambient {cap}: {e}")))?;
    }
    Ok(())
}

/// Rust's runtime ignores SIGPIPE in the runtime itself; the container's process must get the
/// default back, as from any other runtime (`yes | head` would spin for ever otherwise).
/// Called right before execve: until then the runtime wants EPIPE, not death.
pub fn restore_sigpipe() -> Result<()> {
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) }
        .map(drop)
        .map_err(|e| Error::sys("signal", "SIGPIPE", e))
}

pub fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| Error::sys("prctl", "PR_SET_NO_NEW_PRIVS", e))
}

/// Without HOME in the environment, set it from the container's /etc/passwd entry for `uid`
/// (`/` when there is none), as runc does.
pub fn default_home(env: &mut Vec<String>, uid: u32) {
    if env.iter().any(|e| e.starts_with("HOME=")) {
        return;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let home = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[2].parse() == Ok(uid))
        .map(|f| f[5].to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into());
    env.push(format!("HOME={home}"));
}

/// Find `arg0` the way execvp would, on the container's PATH, resolving every candidate
/// inside the calling process's root (the container's) and through no magic link, so that an
/// fd held by the runtime cannot lead the check to a host file.
pub fn find_executable(arg0: &str, env: &[String], cwd: &Path) -> Result<PathBuf> {
    let shown = crate::error::shorten(arg0);
    let root = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", "/", e))?;
    if arg0.contains('/') {
        return match executable_in_root(&root, &cwd.join(arg0)) {
            Ok(true) => Ok(PathBuf::from(arg0)),
            Ok(false) => Err(Error::Other(format!("exec: {shown:?}: permission denied"))),
            Err(nix::errno::Errno::ELOOP) => Err(Error::Other(format!(
                "exec: {shown:?}: resolves through a magic link or a symlink loop"
            ))),
            Err(e) => Err(Error::Other(format!("exec: {shown:?}: {}", e.desc()))),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(arg0))
        .find(|p| executable_in_root(&root, &cwd.join(p)) == Ok(true))
        .ok_or_else(|| {
            Error::Other(format!(
                "exec: {shown:?}: executable file not found in $PATH"
            ))
        })
}

/// Whether `path` (absolute, inside `root`) is an executable regular file.
fn executable_in_root(root: &std::os::fd::OwnedFd, path: &Path) -> nix::Result<bool> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(root, path, how)?;
    let st = nix::sys::stat::fstat(&fd)?;
    let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    Ok(regular && st.st_mode & 0o111 != 0)
}

/// C strings for execve; `field` names the list in the error (`process.args`).
pub fn cstrings(items: &[String], field: &str) -> Result<Vec<CString>> {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::Spec(format!("{field}[{i}]: contains a NUL byte")))
        })
        .collect()
}

/// fork(2) with namespace `flags`: the child is in its new namespaces from its first
/// instruction. Returns the pid, 0 in the child.
pub fn fork_with(flags: libc::c_ulong) -> crate::Result<i32> {
    // SAFETY: clone without CLONE_VM and without a stack is fork.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        let flags = nix::sched::CloneFlags::from_bits_retain(flags as libc::c_int);
        return Err(crate::Error::sys(
            "clone",
            format!("{flags:?}"),
            nix::errno::Errno::last(),
        ));
    }
    Ok(r as i32)
}
