//! `exec` enters the container safely (CVE-2016-9962 class): the process that becomes visible
//! in the container's pid namespace is already in its mount namespace, not dumpable, and holds
//! no fd to a host file. A second container sharing the pid namespace, with CAP_SYS_PTRACE,
//! watches for `exec`'s process while every setns(2) is slowed down by strace.
mod support;
use std::path::Path;
use std::process::Command;
use support::*;

/// What the watcher container reports: a host file read through `/proc/<pid>/root`, or an fd
/// above stdio of a runtime process that resolves to a path.
const WATCH: &str = r#"
echo ready > /ready
while [ ! -e /stop ]; do
  for p in /proc/[0-9]*; do
    cat "$p/root$MARKER" 2>/dev/null && echo "LEAK root $p" >> /out
    case "$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" in
      *berth-runtime*|*runc*)
        for f in "$p"/fd/*; do
          case "${f##*/}" in 0|1|2) continue;; esac
          l=$(readlink "$f" 2>/dev/null)
          case "$l" in /*) echo "LEAK fd $f $l" >> /out;; esac
        done;;
    esac
  done
done
echo watched >> /out
"#;

#[test]
fn exec_is_never_visible_with_the_hosts_root_or_fds() {
    let strace = Path::new("/usr/bin/strace");
    assert!(strace.exists(), "needs strace (apt-get install strace)");
    let host = tempfile::tempdir().unwrap();
    let marker = host.path().join("host-secret");
    std::fs::write(&marker, "HOST-SECRET").unwrap();

    let rt = runtime();
    let target = Bundle::new(&["sleep", "1000"]);
    let target_id = unique_id("exec-target");
    rt.start(&target, &target_id);
    let init = rt.pid(&target_id);

    let mut watcher = Bundle::new(&["sh", "-c", WATCH]);
    watcher.namespace("pid", Some(&format!("/proc/{init}/ns/pid")));
    watcher.push(
        "/process/env",
        json!(format!("MARKER={}", marker.display())),
    );
    for set in ["bounding", "effective", "permitted"] {
        watcher.push(
            &format!("/process/capabilities/{set}"),
            json!("CAP_SYS_PTRACE"),
        );
    }
    let watcher_id = unique_id("exec-watcher");
    rt.start(&watcher, &watcher_id);
    wait_for_file(&watcher.rootfs().join("ready"), 10);

    // Every setns of exec is slowed down: a process visible too early stays visible long.
    let trace = tempfile::tempdir().unwrap();
    let out = Command::new(strace)
        .args(["-f", "-ff", "-qq", "-o"])
        .arg(trace.path().join("t"))
        .args(["-e", "trace=setns,clone,clone3,fork,vfork,prctl"])
        .args(["-e", "inject=setns:delay_enter=150000"])
        .arg(runtime_bin())
        .arg("--root")
        .arg(rt.root_path())
        .args(["exec", &target_id, "cat", "/proc/self/status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "exec failed: {out:?}");
    std::fs::write(watcher.rootfs().join("stop"), "").unwrap();
    rt.wait_status(&watcher_id, "stopped");
    let report = std::fs::read_to_string(watcher.rootfs().join("out")).unwrap();
    assert!(report.contains("watched"), "{report}");
    let mut leaks: Vec<&str> = report.lines().filter(|l| l.starts_with("LEAK")).collect();
    leaks.dedup();
    assert!(
        leaks.is_empty(),
        "exec's process seen from the container: {leaks:#?}"
    );

    // And the order, from the trace: the process that enters the pid namespace has joined
    // the mount namespace and dropped dumpability before it forks the visible process.
    let (entering, log) = trace_of_pid_setns(trace.path());
    let lines: Vec<&str> = log.lines().collect();
    let newpid_at = lines
        .iter()
        .position(|l| l.contains("CLONE_NEWPID"))
        .unwrap();
    let fork_at = (newpid_at..lines.len())
        .find(|i| {
            ["clone(", "clone3(", "fork(", "vfork("]
                .iter()
                .any(|c| lines[*i].starts_with(c))
        })
        .unwrap_or_else(|| panic!("{entering}: no fork after setns(CLONE_NEWPID):\n{log}"));
    let before = &lines[..fork_at];
    assert!(
        before
            .iter()
            .any(|l| l.contains("CLONE_NEWNS") && l.contains("= 0")),
        "{entering} forks into the pid namespace before joining the mount namespace:\n{log}"
    );
    assert!(
        before
            .iter()
            .any(|l| l.contains("PR_SET_DUMPABLE") && l.contains("SUID_DUMP_DISABLE")),
        "{entering} is dumpable when it forks into the pid namespace:\n{log}"
    );
}

/// The per-process strace log (name, text) of the process that called setns(CLONE_NEWPID).
fn trace_of_pid_setns(dir: &Path) -> (String, String) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let log = std::fs::read_to_string(e.path()).unwrap();
        if log
            .lines()
            .any(|l| l.contains("CLONE_NEWPID") && l.contains("= 0"))
        {
            return (e.file_name().to_string_lossy().into_owned(), log);
        }
    }
    panic!("no process of exec called setns(CLONE_NEWPID)");
}

#[test]
fn exec_passes_the_exit_code_and_runs_in_the_container() {
    let rt = runtime();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("exec-code");
    rt.start(&b, &id);
    let out = rt.exec(&["exec", &id, "sh", "-c", "hostname; exit 7"]);
    assert_eq!(out.code, 7, "{out:?}");
    assert_eq!(out.stdout, "berth-test\n");
    // Detached with a pid file: that pid is the process, in every namespace and the cgroup
    // of the init.
    let pid_file = b.path().join("exec.pid");
    rt.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sleep",
        "100",
    ]);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let init = rt.pid(&id).to_string();
    for kind in ["mnt", "pid", "net", "ipc", "uts"] {
        assert_eq!(ns_of(&pid, kind), ns_of(&init, kind), "{kind}");
    }
    let cg = |p: &str| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(cg(&pid), cg(&init));
    assert!(std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .starts_with("sleep"));
}

#[test]
fn exec_in_a_user_namespace_and_with_preserved_fds() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.namespace("user", None);
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 200000, "size": 1000}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 200000, "size": 1000}]),
    );
    Command::new("chown")
        .args(["-R", "200000:200000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    let rt = runtime();
    let id = unique_id("exec-userns");
    rt.start(&b, &id);
    assert_eq!(rt.ok(&["exec", &id, "id", "-u"]), "0\n");
    // fd 3 handed through --preserve-fds 1; nothing else above it.
    let file = b.path().join("preserved");
    std::fs::write(&file, "kept\n").unwrap();
    let f = std::fs::File::open(&file).unwrap();
    let mut cmd = rt.command();
    cmd.args([
        "exec",
        "--preserve-fds",
        "1",
        &id,
        "sh",
        "-c",
        "cat <&3; ls /proc/self/fd",
    ]);
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            let r = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("kept"));
    let fds: Vec<&str> = lines.collect();
    assert_eq!(fds, ["0", "1", "2", "3", "4"], "{stdout}");
}
