//! Security: no leaked fds, no host cwd (CVE-2024-21626), no writable runtime binary
//! (CVE-2019-5736), no mount over a host path through a rootfs symlink.
mod support;
use support::*;

#[test]
fn only_stdio_fds_are_open_at_exec() {
    // `ls` opens the directory itself (fd 3); exec'd from sh, nothing else may be open.
    let out = sh("exec ls /proc/self/fd");
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "leaked fds: {out}");
}

#[test]
fn cwd_cannot_reach_host_through_proc_fd() {
    for fd in 3..9 {
        let rt = runtime();
        let mut b = Bundle::new(&["sh", "-c", "pwd; ls"]);
        b.set("/process/cwd", json!(format!("/proc/self/fd/{fd}")));
        let out = rt.run(&b, &unique_id("cwd"));
        if out.code == 0 {
            // It ran: the cwd must be inside the container, never a host directory.
            assert!(
                !out.stdout.contains("berth-test-root") && !out.stdout.contains("sys/fs/cgroup"),
                "fd {fd}: {out:?}"
            );
            let listing = out.stdout.lines().skip(1).collect::<Vec<_>>().join(" ");
            assert!(
                !listing.contains("state.json") && !listing.contains("cgroup.procs"),
                "host dir leaked at fd {fd}: {out:?}"
            );
        }
    }
}

#[test]
fn runtime_binary_cannot_be_overwritten_from_inside() {
    let bin = runtime_bin();
    let before = std::fs::read(&bin).unwrap();
    let out = sh("echo evil > /proc/self/exe 2>&1 && echo WROTE-SELF; (exec 5>>/proc/1/exe) 2>/dev/null && echo OPENED-INIT; echo done");
    assert!(
        !out.contains("WROTE-SELF") && !out.contains("OPENED-INIT"),
        "{out}"
    );
    // Also while a second process is in the container (exec-like path via kill/pid 1).
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        before,
        "runtime binary changed"
    );
}

#[test]
fn symlink_mount_target_stays_in_rootfs() {
    let host_etc_before = mount_count("/etc");
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("marker"), "m").unwrap();
    for target in ["/etc", "../../../../../../etc"] {
        let rt = runtime();
        let mut b = Bundle::new(&["sh", "-c", "ls /mnt"]);
        std::os::unix::fs::symlink(target, b.rootfs().join("mnt")).unwrap();
        b.push("/mounts", json!({"destination": "/mnt", "type": "bind", "source": host.path(), "options": ["bind"]}));
        let out = rt.run(&b, &unique_id("symlink"));
        assert!(
            !std::path::Path::new("/etc/marker").exists(),
            "mounted over host /etc via {target}"
        );
        if out.code == 0 {
            assert!(out.stdout.contains("marker"), "{out:?}");
        }
        assert_eq!(
            mount_count("/etc"),
            host_etc_before,
            "host /etc mount changed via {target}"
        );
    }
}

fn mount_count(target: &str) -> usize {
    std::fs::read_to_string("/proc/1/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(target))
        .count()
}
