//! Seccomp: a blocked syscall returns the configured errno, others still work.
mod support;
use support::*;

#[test]
fn blocked_syscall_returns_errno() {
    let out = sh_with(
        "mkdir /tmp/d 2>&1; echo rc=$?; touch /tmp/f && echo touched",
        |b| {
            b.set("/linux/seccomp", json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        }));
        },
    );
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
    assert!(out.contains("touched"), "{out}");
}

#[test]
fn default_errno_action_blocks_unlisted() {
    let out = sh_with("mkdir /tmp/d 2>&1; echo rc=$?", |b| {
        b.set("/linux/seccomp", json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]
        }));
    });
    assert!(out.contains("No space left on device"), "{out}");
}

/// Every syscall name libseccomp knows on this machine, but `except`.
fn all_syscalls_but(except: &[&str]) -> Vec<String> {
    (0..1024)
        .filter_map(|nr| libseccomp::ScmpSyscall::from(nr).get_name().ok())
        .filter(|n| !except.contains(&n.as_str()))
        .collect()
}

#[test]
fn a_syscall_number_above_every_known_one_gets_enosys() {
    // The host's perl (through a read-only bind of /usr) makes raw syscalls; busybox can't.
    let mut b = Bundle::new(&[
        "/usr/bin/perl",
        "-e",
        "syscall(1000, 0); print $!+0; mkdir '/tmp/d' or print ' ', $!+0",
    ]);
    for link in ["lib", "lib64"] {
        std::os::unix::fs::symlink(format!("usr/{link}"), b.rootfs().join(link)).unwrap();
    }
    b.push("/mounts", json!({"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]}));
    b.set("/linux/seccomp", json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": all_syscalls_but(&["mkdir", "mkdirat"]), "action": "SCMP_ACT_ALLOW"}]
    }));
    let out = runtime().run_ok(&b);
    assert_eq!(out, format!("{} {}", libc::ENOSYS, libc::EPERM));
}
