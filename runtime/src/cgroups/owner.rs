//! Whose processes a container's cgroup holds. At create the cgroup must be the container's
//! alone: not a hierarchy's root, not the runtime's own cgroup (or an ancestor of it), and empty
//! (runc's "container's cgroup is not empty" refusal). When signalling, only processes of the
//! container count: those in its pid namespace or in one nested in it. A process moved into
//! the cgroup from elsewhere is left alone, and keeps the cgroup from being removed.
use super::layout::{own_cgroups, Layout};
use super::{fs, Cgroup, Error, Result};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A pid namespace, by the (device, inode) of its nsfs file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct PidNs {
    pub dev: u64,
    pub ino: u64,
}

impl PidNs {
    /// The pid namespace `pid` lives in.
    pub fn of(pid: i32) -> std::io::Result<PidNs> {
        let m = std::fs::metadata(format!("/proc/{pid}/ns/pid"))?;
        Ok(PidNs {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Whether `pid` is in this namespace or in one nested in it (walking up with
    /// NS_GET_PARENT, which stops at the caller's own namespace). False for a process gone.
    pub fn holds(&self, pid: i32) -> bool {
        let Ok(file) = std::fs::File::open(format!("/proc/{pid}/ns/pid")) else {
            return false;
        };
        let mut fd = OwnedFd::from(file);
        // Pid namespaces nest at most 32 deep.
        for _ in 0..33 {
            let Ok(m) = nix::sys::stat::fstat(&fd) else {
                return false;
            };
            if (m.st_dev, m.st_ino) == (self.dev, self.ino) {
                return true;
            }
            // SAFETY: ioctl(NS_GET_PARENT) on an nsfs fd we own; it returns a new fd or -1.
            let parent = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_PARENT) };
            if parent < 0 {
                return false;
            }
            // SAFETY: `parent` is a fresh fd returned to us by the kernel.
            fd = unsafe { OwnedFd::from_raw_fd(parent) };
        }
        false
    }
}

/// `_IO(0xb7, 0x2)` from linux/nsfs.h.
const NS_GET_PARENT: libc::c_ulong = 0xb702;

impl Cgroup {
    /// Refuse a cgroup the container would share: a hierarchy's root, the runtime's own
    /// cgroup or an ancestor of it, or one that (below it included) already holds processes.
    pub(crate) fn ensure_exclusive(&self, layout: &Layout) -> Result<()> {
        let bad = |reason: String| Error::BadCgroupsPath {
            path: self.path.display().to_string(),
            reason,
        };
        let roots = self.v1_mounts.iter().chain(self.unified_mount.as_ref());
        let dirs = self.dirs();
        for dir in &dirs {
            if roots.clone().any(|r| r == dir) {
                return Err(bad(format!(
                    "{} is the root cgroup of its hierarchy; a container needs a cgroup of its own",
                    dir.display()
                )));
            }
        }
        for own in own_dirs(layout)? {
            if let Some(dir) = dirs.iter().find(|d| own.starts_with(d)) {
                return Err(bad(format!(
                    "{} is the runtime's own cgroup or holds it ({})",
                    dir.display(),
                    own.display()
                )));
            }
        }
        for dir in &dirs {
            let mut pids = Vec::new();
            fs::collect_pids(dir, &mut pids)?;
            if !pids.is_empty() {
                return Err(bad(format!(
                    "container's cgroup is not empty: {} process(es) found (in {})",
                    pids.len(),
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Refuse to signal through a cgroup that is a hierarchy's root or holds the runtime
    /// itself (a state written before create refused such cgroups).
    fn ensure_not_runtimes(&self, pids: &[i32]) -> Result<()> {
        let roots: Vec<&PathBuf> = self.v1_mounts.iter().chain(&self.unified_mount).collect();
        let me = std::process::id() as i32;
        let root = self.dirs().into_iter().find(|d| roots.contains(&d));
        if root.is_some() || pids.contains(&me) {
            return Err(Error::Path {
                path: root.unwrap_or_else(|| self.path.clone()),
                reason: "is a hierarchy's root or holds the runtime itself, not the \
                         container's own cgroup: not signalling its processes"
                    .into(),
            });
        }
        Ok(())
    }

    /// The container's processes in its cgroup (and below), and the others.
    pub(crate) fn owned_pids(&self) -> Result<(Vec<i32>, Vec<i32>)> {
        let pids = self.pids()?;
        self.ensure_not_runtimes(&pids)?;
        Ok(match &self.owner_pid_ns {
            Some(ns) => pids.into_iter().partition(|p| ns.holds(*p)),
            None => (pids, Vec::new()),
        })
    }

    /// An error naming the processes that keep the cgroup from being removed.
    pub(crate) fn foreign_error(&self, foreign: &[i32]) -> Error {
        Error::Path {
            path: self.path.clone(),
            reason: format!(
                "holds {} process(es) not started for the container ({foreign:?}); \
                 they were not signalled and the cgroup was not removed",
                foreign.len()
            ),
        }
    }
}

/// The runtime's own cgroup directory on every mounted hierarchy.
fn own_dirs(layout: &Layout) -> Result<Vec<PathBuf>> {
    let own = own_cgroups()?;
    let mut dirs: Vec<PathBuf> = layout
        .v1
        .iter()
        .filter_map(|m| own.v1_path(&m.controllers).map(|p| m.dir_for(p)))
        .collect();
    if let (Some(u), Some(p)) = (&layout.unified, own.v2.as_deref()) {
        dirs.push(u.dir_for(Path::new(p)));
    }
    Ok(dirs)
}
