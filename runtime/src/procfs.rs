//! A procfs handle that nothing in the container's rootfs can fake: a fresh, detached procfs
//! instance (fsopen), or else `/proc` verified to be the root of a procfs. Files are opened
//! in it without following any symlink and without crossing into a mount over it, and each
//! one is checked to be on procfs (CVE-2019-16884, CVE-2025-52881 class).
use crate::fdmount;
use crate::{Error, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// `PROC_SUPER_MAGIC`: statfs f_type of procfs.
pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// The inode number of a procfs root directory.
const PROC_ROOT_INO: u64 = 1;

pub struct Procfs {
    root: OwnedFd,
}

impl Procfs {
    /// A private procfs of the caller's pid namespace; `/proc` (verified) where the kernel
    /// refuses a new instance.
    pub fn open() -> Result<Procfs> {
        let attrs = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;
        match fdmount::new_fs("proc", &[], attrs) {
            Ok(root) => Procfs::verified(root, "new procfs"),
            Err(e) => {
                tracing::debug!("private procfs: {e}; using /proc");
                Procfs::at(Path::new("/proc"))
            }
        }
    }

    /// The procfs mounted at `path`: refused unless `path` is (not a symlink to) the root of
    /// a procfs.
    pub fn at(path: &Path) -> Result<Procfs> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("open procfs", path.display(), e))?;
        Procfs::verified(fd, &path.display().to_string())
    }

    fn verified(root: OwnedFd, what: &str) -> Result<Procfs> {
        is_procfs_root(&root, what)?;
        Ok(Procfs { root })
    }

    /// Open `rel` (like `sys/kernel/shmmax`) in this procfs: no symlink, no `..` out of it, no
    /// mount crossed, and the result must be on procfs.
    pub fn open_file(&self, rel: &str, flags: OFlag) -> Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS
                    | ResolveFlag::RESOLVE_NO_XDEV,
            );
        let fd = openat2(self.root.as_fd(), rel, how)
            .map_err(|e| Error::sys("open", format!("/proc/{rel}"), e))?;
        if fdmount::fs_type(&fd, rel)? != PROC_SUPER_MAGIC {
            return Err(Error::Other(format!("/proc/{rel}: not on procfs")));
        }
        Ok(fd)
    }

    /// Write `value` to `rel` in one write(2), as procfs files expect.
    pub fn write(&self, rel: &str, value: &[u8]) -> Result<()> {
        let fd = self.open_file(rel, OFlag::O_WRONLY)?;
        let n = nix::unistd::write(&fd, value)
            .map_err(|e| Error::sys("write", format!("/proc/{rel}"), e))?;
        if n != value.len() {
            return Err(Error::Other(format!("write /proc/{rel}: short write")));
        }
        Ok(())
    }

    /// `<tgid>/task/<tid>` of the calling thread, as this procfs numbers it (what
    /// `thread-self` points to, read from the kernel rather than followed).
    pub fn thread_self(&self) -> Result<String> {
        let link = nix::fcntl::readlinkat(self.root.as_fd(), "thread-self")
            .map_err(|e| Error::sys("readlink", "/proc/thread-self", e))?;
        let link = link.to_string_lossy().into_owned();
        if !is_thread_self(&link) {
            return Err(Error::Other(format!(
                "/proc/thread-self: unexpected target {link:?}"
            )));
        }
        Ok(link)
    }
}

/// `fd` is the root directory of a procfs (not a sub-directory bound elsewhere, not a fake).
pub fn is_procfs_root(fd: &OwnedFd, what: &str) -> Result<()> {
    if fdmount::fs_type(fd, what)? != PROC_SUPER_MAGIC {
        return Err(Error::Other(format!("{what}: not a procfs")));
    }
    let st = nix::sys::stat::fstat(fd).map_err(|e| Error::sys("fstat", what, e))?;
    if st.st_ino != PROC_ROOT_INO {
        return Err(Error::Other(format!("{what}: not the root of a procfs")));
    }
    Ok(())
}

fn is_thread_self(link: &str) -> bool {
    let parts: Vec<&str> = link.split('/').collect();
    parts.len() == 3
        && parts[1] == "task"
        && [parts[0], parts[2]]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_proc_is_a_procfs_root_and_a_tmpfs_is_not() {
        let proc = Procfs::at(Path::new("/proc")).unwrap();
        let ts = proc.thread_self().unwrap();
        assert!(ts.starts_with(&format!("{}/task/", std::process::id())), "{ts}");
        assert!(Procfs::at(Path::new("/proc/sys")).is_err(), "a procfs subdir");
        assert!(Procfs::at(Path::new("/dev/shm")).is_err(), "a tmpfs");
    }

    #[test]
    fn open_file_follows_no_symlink() {
        let proc = Procfs::open().unwrap();
        assert!(proc.open_file("sys/kernel/ostype", OFlag::O_RDONLY).is_ok());
        // `self` is a symlink, `..` leaves the root: both refused.
        assert!(proc.open_file("self/status", OFlag::O_RDONLY).is_err());
        assert!(proc.open_file("../etc/passwd", OFlag::O_RDONLY).is_err());
    }

    #[test]
    fn thread_self_is_checked() {
        assert!(is_thread_self("12/task/13"));
        assert!(!is_thread_self("../../etc"));
        assert!(!is_thread_self("12/task/"));
    }
}
