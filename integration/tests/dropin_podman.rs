//! berth-runtime as a drop-in for runc under Debian's podman 4.3 (`podman --runtime <path>`).
//!
//! Podman has no daemon: the shared part is a private storage root/runroot/tmpdir, set up once
//! per test binary (image loaded with `podman load` of the test's docker-archive tar) and
//! removed at exit. Each scenario runs with berth-runtime and with Debian's runc; deterministic
//! results must be equal. Containers run with `--network none` and cgroupfs.
mod dropin_common;

use dropin_common::*;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// This machine's root lacks CAP_SYS_RESOURCE, so no hard rlimit can be raised, while podman as
/// root asks the runtime for RLIMIT_NOFILE 1048576 and RLIMIT_NPROC 4194304 by default (runc
/// then fails: "error setting rlimit type 6: operation not permitted"). Explicit values within
/// the hard limits always work (`--ulimit host` does not help: crun and runc refuse it too).
const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
];

struct Podman {
    dir: PathBuf,
}

static PODMAN: OnceLock<Podman> = OnceLock::new();

/// The shared podman storage, set up on first use and removed when the test binary exits.
fn podman() -> &'static Podman {
    PODMAN.get_or_init(Podman::setup)
}

impl Podman {
    fn setup() -> Podman {
        require("podman", "podman");
        require("conmon", "conmon");
        let dir = private_dir("podman");
        let p = Podman { dir: dir.clone() };
        let tar = busybox_image(&dir);
        run_ok(&mut p.cmd(Flavor::Runc, &["load", "-i", tar.to_str().unwrap()]));
        at_exit(move || {
            let p = Podman { dir: dir.clone() };
            let _ = p.podman(Flavor::Runc, &["rm", "-af", "-t", "0"]);
            let _ = p.podman(Flavor::Runc, &["system", "reset", "-f"]);
            remove_dir(&dir);
            remove_cgroups(&cgroup_parent("podman"));
            remove_lock_segment();
        });
        p
    }

    /// `podman` with private storage, cgroupfs, file events and `flavor`'s runtime.
    fn cmd(&self, flavor: Flavor, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("XDG_CONFIG_HOME", self.dir.join("config"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .arg("--runtime")
            .arg(flavor.binary())
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--storage-driver",
                "overlay",
            ])
            .args(args);
        cmd
    }

    fn podman(&self, flavor: Flavor, args: &[&str]) -> Output {
        output(&mut self.cmd(flavor, args))
    }

    /// `podman run --network none [extra] IMAGE cmd...`
    fn run(&self, flavor: Flavor, extra: &[&str], cmd: &[&str]) -> Output {
        let parent = cgroup_parent("podman");
        let mut args = vec!["run", "--network", "none", "--cgroup-parent", &parent];
        args.extend(extra);
        args.push(IMAGE);
        args.extend(cmd);
        self.podman(flavor, &args)
    }

    fn inspect(&self, flavor: Flavor, name: &str, format: &str) -> String {
        text(&self.podman(flavor, &["inspect", "-f", format, name]).stdout)
            .trim()
            .to_owned()
    }
}

/// Podman (as root) keeps its container locks in the shared memory segment `libpod_lock`
/// whatever `--root` says; remove it when no other podman or conmon is running.
fn remove_lock_segment() {
    for _ in 0..40 {
        if !podman_running() {
            let _ = std::fs::remove_file("/dev/shm/libpod_lock");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether a live (not zombie) podman or conmon other than us exists.
fn podman_running() -> bool {
    let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    entries.into_iter().any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let Some((comm, rest)) = stat.split_once(") ") else {
            return false;
        };
        let comm = comm.split_once(" (").map(|(_, c)| c).unwrap_or("");
        matches!(comm, "podman" | "conmon") && !rest.starts_with('Z')
    })
}

fn name(flavor: Flavor, what: &str) -> String {
    format!("dropin-{what}-{flavor:?}").to_lowercase()
}

fn attached(flavor: Flavor) -> (String, String, Option<i32>) {
    let p = podman();
    let out = p.run(
        flavor,
        &["--rm", ULIMITS[0], ULIMITS[1], ULIMITS[2], ULIMITS[3]],
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
    assert_same_text("podman run output", &b.0, &r.0);
    assert_same("podman run stderr", &b.1, &r.1);
    assert_same("podman run exit code", &b.2, &r.2);
}

/// Without `--ulimit`, podman (as root) asks for limits this machine refuses (see [`ULIMITS`]);
/// whatever runc makes of it, berth-runtime must do the same.
fn default_nofile(flavor: Flavor) -> (String, Option<i32>) {
    let p = podman();
    let out = p.run(flavor, &["--rm"], &["sh", "-c", "ulimit -n; ulimit -Hn"]);
    let err = text(&out.stderr);
    let code = out.status.code();
    let out = text(&out.stdout);
    // Error texts differ between runtimes: compare only whether it ran and what it printed.
    (
        if code == Some(0) {
            out
        } else {
            format!("failed: {}", err.lines().count() > 0)
        },
        code,
    )
}

#[test]
fn default_ulimits_match_runc() {
    let (b, r) = (default_nofile(Flavor::Berth), default_nofile(Flavor::Runc));
    assert_same("podman run without --ulimit", &b, &r);
}

fn limits(flavor: Flavor) -> (String, String, Option<i32>) {
    let p = podman();
    let out = p.run(
        flavor,
        &["--rm", ULIMITS[0], ULIMITS[1], ULIMITS[2], ULIMITS[3], "-m", "64m", "--cpus", "0.5", "--pids-limit", "50"],
        &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids/pids.max"],
    );
    (text(&out.stdout), text(&out.stderr), out.status.code())
}

#[test]
fn limits_visible_inside_like_runc() {
    let (b, r) = (limits(Flavor::Berth), limits(Flavor::Runc));
    assert_eq!(
        r.0, "67108864\n50000\n50\n",
        "runc itself misbehaves: {r:?}"
    );
    assert_same(
        "podman -m 64m --cpus 0.5 --pids-limit 50 seen inside",
        &b,
        &r,
    );
}

fn tty(flavor: Flavor) -> (String, Option<i32>) {
    let p = podman();
    let parent = cgroup_parent("podman");
    let mut cmd = p.cmd(
        flavor,
        &[
            "run",
            "--rm",
            "-it",
            "--network",
            "none",
            "--cgroup-parent",
            &parent,
            ULIMITS[0],
            ULIMITS[1],
            ULIMITS[2],
            ULIMITS[3],
            IMAGE,
        ],
    );
    cmd.args(["sh", "-c", "tty; [ -t 0 ] && echo stdin-tty; exit 5"]);
    let mut line = vec![sh_quote(&format!(
        "XDG_CONFIG_HOME={}",
        p.dir.join("config").display()
    ))];
    line.push(sh_quote(cmd.get_program().to_str().unwrap()));
    line.extend(cmd.get_args().map(|a| sh_quote(a.to_str().unwrap())));
    with_tty(&format!("env {}", line.join(" ")))
}

#[test]
fn tty_run_matches_runc() {
    let (b, r) = (tty(Flavor::Berth), tty(Flavor::Runc));
    assert!(
        r.0.contains("/dev/pts/0\nstdin-tty\n") && r.1 == Some(5),
        "runc itself misbehaves: {r:?}"
    );
    assert_same("podman run -it", &b, &r);
}

/// A detached container through exec, pause/unpause, stop and rm; results in order.
fn lifecycle(flavor: Flavor) -> Vec<String> {
    let p = podman();
    let name = name(flavor, "life");
    let _ = p.podman(flavor, &["rm", "-f", "-t", "0", &name]);
    let mut seen = Vec::new();
    let trap = "trap 'exit 42' TERM; while :; do sleep 0.1; done";
    let out = p.run(
        flavor,
        &[
            "-d", "--name", &name, ULIMITS[0], ULIMITS[1], ULIMITS[2], ULIMITS[3],
        ],
        &["sh", "-c", trap],
    );
    seen.push(format!(
        "run -d: {:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));

    let out = p.podman(flavor, &["exec", &name, "sh", "-c", "echo in-exec; exit 7"]);
    seen.push(format!(
        "exec: {:?} {:?} {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    ));

    let out = p.podman(flavor, &["pause", &name]);
    seen.push(format!("pause: {:?}", out.status.code()));
    seen.push(format!(
        "status: {}",
        p.inspect(flavor, &name, "{{.State.Status}}")
    ));
    let out = p.podman(flavor, &["unpause", &name]);
    seen.push(format!("unpause: {:?}", out.status.code()));
    seen.push(format!(
        "status: {}",
        p.inspect(flavor, &name, "{{.State.Status}}")
    ));

    let out = p.podman(flavor, &["stop", "-t", "10", &name]);
    seen.push(format!(
        "stop: {:?} {}",
        out.status.code(),
        text(&out.stderr)
    ));
    seen.push(format!(
        "exit code: {}",
        p.inspect(flavor, &name, "{{.State.ExitCode}}")
    ));
    let out = p.podman(flavor, &["rm", &name]);
    seen.push(format!("rm: {:?} {}", out.status.code(), text(&out.stderr)));
    seen
}

#[test]
fn exec_pause_stop_match_runc() {
    let (b, r) = (lifecycle(Flavor::Berth), lifecycle(Flavor::Runc));
    let joined = r.join("\n");
    for want in [
        "exec: Some(7) \"in-exec\\n\"",
        "status: paused",
        "status: running",
        "exit code: 42",
    ] {
        assert!(
            joined.contains(want),
            "runc itself misbehaves ({want}): {joined}"
        );
    }
    assert_same("podman lifecycle", &b, &r);
}
