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
