use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::*;
use crate::containers::spec::tests::host;

fn names(caps: &[&str], host: &HostFacts) -> (BTreeSet<String>, Value) {
    let s = render(&default_profile(), caps, host).unwrap();
    let v = serde_json::to_value(&s).unwrap();
    let allowed = v["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
        .flat_map(|r| {
            r["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
        })
        .collect();
    (allowed, v)
}

const DEFAULT_CAPS: &[&str] = &crate::containers::spec::caps::DEFAULT;

fn with(extra: &str) -> Vec<&str> {
    DEFAULT_CAPS.iter().copied().chain([extra]).collect()
}

#[test]
fn the_base_allow_list_has_dockers_346_calls() {
    let (allowed, _) = names(&[], &host());
    for call in ["read", "write", "openat2", "io_uring_setup", "clone3"] {
        if call != "clone3" {
            assert!(allowed.contains(call), "{call}");
        }
    }
    // No capability: the always list, ptrace (kernel >= 4.8), arch_prctl and modify_ldt.
    assert_eq!(allowed.len(), 346 + 3);
    for denied in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "reboot",
        "kexec_load",
        "init_module",
        "bpf",
        "keyctl",
        "add_key",
        "open_by_handle_at",
        "chroot",
        "clock_settime",
        "swapon",
        "userfaultfd",
    ] {
        assert!(
            !allowed.contains(denied),
            "{denied} must not be allowed by default"
        );
    }
}

#[test]
fn each_capability_opens_its_calls_as_dockers_profile_does() {
    let base = names(DEFAULT_CAPS, &host()).0;
    for (cap, calls) in [
        (
            "CAP_SYS_ADMIN",
            &[
                "mount",
                "umount2",
                "unshare",
                "setns",
                "sethostname",
                "clone",
                "clone3",
                "bpf",
                "fsopen",
            ][..],
        ),
        (
            "CAP_SYS_PTRACE",
            &["kcmp", "process_vm_readv", "pidfd_getfd"],
        ),
        (
            "CAP_SYS_MODULE",
            &["init_module", "finit_module", "delete_module"],
        ),
        ("CAP_SYS_BOOT", &["reboot"]),
        ("CAP_SYS_TIME", &["settimeofday", "clock_settime"]),
        ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
        ("CAP_SYS_NICE", &["mbind", "set_mempolicy"]),
        ("CAP_SYSLOG", &["syslog"]),
        ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
        ("CAP_SYS_PACCT", &["acct"]),
        ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ] {
        let (more, _) = names(&with(cap), &host());
        for call in calls {
            assert!(!base.contains(*call), "{call} is not in the default set");
            assert!(more.contains(*call), "{cap} allows {call}");
        }
    }
    assert!(
        base.contains("chroot"),
        "CAP_SYS_CHROOT is a default capability"
    );
    let no_chroot: Vec<&str> = DEFAULT_CAPS
        .iter()
        .copied()
        .filter(|c| *c != "CAP_SYS_CHROOT")
        .collect();
    assert!(!names(&no_chroot, &host()).0.contains("chroot"));
}

#[test]
fn clone_is_restricted_without_cap_sys_admin() {
    let (_, v) = names(DEFAULT_CAPS, &host());
    let rules = v["syscalls"].as_array().unwrap();
    let clone: Vec<&Value> = rules
        .iter()
        .filter(|r| r["names"] == json!(["clone"]))
        .collect();
    assert_eq!(clone.len(), 1);
    assert_eq!(
        clone[0]["args"],
        json!([{"index": 0, "value": 0x7e020000u64, "op": "SCMP_CMP_MASKED_EQ"}])
    );
    let clone3: Vec<&Value> = rules
        .iter()
        .filter(|r| r["names"] == json!(["clone3"]))
        .collect();
    assert_eq!(
        (clone3[0]["action"].clone(), clone3[0]["errnoRet"].clone()),
        (json!("SCMP_ACT_ERRNO"), json!(38))
    );
    let s390 = HostFacts {
        arch: "s390x",
        ..host()
    };
    let (_, v) = names(DEFAULT_CAPS, &s390);
    let clone: Vec<Value> = v["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["names"] == json!(["clone"]))
        .cloned()
        .collect();
    assert_eq!(
        clone[0]["args"][0]["index"],
        json!(1),
        "s390 has the flags in argument 1"
    );
    assert_eq!(
        v["architectures"],
        json!(["SCMP_ARCH_S390X", "SCMP_ARCH_S390"])
    );
}

#[test]
fn architecture_and_kernel_conditions() {
    let (amd64, v) = names(&[], &host());
    assert!(
        amd64.contains("arch_prctl") && amd64.contains("modify_ldt") && !amd64.contains("set_tls")
    );
    assert_eq!(
        v["architectures"],
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    );
    let arm = HostFacts {
        arch: "arm64",
        ..host()
    };
    let (a, v) = names(&[], &arm);
    assert!(a.contains("set_tls") && a.contains("cacheflush") && !a.contains("arch_prctl"));
    assert_eq!(
        v["architectures"],
        json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
    );
    let old = HostFacts {
        kernel: (4, 4),
        ..host()
    };
    assert!(
        !names(&[], &old).0.contains("ptrace"),
        "ptrace needs kernel 4.8 without CAP_SYS_PTRACE"
    );
    assert!(names(&["CAP_SYS_PTRACE"], &old).0.contains("ptrace"));
}

#[test]
fn personality_is_limited_to_dockers_personas() {
    let (_, v) = names(&[], &host());
    let values: Vec<Value> = v["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["names"] == json!(["personality"]))
        .map(|r| r["args"][0]["value"].clone())
        .collect();
    assert_eq!(
        values,
        [
            json!(0),
            json!(8),
            json!(0x20000),
            json!(0x20008),
            json!(0xffffffffu64)
        ]
    );
}

#[test]
fn profiles_in_dockers_format_are_rendered_with_their_conditions() {
    let p = parse(&json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["b"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_KILL"]}},
            {"names": ["c"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "7.0"}},
            {"names": ["d"], "action": "SCMP_ACT_LOG", "args": [{"index": 1, "value": 2, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }).to_string()).unwrap();
    let v = serde_json::to_value(render(&p, &["CAP_KILL"], &host()).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["d"], "action": "SCMP_ACT_LOG", "args": [{"index": 1, "value": 2, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]}]
        })
    );
    let bad = parse(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_NOPE"}]}"#).unwrap();
    let e = render(&bad, &[], &host()).unwrap_err().to_string();
    assert_eq!(
        e,
        "invalid seccomp profile: action \"SCMP_ACT_NOPE\" is not known"
    );
    assert!(parse("{")
        .unwrap_err()
        .to_string()
        .starts_with("invalid seccomp profile: "));
    let empty =
        parse(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#)
            .unwrap();
    assert!(render(&empty, &[], &host())
        .unwrap_err()
        .to_string()
        .contains("no names"));
}

/// A real profile in docker's format: podman's (containers/common, installed with Debian's
/// podman), with includes/excludes on capabilities and architectures, errnoRet and valueTwo.
#[test]
fn podmans_profile_in_dockers_format_renders() {
    let path = "/usr/share/containers/seccomp.json";
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (installed with podman: make setup)"));
    let profile = parse(&text).unwrap();
    let rules = |caps: &[&str]| -> Vec<Value> {
        let v = serde_json::to_value(render(&profile, caps, &host()).unwrap()).unwrap();
        assert_eq!(v["defaultErrnoRet"], json!(38));
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        v["syscalls"].as_array().unwrap().clone()
    };
    let actions_of = |rules: &[Value], name: &str| -> Vec<String> {
        rules
            .iter()
            .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
            .map(|r| r["action"].as_str().unwrap().to_string())
            .collect()
    };
    let with_chroot = rules(DEFAULT_CAPS);
    assert_eq!(actions_of(&with_chroot, "chroot"), ["SCMP_ACT_ALLOW"]);
    assert!(actions_of(&with_chroot, "arch_prctl").contains(&"SCMP_ACT_ALLOW".to_string()));
    assert!(
        actions_of(&with_chroot, "s390_runtime_instr").is_empty(),
        "not on amd64"
    );
    let without: Vec<&str> = DEFAULT_CAPS
        .iter()
        .copied()
        .filter(|c| *c != "CAP_SYS_CHROOT")
        .collect();
    let errno: Vec<Value> = rules(&without)
        .into_iter()
        .filter(|r| r["names"] == json!(["chroot"]))
        .collect();
    assert_eq!(errno.len(), 1);
    assert_eq!(
        (errno[0]["action"].clone(), errno[0]["errnoRet"].clone()),
        (json!("SCMP_ACT_ERRNO"), json!(1))
    );
}
