//! The daemons the bench compares: `berth daemon` and Debian's dockerd, each on a private
//! socket, data root and exec root, driven through their CLIs; and the helpers to time and
//! weigh them.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `cmd` to success (stdout discarded); how long it took, or its stderr.
pub fn timed(cmd: &mut Command, what: &str) -> Result<Duration, String> {
    let start = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(took)
}

fn wait_for_socket(socket: &Path, what: &str) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        if Instant::now() > until {
            return Err(format!("{what} did not come up on {}", socket.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// `berth daemon` on a private socket and data root.
pub struct BerthDaemon {
    pub child: Child,
    bin: PathBuf,
    pub host: String,
}

impl BerthDaemon {
    pub fn start(dir: &Path, bin: &Path) -> Result<Self, String> {
        Self::start_wrapped(dir, bin, &[])
    }

    /// [`Self::start`] through `wrapper` (e.g. `unshare --net --`: networks of its own).
    pub fn start_wrapped(dir: &Path, bin: &Path, wrapper: &[&str]) -> Result<Self, String> {
        // Off the host's network: no nftables table, no default bridge.
        Self::start_with(dir, bin, wrapper, &["--iptables=false", "--bridge=none"])
    }

    /// [`Self::start_wrapped`] with the daemon's network `flags` instead of none at all.
    pub fn start_with(
        dir: &Path,
        bin: &Path,
        wrapper: &[&str],
        flags: &[&str],
    ) -> Result<Self, String> {
        let socket = dir.join("berth.sock");
        let host = format!("unix://{}", socket.display());
        // The daemon finds the shim and the runtime built beside it first.
        let path = format!(
            "{}:{}",
            bin.parent().unwrap_or(Path::new(".")).display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = wrapped(wrapper, bin)
            .env("PATH", path)
            .args(["daemon", "--host", &host, "--data-root"])
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(fs::File::create(work_log(dir)).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        wait_for_socket(&socket, "berth daemon")?;
        Ok(BerthDaemon {
            child,
            bin: bin.to_path_buf(),
            host,
        })
    }

    pub fn berth(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-H", &self.host]).args(args);
        cmd
    }

    pub fn timed_pull(&self, image: &str) -> Result<Duration, String> {
        timed(&mut self.berth(&["pull", "-q", image]), "berth pull")
    }

    pub fn forget(&self, image: &str) -> Result<(), String> {
        timed(&mut self.berth(&["rmi", image]), "berth rmi").map(drop)
    }
}

impl Drop for BerthDaemon {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// `program`, or `wrapper… program` when a wrapper is given.
fn wrapped(wrapper: &[&str], program: &Path) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn work_log(dir: &Path) -> PathBuf {
    let _ = fs::create_dir_all(dir);
    dir.join("daemon.log")
}

/// Debian's dockerd (it starts its own containerd) on a private socket and data root.
pub struct Dockerd {
    pub child: Child,
    dir: PathBuf,
    pub host: String,
}

impl Dockerd {
    pub fn start(dir: &Path) -> Result<Self, String> {
        Self::start_wrapped(dir, &[])
    }

    /// [`Self::start`] through `wrapper` (e.g. `unshare --net --`: networks of its own).
    pub fn start_wrapped(dir: &Path, wrapper: &[&str]) -> Result<Self, String> {
        let socket = dir.join("docker.sock");
        let host = format!("unix://{}", socket.display());
        let child = wrapped(wrapper, Path::new("/usr/sbin/dockerd"))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args(["--host", &host, "--bridge", "none", "--iptables=false"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(work_log(dir)).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("dockerd (apt-get install docker.io): {e}"))?;
        wait_for_socket(&socket, "dockerd")?;
        let docker = Dockerd {
            child,
            dir: dir.to_path_buf(),
            host,
        };
        // The API answers a moment before containerd is connected.
        std::thread::sleep(Duration::from_secs(1));
        Ok(docker)
    }

    pub fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("/usr/bin/docker");
        cmd.env("DOCKER_HOST", &self.host).args(args);
        cmd
    }

    pub fn timed_pull(&self, image: &str) -> Result<Duration, String> {
        timed(&mut self.docker(&["pull", "-q", image]), "docker pull")
    }

    pub fn forget(&self, image: &str) -> Result<(), String> {
        timed(&mut self.docker(&["rmi", image]), "docker rmi").map(drop)
    }

    /// dockerd plus the containerd it started (its child).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id();
        let children =
            fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        rss_kib(pid)
            + children
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .map(rss_kib)
                .sum::<u64>()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let exec = self.dir.join("exec");
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("data"))
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(exec);
    }
}
