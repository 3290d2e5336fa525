//! `berth` CLI container commands against `berth daemon` → containerd-shim-berth-v2 →
//! berth-runtime: real containers from a busybox-static image seeded into a private data
//! root. One daemon per test; every test removes its containers (they outlive the daemon).
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

/// berth's CLI on an engine (common's: containers force-removed before it stops).
trait Cli {
    fn berth(&self, args: &[&str]) -> Output;

    fn ok(&self, args: &[&str]) -> String {
        ok(self.berth(args))
    }

    /// Fails with `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.berth(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        stderr(&out)
    }

    fn status(&self, name: &str) -> String {
        self.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            name,
        ])
        .trim()
        .to_string()
    }
}

impl Cli for Engine {
    fn berth(&self, args: &[&str]) -> Output {
        berth(&self.host, args)
    }
}

#[test]
fn run_ps_logs_stop_rm_and_errors() {
    let e = Engine::start_tmp("one");
    // Foreground run: output, exit code, --rm.
    let out = e.berth(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hi",
        "-w",
        "/etc",
        "busybox",
        "sh",
        "-c",
        "echo $GREETING from $(busybox pwd); echo oops >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(stdout(&out), "hi from /etc\n");
    assert!(stderr(&out).contains("oops\n"), "{out:?}");
    assert_eq!(e.ok(&["ps", "-aq"]), "", "--rm left a container");
    // A --rm container's rootfs is a volatile overlay (no sync at its unmount); a kept one's
    // is not: its changes must survive a crash.
    let root_mount = |rm: &[&str]| {
        let mut args = vec!["run"];
        args.extend(rm);
        args.extend([
            "busybox",
            "busybox",
            "grep",
            " / / ",
            "/proc/self/mountinfo",
        ]);
        e.ok(&args)
    };
    let volatile = root_mount(&["--rm"]);
    assert!(volatile.contains("volatile"), "{volatile}");
    let kept = root_mount(&[]);
    assert!(
        kept.contains("overlay") && !kept.contains("volatile"),
        "{kept}"
    );
    e.ok(&["container", "prune", "-f"]);

    // Detached, named; ps, logs, stop.
    let id = e.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "echo started; while true; do busybox sleep 0.1; done",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let ps = e.ok(&["ps"]);
    let lines: Vec<&str> = ps.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID   IMAGE     COMMAND"),
        "{ps}"
    );
    assert!(
        lines[1].starts_with(&id[..12]) && lines[1].ends_with("ticker"),
        "{ps}"
    );
    assert!(lines[1].contains("Up "), "{ps}");
    assert_eq!(e.status("ticker"), "running 0");
    // The log is written by the shim's logging binary: wait for the first line.
    let mut logs = String::new();
    for _ in 0..100 {
        logs = e.ok(&["logs", "ticker"]);
        if !logs.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(logs, "started\n");

    // Errors: name conflict, rm of a running one, unknown container.
    let err = e.fails(&["run", "-d", "--name", "ticker", "busybox", "true"], 125);
    assert!(
        err.contains(&format!(
            "Conflict. The container name \"/ticker\" is already in use by container \"{id}\""
        )),
        "{err}"
    );
    let err = e.fails(&["rm", "ticker"], 1);
    assert!(
        err.contains("You cannot remove a running container"),
        "{err}"
    );
    let err = e.fails(&["stop", "nosuch"], 1);
    assert_eq!(
        err,
        "Error response from daemon: No such container: nosuch\n"
    );
    let err = e.fails(&["run", "busybox", "nosuch"], 127);
    assert!(err.contains("executable file not found"), "{err}");

    assert_eq!(e.ok(&["stop", "-t", "1", "ticker"]), "ticker\n");
    // sh as pid 1 ignores SIGTERM: killed after the timeout.
    assert_eq!(e.status("ticker"), "exited 137");
    let ps = e.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        ps.lines().any(|l| l.starts_with("ticker Exited (137)")),
        "{ps}"
    );
    assert_eq!(e.ok(&["ps", "-q"]), "");

    // Restart by start: the log keeps both runs.
    e.ok(&["start", "ticker"]);
    assert_eq!(e.status("ticker"), "running 0");
    assert_eq!(e.ok(&["kill", "-s", "KILL", "ticker"]), "ticker\n");
    // SIGKILL's kill returns once the container has exited, as dockerd's.
    assert_eq!(e.status("ticker"), "exited 137");
    assert_eq!(e.ok(&["wait", "ticker"]), "137\n");
    assert_eq!(e.ok(&["logs", "ticker"]), "started\nstarted\n");
    assert_eq!(e.ok(&["rm", "ticker"]), "ticker\n");
    let err = e.fails(&["inspect", "ticker"], 1);
    assert_eq!(err, "Error: No such object: ticker\n");
}

#[test]
fn create_start_wait_inspect_and_stdin() {
    let e = Engine::start_tmp("one");
    let id = e.ok(&[
        "create",
        "--name",
        "later",
        "-u",
        "65534:65534",
        "busybox",
        "busybox",
        "id",
    ]);
    let id = id.trim();
    assert_eq!(e.status("later"), "created 0");
    let inspect: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "later"])).unwrap();
    let c = &inspect[0];
    assert_eq!(c["Id"], id);
    assert_eq!(c["Name"], "/later");
    assert_eq!(c["Path"], "busybox");
    assert_eq!(c["Args"], serde_json::json!(["id"]));
    assert_eq!(c["Config"]["User"], "65534:65534");
    assert_eq!(c["Config"]["Env"], serde_json::json!(["PATH=/bin"]));
    assert_eq!(c["Config"]["Hostname"], &id[..12]);
    assert_eq!(c["State"]["Running"], false);
    e.ok(&["start", "later"]);
    assert_eq!(e.ok(&["wait", "later"]), "0\n");
    assert_eq!(
        e.ok(&["logs", "later"]),
        "uid=65534 gid=65534 groups=65534\n"
    );
    e.ok(&["rm", "later"]);

    // -i: stdin reaches the container, its EOF ends it.
    let mut child = Command::new(BERTH)
        .args([
            "-H", &e.host, "run", "-i", "--rm", "busybox", "busybox", "tr", "a-z", "A-Z",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"shout\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "SHOUT\n");
}

#[test]
fn exec_runs_in_the_container() {
    let e = Engine::start_tmp("one");
    e.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo marker > /etc/m; while true; do busybox sleep 0.1; done",
    ]);
    let out = e.berth(&[
        "exec",
        "-e",
        "X=1",
        "-w",
        "/etc",
        "box",
        "sh",
        "-c",
        "echo $X $(busybox pwd) $(busybox cat m); exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(stdout(&out), "1 /etc marker\n");
    assert_eq!(
        e.ok(&["exec", "-u", "65534", "box", "busybox", "id", "-u"]),
        "65534\n"
    );
    e.ok(&["exec", "-d", "box", "sh", "-c", "echo detached > /etc/d"]);
    let mut seen = String::new();
    for _ in 0..100 {
        seen = stdout(&e.berth(&["exec", "box", "busybox", "cat", "/etc/d"]));
        if !seen.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(seen, "detached\n");
    e.ok(&["rm", "-f", "box"]);
    let err = e.fails(&["exec", "box", "true"], 1);
    assert!(err.contains("No such container: box"), "{err}");
}

#[test]
fn containers_outlive_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::start_in(dir.path(), "one");
    let host = e.host.clone();
    ok(berth(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "long",
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); busybox sleep 0.05; done",
        ],
    ));
    ok(berth(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "short",
            "busybox",
            "sh",
            "-c",
            "busybox sleep 0.5; echo done; exit 7",
        ],
    ));
    // kill -9: no cleanup at all.
    let mut daemon = e.daemon.take().unwrap();
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    std::mem::forget(daemon);
    std::thread::sleep(std::time::Duration::from_secs(1));
    e.restart_daemon();
    assert_eq!(e.status("long"), "running 0");
    // The exit that happened while no daemon ran, with its code and output.
    assert_eq!(e.status("short"), "exited 7");
    assert_eq!(e.ok(&["logs", "short"]), "done\n");
    // Logs kept flowing meanwhile: the ticks are consecutive, none lost.
    let logs = e.ok(&["logs", "long"]);
    let ticks: Vec<&str> = logs.lines().collect();
    assert!(ticks.len() >= 10, "{logs}");
    for (i, t) in ticks.iter().enumerate() {
        assert_eq!(*t, format!("tick {i}"));
    }
    assert_eq!(
        e.ok(&["exec", "long", "busybox", "echo", "still here"]),
        "still here\n"
    );
    assert_eq!(e.ok(&["stop", "-t", "0", "long"]), "long\n");
    assert_eq!(e.status("long"), "exited 137");
}

/// A start right after an exit gets a new shim: the old one, told to shut down, still listened
/// on the container's socket for a moment, and a start then reused it and lost the task
/// ("socket disconnected").
#[test]
fn restart_right_after_an_exit_gets_a_new_shim() {
    let e = Engine::start_tmp("one");
    e.ok(&[
        "run", "-d", "--name", "again", "busybox", "busybox", "sleep", "300",
    ]);
    for round in 0..5 {
        assert_eq!(e.ok(&["kill", "again"]), "again\n", "round {round}");
        assert_eq!(e.ok(&["wait", "again"]), "137\n", "round {round}");
        e.ok(&["start", "again"]);
        assert_eq!(e.status("again"), "running 0", "round {round}");
    }
    e.ok(&["rm", "-f", "again"]);
}

/// Pids of the processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let mut cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        for b in cmdline.iter_mut().filter(|b| **b == 0) {
            *b = b' ';
        }
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Polls until no process's command line contains `needle`; the ones left otherwise.
fn gone(needle: &str) -> Vec<i32> {
    for _ in 0..100 {
        if processes_with(needle).is_empty() {
            return Vec::new();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    processes_with(needle)
}

/// The logging binary ends with its container's output: at a normal exit, and when the shim
/// was killed (-9) under a container that kept writing — `rm -f` then deletes the container
/// through the runtime, which closes the output, and no logging binary stays orphaned.
#[test]
fn log_driver_ends_with_its_container() {
    let e = Engine::start_tmp("one");
    let id = e.ok(&["run", "-d", "busybox", "sh", "-c", "echo short-lived"]);
    let id = id.trim();
    e.ok(&["wait", id]);
    assert_eq!(
        gone(&format!("{id}-json.log")),
        Vec::<i32>::new(),
        "logger of an exited container"
    );
    assert_eq!(e.ok(&["logs", id]), "short-lived\n");
    e.ok(&["rm", id]);

    let marker = format!("noisy-{}", std::process::id());
    let script = format!("while :; do echo {marker}; busybox sleep 0.1; done");
    let id = e.ok(&["run", "-d", "busybox", "sh", "-c", &script]);
    let id = id.trim().to_string();
    let logger = format!("{id}-json.log");
    assert_eq!(processes_with(&logger).len(), 1, "one logging binary");
    let shim: Vec<i32> = processes_with(&format!("-id {id}"));
    assert_eq!(shim.len(), 1, "one shim: {shim:?}");
    // SAFETY: kills the shim this test's daemon started.
    unsafe { libc::kill(shim[0], libc::SIGKILL) };
    assert_eq!(e.ok(&["rm", "-f", &id]), format!("{id}\n"));
    assert_eq!(gone(&logger), Vec::<i32>::new(), "orphaned logging binary");
    assert_eq!(gone(&marker), Vec::<i32>::new(), "container processes left");
}

/// json-file rotation (`--log-opt max-size=1k --log-opt max-file=2`): the log never holds
/// more than the current file and one rotated; `logs` shows the newest lines in order,
/// across both files; a bad option is refused at create, nothing made.
#[test]
fn json_file_logs_rotate() {
    let e = Engine::start_tmp("one");
    let script = "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo line $i; done";
    let id = e.ok(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let id = id.trim();
    e.ok(&["wait", id]);
    let log_path = e.ok(&["inspect", "-f", "{{.LogPath}}", id]);
    let log_path = std::path::Path::new(log_path.trim());
    let rotated = |n: u32| std::path::PathBuf::from(format!("{}.{n}", log_path.display()));
    assert!(rotated(1).exists(), "rotated once at least");
    assert!(!rotated(2).exists(), "max-file=2 keeps one rotated file");
    for p in [log_path.to_path_buf(), rotated(1)] {
        let size = std::fs::metadata(&p).unwrap().len();
        assert!(size < 1200, "{}: {size} bytes", p.display());
    }
    let logs = e.ok(&["logs", id]);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.last(), Some(&"line 300"));
    let first: u32 = lines[0].trim_start_matches("line ").parse().unwrap();
    let expected: Vec<String> = (first..=300).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected, "the newest lines, in order, none twice");
    assert!(first > 1, "older lines rotated away");
    e.ok(&["rm", id]);

    let err = e.fails(&["create", "--log-opt", "max-sise=1k", "busybox"], 125);
    assert!(
        err.contains("unknown log opt 'max-sise' for json-file log driver"),
        "{err}"
    );
    let err = e.fails(&["create", "--log-opt", "max-file=0", "busybox"], 125);
    assert!(err.contains("max-file cannot be less than 1"), "{err}");
    assert_eq!(e.ok(&["ps", "-aq"]), "");
}

#[test]
fn log_drivers_none_and_local() {
    let e = Engine::start_tmp("one");
    // none: attach still shows the output; logs is docker's refusal, with both CLIs.
    assert_eq!(
        e.ok(&[
            "run",
            "--rm",
            "--log-driver",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo attached"
        ]),
        "attached\n"
    );
    let id = e.ok(&[
        "run",
        "-d",
        "--log-driver",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo gone",
    ]);
    let id = id.trim();
    e.ok(&["wait", id]);
    let err = e.fails(&["logs", id], 1);
    assert_eq!(
        err.trim(),
        "Error response from daemon: configured logging driver does not support reading"
    );
    for bin in ["/usr/bin/docker", "/usr/local/bin/docker"] {
        let out = Command::new(bin)
            .args(["logs", id])
            .env("DOCKER_HOST", &e.host)
            .env("DOCKER_CONFIG", config_dir(&e.host))
            .output()
            .unwrap_or_else(|err| panic!("{bin} missing: {err}"));
        assert_eq!(out.status.code(), Some(1), "{bin}: {out:?}");
        assert!(
            stderr(&out).contains("configured logging driver does not support reading"),
            "{bin}: {out:?}"
        );
    }
    e.ok(&["rm", id]);

    // local: rotated by its own options, read back in order.
    let script = "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo line $i; done";
    let id = e.ok(&[
        "run",
        "-d",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let id = id.trim();
    e.ok(&["wait", id]);
    let log_path = e.ok(&["inspect", "-f", "{{.LogPath}}", id]);
    let rotated = |n: u32| std::path::PathBuf::from(format!("{}.{n}", log_path.trim()));
    assert!(rotated(2).exists() && !rotated(3).exists(), "max-file=3");
    let logs = e.ok(&["logs", id]);
    let lines: Vec<&str> = logs.lines().collect();
    let first: u32 = lines[0].trim_start_matches("line ").parse().unwrap();
    let expected: Vec<String> = (first..=300).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected, "the newest lines, in order, none twice");
    let err = e.fails(
        &[
            "create",
            "--log-driver",
            "local",
            "--log-opt",
            "tag=x",
            "busybox",
        ],
        125,
    );
    assert!(
        err.contains("unknown log opt 'tag' for local log driver"),
        "{err}"
    );
    let err = e.fails(&["create", "--log-driver", "syslog", "busybox"], 125);
    assert!(
        err.contains("logger: no log driver named 'syslog' is registered"),
        "{err}"
    );
    e.ok(&["rm", id]);
}

#[test]
fn logs_follow_across_several_rotations_between_reads() {
    let e = Engine::start_tmp("one");
    // Waits for /etc/go, then writes 3000 lines (~225 kB) as fast as it can: rotations of
    // 10 kB files, often several between two reads of the follower; all kept (100 files).
    let script = "while [ ! -e /etc/go ]; do busybox usleep 10000; done; \
                  i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo line $i; done";
    let id = e.ok(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=100",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let id = id.trim().to_string();
    let follower = Command::new(BERTH)
        .args(["-H", &e.host, "logs", "-f", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    e.ok(&["exec", &id, "busybox", "touch", "/etc/go"]);
    let out = follower.wait_with_output().unwrap();
    let followed = String::from_utf8_lossy(&out.stdout);
    let expected: String = (1..=3000).map(|i| format!("line {i}\n")).collect();
    assert!(
        followed == expected,
        "the follower lost or repeated lines: {} of 3000 lines",
        followed.lines().count()
    );
    e.ok(&["rm", &id]);
}
