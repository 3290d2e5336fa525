//! OOM kills in a container's memory cgroup, reported as TaskOOM: a v1 eventfd on
//! `memory.oom_control`, or an inotify watch of v2's `memory.events` (`oom_kill` count) that
//! ends when `cgroup.events` says the cgroup is empty.
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::stats::{v1_dir, CGROUP_ROOT};

/// A watch of a container's memory cgroup for OOM kills, made at create while the init waits
/// (so its cgroup is known and no kill of this container is counted in the baseline), and
/// started once the container runs.
pub enum Watch {
    V2 {
        inotify: OwnedFd,
        events: PathBuf,
        seen: u64,
    },
    V1 {
        efd: OwnedFd,
        dir: PathBuf,
        seen: Option<u64>,
    },
}

impl Watch {
    /// The watch of the memory cgroup in `table` (a `/proc/<pid>/cgroup` text).
    pub fn prepare(table: &str) -> std::io::Result<Watch> {
        if Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
            let path = table
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or("/");
            let events = Path::new(CGROUP_ROOT)
                .join(path.trim_start_matches('/'))
                .join("memory.events");
            let inotify = watch_v2(&events)?;
            let seen = oom_kills(&events).unwrap_or(0);
            return Ok(Watch::V2 {
                inotify,
                events,
                seen,
            });
        }
        let dir =
            v1_dir(table, "memory").ok_or_else(|| std::io::Error::other("no memory cgroup"))?;
        let efd = register_v1(&dir)?;
        let seen = oom_kills(&dir.join("memory.oom_control"));
        Ok(Watch::V1 { efd, dir, seen })
    }

    /// Call `on_oom` each time the kernel OOM-kills a process in the cgroup, from a small
    /// thread that ends when the cgroup goes away (v2: when it has no process left).
    pub fn spawn(self, on_oom: impl Fn() + Send + 'static) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("oom".into())
            .stack_size(64 * 1024)
            .spawn(move || match self {
                Watch::V2 {
                    inotify,
                    events,
                    seen,
                } => v2_loop(inotify, &events, seen, on_oom),
                Watch::V1 { efd, dir, seen } => v1_loop(efd, &dir, seen, on_oom),
            })
            .map(|_| ())
    }
}

/// An eventfd the kernel signals on each OOM of the v1 cgroup at `dir` (and on its removal).
fn register_v1(dir: &Path) -> std::io::Result<OwnedFd> {
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let efd = unsafe { OwnedFd::from_raw_fd(efd) };
    let control = std::fs::File::open(dir.join("memory.oom_control"))?;
    std::fs::write(
        dir.join("cgroup.event_control"),
        format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
    )?;
    Ok(efd)
}

/// The eventfd fires on every OOM *event* of the cgroup — hundreds while one starving process
/// dies — so where the kernel counts kills (`oom_kill` in memory.oom_control, like v2's
/// memory.events) `on_oom` runs once per kill; `seen` is that count when the watch began.
fn v1_loop(efd: OwnedFd, dir: &Path, mut seen: Option<u64>, on_oom: impl Fn()) {
    let mut file = std::fs::File::from(efd);
    let mut count = [0u8; 8];
    let control = dir.join("memory.oom_control");
    while file.read_exact(&mut count).is_ok() {
        let removed = !dir.exists();
        match (seen, oom_kills(&control)) {
            (Some(before), Some(_)) => {
                let now = kills_after(&control, before);
                if now > before {
                    on_oom();
                }
                seen = Some(now);
            }
            // No count (an old kernel, or the cgroup just removed): the eventfd also fires
            // once at removal, and signals not read yet add up, so an OOM followed at once by
            // the container's deletion reads as 2.
            _ => {
                if u64::from_ne_bytes(count) > u64::from(removed) {
                    on_oom();
                }
            }
        }
        if removed {
            return;
        }
    }
}

/// An inotify fd watching `memory.events` and its sibling `cgroup.events`: kernfs sends no
/// event when a cgroup is removed, so the end of the watch is `cgroup.events`' `populated 0`.
fn watch_v2(events: &Path) -> std::io::Result<OwnedFd> {
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    for file in [events.to_path_buf(), events.with_file_name("cgroup.events")] {
        let path = std::ffi::CString::new(file.as_os_str().as_encoded_bytes())
            .map_err(std::io::Error::other)?;
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) } < 0 {
            let e = std::io::Error::last_os_error();
            return Err(std::io::Error::new(
                e.kind(),
                format!("inotify watch {}: {e}", file.display()),
            ));
        }
    }
    Ok(fd)
}

/// The kernel signals an OOM before it has picked and killed a victim: the `oom_kill` count of
/// v1's `control` once it passes `before`, given up to 100 ms (else `before`: nothing was killed).
fn kills_after(control: &Path, before: u64) -> u64 {
    for _ in 0..20 {
        match oom_kills(control) {
            Some(now) if now > before => return now,
            Some(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            None => break,
        }
    }
    before
}

/// The `oom_kill` count of v2's memory.events or v1's memory.oom_control.
fn oom_kills(events: &Path) -> Option<u64> {
    std::fs::read_to_string(events).ok()?.lines().find_map(|l| {
        l.strip_prefix("oom_kill ")
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Whether the cgroup of `events` still holds a process (false once it is empty or gone).
fn populated(events: &Path) -> bool {
    std::fs::read_to_string(events.with_file_name("cgroup.events"))
        .is_ok_and(|s| s.lines().any(|l| l == "populated 1"))
}

/// Report each rise of `events`' `oom_kill` above `seen`; ends when the cgroup has no process
/// left (an OOM kill of its last one is reported first) or is gone.
fn v2_loop(inotify: OwnedFd, events: &Path, mut seen: u64, on_oom: impl Fn()) {
    let mut file = std::fs::File::from(inotify);
    let mut buf = [0u8; 512];
    loop {
        // Emptiness first, the count second: a kill that empties the cgroup is counted
        // before `populated 0` shows.
        let empty = !populated(events);
        let Some(now) = oom_kills(events) else { return };
        if now > seen {
            seen = now;
            on_oom();
        }
        if empty || !file.read(&mut buf).is_ok_and(|n| n > 0) {
            return;
        }
    }
}
