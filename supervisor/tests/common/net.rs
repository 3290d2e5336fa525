//! A daemon in a network namespace of the test's own that outlives it (bind-mounted under the
//! test's directory, so a restarted daemon finds its bridges again), and a guard that removes
//! every container, stops the daemon and unmounts the namespaces when the test ends, passed
//! or failed.
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// Makes a network namespace bind-mounted at `path`, `lo` up.
pub fn persistent_netns(path: &Path) {
    std::fs::File::create(path).unwrap();
    let target = path.to_path_buf();
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare net");
        let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        nix::mount::mount(
            Some(own.as_str()),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .expect("bind netns");
    })
    .join()
    .unwrap();
    let up = Command::new("nsenter")
        .arg(format!("--net={}", path.display()))
        .args(["ip", "link", "set", "lo", "up"])
        .output()
        .expect("nsenter (util-linux) missing");
    assert!(up.status.success(), "lo up: {up:?}");
}

/// Unmounts everything mounted at or under `dir` (deepest first).
pub fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// `berth daemon` in the namespace at `<dir>/daemon.netns`; dropped, it removes every
/// container, stops the daemon and unmounts the namespaces.
pub struct NetEngine {
    pub host: String,
    pub dir: tempfile::TempDir,
    pub netns: PathBuf,
    flags: Vec<String>,
    daemon: Option<Daemon>,
}

impl NetEngine {
    /// Seeds `busybox` and starts the daemon with `flags`.
    pub fn start(flags: &[&str]) -> NetEngine {
        let dir = tempfile::tempdir().unwrap();
        seed(
            &dir.path().join("data"),
            "busybox",
            &busybox_image("net", 1),
        );
        let netns = dir.path().join("daemon.netns");
        persistent_netns(&netns);
        let mut e = NetEngine {
            host: String::new(),
            dir,
            netns,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            daemon: None,
        };
        e.start_daemon();
        e
    }

    fn start_daemon(&mut self) {
        let enter = format!("--net={}", self.netns.display());
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        let d = start_wrapped(self.dir.path(), &["nsenter", &enter, "--"], &flags);
        self.host = d.host.clone();
        self.daemon = Some(d);
    }

    /// The daemon's pid (nsenter execs it).
    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().unwrap().child.id()
    }

    /// Stops the daemon (containers live on) and starts a new one in the same namespace.
    pub fn restart_daemon(&mut self) {
        self.daemon.take();
        self.start_daemon();
    }

    /// kill -9 of the daemon, then a new one.
    pub fn kill_daemon_and_restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.child.kill();
            let _ = d.child.wait();
            std::mem::forget(d);
        }
        self.start_daemon();
    }
}

impl Drop for NetEngine {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            let ids = stdout(&berth(&self.host, &["ps", "-aq"]));
            for id in ids.split_whitespace() {
                let _ = berth(&self.host, &["rm", "-f", id]);
            }
        }
        self.daemon.take();
        unmount_under(self.dir.path());
    }
}

/// Removes every container of the daemon at `host` and unmounts what is left under `dir`
/// when dropped; declare it after the daemon, so that it goes first.
pub struct Cleanup {
    host: String,
    dir: PathBuf,
}

impl Cleanup {
    pub fn new(host: &str, dir: &Path) -> Cleanup {
        Cleanup {
            host: host.to_string(),
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = stdout(&berth(&self.host, &["ps", "-aq"]));
        for id in ids.split_whitespace() {
            let _ = berth(&self.host, &["rm", "-f", id]);
        }
        unmount_under(&self.dir.join("exec"));
    }
}

/// `bin run -d --name NAME -v VOLUME EXTRA… busybox httpd -f -p 80 -h /www`: a web server
/// serving the directory of `volume` (`HOST:/www:ro`).
pub fn httpd(bin: &str, host: &str, name: &str, volume: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "-v", volume];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "busybox", "busybox", "httpd", "-f", "-p", "80", "-h", "/www",
    ]);
    ok(cli(bin, host, &args));
}
