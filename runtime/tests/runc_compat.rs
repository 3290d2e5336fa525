//! Where tools and runc's own test suite depend on runc's behaviour (issue 10): one regression
//! test per bug. Every container here lives in a fresh cgroup of its own.
mod support;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use support::*;

/// A bundle running `args` in a fresh absolute cgroup path; the path too.
fn bundle_in_own_cgroup(args: &[&str]) -> (Bundle, String) {
    let mut b = Bundle::new(args);
    let cg = format!("/{}", unique_id("berth-compat"));
    b.set("/linux/cgroupsPath", json!(cg));
    (b, cg)
}

/// The container's directory on the hierarchy holding `controller` (v1 first, else cgroup2).
fn cgroup_dir(controller: &str, cg: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    if v1.join("cgroup.procs").exists() {
        return v1.join(cg.trim_start_matches('/'));
    }
    let unified = Path::new("/sys/fs/cgroup/unified");
    let base = if unified.join("cgroup.procs").exists() {
        unified
    } else {
        Path::new("/sys/fs/cgroup")
    };
    base.join(cg.trim_start_matches('/'))
}

fn wait_gone(pid: i32) {
    for _ in 0..1000 {
        if !process_alive(pid) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("process {pid} still alive");
}

#[test]
fn delete_force_kills_a_paused_container_and_removes_its_cgroups() {
    let rt = runtime();
    let (b, cg) = bundle_in_own_cgroup(&["sleep", "1000"]);
    let id = unique_id("paused");
    rt.start(&b, &id);
    let pid = rt.pid(&id) as i32;
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    rt.ok(&["delete", "--force", &id]);
    wait_gone(pid);
    rt.assert_no_state(&id);
    let name = cg.trim_start_matches('/');
    assert!(cgroups_named(name).is_empty(), "{:?}", cgroups_named(name));
}

#[test]
fn create_into_a_frozen_cgroup_is_refused() {
    let rt = runtime();
    let (b, cg) = bundle_in_own_cgroup(&["true"]);
    let v1 = Path::new("/sys/fs/cgroup/freezer/cgroup.procs").exists();
    let dir = cgroup_dir("freezer", &cg);
    std::fs::create_dir_all(&dir).unwrap();
    let (file, value) = if v1 {
        ("freezer.state", "FROZEN")
    } else {
        ("cgroup.freeze", "1")
    };
    std::fs::write(dir.join(file), value).unwrap();
    let id = unique_id("frozen");
    b.write();
    let out = rt.exec(&["create", "--bundle", b.path_str(), &id]);
    std::fs::write(dir.join(file), if v1 { "THAWED" } else { "0" }).unwrap();
    let _ = std::fs::remove_dir(&dir);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("container's cgroup unexpectedly frozen"),
        "{out:?}"
    );
    rt.assert_no_state(&id);
    let name = cg.trim_start_matches('/');
    assert!(cgroups_named(name).is_empty(), "{:?}", cgroups_named(name));
}

#[test]
fn events_interval_takes_go_durations() {
    let rt = runtime();
    let (b, _cg) = bundle_in_own_cgroup(&["sleep", "1000"]);
    let id = unique_id("events");
    rt.start(&b, &id);
    for bad in ["5x", "-1s", "ms", "0"] {
        let err = rt.fails(&["events", "--interval", bad, &id]);
        assert!(err.contains("--interval") && err.contains(bad), "{err}");
    }
    let mut child = rt
        .command()
        .args(["events", "--interval", "100ms", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let ev: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?} {status} {err}"));
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn update_takes_minus_one_for_cpu_quota_and_rt_runtime() {
    let rt = runtime();
    let (mut b, cg) = bundle_in_own_cgroup(&["sleep", "1000"]);
    b.set(
        "/linux/resources/cpu",
        json!({"period": 100000, "quota": 20000}),
    );
    let id = unique_id("quota");
    rt.start(&b, &id);
    let dir = cgroup_dir("cpu", &cg);
    let (file, unlimited) = if dir.join("cpu.cfs_quota_us").exists() {
        ("cpu.cfs_quota_us", "-1")
    } else {
        ("cpu.max", "max 100000")
    };
    assert_ne!(
        std::fs::read_to_string(dir.join(file)).unwrap().trim(),
        unlimited
    );
    rt.ok(&["update", "--cpu-quota", "-1", &id]);
    assert_eq!(
        std::fs::read_to_string(dir.join(file)).unwrap().trim(),
        unlimited
    );
    // cpu.rt_runtime_us takes -1 (no limit) only where the parent allows it; the flag parser
    // must pass it on either way, so any refusal names the file, not the flag.
    let out = rt.exec(&["update", "--cpu-rt-runtime", "-1", &id]);
    assert!(
        out.code == 0 || out.stderr.contains("rt_runtime"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("unexpected argument"), "{out:?}");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn kill_takes_signal_zero_and_real_time_signals() {
    let rt = runtime();
    let (b, _cg) = bundle_in_own_cgroup(&[
        "sh",
        "-c",
        "trap 'echo 40 >> /tmp/rt' 40; trap 'echo 37 >> /tmp/rt' 37; \
         echo > /tmp/ready; while :; do sleep 0.05; done",
    ]);
    let id = unique_id("rtsig");
    rt.start(&b, &id);
    wait_for_file(&b.rootfs().join("tmp/ready"), 10);
    rt.ok(&["kill", &id, "0"]);
    rt.ok(&["kill", &id, "40"]);
    assert_eq!(wait_for_file(&b.rootfs().join("tmp/rt"), 10), "40\n");
    // glibc's SIGRTMIN is 34: systemd's stop signal SIGRTMIN+3 is 37.
    rt.ok(&["kill", &id, "SIGRTMIN+3"]);
    for _ in 0..1000 {
        if std::fs::read_to_string(b.rootfs().join("tmp/rt")).unwrap() == "40\n37\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("tmp/rt")).unwrap(),
        "40\n37\n"
    );
    for bad in ["65", "SIGRTMIN+40", "RTMAX-99", "SIGNOPE"] {
        let err = rt.fails(&["kill", &id, bad]);
        assert!(err.contains(bad), "{err}");
    }
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn exec_process_file_needs_only_cwd_and_args() {
    let rt = runtime();
    let (b, _cg) = bundle_in_own_cgroup(&["sleep", "1000"]);
    let id = unique_id("execp");
    rt.start(&b, &id);
    let file = b.path().join("process.json");
    std::fs::write(
        &file,
        r#"{"cwd": "/tmp", "args": ["sh", "-c", "pwd; id -u"]}"#,
    )
    .unwrap();
    let out = rt.ok(&["exec", "-p", file.to_str().unwrap(), &id]);
    assert_eq!(out, "/tmp\n0\n");
    std::fs::write(&file, r#"{"args": ["true"]}"#).unwrap();
    let err = rt.fails(&["exec", "-p", file.to_str().unwrap(), &id]);
    assert!(err.contains("cwd"), "{err}");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn exec_failure_of_the_runtime_exits_255() {
    let rt = runtime();
    let (b, _cg) = bundle_in_own_cgroup(&["sleep", "1000"]);
    let id = unique_id("exec255");
    rt.start(&b, &id);
    let out = rt.exec(&["exec", &id, "/no/such/binary"]);
    assert_eq!(out.code, 255, "{out:?}");
    // The process's own code is passed on as is.
    let out = rt.exec(&["exec", &id, "sh", "-c", "exit 3"]);
    assert_eq!(out.code, 3, "{out:?}");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn exec_cgroup_places_the_process_in_a_sub_cgroup() {
    let rt = runtime();
    let (b, cg) = bundle_in_own_cgroup(&["sleep", "1000"]);
    let id = unique_id("execcg");
    rt.start(&b, &id);
    let sub = cgroup_dir("pids", &cg).join("sub");
    std::fs::create_dir(&sub).unwrap();
    let out = rt.ok(&[
        "exec",
        "--cgroup",
        "pids:sub",
        &id,
        "cat",
        "/proc/self/cgroup",
    ]);
    let pids_line = out
        .lines()
        .find(|l| l.contains(":pids:") || l.starts_with("0::"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(pids_line.ends_with("/sub"), "{out}");
    let err = rt.fails(&["exec", "--cgroup", "no-such-sub", &id, "true"]);
    assert!(err.contains("no-such-sub"), "{err}");
    let err = rt.fails(&["exec", "--cgroup", "nope:sub", &id, "true"]);
    assert!(err.contains("unknown controller"), "{err}");
    let err = rt.fails(&["exec", "--cgroup", "../escape", &id, "true"]);
    assert!(err.contains("../escape"), "{err}");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn list_and_events_json_keys_are_in_runcs_order() {
    let rt = runtime();
    let (b, _cg) = bundle_in_own_cgroup(&["sleep", "1000"]);
    let id = unique_id("order");
    rt.start(&b, &id);
    let list = rt.ok(&["list", "--format", "json"]);
    let keys = [
        "\"ociVersion\"",
        "\"id\"",
        "\"pid\"",
        "\"status\"",
        "\"bundle\"",
        "\"rootfs\"",
        "\"created\"",
        "\"owner\"",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| list.find(k).unwrap_or_else(|| panic!("{k} in {list}")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{list}");
    let stats = rt.ok(&["events", "--stats", &id]);
    let at: Vec<usize> = ["\"type\"", "\"id\"", "\"data\""]
        .iter()
        .map(|k| stats.find(k).unwrap_or_else(|| panic!("{k} in {stats}")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{stats}");
    rt.ok(&["delete", "--force", &id]);
}

/// As crun's: with `--log` an error goes to the log only. Under a shim the runtime's stderr is
/// the container's, where the error would show among its output (runc prints it there too;
/// containerd's runc shim hides it by copying the container's output only once `create`
/// succeeded). Without a log the error is on stderr.
#[test]
fn with_a_log_an_error_is_not_on_stderr() {
    let rt = runtime();
    let (b, _cg) = bundle_in_own_cgroup(&["/nosuchcommand"]);
    b.write();
    let log = b.path().join("log.json");
    let id = unique_id("errlog");
    let out = rt.exec(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "run",
        "--bundle",
        b.path_str(),
        &id,
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr.is_empty(), !is_runc(), "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("\"level\":\"error\"") && text.contains("nosuchcommand"),
        "{text}"
    );
    let id = unique_id("errlog");
    let out = rt.exec(&["run", "--bundle", b.path_str(), &id]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("nosuchcommand"), "{out:?}");
}

#[test]
fn debug_with_log_writes_debug_records_for_run() {
    let rt = runtime();
    let (b, _cg) = bundle_in_own_cgroup(&["true"]);
    b.write();
    for format in ["text", "json"] {
        let log = b.path().join(format!("log.{format}"));
        let id = unique_id("debug");
        let out = rt.exec(&[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            format,
            "--debug",
            "run",
            "--bundle",
            b.path_str(),
            &id,
        ]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(!out.stderr.contains("level=debug"), "{out:?}");
        let text = std::fs::read_to_string(&log).unwrap();
        let want = if format == "json" {
            "\"level\":\"debug\""
        } else {
            "level=debug"
        };
        assert!(text.contains(want), "{text}");
        // Records of the init itself, written after it closed what it does not need.
        assert!(text.contains("child process in init()"), "{text}");
        assert!(
            text.contains("init: closing the pipe to signal completion"),
            "{text}"
        );
    }
    // Without --log, debug records go to stderr in the same text form.
    let out = rt.exec(&[
        "--debug",
        "run",
        "--bundle",
        b.path_str(),
        &unique_id("debug"),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("level=debug"), "{out:?}");
}

#[test]
fn the_terminal_belongs_to_the_process_user() {
    let rt = runtime();
    let console = ConsoleSocket::listen().unwrap();
    let (mut b, _cg) = bundle_in_own_cgroup(&[
        "sh",
        "-c",
        "stat -c 'owner %u' $(tty); echo hi > $(tty) && echo reopened",
    ]);
    b.set("/process/terminal", json!(true));
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.write();
    let id = unique_id("ttyown");
    rt.ok(&[
        "create",
        "--bundle",
        b.path_str(),
        "--console-socket",
        console.path_str(),
        &id,
    ]);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped");
    let out = console.output().unwrap();
    rt.ok(&["delete", &id]);
    assert!(out.contains("owner 1000"), "{out:?}");
    assert!(out.contains("reopened"), "{out:?}");
}

#[test]
fn create_container_hooks_run_in_the_rootfs() {
    let rt = runtime();
    let (mut b, _cg) = bundle_in_own_cgroup(&["true"]);
    b.set(
        "/hooks",
        json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "pwd > ./hook-cwd"]}]}),
    );
    rt.run_ok(&b);
    let cwd = std::fs::read_to_string(b.rootfs().join("hook-cwd"))
        .unwrap_or_else(|e| panic!("the hook wrote no ./hook-cwd in the rootfs: {e}"));
    assert_eq!(
        Path::new(cwd.trim()).canonicalize().unwrap(),
        b.rootfs().canonicalize().unwrap()
    );
}

#[test]
fn cpuset_of_a_pre_created_parent_is_filled_in() {
    let rt = runtime();
    let parent = unique_id("berth-cpuset-parent");
    let cpuset = Path::new("/sys/fs/cgroup/cpuset");
    let v1 = cpuset.join("cgroup.procs").exists();
    let parent_dir = cpuset.join(&parent);
    if v1 {
        // A new v1 cpuset cgroup has empty cpus and mems: no task can join it or its children.
        std::fs::create_dir(&parent_dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(parent_dir.join("cpuset.cpus"))
                .unwrap()
                .trim(),
            ""
        );
    }
    let mut b = Bundle::new(&["cat", "/proc/self/cgroup"]);
    b.set("/linux/cgroupsPath", json!(format!("/{parent}/ct")));
    let out = rt.run(&b, &unique_id("cpuset"));
    let filled = v1.then(|| std::fs::read_to_string(parent_dir.join("cpuset.cpus")).unwrap());
    // The runtime made the parent on the other hierarchies: remove it everywhere.
    for d in cgroups_named(&parent) {
        let _ = std::fs::remove_dir(Path::new(&d).join("ct"));
        let _ = std::fs::remove_dir(&d);
    }
    assert!(
        cgroups_named(&parent).is_empty(),
        "{:?}",
        cgroups_named(&parent)
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&format!("/{parent}/ct")), "{out:?}");
    if let Some(cpus) = filled {
        assert_ne!(cpus.trim(), "", "the parent's cpuset.cpus stayed empty");
    }
}

/// A seccomp agent on `path`: every listener fd it is sent gets a thread that answers each
/// notification with success (0) without doing the call.
fn seccomp_agent(path: &Path) {
    use std::os::fd::AsRawFd;
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let Ok(fd) = berth_integration::console::receive_fd(&stream) else {
                continue;
            };
            std::thread::spawn(move || {
                while let Ok(req) = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()) {
                    let resp = libseccomp::ScmpNotifResp::new_val(
                        req.id,
                        0,
                        libseccomp::ScmpNotifRespFlags::empty(),
                    );
                    let _ = resp.respond(fd.as_raw_fd());
                }
            });
        }
    });
}

#[test]
fn exec_sends_its_seccomp_listener_to_the_agent() {
    let rt = runtime();
    let (mut b, _cg) = bundle_in_own_cgroup(&["sleep", "1000"]);
    let socket = b.path().join("agent.sock");
    seccomp_agent(&socket);
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": socket,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    let id = unique_id("notify");
    rt.start(&b, &id);
    // The agent answers "done" without making the directory.
    let out = rt.exec(&[
        "exec",
        &id,
        "sh",
        "-c",
        "mkdir /tmp/by-agent; echo rc=$?; ls -d /tmp/by-agent || echo absent",
    ]);
    rt.ok(&["delete", "--force", &id]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("rc=0") && out.stdout.contains("absent"),
        "{out:?}"
    );
}

#[test]
fn runcs_default_spec_runs_without_a_word_on_stderr() {
    // Its ambient capabilities are not inheritable: runc says nothing, and tools compare the
    // output of `run`/`exec` with stderr merged in.
    let rt = runtime();
    let b = Bundle::new(&["echo", "quiet"]);
    b.write();
    let out = rt.exec(&["run", "--bundle", b.path_str(), &unique_id("quiet")]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "quiet\n");
    assert_eq!(out.stderr, "", "{out:?}");
}

#[test]
fn create_leaves_no_copy_of_the_callers_stderr_in_the_waiting_init() {
    // Callers (runc's own tests, `$(runc create …)`) read the output of `create` to its end:
    // the init waiting for `start` must not hold their pipe open.
    // With a terminal the container's stdio is the pty, not the caller's.
    let rt = runtime();
    let console = ConsoleSocket::listen().unwrap();
    let (mut b, _cg) = bundle_in_own_cgroup(&["true"]);
    b.set("/process/terminal", json!(true));
    b.write();
    let id = unique_id("pipes");
    let out = rt
        .command()
        .args([
            "create",
            "--bundle",
            b.path_str(),
            "--console-socket",
            console.path_str(),
            &id,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output() // returns only once every copy of both pipes is closed
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(rt.status(&id), "created");
    rt.ok(&["delete", "--force", &id]);
}

/// The mountinfo lines of `info` at `target` and below it.
fn mounts_at_and_below<'a>(info: &'a str, target: &str) -> Vec<&'a str> {
    let below = format!("{target}/");
    info.lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|t| t == target || t.starts_with(&below))
        })
        .collect()
}

#[test]
fn recursive_mount_options_apply_to_every_sub_mount() {
    // The host's /dev holds sub-mounts (/dev/pts, /dev/shm): an rbind of it has several.
    let out = sh_with("cat /proc/self/mountinfo", |b| {
        b.push("/mounts", json!({"destination": "/rec", "type": "bind", "source": "/dev",
            "options": ["rbind", "rro", "rnosuid", "rnodev", "rnoexec", "rnoatime", "rnosymfollow"]}));
        b.push(
            "/mounts",
            json!({"destination": "/top", "type": "bind", "source": "/dev",
            "options": ["rbind", "ro", "nosymfollow"]}),
        );
    });
    let rec = mounts_at_and_below(&out, "/rec");
    assert!(rec.len() >= 3, "{out}");
    for line in &rec {
        let (opts, _) = mount_opts(line);
        for o in ["ro", "nosuid", "nodev", "noexec", "noatime", "nosymfollow"] {
            assert!(opts.contains(&o), "{o} missing: {line}");
        }
    }
    let top = mounts_at_and_below(&out, "/top");
    assert!(top.len() >= 3, "{out}");
    let (opts, _) = mount_opts(top[0]);
    assert!(
        opts.contains(&"ro") && opts.contains(&"nosymfollow"),
        "{}",
        top[0]
    );
    for line in &top[1..] {
        let (opts, _) = mount_opts(line);
        assert!(
            opts.contains(&"rw") && !opts.contains(&"nosymfollow"),
            "{line}"
        );
    }
}

#[test]
fn recursive_atime_and_rw_options_replace_earlier_ones() {
    let out = sh_with("cat /proc/self/mountinfo", |b| {
        b.push(
            "/mounts",
            json!({"destination": "/rec", "type": "bind", "source": "/dev",
            "options": ["rbind", "rro", "rrw", "rnoatime", "rstrictatime"]}),
        );
    });
    for line in mounts_at_and_below(&out, "/rec") {
        let (opts, _) = mount_opts(line);
        assert!(opts.contains(&"rw"), "{line}");
        assert!(
            !opts.contains(&"noatime") && !opts.contains(&"relatime"),
            "{line}"
        );
    }
}

#[test]
fn an_unknown_bind_mount_option_is_an_error() {
    let rt = runtime();
    let mut b = Bundle::new(&["true"]);
    b.push(
        "/mounts",
        json!({"destination": "/x", "type": "bind", "source": "/dev",
        "options": ["rbind", "rrro"]}),
    );
    let id = unique_id("badopt");
    let out = rt.run(&b, &id);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("\"rrro\"") && out.stderr.contains("/x"),
        "{out:?}"
    );
    rt.assert_no_state(&id);
    // Filesystem data (runtime-tools shares one list between tmpfs and bind mounts) has no
    // filesystem to go to on a bind: it mounts.
    let out = sh_with("grep ' /y ' /proc/self/mountinfo", |b| {
        b.push(
            "/mounts",
            json!({"destination": "/y", "type": "bind", "source": "/dev",
            "options": ["bind", "nosuid", "strictatime", "mode=755", "size=1k"]}),
        );
    });
    let (opts, _) = mount_opts(mount_line(&out, "/y"));
    assert!(opts.contains(&"nosuid"), "{out}");
}

#[test]
fn features_lists_the_recursive_mount_options() {
    let out = runtime().ok(&["features"]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let opts: Vec<&str> = doc["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    for o in [
        "rro",
        "rrw",
        "rnosuid",
        "rsuid",
        "rnodev",
        "rdev",
        "rnoexec",
        "rexec",
        "rnoatime",
        "ratime",
        "rrelatime",
        "rnorelatime",
        "rstrictatime",
        "rnostrictatime",
        "rnodiratime",
        "rdiratime",
        "nosymfollow",
        "symfollow",
        "rnosymfollow",
        "rsymfollow",
    ] {
        assert!(opts.contains(&o), "{o} not in {opts:?}");
    }
}

#[test]
fn a_read_only_dev_tmpfs_gets_its_nested_mounts_and_devices() {
    // /dev/pts, /dev/shm, /dev/mqueue and the device nodes are made inside /dev after its mount;
    // a tmpfs under a read-only tmpfs needs its mount point made too.
    let out = sh_with(
        "cat /proc/self/mountinfo; echo x > /dev/null && echo NULL-OK; \
         touch /dev/new 2>/dev/null || echo DEV-RO; touch /ro/new 2>/dev/null || echo RO-RO; \
         touch /ro/inner/f && echo INNER-RW",
        |b| {
            let mounts = b.config["mounts"].as_array_mut().unwrap();
            for m in mounts.iter_mut() {
                if m["destination"] == "/dev" {
                    m["options"].as_array_mut().unwrap().push(json!("ro"));
                }
            }
            b.push("/mounts", json!({"destination": "/ro", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "mode=755"]}));
            b.push(
                "/mounts",
                json!({"destination": "/ro/inner", "type": "tmpfs", "source": "tmpfs"}),
            );
        },
    );
    for (target, want) in [
        ("/dev", "ro"),
        ("/ro", "ro"),
        ("/dev/pts", "rw"),
        ("/ro/inner", "rw"),
    ] {
        let (opts, _) = mount_opts(mount_line(&out, target));
        assert_eq!(opts[0], want, "{target}: {out}");
    }
    for word in ["NULL-OK", "DEV-RO", "RO-RO", "INNER-RW"] {
        assert!(out.contains(word), "{word} missing: {out}");
    }
}

#[test]
fn debug_exec_records_the_steps_tools_look_for() {
    let rt = runtime();
    let (b, _cg) = bundle_in_own_cgroup(&["sleep", "1000"]);
    let id = unique_id("dbgexec");
    rt.start(&b, &id);
    let want = [
        "nsexec container setup",
        "child process in init()",
        "setns_init: about to exec",
    ];
    let out = rt.exec(&["--debug", "exec", &id, "true"]);
    assert_eq!(out.code, 0, "{out:?}");
    for w in want {
        assert!(out.stderr.contains(w), "{w} missing: {out:?}");
    }
    let log = b.path().join("exec.log");
    let out = rt.exec(&[
        "--debug",
        "--log",
        log.to_str().unwrap(),
        "exec",
        &id,
        "true",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("level=debug"), "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    for w in want {
        assert!(text.contains(w), "{w} missing: {text}");
    }
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn seccomp_notify_without_an_agent_says_so() {
    let rt = runtime();
    let mut b = Bundle::new(&["true"]);
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": b.path().join("no-agent.sock"),
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    let id = unique_id("noagent");
    let out = rt.run(&b, &id);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("failed to connect with seccomp agent")
            && out.stderr.contains("no-agent.sock"),
        "{out:?}"
    );
    rt.assert_no_state(&id);
}

#[test]
fn seccomp_notify_for_write_is_refused() {
    let rt = runtime();
    let mut b = Bundle::new(&["true"]);
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": b.path().join("agent.sock"),
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
                         {"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    let id = unique_id("notifywrite");
    let out = rt.run(&b, &id);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(
            "linux.seccomp.syscalls[1]: SCMP_ACT_NOTIFY cannot be used for the write syscall"
        ),
        "{out:?}"
    );
    rt.assert_no_state(&id);
}

#[test]
fn a_failing_start_container_hook_says_error_running_hook() {
    let rt = runtime();
    let mut b = Bundle::new(&["true"]);
    b.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]
        }),
    );
    b.set(
        "/hooks/startContainer",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/x"]}]),
    );
    let id = unique_id("hookfail");
    let out = rt.run(&b, &id);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("error running hook #0")
            && out.stderr.contains("startContainer")
            && out.stderr.contains("bad system call"),
        "{out:?}"
    );
}

#[test]
fn unified_keys_no_cgroup2_file_holds_are_an_invalid_configuration() {
    // On this hybrid host memory is a v1 controller; on a pure v2 host the key names no file.
    let key = if Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        "memory.min"
    } else {
        "memory.no_such_file"
    };
    let rt = runtime();
    let (mut b, cg) = bundle_in_own_cgroup(&["true"]);
    b.set("/linux/resources/unified", json!({key: "131072"}));
    let id = unique_id("unified");
    let out = rt.run(&b, &id);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("invalid configuration") && out.stderr.contains(key),
        "{out:?}"
    );
    rt.assert_no_state(&id);
    let name = cg.trim_start_matches('/');
    assert!(cgroups_named(name).is_empty(), "{:?}", cgroups_named(name));
}

/// A bundle in a new user namespace (root mapped to 100000) with its rootfs owned by that
/// root, and two bind sources in 0700 directories only host root can enter.
fn userns_bundle_with_inaccessible_binds(args: &[&str]) -> Bundle {
    use std::os::unix::fs::PermissionsExt;
    let mut b = Bundle::new(args);
    b.namespace("user", None);
    for key in ["/linux/uidMappings", "/linux/gidMappings"] {
        b.set(
            key,
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
        );
    }
    let st = std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(st.success());
    for n in ["1", "2"] {
        let secret = b.path().join(format!("secret-{n}"));
        std::fs::create_dir_all(secret.join("dir")).unwrap();
        std::fs::write(secret.join("dir/foo.txt"), n).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
        b.push(
            "/mounts",
            json!({"source": format!("secret-{n}/dir"),
            "destination": format!("/tmp/mount-{n}"), "options": ["bind"]}),
        );
    }
    b
}

#[test]
fn bind_sources_only_host_root_reaches_mount_in_a_user_namespace() {
    let b = userns_bundle_with_inaccessible_binds(&[
        "cat",
        "/tmp/mount-1/foo.txt",
        "/tmp/mount-2/foo.txt",
    ]);
    assert_eq!(runtime().run_ok(&b), "12");
    let rt = runtime();
    let b = userns_bundle_with_inaccessible_binds(&["sleep", "1000"]);
    let id = unique_id("userns-binds");
    rt.start(&b, &id);
    let out = rt.exec(&[
        "exec",
        &id,
        "cat",
        "/tmp/mount-1/foo.txt",
        "/tmp/mount-2/foo.txt",
    ]);
    rt.ok(&["delete", "--force", &id]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "12"), "{out:?}");
}

#[test]
fn a_missing_bind_source_in_a_user_namespace_is_named() {
    let rt = runtime();
    let mut b = userns_bundle_with_inaccessible_binds(&["true"]);
    b.push(
        "/mounts",
        json!({"source": "/nonexistent-berth-src", "destination": "/x", "options": ["bind"]}),
    );
    let id = unique_id("userns-nosrc");
    let out = rt.run(&b, &id);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("/nonexistent-berth-src"), "{out:?}");
    rt.assert_no_state(&id);
}

#[test]
fn a_container_without_namespaces_waits_for_start_and_runs() {
    // No mount namespace: a chroot into the rootfs, whose /proc is an empty directory; the
    // waiting init must still reach its exec fifo (runtime-tools' linux_ns_itype).
    let rt = runtime();
    let (mut b, _cg) = bundle_in_own_cgroup(&["sh", "-c", "echo ran > /ran"]);
    b.set("/linux/namespaces", json!([]));
    // runc refuses masks without a mount namespace of their own.
    b.set("/linux/maskedPaths", json!([]));
    b.set("/linux/readonlyPaths", json!([]));
    if let Some(c) = b.config.as_object_mut() {
        c.remove("hostname");
    }
    let id = unique_id("nons");
    rt.create(&b, &id);
    let pid = rt.pid(&id) as i32;
    assert!(pid > 0 && process_alive(pid), "{:?}", rt.state(&id));
    rt.ok(&["start", &id]);
    assert_eq!(wait_for_file(&b.rootfs().join("ran"), 10), "ran\n");
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
}
