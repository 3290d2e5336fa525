//! The kernel's fd-based mount API (open_tree, move_mount, fsopen/fsmount, mount_setattr):
//! mounts made from and onto file descriptors, so that no path is resolved twice and no
//! symlink swapped in between can redirect them. Every error names what it was about.
use crate::{Error, Result};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn check(r: libc::c_long, op: &'static str, what: impl std::fmt::Display) -> Result<libc::c_long> {
    if r < 0 {
        Err(Error::sys(op, what, nix::errno::Errno::last()))
    } else {
        Ok(r)
    }
}

fn owned(r: libc::c_long) -> OwnedFd {
    // SAFETY: the syscall returned a new fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

/// A detached copy of the mount (only that one, not its sub-mounts) holding the file `fd`.
pub fn clone_tree(fd: BorrowedFd, what: &str) -> Result<OwnedFd> {
    open_tree(fd, 0, what)
}

/// A detached copy of the mount holding the file `fd`, with every mount below it.
pub fn clone_tree_recursive(fd: BorrowedFd, what: &str) -> Result<OwnedFd> {
    open_tree(fd, libc::AT_RECURSIVE as u32, what)
}

fn open_tree(fd: BorrowedFd, extra: u32, what: &str) -> Result<OwnedFd> {
    let flags =
        libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32 | extra;
    let r = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    check(r, "open_tree", what).map(owned)
}

/// Attach the detached mount `tree` on the file `target` holds.
pub fn move_onto(tree: BorrowedFd, target: BorrowedFd, what: &str) -> Result<()> {
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    check(r, "move_mount", what).map(drop)
}

/// A new, detached instance of filesystem `fstype` (with `options` as key=value strings),
/// mounted with `attrs` (MOUNT_ATTR_*).
pub fn new_fs(fstype: &str, options: &[(&str, &str)], attrs: u64) -> Result<OwnedFd> {
    let name = CString::new(fstype).map_err(|_| Error::Spec(format!("{fstype:?}: NUL byte")))?;
    let r = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), libc::FSOPEN_CLOEXEC) };
    let ctx = check(r, "fsopen", fstype).map(owned)?;
    for (key, value) in options {
        let k = CString::new(*key).map_err(|_| Error::Spec(format!("{key:?}: NUL byte")))?;
        let v = CString::new(*value).map_err(|_| Error::Spec(format!("{value:?}: NUL byte")))?;
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                ctx.as_raw_fd(),
                libc::FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        check(r, "fsconfig", format!("{fstype} {key}={value}"))?;
    }
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    check(r, "fsconfig create", fstype)?;
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            ctx.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    };
    check(r, "fsmount", fstype).map(owned)
}

/// Set and clear mount attributes (MOUNT_ATTR_*) on the mount `fd` is on, and with
/// `recursive` on every mount below it too.
pub fn set_attrs(fd: BorrowedFd, set: u64, clear: u64, recursive: bool, what: &str) -> Result<()> {
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.attr_set = set;
    attr.attr_clr = clear;
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    check(r, "mount_setattr", what).map(drop)
}

/// The filesystem type (statfs f_type) of the file `fd` holds.
pub fn fs_type(fd: impl AsFd, what: &str) -> Result<i64> {
    nix::sys::statfs::fstatfs(fd)
        .map(|s| s.filesystem_type().0)
        .map_err(|e| Error::sys("fstatfs", what, e))
}
