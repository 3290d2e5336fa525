//! Copying a directory tree with everything kept: owners, modes (set-id bits included),
//! times, xattrs, hard links, symlinks, fifos and device nodes. Symlinks are copied, never
//! followed; sockets are skipped (as docker's copies do). Used by the copying snapshotter
//! (a layer's tree) and by volume copy-up (an image directory into an empty volume).
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::images::layer::at;

/// A copy failure, with the path it was about.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct CopyError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError {
        path: path.to_path_buf(),
        source,
    }
}

/// What to do with an xattr that the destination's filesystem refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Xattrs {
    /// Fail the copy.
    Required,
    /// Log and skip it when refused with `ENOTSUP` or `EPERM` (a tmpfs and `user.*`), as
    /// docker's copy-up does.
    BestEffort,
}

/// Copies the tree `src` to `dst` (which must not exist).
pub fn copy_tree(src: &Path, dst: &Path, xattrs: Xattrs) -> Result<(), CopyError> {
    Copy::new(xattrs).entry(src, dst)
}

/// Copies what the directory `src` holds into the existing directory `dst`, then `src`'s own
/// owner, mode, xattrs and times onto `dst`.
pub fn copy_into(src: &Path, dst: &Path, xattrs: Xattrs) -> Result<(), CopyError> {
    let mut copy = Copy::new(xattrs);
    copy.children(src, dst)?;
    let meta = fs::symlink_metadata(src).map_err(io_at(src))?;
    copy.metadata(src, dst, &meta)
}

struct Copy {
    xattrs: Xattrs,
    /// The first copy of each multiply-linked source inode.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Copy {
    fn new(xattrs: Xattrs) -> Self {
        Copy {
            xattrs,
            links: HashMap::new(),
        }
    }

    fn children(&mut self, src: &Path, dst: &Path) -> Result<(), CopyError> {
        let mut names: Vec<_> = fs::read_dir(src)
            .map_err(io_at(src))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_at(src))?;
        names.sort();
        for name in names {
            self.entry(&src.join(&name), &dst.join(&name))?;
        }
        Ok(())
    }

    fn entry(&mut self, src: &Path, dst: &Path) -> Result<(), CopyError> {
        let meta = fs::symlink_metadata(src).map_err(io_at(src))?;
        let kind = meta.file_type();
        if !kind.is_dir() && meta.nlink() > 1 {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                return fs::hard_link(first, dst).map_err(io_at(dst));
            }
            self.links
                .insert((meta.dev(), meta.ino()), dst.to_path_buf());
        }
        if kind.is_dir() {
            fs::create_dir(dst).map_err(io_at(dst))?;
            self.children(src, dst)?;
        } else if kind.is_file() {
            fs::copy(src, dst).map_err(io_at(dst))?;
        } else if kind.is_symlink() {
            let target = fs::read_link(src).map_err(io_at(src))?;
            std::os::unix::fs::symlink(target, dst).map_err(io_at(dst))?;
        } else if kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
            let flag = SFlag::from_bits_truncate(meta.mode() & libc::S_IFMT);
            nix::sys::stat::mknod(dst, flag, Mode::from_bits_truncate(0o600), meta.rdev())
                .map_err(|e| io_at(dst)(e.into()))?;
        } else {
            tracing::debug!(path = %src.display(), "socket not copied");
            return Ok(());
        }
        self.metadata(src, dst, &meta)
    }

    /// Owner, then mode (chown clears set-id bits), then xattrs, then times; a final symlink
    /// of either path is not followed.
    fn metadata(&self, src: &Path, dst: &Path, meta: &fs::Metadata) -> Result<(), CopyError> {
        std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid())).map_err(io_at(dst))?;
        if !meta.file_type().is_symlink() {
            fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io_at(dst))?;
        }
        for (key, value) in at::xattrs(src).map_err(io_at(src))? {
            match at::set_xattr(dst, &key, &value) {
                Ok(()) => {}
                Err(e)
                    if self.xattrs == Xattrs::BestEffort
                        && matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM)) =>
                {
                    tracing::warn!(
                        path = %dst.display(),
                        key = %String::from_utf8_lossy(&key),
                        error = %e,
                        "xattr not copied"
                    );
                }
                Err(e) => return Err(io_at(dst)(e)),
            }
        }
        let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
        let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
        utimensat(
            nix::fcntl::AT_FDCWD,
            dst,
            &atime,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| io_at(dst)(e.into()))
    }
}
