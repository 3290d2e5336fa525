//! A private containerd 1.6 with its CRI plugin, run in a network namespace of its own, and a
//! CRI client (Kubernetes' generated protos, `k8s-cri`, over tonic) on its socket.
//!
//! ```no_run
//! use berth_integration::cri::Cri;
//! let cri = Cri::start("demo");
//! let version = cri.call(cri.runtime().version(k8s_cri::v1::VersionRequest::default())).unwrap();
//! ```
//! Everything lives under one directory (root, state, sockets, CNI config and IPAM data, runtime
//! roots); pods go under a cgroup parent of the harness's own. Dropping the harness removes the
//! pods through the CRI, stops containerd, kills shims and processes left in its cgroups and
//! unmounts what it mounted, so a failed assertion leaves nothing behind either.
pub mod config;
pub mod images;

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

pub use config::{Handler, BERTH_TYPE, HANDLERS, RUNC_TYPE};

/// The CRI namespace of containerd.
pub const NAMESPACE: &str = "k8s.io";
/// Per-call limit: a hung call fails the test instead of blocking it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The private pod subnet (inside containerd's own network namespace).
pub const SUBNET: &str = "10.88.77.0/24";

pub struct Cri {
    pub dir: PathBuf,
    /// The directory of berth's binaries handed to containerd (shim, runtime).
    pub bin: PathBuf,
    /// Cgroup parent (cgroupfs, absolute) every pod of this harness goes under.
    pub cgroup_parent: String,
    pub network: String,
    rt: tokio::runtime::Runtime,
    daemon: Mutex<Option<Child>>,
    channel: Mutex<Option<Channel>>,
    /// Pod network namespaces seen (bind mounts containerd makes under /var/run/netns).
    netns_seen: Mutex<Vec<String>>,
    /// Handlers of the test's own, beside [`HANDLERS`].
    extra: Vec<Handler>,
}

/// Fails loudly when a file the harness needs is missing.
fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} missing: apt-get install -y {package}"
    );
}

/// berth's release binaries: `$BERTH_BIN_DIR`, else the workspace's `target/release`.
pub fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("BERTH_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release"));
    for bin in ["containerd-shim-berth-v2", "berth-runtime"] {
        assert!(
            dir.join(bin).exists(),
            "{} missing: cargo build --release -p containerd-shim-berth-v2 -p berth-runtime",
            dir.join(bin).display()
        );
    }
    dir.canonicalize().expect("canonicalize bin dir")
}

impl Cri {
    /// Starts containerd (named `name` in paths) with every handler, and imports the images.
    pub fn start(name: &str) -> Cri {
        Cri::start_with(name, |_| Vec::new())
    }

    /// [`Cri::start`] with handlers of the caller's own too, made from the harness's
    /// directory (where their runtime roots and binaries may go).
    pub fn start_with(name: &str, extra: impl FnOnce(&Path) -> Vec<Handler>) -> Cri {
        for (path, package) in [
            ("/usr/bin/containerd", "containerd"),
            ("/usr/bin/ctr", "containerd"),
            ("/usr/lib/cni/bridge", "containernetworking-plugins"),
            ("/usr/lib/cni/portmap", "containernetworking-plugins"),
            ("/usr/lib/cni/loopback", "containernetworking-plugins"),
            ("/usr/lib/cni/host-local", "containernetworking-plugins"),
            ("/usr/sbin/iptables", "iptables"),
            ("/usr/bin/nsenter", "util-linux"),
            (images::CATATONIT, "catatonit"),
        ] {
            require(path, package);
        }
        let tag = format!("{name}-{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("berth-cri-{tag}"));
        if dir.exists() {
            crate::host::unmount_under(&dir);
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::create_dir_all(&dir).expect("create the harness dir");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let extra = extra(&dir);
        let cri = Cri {
            bin: bin_dir(),
            cgroup_parent: format!("/berth-cri-{tag}"),
            network: format!("berth-cri-{}", std::process::id() % 100_000),
            dir,
            rt,
            daemon: Mutex::new(None),
            channel: Mutex::new(None),
            netns_seen: Mutex::new(Vec::new()),
            extra,
        };
        cri.layout()
            .write()
            .expect("write containerd and CNI config");
        cri.make_netns();
        cri.start_containerd();
        for tar in [
            images::pause(&cri.dir).expect("pause image"),
            images::busybox(&cri.dir).expect("busybox image"),
        ] {
            cri.ctr(&["images", "import", tar.to_str().unwrap()]);
            let _ = std::fs::remove_file(&tar);
        }
        cri
    }

    pub fn layout(&self) -> config::Layout<'_> {
        config::Layout {
            dir: &self.dir,
            bin: &self.bin,
            sandbox_image: images::PAUSE,
            network: &self.network,
            bridge: "cri0",
            subnet: SUBNET,
            extra: &self.extra,
        }
    }

    /// The network namespace containerd (and host-network pods) run in.
    pub fn netns(&self) -> PathBuf {
        self.dir.join("netns")
    }

    fn make_netns(&self) {
        let path = self.netns();
        std::fs::write(&path, "").expect("netns file");
        run(Command::new("unshare")
            .arg(format!("--net={}", path.display()))
            .arg("true"));
        run(Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(["ip", "link", "set", "lo", "up"]));
    }

    /// Runs `cmd args` in containerd's network namespace; its stdout.
    pub fn in_netns(&self, args: &[&str]) -> String {
        run(Command::new("nsenter")
            .arg(format!("--net={}", self.netns().display()))
            .args(args))
    }

    /// Starts containerd (again, after a kill) and waits until its CRI answers.
    pub fn start_containerd(&self) {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns().display()))
            .arg("containerd")
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env(
                "PATH",
                format!(
                    "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    self.bin.display()
                ),
            );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .expect("containerd log");
        let child = spawn_daemon(cmd, log);
        *self.daemon.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(channel) = self.rt.block_on(connect(&self.layout().socket())) {
                *self.channel.lock().unwrap() = Some(channel);
                let ready = self.call(self.runtime().status(StatusRequest::default()));
                if ready.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILLs containerd (pods and shims stay).
    pub fn kill_containerd(&self) {
        if let Some(mut child) = self.daemon.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        *self.channel.lock().unwrap() = None;
    }

    /// The pid of the running containerd.
    pub fn containerd_pid(&self) -> u32 {
        self.daemon
            .lock()
            .unwrap()
            .as_ref()
            .map(Child::id)
            .expect("containerd running")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` on this containerd, in the CRI namespace; its stdout (panics on failure).
    pub fn ctr(&self, args: &[&str]) -> String {
        run(Command::new("ctr")
            .arg("-a")
            .arg(self.layout().socket())
            .args(["-n", NAMESPACE])
            .args(args))
    }

    fn channel(&self) -> Channel {
        self.channel
            .lock()
            .unwrap()
            .clone()
            .expect("containerd not running")
    }

    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel())
    }

    pub fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel())
    }

    /// Runs one CRI call to its end (or [`CALL_TIMEOUT`]).
    pub fn call<T, F>(&self, call: F) -> Result<T, tonic::Status>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rt.block_on(async {
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(r) => r.map(tonic::Response::into_inner),
                Err(_) => Err(tonic::Status::deadline_exceeded("harness call timeout")),
            }
        })
    }

    /// Runs a future on the harness's runtime (streams, several calls).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Status of pod `id` with containerd's verbose info (JSON); records its netns path.
    pub fn pod_status(&self, id: &str) -> (PodSandboxStatus, serde_json::Value) {
        let r = self
            .call(self.runtime().pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: true,
            }))
            .unwrap_or_else(|e| panic!("PodSandboxStatus {id}: {e}"));
        let info: serde_json::Value = r
            .info
            .get("info")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        if let Some(path) = netns_of(&info) {
            let mut seen = self.netns_seen.lock().unwrap();
            if !seen.contains(&path) {
                seen.push(path);
            }
        }
        (r.status.expect("status in response"), info)
    }

    /// Live shim processes serving this containerd (by the `-address` they were given).
    pub fn shims(&self) -> Vec<i32> {
        let socket = self.layout().socket();
        let needle = socket.to_string_lossy().into_owned();
        processes(|cmdline| cmdline.contains("containerd-shim") && cmdline.contains(&needle))
    }

    /// Stops and removes every pod through the CRI (best effort).
    fn remove_all_pods(&self) {
        if self.channel.lock().unwrap().is_none() {
            return;
        }
        let Ok(list) = self.call(
            self.runtime()
                .list_pod_sandbox(ListPodSandboxRequest::default()),
        ) else {
            return;
        };
        for pod in list.items {
            let _ = self.pod_status_quiet(&pod.id);
            let _ = self.call(self.runtime().stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.id.clone(),
            }));
            let _ = self.call(self.runtime().remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.id.clone(),
            }));
        }
    }

    fn pod_status_quiet(&self, id: &str) -> Option<()> {
        let r = self
            .call(self.runtime().pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: true,
            }))
            .ok()?;
        let info: serde_json::Value = serde_json::from_str(r.info.get("info")?).ok()?;
        let path = netns_of(&info)?;
        self.netns_seen.lock().unwrap().push(path);
        Some(())
    }

    /// The cgroup directories (every hierarchy) under this harness's parent.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return found;
        };
        for h in hierarchies.flatten() {
            let dir = h.path().join(self.cgroup_parent.trim_start_matches('/'));
            if !h.path().is_symlink() && dir.is_dir() {
                walk_dirs(&dir, &mut found);
            }
        }
        found
    }

    fn teardown(&self) {
        self.remove_all_pods();
        if let Some(mut child) = self.daemon.lock().unwrap().take() {
            stop(&mut child, Duration::from_secs(10));
        }
        for pid in self.shims() {
            // SAFETY: a shim this harness's containerd started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let dirs = self.cgroup_dirs();
        for dir in &dirs {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: a process in a cgroup of this harness's own.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for dir in dirs.iter().rev() {
            while std::fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        for path in self.netns_seen.lock().unwrap().iter() {
            let p = Path::new(path);
            if p.exists() {
                crate::host::unmount(p);
                let _ = std::fs::remove_file(p);
            }
        }
        crate::host::unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The pod's network namespace path in containerd's verbose info.
pub fn netns_of(info: &serde_json::Value) -> Option<String> {
    info.pointer("/runtimeSpec/linux/namespaces")?
        .as_array()?
        .iter()
        .find(|n| n["type"] == "network")?
        .get("path")?
        .as_str()
        .map(str::to_owned)
}

async fn connect(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_owned();
    Endpoint::try_from("http://[::]:50051")
        .expect("static uri")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
}

fn walk_dirs(dir: &Path, found: &mut Vec<PathBuf>) {
    found.push(dir.to_owned());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk_dirs(&e.path(), found);
            }
        }
    }
}

/// Pids of live processes whose NUL-joined command line (as one string with spaces) matches.
pub fn processes(matches: impl Fn(&str) -> bool) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| matches(&String::from_utf8_lossy(&c).replace('\0', " ")))
                .unwrap_or(false)
        })
        .collect()
}

/// Runs `cmd` (stdin null), panicking with its output if it fails; its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Spawns a daemon that dies with the test process (`PR_SET_PDEATHSIG` fires when the
/// spawning thread exits, so the spawn happens on a thread that lives as long as the process).
fn spawn_daemon(cmd: Command, log: std::fs::File) -> Child {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut cmd = cmd;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {cmd:?}: {e}"));
        let _ = tx.send(child);
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .expect("daemon spawner thread")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// SIGTERM, then SIGKILL after `grace`.
fn stop(child: &mut Child, grace: Duration) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Cri {
    /// Runs `f` on a thread inside containerd's network namespace (where its streaming
    /// server listens on 127.0.0.1), returning what it returns.
    pub fn in_netns_thread<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let netns = std::fs::File::open(self.netns()).expect("open containerd's netns");
        std::thread::spawn(move || {
            nix_setns(&netns);
            f()
        })
        .join()
        .expect("netns thread")
    }
}

fn nix_setns(ns: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: setns on an open nsfs file, for this thread only (a fresh one).
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}
