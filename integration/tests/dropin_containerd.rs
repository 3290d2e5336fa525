//! berth-runtime as a drop-in for runc under Debian's containerd 1.6 and the stock
//! `io.containerd.runc.v2` shim (`ctr run --runc-binary <berth-runtime>`).
//!
//! One private containerd (own root, state, socket; CRI disabled) serves every test of this
//! binary; each scenario runs once with berth-runtime and once with Debian's runc and the
//! deterministic parts of the results must be equal.
mod dropin_common;

use dropin_common::*;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const NS: &str = "berth-dropin";

struct Containerd {
    dir: PathBuf,
}

static CONTAINERD: OnceLock<Containerd> = OnceLock::new();

/// The shared containerd, started on first use and stopped when the test binary exits.
fn containerd() -> &'static Containerd {
    CONTAINERD.get_or_init(Containerd::start)
}

impl Containerd {
    fn start() -> Containerd {
        require("containerd", "containerd");
        require("ctr", "containerd");
        let dir = private_dir("containerd");
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
"#,
            d = dir.display()
        );
        std::fs::write(dir.join("config.toml"), config).expect("write config.toml");
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(dir.join("config.toml"));
        let mut child = spawn_daemon(cmd, &dir.join("containerd.log"));
        let ctd = Containerd { dir: dir.clone() };
        wait_until(
            Duration::from_secs(20),
            || ctd.ctr(&["version"]).status.success(),
            || format!("containerd did not come up: {}", ctd.log()),
        );
        let tar = busybox_image(&dir);
        run_ok(&mut ctd.ctr_cmd(&["images", "import", tar.to_str().unwrap()]));
        at_exit(move || {
            let ctd = Containerd { dir: dir.clone() };
            let ids = text(&ctd.ctr(&["containers", "ls", "-q"]).stdout);
            for id in ids.lines() {
                ctd.remove(id.trim());
            }
            stop_daemon(&mut child, Duration::from_secs(10));
            remove_dir(&dir);
            // ctr puts containers in cgroup /<namespace>/<id>.
            remove_cgroups(&format!("/{NS}"));
        });
        ctd
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a")
            .arg(self.dir.join("containerd.sock"))
            .args(["-n", NS])
            .args(args);
        cmd
    }

    fn ctr(&self, args: &[&str]) -> Output {
        output(&mut self.ctr_cmd(args))
    }

    /// `ctr run --runc-binary <flavor> [extra] IMAGE id cmd...` as a shell command line.
    fn run_line(&self, flavor: Flavor, extra: &[&str], id: &str, cmd: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "ctr".into(),
            "-a".into(),
            self.dir.join("containerd.sock").display().to_string(),
            "-n".into(),
            NS.into(),
            "run".into(),
            "--runc-binary".into(),
            flavor.binary().display().to_string(),
            "--runc-root".into(),
            self.dir.join("runc-root").display().to_string(),
            "--fifo-dir".into(),
            self.dir.join("fifo").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(IMAGE.into());
        args.push(id.into());
        args.extend(cmd.iter().map(|s| s.to_string()));
        args
    }

    fn run(&self, flavor: Flavor, extra: &[&str], id: &str, cmd: &[&str]) -> Output {
        let line = self.run_line(flavor, extra, id, cmd);
        output(Command::new(&line[0]).args(&line[1..]))
    }

    fn task_status(&self, id: &str) -> String {
        text(&self.ctr(&["tasks", "ls"]).stdout)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_owned()
    }

    fn wait_status(&self, id: &str, want: &str) {
        wait_until(
            Duration::from_secs(20),
            || self.task_status(id) == want,
            || format!("task {id}: status {:?}, want {want}", self.task_status(id)),
        );
    }

    /// Removes a container and its task whatever their state.
    fn remove(&self, id: &str) {
        let _ = self.ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
        let _ = self.ctr(&["tasks", "resume", id]);
        for _ in 0..200 {
            if matches!(self.task_status(id).as_str(), "STOPPED" | "") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.ctr(&["tasks", "delete", id]);
        let _ = self.ctr(&["containers", "delete", id]);
    }
}

fn id(flavor: Flavor, name: &str) -> String {
    format!("{name}-{flavor:?}").to_lowercase()
}

/// Output, stderr and exit code of a container run attached.
fn attached(flavor: Flavor) -> (String, String, Option<i32>) {
    let ctd = containerd();
    let id = id(flavor, "attached");
    let out = ctd.run(
        flavor,
        &["--rm"],
        &id,
        &["sh", "-c", &format!("{PROBE}; echo err >&2; exit 3")],
    );
    (text(&out.stdout), text(&out.stderr), out.status.code())
}

#[test]
fn attached_run_matches_runc() {
    let (b, r) = (attached(Flavor::Berth), attached(Flavor::Runc));
    assert_eq!(r.2, Some(3), "runc itself misbehaves: {r:?}");
    assert_eq!(r.1, "err\n");
    assert_same_text("ctr run output", &b.0, &r.0);
    assert_same("ctr run stderr", &b.1, &r.1);
    assert_same("ctr run exit code", &b.2, &r.2);
}

fn tty(flavor: Flavor) -> (String, Option<i32>) {
    let ctd = containerd();
    let id = id(flavor, "tty");
    let line = ctd.run_line(
        flavor,
        &["--rm", "-t"],
        &id,
        &[
            "sh",
            "-c",
            "tty; sleep 0.5; stty size; [ -t 0 ] && echo stdin-tty; exit 5",
        ],
    );
    let line: Vec<String> = line.iter().map(|a| sh_quote(a)).collect();
    // `script` gives ctr a terminal; stty makes it 24x80 whatever the caller's terminal is.
    // ctr resizes the container's console only after the task started: hence the sleep.
    with_tty(&format!("stty rows 24 cols 80; {}", line.join(" ")))
}

#[test]
fn tty_run_matches_runc() {
    let (b, r) = (tty(Flavor::Berth), tty(Flavor::Runc));
    assert!(
        r.0.contains("/dev/pts/0\n24 80\nstdin-tty\n"),
        "runc itself misbehaves: {r:?}"
    );
    assert_same("ctr run -t output", &b.0, &r.0);
    assert_same("ctr run -t exit code", &b.1, &r.1);
}

/// The observable results of a detached lifecycle, in order.
fn detached(flavor: Flavor) -> Vec<String> {
    let ctd = containerd();
    let id = id(flavor, "detached");
    let mut seen = Vec::new();
    let trap = "trap 'exit 42' TERM; echo started > /tmp/started; while :; do sleep 0.1; done";
    let out = ctd.run(flavor, &["-d"], &id, &["sh", "-c", trap]);
    let fifo = ctd.dir.join("fifo").display().to_string();
    seen.push(format!(
        "run -d: {:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));
    ctd.wait_status(&id, "RUNNING");

    let out = ctd.ctr(&[
        "tasks",
        "exec",
        "--fifo-dir",
        &fifo,
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "cat /tmp/started; echo $$ >/dev/null; exit 7",
    ]);
    seen.push(format!(
        "exec: {:?} {:?} {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    ));

    let out = ctd.ctr(&["tasks", "pause", &id]);
    seen.push(format!(
        "pause: {:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));
    seen.push(format!("status after pause: {}", ctd.task_status(&id)));
    let out = ctd.ctr(&["tasks", "resume", &id]);
    seen.push(format!(
        "resume: {:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));
    seen.push(format!("status after resume: {}", ctd.task_status(&id)));

    let out = ctd.ctr(&["tasks", "metrics", &id]);
    let names: Vec<String> = text(&out.stdout)
        .lines()
        .skip_while(|l| !l.starts_with("METRIC"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    seen.push(format!(
        "metrics: {:?} {} names {names:?}",
        out.status.code(),
        text(&out.stderr)
    ));

    let out = ctd.ctr(&["tasks", "kill", &id]);
    seen.push(format!(
        "kill: {:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));
    ctd.wait_status(&id, "STOPPED");
    let out = ctd.ctr(&["tasks", "delete", &id]);
    let stderr = text(&out.stderr);
    let code = stderr
        .split("exit code ")
        .nth(1)
        .map(|s| s.trim().trim_end_matches('"').to_owned());
    seen.push(format!(
        "task delete: {:?} reports exit code {code:?}",
        out.status.code()
    ));
    let out = ctd.ctr(&["containers", "delete", &id]);
    seen.push(format!(
        "container delete: {:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));
    let listed = text(&ctd.ctr(&["containers", "ls", "-q"]).stdout)
        .lines()
        .any(|l| l == id);
    seen.push(format!("still listed: {listed}"));
    seen
}

#[test]
fn detached_exec_pause_metrics_kill_delete_match_runc() {
    let (b, r) = (detached(Flavor::Berth), detached(Flavor::Runc));
    let joined = r.join("\n");
    for want in [
        "exec: Some(7) \"started\\n\"",
        "status after pause: PAUSED",
        "status after resume: RUNNING",
        "pids.current",
        "reports exit code Some(\"42\")",
        "still listed: false",
    ] {
        assert!(
            joined.contains(want),
            "runc itself misbehaves ({want}): {joined}"
        );
    }
    assert_same("detached lifecycle", &b, &r);
}

/// `ctr run` attached, killed from outside: the exit code is the trap's.
fn kill_attached(flavor: Flavor) -> (Option<i32>, String) {
    let ctd = containerd();
    let id = id(flavor, "killed");
    let line = ctd.run_line(
        flavor,
        &["--rm"],
        &id,
        &[
            "sh",
            "-c",
            "trap 'echo got TERM; exit 42' TERM; while :; do sleep 0.1; done",
        ],
    );
    let child: Child = Command::new(&line[0])
        .args(&line[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctr run");
    ctd.wait_status(&id, "RUNNING");
    run_ok(&mut ctd.ctr_cmd(&["tasks", "kill", "-s", "SIGTERM", &id]));
    let out = wait_within(child, Duration::from_secs(30), "ctr run (killed)");
    (out.status.code(), text(&out.stdout))
}

#[test]
fn kill_attached_matches_runc() {
    let (b, r) = (kill_attached(Flavor::Berth), kill_attached(Flavor::Runc));
    assert_eq!(
        r,
        (Some(42), "got TERM\n".to_owned()),
        "runc itself misbehaves"
    );
    assert_same("ctr task kill of an attached run", &b, &r);
}
