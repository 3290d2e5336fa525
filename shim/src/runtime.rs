//! Calls a runc-compatible runtime binary (`berth-runtime`, `runc`, `crun`) the way runc's
//! command line expects, and turns its failures into the runtime's own last error message.
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::reaper;

/// The default runtime binary.
pub const DEFAULT_BINARY: &str = "berth-runtime";
/// Parent of the default `--root`; the namespace is appended.
pub const DEFAULT_ROOT: &str = "/run/containerd/berth";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{binary}: {source}")]
    Spawn { binary: String, source: io::Error },
    /// The runtime's own last error, as runc-v2 passes runc's on (no binary path in it).
    #[error("{message}")]
    Failed { message: String },
}

/// One runtime binary with its state root, bound to one bundle (for `--log`).
#[derive(Debug, Clone)]
pub struct Runtime {
    pub binary: String,
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    pub log: PathBuf,
}

/// The container's stdio for `create`/`exec` (the runtime passes its own stdio on).
pub struct ProcessIo {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl Runtime {
    pub fn new(binary: &str, root: &Path, systemd_cgroup: bool, bundle: &Path) -> Runtime {
        Runtime {
            binary: binary.to_owned(),
            root: root.to_owned(),
            systemd_cgroup,
            log: bundle.join("log.json"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root);
        cmd.arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"]);
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(args);
        cmd
    }

    /// Runs `args`, returning stdout; `io` replaces the null/piped stdio.
    pub fn run(&self, args: &[&str], io: Option<ProcessIo>) -> Result<Vec<u8>, RuntimeError> {
        let mut cmd = self.command(args);
        let captured = io.is_none();
        match io {
            Some(io) => cmd.stdin(io.stdin).stdout(io.stdout).stderr(io.stderr),
            None => cmd
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        };
        tracing::debug!(binary = %self.binary, ?args, "runtime");
        let log_start = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let spawn_err = |source| RuntimeError::Spawn {
            binary: self.binary.clone(),
            source,
        };
        let (mut child, status) = reaper::spawn(&mut cmd).map_err(spawn_err)?;
        drop(cmd);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        if captured {
            if let Some(mut s) = child.stdout.take() {
                let _ = s.read_to_end(&mut out);
            }
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_end(&mut err);
            }
        }
        let code = status.recv().unwrap_or(-1);
        if code == 0 {
            return Ok(out);
        }
        let message = last_error(&self.log, log_start)
            .or_else(|| {
                Some(String::from_utf8_lossy(&err).trim().to_owned()).filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| {
                let name = Path::new(&self.binary).file_name().unwrap_or_default();
                let command = args.first().copied().unwrap_or_default();
                format!("{} {command}: exit status {code}", name.to_string_lossy())
            });
        Err(RuntimeError::Failed { message })
    }
}

/// The message of the last `"level":"error"` line of a runtime's JSON log, after byte `from`.
pub fn last_error(log: &Path, from: u64) -> Option<String> {
    let mut file = File::open(log).ok()?;
    io::Seek::seek(&mut file, io::SeekFrom::Start(from)).ok()?;
    let mut last = None;
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v.get("level").and_then(|l| l.as_str()) == Some("error") {
            if let Some(msg) = v.get("msg").and_then(|m| m.as_str()) {
                last = Some(msg.to_owned());
            }
        }
    }
    last
}

/// Reads a runtime's `--pid-file`.
pub fn read_pid(path: &Path) -> io::Result<i32> {
    let s = std::fs::read_to_string(path)?;
    s.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: bad pid {s:?}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_line_wins() {
        let dir = std::env::temp_dir().join(format!("berth-shim-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log.json");
        std::fs::write(
            &log,
            "{\"level\":\"error\",\"msg\":\"first\"}\n{\"level\":\"info\",\"msg\":\"x\"}\n{\"level\":\"error\",\"msg\":\"container_linux.go: no such file\"}\n",
        )
        .unwrap();
        assert_eq!(
            last_error(&log, 0).as_deref(),
            Some("container_linux.go: no such file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
