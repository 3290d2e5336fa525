//! A procfs handle that nothing in the container's rootfs can fake: a fresh, detached procfs
//! instance (fsopen), or else `/proc` verified to be the root of a procfs. Files are opened
//! in it without following any symlink and without crossing into a mount over it, and each
//! one is checked to be on procfs (CVE-2019-16884, CVE-2025-52881 class).
use crate::fdmount;
use crate::{Error, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};
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

/// Files under /proc that lxcfs (a FUSE filesystem) binds over, allowed from any source.
const LXCFS_FILES: [&str; 10] = [
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// A mount entry as far as the /proc rules care.
pub struct MountRequest<'a> {
    pub dest: &'a Path,
    pub fstype: &'a str,
    pub bind_source: Option<&'a Path>,
}

impl MountRequest<'_> {
    fn refuse(&self, why: impl std::fmt::Display) -> Error {
        Error::Spec(format!(
            "mounts: destination {}: {why}",
            self.dest.display()
        ))
    }

    /// Before the target is resolved: `/proc` in the rootfs must be a real directory, only a
    /// procfs may go on it, and only procfs files (or lxcfs's) under it.
    pub fn check_path(&self, root: &OwnedFd) -> Result<()> {
        let clean = lexical_clean(self.dest);
        if clean == Path::new("/proc") {
            self.proc_dir_is_real(root)?;
            return self.check_on_proc();
        }
        if clean.starts_with("/proc") {
            self.proc_dir_is_real(root)?;
            return self.check_under_proc(&clean);
        }
        Ok(())
    }

    /// After the target is resolved (by fd): a target that turns out to be the rootfs's
    /// /proc, or on a procfs, obeys the same rules whatever path led there.
    pub fn check_target(&self, root: &OwnedFd, target: &OwnedFd) -> Result<()> {
        let clean = lexical_clean(self.dest);
        let st = nix::sys::stat::fstat(target)
            .map_err(|e| Error::sys("fstat", self.dest.display(), e))?;
        let proc_dir = nix::fcntl::openat(
            root,
            "proc",
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .and_then(|fd| nix::sys::stat::fstat(&fd).ok());
        if proc_dir.is_some_and(|p| p.st_dev == st.st_dev && p.st_ino == st.st_ino) {
            return self.check_on_proc();
        }
        if fdmount::fs_type(target, &self.dest.display().to_string())? == PROC_SUPER_MAGIC {
            return self.check_under_proc(&clean);
        }
        Ok(())
    }

    fn proc_dir_is_real(&self, root: &OwnedFd) -> Result<()> {
        match nix::sys::stat::fstatat(root, "proc", nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK => {
                Err(self.refuse("/proc in the rootfs is a symlink"))
            }
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR => {
                Err(self.refuse("/proc in the rootfs is not a directory"))
            }
            _ => Ok(()),
        }
    }

    fn check_on_proc(&self) -> Result<()> {
        let procfs = match self.bind_source {
            Some(src) => self.source_is_procfs(src)?,
            None => self.fstype == "proc",
        };
        if procfs {
            return Ok(());
        }
        Err(self.refuse(format!(
            "only a procfs may be mounted on /proc, not {}",
            self.what()
        )))
    }

    fn check_under_proc(&self, clean: &Path) -> Result<()> {
        if LXCFS_FILES.iter().any(|f| clean == Path::new(f)) {
            return Ok(());
        }
        if let Some(src) = self.bind_source {
            if self.source_is_procfs(src)? {
                return Ok(());
            }
        }
        Err(self.refuse(format!(
            "only procfs files may be mounted under /proc, not {}",
            self.what()
        )))
    }

    fn source_is_procfs(&self, src: &Path) -> Result<bool> {
        let fd = nix::fcntl::open(src, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::sys("open", src.display(), e))?;
        Ok(fdmount::fs_type(&fd, &src.display().to_string())? == PROC_SUPER_MAGIC)
    }

    fn what(&self) -> String {
        match self.bind_source {
            Some(src) => format!("a bind of {}", src.display()),
            None => format!("a {:?} filesystem", self.fstype),
        }
    }
}

/// `path` with `.` and `..` folded away as text (`/a/../proc` → `/proc`).
fn lexical_clean(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
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
        assert!(
            ts.starts_with(&format!("{}/task/", std::process::id())),
            "{ts}"
        );
        assert!(
            Procfs::at(Path::new("/proc/sys")).is_err(),
            "a procfs subdir"
        );
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
    fn lexical_clean_folds_dots() {
        assert_eq!(
            lexical_clean(Path::new("/a/../proc/./sys")),
            Path::new("/proc/sys")
        );
        assert_eq!(lexical_clean(Path::new("/../../proc")), Path::new("/proc"));
    }

    #[test]
    fn thread_self_is_checked() {
        assert!(is_thread_self("12/task/13"));
        assert!(!is_thread_self("../../etc"));
        assert!(!is_thread_self("12/task/"));
    }
}
