//! Copy-up: an empty volume mounted over a directory of the image gets that directory's
//! content (owners, modes, times, xattrs, hard links, symlinks, device nodes), as docker
//! does on first mount. The directory is found inside the rootfs (`openat2` with
//! `RESOLVE_IN_ROOT`: no symlink of the image leads out of it) and walked without following
//! symlinks.
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};

use crate::tree::{self, Xattrs};

/// A copy-up failure, with the path it was about.
#[derive(Debug, thiserror::Error)]
#[error("copy-up {path}: {source}")]
pub struct CopyError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl From<tree::CopyError> for CopyError {
    fn from(e: tree::CopyError) -> Self {
        CopyError {
            path: e.path,
            source: e.source,
        }
    }
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> CopyError + '_ {
    move |source| CopyError {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `dir` has no entry.
pub fn is_empty(dir: &Path) -> Result<bool, CopyError> {
    Ok(std::fs::read_dir(dir).map_err(at(dir))?.next().is_none())
}

/// Copies `rootfs`'s `dest` (resolved inside `rootfs`) into `data` if `data` is empty and
/// `dest` is a directory of the image; returns whether it copied.
pub fn copy_if_empty(rootfs: &Path, dest: &str, data: &Path) -> Result<bool, CopyError> {
    if !is_empty(data)? {
        return Ok(false);
    }
    let root = std::fs::File::open(rootfs).map_err(at(rootfs))?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let relative = dest.trim_start_matches('/');
    let relative = if relative.is_empty() { "." } else { relative };
    let source = match nix::fcntl::openat2(&root, relative, how) {
        Ok(fd) => fd,
        // Nothing (or no directory) there: nothing to copy.
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => return Ok(false),
        Err(e) => return Err(at(&rootfs.join(relative))(e.into())),
    };
    // `/.` after its /proc/self/fd link is the directory itself, not the link.
    let from = PathBuf::from(format!(
        "/proc/self/fd/{}/.",
        std::os::fd::AsRawFd::as_raw_fd(&source)
    ));
    // A filesystem that refuses an xattr (a tmpfs volume and `user.*`) gets the rest.
    tree::copy_into(&from, data, Xattrs::BestEffort)?;
    drop(source);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;
    use crate::images::layer::at as xattrs;

    #[test]
    fn copies_owners_modes_links_xattrs_and_stays_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        let img = rootfs.join("srv");
        std::fs::create_dir_all(img.join("sub")).unwrap();
        std::fs::write(img.join("f"), b"hello").unwrap();
        std::os::unix::fs::lchown(img.join("f"), Some(1234), Some(5678)).unwrap();
        std::fs::set_permissions(img.join("f"), std::fs::Permissions::from_mode(0o4751)).unwrap();
        std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o701)).unwrap();
        std::fs::hard_link(img.join("f"), img.join("sub/hl")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", img.join("abs")).unwrap();
        // (The test directory is on ext4 or alike: user xattrs are supported.)
        xattrs::set_xattr(&img.join("f"), b"user.k", b"v1").unwrap();
        xattrs::set_xattr(&img, b"user.top", b"dir").unwrap();
        // A symlink in the image pointing at a host directory is resolved inside the rootfs.
        std::os::unix::fs::symlink("/etc", rootfs.join("escape")).unwrap();

        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        assert!(copy_if_empty(&rootfs, "/srv", &data).unwrap());
        let m = std::fs::metadata(data.join("f")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1234, 5678, 0o4751));
        assert_eq!(std::fs::read(data.join("f")).unwrap(), b"hello");
        assert_eq!(std::fs::metadata(&data).unwrap().mode() & 0o7777, 0o701);
        assert_eq!(
            m.ino(),
            std::fs::metadata(data.join("sub/hl")).unwrap().ino()
        );
        assert_eq!(
            std::fs::read_link(data.join("abs")).unwrap(),
            Path::new("/etc/passwd")
        );
        let user = |p: &Path| -> Vec<(Vec<u8>, Vec<u8>)> {
            let all = xattrs::xattrs(p).unwrap();
            all.into_iter()
                .filter(|(k, _)| k.starts_with(b"user."))
                .collect()
        };
        assert_eq!(
            user(&data.join("f")),
            [(b"user.k".to_vec(), b"v1".to_vec())]
        );
        assert_eq!(user(&data), [(b"user.top".to_vec(), b"dir".to_vec())]);
        // Not again once it has content.
        assert!(!copy_if_empty(&rootfs, "/srv", &data).unwrap());

        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        assert!(
            !copy_if_empty(&rootfs, "/escape", &other).unwrap(),
            "no /etc in the rootfs"
        );
        assert!(is_empty(&other).unwrap(), "the host's /etc was not copied");
        assert!(!copy_if_empty(&rootfs, "/missing", &other).unwrap());
    }
}
