//! `maskedPaths` and `readonlyPaths`, applied inside the new root by file descriptor: every
//! target is resolved inside the root, a mask is bound from a `/dev/null` verified to be the
//! null device (CVE-2025-31133 class) and mounted read-only, and a read-only path is
//! read-only with every mount below it.
use crate::fdmount;
use crate::{Error, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, major, minor, Mode, SFlag};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// The root of the calling process (after pivot_root or chroot: the container's).
fn open_root() -> Result<OwnedFd> {
    nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open", "/", e))
}

/// `path` resolved inside `root` (symlinks stay in it, no magic links); None when missing.
fn open_target(root: &OwnedFd, path: &str, field: &str) -> Result<Option<OwnedFd>> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match openat2(root.as_fd(), Path::new(path), how) {
        Ok(fd) => Ok(Some(fd)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(Error::sys("open", format!("{field} {path}"), e)),
    }
}

/// The container's `/dev/null`, opened without following any symlink and checked to be the
/// character device 1:3.
fn open_dev_null(root: &OwnedFd) -> Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = openat2(root.as_fd(), "dev/null", how)
        .map_err(|e| Error::sys("open", "/dev/null (for maskedPaths)", e))?;
    let st = fstat(&fd).map_err(|e| Error::sys("fstat", "/dev/null", e))?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_chr || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3 {
        return Err(Error::Other(
            "maskedPaths: /dev/null is not the null device (char 1:3)".into(),
        ));
    }
    Ok(fd)
}

/// Hide `paths`: a read-only empty tmpfs over directories, a read-only bind of the verified
/// `/dev/null` over anything else.
pub fn mask(paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let root = open_root()?;
    let mut null = None;
    for p in paths {
        let Some(target) = open_target(&root, p, "maskedPaths")? else {
            continue;
        };
        let what = format!("maskedPaths {p}");
        let st = fstat(&target).map_err(|e| Error::sys("fstat", &what, e))?;
        let tree = if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            let attrs = libc::MOUNT_ATTR_RDONLY
                | libc::MOUNT_ATTR_NOSUID
                | libc::MOUNT_ATTR_NODEV
                | libc::MOUNT_ATTR_NOEXEC;
            fdmount::new_fs("tmpfs", &[("size", "0")], attrs)?
        } else {
            if null.is_none() {
                null = Some(open_dev_null(&root)?);
            }
            let null = null.as_ref().expect("just opened");
            let tree = fdmount::clone_tree(null.as_fd(), "/dev/null")?;
            fdmount::set_attrs(tree.as_fd(), libc::MOUNT_ATTR_RDONLY, 0, false, &what)?;
            tree
        };
        fdmount::move_onto(tree.as_fd(), target.as_fd(), &what)?;
    }
    Ok(())
}

/// Make each of `paths` read-only, with every mount below it.
pub fn make_readonly(paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let root = open_root()?;
    for p in paths {
        let Some(target) = open_target(&root, p, "readonlyPaths")? else {
            continue;
        };
        let what = format!("readonlyPaths {p}");
        let tree = fdmount::clone_tree_recursive(target.as_fd(), &what)?;
        fdmount::set_attrs(tree.as_fd(), libc::MOUNT_ATTR_RDONLY, 0, true, &what)?;
        fdmount::move_onto(tree.as_fd(), target.as_fd(), &what)?;
    }
    Ok(())
}
