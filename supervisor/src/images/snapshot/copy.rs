//! Copying a snapshot tree, everything kept: modes (setuid included), owners, times, xattrs,
//! hardlinks, symlinks, fifos and devices. Symlinks are copied, never followed.
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::Error;
use crate::images::layer::at;

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Copies the tree `src` to `dst` (which must not exist).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), Error> {
    let mut links = HashMap::new();
    copy_entry(src, dst, &mut links)
}

fn copy_entry(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), Error> {
    let meta = fs::symlink_metadata(src).map_err(io_at(src))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        fs::create_dir(dst).map_err(io_at(dst))?;
        let mut names: Vec<_> = fs::read_dir(src)
            .map_err(io_at(src))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_at(src))?;
        names.sort();
        for name in names {
            copy_entry(&src.join(&name), &dst.join(&name), links)?;
        }
    } else if kind.is_file() {
        if meta.nlink() > 1 {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                return fs::hard_link(first, dst).map_err(io_at(dst));
            }
            links.insert((meta.dev(), meta.ino()), dst.to_path_buf());
        }
        fs::copy(src, dst).map_err(io_at(dst))?;
    } else if kind.is_symlink() {
        let target = fs::read_link(src).map_err(io_at(src))?;
        std::os::unix::fs::symlink(target, dst).map_err(io_at(dst))?;
    } else if kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
        let flag = if kind.is_fifo() {
            SFlag::S_IFIFO
        } else if kind.is_char_device() {
            SFlag::S_IFCHR
        } else {
            SFlag::S_IFBLK
        };
        nix::sys::stat::mknod(dst, flag, Mode::from_bits_truncate(0o600), meta.rdev()).map_err(
            |e| Error::Io {
                path: dst.to_path_buf(),
                source: e.into(),
            },
        )?;
    } else {
        tracing::debug!(path = %src.display(), "socket not copied");
        return Ok(());
    }
    copy_metadata(src, dst, &meta)
}

/// Owner, then mode (chown clears setuid), then xattrs, then times.
fn copy_metadata(src: &Path, dst: &Path, meta: &fs::Metadata) -> Result<(), Error> {
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid())).map_err(io_at(dst))?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io_at(dst))?;
    }
    for (key, value) in at::xattrs(src).map_err(io_at(src))? {
        let (dir, name) = (
            dst.parent().unwrap_or(Path::new("/")),
            dst.file_name().unwrap_or_default(),
        );
        let dir_fd = fs::File::open(dir).map_err(io_at(dir))?;
        use std::os::fd::AsFd;
        at::set_xattr_at(dir_fd.as_fd(), name, &key, &value).map_err(io_at(dst))?;
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
    .map_err(|e| Error::Io {
        path: dst.to_path_buf(),
        source: e.into(),
    })
}

/// Bytes of regular file content in a tree, each inode counted once.
pub fn usage(root: &Path) -> Result<u64, Error> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            let meta = entry.metadata().map_err(io_at(&entry.path()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                total += meta.size();
            }
        }
    }
    Ok(total)
}
