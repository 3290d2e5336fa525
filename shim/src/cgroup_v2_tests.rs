//! Stats and TaskOOM on a pure cgroup v2 host, for real: a cgroup made under /sys/fs/cgroup,
//! a child process moved into it (this test binary re-executed as [`child`]), the shim's
//! [`crate::stats::metrics`] and [`crate::oom::Watch`] pointed at it.
//!
//! On a host whose /sys/fs/cgroup is not cgroup2 (this hybrid one) they skip, unless
//! BERTH_CGROUP_V2_REQUIRE=memory,pids,cpu is set: then they fail unless /sys/fs/cgroup is
//! cgroup2 with those controllers. `vm.rs` runs them so inside a `cgroup_no_v1=all` kernel.
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use berth_proto::cgroups_v2::metrics as v2;
use berth_proto::protobuf::Message;

const ROOT: &str = "/sys/fs/cgroup";
const MIB: u64 = 1 << 20;
/// The child's role, for [`child`].
const CHILD_ENV: &str = "BERTH_SHIM_TEST_CHILD";
const READY: &str = "BERTH-CHILD-READY";

/// A cgroup of its own under /sys/fs/cgroup, with memory, pids and cpu, removed on drop
/// (its process killed first).
struct TestCgroup {
    dir: PathBuf,
    child: Option<Child>,
}

impl TestCgroup {
    /// None (test skipped) only on a host that is not pure cgroup v2 and does not require it.
    fn new(test: &str) -> Option<TestCgroup> {
        let root = Path::new(ROOT);
        let required = std::env::var("BERTH_CGROUP_V2_REQUIRE").ok();
        if !root.join("cgroup.controllers").exists() {
            assert!(
                required.is_none(),
                "BERTH_CGROUP_V2_REQUIRE={} but {ROOT} is not a cgroup2 mount",
                required.unwrap_or_default()
            );
            eprintln!("{test}: skipped: {ROOT} is not cgroup2 (not a pure v2 host)");
            return None;
        }
        let available = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap();
        let mut wanted = vec!["memory".to_string(), "pids".into(), "cpu".into()];
        for c in required.iter().flat_map(|r| r.split(',')) {
            if !c.is_empty() && !wanted.iter().any(|w| w == c) {
                wanted.push(c.into());
            }
        }
        for c in &wanted {
            assert!(
                available.split_whitespace().any(|a| a == c),
                "controller {c} is not on cgroup2 (available: {available:?})"
            );
            let control = root.join("cgroup.subtree_control");
            std::fs::write(&control, format!("+{c}"))
                .unwrap_or_else(|e| panic!("write +{c} to {}: {e}", control.display()));
        }
        let dir = root.join(format!("berth-shimtest-{}-{test}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Some(TestCgroup { dir, child: None })
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, value)
            .unwrap_or_else(|e| panic!("write {value:?} to {}: {e}", path.display()));
    }

    fn read(&self, file: &str) -> String {
        let path = self.dir.join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// This test binary re-executed as [`child`] in `role`, moved into the cgroup before it
    /// runs; returns once it printed READY, with its stdin.
    fn spawn(&mut self, role: &str) -> (i32, ChildStdin) {
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))
            .unwrap();
        let procs_fd = procs.as_raw_fd();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "cgroup_v2_tests::child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
        // SAFETY: only write(2) between fork and exec; "0" moves the calling process.
        unsafe {
            cmd.pre_exec(move || {
                if libc::write(procs_fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("re-execute the test binary");
        drop(procs);
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            match lines.next() {
                // libtest's "test cgroup_v2_tests::child ... " comes first, on the same line.
                Some(Ok(l)) if l.ends_with(READY) => break,
                Some(Ok(_)) => continue,
                other => panic!("child {role} ended before {READY}: {other:?}"),
            }
        }
        let pid = child.id() as i32;
        self.child = Some(child);
        (pid, stdin)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Not a test: the child of the tests below, when BERTH_SHIM_TEST_CHILD names its role.
/// `stats`: touch 16 MiB, burn 500 ms of CPU, print READY, wait for stdin's EOF.
/// `oom`: print READY, wait for a line, then touch 256 MiB.
#[test]
fn child() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    match role.as_str() {
        "stats" => {
            let memory = vec![1u8; 16 * MIB as usize];
            let start = Instant::now();
            let mut x = 0u64;
            while start.elapsed() < Duration::from_millis(500) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            println!("{READY}");
            std::io::stdout().flush().unwrap();
            let _ = stdin.read_line(&mut line);
            std::hint::black_box((memory, x));
        }
        "oom" => {
            println!("{READY}");
            std::io::stdout().flush().unwrap();
            stdin.read_line(&mut line).unwrap();
            let mut chunks = Vec::new();
            for _ in 0..256 {
                // Written byte by byte (not calloc'ed zero pages): really resident.
                chunks.push(std::hint::black_box(vec![1u8; MIB as usize]));
            }
            println!("survived 256 MiB: {}", chunks.len());
        }
        other => panic!("unknown {CHILD_ENV} {other}"),
    }
}

#[test]
fn stats_v2_for_real() {
    let Some(mut cg) = TestCgroup::new("stats") else {
        return;
    };
    cg.write("memory.max", &(256 * MIB).to_string());
    cg.write("pids.max", "64");
    let (pid, _stdin) = cg.spawn("stats");

    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let any = crate::stats::metrics(&table);
    assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
    let m = v2::Metrics::parse_from_bytes(&any.value).unwrap();
    let (mem, pids, cpu) = (
        m.memory.as_ref().unwrap(),
        m.pids.as_ref().unwrap(),
        m.cpu.as_ref().unwrap(),
    );
    eprintln!(
        "stats_v2_for_real: memory usage {} limit {} anon {}, pids {} of {}, cpu usage {}us user {}us",
        mem.usage, mem.usage_limit, mem.anon, pids.current, pids.limit, cpu.usage_usec, cpu.user_usec
    );
    assert!(mem.usage >= 16 * MIB, "memory usage {}", mem.usage);
    assert!(mem.anon >= 16 * MIB, "anon {}", mem.anon);
    assert_eq!(mem.usage_limit, 256 * MIB);
    assert!(pids.current >= 1, "pids.current {}", pids.current);
    assert_eq!(
        pids.current,
        cg.read("pids.current").trim().parse::<u64>().unwrap()
    );
    assert_eq!(pids.limit, 64);
    assert!(cpu.usage_usec >= 100_000, "cpu usage {}us", cpu.usage_usec);
    assert!(cpu.user_usec > 0, "cpu user {}us", cpu.user_usec);
}

#[test]
fn oom_v2_for_real() {
    let Some(mut cg) = TestCgroup::new("oom") else {
        return;
    };
    cg.write("memory.max", &(64 * MIB).to_string());
    if cg.dir.join("memory.swap.max").exists() {
        cg.write("memory.swap.max", "0");
    }
    let (pid, mut stdin) = cg.spawn("oom");
    let (tx, rx) = mpsc::channel();
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    crate::oom::Watch::prepare(&table)
        .unwrap()
        .spawn(move || {
            let _ = tx.send(());
        })
        .unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "OOM reported before any"
    );

    writeln!(stdin, "go").unwrap();
    let status = cg.child.as_mut().unwrap().wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "child: {status:?}");
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the OOM kill was not reported");
    let events = cg.read("memory.events");
    eprintln!(
        "oom_v2_for_real: TaskOOM reported; memory.events: {}",
        events.replace('\n', ", ")
    );
    assert!(events
        .lines()
        .any(|l| l.strip_prefix("oom_kill ").is_some_and(|n| n.trim() != "0")));
    assert!(
        rx.try_recv().is_err(),
        "one OOM kill reported more than once"
    );

    // The watcher ends once its cgroup is empty (kernfs tells inotify nothing on rmdir).
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Err(mpsc::RecvTimeoutError::Disconnected),
        "the OOM watcher outlived its cgroup's last process"
    );
    drop(cg);
}
