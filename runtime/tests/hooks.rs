//! Hooks: all six run in order with the state on stdin; a failing createRuntime hook aborts.
mod support;
use support::*;

fn hook(log: &std::path::Path, name: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read -r s; echo \"{name} $s\" >> {}", log.display())]})
}

#[test]
fn hooks_run_in_order_with_state() {
    let rt = runtime();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("log");
    let mut b = Bundle::new(&["true"]);
    // createContainer and startContainer hooks run in the container's mount namespace.
    b.push("/mounts", json!({"destination": logdir.path(), "type": "bind", "source": logdir.path(), "options": ["bind"]}));
    for (kind, name) in [
        ("prestart", "prestart"),
        ("createRuntime", "createRuntime"),
        ("createContainer", "createContainer"),
        ("startContainer", "startContainer"),
        ("poststart", "poststart"),
        ("poststop", "poststop"),
    ] {
        b.set(&format!("/hooks/{kind}"), json!([hook(&log, name)]));
    }
    let id = unique_id("hooks");
    let out = rt.run(&b, &id);
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let names: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    for line in text.lines() {
        let (name, state) = line.split_once(' ').unwrap();
        let state: Value =
            serde_json::from_str(state).unwrap_or_else(|e| panic!("{name}: {e}: {state}"));
        assert_eq!(state["id"], id.as_str(), "{line}");
        assert!(state["bundle"].as_str().is_some(), "{line}");
        assert!(state["ociVersion"].as_str().is_some(), "{line}");
    }
    rt.assert_no_state(&id);
}

#[test]
fn failing_create_runtime_hook_aborts_create() {
    let rt = runtime();
    let mut b = Bundle::new(&["sleep", "60"]);
    b.set(
        "/hooks/createRuntime",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]),
    );
    let id = unique_id("hookfail");
    b.write();
    rt.fails(&["create", "--bundle", b.path_str(), &id]);
    rt.assert_no_state(&id);
    assert!(rt.ids().is_empty());
    assert!(
        mounts_mentioning(b.path()).is_empty(),
        "{:?}",
        mounts_mentioning(b.path())
    );
    assert!(processes_in(&b.rootfs()).is_empty());
}

fn failing() -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]})
}

#[test]
fn a_failing_poststart_or_poststop_hook_does_not_skip_the_next() {
    let rt = runtime();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("log");
    let mut b = Bundle::new(&["true"]);
    b.set(
        "/hooks/poststart",
        json!([failing(), hook(&log, "poststart2")]),
    );
    b.set(
        "/hooks/poststop",
        json!([failing(), hook(&log, "poststop2")]),
    );
    let id = unique_id("hooks-fail");
    let out = rt.run(&b, &id);
    assert_eq!(
        out.code, 0,
        "up to spec 1.2 a failing poststart only warns: {out:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let names: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names, ["poststart2", "poststop2"], "{text}");
    rt.assert_no_state(&id);
}

#[test]
fn a_failing_poststart_hook_fails_start_for_a_1_3_config() {
    let rt = runtime();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("log");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.set("/ociVersion", json!("1.3.0"));
    b.set("/hooks/poststart", json!([failing()]));
    b.set("/hooks/poststop", json!([hook(&log, "poststop")]));
    let id = unique_id("hooks-13");
    rt.create(&b, &id);
    let err = rt.fails(&["start", &id]);
    assert!(err.contains("poststart") && err.contains("broken"), "{err}");
    // The container is stopped; delete then runs poststop.
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.starts_with("poststop "), "{text}");
}

/// The cpu weight of `pid`'s cgroup: v1 `cpu.shares`, or v2 `cpu.weight` (a shell snippet).
const CPU_WEIGHT: &str = r#"w() { if [ -e /sys/fs/cgroup/cgroup.controllers ]; then d=$(sed -n 's/^0:://p' /proc/$1/cgroup); cat /sys/fs/cgroup$d/cpu.weight; else d=$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print $3}' /proc/$1/cgroup); cat /sys/fs/cgroup/cpu$d/cpu.shares; fi; }"#;

/// The resource values are written after the init's mounts (a pod sandbox's `cpu.shares` of 2
/// made the init's own setup wait seconds for a busy CPU, so every pod under critest started
/// slowly), yet before the createRuntime hooks, which see them, as with runc.
#[test]
fn create_runtime_hooks_see_the_limits() {
    let rt = runtime();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("weight");
    let mut b = Bundle::new(&["sleep", "60"]);
    b.set("/linux/resources/cpu", json!({"shares": 2}));
    let script = format!(
        "{CPU_WEIGHT}; read -r s; p=$(echo \"$s\" | sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/'); w $p > {}",
        log.display()
    );
    b.set(
        "/hooks/createRuntime",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", script]}]),
    );
    let id = unique_id("limits-hook");
    rt.create(&b, &id);
    let during = std::fs::read_to_string(&log).unwrap();
    let pid = rt.pid(&id);
    let after = sh_host(&format!("{CPU_WEIGHT}; w {pid}"));
    rt.ok(&["delete", "--force", &id]);
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let limited = if v2 { "1" } else { "2" };
    assert_eq!(
        during.trim(),
        limited,
        "cpu weight the createRuntime hook saw"
    );
    assert_eq!(after.trim(), limited, "cpu weight once created");
}

fn sh_host(script: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
