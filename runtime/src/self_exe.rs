//! Protection of the runtime binary against containers (runc CVE-2019-5736 class).
//!
//! A container process can reach the runtime's binary through `/proc/<pid>/exe` of a runtime
//! process that joined it (`exec`, or the init before it execs, or a `#!/proc/self/exe`
//! entrypoint) and overwrite it on the host. So commands that enter a container first re-exec
//! the runtime from a read-only, detached bind mount of its own binary: `/proc/self/exe` then
//! points at a mount no container can write through or remount. Where the kernel lacks
//! `open_tree`/`mount_setattr`, a sealed memfd copy is used instead.
use crate::{Error, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const MARKER: &str = "_BERTH_RUNTIME_SEALED";

/// Re-exec from a protected copy of the binary unless this process already is one.
pub fn ensure_protected() -> Result<()> {
    if std::env::var_os(MARKER).is_some() {
        // SAFETY: single-threaded at this point (called first thing in main).
        unsafe { std::env::remove_var(MARKER) };
        return Ok(());
    }
    let fd = readonly_mount_of_self().or_else(|_| sealed_memfd_of_self())?;
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()).unwrap_or_default())
        .collect();
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            CString::new([k.as_encoded_bytes(), b"=", v.as_encoded_bytes()].concat()).ok()
        })
        .collect();
    envp.push(CString::new(format!("{MARKER}=1")).expect("no NUL"));
    let err = nix::unistd::execveat(&fd, c"", &argv, &envp, nix::fcntl::AtFlags::AT_EMPTY_PATH)
        .unwrap_err();
    Err(Error::sys("re-exec", "protected runtime binary", err))
}

/// A detached, read-only bind mount of /proc/self/exe, opened as an executable fd.
fn readonly_mount_of_self() -> Result<OwnedFd> {
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC as libc::c_uint;
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/proc/self/exe".as_ptr(),
            flags,
        )
    };
    if r < 0 {
        return Err(Error::sys(
            "open_tree",
            "/proc/self/exe",
            nix::errno::Errno::last(),
        ));
    }
    let tree = unsafe { OwnedFd::from_raw_fd(r as i32) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOSUID,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(Error::sys(
            "mount_setattr",
            "/proc/self/exe",
            nix::errno::Errno::last(),
        ));
    }
    Ok(tree)
}

/// Fallback: the binary copied into a memfd sealed against every write.
fn sealed_memfd_of_self() -> Result<OwnedFd> {
    let mut exe = std::fs::File::open("/proc/self/exe")
        .map_err(|e| Error::io("open", "/proc/self/exe", e))?;
    let fd = nix::sys::memfd::memfd_create(
        c"berth-runtime",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC | nix::sys::memfd::MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(|e| Error::sys("memfd_create", "berth-runtime", e))?;
    let mut file = std::fs::File::from(fd);
    std::io::copy(&mut exe, &mut file).map_err(|e| Error::io("copy", "/proc/self/exe", e))?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(Error::sys("seal", "memfd", nix::errno::Errno::last()));
    }
    Ok(file.into())
}
