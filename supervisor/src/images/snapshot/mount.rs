//! Mounts a snapshotter hands out, and mounting them.
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

    /// An overlay made `volatile`: its upper directory is never synced, not even at unmount
    /// (which otherwise syncs the whole host filesystem: 5–70 ms). Only for upper directories
    /// that a crash may lose: a `--rm` container's. The marker a volatile mount leaves in its
    /// work directory (which makes the kernel refuse the next mount) is removed first.
    pub fn volatile(&self) -> Option<Mount> {
        let workdir = self
            .options
            .iter()
            .find_map(|o| o.strip_prefix("workdir="))?;
        if self.kind != "overlay" || self.read_only() {
            return None;
        }
        let _ = std::fs::remove_dir(Path::new(workdir).join("work/incompat/volatile"));
        let mut m = self.clone();
        m.options.push("volatile".into());
        Some(m)
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

/// Longest mount data the kernel takes (a page, with its NUL).
const MAX_DATA: usize = 4095;

/// Whether an overlay mount's options fit the kernel's limit, directly or with its
/// directories made relative to their common parent (see [`mount_all`]).
pub fn fits(m: &Mount) -> bool {
    let data = m.data();
    data.len() < MAX_DATA || relative_data(&data).is_some_and(|(_, d)| d.len() < MAX_DATA)
}

/// Overlay data with every `lowerdir`/`upperdir`/`workdir` path made relative to the
/// directory they share; None when they share nothing but `/`.
fn relative_data(data: &str) -> Option<(PathBuf, String)> {
    let mut dirs: Vec<&str> = Vec::new();
    for option in data.split(',') {
        match option.split_once('=') {
            Some(("lowerdir", v)) => dirs.extend(v.split(':')),
            Some(("upperdir" | "workdir", v)) => dirs.push(v),
            _ => {}
        }
    }
    let mut common = Path::new(dirs.first()?).parent()?.to_path_buf();
    for dir in &dirs {
        while !Path::new(dir).starts_with(&common) {
            common = common.parent()?.to_path_buf();
        }
    }
    // Sharing only `/` would shorten nothing.
    common.parent()?;
    let relative = |p: &str| {
        Path::new(p)
            .strip_prefix(&common)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.to_string())
    };
    let options: Vec<String> = data
        .split(',')
        .map(|option| match option.split_once('=') {
            Some(("lowerdir", v)) => {
                let lowers: Vec<String> = v.split(':').map(relative).collect();
                format!("lowerdir={}", lowers.join(":"))
            }
            Some((key @ ("upperdir" | "workdir"), v)) => format!("{key}={}", relative(v)),
            _ => option.to_string(),
        })
        .collect();
    Some((common, options.join(",")))
}

/// Mounts an overlay whose options are too long for a page: a child process changes into
/// the layers' common directory and mounts with relative paths (the daemon's own working
/// directory, shared by its threads, never changes).
fn mount_overlay_relative(data: &str, flags: MsFlags, target: &Path) -> Result<(), Error> {
    let fail = |message: String| Error::Mount {
        target: target.to_path_buf(),
        message,
    };
    let (common, relative) =
        relative_data(data).ok_or_else(|| fail("overlay options too long".into()))?;
    if relative.len() >= MAX_DATA {
        return Err(fail(format!(
            "overlay options too long even relative to {} ({} bytes): too many layers",
            common.display(),
            relative.len()
        )));
    }
    let target_abs = std::path::absolute(target).map_err(|e| fail(e.to_string()))?;
    let cstr = |s: &[u8]| CString::new(s).map_err(|e| fail(e.to_string()));
    let (dir, target_c) = (
        cstr(common.as_os_str().as_bytes())?,
        cstr(target_abs.as_os_str().as_bytes())?,
    );
    let (data_c, overlay) = (cstr(relative.as_bytes())?, cstr(b"overlay")?);
    // SAFETY: between fork and _exit the child only makes raw syscalls on memory prepared
    // before the fork: nothing allocates or takes a lock.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(fail(format!("fork: {}", std::io::Error::last_os_error())));
    }
    if pid == 0 {
        unsafe {
            if libc::chdir(dir.as_ptr()) != 0 {
                libc::_exit(*libc::__errno_location());
            }
            let rc = libc::mount(
                overlay.as_ptr(),
                target_c.as_ptr(),
                overlay.as_ptr(),
                flags.bits(),
                data_c.as_ptr().cast(),
            );
            libc::_exit(if rc == 0 {
                0
            } else {
                *libc::__errno_location()
            });
        }
    }
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
        .map_err(|e| fail(format!("wait for mount helper: {e}")))?;
    match status {
        nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
        nix::sys::wait::WaitStatus::Exited(_, code) => Err(fail(format!(
            "mount overlay (relative to {}): {}",
            common.display(),
            std::io::Error::from_raw_os_error(code)
        ))),
        other => Err(fail(format!("mount helper: {other:?}"))),
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
                if data.len() < MAX_DATA {
                    mount(
                        Some("overlay"),
                        target,
                        Some("overlay"),
                        flags,
                        Some(data.as_str()),
                    )
                    .map_err(|e| mount_err(target, &format!("mount overlay ({data})"), e))?;
                } else {
                    mount_overlay_relative(&data, flags, target)?;
                }
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

/// Mount points below `dir` (not `dir` itself), deepest first, from /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_octal(p)))
        .filter(|p| p.starts_with(dir) && p != dir)
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo's `\ooo` escapes (space, tab, newline, backslash).
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches every mount below `dir` (what a killed process left mounted in its scratch
/// space); returns how many.
pub fn unmount_under(dir: &Path) -> usize {
    let mut n = 0;
    for m in mounts_under(dir) {
        match umount2(&m, MntFlags::MNT_DETACH) {
            Ok(()) => n += 1,
            Err(e) => {
                tracing::warn!(path = %m.display(), error = %e, "unmounting a leftover mount")
            }
        }
    }
    n
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
