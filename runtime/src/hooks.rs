//! OCI hooks: prestart, createRuntime, createContainer, startContainer, poststart, poststop.
//! Each runs with its args and env, the container state JSON on stdin, and its timeout.
use oci_spec::runtime::{Hook, State};
use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("error running hook #{index} ({kind} hook {path}): {reason}")]
    Failed {
        kind: String,
        index: usize,
        path: String,
        reason: String,
    },
}

/// Run `hooks` in order; the first failure stops the list and is returned (createRuntime,
/// createContainer, startContainer, prestart, and poststart from spec 1.3).
pub fn run(kind: &str, hooks: &[Hook], state: &State) -> Result<(), Error> {
    let stdin = serde_json::to_vec(state).unwrap_or_default();
    hooks.iter().enumerate().try_for_each(|(i, hook)| {
        run_one(hook, &stdin).map_err(|reason| failed(kind, i, hook, reason))
    })
}

/// Run every hook of `hooks`, whatever fails; the failures (poststop, and poststart up to
/// spec 1.2: the spec says warn and go on).
pub fn run_each(kind: &str, hooks: &[Hook], state: &State) -> Vec<Error> {
    let stdin = serde_json::to_vec(state).unwrap_or_default();
    hooks
        .iter()
        .enumerate()
        .filter_map(|(i, hook)| {
            run_one(hook, &stdin)
                .err()
                .map(|r| failed(kind, i, hook, r))
        })
        .collect()
}

/// Whether a failing poststart hook fails `start` (and stops the container): spec 1.3 on.
pub fn poststart_is_fatal(oci_version: &str) -> bool {
    let mut parts = oci_version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (1, 3),
        _ => false,
    }
}

/// Does the runtime have hooks to run between the init's mounts and `createContainer`
/// (prestart, createRuntime)? Without them the init does not stop for the runtime there.
pub fn has_runtime_create_hooks(hooks: Option<&oci_spec::runtime::Hooks>) -> bool {
    #[allow(deprecated)]
    hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|l| !l.is_empty())
            || h.create_runtime().as_ref().is_some_and(|l| !l.is_empty())
    })
}

fn failed(kind: &str, index: usize, hook: &Hook, reason: String) -> Error {
    Error::Failed {
        kind: kind.to_string(),
        index,
        path: hook.path().display().to_string(),
        reason,
    }
}

fn run_one(hook: &Hook, stdin: &[u8]) -> Result<(), String> {
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some(arg0) = args.first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
        cmd.args(&args[1..]);
    }
    cmd.env_clear();
    for entry in hook.env().iter().flatten() {
        if let Some((k, v)) = entry.split_once('=') {
            cmd.env(k, v);
        }
    }
    // The state comes from a memfd, so a hook that never reads it cannot block us past its
    // timeout; output goes to another, kept for the error message.
    let mut input = memfd().map_err(|e| format!("memfd: {e}"))?;
    input
        .write_all(stdin)
        .and_then(|_| input.rewind())
        .map_err(|e| format!("state: {e}"))?;
    let output = memfd().map_err(|e| format!("memfd: {e}"))?;
    let out_clone = output.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::from(input))
        .stdout(Stdio::from(output.try_clone().map_err(|e| e.to_string())?))
        .stderr(Stdio::from(out_clone));
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let timeout = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let status = wait(&mut child, timeout)?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let mut f = output;
    let _ = f.rewind();
    let _ = f.take(4096).read_to_string(&mut text);
    let text = text.trim();
    let status = describe(status);
    Err(if text.is_empty() {
        status
    } else {
        format!("{status}: {text}")
    })
}

/// "exit status: 3", or for a signal "signal: bad system call (SIGSYS)" (the words tools
/// match, as Go prints them).
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    let Some(sig) = status.signal() else {
        return status.to_string();
    };
    // SAFETY: strsignal returns a static (or thread-local) NUL-terminated string.
    let text = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(sig)) }.to_string_lossy();
    let mut words = text.to_lowercase();
    if let Ok(name) = nix::sys::signal::Signal::try_from(sig) {
        words = format!("{words} ({name})");
    }
    let core = if status.core_dumped() {
        " (core dumped)"
    } else {
        ""
    };
    format!("signal: {words}{core}")
}

fn memfd() -> std::io::Result<std::fs::File> {
    let fd: OwnedFd =
        nix::sys::memfd::memfd_create(c"berth-hook", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    Ok(std::fs::File::from(fd))
}

/// Wait for the hook, killing it when `timeout` passes.
fn wait(
    child: &mut std::process::Child,
    timeout: Option<Duration>,
) -> Result<std::process::ExitStatus, String> {
    let Some(limit) = timeout else {
        return child.wait().map_err(|e| e.to_string());
    };
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", limit.as_secs()));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn poststart_failure_is_fatal_from_spec_1_3() {
        for v in ["1.3.0", "1.3.0-rc.1", "1.4.0", "2.0.0"] {
            assert!(poststart_is_fatal(v), "{v}");
        }
        for v in ["1.0.2", "1.2.1", "1.2.0-dev", "", "x"] {
            assert!(!poststart_is_fatal(v), "{v}");
        }
    }

    fn hook(dir: &Path, name: &str, script: &str, timeout: Option<i64>) -> Hook {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut h = Hook::default();
        h.set_path(path);
        h.set_args(Some(vec![name.to_string(), "one".into(), "two".into()]));
        h.set_env(Some(vec!["HOOK_VAR=yes".into()]));
        h.set_timeout(timeout);
        h
    }

    fn state() -> State {
        let mut s = State::default();
        s.set_id("hooked".into());
        s.set_pid(Some(42));
        s
    }

    #[test]
    fn runs_in_order_with_state_args_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let l = log.display();
        let hooks = [
            hook(
                dir.path(),
                "first",
                &format!("cat > {l}.stdin; echo \"first $@ $HOOK_VAR home=$HOME\" >> {l}"),
                None,
            ),
            hook(dir.path(), "second", &format!("echo second >> {l}"), None),
        ];
        run("createRuntime", &hooks, &state()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "first one two yes home=\nsecond\n"
        );
        let stdin: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{l}.stdin")).unwrap()).unwrap();
        assert_eq!(stdin["id"], "hooked");
        assert_eq!(stdin["pid"], 42);
    }

    #[test]
    fn failure_names_hook_status_and_output_and_stops_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let hooks = [
            hook(
                dir.path(),
                "bad",
                "echo broken pipe dream >&2; exit 3",
                None,
            ),
            hook(
                dir.path(),
                "after",
                &format!("touch {}", marker.display()),
                None,
            ),
        ];
        let err = run("prestart", &hooks, &state()).unwrap_err().to_string();
        assert!(
            err.contains("prestart hook") && err.contains("bad"),
            "{err}"
        );
        assert!(
            err.contains("exit status: 3") && err.contains("broken pipe dream"),
            "{err}"
        );
        assert!(!marker.exists(), "later hooks must not run");
    }

    #[test]
    fn timeout_kills_the_hook() {
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let err = run(
            "poststart",
            &[hook(dir.path(), "slow", "sleep 30", Some(1))],
            &state(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("timed out after 1s"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "took {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_hook_ignoring_a_large_state_still_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = state();
        s.set_annotations(Some([("big".to_string(), "x".repeat(1 << 20))].into()));
        let start = Instant::now();
        let err = run(
            "createRuntime",
            &[hook(dir.path(), "stuck", "sleep 30", Some(1))],
            &s,
        )
        .unwrap_err();
        assert!(err.to_string().contains("timed out after 1s"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "took {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_hook_that_ignores_a_large_state_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = state();
        s.set_annotations(Some([("big".to_string(), "x".repeat(1 << 20))].into()));
        run("poststop", &[hook(dir.path(), "deaf", "exit 0", None)], &s).unwrap();
    }
}
