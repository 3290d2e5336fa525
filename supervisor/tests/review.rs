//! The outside review of the image service (issue 11): each attack reproduced with archives
//! and registries made here, and what must hold instead.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_integration::oci_image;
use berth_integration::registry::{Body, FakeRegistry, Route};
use berth_supervisor::images::content::digest_of;
use berth_supervisor::images::metadata::{self, ImageRecord};
use berth_supervisor::images::service::{ImageService, Options};
use serde_json::{json, Value};

fn service(root: &Path) -> ImageService {
    ImageService::open(Options {
        data_root: root.to_path_buf(),
        ..Default::default()
    })
    .unwrap()
}

/// A tarball of regular files.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn config_for(layers: &[Vec<u8>], cmd: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest_of(l)).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": [cmd]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// One image of an archive: its tags, layers and command.
type ArchiveImage<'a> = (&'a [&'a str], &'a [Vec<u8>], &'a str);

/// A docker-archive of these images.
fn docker_archive(images: &[ArchiveImage]) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifest = Vec::new();
    for (tags, layers, cmd) in images {
        let config = config_for(layers, cmd);
        let hex = digest_of(&config)[7..].to_string();
        let mut paths = Vec::new();
        for layer in layers.iter() {
            let path = format!("{}/layer.tar", &digest_of(layer)[7..]);
            if !files.iter().any(|(p, _)| *p == path) {
                files.push((path.clone(), layer.clone()));
            }
            paths.push(path);
        }
        files.push((format!("{hex}.json"), config));
        manifest.push(json!({"Config": format!("{hex}.json"), "RepoTags": tags, "Layers": paths}));
    }
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    tar_of(&refs)
}

fn file_layer(name: &str, data: &[u8]) -> Vec<u8> {
    tar_of(&[(name, data)])
}

fn saved_config_digest(svc: &ImageService, name: &str) -> String {
    let mut out = Vec::new();
    svc.save(&[name.to_string()], &mut out).unwrap();
    let mut archive = tar::Archive::new(out.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy() == "manifest.json" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            let manifest: Value = serde_json::from_str(&text).unwrap();
            let config = manifest[0]["Config"].as_str().unwrap();
            let hex = config
                .trim_start_matches("blobs/sha256/")
                .trim_end_matches(".json");
            return format!("sha256:{hex}");
        }
    }
    panic!("no manifest.json in the saved archive");
}

// 1. A loaded archive cannot claim a genuine digest.
#[test]
fn an_archive_cannot_name_an_image_by_a_digest_reference() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let genuine = file_layer("etc/genuine", b"genuine");
    svc.load(
        &mut docker_archive(&[(&["reg.example/busybox:1"], &[genuine], "sh")]).as_slice(),
        None,
    )
    .unwrap();
    let real = svc.resolve("reg.example/busybox:1").unwrap();
    let real_digest = real.records[0].target.digest.clone();
    let by_digest = format!("reg.example/busybox@{real_digest}");
    assert_eq!(svc.resolve(&by_digest).unwrap().id, real.id);

    let evil = file_layer("etc/evil", b"evil");
    let attack = docker_archive(&[(&[by_digest.as_str()], &[evil], "evil")]);
    let err = svc
        .load(&mut attack.as_slice(), None)
        .expect_err("digest name loaded");
    let err = err.to_string();
    assert!(
        err.contains("invalid tag") && err.contains(&by_digest),
        "{err}"
    );
    let also_tagged = format!("reg.example/busybox:1@{real_digest}");
    let attack = docker_archive(&[(&[also_tagged.as_str()], &[file_layer("x", b"x")], "evil")]);
    assert!(
        svc.load(&mut attack.as_slice(), None).is_err(),
        "tag@digest name loaded"
    );

    assert_eq!(
        svc.resolve(&by_digest).unwrap().id,
        real.id,
        "inspect by digest"
    );
    assert_eq!(
        saved_config_digest(&svc, &by_digest),
        real.id,
        "save by digest"
    );
    assert!(svc.tag("reg.example/busybox:1", &by_digest).is_err());
}

// 1. A digest name recorded for other content (by an older daemon, or by hand) is not
// believed: a lookup by digest checks what the record points at.
#[test]
fn a_lookup_by_digest_checks_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    svc.load(
        &mut docker_archive(&[(&["reg.example/app:1"], &[file_layer("a", b"a")], "a")]).as_slice(),
        None,
    )
    .unwrap();
    svc.load(
        &mut docker_archive(&[(&["evil.example/x:1"], &[file_layer("e", b"e")], "e")]).as_slice(),
        None,
    )
    .unwrap();
    let real = svc.resolve("reg.example/app:1").unwrap();
    let evil = svc.resolve("evil.example/x:1").unwrap();
    let forged = format!("reg.example/app@{}", real.records[0].target.digest);
    let record = ImageRecord {
        name: forged.clone(),
        target: evil.records[0].target.clone(),
        config_digest: evil.id.clone(),
        repo_digest: None,
        updated: metadata::now(),
    };
    assert!(
        svc.set_name(record.clone()).is_err(),
        "a forged digest name was set"
    );
    // As an older daemon stored it.
    svc.metadata.put_image(&record).unwrap();
    let found = svc.resolve(&forged).unwrap();
    assert_eq!(found.id, real.id, "the forged record was believed");
    let unknown = format!("reg.example/app@sha256:{}", "0".repeat(64));
    assert!(svc.resolve(&unknown).is_err());
}

/// Spawns `berth daemon` with its own umask and paths under `dir`; waits for the socket.
fn spawn_daemon(dir: &Path, socket: &Path, umask: u32) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let mut cmd = Command::new(common::BERTH);
    cmd.args(["daemon", "--host", &format!("unix://{}", socket.display())])
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .args(common::HOST_NETWORK_FLAGS)
        .stderr(log);
    // SAFETY: umask is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(umask);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    wait_for_socket(socket);
    child
}

fn wait_for_socket(socket: &Path) -> bool {
    for _ in 0..400 {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

fn kill(child: &mut std::process::Child, signal: i32) {
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let _ = child.wait();
}

fn busybox_archive(dir: &Path, marker: &str, tag: &str) -> PathBuf {
    let image = common::busybox_image(marker, 1);
    let path = dir.join(format!("{marker}.tar"));
    std::fs::write(&path, common::docker_archive(&image, &[tag])).unwrap();
    path
}

/// Entries under `dir` (symlinks and the contents of unpacked layers aside) that group or
/// others may write.
fn writable_by_others(dir: &Path, out: &mut Vec<String>) {
    use std::os::unix::fs::MetadataExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.mode() & 0o022 != 0 {
            out.push(format!("{} {:04o}", path.display(), meta.mode() & 0o7777));
        }
        let in_layer = path.file_name().is_some_and(|n| n == "fs")
            && path
                .parent()
                .and_then(|p| p.parent())
                .is_some_and(|p| p.ends_with("snapshots"));
        if meta.is_dir() && !in_layer {
            writable_by_others(&path, out);
        }
    }
}

// 6. Started under umask 000, the daemon still makes nothing others can write.
#[test]
fn under_umask_000_the_daemon_makes_nothing_others_can_write() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/berth/berth.sock");
    let mut daemon = spawn_daemon(dir.path(), &socket, 0);
    let host = format!("unix://{}", socket.display());
    let archive = busybox_archive(dir.path(), "umask", "umask:1");
    common::ok(common::berth(
        &host,
        &["load", "-i", archive.to_str().unwrap()],
    ));
    let socket_mode = std::fs::metadata(&socket).unwrap().mode() & 0o7777;
    assert_eq!(socket_mode, 0o660);
    std::fs::remove_file(&archive).unwrap();
    let mut open = Vec::new();
    for sub in ["run", "exec", "data"] {
        writable_by_others(&dir.path().join(sub), &mut open);
    }
    open.retain(|p| !p.starts_with(&format!("{} ", socket.display())));
    let metadata_mode = std::fs::metadata(dir.path().join("data/metadata.redb"))
        .unwrap()
        .mode();
    kill(&mut daemon, libc::SIGTERM);
    assert!(open.is_empty(), "writable by others: {open:#?}");
    assert_eq!(metadata_mode & 0o7777, 0o600);
}

// 6. A socket directory other users can write is refused: they could swap the socket.
#[test]
fn a_socket_directory_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut child = Command::new(common::BERTH)
        .args([
            "daemon",
            "--host",
            &format!("unix://{}/berth.sock", open.display()),
        ])
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("exec"))
        .args(common::HOST_NETWORK_FLAGS)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if wait_for_socket(&open.join("berth.sock")) {
        kill(&mut child, libc::SIGKILL);
        panic!("served on a world-writable dir");
    }
    let out = child.wait_with_output().unwrap();
    let err = common::stderr(&out);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains(&format!("{}: mode 0777", open.display())),
        "{err}"
    );
    assert!(err.contains("refusing to serve"), "{err}");
    assert!(!open.join("berth.sock").exists());
}

// 3. A CLI that finds the configured daemon dead starts none on another data root.
#[test]
fn a_dead_daemon_is_not_replaced_by_one_on_another_data_root() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = common::start(dir.path());
    let archive = busybox_archive(dir.path(), "kept", "kept:1");
    common::ok(common::berth(
        &daemon.host,
        &["load", "-i", archive.to_str().unwrap()],
    ));
    kill(&mut daemon.child, libc::SIGKILL);
    let out = Command::new(common::BERTH)
        .args(["-H", &daemon.host, "images"])
        .env("BERTH_DATA_ROOT", dir.path().join("wrong"))
        .output()
        .unwrap();
    let err = common::stderr(&out);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains("is not running")
            && err.contains(&format!("data root {}", daemon.data_root.display())),
        "{err}"
    );
    assert!(
        !dir.path().join("wrong").exists(),
        "a daemon was started on another data root"
    );
    assert!(std::os::unix::net::UnixStream::connect(dir.path().join("berth.sock")).is_err());
    drop(daemon);
    let daemon = common::start(dir.path());
    let listed = common::ok(common::berth(
        &daemon.host,
        &["images", "--format", "{{.Repository}}"],
    ));
    assert_eq!(listed.trim(), "kept");
}

// 3. A daemon a CLI had started comes back on its own data root, not the CLI's default.
#[test]
fn an_autostarted_daemon_comes_back_on_its_own_data_root() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/berth.sock", dir.path().display());
    let archive = busybox_archive(dir.path(), "auto", "auto:1");
    // Each CLI in a network namespace of its own: the daemon it starts makes its default
    // bridge and nftables table there, not on the host.
    let run = |data_root: &str, args: &[&str]| {
        Command::new("unshare")
            .args(["--net", "--", common::BERTH, "-H", &host])
            .args(args)
            .env("BERTH_DATA_ROOT", dir.path().join(data_root))
            .output()
            .unwrap()
    };
    let pid = || {
        std::fs::read_to_string(dir.path().join("berth.pid"))
            .unwrap()
            .trim()
            .parse::<i32>()
            .unwrap()
    };
    let first = run("auto", &["load", "-i", archive.to_str().unwrap()]);
    assert!(first.status.success(), "{first:?}");
    // SAFETY: a daemon this test started.
    unsafe { libc::kill(pid(), libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(200));
    let second = run("other", &["images", "--format", "{{.Repository}}"]);
    let restarted = pid();
    // SAFETY: as above.
    unsafe { libc::kill(restarted, libc::SIGTERM) };
    assert!(second.status.success(), "{second:?}");
    assert_eq!(common::stdout(&second).trim(), "auto");
    let err = common::stderr(&second);
    assert!(
        err.contains(&format!(
            "again, on its data root {}",
            dir.path().join("auto").display()
        )),
        "{err}"
    );
    assert!(!dir.path().join("other").exists());
}

// 3. A user who is not root starts no daemon.
#[test]
fn a_user_who_is_not_root_starts_no_daemon() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let host = format!("unix://{}/run/berth.sock", dir.path().display());
    let out = Command::new(common::BERTH)
        .args(["-H", &host, "images"])
        .env("BERTH_DATA_ROOT", dir.path().join("data"))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = common::stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("only root can start one"), "{err}");
    assert!(!dir.path().join("run").exists() && !dir.path().join("data").exists());
}

fn snapshot_count(svc: &ImageService) -> usize {
    svc.metadata.snapshots().unwrap().len()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn layers(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| file_layer(&format!("{prefix}{i}"), format!("{prefix}{i}").as_bytes()))
        .collect()
}

// 2. A chain deeper than dockerd's 125 is refused; thousands of layers collect in one pass.
#[test]
fn deep_chains_are_refused_and_thousands_of_layers_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let deep = layers("deep", 126);
    let err = svc
        .load(
            &mut docker_archive(&[(&["deep:1"], &deep, "sh")]).as_slice(),
            None,
        )
        .expect_err("a 126-layer image loaded")
        .to_string();
    assert!(err.contains("max depth exceeded"), "{err}");
    assert_eq!(snapshot_count(&svc), 0);
    assert!(
        svc.content.list().unwrap().is_empty(),
        "a refused load kept blobs"
    );

    let images: Vec<(String, Vec<Vec<u8>>)> = (0..16)
        .map(|i| (format!("many:{i}"), layers(&format!("i{i}-"), 125)))
        .collect();
    let tags: Vec<[&str; 1]> = images.iter().map(|(t, _)| [t.as_str()]).collect();
    let spec: Vec<ArchiveImage> = images
        .iter()
        .zip(&tags)
        .map(|((_, l), t)| (&t[..], l.as_slice(), "sh"))
        .collect();
    svc.load(&mut docker_archive(&spec).as_slice(), None)
        .unwrap();
    assert_eq!(snapshot_count(&svc), 16 * 125);
    let (removed, bytes) = runtime().block_on(svc.prune(true, |_| false)).unwrap();
    assert_eq!(removed.len(), 32, "16 untagged + 16 deleted");
    assert!(bytes > 0);
    assert_eq!(snapshot_count(&svc), 0);
    assert!(svc.content.list().unwrap().is_empty());
    let dirs = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .count();
    assert_eq!(dirs, 0, "snapshot directories left");
}

// 4. What a load killed mid-import left (its lease, blobs and spool) is reclaimed.
#[test]
fn what_a_crashed_load_left_is_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    svc.load(
        &mut docker_archive(&[(&["kept:1"], &layers("k", 1), "sh")]).as_slice(),
        None,
    )
    .unwrap();
    let orphan = file_layer("orphan", &[7u8; 100_000]);
    let digest = svc.content.write_blob(&orphan).unwrap();
    let lease = metadata::Lease {
        digests: vec![digest.clone()],
        expires: metadata::now() + 3600,
    };
    svc.metadata.put_lease("load-4000000-1-0", &lease).unwrap();
    // The spool of a daemon whose pid is now another process's (ours).
    let spool = dir
        .path()
        .join(format!("tmp/load-{}-crashed", std::process::id()));
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join("0"), b"spooled").unwrap();
    drop(svc);

    let svc = service(dir.path());
    let left = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
    assert_eq!(left, 0, "a crashed load's spool survived the restart");
    let (_, bytes) = runtime().block_on(svc.prune(false, |_| false)).unwrap();
    assert!(
        !svc.content.contains(&digest),
        "the orphan blob survived prune"
    );
    assert!(bytes >= orphan.len() as u64, "prune freed {bytes} B");
    assert_eq!(svc.resolve("kept:1").unwrap().diff_ids().len(), 1);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, bytes).unwrap();
    gz.finish().unwrap()
}

/// A docker-archive of one image whose one layer is stored gzip-compressed.
fn archive_with_gzip_layer(tag: &str, plain: &[u8]) -> Vec<u8> {
    let stored = gzip(plain);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest_of(plain)]},
    }))
    .unwrap();
    let hex = digest_of(&config)[7..].to_string();
    let layer = format!("{}/layer.tar", &digest_of(&stored)[7..]);
    let manifest = json!([{"Config": format!("{hex}.json"), "RepoTags": [tag], "Layers": [layer]}]);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    tar_of(&[
        (&format!("{hex}.json"), &config),
        (&layer, &stored),
        ("manifest.json", &manifest),
    ])
}

// 8. A layer (or a whole archive) that expands past the bound is refused, nothing kept.
#[test]
fn decompression_bombs_stop_at_the_bound_and_nothing_is_kept() {
    use berth_supervisor::images::layer::SizeBound;
    let dir = tempfile::tempdir().unwrap();
    let svc = ImageService::open(Options {
        data_root: dir.path().to_path_buf(),
        layer_bound: SizeBound {
            ratio: 64,
            floor: 1 << 20,
            cap: None,
        },
        ..Default::default()
    })
    .unwrap();
    let zeros = file_layer("zeros", &vec![0u8; 16 << 20]);
    let layer_bomb = archive_with_gzip_layer("bomb:1", &zeros);
    assert!(layer_bomb.len() < 200 << 10, "{} bytes", layer_bomb.len());
    let archive_bomb = gzip(&docker_archive(&[(&["bomb:2"], &[zeros], "sh")]));
    for (what, bomb) in [("layer", layer_bomb), ("archive", archive_bomb)] {
        let err = svc
            .load(&mut bomb.as_slice(), None)
            .expect_err(what)
            .to_string();
        assert!(
            err.contains("at most 64x the compressed size"),
            "{what}: {err}"
        );
        assert!(svc.content.list().unwrap().is_empty(), "{what}: blobs kept");
        assert_eq!(snapshot_count(&svc), 0, "{what}: snapshot kept");
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
    drop(svc);
    let svc = ImageService::open(Options {
        data_root: dir.path().to_path_buf(),
        layer_bound: SizeBound::fixed(1 << 20),
        ..Default::default()
    })
    .unwrap();
    let big = file_layer("big", &vec![1u8; 2 << 20]);
    let err = svc
        .load(
            &mut docker_archive(&[(&["big:1"], &[big], "sh")]).as_slice(),
            None,
        )
        .expect_err("over the fixed limit")
        .to_string();
    assert!(err.contains("the limit set by --max-layer-size"), "{err}");
}

/// A registry whose token realm issues a token for any credentials while `/v2/` keeps
/// answering 401 to it. Returns `127.0.0.1:PORT`; serves until the test process ends.
fn token_registry_refusing_its_tokens() -> String {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let realm = format!("http://{addr}/token");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let realm = realm.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(&stream);
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = first.split_whitespace().nth(1).unwrap_or("");
                let response = if path.starts_with("/token") {
                    let body = r#"{"token":"issued","access_token":"issued"}"#;
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                } else {
                    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}"#;
                    format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"hostile\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                };
                let _ = (&stream).write_all(response.as_bytes());
            });
        }
    });
    addr
}

// 7. Login succeeds only if the registry accepts the credentials (its token) on /v2/.
#[test]
fn login_fails_where_the_registry_refuses_the_issued_token() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = common::start(dir.path());
    let registry = token_registry_refusing_its_tokens();
    let out = common::berth(
        &daemon.host,
        &["login", "-u", "user", "-p", "secret", &registry],
    );
    let (stdout, stderr) = (common::stdout(&out), common::stderr(&out));
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("Login Succeeded"), "{stdout}");
    assert!(stderr.contains("unauthorized"), "{stderr}");
    let stored = std::fs::read_to_string(common::config_dir(&daemon.host).join("config.json"))
        .unwrap_or_default();
    assert!(!stored.contains(&registry), "credentials stored: {stored}");
}

/// One raw request over the daemon's socket; returns the status and the body.
fn raw(host: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s =
        std::os::unix::net::UnixStream::connect(host.trim_start_matches("unix://")).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(host: &str, path: &str) -> (u16, String) {
    raw(
        host,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

fn post_json(host: &str, path: &str, body: &str) -> (u16, String) {
    raw(
        host,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// `{"message": …}` of a docker-shaped error body (a chunked one included).
fn message(body: &str) -> String {
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    let value: Value = serde_json::from_str(&body[start..end]).unwrap_or(Value::Null);
    value["message"].as_str().unwrap_or_default().to_string()
}

// 9. An upload the daemon refuses early still gets its answer, not a reset connection.
#[test]
fn a_refused_upload_gets_the_error_not_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = common::start(dir.path());
    let junk = dir.path().join("junk.tar");
    let mut bytes = b"this is no tarball ".repeat(8);
    bytes.resize(32 << 20, 0xff);
    std::fs::write(&junk, &bytes).unwrap();
    for cli in [common::BERTH, common::DOCKER] {
        let out = Command::new(cli)
            .args(["-H", &daemon.host, "load", "-i", junk.to_str().unwrap()])
            .env("BERTH_CONFIG", common::config_dir(&daemon.host))
            .env("DOCKER_CONFIG", common::config_dir(&daemon.host))
            .output()
            .unwrap();
        let err = common::stderr(&out);
        assert!(!out.status.success(), "{cli}: {out:?}");
        for wrong in ["reset", "broken pipe", "Broken pipe"] {
            assert!(!err.contains(wrong), "{cli}: {err}");
        }
        assert!(err.contains("archive"), "{cli}: {err}");
    }
    common::ok(common::berth(&daemon.host, &["version"]));
}

// 10. Validation as dockerd: references, API versions, filters, /auth bodies.
#[test]
fn bad_requests_are_refused_as_dockerd_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = common::start(dir.path());
    let host = &daemon.host;
    let (status, body) = get(host, "/v9.99/version");
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        message(&body),
        "client version 9.99 is too new. Maximum supported API version is 1.41"
    );
    let (status, body) = get(host, "/v1.0/_ping");
    assert_eq!(status, 400, "{body}");
    assert!(
        message(&body)
            .starts_with("client version 1.0 is too old. Minimum supported API version is 1.12"),
        "{body}"
    );
    assert_eq!(get(host, "/v1.24/_ping").0, 200);

    let filters = "%7B%22bogus%22%3A%5B%22x%22%5D%7D";
    let (status, body) = get(host, &format!("/v1.41/images/json?filters={filters}"));
    assert_eq!(
        (status, message(&body)),
        (400, "Invalid filter 'bogus'".to_string())
    );
    let (status, body) = post_json(host, &format!("/v1.41/images/prune?filters={filters}"), "");
    assert_eq!(
        (status, message(&body)),
        (400, "Invalid filter 'bogus'".to_string())
    );

    for bad in ["../x", "a..b/x", "-a.b/x"] {
        let out = common::berth(host, &["pull", "--", &format!("{bad}:y")]);
        let err = common::stderr(&out);
        assert!(!out.status.success(), "{bad}");
        assert!(err.contains("invalid reference format"), "{bad}: {err}");
    }
    let long = format!("reg.example/{}", "a".repeat(250));
    let err = common::stderr(&common::berth(host, &["pull", &long]));
    assert!(
        err.contains("must not be more than 255 characters"),
        "{err}"
    );

    let (status, body) = post_json(host, "/v1.41/auth", r#"{"username": 5}"#);
    assert_eq!(status, 400, "{body}");
    assert!(
        message(&body).contains("invalid auth configuration"),
        "{body}"
    );
}

/// An image served by a [`FakeRegistry`] as `repo:latest`: routes for its manifest, config and
/// one gzip layer of `layer_bytes` incompressible bytes, the layer's answer dripped in
/// `chunk`-byte pieces `every` apart. Returns the routes and the layer's blob path.
fn dripping_image(
    repo: &str,
    layer_bytes: usize,
    chunk: usize,
    every: Duration,
) -> (Vec<Route>, String, String) {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..layer_bytes)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let plain = tar_of(&[("noise", &data)]);
    let layer = gzip(&plain);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest_of(&plain)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": oci_image::OCI_MANIFEST,
        "config": { "mediaType": oci_image::OCI_CONFIG, "digest": digest_of(&config), "size": config.len() },
        "layers": [{ "mediaType": oci_image::LAYER_GZIP, "digest": digest_of(&layer), "size": layer.len() }],
    }))
    .unwrap();
    let layer_path = format!("/v2/{repo}/blobs/{}", digest_of(&layer));
    let config_path = format!("/v2/{repo}/blobs/{}", digest_of(&config));
    let routes = vec![
        Route {
            path: format!("/v2/{repo}/manifests/latest"),
            headers: vec![("Content-Type".into(), oci_image::OCI_MANIFEST.into())],
            body: Body::Bytes(manifest),
        },
        Route {
            path: config_path.clone(),
            headers: Vec::new(),
            body: Body::Bytes(config),
        },
        Route {
            path: layer_path.clone(),
            headers: Vec::new(),
            body: Body::Drip {
                bytes: layer,
                chunk,
                every,
            },
        },
    ];
    (routes, layer_path, config_path)
}

/// Waits (up to a minute: a bound for a hung test, not a timing claim) until `done` holds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: still not so after a minute");
}

fn spawn_pull(host: &str, reference: &str) -> std::process::Child {
    Command::new(common::BERTH)
        .args(["-H", host, "pull", reference])
        .env("BERTH_CONFIG", common::config_dir(host))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn ingest_files(data_root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data_root.join("content/ingest"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

// 5. A pull whose client left is cancelled, and nothing half-written of it stays.
#[test]
fn a_pull_whose_client_left_is_cancelled() {
    // 40 MB in 4 KiB pieces 20 ms apart: moving (no stall), minutes from its end.
    let (routes, layer, config) = dripping_image("slow", 40 << 20, 4096, Duration::from_millis(20));
    let fake = FakeRegistry::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let daemon = common::start(dir.path());
    let reference = format!("{}/slow", fake.host());
    let mut client = spawn_pull(&daemon.host, &reference);
    eventually("the layer is requested", || fake.requests(&layer) == 1);
    eventually("the layer is being written", || {
        !ingest_files(&daemon.data_root).is_empty()
    });
    // Ctrl-C of the CLI.
    kill(&mut client, libc::SIGINT);
    let _ = client.wait();
    eventually("the daemon hangs up on the layer", || {
        fake.hangups(&layer) == 1
    });
    eventually("the partial layer is removed", || {
        ingest_files(&daemon.data_root).is_empty()
    });
    assert_eq!(fake.requests(&layer), 1, "the cancelled pull went on");
    assert_eq!(fake.requests(&config), 1);
    let listed = common::ok(common::berth(&daemon.host, &["images", "-q"]));
    assert!(listed.trim().is_empty(), "an image was named: {listed}");
}

// 5. Another client on the same pull keeps it going when the first leaves.
#[test]
fn a_pull_goes_on_while_another_client_waits_on_it() {
    // 4 MB in 16 KiB pieces 20 ms apart: seconds long.
    let (routes, layer, _) = dripping_image("shared", 4 << 20, 16 << 10, Duration::from_millis(20));
    let fake = FakeRegistry::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let daemon = common::start(dir.path());
    // A tag given: the CLI says nothing before the daemon answers.
    let reference = format!("{}/shared:latest", fake.host());
    let mut first = spawn_pull(&daemon.host, &reference);
    eventually("the layer is requested", || fake.requests(&layer) == 1);
    let mut second = spawn_pull(&daemon.host, &reference);
    // The second client has joined once it shows the pull's progress.
    let mut out = second.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    std::io::Read::read_exact(&mut out, &mut byte).unwrap();
    kill(&mut first, libc::SIGINT);
    let _ = first.wait();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut out, &mut rest).unwrap();
    let status = second.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "second pull: {err}");
    assert_eq!(fake.requests(&layer), 1, "the layer was downloaded twice");
    assert_eq!(fake.hangups(&layer), 0, "the shared download was cut");
    common::ok(common::berth(
        &daemon.host,
        &["image", "inspect", &reference],
    ));
    assert!(ingest_files(&daemon.data_root).is_empty());
}

// 5. Stalled registry answers time out with a clear error (a stall, not a total deadline).
#[test]
fn stalled_registry_answers_time_out() {
    let (mut routes, layer, _) = dripping_image("drip", 64 << 10, 1, Duration::from_millis(100));
    // A manifest dripped a byte at a time.
    let manifest = match &routes[0].body {
        Body::Bytes(b) => b.clone(),
        _ => unreachable!(),
    };
    routes.push(Route {
        path: "/v2/dripman/manifests/latest".into(),
        headers: vec![("Content-Type".into(), oci_image::OCI_MANIFEST.into())],
        body: Body::Drip {
            bytes: manifest,
            chunk: 1,
            every: Duration::from_millis(100),
        },
    });
    // A layer of 600 KB moving at about 50 KB/s: longer than the window, no stall.
    let (moving, _, _) = dripping_image("moving", 600 << 10, 5 << 10, Duration::from_millis(100));
    routes.extend(moving);
    let fake = FakeRegistry::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let daemon = common::start_with(dir.path(), &["--registry-stall-timeout", "2"]);
    let out = common::berth(&daemon.host, &["pull", &format!("{}/dripman", fake.host())]);
    let err = common::stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("stalled: less than 1024 bytes in 2s"), "{err}");
    assert!(err.contains("dripman/manifests/latest"), "{err}");

    let out = common::berth(&daemon.host, &["pull", &format!("{}/drip", fake.host())]);
    let err = common::stderr(&out);
    assert!(!out.status.success(), "{err}");
    let digest = layer.rsplit('/').next().unwrap();
    assert!(err.contains(digest) && err.contains("stalled"), "{err}");
    assert_eq!(fake.requests(&layer), 3, "tries of a stalled layer");
    assert!(ingest_files(&daemon.data_root).is_empty());

    common::ok(common::berth(
        &daemon.host,
        &["pull", &format!("{}/moving", fake.host())],
    ));
}

// 10. Platforms and config fields of the wrong JSON type refused as dockerd refuses them.
#[test]
fn bad_platforms_and_mistyped_fields_get_dockerds_answers() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = common::start(dir.path());
    let host = &daemon.host;
    // Each answer is dockerd 20.10's to the same request.
    for (platform, answer) in [
        (
            "../../x",
            r#"".." is an invalid component of "../../x": platform specifier component must match "^[A-Za-z0-9_-]+$": invalid argument"#,
        ),
        (
            "linux/amd64/v3/x",
            r#""linux/amd64/v3/x": cannot parse platform specifier: invalid argument"#,
        ),
        (
            "bogus",
            r#""bogus": unknown operating system or architecture: invalid argument"#,
        ),
        (
            "lin*",
            r#""lin*": wildcards not yet supported: invalid argument"#,
        ),
    ] {
        let path = format!(
            "/v1.41/images/create?fromImage=127.0.0.1%3A1%2Fx&tag=latest&platform={}",
            platform.replace('/', "%2F").replace('*', "%2A")
        );
        let (status, body) = post_json(host, &path, "");
        assert_eq!(
            (status, message(&body)),
            (400, answer.to_string()),
            "{platform}"
        );
    }
    let out = common::berth(host, &["pull", "--platform", "../../x", "127.0.0.1:1/x"]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("invalid component"),
        "{out:?}"
    );

    for (body, answer) in [
        (r#"{"Image":5}"#, "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string"),
        (r#"{"Image":"busybox","Env":"x"}"#, "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Env of type []string"),
        (r#"{"Image":"busybox","HostConfig":{"Memory":"x"}}"#, "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64"),
    ] {
        let (status, got) = post_json(host, "/v1.41/containers/create", body);
        assert_eq!((status, message(&got)), (400, answer.to_string()), "{body}");
    }
    let (status, got) = post_json(host, "/v1.41/containers/nothing/exec", r#"{"Cmd":5}"#);
    assert_eq!(
        (status, message(&got)),
        (
            400,
            "json: cannot unmarshal number into Go struct field ExecConfig.Cmd of type []string"
                .to_string()
        )
    );
}

// 10. Idle API connections are closed, so more of them than the daemon has descriptors for
// cannot lock it up.
#[test]
fn idle_api_connections_are_closed_and_the_daemon_still_serves() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let daemon = common::start_with(dir.path(), &["--api-idle-timeout", "2"]);
    let socket = dir.path().join("berth.sock");
    // The daemon gets 512 descriptors; 1500 clients connect and say nothing (or half a head).
    let limit = libc::rlimit {
        rlim_cur: 512,
        rlim_max: 512,
    };
    // SAFETY: sets a limit of our own child; the struct outlives the call.
    let set = unsafe {
        libc::prlimit(
            daemon.child.id() as i32,
            libc::RLIMIT_NOFILE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
    let mut idle: Vec<std::os::unix::net::UnixStream> = (0..1500)
        .map(|_| std::os::unix::net::UnixStream::connect(&socket).unwrap())
        .collect();
    idle[0].write_all(b"GET /_ping HTTP/1.1\r\nHost:").unwrap();
    for (i, stream) in idle.iter_mut().enumerate() {
        // A bound for a hung test: an open connection would block the read till then.
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("idle connection {i} still open: {e}"),
        }
    }
    drop(idle);
    let (status, body) = get(&daemon.host, "/_ping");
    assert_eq!((status, body.as_str()), (200, "OK"));
}

// 10. A client sending an endless body to a refused upload cannot keep the daemon reading.
#[test]
fn the_drain_of_a_refused_upload_is_bounded() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let daemon = common::start(dir.path());
    let mut stream =
        std::os::unix::net::UnixStream::connect(dir.path().join("berth.sock")).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    stream
        .write_all(b"POST /v1.41/images/load HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let mut chunk = b"10000\r\n".to_vec();
    chunk.extend(std::iter::repeat_n(0xffu8, 0x10000));
    chunk.extend_from_slice(b"\r\n");
    let mut sent = 0u64;
    let cut = loop {
        if let Err(e) = stream.write_all(&chunk) {
            break e;
        }
        sent += 0x10000;
        assert!(sent < 4 << 30, "the daemon read 4 GiB of a refused upload");
    };
    assert_ne!(cut.kind(), std::io::ErrorKind::WouldBlock, "{cut}");
    assert!(sent < 1 << 30, "{sent} bytes read");
    let (status, body) = get(&daemon.host, "/_ping");
    assert_eq!((status, body.as_str()), (200, "OK"));
}
