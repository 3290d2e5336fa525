//! Directory-relative filesystem calls: every path a layer names is resolved with `openat2`
//! and `RESOLVE_IN_ROOT`, so symlinks (absolute ones and `..` included) are followed as if the
//! destination were `/` and nothing outside it is ever reached.
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{unlinkat, UnlinkatFlags};

/// Opens the directory `path` (relative, may be empty for `root` itself) inside `root`.
pub fn open_dir_in(root: BorrowedFd<'_>, path: &Path) -> nix::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, path, how)
}

/// Opens the directory `path` inside `root`, creating missing components (mode 0755) one by
/// one, each inside the directory resolved before it.
pub fn make_dir_in(root: BorrowedFd<'_>, path: &Path) -> nix::Result<OwnedFd> {
    match open_dir_in(root, path) {
        Err(Errno::ENOENT) => {}
        other => return other,
    }
    let mut prefix = std::path::PathBuf::new();
    let mut dir = open_dir_in(root, &prefix)?;
    for component in path.iter() {
        prefix.push(component);
        dir = match open_dir_in(root, &prefix) {
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(&dir, component, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                open_dir_in(root, &prefix)?
            }
            other => other?,
        };
    }
    Ok(dir)
}

/// `lstat` of `name` in `dir`; None when absent.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<Option<libc::stat>> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a `stat` mode is of the given type (`libc::S_IFDIR`...).
pub fn is_type(st: &libc::stat, kind: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == kind
}

/// Removes `name` from `dir`, recursively for a directory, never following a symlink.
/// A missing `name` is not an error.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if !is_type(&st, libc::S_IFDIR) {
        return unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
    }
    let child = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    empty_dir(child.as_fd(), |_| true)?;
    unlinkat(dir, name, UnlinkatFlags::RemoveDir)
}

/// Names in a directory, without `.` and `..`.
pub fn list_dir(dir: BorrowedFd<'_>) -> nix::Result<Vec<std::ffi::OsString>> {
    let dup = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut handle = nix::dir::Dir::from_fd(dup)?;
    let mut names = Vec::new();
    for entry in handle.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(std::ffi::OsString::from_vec(name));
        }
    }
    Ok(names)
}

use std::os::unix::ffi::OsStringExt;

/// Removes every entry of `dir` for which `remove(name)` says so.
pub fn empty_dir(dir: BorrowedFd<'_>, mut remove: impl FnMut(&OsStr) -> bool) -> nix::Result<()> {
    for name in list_dir(dir)? {
        if remove(&name) {
            remove_all_at(dir, &name)?;
        }
    }
    Ok(())
}

/// Sets access and modification time of `name` in `dir` without following a symlink.
pub fn set_times_at(dir: BorrowedFd<'_>, name: &OsStr, mtime: TimeSpec) -> nix::Result<()> {
    nix::sys::stat::utimensat(
        dir,
        name,
        &mtime,
        &mtime,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
}

/// `/proc/self/fd/<dir>/<name>`: a path for the `l*xattr` calls that reaches `name` inside an
/// already resolved directory without walking any other path.
fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<CString> {
    let mut bytes = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    bytes.extend_from_slice(name.as_bytes());
    CString::new(bytes).map_err(io::Error::other)
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(io::Error::other)
}

/// Sets an extended attribute on `name` in `dir` (not following a final symlink).
pub fn set_xattr_at(dir: BorrowedFd<'_>, name: &OsStr, key: &[u8], value: &[u8]) -> io::Result<()> {
    set_xattr_cpath(&proc_path(dir, name)?, key, value)
}

/// Sets an extended attribute on `path` (not following a final symlink).
pub fn set_xattr(path: &Path, key: &[u8], value: &[u8]) -> io::Result<()> {
    set_xattr_cpath(&cstring(path.as_os_str().as_bytes())?, key, value)
}

fn set_xattr_cpath(path: &CString, key: &[u8], value: &[u8]) -> io::Result<()> {
    let key = cstring(key)?;
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Extended attributes of a path (not following a final symlink), sorted by name.
pub fn xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let cpath = cstring(path.as_os_str().as_bytes())?;
    let names = match xattr_buffer(|buf, len| {
        // SAFETY: `buf` has room for `len` bytes (or is null with len 0).
        unsafe { libc::llistxattr(cpath.as_ptr(), buf.cast(), len) }
    }) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        other => other?,
    };
    let mut out = Vec::new();
    for key in names.split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let ckey = cstring(key)?;
        let value = xattr_buffer(|buf, len| {
            // SAFETY: as above.
            unsafe { libc::lgetxattr(cpath.as_ptr(), ckey.as_ptr(), buf.cast(), len) }
        });
        match value {
            Ok(value) => out.push((key.to_vec(), value)),
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Calls a size-probing `*xattr` function twice: once for the size, once for the data.
fn xattr_buffer(call: impl Fn(*mut u8, usize) -> isize) -> io::Result<Vec<u8>> {
    loop {
        let size = call(std::ptr::null_mut(), 0);
        if size < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; size as usize];
        let got = call(buf.as_mut_ptr(), buf.len());
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return Err(io::Error::last_os_error());
        }
    }
}

/// Reads one extended attribute of a path (not following a final symlink).
pub fn get_xattr(path: &Path, key: &str) -> io::Result<Option<Vec<u8>>> {
    let cpath = cstring(path.as_os_str().as_bytes())?;
    let ckey = cstring(key.as_bytes())?;
    match xattr_buffer(|buf, len| {
        // SAFETY: `buf` has room for `len` bytes (or is null with len 0).
        unsafe { libc::lgetxattr(cpath.as_ptr(), ckey.as_ptr(), buf.cast(), len) }
    }) {
        Ok(v) => Ok(Some(v)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENODATA | libc::ENOTSUP)) => Ok(None),
        Err(e) => Err(e),
    }
}
