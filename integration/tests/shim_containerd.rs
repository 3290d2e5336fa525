//! containerd-shim-berth-v2 under Debian's real containerd 1.6 and `ctr`.
//!
//! Each test starts its own containerd (private root, state, socket; CRI disabled), imports a
//! busybox image built from `busybox-static`, and drives containers through
//! `ctr --runtime io.containerd.berth.v2`. Every test runs twice: with the shim's default
//! runtime (`berth-runtime`) and with Debian's `runc` (through `--runtime-config-path`).
//! The shim and `berth-runtime` are taken from the cargo target dir, which is put first on
//! containerd's PATH (build the workspace first: `cargo build --workspace`).
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_integration::host::process_alive;

const RUNTIME: &str = "io.containerd.berth.v2";
const IMAGE: &str = "berth.test/busybox:latest";

/// The cargo target profile dir holding the shim (`target/debug`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug/deps/..")
        .to_owned();
    let shim = dir.join("containerd-shim-berth-v2");
    assert!(
        shim.exists(),
        "{} missing: run `cargo build --workspace` first",
        shim.display()
    );
    dir
}

fn require(tool: &str) {
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(tool).exists());
    assert!(
        found,
        "{tool} not found on PATH: apt-get install -y containerd runc"
    );
}

/// Which runtime binary the shim runs.
#[derive(Clone, Copy, Debug)]
enum Flavor {
    Berth,
    Runc,
}

/// A private containerd with the test image imported.
struct Containerd {
    dir: PathBuf,
    /// A namespace of its own: containerd names cgroups after it, and tests run in parallel.
    ns: String,
    child: Option<Child>,
    flavor: Flavor,
}

impl Containerd {
    fn start(name: &str, flavor: Flavor) -> Containerd {
        static N: AtomicU32 = AtomicU32::new(0);
        require("containerd");
        require("ctr");
        let dir = std::env::temp_dir().join(format!(
            "berth-shim-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{d}/containerd.sock"
"#,
            d = dir.display()
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        // Private runtime state roots, one per flavor.
        let runc = format!("BinaryName = \"runc\"\nRoot = \"{}/runc\"\n", dir.display());
        std::fs::write(dir.join("runc.toml"), runc).unwrap();
        std::fs::write(
            dir.join("berth.toml"),
            format!("Root = \"{}/berth\"\n", dir.display()),
        )
        .unwrap();
        let mut c = Containerd {
            ns: dir.file_name().unwrap().to_string_lossy().into_owned(),
            dir,
            child: None,
            flavor,
        };
        c.launch();
        c.import_image();
        c
    }

    fn sock(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    fn launch(&mut self) {
        let path = format!(
            "{}:{}",
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop_daemon(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    fn import_image(&self) {
        let img = self.dir.join("image");
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
        let digest = String::from_utf8_lossy(&sum.stdout)
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]},
        });
        std::fs::write(img.join("config.json"), config.to_string()).unwrap();
        let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": [IMAGE], "Layers": ["layer.tar"]}]);
        std::fs::write(img.join("manifest.json"), manifest.to_string()).unwrap();
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&img)
                .arg("-cf")
                .arg(img.join("image.tar"))
                .args(["manifest.json", "config.json", "layer.tar"]),
        );
        let out = self.ctr(&["images", "import", img.join("image.tar").to_str().unwrap()]);
        assert!(
            out.status.success(),
            "import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_dir_all(&rootfs).unwrap();
    }

    fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a")
            .arg(self.sock())
            .args(["-n", &self.ns])
            .args(args);
        cmd
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }

    /// `ctr run` arguments selecting the shim and this flavor's runtime.
    fn run_args(&self) -> Vec<String> {
        let config = match self.flavor {
            Flavor::Runc => "runc.toml",
            Flavor::Berth => "berth.toml",
        };
        let config = self.dir.join(config).to_string_lossy().into_owned();
        vec![
            "run".to_owned(),
            "--runtime".into(),
            RUNTIME.into(),
            "--runtime-config-path".into(),
            config,
        ]
    }

    /// `ctr run [extra] IMAGE id cmd...`, stdin from `input`.
    fn run(&self, extra: &[&str], id: &str, cmd: &[&str], input: Option<&str>) -> Output {
        let mut args = self.run_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(IMAGE.into());
        args.push(id.into());
        args.extend(cmd.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = self
            .ctr_cmd(&args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ctr run");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn task_status(&self, id: &str) -> String {
        let out = self.ctr(&["tasks", "ls"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_owned()
    }

    fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.task_status(id);
            if s == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "task {id}: status {s:?}, want {want}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn bundle(&self, id: &str) -> PathBuf {
        self.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.ns)
            .join(id)
    }

    /// Removes a container and its task whatever their state.
    fn remove(&self, id: &str) {
        let _ = self.ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(self.task_status(id).as_str(), "STOPPED" | "") && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.ctr(&["tasks", "delete", id]);
        let _ = self.ctr(&["containers", "delete", id]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let out = self.ctr(&["containers", "ls", "-q"]);
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                self.remove(id.trim());
            }
            let _ = self.ctr(&["images", "rm", IMAGE]);
        }
        self.stop_daemon();
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        remove_namespace_cgroups(&self.ns);
    }
}

/// containerd puts a task's cgroup at `/<namespace>/<id>`: the runtime removes the task's, this
/// removes the namespace's (left in place if a task's is still there).
fn remove_namespace_cgroups(ns: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let _ = std::fs::remove_dir(h.path().join(ns));
    }
}

/// Lazily unmounts whatever is still mounted under `dir` (deepest first).
fn unmount_under(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let c = std::ffi::CString::new(p).unwrap();
        // SAFETY: umount2 with a valid C string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Generates one test per flavor.
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn berth_runtime() {
                super::$body(super::Flavor::Berth);
            }
            #[test]
            fn runc() {
                super::$body(super::Flavor::Runc);
            }
        }
    };
}

both!(
    shim_attached_output_and_exit_codes,
    attached_output_and_exit_codes
);
fn attached_output_and_exit_codes(flavor: Flavor) {
    let ctd = Containerd::start("attached", flavor);
    let out = ctd.run(
        &["--rm"],
        "ok",
        &[
            "sh",
            "-c",
            "echo out; echo err >&2; seq 1 20000 | tail -n 1",
        ],
        None,
    );
    assert_eq!(
        text(&out.stdout),
        "out\n20000\n",
        "stderr: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr), "err\n");
    assert_eq!(out.status.code(), Some(0));

    let out = ctd.run(&["--rm"], "fails", &["sh", "-c", "exit 1"], None);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));

    // SIGTERM ends an init with 143. It has to be outside a pid namespace of its own (here it
    // joins the test's): the init of one ignores every signal it has no handler for, under runc
    // as under berth-runtime (the kernel's rule).
    let host_pid_ns = format!("pid:/proc/{}/ns/pid", std::process::id());
    let out = ctd.run(
        &["-d", "--with-ns", &host_pid_ns],
        "term",
        &["sleep", "1000"],
        None,
    );
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    ctd.wait_status("term", "RUNNING");
    let kill = ctd.ctr(&["tasks", "kill", "-s", "SIGTERM", "term"]);
    assert!(kill.status.success(), "kill: {}", text(&kill.stderr));
    ctd.wait_status("term", "STOPPED");
    let del = ctd.ctr(&["tasks", "delete", "term"]);
    assert!(
        text(&del.stderr).contains("exit code 143"),
        "delete: {}",
        text(&del.stderr)
    );
    assert!(ctd.ctr(&["containers", "delete", "term"]).status.success());

    // Output written right before exit is never truncated.
    let out = ctd.run(&["--rm"], "big", &["sh", "-c", "seq 1 100000"], None);
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 100000);
    assert_eq!(lines.last(), Some(&"100000"));
}

both!(shim_stdin_piped, stdin_piped);
fn stdin_piped(flavor: Flavor) {
    let ctd = Containerd::start("stdin", flavor);
    let out = ctd.run(
        &["--rm"],
        "cat",
        &["sh", "-c", "read a; read b; echo \"$b $a\"; cat | wc -c"],
        Some("one\ntwo\nrest\n"),
    );
    assert_eq!(
        text(&out.stdout),
        "two one\n5\n",
        "stderr: {}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

both!(shim_terminal, terminal);
fn terminal(flavor: Flavor) {
    let ctd = Containerd::start("tty", flavor);
    // ctr -t needs a terminal of its own: give it the slave of a pty sized 33x77.
    let (mut master, slave) = openpty(33, 77);
    let mut args = ctd.run_args();
    args.extend(["--rm", "-t", IMAGE, "tty1", "sh", "-c", TTY_SCRIPT].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = ctd
        .ctr_cmd(&args)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    set_nonblocking(&master);
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let out = text(&out);
    assert!(out.contains("/dev/pts/0"), "tty output: {out:?}");
    assert!(
        out.contains("size 33 77"),
        "tty size not propagated: {out:?}"
    );
    assert_eq!(status.code(), Some(7));
}

/// Waits for ctr's ResizePty (it comes right after Start), then prints the size.
const TTY_SCRIPT: &str = "tty; for i in $(seq 50); do s=$(stty size 2>/dev/null); case \"$s\" in *[1-9]*) break;; esac; sleep 0.1; done; echo \"size $s\"; exit 7";

fn openpty(rows: u16, cols: u16) -> (std::fs::File, OwnedFd) {
    let (mut m, mut s) = (0, 0);
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two fds.
    let rc = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: fresh fds we own.
    unsafe { (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

fn set_nonblocking(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on our fd.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

both!(shim_detached_lifecycle, detached_lifecycle);
fn detached_lifecycle(flavor: Flavor) {
    let ctd = Containerd::start("detached", flavor);
    let mut events = ctd
        .ctr_cmd(&["events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let id = "life";
    let out = ctd.run(&["-d"], id, &["sleep", "1000"], None);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    ctd.wait_status(id, "RUNNING");

    // Several execs at once, with exact output.
    let execs: Vec<Child> = (0..3)
        .map(|i| {
            ctd.ctr_cmd(&[
                "tasks",
                "exec",
                "--exec-id",
                &format!("e{i}"),
                id,
                "sh",
                "-c",
                &format!("echo exec{i}; exit {i}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (i, c) in execs.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert_eq!(
            text(&out.stdout),
            format!("exec{i}\n"),
            "stderr: {}",
            text(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(i as i32));
    }

    // An exec killed with SIGTERM exits 143; an exec id in use is refused.
    let mut long = ctd
        .ctr_cmd(&["tasks", "exec", "--exec-id", "long", id, "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text(&ctd.ctr(&["tasks", "ps", id]).stdout).contains("long") {
        assert!(Instant::now() < deadline, "exec long never showed in ps");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dup = ctd.ctr(&["tasks", "exec", "--exec-id", "long", id, "true"]);
    assert!(!dup.status.success());
    assert!(
        text(&dup.stderr).contains("already exists"),
        "dup exec: {}",
        text(&dup.stderr)
    );
    let out = ctd.ctr(&["tasks", "kill", "--exec-id", "long", "-s", "SIGTERM", id]);
    assert!(out.status.success(), "kill exec: {}", text(&out.stderr));
    assert_eq!(long.wait().unwrap().code(), Some(143));

    // Pause / resume, metrics.
    let out = ctd.ctr(&["tasks", "pause", id]);
    assert!(out.status.success(), "pause: {}", text(&out.stderr));
    ctd.wait_status(id, "PAUSED");
    let out = ctd.ctr(&["tasks", "resume", id]);
    assert!(out.status.success(), "resume: {}", text(&out.stderr));
    ctd.wait_status(id, "RUNNING");
    let metrics = ctd.ctr(&["tasks", "metrics", id]);
    assert!(
        metrics.status.success(),
        "metrics: {}",
        text(&metrics.stderr)
    );
    let m = text(&metrics.stdout);
    assert!(
        m.contains("memory.usage_in_bytes") || m.contains("memory.usage"),
        "metrics: {m}"
    );
    assert!(m.contains("pids.current"), "metrics: {m}");

    // SIGKILL the init: 137.
    assert!(ctd
        .ctr(&["tasks", "kill", "-s", "SIGKILL", id])
        .status
        .success());
    ctd.wait_status(id, "STOPPED");
    let again = ctd.ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
    assert!(!again.status.success(), "kill of an exited task must fail");
    let del = ctd.ctr(&["tasks", "delete", id]);
    assert!(del.status.success(), "delete: {}", text(&del.stderr));
    assert!(
        text(&del.stderr).contains("exit code 137"),
        "delete: {}",
        text(&del.stderr)
    );
    assert!(ctd.task_status(id).is_empty());
    assert!(ctd.ctr(&["containers", "delete", id]).status.success());
    assert!(
        !ctd.bundle(id).join("rootfs/bin").exists(),
        "rootfs still mounted"
    );

    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(events.id() as i32, libc::SIGTERM) };
    let mut log = String::new();
    events
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let _ = events.wait();
    let topics: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains(&format!("\"container_id\":\"{id}\""))
                || l.contains(&format!("\"id\":\"{id}\""))
        })
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|t| t.starts_with("/tasks/"))
        .collect();
    let mut seen = topics.clone();
    seen.dedup();
    let expect_in_order = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ];
    let mut pos = 0;
    for want in expect_in_order {
        match topics[pos..].iter().position(|t| *t == want) {
            Some(i) => pos += i + 1,
            None => panic!("event {want} missing or out of order in {topics:?}\n{log}"),
        }
    }
    // Init's exit is the last exit, and comes exactly once.
    let exits: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("/tasks/exit") && l.contains(&format!("\"id\":\"{id}\"")))
        .collect();
    assert_eq!(exits.len(), 1, "init exits: {exits:?}");
}

both!(shim_oom_kill_is_reported, oom_kill);
/// A process killed by the kernel for its memory limit: TaskOOM, then the exit (137).
fn oom_kill(flavor: Flavor) {
    let ctd = Containerd::start("oom", flavor);
    let mut events = ctd
        .ctr_cmd(&["events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let id = "hog";
    // `tail` keeps the whole newline-free stream in memory: far over the 16 MiB limit.
    let out = ctd.run(
        &["--memory-limit", "16777216"],
        id,
        &["sh", "-c", "head -c 200000000 /dev/zero | tail"],
        None,
    );
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    ctd.remove(id);
    std::thread::sleep(Duration::from_millis(300));
    let _ = events.kill();
    let mut log = String::new();
    events
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let _ = events.wait();
    let mine = |topic: &str| {
        log.lines()
            .any(|l| l.contains(topic) && l.contains(&format!("\"container_id\":\"{id}\"")))
    };
    assert!(mine("/tasks/oom"), "no TaskOOM for {id}:\n{log}");
    assert!(mine("/tasks/exit"), "no TaskExit for {id}:\n{log}");
    // One TaskOOM per kill, not per OOM event of the cgroup: under load, v1's eventfd fired
    // 644 times while the starving `tail` died, and TaskExit queued behind them all.
    let ooms = log
        .lines()
        .filter(|l| l.contains("/tasks/oom") && l.contains(&format!("\"container_id\":\"{id}\"")))
        .count();
    assert!(
        ooms <= 3,
        "{ooms} TaskOOM for at most 3 processes killed:\n{log}"
    );
}

both!(shim_killed_shim_is_cleaned_up, killed_shim);
fn killed_shim(flavor: Flavor) {
    let ctd = Containerd::start("shimkill", flavor);
    let id = "victim";
    let out = ctd.run(&["-d"], id, &["sleep", "1000"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    ctd.wait_status(id, "RUNNING");
    let pid: i32 = std::fs::read_to_string(ctd.bundle(id).join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: killing the shim process we just read the pid of.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(ctd.task_status(id).as_str(), "STOPPED" | "UNKNOWN" | "") {
        assert!(
            Instant::now() < deadline,
            "task still {}",
            ctd.task_status(id)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = ctd.ctr(&["tasks", "delete", id]);
    assert!(ctd.ctr(&["containers", "delete", id]).status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctd.bundle(id).exists() {
        assert!(
            Instant::now() < deadline,
            "bundle left behind: {}",
            ctd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

both!(shim_survives_containerd_restart, containerd_restart);
fn containerd_restart(flavor: Flavor) {
    let mut ctd = Containerd::start("restart", flavor);
    let id = "keeps";
    let out = ctd.run(&["-d"], id, &["sleep", "1000"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    ctd.wait_status(id, "RUNNING");
    ctd.stop_daemon();
    ctd.launch();
    ctd.wait_status(id, "RUNNING");
    let out = ctd.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "after",
        id,
        "echo",
        "still here",
    ]);
    assert_eq!(text(&out.stdout), "still here\n", "{}", text(&out.stderr));
    ctd.remove(id);
    assert!(ctd.task_status(id).is_empty());
}

both!(shim_grouped_containers, grouped_containers);
/// Two containers of one pod (the CRI sandbox-id annotation) share one shim; deleting the
/// first leaves the shim serving the second; deleting the last ends the shim.
fn grouped_containers(flavor: Flavor) {
    let ctd = Containerd::start("group", flavor);
    let pod = "io.kubernetes.cri.sandbox-id=pod1";
    for id in ["g1", "g2"] {
        let out = ctd.run(&["-d", "--annotation", pod], id, &["sleep", "1000"], None);
        assert!(out.status.success(), "run {id}: {}", text(&out.stderr));
        ctd.wait_status(id, "RUNNING");
    }
    let shim = shim_pid(&ctd, "g1");
    assert_eq!(shim_pid(&ctd, "g2"), shim, "g2 got a shim of its own");
    let address = std::fs::read_to_string(ctd.bundle("g1").join("address")).unwrap();
    assert_eq!(
        std::fs::read_to_string(ctd.bundle("g2").join("address")).unwrap(),
        address
    );

    ctd.remove("g1");
    assert!(ctd.task_status("g1").is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        process_alive(shim),
        "the shim left with its first container"
    );
    assert_eq!(ctd.task_status("g2"), "RUNNING");
    let out = ctd.ctr(&["tasks", "exec", "--exec-id", "x", "g2", "echo", "served"]);
    assert_eq!(text(&out.stdout), "served\n", "{}", text(&out.stderr));

    ctd.remove("g2");
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(shim) {
        assert!(
            Instant::now() < deadline,
            "shim {shim} outlived its last container"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let socket = address.trim_start_matches("unix://").to_owned();
    assert!(!Path::new(&socket).exists(), "socket {socket} left behind");
}

fn shim_pid(ctd: &Containerd, id: &str) -> i32 {
    std::fs::read_to_string(ctd.bundle(id).join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

both!(shim_binary_log_uri, binary_log_uri);
/// `--log-uri binary://…`: the shim runs the logging binary with the container's stdout on
/// fd 3 and stderr on fd 4, its query as arguments, and whose output it is in the environment.
fn binary_log_uri(flavor: Flavor) {
    let ctd = Containerd::start("binlog", flavor);
    let logger = ctd.dir.join("logger.sh");
    std::fs::write(&logger, LOGGER).unwrap();
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let base = ctd.dir.join("binlog");
    let uri = format!("binary://{}?to={}", logger.display(), base.display());
    let out = ctd.run(
        &["--rm", "--log-uri", &uri],
        "logged",
        &[
            "sh",
            "-c",
            "echo to-out; echo to-err >&2; seq 1 3000 | tail -n 1",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let read = |ext: &str, want: &str| {
        let path = base.with_extension(ext);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = std::fs::read_to_string(&path).unwrap_or_default();
            if got == want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(read("out", "to-out\n3000\n"), "to-out\n3000\n");
    assert_eq!(read("err", "to-err\n"), "to-err\n");
    assert_eq!(
        read("who", &format!("{}/logged\n", ctd.ns)),
        format!("{}/logged\n", ctd.ns)
    );
}

/// A logging binary: `to PATH` writes PATH.out, PATH.err and PATH.who; ready once fd 5 closes.
const LOGGER: &str = r#"#!/bin/sh
[ "$1" = to ] || exit 2
echo "$CONTAINER_NAMESPACE/$CONTAINER_ID" > "$2.who"
/bin/cat <&3 5>&- 4<&- > "$2.out" &
/bin/cat <&4 5>&- 3<&- > "$2.err" &
exec 5>&- 3<&- 4<&-
wait
"#;
