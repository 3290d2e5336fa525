//! berth-runtime as a drop-in for runc under Debian's dockerd 20.10 (`--add-runtime berth=…`).
//!
//! One private dockerd (own data-root, exec-root, socket, managed containerd; no bridge, no
//! iptables) serves every test of this binary. Each scenario runs with `--runtime berth` and
//! with the default runc, and the deterministic results must be equal. Containers run with
//! `--network none`.
mod dropin_common;

use dropin_common::*;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

/// Debian's docker CLI (matching the daemon; another `docker` may come first on PATH).
const DOCKER: &str = "/usr/bin/docker";

struct Dockerd {
    dir: PathBuf,
}

static DOCKERD: OnceLock<Dockerd> = OnceLock::new();

/// The shared dockerd, started on first use and stopped when the test binary exits.
fn dockerd() -> &'static Dockerd {
    DOCKERD.get_or_init(Dockerd::start)
}

impl Dockerd {
    fn start() -> Dockerd {
        require("dockerd", "docker.io");
        assert!(
            std::path::Path::new(DOCKER).exists(),
            "{DOCKER} missing: apt-get install -y docker.io"
        );
        let dir = private_dir("docker");
        let mut cmd = Command::new("dockerd");
        cmd.arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .arg("--add-runtime")
            .arg(format!("berth={}", berth_runtime().display()))
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--bridge=none",
            ])
            .args([
                "--storage-driver",
                "overlay2",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
            ])
            .arg("--cgroup-parent")
            .arg(cgroup_parent("docker"));
        let mut child = spawn_daemon(cmd, &dir.join("dockerd.log"));
        let d = Dockerd { dir: dir.clone() };
        wait_until(
            Duration::from_secs(30),
            || d.docker(&["version"]).status.success(),
            || format!("dockerd did not come up: {}", d.log()),
        );
        let tar = busybox_image(&dir);
        run_ok(&mut d.cmd(&["load", "-i", tar.to_str().unwrap()]));
        at_exit(move || {
            let d = Dockerd { dir: dir.clone() };
            let ids = text(&d.docker(&["ps", "-aq"]).stdout);
            for id in ids.lines() {
                let _ = d.docker(&["rm", "-f", id.trim()]);
            }
            stop_daemon(&mut child, Duration::from_secs(20));
            remove_dir(&dir);
            remove_cgroups(&cgroup_parent("docker"));
        });
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.env("DOCKER_CONFIG", self.dir.join("client"))
            .arg("-H")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()))
            .args(args);
        cmd
    }

    fn docker(&self, args: &[&str]) -> Output {
        output(&mut self.cmd(args))
    }

    /// `docker run --runtime <flavor> --network none [extra] IMAGE cmd...` as an argv.
    fn run_argv(&self, flavor: Flavor, extra: &[&str], cmd: &[&str]) -> Vec<String> {
        let mut argv = vec![
            DOCKER.to_owned(),
            "-H".into(),
            format!("unix://{}", self.dir.join("docker.sock").display()),
            "run".into(),
            "--runtime".into(),
            runtime_name(flavor).into(),
            "--network".into(),
            "none".into(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        argv.push(IMAGE.into());
        argv.extend(cmd.iter().map(|s| s.to_string()));
        argv
    }

    fn run(&self, flavor: Flavor, extra: &[&str], cmd: &[&str]) -> Output {
        let argv = self.run_argv(flavor, extra, cmd);
        output(
            Command::new(&argv[0])
                .args(&argv[1..])
                .env("DOCKER_CONFIG", self.dir.join("client")),
        )
    }

    fn inspect(&self, id: &str, format: &str) -> String {
        text(&self.docker(&["inspect", "-f", format, id]).stdout)
            .trim()
            .to_owned()
    }
}

fn runtime_name(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Berth => "berth",
        Flavor::Runc => "runc",
    }
}

fn name(flavor: Flavor, what: &str) -> String {
    format!("dropin-{what}-{}", runtime_name(flavor))
}

/// Reads the cgroup v1 limit files of the container itself (docker runs it in the host cgroup
/// namespace on this hybrid host, and runc mounts each hierarchy at the container's cgroup).
const LIMITS: &str = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes \
/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us \
/sys/fs/cgroup/pids/pids.max";

fn attached(flavor: Flavor) -> (String, String, Option<i32>) {
    let d = dockerd();
    let out = d.run(
        flavor,
        &["--rm"],
        &["sh", "-c", &format!("{PROBE}; echo err >&2; exit 3")],
    );
    (text(&out.stdout), text(&out.stderr), out.status.code())
}

#[test]
fn attached_run_matches_runc() {
    let (b, r) = (attached(Flavor::Berth), attached(Flavor::Runc));
    assert_eq!(
        (r.1.as_str(), r.2),
        ("err\n", Some(3)),
        "runc itself misbehaves: {r:?}"
    );
    assert_same_text("docker run output", &b.0, &r.0);
    assert_same("docker run stderr", &b.1, &r.1);
    assert_same("docker run exit code", &b.2, &r.2);
}

fn limits(flavor: Flavor) -> (String, String, Option<i32>) {
    let d = dockerd();
    let out = d.run(
        flavor,
        &["--rm", "-m", "64m", "--cpus", "0.5", "--pids-limit", "50"],
        &["sh", "-c", LIMITS],
    );
    (text(&out.stdout), text(&out.stderr), out.status.code())
}

#[test]
fn limits_visible_inside_like_runc() {
    let (b, r) = (limits(Flavor::Berth), limits(Flavor::Runc));
    assert_eq!(
        r.0, "67108864\n50000\n100000\n50\n",
        "runc itself misbehaves: {r:?}"
    );
    assert_same("-m 64m --cpus 0.5 --pids-limit 50 seen inside", &b, &r);
}

fn tty(flavor: Flavor) -> (String, Option<i32>) {
    let d = dockerd();
    let argv = d.run_argv(
        flavor,
        &["--rm", "-it"],
        &["sh", "-c", "tty; [ -t 0 ] && echo stdin-tty; exit 5"],
    );
    let argv: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
    with_tty(&format!(
        "DOCKER_CONFIG={} {}",
        sh_quote(&d.dir.join("client").display().to_string()),
        argv.join(" ")
    ))
}

#[test]
fn tty_run_matches_runc() {
    let (b, r) = (tty(Flavor::Berth), tty(Flavor::Runc));
    assert!(
        r.0.contains("/dev/pts/0\nstdin-tty\n") && r.1 == Some(5),
        "runc itself misbehaves: {r:?}"
    );
    assert_same("docker run -it", &b, &r);
}

/// A detached container through exec, pause/unpause, stats, update, stop; results in order.
fn lifecycle(flavor: Flavor) -> Vec<String> {
    let d = dockerd();
    let name = name(flavor, "life");
    let _ = d.docker(&["rm", "-f", &name]);
    let mut seen = Vec::new();
    let trap = "trap 'exit 42' TERM; while :; do sleep 0.1; done";
    let out = d.run(
        flavor,
        &["-d", "--name", &name, "-m", "64m", "--pids-limit", "50"],
        &["sh", "-c", trap],
    );
    seen.push(format!(
        "run -d: {:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));

    let out = d.docker(&["exec", &name, "sh", "-c", "echo in-exec; exit 7"]);
    seen.push(format!(
        "exec: {:?} {:?} {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    ));

    let out = d.docker(&["pause", &name]);
    seen.push(format!(
        "pause: {:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));
    seen.push(format!("status: {}", d.inspect(&name, "{{.State.Status}}")));
    let frozen = d.docker(&["exec", &name, "true"]);
    seen.push(format!(
        "exec while paused refused: {}",
        !frozen.status.success()
    ));
    let out = d.docker(&["unpause", &name]);
    seen.push(format!(
        "unpause: {:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));
    seen.push(format!("status: {}", d.inspect(&name, "{{.State.Status}}")));

    let out = d.docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &name]);
    let limit = text(&out.stdout)
        .split(" / ")
        .nth(1)
        .map(|s| s.trim().to_owned());
    seen.push(format!(
        "stats: {:?} limit {limit:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));

    let out = d.docker(&[
        "update",
        "--memory",
        "128m",
        "--memory-swap",
        "256m",
        "--pids-limit",
        "77",
        "--cpus",
        "1.5",
        &name,
    ]);
    seen.push(format!(
        "update: {:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));
    let out = d.docker(&["exec", &name, "sh", "-c", LIMITS]);
    seen.push(format!(
        "limits after update: {:?} {:?}",
        text(&out.stdout),
        text(&out.stderr)
    ));

    let out = d.docker(&["stop", "-t", "10", &name]);
    seen.push(format!(
        "stop: {:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));
    seen.push(format!(
        "exit code: {}",
        d.inspect(&name, "{{.State.ExitCode}}")
    ));
    let out = d.docker(&["rm", &name]);
    seen.push(format!("rm: {:?} {}", out.status.code(), text(&out.stderr)));
    seen
}

#[test]
fn exec_pause_stats_update_stop_match_runc() {
    let (b, r) = (lifecycle(Flavor::Berth), lifecycle(Flavor::Runc));
    let joined = r.join("\n");
    for want in [
        "exec: Some(7) \"in-exec\\n\"",
        "status: paused",
        "exec while paused refused: true",
        "status: running",
        "limit Some(\"64MiB\")",
        "limits after update: \"134217728\\n150000\\n100000\\n77\\n\"",
        "exit code: 42",
    ] {
        assert!(
            joined.contains(want),
            "runc itself misbehaves ({want}): {joined}"
        );
    }
    assert_same("docker lifecycle", &b, &r);
}

/// `docker kill` (SIGKILL, then a custom signal on a second container).
fn kill(flavor: Flavor) -> Vec<String> {
    let d = dockerd();
    let mut seen = Vec::new();
    for (what, signal) in [("kill9", "KILL"), ("killusr1", "USR1")] {
        let name = name(flavor, what);
        let _ = d.docker(&["rm", "-f", &name]);
        let script = "trap 'exit 10' USR1; while :; do sleep 0.1; done";
        let out = d.run(flavor, &["-d", "--name", &name], &["sh", "-c", script]);
        seen.push(format!(
            "run -d: {:?} {}",
            out.status.code(),
            text(&out.stderr)
        ));
        let out = d.docker(&["kill", "-s", signal, &name]);
        seen.push(format!(
            "kill -s {signal}: {:?} {}",
            out.status.code(),
            text(&out.stderr)
        ));
        let out = d.docker(&["wait", &name]);
        seen.push(format!("wait: {:?}", text(&out.stdout).trim()));
        let _ = d.docker(&["rm", "-f", &name]);
    }
    seen
}

#[test]
fn kill_matches_runc() {
    let (b, r) = (kill(Flavor::Berth), kill(Flavor::Runc));
    let joined = r.join("\n");
    assert!(
        joined.contains("wait: \"137\"") && joined.contains("wait: \"10\""),
        "runc itself misbehaves: {joined}"
    );
    assert_same("docker kill", &b, &r);
}
