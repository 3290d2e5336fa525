//! kill -9 of the daemon in the middle of a pull: nothing half-made is visible afterwards, the
//! next pull completes without fetching again what was already stored, and every stored blob
//! and the image's IDs match a fresh `sha256sum`.
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_integration::oci_image::{self, Layer, LAYER_TAR};
use berth_integration::registry::Registry;
use common::{berth, ok, start};

fn sha256sum(path: &Path) -> String {
    oci_image::sha256sum(path)
}

/// Waits until one of `digests` is a committed blob in the daemon's content store.
fn wait_for_a_blob(data_root: &Path, digests: &[String]) -> bool {
    let blobs = data_root.join("content/blobs/sha256");
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if digests
            .iter()
            .any(|d| blobs.join(d.trim_start_matches("sha256:")).exists())
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

#[test]
fn kill_9_mid_pull_then_pull_completes_with_verified_content() {
    let mut seed = 42;
    let layers: Vec<Layer> = (0..8)
        .map(|i| Layer {
            tar: oci_image::random_tar(&format!("l{i}"), 200, 24 << 10, &mut seed),
            media_type: LAYER_TAR,
        })
        .collect();
    let layout = oci_image::image("v1", &layers);
    let registry = Registry::start();
    oci_image::push(&layout, &registry.host(), "crash/big", None);
    let name = format!("{}/crash/big:v1", registry.host());
    let manifest = &layout.manifests[0];

    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let pull = Command::new(common::BERTH)
        .args(["-H", &daemon.host, "pull", "-q", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for_a_blob(&daemon.data_root, &manifest.layers),
        "no layer blob arrived"
    );
    // SAFETY: signals our own child.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGKILL) };
    let mut pull = pull;
    let _ = pull.wait();
    let stored_before: Vec<String> = manifest
        .layers
        .iter()
        .filter(|d| {
            daemon
                .data_root
                .join("content/blobs/sha256")
                .join(d.trim_start_matches("sha256:"))
                .exists()
        })
        .cloned()
        .collect();
    assert!(!stored_before.is_empty());
    drop(daemon);

    let daemon = start(dir.path());
    let listed = ok(berth(&daemon.host, &["images", "-q"]));
    assert_eq!(listed, "", "a half-pulled image is listed");
    ok(berth(&daemon.host, &["pull", "-q", &name]));
    for digest in &stored_before {
        assert_eq!(registry.blob_gets(digest), 1, "{digest} fetched again");
    }

    let inspect = ok(berth(&daemon.host, &["image", "inspect", &name]));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let blobs = daemon.data_root.join("content/blobs/sha256");
    let id = inspect[0]["Id"].as_str().unwrap();
    assert_eq!(id, manifest.config);
    assert_eq!(sha256sum(&blobs.join(&id["sha256:".len()..])), id);
    let layers: Vec<&str> = inspect[0]["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(layers, manifest.diff_ids);
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(sha256sum(&path), format!("sha256:{name}"), "blob {name}");
    }
    let ingest = daemon.data_root.join("content/ingest");
    assert_eq!(std::fs::read_dir(ingest).unwrap().count(), 0, "ingest left");
}

/// Runs `berth ARGS` against `host` in the background, output dropped.
fn background(host: &str, args: &[&str]) -> std::process::Child {
    Command::new(common::BERTH)
        .args(["-H", host])
        .args(args)
        .env("BERTH_CONFIG", common::config_dir(host))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// kill -9 of the daemon, again and again, while loads, pulls, removals and prunes run; then
/// every image inspects and saves, every blob is what its digest says, no ingest or spool
/// is left, and prune frees exactly what no image references.
#[test]
fn kill_9_loop_around_load_pull_rmi_prune_leaves_a_consistent_store() {
    use berth_supervisor::images::service::{ImageService, Options};
    use berth_supervisor::images::snapshot::chain_ids;
    let mut seed = 7;
    let layers: Vec<Layer> = (0..6)
        .map(|i| Layer {
            tar: oci_image::random_tar(&format!("p{i}"), 100, 16 << 10, &mut seed),
            media_type: LAYER_TAR,
        })
        .collect();
    let layout = oci_image::image("v1", &layers);
    let registry = Registry::start();
    oci_image::push(&layout, &registry.host(), "loop/pulled", None);
    let pulled = format!("{}/loop/pulled:v1", registry.host());

    let dir = tempfile::tempdir().unwrap();
    let archives: Vec<String> = (0..4)
        .map(|i| {
            let image = common::busybox_image(&format!("loop{i}"), i);
            let path = dir.path().join(format!("loop{i}.tar"));
            std::fs::write(
                &path,
                common::docker_archive(&image, &[&format!("loop:{i}")]),
            )
            .unwrap();
            path.display().to_string()
        })
        .collect();
    for round in 0..10usize {
        let daemon = start(dir.path());
        let host = daemon.host.clone();
        let mut clients = vec![
            background(&host, &["load", "-i", &archives[round % 4]]),
            background(&host, &["load", "-i", &archives[(round + 1) % 4]]),
            background(&host, &["pull", "-q", &pulled]),
        ];
        if round % 2 == 1 {
            let old = format!("loop:{}", (round + 2) % 4);
            clients.push(background(&host, &["rmi", "-f", &old]));
            clients.push(background(&host, &["image", "prune", "-a", "-f"]));
        }
        // Kill at a different moment each round (not a timed assertion: any moment will do).
        std::thread::sleep(Duration::from_millis(20 + (round as u64 * 53) % 400));
        // SAFETY: signals our own child.
        unsafe { libc::kill(daemon.child.id() as i32, libc::SIGKILL) };
        for mut client in clients {
            let _ = client.wait();
        }
        drop(daemon);
    }

    let daemon = start(dir.path());
    let ids = ok(berth(&daemon.host, &["images", "-q", "--no-trunc"]));
    for id in ids.lines().filter(|l| !l.is_empty()) {
        ok(berth(&daemon.host, &["image", "inspect", id]));
        let saved = dir.path().join("saved.tar");
        ok(berth(
            &daemon.host,
            &["save", "-o", saved.to_str().unwrap(), id],
        ));
        assert!(std::fs::metadata(&saved).unwrap().len() > 0);
    }
    drop(daemon);

    let root = dir.path().join("data");
    let blobs = root.join("content/blobs/sha256");
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(sha256sum(&path), format!("sha256:{name}"), "blob {name}");
    }
    let svc = ImageService::open(Options {
        data_root: root.clone(),
        ..Default::default()
    })
    .unwrap();
    let count = |p: &Path| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
    assert_eq!(count(&root.join("content/ingest")), 0, "ingest left");
    assert_eq!(count(&root.join("tmp")), 0, "load spool left");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(svc.prune(false, |_| false)).unwrap();
    let mut referenced = std::collections::BTreeSet::new();
    let mut chains = std::collections::BTreeSet::new();
    for image in svc.images().unwrap() {
        for record in &image.records {
            referenced.insert(record.target.digest.clone());
            referenced.extend(record.repo_digest.clone());
        }
        referenced.insert(image.id.clone());
        referenced.extend(image.layer_digests());
        chains.extend(chain_ids(&image.diff_ids()));
    }
    let stored: std::collections::BTreeSet<String> =
        svc.content.list().unwrap().into_iter().collect();
    assert_eq!(
        stored, referenced,
        "prune left unreferenced blobs (or lost referenced ones)"
    );
    let snapshots: std::collections::BTreeSet<String> = svc
        .metadata
        .snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect();
    assert_eq!(snapshots, chains, "snapshots are not those of the images");
    eprintln!(
        "after 10 kill -9 rounds: {} images, {} blobs",
        svc.images().unwrap().len(),
        stored.len()
    );
}

/// Removes every container of a data root when the test ends, passed or failed (they
/// outlive their daemons).
struct RemoveAll<'a>(&'a Path);

impl Drop for RemoveAll<'_> {
    fn drop(&mut self) {
        let daemon = start(self.0);
        let ids = common::stdout(&berth(&daemon.host, &["ps", "-aq", "--no-trunc"]));
        for id in ids.split_whitespace() {
            let _ = berth(&daemon.host, &["rm", "-f", id]);
        }
    }
}

/// The 64-hex names in `dir`.
fn id_dirs(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.len() == 64)
        .collect()
}

fn id_set(text: &str) -> std::collections::BTreeSet<String> {
    text.split_whitespace().map(String::from).collect()
}

/// Shims serving containers under `exec`.
fn shims_under(exec: &Path) -> usize {
    let needle = exec.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("containerd-shim-berth-v2") && c.contains(&needle))
        .count()
}

/// After a daemon's restart, every container is whole (a record, its files and snapshot; a
/// bundle, mount and shim only while it runs) and nothing is left of the others.
fn check_whole(dir: &Path, round: usize) {
    use berth_supervisor::images::service::{ImageService, Options};
    let daemon = start(dir);
    let all = id_set(&ok(berth(&daemon.host, &["ps", "-aq", "--no-trunc"])));
    let running = id_set(&ok(berth(&daemon.host, &["ps", "-q", "--no-trunc"])));
    for id in &all {
        ok(berth(&daemon.host, &["inspect", id]));
    }
    drop(daemon);
    let data = dir.join("data");
    let exec = dir.join("exec");
    assert_eq!(
        id_dirs(&data.join("containers")),
        all,
        "round {round}: container files"
    );
    assert_eq!(
        id_dirs(&exec.join("containers")),
        running,
        "round {round}: bundles"
    );
    // A shim told to shut down unlinks its socket and answers at once; it exits once its last
    // events reached the daemon, or after 5 s of trying when the daemon has gone meanwhile (as
    // this one has): polled, bounded.
    let mut shims = shims_under(&exec);
    for _ in 0..400 {
        if shims == running.len() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        shims = shims_under(&exec);
    }
    assert_eq!(shims, running.len(), "round {round}: shims");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let rootfs_mounts = mounts
        .lines()
        .filter(|l| l.contains(&format!("{}/containers/", exec.display())))
        .count();
    assert_eq!(rootfs_mounts, running.len(), "round {round}: rootfs mounts");
    let images = ImageService::open(Options {
        data_root: data,
        ..Default::default()
    })
    .unwrap();
    let snapshots: std::collections::BTreeSet<String> = images
        .metadata
        .snapshots()
        .unwrap()
        .into_iter()
        .filter_map(|s| s.key.strip_prefix("container-").map(String::from))
        .collect();
    assert_eq!(snapshots, all, "round {round}: container snapshots");
}

/// kill -9 of the daemon while containers are created, started and removed: the next daemon
/// finds each container whole or gone, with no snapshot, bundle, mount or shim left over.
#[test]
fn kill_9_around_create_start_rm_leaves_whole_containers_or_none() {
    let dir = tempfile::tempdir().unwrap();
    common::seed(
        &dir.path().join("data"),
        "busybox",
        &common::busybox_image("crash", 1),
    );
    let _cleanup = RemoveAll(dir.path());
    let script = "trap 'exit 0' TERM; while :; do busybox sleep 1; done";
    for round in 0..12usize {
        let daemon = start(dir.path());
        let host = daemon.host.clone();
        let existing = id_set(&ok(berth(&host, &["ps", "-aq", "--no-trunc"])));
        let mut clients = vec![
            background(
                &host,
                &[
                    "run",
                    "-d",
                    "--network",
                    "none",
                    "busybox",
                    "sh",
                    "-c",
                    script,
                ],
            ),
            background(&host, &["create", "--network", "none", "busybox", "true"]),
        ];
        if let Some(id) = existing.iter().next() {
            clients.push(background(&host, &["rm", "-f", id]));
        }
        if let Some(id) = existing.iter().nth(1) {
            clients.push(background(&host, &["start", id]));
        }
        // Kill at a different moment each round (not a timed assertion: any moment will do).
        std::thread::sleep(Duration::from_millis(5 + (round as u64 * 37) % 300));
        // SAFETY: signals our own child.
        unsafe { libc::kill(daemon.child.id() as i32, libc::SIGKILL) };
        for mut client in clients {
            let _ = client.wait();
        }
        drop(daemon);
        check_whole(dir.path(), round);
    }
    // Every container left still starts, stops and goes.
    let daemon = start(dir.path());
    let all = id_set(&ok(berth(&daemon.host, &["ps", "-aq", "--no-trunc"])));
    assert!(!all.is_empty());
    for id in &all {
        ok(berth(&daemon.host, &["rm", "-f", id]));
    }
    drop(daemon);
    check_whole(dir.path(), usize::MAX);
}
