//! Mounts: each kind with its flags as seen in the container's mountinfo, readonly root,
//! masked and readonly paths, devices.
mod support;
use support::*;

#[test]
fn default_mounts_have_their_flags() {
    let info = sh("cat /proc/self/mountinfo");
    for (target, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        let line = mount_line(&info, target);
        assert!(
            line.contains(&format!(" - {fstype} ")),
            "{target} is not {fstype}: {line}"
        );
    }
    let (opts, _) = mount_opts(mount_line(&info, "/sys"));
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&o), "/sys lacks {o}: {opts:?}");
    }
    let (opts, sup) = mount_opts(mount_line(&info, "/dev/shm"));
    assert!(
        opts.contains(&"nodev") && opts.contains(&"noexec"),
        "{opts:?}"
    );
    assert!(sup.contains(&"size=65536k"), "{sup:?}");
    assert!(
        info.lines().any(|l| l
            .split(' ')
            .nth(4)
            .is_some_and(|t| t.starts_with("/sys/fs/cgroup"))),
        "no cgroup mount:\n{info}"
    );
}

#[test]
fn tmpfs_size_and_mode() {
    let out = sh_with(
        "stat -c %a /scratch; grep ' /scratch ' /proc/self/mountinfo",
        |b| {
            b.push("/mounts", json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=700"]}));
        },
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("700"), "{out}");
    let line = lines.next().unwrap();
    let (opts, sup) = mount_opts(line);
    assert!(sup.contains(&"size=1024k"), "{line}");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&o), "{line}");
    }
}

#[test]
fn bind_mounts_read_write_and_read_only() {
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("sub")).unwrap();
    std::fs::write(host.path().join("sub/inner"), "inner\n").unwrap();
    let ro = tempfile::tempdir().unwrap();
    std::fs::write(ro.path().join("f"), "ro\n").unwrap();
    let out = sh_with("echo hi > /rw/written; cat /rw/sub/inner /ro/f; echo x > /ro/f 2>/dev/null && echo WROTE; grep -E ' /(rw|ro) ' /proc/self/mountinfo", |b| {
        b.push("/mounts", json!({"destination": "/rw", "type": "bind", "source": host.path(), "options": ["rbind", "rw"]}));
        b.push("/mounts", json!({"destination": "/ro", "type": "none", "source": ro.path(), "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}));
    });
    assert_eq!(
        std::fs::read_to_string(host.path().join("written")).unwrap(),
        "hi\n"
    );
    assert!(out.starts_with("inner\nro\n"), "{out}");
    assert!(!out.contains("WROTE"), "read-only bind was writable: {out}");
    let (opts, _) = mount_opts(mount_line(&out, "/ro"));
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&o), "/ro lacks {o}: {opts:?}");
    }
    assert_eq!(
        std::fs::read_to_string(ro.path().join("f")).unwrap(),
        "ro\n"
    );
}

#[test]
fn bind_mount_of_a_file() {
    let host = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(host.path(), "file content\n").unwrap();
    let out = sh_with("cat /etc/bound", |b| {
        b.push("/mounts", json!({"destination": "/etc/bound", "type": "bind", "source": host.path(), "options": ["bind", "ro"]}));
    });
    assert_eq!(out, "file content\n");
}

#[test]
fn readonly_root() {
    let out = sh_with("touch /x 2>&1 && echo WROTE; echo ok > /tmp2/y && cat /tmp2/y; awk '$5 == \"/\"' /proc/self/mountinfo", |b| {
        b.set("/root/readonly", json!(true));
        b.push("/mounts", json!({"destination": "/tmp2", "type": "tmpfs", "source": "tmpfs", "options": []}));
    });
    assert!(!out.contains("WROTE"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("ok\n"), "{out}");
    let (opts, _) = mount_opts(mount_line(&out, "/"));
    assert!(opts.contains(&"ro"), "{out}");
}

#[test]
fn masked_and_readonly_paths() {
    let out = sh_with("cat /proc/keys | wc -c; ls /sys/firmware | wc -l; cat /secret/file 2>&1 | wc -c; ls /hidden | wc -l; echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo WROTE; echo", |b| {
        std::fs::create_dir_all(b.rootfs().join("secret")).unwrap();
        std::fs::write(b.rootfs().join("secret/file"), "secret").unwrap();
        std::fs::create_dir_all(b.rootfs().join("hidden")).unwrap();
        std::fs::write(b.rootfs().join("hidden/a"), "a").unwrap();
        b.push("/linux/maskedPaths", json!("/secret/file"));
        b.push("/linux/maskedPaths", json!("/hidden"));
    });
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "0", "0", "0"],
        "masked paths readable or /proc/sys writable: {out}"
    );
}

#[test]
fn default_devices_and_symlinks() {
    let out = sh("ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty | awk '{print $1, $5, $6, $NF}'; for l in fd stdin stdout stderr ptmx; do echo $l $(readlink /dev/$l); done; head -c 4 /dev/zero | wc -c");
    for dev in [
        "crw-rw-rw- 1, 3 /dev/null",
        "crw-rw-rw- 1, 5 /dev/zero",
        "crw-rw-rw- 1, 7 /dev/full",
        "crw-rw-rw- 1, 8 /dev/random",
        "crw-rw-rw- 1, 9 /dev/urandom",
        "crw-rw-rw- 5, 0 /dev/tty",
    ] {
        assert!(out.contains(dev), "missing {dev}:\n{out}");
    }
    for link in [
        "fd /proc/self/fd",
        "stdin /proc/self/fd/0",
        "stdout /proc/self/fd/1",
        "stderr /proc/self/fd/2",
        "ptmx pts/ptmx",
    ] {
        assert!(
            out.lines().any(|l| l == link),
            "missing link {link}:\n{out}"
        );
    }
    assert!(out.ends_with("4\n"), "{out}");
}

#[test]
fn configured_devices() {
    let out = sh_with(
        "ls -ln /dev/mydev /dev/myblk | awk '{print $1, $3, $4, $5, $6}'",
        |b| {
            b.set("/linux/devices", json!([
            {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1234, "gid": 5678},
            {"path": "/dev/myblk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 0, "gid": 0}
        ]));
        },
    );
    assert!(out.contains("crw-r----- 1234 5678 1, 3"), "{out}");
    assert!(out.contains("brw------- 0 0 7, 200"), "{out}");
}

#[test]
fn propagation_private_by_default_and_rslave_configurable() {
    let out = sh("awk '$5 == \"/\"' /proc/self/mountinfo");
    assert!(!out.contains("shared:"), "rootfs shared with host: {out}");
}
