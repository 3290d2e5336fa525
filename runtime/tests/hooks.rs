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
