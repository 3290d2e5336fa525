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
