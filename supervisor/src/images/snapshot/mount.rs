//! Mounts a snapshotter hands out, and mounting them.
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use super::Error;
use crate::images::layer::at;
use std::os::fd::AsFd;

/// One mount of a snapshot, containerd style: `kind` is `overlay` or `bind`, `options` are
/// mount options (`ro`, `lowerdir=…`, `upperdir=…`, `workdir=…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

impl Mount {
    /// A bind mount of `source`, read-only when `ro`.
    pub fn bind(source: &Path, ro: bool) -> Mount {
        let mode = if ro { "ro" } else { "rw" };
        Mount {
            kind: "bind".into(),
            source: source.display().to_string(),
            options: vec![mode.into(), "rbind".into()],
        }
    }

    fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }

    /// Options for the filesystem itself (without the generic `ro`/`rw`/`rbind`).
    fn data(&self) -> String {
        self.options
            .iter()
            .filter(|o| !matches!(o.as_str(), "ro" | "rw" | "rbind" | "bind"))
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn mount_err(target: &Path, what: &str, e: nix::Error) -> Error {
    Error::Mount {
        target: target.to_path_buf(),
        message: format!("{what}: {e}"),
    }
}

/// Mounts `mounts` on `target`, in order (each on top of the previous).
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), Error> {
    for m in mounts {
        match m.kind.as_str() {
            "bind" => mount_bind(m, target)?,
            "overlay" => {
                let mut flags = MsFlags::empty();
                if m.read_only() {
                    flags |= MsFlags::MS_RDONLY;
                }
                let data = m.data();
                mount(
                    Some("overlay"),
                    target,
                    Some("overlay"),
                    flags,
                    Some(data.as_str()),
                )
                .map_err(|e| mount_err(target, &format!("mount overlay ({data})"), e))?;
            }
            other => {
                return Err(Error::Mount {
                    target: target.to_path_buf(),
                    message: format!("unsupported mount type {other:?}"),
                })
            }
        }
        tracing::debug!(target = %target.display(), kind = %m.kind, "mounted");
    }
    Ok(())
}

fn mount_bind(m: &Mount, target: &Path) -> Result<(), Error> {
    let source = Path::new(&m.source);
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| mount_err(target, &format!("bind {}", source.display()), e))?;
    if m.read_only() {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
            .map_err(|e| mount_err(target, "remount read-only", e))?;
    }
    Ok(())
}

/// Unmounts `target` (one mount).
pub fn unmount(target: &Path) -> Result<(), Error> {
    umount2(target, MntFlags::empty()).map_err(|e| mount_err(target, "unmount", e))
}

/// Whether overlayfs really works with upper directories under `root`: mounts a tiny
/// overlay with a whiteout and an opaque directory in it and looks through it.
pub fn overlay_works(root: &Path) -> bool {
    let probe = root.join(format!(".probe-{}", std::process::id()));
    remove_probe(&probe);
    let result = try_overlay(&probe);
    remove_probe(&probe);
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::info!(root = %root.display(), error = %e, "overlayfs unavailable, copying snapshots");
            false
        }
    }
}

fn try_overlay(probe: &Path) -> Result<(), Box<dyn std::error::Error>> {
    for dir in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(probe.join(dir))?;
    }
    std::fs::write(probe.join("lower/kept"), b"")?;
    std::fs::write(probe.join("lower/gone"), b"")?;
    std::fs::create_dir_all(probe.join("lower/opaque"))?;
    std::fs::write(probe.join("lower/opaque/hidden"), b"")?;
    std::fs::create_dir_all(probe.join("upper/opaque"))?;
    let upper = std::fs::File::open(probe.join("upper/opaque"))?;
    at::set_xattr_at(
        upper.as_fd(),
        std::ffi::OsStr::new("."),
        b"trusted.overlay.opaque",
        b"y",
    )?;
    nix::sys::stat::mknod(
        &probe.join("upper/gone"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )?;
    let merged = probe.join("merged");
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        probe.join("lower").display(),
        probe.join("upper").display(),
        probe.join("work").display()
    );
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )?;
    let seen = merged.join("kept").exists()
        && !merged.join("gone").exists()
        && !merged.join("opaque/hidden").exists();
    umount2(&merged, MntFlags::empty())?;
    if !seen {
        return Err("overlay shows the wrong files".into());
    }
    Ok(())
}

/// Removes a probe directory, first detaching a mount a crash may have left on it.
pub fn remove_probe(probe: &Path) {
    let _ = umount2(&probe.join("merged"), MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir_all(probe);
}
