//! Shared pieces of the `dropin_*` tests: berth-runtime under real engines (containerd, dockerd,
//! podman), each compared with Debian's `runc` under the same engine.
//!
//! Every test binary starts its engine once (lazily, on first use), shares it between its tests
//! and tears it down when the process exits (`atexit`), so a filtered run leaves nothing behind
//! either. Engine daemons get `PR_SET_PDEATHSIG` so a killed test run does not leak them.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The image every test runs, built from Debian's `busybox-static`.
pub const IMAGE: &str = "berth.test/busybox:latest";

/// Debian's runc, the reference every engine is compared against.
pub const RUNC: &str = "/usr/sbin/runc";

/// The berth-runtime binary under test: `$BERTH_RUNTIME_BIN`, else the workspace's
/// `target/release/berth-runtime` (CI runs `cargo build --release --workspace` first).
pub fn berth_runtime() -> PathBuf {
    let path = match std::env::var_os("BERTH_RUNTIME_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/berth-runtime"),
    };
    assert!(
        path.exists(),
        "{} missing: `cargo build --release -p berth-runtime` or set BERTH_RUNTIME_BIN",
        path.display()
    );
    path.canonicalize()
        .expect("canonicalize berth-runtime path")
}

/// Which OCI runtime an engine is told to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Berth,
    Runc,
}

impl Flavor {
    pub fn binary(self) -> PathBuf {
        match self {
            Flavor::Berth => berth_runtime(),
            Flavor::Runc => PathBuf::from(RUNC),
        }
    }
}

/// Fails loudly when a tool the test needs is not installed.
pub fn require(tool: &str, package: &str) {
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(tool).exists());
    assert!(
        found,
        "{tool} not found on PATH: apt-get install -y {package}"
    );
}

/// A fresh private directory under the system temp dir.
pub fn private_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("berth-dropin-{name}-{}", std::process::id()));
    remove_dir(&dir);
    std::fs::create_dir_all(&dir).expect("create private dir");
    dir
}

/// Unmounts whatever is mounted under `dir`, then removes it.
pub fn remove_dir(dir: &Path) {
    unmount_under(dir);
    let _ = std::fs::remove_dir_all(dir);
}

/// Lazily unmounts every mount point under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    berth_integration::host::unmount_under(dir);
}

/// The cgroup parent (absolute, cgroupfs) this test binary's containers go under.
pub fn cgroup_parent(name: &str) -> String {
    format!("/berth-dropin-{name}-{}", std::process::id())
}

/// Removes `parent` (from [`cgroup_parent`]) and every cgroup below it, in every hierarchy.
pub fn remove_cgroups(parent: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let dir = h.path().join(parent.trim_start_matches('/'));
        if dir.is_dir() && !h.path().is_symlink() {
            remove_cgroup_tree(&dir);
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten() {
            if child.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&child.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Builds a docker-archive image tar (`manifest.json` + config + one `layer.tar`) holding a
/// busybox rootfs, tagged [`IMAGE`]. `docker load`, `podman load` and `ctr images import` all
/// read this format. Returns the tar's path (inside `dir`).
pub fn busybox_image(dir: &Path) -> PathBuf {
    let img = dir.join("image");
    let rootfs = img.join("rootfs");
    berth_integration::rootfs::busybox(&rootfs).expect("busybox rootfs");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(img.join("layer.tar"))
            .arg("."),
    );
    let sum = run_ok(Command::new("sha256sum").arg(img.join("layer.tar")));
    let digest = text(&sum.stdout)
        .split(' ')
        .next()
        .expect("sha256sum output")
        .to_owned();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "berth dropin test"}],
    });
    std::fs::write(img.join("config.json"), config.to_string()).expect("write image config");
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": [IMAGE], "Layers": ["layer.tar"]}]);
    std::fs::write(img.join("manifest.json"), manifest.to_string()).expect("write manifest");
    let tar = img.join("image.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&img)
            .arg("-cf")
            .arg(&tar)
            .args(["manifest.json", "config.json", "layer.tar"]),
    );
    std::fs::remove_dir_all(&rootfs).expect("remove rootfs");
    std::fs::remove_file(img.join("layer.tar")).expect("remove layer.tar");
    tar
}

/// Runs `cmd` with a time limit, stdin from /dev/null; panics if it cannot be spawned or hangs.
pub fn output(cmd: &mut Command) -> Output {
    output_within(cmd, Duration::from_secs(60))
}

pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    wait_within(child, limit, &format!("{cmd:?}"))
}

/// Waits for `child`'s output, killing it (and failing) after `limit`.
pub fn wait_within(child: Child, limit: Duration, what: &str) -> Output {
    let pid = child.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: signalling a child we spawned and have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        true
    });
    let out = child.wait_with_output().expect("wait for child");
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let timed_out = watchdog.join().unwrap_or(false);
    assert!(
        !timed_out,
        "{what} hung for more than {limit:?}; stderr: {}",
        text(&out.stderr)
    );
    out
}

/// Runs `cmd` and asserts it succeeded.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): stdout {} stderr {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `shell_cmd` under `script` so it gets a terminal of its own; returns its output
/// (without CRs) and exit code. script's stdin stays open and silent: at EOF script would
/// type ^D (echoed as `^@`) into the terminal at a random moment.
pub fn with_tty(shell_cmd: &str) -> (String, Option<i32>) {
    require("script", "util-linux");
    let mut child = Command::new("script")
        .args(["-qec", shell_cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    let stdin = child.stdin.take();
    let out = wait_within(child, Duration::from_secs(60), shell_cmd);
    drop(stdin);
    (text(&out.stdout).replace('\r', ""), out.status.code())
}

/// Quotes `s` for `sh -c`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Spawns a daemon that dies with the test process, logging to `log`.
///
/// `PR_SET_PDEATHSIG` fires when the spawning *thread* exits, and test threads end with their
/// test, so the spawn happens on a thread that lives as long as the process.
pub fn spawn_daemon(cmd: Command, log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("create daemon log");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut cmd = cmd;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .spawn()
            .map_err(|e| format!("spawn {cmd:?}: {e}"));
        let _ = tx.send(child);
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .expect("daemon spawner thread")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `ready` until it holds, failing with `what()` after `limit`.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out: {}", what());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERMs a daemon, SIGKILLs it if it has not exited after `grace`.
pub fn stop_daemon(child: &mut Child, grace: Duration) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Teardown closures run once at process exit (after every test of the binary).
static AT_EXIT: Mutex<Vec<Box<dyn FnOnce() + Send>>> = Mutex::new(Vec::new());

/// Registers `f` to run when the test binary exits.
pub fn at_exit(f: impl FnOnce() + Send + 'static) {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registering a plain extern "C" fn.
        unsafe { libc::atexit(run_at_exit) };
    });
    AT_EXIT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(f));
}

extern "C" fn run_at_exit() {
    let hooks = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()));
    for hook in hooks.into_iter().rev() {
        // A panic must not unwind across the C boundary.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook));
    }
}

/// Both flavors' results must agree; a mismatch message shows both.
pub fn assert_same<T: PartialEq + std::fmt::Debug>(what: &str, berth: &T, runc: &T) {
    assert_eq!(
        berth, runc,
        "{what}: berth-runtime (left) differs from runc (right)"
    );
}

/// Like [`assert_same`] for multi-line output; the message lists the lines that differ.
pub fn assert_same_text(what: &str, berth: &str, runc: &str) {
    if berth == runc {
        return;
    }
    let only = |a: &str, b: &str| -> Vec<String> {
        let b: Vec<&str> = b.lines().collect();
        a.lines()
            .filter(|l| !b.contains(l))
            .map(str::to_owned)
            .collect()
    };
    panic!(
        "{what}: berth-runtime differs from runc\nonly with berth-runtime: {:?}\nonly with runc: {:?}\n\
         berth-runtime:\n{berth}\nrunc:\n{runc}",
        only(berth, runc),
        only(runc, berth)
    );
}

/// A shell script printing facts about the container that must not depend on the runtime:
/// identity, capabilities, hostname, mounts (point and type), devices, limits, cwd, env.
pub const PROBE: &str = "id; hostname | wc -c; pwd; \
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status; \
awk '{print $2, $3}' /proc/self/mounts | sort; ls /dev | sort; \
ulimit -n; ulimit -u; cat /proc/self/oom_score_adj; umask; env | sort | grep -v ^HOSTNAME=";
