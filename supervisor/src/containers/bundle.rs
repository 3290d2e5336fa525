//! A container's OCI bundle under `<exec-root>/containers/<id>` (config.json, the mounted
//! rootfs, the stdin fifo) and its files under `<data-root>/containers/<id>` (hostname,
//! hosts, resolv.conf, the log).
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde_json::Value;

use super::service::{io_at, Error};
use crate::images::service::ImageService;
use crate::images::snapshot::mount;

/// Writes `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` for the container (the last two
/// made by [`super::naming`]).
pub fn write_files(
    dir: &Path,
    hostname: &str,
    names: &super::naming::NameFiles,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    let path = dir.join("hostname");
    std::fs::write(&path, format!("{hostname}\n")).map_err(io_at(&path))?;
    names.write(dir)
}

/// Creates the bundle and mounts the container's snapshot on `rootfs`; `volatile` (a `--rm`
/// container, whose changes go with it) mounts it without syncs where the kernel can.
pub fn prepare(
    bundle: &Path,
    rootfs: &Path,
    images: &ImageService,
    key: &str,
    volatile: bool,
) -> Result<(), Error> {
    std::fs::create_dir_all(rootfs).map_err(io_at(rootfs))?;
    let _ = mount::unmount(rootfs);
    let mounts = images
        .snapshots
        .mounts(key)
        .map_err(|e| Error::Image(e.into()))?;
    let fast: Option<Vec<mount::Mount>> = volatile
        .then(|| mounts.iter().map(mount::Mount::volatile).collect())
        .flatten();
    // A kernel before 5.10 refuses `volatile`: mounted as usual then.
    if let Some(fast) = fast.filter(|f| mount::mount_all(f, rootfs).is_ok()) {
        tracing::debug!(rootfs = %rootfs.display(), layers = fast.len(), "volatile rootfs");
        return Ok(());
    }
    mount::mount_all(&mounts, rootfs).map_err(|e| Error::Image(e.into()))?;
    let _ = bundle;
    Ok(())
}

pub fn write_spec(bundle: &Path, spec: &Value) -> Result<(), Error> {
    let path = bundle.join("config.json");
    let bytes = serde_json::to_vec_pretty(spec).unwrap_or_default();
    std::fs::write(&path, bytes).map_err(io_at(&path))
}

/// The fifo at `path`, made if missing (its directory too); returns its path as a string.
pub fn ensure_fifo(path: &Path) -> Result<String, Error> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo()) {
        return Ok(path.to_string_lossy().into_owned());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    }
    fifo(path)
}

/// Makes a fresh fifo at `path`; returns its path as a string.
pub fn fifo(path: &Path) -> Result<String, Error> {
    let _ = std::fs::remove_file(path);
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Invalid("path".into()))?;
    // SAFETY: mkfifo with a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(io_at(path)(std::io::Error::last_os_error()));
    }
    Ok(path.to_string_lossy().into_owned())
}

/// Whether something is mounted on `dir` (its device differs from its parent's).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(d), Some(Ok(p))) = (
        std::fs::symlink_metadata(dir),
        dir.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    d.dev() != p.dev() || d.ino() == p.ino()
}

/// Unmounts the rootfs and removes the bundle; a rootfs that stays mounted keeps the bundle
/// (removing it would delete the container's files through the mount).
pub fn release(bundle: &Path, rootfs: &Path) {
    if let Err(e) = mount::unmount(rootfs) {
        tracing::debug!(error = %e, "unmount rootfs");
    }
    if is_mount_point(rootfs) {
        tracing::error!(rootfs = %rootfs.display(), "rootfs still mounted: bundle kept");
        return;
    }
    if let Err(e) = std::fs::remove_dir_all(bundle) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(bundle = %bundle.display(), error = %e, "remove bundle");
        }
    }
}

/// What a dead shim leaves: the runtime's state of the container (`shim delete`).
pub fn force_delete(bundle: &Path, id: &str) {
    if !bundle.exists() {
        return;
    }
    let out = std::process::Command::new(super::shim::sibling_binary("containerd-shim-berth-v2"))
        .args(["-namespace", super::shim::NAMESPACE, "-id", id, "-bundle"])
        .arg(bundle)
        .arg("delete")
        .current_dir(bundle)
        .output();
    if let Err(e) = out {
        tracing::warn!(id, error = %e, "shim delete");
    }
}
