//! The process: user, groups, umask, cwd, env, rlimits, capabilities, noNewPrivileges, oom.
mod support;
use support::*;

#[test]
fn user_groups_and_umask() {
    let out = sh_with("id -u; id -g; id -G; umask", |b| {
        b.set(
            "/process/user",
            json!({"uid": 1000, "gid": 1001, "umask": 23, "additionalGids": [5, 7]}),
        );
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000", "{out}");
    assert_eq!(lines[1], "1001", "{out}");
    let mut groups: Vec<&str> = lines[2].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["1001", "5", "7"], "{out}");
    assert_eq!(lines[3], "0027", "{out}");
}

#[test]
fn cwd_and_env() {
    let out = sh_with("pwd; echo $FOO; echo $BAR", |b| {
        std::fs::create_dir_all(b.rootfs().join("work/dir")).unwrap();
        b.set("/process/cwd", json!("/work/dir"));
        b.push("/process/env", json!("FOO=foo value"));
        b.push("/process/env", json!("BAR=b=a=r"));
    });
    assert_eq!(out, "/work/dir\nfoo value\nb=a=r\n");
}

#[test]
fn missing_cwd_is_created() {
    let out = sh_with("pwd", |b| {
        b.set("/process/cwd", json!("/not/yet/there"));
    });
    assert_eq!(out, "/not/yet/there\n");
}

#[test]
fn rlimits_are_set() {
    let out = sh_with("ulimit -Sn; ulimit -Hn; ulimit -Sc; ulimit -Hc", |b| {
        b.set(
            "/process/rlimits",
            json!([
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
            ]),
        );
    });
    assert_eq!(out, "512\n768\n0\n0\n");
}

#[test]
fn capability_sets_are_exact() {
    let bounding = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
    ];
    let inheritable = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let effective = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let ambient = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let out = sh_with("cat /proc/self/status", |b| {
        b.set(
            "/process/capabilities",
            json!({
                "bounding": bounding, "effective": effective, "permitted": effective,
                "inheritable": inheritable, "ambient": ambient
            }),
        );
    });
    let hex = |m: u64| format!("{m:016x}");
    assert_eq!(status_field(&out, "CapBnd"), hex(cap_mask(&bounding)));
    assert_eq!(status_field(&out, "CapInh"), hex(cap_mask(&inheritable)));
    assert_eq!(status_field(&out, "CapPrm"), hex(cap_mask(&effective)));
    assert_eq!(status_field(&out, "CapEff"), hex(cap_mask(&effective)));
    assert_eq!(status_field(&out, "CapAmb"), hex(cap_mask(&ambient)));
}

#[test]
fn non_root_user_keeps_ambient_caps_only() {
    // Ambient capabilities must also be inheritable (and permitted) to be raised.
    let out = sh_with("cat /proc/self/status", |b| {
        b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
        b.set("/process/capabilities/inheritable", json!(DEFAULT_CAPS));
    });
    let caps = hex_mask(&DEFAULT_CAPS);
    assert_eq!(status_field(&out, "CapEff"), caps);
    assert_eq!(status_field(&out, "CapAmb"), caps);
    assert_eq!(
        status_field(&out, "Uid").split_whitespace().next(),
        Some("1000")
    );
}

fn hex_mask(names: &[&str]) -> String {
    format!("{:016x}", cap_mask(names))
}

#[test]
fn no_new_privileges_and_oom_score_adj() {
    let out = sh_with(
        "grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj",
        |b| {
            b.set("/process/noNewPrivileges", json!(true));
            b.set("/process/oomScoreAdj", json!(423));
        },
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["NoNewPrivs:", "1", "423"]
    );
    let out = sh_with("grep NoNewPrivs /proc/self/status", |b| {
        b.set("/process/noNewPrivileges", json!(false));
    });
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["NoNewPrivs:", "0"]
    );
}

#[test]
fn process_is_pid_one_in_a_new_pid_namespace() {
    assert_eq!(sh("echo $$"), "1\n");
}

/// Run `script` with a host file as fd 3 of the runtime, extra runtime args and env.
fn run_with_fd3(args: &[&str], env: &[(&str, &str)], script: &str) -> (Outcome, String) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let rt = runtime();
    let b = Bundle::new(&["sh", "-c", script]);
    b.write();
    let shared = tempfile::NamedTempFile::new().unwrap();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(shared.path())
        .unwrap();
    // Through a shell so that LISTEN_PID can name the runtime's own pid (systemd's rule).
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "LISTEN_PID=$$ exec \"$@\"", "sh"])
        .arg(&rt.bin)
        .arg("--root")
        .arg(rt.root.path());
    cmd.arg("run")
        .args(args)
        .args(["--bundle", b.path_str(), &unique_id("fds")]);
    cmd.envs(env.iter().copied())
        .stdin(std::process::Stdio::null());
    let raw = file.as_raw_fd();
    // SAFETY: dup2 is async-signal-safe; fd 3 becomes the file, inherited by the runtime.
    unsafe {
        cmd.pre_exec(move || {
            if libc_dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out: Outcome = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 0, "{out:?}");
    (out, std::fs::read_to_string(shared.path()).unwrap())
}

#[test]
fn preserve_fds_passes_extra_fds() {
    let (out, written) = run_with_fd3(
        &["--preserve-fds", "1"],
        &[],
        "echo through-fd-3 >&3; exec ls /proc/self/fd",
    );
    assert_eq!(written, "through-fd-3\n");
    // 0-2, the preserved 3, and ls's own directory fd.
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3", "4"],
        "{out:?}"
    );
}

#[test]
fn listen_fds_are_passed_with_their_count() {
    let (out, written) = run_with_fd3(
        &[],
        &[("LISTEN_FDS", "1")],
        "echo $LISTEN_FDS; echo via-listen-fd >&3",
    );
    assert_eq!(out.stdout, "1\n", "{out:?}");
    assert_eq!(written, "via-listen-fd\n");
}

/// `dup2(from, to)` that also works when `from` already is `to`: dup2 then does nothing and
/// leaves close-on-exec set, so the fd (which the file got by chance while other tests ran)
/// would vanish at exec.
fn libc_dup2(from: i32, to: i32) -> i32 {
    // SAFETY: plain syscalls on two fds of this (forked, about to exec) process.
    unsafe {
        if from == to {
            libc::fcntl(to, libc::F_SETFD, 0)
        } else {
            libc::dup2(from, to)
        }
    }
}

/// The runtime is a Rust program, which ignores SIGPIPE; its container processes must not
/// inherit that (`yes | head` would spin for ever): the init's process and an exec'd one start
/// with SIGPIPE at its default, as under runc and crun.
#[test]
fn container_processes_get_the_default_sigpipe() {
    const SIGPIPE_BIT: u64 = 1 << (13 - 1);
    let ignored = |status: &str| {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .unwrap_or_else(|| panic!("no SigIgn in {status:?}"));
        u64::from_str_radix(line.trim(), 16).unwrap()
    };
    let init = sh("cat /proc/self/status");
    assert_eq!(ignored(&init) & SIGPIPE_BIT, 0, "init: {init}");
    let rt = runtime();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("sigpipe");
    rt.start(&b, &id);
    let exec = rt.ok(&["exec", &id, "cat", "/proc/self/status"]);
    assert_eq!(ignored(&exec) & SIGPIPE_BIT, 0, "exec: {exec}");
    // And the behaviour it is about: the writer of a closed pipe ends.
    assert_eq!(rt.ok(&["exec", &id, "sh", "-c", "yes | head -c 3"]), "y\ny");
}
