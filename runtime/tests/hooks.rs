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
