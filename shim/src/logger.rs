//! Logging binaries (`binary:///path/to/logger?key=value` as a process's stdout/stderr), the
//! way containerd's shims run them: the binary gets the process's stdout on fd 3 and stderr on
//! fd 4 (pipes), reports ready by writing to or closing fd 5, and learns whose output it is
//! from `CONTAINER_ID` and `CONTAINER_NAMESPACE`. Each query pair becomes two arguments.
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::reaper;

/// URI scheme of a logging binary.
pub const SCHEME: &str = "binary://";
/// How long the binary may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LoggerError {
    #[error("log uri {uri}: no binary path")]
    NoPath { uri: String },
    #[error("logging binary {path}: {what}: {source}")]
    Io {
        path: String,
        what: &'static str,
        source: io::Error,
    },
    #[error("logging binary {path}: not ready after {secs}s")]
    NotReady { path: String, secs: u64 },
}

/// The binary and arguments a `binary://` URI names.
#[derive(Debug, PartialEq)]
pub struct LogUri {
    pub path: String,
    pub args: Vec<String>,
}

impl LogUri {
    pub fn parse(uri: &str) -> Result<LogUri, LoggerError> {
        let rest = uri.strip_prefix(SCHEME).unwrap_or(uri);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = percent_decode(path, false);
        if path.is_empty() {
            return Err(LoggerError::NoPath { uri: uri.into() });
        }
        let mut args = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            args.push(percent_decode(key, true));
            args.push(percent_decode(value, true));
        }
        Ok(LogUri { path, args })
    }
}

/// `%XX` escapes (and `+` for a space in a query).
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) if plus_is_space => out.push(b' '),
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A running logging binary; told to stop (SIGTERM) when dropped if still running.
pub struct Logger {
    pid: i32,
    exited: Receiver<i32>,
}

/// What the process writes into: the write ends of the binary's stdout and stderr pipes.
pub struct LoggerInputs {
    pub stdout: File,
    pub stderr: File,
}

impl Logger {
    /// Starts the binary of `uri` for container `id` and waits until it is ready.
    pub fn start(
        uri: &str,
        id: &str,
        namespace: &str,
    ) -> Result<(Logger, LoggerInputs), LoggerError> {
        let target = LogUri::parse(uri)?;
        let fail = |what: &'static str| {
            let path = target.path.clone();
            move |source: io::Error| LoggerError::Io { path, what, source }
        };
        let (out_r, out_w) = pipe().map_err(fail("stdout pipe"))?;
        let (err_r, err_w) = pipe().map_err(fail("stderr pipe"))?;
        let (ready_r, ready_w) = pipe().map_err(fail("ready pipe"))?;
        let mut cmd = Command::new(&target.path);
        cmd.args(&target.args)
            .env("CONTAINER_ID", id)
            .env("CONTAINER_NAMESPACE", namespace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
        unsafe { cmd.pre_exec(move || place_fds(fds)) };
        let (child, exited) = reaper::spawn(&mut cmd).map_err(fail("spawn"))?;
        drop((out_r, err_r, ready_w));
        let logger = Logger {
            pid: child.id() as i32,
            exited,
        };
        wait_ready(ready_r, &target.path)?;
        tracing::debug!(path = %target.path, pid = logger.pid, "logging binary ready");
        let inputs = LoggerInputs {
            stdout: File::from(out_w),
            stderr: File::from(err_w),
        };
        Ok((logger, inputs))
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        if matches!(self.exited.try_recv(), Err(TryRecvError::Empty)) {
            // SAFETY: kill on the pid of our own unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGTERM) };
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// In the child: the three pipe ends onto fds 3, 4, 5 (inherited, not close-on-exec).
fn place_fds(fds: [RawFd; 3]) -> io::Result<()> {
    // First out of the way of 3..=5, so no dup2 overwrites a source still needed.
    let mut high = [0; 3];
    for (h, fd) in high.iter_mut().zip(fds) {
        // SAFETY: fcntl on an fd this process holds.
        *h = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        if *h < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    for (target, fd) in (3..).zip(high) {
        // SAFETY: dup2 onto a small fd; the new fd has no close-on-exec flag.
        if unsafe { libc::dup2(fd, target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Waits until the binary writes to or closes its end of the ready pipe.
fn wait_ready(ready: OwnedFd, path: &str) -> Result<(), LoggerError> {
    let timeout =
        PollTimeout::try_from(READY_TIMEOUT.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
    let ready_now = poll(&mut fds, timeout).map_err(|e| LoggerError::Io {
        path: path.into(),
        what: "wait ready",
        source: e.into(),
    })?;
    if ready_now == 0 {
        return Err(LoggerError::NotReady {
            path: path.into(),
            secs: READY_TIMEOUT.as_secs(),
        });
    }
    let _ = File::from(ready).read(&mut [0u8; 1]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_names_binary_and_arguments() {
        let u =
            LogUri::parse("binary:///usr/bin/my%20logger?dir=/var/log/x&level=a+b&flag").unwrap();
        assert_eq!(u.path, "/usr/bin/my logger");
        assert_eq!(u.args, ["dir", "/var/log/x", "level", "a b", "flag", ""]);
    }

    #[test]
    fn uri_without_path_is_refused() {
        assert!(LogUri::parse("binary://?a=b").is_err());
    }
}
