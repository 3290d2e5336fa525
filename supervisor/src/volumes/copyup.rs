//! Copy-up: an empty volume mounted over a directory of the image gets that directory's
//! content (owners, modes, times, xattrs, hard links, symlinks, device nodes), as docker
//! does on first mount. The directory is found inside the rootfs (`openat2` with
//! `RESOLVE_IN_ROOT`: no symlink of the image leads out of it) and walked without following
//! symlinks.
use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// A copy-up failure, with the path it was about.
#[derive(Debug, thiserror::Error)]
#[error("copy-up {path}: {source}")]
pub struct CopyError {
    pub path: PathBuf,
    pub source: std::io::Error,
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
    let from = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&source)
    ));
    let mut links = HashMap::new();
    copy_dir(&from, data, &mut links)?;
    // The root through its /proc/self/fd link: followed once (it is the directory itself).
    copy_attributes(&from, data, true)?;
    drop(source);
    Ok(true)
}

fn copy_dir(
    from: &Path,
    to: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), CopyError> {
    for entry in std::fs::read_dir(from).map_err(at(from))? {
        let entry = entry.map_err(at(from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&src).map_err(at(&src))?;
        let kind = meta.file_type();
        if !kind.is_dir() && meta.nlink() > 1 {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                std::fs::hard_link(first, &dst).map_err(at(&dst))?;
                continue;
            }
            links.insert((meta.dev(), meta.ino()), dst.clone());
        }
        if kind.is_dir() {
            std::fs::create_dir(&dst).map_err(at(&dst))?;
            copy_dir(&src, &dst, links)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src).map_err(at(&src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(at(&dst))?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(at(&dst))?;
        } else if kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
            let mode = Mode::from_bits_truncate(meta.mode() & 0o7777);
            let sflag = nix::sys::stat::SFlag::from_bits_truncate(meta.mode() & libc::S_IFMT);
            nix::sys::stat::mknod(&dst, sflag, mode, meta.rdev())
                .map_err(|e| at(&dst)(e.into()))?;
        } else {
            // Sockets are not copied (docker skips them too).
            continue;
        }
        copy_attributes(&src, &dst, false)?;
    }
    Ok(())
}

/// Owner, xattrs, mode (after chown, which clears set-id bits) and times of `src` on `dst`;
/// `src` itself is followed if `follow`.
fn copy_attributes(src: &Path, dst: &Path, follow: bool) -> Result<(), CopyError> {
    let meta = if follow {
        std::fs::metadata(src)
    } else {
        std::fs::symlink_metadata(src)
    }
    .map_err(at(src))?;
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid())).map_err(at(dst))?;
    copy_xattrs(src, dst, follow)?;
    if !meta.file_type().is_symlink() {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(at(dst))?;
    }
    let times = [
        nix::sys::time::TimeSpec::new(meta.atime(), meta.atime_nsec()),
        nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec()),
    ];
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        dst,
        &times[0],
        &times[1],
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| at(dst)(e.into()))
}

type XattrList = unsafe extern "C" fn(*const libc::c_char, *mut libc::c_char, usize) -> isize;
type XattrGet = unsafe extern "C" fn(
    *const libc::c_char,
    *const libc::c_char,
    *mut libc::c_void,
    usize,
) -> isize;

fn cpath(p: &Path) -> Result<CString, CopyError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|e| at(p)(std::io::Error::other(e)))
}

/// Every extended attribute of `src` (followed if `follow`) set on `dst` (never followed).
fn copy_xattrs(src: &Path, dst: &Path, follow: bool) -> Result<(), CopyError> {
    let (s, d) = (cpath(src)?, cpath(dst)?);
    let (list, get) = if follow {
        (libc::listxattr as XattrList, libc::getxattr as XattrGet)
    } else {
        (libc::llistxattr as XattrList, libc::lgetxattr as XattrGet)
    };
    let mut names = vec![0u8; 4096];
    // SAFETY: the buffer is valid for its length; the path is NUL-terminated.
    let len = unsafe { list(s.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if len < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(()),
            _ => Err(at(src)(e)),
        };
    }
    for name in names[..len as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let cname = CString::new(name).map_err(|e| at(src)(std::io::Error::other(e)))?;
        let mut value = vec![0u8; 65536];
        // SAFETY: as above.
        let n = unsafe {
            get(
                s.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if n < 0 {
            return Err(at(src)(std::io::Error::last_os_error()));
        }
        // SAFETY: as above; `n` bytes of `value` are initialised.
        let r = unsafe {
            libc::lsetxattr(
                d.as_ptr(),
                cname.as_ptr(),
                value.as_ptr().cast(),
                n as usize,
                0,
            )
        };
        if r < 0 {
            return Err(at(dst)(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let f = cpath(&img.join("f")).unwrap();
        // SAFETY: valid NUL-terminated strings and buffer.
        let r =
            unsafe { libc::lsetxattr(f.as_ptr(), c"user.k".as_ptr(), b"v1".as_ptr().cast(), 2, 0) };
        let xattrs = r == 0;
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
        if xattrs {
            let d = cpath(&data.join("f")).unwrap();
            let mut buf = [0u8; 8];
            // SAFETY: as above.
            let n = unsafe {
                libc::lgetxattr(d.as_ptr(), c"user.k".as_ptr(), buf.as_mut_ptr().cast(), 8)
            };
            assert_eq!(&buf[..n as usize], b"v1");
        }
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
