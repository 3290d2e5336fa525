//! Small file helpers for cgroupfs: every error carries the path (and the value written).
use super::{Error, Result};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// A file's value as a number; `max` (v2) and v1's "unlimited" become `u64::MAX`.
pub fn read_u64(path: &Path) -> Result<u64> {
    let s = read(path)?;
    let s = s.trim();
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse().map_err(|_| Error::Path {
        path: path.to_path_buf(),
        reason: format!("expected a number, found {s:?}"),
    })
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, …).
pub fn keyed(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?, it.next()?.parse().ok()?))
        })
        .collect()
}

/// mkdir every missing component of `dir` (existing ones are left alone), recording what was
/// created; `init` runs on each new directory (v1 cpuset needs its cpus/mems copied down).
pub fn mkdir_chain(
    dir: &Path,
    created: &mut Vec<PathBuf>,
    init: impl Fn(&Path) -> Result<()>,
) -> Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => created.push(d.to_path_buf()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(Error::Io {
                    op: "mkdir",
                    path: d.to_path_buf(),
                    source,
                })
            }
        }
        init(d)?;
    }
    Ok(())
}

/// rmdir, retrying on EBUSY (processes still exiting) until `within` has passed.
pub fn rmdir_retry(dir: &Path, within: Duration) -> Result<()> {
    remove_one(dir, Instant::now() + within)
}

fn remove_one(dir: &Path, deadline: Instant) -> Result<()> {
    let mut delay = Duration::from_millis(2);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(50));
            }
            Err(source) => {
                return Err(Error::Io {
                    op: "rmdir",
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Remove `dir` and every cgroup below it, deepest first.
pub fn remove_tree(dir: &Path, deadline: Instant) -> Result<()> {
    // Mostly it has no sub-cgroup and no process left: one rmdir, not a directory listing.
    // Else (EBUSY) the walk below removes the sub-cgroups and retries.
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                op: "read dir",
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path(), deadline)?;
        }
    }
    remove_one(dir, deadline)
}

/// The pids in `dir`'s cgroup.procs and in every sub-cgroup's.
pub fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = match std::fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                op: "read",
                path: dir.join("cgroup.procs"),
                source,
            })
        }
    };
    out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&entry.path(), out)?;
            }
        }
    }
    Ok(())
}

/// Poll `cond` every few ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(1);
    loop {
        if cond()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}
