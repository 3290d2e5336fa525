//! Putting a new process into the container's cgroup without the kernel's global lock.
//!
//! Writing a pid to `cgroup.procs` takes `cgroup_threadgroup_rwsem` for writing, and that
//! waits for an RCU grace period: 5–15 ms on a small VM, the largest single cost of a
//! container's start. Two ways into a cgroup skip that lock:
//! - cgroup2: `clone3(CLONE_INTO_CGROUP)`, the process is born in the cgroup (Linux 5.7);
//! - v1: the (single-threaded) process writes `0` to each hierarchy's `tasks` file itself.
//!
//! The cgroup therefore exists before the process does (a container's limits are written once
//! its init's mounts are done, as runc does): `Doors` are opened on it, the process is cloned
//! through them and walks through the v1 ones first thing (`walk_in`). For exec, the
//! intermediate child that enters the namespaces is born in the cgroup too, so an exec into a
//! container at its pids limit needs two free slots for a moment, not one.
use super::sub::join_error;
use super::{Cgroup, Error, Result, SubCgroups};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// linux/sched.h (libc's c_int constant overflows).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Open ends of a cgroup for a process about to be made: its cgroup2 directory and the
/// `tasks` file of each v1 hierarchy. Close-on-exec; the new process inherits them.
pub struct Doors {
    cgroup2: Option<(PathBuf, OwnedFd)>,
    /// Written `0` by the new process: v1 `tasks` files (and cgroup2's `cgroup.procs` where
    /// clone3 cannot place it).
    walk: Vec<(PathBuf, std::fs::File)>,
}

impl Cgroup {
    /// The doors into this cgroup (or into the sub-cgroups `subs` names, for exec).
    pub fn doors(&self, subs: &SubCgroups) -> Result<Doors> {
        self.check_subs(subs)?;
        let mut walk = Vec::new();
        for dir in self.v1_dirs() {
            let tasks = dir.join(self.sub_for(&dir, subs)).join("tasks");
            walk.push((tasks.clone(), open_for_write(&tasks)?));
        }
        let cgroup2 = match &self.unified {
            Some(u) => {
                let dir = u.join(self.sub_for(u, subs));
                let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
                let fd = nix::fcntl::open(&dir, flags, Mode::empty())
                    .map_err(|e| join_error(&dir, &e.into()))?;
                Some((dir, fd))
            }
            None => None,
        };
        Ok(Doors { cgroup2, walk })
    }
}

impl Doors {
    /// fork(2) with namespace `flags`, the child born in the cgroup2 directory. Returns the
    /// pid (0 in the child), which must `walk_in` before anything else.
    pub fn clone(&mut self, flags: libc::c_ulong) -> crate::Result<i32> {
        let Some((dir, fd)) = &self.cgroup2 else {
            return crate::process::fork_with(flags);
        };
        // SAFETY: clone_args is plain integers; zero is "unused" for every field.
        let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
        args.flags = flags | CLONE_INTO_CGROUP;
        args.exit_signal = libc::SIGCHLD as u64;
        args.cgroup = fd.as_raw_fd() as u64;
        // SAFETY: clone3 without CLONE_VM is fork: the child gets a copy of this (single-
        // threaded) process and returns 0 here.
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut libc::clone_args,
                std::mem::size_of::<libc::clone_args>(),
            )
        };
        if r >= 0 {
            return Ok(r as i32);
        }
        match nix::errno::Errno::last() {
            // Before 5.3 (no clone3) or 5.7 (no cgroup field): the child walks into cgroup2
            // too, by its cgroup.procs (the slow way), before it goes on.
            nix::errno::Errno::ENOSYS | nix::errno::Errno::E2BIG => {
                let procs = dir.join("cgroup.procs");
                self.walk.push((procs.clone(), open_for_write(&procs)?));
                crate::process::fork_with(flags)
            }
            e => Err(crate::Error::sys("clone3 into", dir.display(), e)),
        }
    }

    /// In the new process, before it does anything else: move itself (its only thread) into
    /// every v1 hierarchy, then close the doors.
    pub fn walk_in(self) -> Result<()> {
        for (tasks, mut file) in self.walk {
            file.write_all(b"0").map_err(|source| Error::Write {
                path: tasks,
                value: "0".into(),
                source,
            })?;
        }
        Ok(())
    }
}

fn open_for_write(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| join_error(path, &e))
}
