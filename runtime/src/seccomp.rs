//! `linux.seccomp` through libseccomp: build the filter from the config, load it, and hand
//! a notify listener to the seccomp agent at `listenerPath`.
use crate::{seccomp_bpf, seccomp_cache};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    ContainerProcessState, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArg,
    LinuxSeccompFilterFlag as Flag, LinuxSeccompOperator as Op, LinuxSyscall, State,
};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("seccomp: {0}")]
    Unsupported(String),
    #[error("seccomp: {what}: {source}")]
    Lib {
        what: String,
        source: libseccomp::error::SeccompError,
    },
    #[error("seccomp: listener {path}: {reason}")]
    Listener { path: String, reason: String },
}

fn lib(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> Error {
    let what = what.into();
    move |source| Error::Lib { what, source }
}

/// The config's name for a value (`SCMP_ACT_ERRNO`, `SCMP_ARCH_X86_64`, …).
fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn action(a: Action, errno_ret: Option<u32>) -> ScmpAction {
    let errno = errno_ret.map_or(libc::EPERM, |e| e as i32);
    match a {
        Action::ScmpActKill | Action::ScmpActKillThread => ScmpAction::KillThread,
        Action::ScmpActKillProcess => ScmpAction::KillProcess,
        Action::ScmpActTrap => ScmpAction::Trap,
        Action::ScmpActErrno => ScmpAction::Errno(errno),
        Action::ScmpActNotify => ScmpAction::Notify,
        Action::ScmpActTrace => ScmpAction::Trace(errno as u16),
        Action::ScmpActLog => ScmpAction::Log,
        Action::ScmpActAllow => ScmpAction::Allow,
    }
}

fn compare(arg: &LinuxSeccompArg) -> ScmpArgCompare {
    let op = match arg.op() {
        Op::ScmpCmpNe => ScmpCompareOp::NotEqual,
        Op::ScmpCmpLt => ScmpCompareOp::Less,
        Op::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        Op::ScmpCmpEq => ScmpCompareOp::Equal,
        Op::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        Op::ScmpCmpGt => ScmpCompareOp::Greater,
        // runc: value is the mask, valueTwo the value compared after masking.
        Op::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
    };
    let datum = match arg.op() {
        Op::ScmpCmpMaskedEq => arg.value_two().unwrap_or(0),
        _ => arg.value(),
    };
    ScmpArgCompare::new(arg.index() as u32, op, datum)
}

/// Build the filter the config describes (not loaded yet).
pub fn build(seccomp: &LinuxSeccomp) -> Result<ScmpFilterContext, Error> {
    let default = action(seccomp.default_action(), seccomp.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("new filter"))?;
    // no_new_privs is the runtime's decision (process.noNewPrivileges), not libseccomp's.
    ctx.set_ctl_nnp(false).map_err(lib("disable nnp"))?;
    for arch in seccomp.architectures().iter().flatten() {
        let n = name(arch);
        let a = ScmpArch::from_str(&n).map_err(lib(format!("architecture {n:?}")))?;
        ctx.add_arch(a)
            .map_err(lib(format!("add architecture {n:?}")))?;
    }
    for flag in seccomp.flags().iter().flatten() {
        let set = match flag {
            Flag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true).map(|_| ()),
            Flag::SeccompFilterFlagLog => ctx.set_ctl_log(true).map(|_| ()),
            Flag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true).map(|_| ()),
            Flag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true).map(|_| ()),
        };
        set.map_err(lib(format!("flag {}", name(flag))))?;
    }
    for rule in seccomp.syscalls().iter().flatten() {
        add_rule(&mut ctx, rule, default)?;
    }
    Ok(ctx)
}

fn add_rule(
    ctx: &mut ScmpFilterContext,
    rule: &LinuxSyscall,
    default: ScmpAction,
) -> Result<(), Error> {
    let act = action(rule.action(), rule.errno_ret());
    if act == default {
        return Ok(()); // libseccomp refuses rules that repeat the default action
    }
    let args: Vec<ScmpArgCompare> = rule.args().iter().flatten().map(compare).collect();
    let mut indices: Vec<usize> = rule.args().iter().flatten().map(|a| a.index()).collect();
    indices.sort_unstable();
    indices.dedup();
    // Conditions on distinct arguments are ANDed in one rule; several on the same argument
    // become one rule each (ORed), as runc does.
    let groups: Vec<Vec<ScmpArgCompare>> = if indices.len() == args.len() {
        vec![args]
    } else {
        args.into_iter().map(|a| vec![a]).collect()
    };
    for syscall in rule.names() {
        // A name this architecture doesn't know is skipped, like runc.
        let Ok(nr) = ScmpSyscall::from_name(syscall) else {
            tracing::debug!("seccomp: unknown syscall {syscall:?} skipped");
            continue;
        };
        for group in &groups {
            let res = if group.is_empty() {
                ctx.add_rule(act, nr)
            } else {
                ctx.add_rule_conditional(act, nr, group)
            };
            res.map_err(lib(format!("syscall {syscall:?}")))?;
        }
    }
    Ok(())
}

/// A filter ready to install: its BPF program (led by the ENOSYS check for syscalls newer
/// than the profile, [`seccomp_bpf`]) and its seccomp(2) flags. Made before the container's
/// process is forked, so that only the install happens inside.
pub struct Prepared {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

impl Prepared {
    /// Install the filter in the calling thread; the notify listener when a rule uses
    /// `SCMP_ACT_NOTIFY`.
    pub fn install(&self) -> Result<Option<OwnedFd>, Error> {
        seccomp_bpf::install(&self.program, self.flags)
    }
}

/// The filter of `seccomp`, compiled, or taken from `cache` (a directory,
/// [`seccomp_cache`]) where a container with the same profile left it.
pub fn prepare(seccomp: &LinuxSeccomp, cache: Option<&Path>) -> Result<Prepared, Error> {
    let flags = filter_flags(seccomp);
    let key = cache.map(|_| seccomp_cache::key(&serde_json::to_vec(seccomp).unwrap_or_default()));
    if let (Some(dir), Some(key)) = (cache, &key) {
        if let Some(program) = seccomp_cache::lookup(dir, key) {
            return Ok(Prepared { program, flags });
        }
    }
    let program = compile(seccomp)?;
    if let (Some(dir), Some(key)) = (cache, &key) {
        seccomp_cache::store(dir, key, &program);
    }
    Ok(Prepared { program, flags })
}

fn compile(seccomp: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>, Error> {
    let ctx = build(seccomp)?;
    let program = seccomp_bpf::export(&ctx)?;
    let default = action(seccomp.default_action(), seccomp.default_errno_ret());
    let enosys = ScmpAction::Errno(libc::ENOSYS);
    if matches!(default, ScmpAction::Allow | ScmpAction::Log) || default == enosys {
        return Ok(program);
    }
    let archs: Vec<String> = seccomp.architectures().iter().flatten().map(name).collect();
    let names = seccomp
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|r| r.names())
        .map(String::as_str);
    let limits = seccomp_bpf::arch_limits(&archs, names);
    seccomp_bpf::with_enosys_prefix(program, &limits)
}

/// Compile and install the filter in the calling thread (no cache).
pub fn load(seccomp: &LinuxSeccomp) -> Result<Option<OwnedFd>, Error> {
    prepare(seccomp, None)?.install()
}

/// seccomp(2) flags: the config's, and a listener where a rule notifies.
fn filter_flags(seccomp: &LinuxSeccomp) -> libc::c_ulong {
    let mut flags = 0;
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag {
            Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            Flag::SeccompFilterFlagWaitKillableRecv => libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        };
    }
    if uses_notify(seccomp) {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // TSYNC and a listener only together with TSYNC_ESRCH (the kernel's rule).
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    flags
}

/// Why the profile's notify rules cannot work: the runtime itself writes (to its sync pipe
/// and log) after the filter is loaded and before the agent can answer, so a notified
/// `write` would hang the container's start.
pub fn notify_problem(seccomp: &LinuxSeccomp) -> Option<String> {
    let rules = seccomp.syscalls().iter().flatten().enumerate();
    rules
        .filter(|(_, r)| r.action() == Action::ScmpActNotify)
        .find(|(_, r)| r.names().iter().any(|n| n == "write"))
        .map(|(i, _)| {
            format!(
                "linux.seccomp.syscalls[{i}]: SCMP_ACT_NOTIFY cannot be used for the write syscall"
            )
        })
}

pub fn uses_notify(seccomp: &LinuxSeccomp) -> bool {
    seccomp.default_action() == Action::ScmpActNotify
        || seccomp
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.action() == Action::ScmpActNotify)
}

/// Hand the listener to the agent at `listener_path`: the container process state as JSON
/// with the fd attached (SCM_RIGHTS), named `seccompFd` in its `fds`.
pub fn send_listener(
    listener_path: &Path,
    metadata: Option<&str>,
    state: &State,
    pid: i32,
    fd: BorrowedFd,
) -> Result<(), Error> {
    let err = |reason: String| Error::Listener {
        path: listener_path.display().to_string(),
        reason,
    };
    let mut msg = ContainerProcessState::default();
    msg.set_version(oci_spec::runtime::VERSION.to_string());
    msg.set_fds(vec![oci_spec::runtime::SECCOMP_FD_NAME.to_string()]);
    msg.set_pid(pid);
    msg.set_metadata(metadata.map(str::to_owned));
    msg.set_state(state.clone());
    let json = serde_json::to_vec(&msg).map_err(|e| err(e.to_string()))?;
    let sock = std::os::unix::net::UnixStream::connect(listener_path)
        .map_err(|e| err(format!("failed to connect with seccomp agent: {e}")))?;
    let fds = [fd.as_raw_fd()];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    nix::sys::socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&json)],
        &cmsg,
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .map_err(|e| err(e.to_string()))?;
    Ok(())
}

pub fn supported_actions() -> Vec<String> {
    [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ]
    .map(String::from)
    .to_vec()
}

pub fn supported_operators() -> Vec<String> {
    [
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_LE",
        "SCMP_CMP_LT",
        "SCMP_CMP_MASKED_EQ",
        "SCMP_CMP_NE",
    ]
    .map(String::from)
    .to_vec()
}

pub fn supported_archs() -> Vec<String> {
    [
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PARISC",
        "SCMP_ARCH_PARISC64",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_SH",
        "SCMP_ARCH_SHEB",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
    ]
    .map(String::from)
    .to_vec()
}

pub fn supported_flags() -> Vec<String> {
    [
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_TSYNC",
    ]
    .map(String::from)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    fn config(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    /// Run `body` in a forked child that loads `seccomp` first; its exit status.
    fn in_child(seccomp: &LinuxSeccomp, body: fn(Option<OwnedFd>) -> i32) -> WaitStatus {
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                nix::sys::prctl::set_no_new_privs().unwrap();
                let code = match load(seccomp) {
                    Ok(listener) => body(listener),
                    Err(_) => 99,
                };
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => waitpid(child, None).unwrap(),
        }
    }

    fn mkdir_errno() -> i32 {
        let dir = format!("/tmp/berth-seccomp-test-{}", std::process::id());
        match nix::unistd::mkdir(
            dir.as_str(),
            nix::sys::stat::Mode::from_bits_truncate(0o700),
        ) {
            Ok(()) => {
                let _ = std::fs::remove_dir(&dir);
                0
            }
            Err(e) => e as i32,
        }
    }

    #[test]
    fn blocked_syscall_returns_the_configured_errno() {
        let s = config(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        );
        let status = in_child(&s, |_| mkdir_errno());
        assert!(matches!(status, WaitStatus::Exited(_, 38)), "{status:?}");
    }

    #[test]
    fn syscalls_newer_than_the_profile_get_enosys() {
        // Default EPERM; clone3 (435) is newer than every syscall the profile names (the
        // newest is exit_group, 231), so it gets ENOSYS and libc falls back to clone. mkdir
        // (83) is older: the profile's default applies.
        let s = config(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
            "syscalls":[{"names":["exit_group","exit","write","rt_sigreturn"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let status = in_child(&s, |_| {
            let clone3 = unsafe { libc::syscall(libc::SYS_clone3, 0usize, 0usize) };
            let clone3_errno = nix::errno::Errno::last() as i32;
            let mkdir = mkdir_errno();
            if clone3 == -1 && clone3_errno == libc::ENOSYS && mkdir == libc::EPERM {
                0
            } else {
                1
            }
        });
        assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    }

    #[test]
    fn argument_conditions_select_calls() {
        // personality(0xffffffff) queries and is allowed; any other argument gets EPERM.
        let s = config(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["personality"],
            "action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":4294967295,"op":"SCMP_CMP_NE"}]}]}"#,
        );
        let status = in_child(&s, |_| {
            let query = unsafe { libc::personality(0xffffffff) };
            let set = unsafe { libc::personality(0) };
            let errno = nix::errno::Errno::last() as i32;
            if query >= 0 && set == -1 && errno == libc::EPERM {
                0
            } else {
                1
            }
        });
        assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    }

    #[test]
    fn kill_process_action_kills_with_sigsys() {
        let s = config(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
        );
        let status = in_child(&s, |_| {
            let _ = nix::unistd::getcwd();
            0
        });
        assert!(
            matches!(
                status,
                WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _)
            ),
            "{status:?}"
        );
    }

    #[test]
    fn notify_rules_return_a_listener() {
        let s = config(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        let status = in_child(&s, |listener| if listener.is_some() { 0 } else { 1 });
        assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
        assert!(uses_notify(&s));
    }

    #[test]
    fn bad_values_are_named() {
        let err = serde_json::from_str::<LinuxSeccomp>(r#"{"defaultAction":"SCMP_ACT_FOO"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("SCMP_ACT_FOO"), "{err}");
        let err = serde_json::from_str::<LinuxSeccomp>(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_VAX"]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("SCMP_ARCH_VAX"), "{err}");
    }
}
