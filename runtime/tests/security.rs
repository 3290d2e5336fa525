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

#[test]
fn host_console_is_not_in_the_default_device_list() {
    // An image-shipped node for the host console (5:1); opened (never written) from a
    // subshell, so that it cannot become a controlling terminal.
    let rt = runtime();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "(exec 3>/console) 2>/dev/null && echo OPENED; (exec 3>/dev/null) && echo NULL-OK",
    ]);
    nix::sys::stat::mknod(
        &b.rootfs().join("console"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(5, 1),
    )
    .unwrap();
    b.set("/process/noNewPrivileges", json!(true));
    let out = rt.run(&b, &unique_id("console"));
    assert!(out.stdout.contains("NULL-OK"), "{out:?}");
    assert!(
        !out.stdout.contains("OPENED"),
        "host console opened: {out:?}"
    );
}

#[test]
fn args0_resolves_only_inside_the_container() {
    // A host file reached through an fd the init holds and `..`: never run, and never even
    // looked at (a non-executable one would answer "permission denied": host probing).
    let host = tempfile::tempdir().unwrap();
    let script = host.path().join("on-host");
    std::fs::write(&script, "#!/bin/sh\necho RAN-HOST-FILE\n").unwrap();
    let rel = script.strip_prefix("/").unwrap().display().to_string();
    for mode in [0o644, 0o755] {
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
        for fd in 3..10 {
            let rt = runtime();
            let arg0 = format!("/proc/self/fd/{fd}/../../../../../../../../{rel}");
            let b = Bundle::new(&[arg0.as_str()]);
            let out = rt.run(&b, &unique_id("arg0"));
            assert!(!out.stdout.contains("RAN-HOST-FILE"), "fd {fd}: {out:?}");
            assert_ne!(out.code, 0, "fd {fd}: {out:?}");
            assert!(
                !out.stderr.contains("permission denied"),
                "host file checked through fd {fd}: {out:?}"
            );
        }
    }
}
