//! Shared by the daemon/API/CLI tests: a private `berth daemon`, images seeded straight into
//! its data root (busybox-static layer + config + OCI manifest), docker-archives built here,
//! and Debian's `docker-registry` on a free 127.0.0.1 port.
#![allow(dead_code)]
pub mod net;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use berth_supervisor::images::content::digest_of;
use berth_supervisor::images::metadata::{self, ImageRecord, Target};
use berth_supervisor::images::reference::Reference;
use berth_supervisor::images::service::{ImageService, Options};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// Debian's docker CLI (20.10), not /usr/local/bin/docker.
pub const DOCKER: &str = "/usr/bin/docker";
/// Debian's dockerd (20.10).
pub const DOCKERD: &str = "/usr/sbin/dockerd";

pub struct Daemon {
    pub child: Child,
    pub host: String,
    pub data_root: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Starts `berth daemon` under `dir` and waits until it answers.
pub fn start(dir: &Path) -> Daemon {
    start_with(dir, &[])
}

/// Starts `berth daemon` under `dir` with these flags too.
pub fn start_with(dir: &Path, flags: &[&str]) -> Daemon {
    start_wrapped(dir, &[], flags)
}

/// A daemon in the host's network namespace keeps off its network: no nftables table, no
/// default bridge (tests that need them run the daemon in a namespace of their own).
pub const HOST_NETWORK_FLAGS: [&str; 2] = ["--iptables=false", "--bridge=none"];

/// [`start_with`], the daemon run through `wrapper` (e.g. `unshare --net --`, so that its
/// bridges and rules live and die with a network namespace of its own). Without a wrapper it
/// gets [`HOST_NETWORK_FLAGS`].
pub fn start_wrapped(dir: &Path, wrapper: &[&str], flags: &[&str]) -> Daemon {
    let host = format!("unix://{}/berth.sock", dir.display());
    let data_root = dir.join("data");
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .unwrap();
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(BERTH);
            c
        }
        None => Command::new(BERTH),
    };
    let child = command
        .args(["daemon", "--host", &host, "--data-root"])
        .arg(&data_root)
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .args(flags)
        .args(if wrapper.is_empty() {
            &HOST_NETWORK_FLAGS[..]
        } else {
            &[]
        })
        .stderr(log)
        .spawn()
        .expect("spawn berth daemon");
    for _ in 0..200 {
        if std::os::unix::net::UnixStream::connect(dir.join("berth.sock")).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Daemon {
        child,
        host,
        data_root,
    }
}

/// A daemon with `busybox` seeded (an image marked `marker`) whose containers are
/// force-removed when it is dropped, passed or failed (containers outlive their daemon: a
/// failed assertion must not leave them running).
pub struct Engine {
    pub host: String,
    pub data_root: PathBuf,
    /// The seeded busybox image's ID.
    pub image_id: String,
    pub daemon: Option<Daemon>,
    dir: PathBuf,
    /// What the daemon runs under (see [`start_wrapped`]) and its flags.
    wrapper: Vec<String>,
    flags: Vec<String>,
    /// The engine's own temp dir, if it made one (removed after the daemon stops).
    _tmp: Option<tempfile::TempDir>,
}

impl Engine {
    /// An engine under `dir`.
    pub fn start_in(dir: &Path, marker: &str) -> Engine {
        Self::start_in_wrapped(dir, marker, &[], &[])
    }

    /// An engine under `dir` whose daemon runs through `wrapper` with `flags` (see
    /// [`start_wrapped`]).
    pub fn start_in_wrapped(dir: &Path, marker: &str, wrapper: &[&str], flags: &[&str]) -> Engine {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Self::make(
            dir.to_path_buf(),
            marker,
            owned(wrapper),
            owned(flags),
            None,
        )
    }

    /// An engine in a temp dir of its own.
    pub fn start_tmp(marker: &str) -> Engine {
        let tmp = tempfile::tempdir().unwrap();
        Self::make(
            tmp.path().to_path_buf(),
            marker,
            Vec::new(),
            Vec::new(),
            Some(tmp),
        )
    }

    fn make(
        dir: PathBuf,
        marker: &str,
        wrapper: Vec<String>,
        flags: Vec<String>,
        tmp: Option<tempfile::TempDir>,
    ) -> Engine {
        let image = busybox_image(marker, 1);
        seed(&dir.join("data"), "busybox", &image);
        let mut engine = Engine {
            host: String::new(),
            data_root: dir.join("data"),
            image_id: image.id,
            daemon: None,
            dir,
            wrapper,
            flags,
            _tmp: tmp,
        };
        engine.start_daemon();
        engine
    }

    fn start_daemon(&mut self) {
        fn strs(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        let daemon = start_wrapped(&self.dir, &strs(&self.wrapper), &strs(&self.flags));
        self.host = daemon.host.clone();
        self.daemon = Some(daemon);
    }

    /// Stops the daemon (its containers live on) and starts a new one on the same roots.
    pub fn restart_daemon(&mut self) {
        self.daemon.take();
        self.start_daemon();
    }

    /// `inspect -f format name` once it prints `want` (polled: restarts take their back-off).
    pub fn until(&self, name: &str, format: &str, want: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..300 {
            last = stdout(&berth(&self.host, &["inspect", "-f", format, name]));
            if want(last.trim()) {
                return last.trim().to_string();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{name}: {format} stayed {last:?}");
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let ids = stdout(&berth(&self.host, &["ps", "-aq"]));
        for id in ids.split_whitespace() {
            let _ = berth(&self.host, &["rm", "-f", id]);
        }
        self.daemon.take();
    }
}

pub fn berth(host: &str, args: &[&str]) -> Output {
    Command::new(BERTH)
        .arg("-H")
        .arg(host)
        .args(args)
        .env("BERTH_CONFIG", config_dir(host))
        .stdin(Stdio::null())
        .output()
        .expect("run berth")
}

/// A private credentials directory next to the socket.
pub fn config_dir(host: &str) -> PathBuf {
    let socket = PathBuf::from(host.trim_start_matches("unix://"));
    socket.parent().unwrap().join("config")
}

/// A docker CLI (`bin`: its path) against the daemon at `host`, with a private config.
pub fn cli(bin: &str, host: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config_dir(host))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{bin} missing (apt-get install docker.io): {e}"))
}

pub fn docker(host: &str, args: &[&str]) -> Output {
    cli(DOCKER, host, args)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(out: Output) -> String {
    assert!(out.status.success(), "{out:?}\nstderr: {}", stderr(&out));
    stdout(&out)
}

/// A one-layer image: busybox-static with `sh`, plus `/etc/marker` to tell images apart.
pub struct TestImage {
    pub layer: Vec<u8>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub id: String,
    pub diff_id: String,
}

fn append_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, data).unwrap();
}

fn layer_tar(marker: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir.clone(), "bin/", std::io::empty())
        .unwrap();
    b.append_data(&mut dir, "etc/", std::io::empty()).unwrap();
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static at /bin/busybox");
    append_file(&mut b, "bin/busybox", &busybox, 0o755);
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_mode(0o777);
    link.set_size(0);
    b.append_link(&mut link, "bin/sh", "busybox").unwrap();
    append_file(&mut b, "etc/marker", marker.as_bytes(), 0o644);
    b.into_inner().unwrap()
}

/// `CREATED_BY` of the layer, as docker's history shows it.
pub const ADD_LINE: &str =
    "/bin/sh -c #(nop) ADD file:9a4f77dfaba7fd2aa78186e4ef0e7486ad55101cefc1fabbc1b385601bb38920 in / ";
pub const CMD_LINE: &str = "/bin/sh -c #(nop)  CMD [\"sh\"]";

/// Builds an image created `days_ago` days ago.
pub fn busybox_image(marker: &str, days_ago: i64) -> TestImage {
    let layer = layer_tar(marker);
    let diff_id = digest_of(&layer);
    let created = (chrono::Utc::now() - chrono::Duration::days(days_ago))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": { "Cmd": ["sh"], "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [
            { "created": created, "created_by": ADD_LINE },
            { "created": created, "created_by": CMD_LINE, "empty_layer": true },
        ],
    });
    let config = serde_json::to_vec(&config).unwrap();
    let id = digest_of(&config);
    TestImage {
        manifest: manifest(&config, &[(&diff_id, layer.len())]),
        layer,
        config,
        id,
        diff_id,
    }
}

/// The OCI manifest of `config` and uncompressed layers given as (digest, size).
fn manifest(config: &[u8], layers: &[(&str, usize)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(digest, size)| {
            serde_json::json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": digest, "size": size })
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": digest_of(config), "size": config.len() },
        "layers": layers,
    });
    serde_json::to_vec(&manifest).unwrap()
}

/// An image of `base`'s layer and `layer` on top, `image_config` its `config` (Cmd, Env,
/// Volumes, …). Seed `base` too: its layer's blob is stored with it.
pub fn layered_image(
    base: &TestImage,
    layer: Vec<u8>,
    image_config: serde_json::Value,
) -> TestImage {
    let diff_id = digest_of(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": image_config,
        "rootfs": { "type": "layers", "diff_ids": [base.diff_id, diff_id] },
    });
    let config = serde_json::to_vec(&config).unwrap();
    TestImage {
        manifest: manifest(
            &config,
            &[(&base.diff_id, base.layer.len()), (&diff_id, layer.len())],
        ),
        id: digest_of(&config),
        layer,
        config,
        diff_id,
    }
}

/// Stores `image` under `name` in a (stopped) daemon's data root.
pub fn seed(data_root: &Path, name: &str, image: &TestImage) {
    let service = ImageService::open(Options {
        data_root: data_root.to_path_buf(),
        insecure_registries: Vec::new(),
        ..Default::default()
    })
    .expect("open image service");
    for blob in [&image.layer, &image.config, &image.manifest] {
        service.content.write_blob(blob).unwrap();
    }
    service
        .set_name(ImageRecord {
            name: Reference::parse(name).unwrap().to_string(),
            target: Target {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: digest_of(&image.manifest),
                size: image.manifest.len() as u64,
            },
            config_digest: image.id.clone(),
            repo_digest: None,
            updated: metadata::now(),
        })
        .unwrap();
}

/// A `docker save`-style archive of `image` named `tags`.
pub fn docker_archive(image: &TestImage, tags: &[&str]) -> Vec<u8> {
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    let config_name = format!("{}.json", hex(&image.id));
    let layer_name = format!("{}/layer.tar", hex(&image.diff_id));
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": tags, "Layers": [layer_name],
    }]);
    let mut b = tar::Builder::new(Vec::new());
    append_file(&mut b, &config_name, &image.config, 0o644);
    append_file(&mut b, &layer_name, &image.layer, 0o644);
    append_file(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
        0o644,
    );
    b.into_inner().unwrap()
}

/// The 12-digit ID docker prints.
pub fn short(id: &str) -> String {
    id.trim_start_matches("sha256:")[..12].to_string()
}

/// Debian's `docker-registry` on a free 127.0.0.1 port with private storage; `addr` is
/// `127.0.0.1:PORT`.
pub struct Registry {
    pub addr: String,
    _registry: berth_integration::registry::Registry,
}

pub fn start_registry() -> Registry {
    let registry = berth_integration::registry::Registry::start();
    Registry {
        addr: registry.host(),
        _registry: registry,
    }
}

/// Pushes a docker-archive to the registry with skopeo.
pub fn skopeo_push(archive: &Path, target: &str) {
    let out = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("docker://{target}"))
        .output()
        .expect("skopeo missing");
    assert!(out.status.success(), "skopeo copy: {}", stderr(&out));
}

/// A private dockerd, killed and cleaned up on drop.
pub struct Dockerd {
    child: Child,
    dir: PathBuf,
    pub host: String,
    /// The network namespace it runs in, if one of its own (deleted after it stopped).
    netns: Option<NetnsName>,
}

/// An `ip netns` of the test's own, lo up; deleted on drop.
struct NetnsName(String);

impl NetnsName {
    fn add() -> NetnsName {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("berth-dockerd-{}-{n}", std::process::id());
        let run = |args: &[&str]| {
            let out = Command::new("ip")
                .args(args)
                .output()
                .expect("ip (iproute2)");
            assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
        };
        run(&["netns", "add", &name]);
        let netns = NetnsName(name);
        run(&["-n", &netns.0, "link", "set", "lo", "up"]);
        netns
    }
}

impl Drop for NetnsName {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

impl Dockerd {
    /// dockerd on roots under `dir` (removed on drop), no bridge, no iptables.
    pub fn start(dir: &Path) -> Dockerd {
        Self::spawn(dir, None, &["--bridge", "none", "--iptables=false"])
    }

    /// dockerd with its default bridge (`bip`, e.g. `10.234.0.1/24`), its address pool
    /// (`pool`, e.g. `base=10.235.0.0/20,size=24`) and its iptables rules, all inside a
    /// network namespace of its own (deleted on drop, with them): the host's rules are
    /// never touched, and its published ports answer in that namespace only.
    pub fn start_networked(dir: &Path, bip: &str, pool: &str) -> Dockerd {
        let flags = ["--bip", bip, "--default-address-pool", pool];
        Self::spawn(dir, Some(NetnsName::add()), &flags)
    }

    fn spawn(dir: &Path, netns: Option<NetnsName>, flags: &[&str]) -> Dockerd {
        std::fs::create_dir_all(dir).unwrap();
        let sock = dir.join("docker.sock");
        let mut command = match &netns {
            // nsenter execs dockerd (no fork for a network namespace): the child is dockerd.
            Some(name) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{}", name.0)).arg(DOCKERD);
                c
            }
            None => Command::new(DOCKERD),
        };
        let child = command
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args(flags)
            .stdout(std::fs::File::create(dir.join("dockerd.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("dockerd.err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{DOCKERD}: {e} (install Debian's docker.io)"));
        let dockerd = Dockerd {
            child,
            dir: dir.to_path_buf(),
            host: format!("unix://{}", sock.display()),
            netns,
        };
        for _ in 0..300 {
            if Command::new(DOCKER)
                .env("DOCKER_HOST", &dockerd.host)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
            {
                return dockerd;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "dockerd did not answer: {}",
            std::fs::read_to_string(dir.join("dockerd.err")).unwrap_or_default()
        );
    }

    /// `docker ARGS` on this dockerd, to success; its stdout, trimmed.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = Command::new(DOCKER)
            .env("DOCKER_HOST", &self.host)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{DOCKER}: {e}"));
        assert!(out.status.success(), "docker {args:?}: {}", stderr(&out));
        stdout(&out).trim().to_string()
    }

    /// [`Self::docker`] with `input` on its stdin.
    pub fn docker_stdin(&self, args: &[&str], input: &[u8]) -> String {
        let mut child = Command::new(DOCKER)
            .env("DOCKER_HOST", &self.host)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..150 {
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut mounts: Vec<String> = berth_integration::host::mounts_mentioning(&self.dir)
            .iter()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        self.netns.take();
    }
}

/// `127.0.0.1:PORT` of another network namespace forwarded to `127.0.0.1:PORT` of this
/// one (a registry of the host, reached by a daemon in a namespace of its own). The
/// listener is made inside `netns` by a thread that joined it (a socket stays in the
/// namespace it was made in); the connections to the target are made from here. Stops
/// accepting on drop.
pub struct Forward {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn forward_into(netns: &Path, port: u16) -> Forward {
    use std::os::fd::AsFd;
    let ns = std::fs::File::open(netns).unwrap_or_else(|e| panic!("{}: {e}", netns.display()));
    let listener = std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind in the namespace")
    })
    .join()
    .unwrap();
    listener.set_nonblocking(true).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::spawn(move || {
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            match listener.accept() {
                Ok((inside, _)) => {
                    inside.set_nonblocking(false).unwrap();
                    if let Ok(outside) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                        splice(inside, outside);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(_) => break,
            }
        }
    });
    Forward {
        stop,
        thread: Some(thread),
    }
}

/// Copies both ways between `a` and `b` until each side ends.
fn splice(a: std::net::TcpStream, b: std::net::TcpStream) {
    for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
