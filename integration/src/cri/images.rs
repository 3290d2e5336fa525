//! Images the CRI tests import (no registry is reachable): a pause image of Debian's
//! `catatonit -P` and a busybox one, as docker-archive tars `ctr images import` reads.
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The sandbox (pause) image.
pub const PAUSE: &str = "berth.test/pause:3.9";
/// The image test containers run.
pub const BUSYBOX: &str = "berth.test/busybox:1";
/// Debian's statically linked catatonit.
pub const CATATONIT: &str = "/usr/bin/catatonit";

/// The pause image (`/pause` = catatonit, entrypoint `/pause -P`) written to `dir`.
pub fn pause(dir: &Path) -> io::Result<PathBuf> {
    let root = dir.join("pause-rootfs");
    std::fs::create_dir_all(&root)?;
    std::fs::copy(CATATONIT, root.join("pause")).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{CATATONIT}: {e} (apt-get install catatonit)"),
        )
    })?;
    let tar = archive(
        dir,
        "pause",
        &root,
        PAUSE,
        serde_json::json!({
            "Entrypoint": ["/pause", "-P"],
        }),
    )?;
    std::fs::remove_dir_all(&root)?;
    Ok(tar)
}

/// The busybox image (every applet, `/etc/passwd` with nobody) written to `dir`.
pub fn busybox(dir: &Path) -> io::Result<PathBuf> {
    let root = dir.join("busybox-rootfs");
    crate::rootfs::busybox(&root)?;
    let tar = archive(
        dir,
        "busybox",
        &root,
        BUSYBOX,
        serde_json::json!({
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        }),
    )?;
    std::fs::remove_dir_all(&root)?;
    Ok(tar)
}

/// A docker-archive (`manifest.json`, config, one `layer.tar`) of `root`, tagged `tag`.
fn archive(
    dir: &Path,
    name: &str,
    root: &Path,
    tag: &str,
    config: serde_json::Value,
) -> io::Result<PathBuf> {
    let mut layer = tar::Builder::new(Vec::new());
    layer.follow_symlinks(false);
    layer.append_dir_all(".", root)?;
    let layer = layer.into_inner()?;
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&layer)));
    let image_config = serde_json::json!({
        "architecture": crate::oci_image::host_platform().trim_start_matches("linux/"),
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "berth CRI test"}],
    })
    .to_string();
    let manifest = serde_json::json!([
        {"Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]}
    ])
    .to_string();
    let path = dir.join(format!("{name}.tar"));
    let mut out = tar::Builder::new(std::fs::File::create(&path)?);
    for (file, bytes) in [
        ("manifest.json", manifest.as_bytes()),
        ("config.json", image_config.as_bytes()),
        ("layer.tar", layer.as_slice()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        out.append_data(&mut header, file, bytes)?;
    }
    out.finish()?;
    Ok(path)
}
