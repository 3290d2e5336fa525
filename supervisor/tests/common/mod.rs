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
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": id, "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar",
                     "digest": diff_id, "size": layer.len() }],
    });
    TestImage {
        manifest: serde_json::to_vec(&manifest).unwrap(),
        layer,
        config,
        id,
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
