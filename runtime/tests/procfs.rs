//! Security of everything the runtime does through /proc and /dev/null: sysctls only in the
//! container's own namespaces and never redirected (CVE-2025-52881 class), masks bound from
//! the real /dev/null (CVE-2025-31133 class), /proc only a real procfs on a real directory
//! (CVE-2019-16884, CVE-2019-19921, CVE-2023-27561, CVE-2023-28642 class), no host procfs
//! left reachable with `--no-pivot`.
mod support;
use support::*;

/// `create` of `b` fails; its stderr (nothing may be left behind).
fn create_fails(rt: &Runtime, b: &Bundle) -> String {
    b.write();
    let id = unique_id("procfs");
    let out = rt.exec(&["create", "--bundle", b.path_str(), &id]);
    assert_ne!(out.code, 0, "create succeeded: {out:?}");
    rt.assert_no_state(&id);
    out.stderr
}

fn host_sysctl(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/")))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn sysctl_of_the_host_is_refused() {
    // The host's own values, so that a runtime which writes them changes nothing.
    let rt = runtime();
    let mut b = Bundle::new(&["true"]);
    let core = host_sysctl("kernel.core_pattern");
    b.set("/linux/sysctl", json!({"kernel.core_pattern": core}));
    let err = create_fails(&rt, &b);
    assert!(err.contains("kernel.core_pattern"), "{err}");
    assert_eq!(host_sysctl("kernel.core_pattern"), core);

    // A network sysctl without a network namespace of the container's own.
    let mut b = Bundle::new(&["true"]);
    b.without_namespace("network");
    let fwd = host_sysctl("net.ipv4.ip_forward");
    b.set("/linux/sysctl", json!({"net.ipv4.ip_forward": fwd}));
    let err = create_fails(&rt, &b);
    assert!(
        err.contains("net.ipv4.ip_forward") && err.contains("net"),
        "{err}"
    );

    // An ipc sysctl in the host's ipc namespace.
    let mut b = Bundle::new(&["true"]);
    b.without_namespace("ipc");
    let shm = host_sysctl("kernel.shmmni");
    b.set("/linux/sysctl", json!({"kernel.shmmni": shm}));
    let err = create_fails(&rt, &b);
    assert!(err.contains("kernel.shmmni"), "{err}");
}

#[test]
fn sysctls_of_own_namespaces_apply() {
    let out = sh_with(
        "cat /proc/sys/kernel/shmmni /proc/sys/net/ipv4/ip_default_ttl /proc/sys/fs/mqueue/msg_max",
        |b| {
            b.set(
                "/linux/sysctl",
                json!({"kernel.shmmni": "1234", "net.ipv4.ip_default_ttl": "42", "fs.mqueue.msg_max": "20"}),
            );
        },
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["1234", "42", "20"]
    );
}

#[test]
fn sysctl_write_is_not_redirected_by_a_mount_over_proc_sys() {
    // A procfs file bound over the sysctl's path: a write that follows the path lands on
    // msgmni instead of msgmax.
    let out = sh_with("cat /proc/sys/kernel/msgmni", |b| {
        b.push(
            "/mounts",
            json!({"destination": "/proc/sys/kernel/msgmax", "type": "bind",
                   "source": "/proc/sys/kernel/msgmni", "options": ["bind"]}),
        );
        b.set("/linux/sysctl", json!({"kernel.msgmax": "1234"}));
    });
    assert_ne!(out.trim(), "1234", "the sysctl write went to msgmni");
}

#[test]
fn proc_symlink_in_rootfs_is_refused() {
    let rt = runtime();
    for target in ["/tmp", "tmp", "../../../../proc"] {
        let b = Bundle::new(&["true"]);
        std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
        std::os::unix::fs::symlink(target, b.rootfs().join("proc")).unwrap();
        let err = create_fails(&rt, &b);
        assert!(
            err.contains("/proc") && err.contains("symlink"),
            "{target}: {err}"
        );
    }
}

#[test]
fn only_procfs_may_be_mounted_on_or_under_proc() {
    let rt = runtime();
    let host = tempfile::tempdir().unwrap();
    for (dest, typ, source) in [
        ("/proc", "tmpfs", "tmpfs"),
        ("/proc", "bind", host.path().to_str().unwrap()),
        ("/proc/sys", "bind", host.path().to_str().unwrap()),
        ("/proc/self", "tmpfs", "tmpfs"),
    ] {
        let mut b = Bundle::new(&["true"]);
        let opts = if typ == "bind" {
            json!(["rbind"])
        } else {
            json!([])
        };
        b.push(
            "/mounts",
            json!({"destination": dest, "type": typ, "source": source, "options": opts}),
        );
        let err = create_fails(&rt, &b);
        assert!(
            err.contains(dest) && err.contains("proc"),
            "{dest} {typ}: {err}"
        );
    }
    // A path that only resolves to /proc (through a symlink) obeys the same rule.
    let mut b = Bundle::new(&["true"]);
    std::os::unix::fs::symlink("proc", b.rootfs().join("p")).unwrap();
    b.push(
        "/mounts",
        json!({"destination": "/p", "type": "tmpfs", "source": "tmpfs"}),
    );
    let err = create_fails(&rt, &b);
    assert!(err.contains("/p") && err.contains("proc"), "{err}");
    // A procfs file over another one is allowed (lxcfs-style), as is /proc itself.
    let out = sh_with("cat /proc/uptime | wc -w", |b| {
        b.push(
            "/mounts",
            json!({"destination": "/proc/uptime", "type": "bind", "source": "/proc/loadavg", "options": ["bind"]}),
        );
    });
    assert_eq!(out.trim(), "5", "loadavg has five fields");
}

#[test]
fn sub_mounts_of_proc_sys_stay_read_only() {
    let out = sh_with(
        "echo 1 > /proc/sys/kernel/msgmax && echo WROTE; grep ' /proc/sys/kernel/msgmax ' /proc/self/mountinfo",
        |b| {
            b.push(
                "/mounts",
                json!({"destination": "/proc/sys/kernel/msgmax", "type": "bind",
                       "source": "/proc/sys/kernel/msgmni", "options": ["bind"]}),
            );
        },
    );
    assert!(!out.contains("WROTE"), "{out}");
    let (per_mount, _) = mount_opts(out.lines().last().unwrap());
    assert!(per_mount.contains(&"ro"), "{out}");
}

#[test]
fn masks_are_the_real_dev_null_read_only() {
    let out = sh(
        "stat -c '%t:%T %F' /proc/timer_list; grep ' /proc/timer_list ' /proc/self/mountinfo; echo x > /proc/timer_list; wc -c < /proc/timer_list",
    );
    let first = out.lines().next().unwrap();
    assert_eq!(first, "1:3 character special file", "{out}");
    assert_eq!(out.lines().last(), Some("0"), "{out}");
    let line = mount_line(&out, "/proc/timer_list");
    assert!(mount_opts(line).0.contains(&"ro"), "{line}");
}

#[test]
fn masks_never_bind_a_swapped_dev_null() {
    // What a racing process achieves: /dev/null replaced by a symlink to a file of its own
    // when the masks are bound (a createContainer hook stands in for the race).
    let rt = runtime();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/timer_list; echo x >> /proc/timer_list; cat /marker",
    ]);
    std::fs::write(b.rootfs().join("marker"), "MARKER\n").unwrap();
    let dev_null = b.rootfs().join("dev/null");
    let script = format!("rm -f {0}; ln -s /marker {0}", dev_null.display());
    b.set(
        "/hooks/createContainer",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", script]}]),
    );
    let out = rt.run(&b, &unique_id("mask"));
    assert!(
        !out.stdout.contains("MARKER\nx"),
        "masked file was the swapped target: {out:?}"
    );
    if out.code == 0 {
        assert!(!out.stdout.starts_with("MARKER"), "{out:?}");
    } else {
        assert!(out.stderr.contains("/dev/null"), "{out:?}");
    }
}

#[test]
fn no_pivot_leaves_no_bare_procfs() {
    // A user namespace inside the container may mount procfs only if a fully visible one is
    // in its mount namespace: the host's, under the old root, must be gone.
    let rt = runtime();
    let mut b = Bundle::new(&[
        "unshare",
        "-mrpf",
        "sh",
        "-c",
        "mkdir -p /tmp/p && mount -t proc proc /tmp/p && echo MOUNTED && head -1 /tmp/p/timer_list",
    ]);
    // Mapping uid 0 into a user namespace needs CAP_SETFCAP (as in runc's own test).
    for set in ["bounding", "effective", "permitted"] {
        b.push(
            &format!("/process/capabilities/{set}"),
            json!("CAP_SETFCAP"),
        );
    }
    b.write();
    let id = unique_id("nopivot");
    let out = rt.exec(&["run", "--no-pivot", "--bundle", b.path_str(), &id]);
    assert!(!out.stdout.contains("MOUNTED"), "{out:?}");
    assert!(out.stderr.contains("mount"), "the mount was tried: {out:?}");
}

#[test]
fn no_pivot_still_runs() {
    let rt = runtime();
    let b = Bundle::new(&["sh", "-c", "cat /proc/self/mountinfo | wc -l; ls /"]);
    b.write();
    let id = unique_id("nopivot");
    let out = rt.exec(&["run", "--no-pivot", "--bundle", b.path_str(), &id]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("bin"), "{out:?}");
}
