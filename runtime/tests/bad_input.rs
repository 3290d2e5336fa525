//! Bad input: non-zero exit, one clear error line naming the problem, nothing left behind.
mod support;
use support::*;

/// Create `b` under a fresh id expecting failure; checks that nothing is left; stderr.
fn create_fails(rt: &Runtime, bundle: &std::path::Path) -> String {
    let id = unique_id("bad");
    let out = rt.exec(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert_ne!(out.code, 0, "create succeeded: {out:?}");
    assert_nothing_left(rt, &id, bundle);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "no error message");
    out.stderr
}

fn assert_nothing_left(rt: &Runtime, id: &str, bundle: &std::path::Path) {
    rt.assert_no_state(id);
    assert!(rt.ids().is_empty(), "listed: {:?}", rt.ids());
    assert!(
        mounts_mentioning(bundle).is_empty(),
        "mounts left: {:?}",
        mounts_mentioning(bundle)
    );
    assert!(processes_in(bundle).is_empty(), "processes left");
    assert!(
        cgroups_named(id).is_empty(),
        "cgroups left: {:?}",
        cgroups_named(id)
    );
}

/// The error is one line (ignoring runc's logrus prefix noise) that contains every `needle`.
fn assert_one_line_naming(stderr: &str, needles: &[&str]) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want one error line, got: {stderr}");
    for n in needles {
        assert!(
            stderr.to_lowercase().contains(&n.to_lowercase()),
            "error does not name {n:?}: {stderr}"
        );
    }
}

#[test]
fn missing_bundle_dir() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = create_fails(&rt, &missing);
    assert_one_line_naming(&err, &["nope"]);
}

#[test]
fn missing_config_json() {
    let rt = runtime();
    let b = Bundle::new(&["true"]);
    let err = create_fails(&rt, b.path());
    assert_one_line_naming(&err, &["config.json"]);
}

#[test]
fn malformed_json_names_line_and_column() {
    let rt = runtime();
    let b = Bundle::new(&["true"]);
    std::fs::write(
        b.path().join("config.json"),
        "{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": {,\n}",
    )
    .unwrap();
    let err = create_fails(&rt, b.path());
    assert_one_line_naming(&err, &["line 3"]);
    assert!(err.contains("column"), "{err}");
}

#[test]
fn wrong_field_type_names_the_field() {
    let rt = runtime();
    let mut b = Bundle::new(&["true"]);
    b.set("/process/user/uid", json!("zero"));
    b.write();
    let err = create_fails(&rt, b.path());
    assert_one_line_naming(&err, &["uid"]);
}

#[test]
fn missing_rootfs() {
    let rt = runtime();
    let mut b = Bundle::new(&["true"]);
    b.set("/root/path", json!("no-such-rootfs"));
    b.write();
    let err = create_fails(&rt, b.path());
    assert_one_line_naming(&err, &["no-such-rootfs"]);
}

#[test]
fn missing_process_binary() {
    let rt = runtime();
    let b = Bundle::new(&["/bin/no-such-binary"]);
    b.write();
    let id = unique_id("nobin");
    let out = rt.exec(&["run", "--bundle", b.path_str(), &id]);
    assert_ne!(out.code, 0, "{out:?}");
    assert_nothing_left(&rt, &id, b.path());
    assert_one_line_naming(&out.stderr, &["no-such-binary"]);
}

#[test]
fn duplicate_id() {
    let rt = runtime();
    let b = Bundle::new(&["sleep", "60"]);
    let id = unique_id("dup");
    rt.create(&b, &id);
    let b2 = Bundle::new(&["sleep", "60"]);
    b2.write();
    let out = rt.exec(&["create", "--bundle", b2.path_str(), &id]);
    assert_ne!(out.code, 0);
    assert_one_line_naming(&out.stderr, &[&id]);
    assert!(processes_in(&b2.rootfs()).is_empty());
    assert_eq!(
        rt.status(&id),
        "created",
        "the first container was disturbed"
    );
}

#[test]
fn unknown_id() {
    let rt = runtime();
    for cmd in [&["state"][..], &["start"], &["kill"], &["delete"]] {
        let mut args = cmd.to_vec();
        args.push("no-such-container");
        let err = rt.fails(&args);
        assert_one_line_naming(&err, &["no-such-container"]);
    }
}

#[test]
fn bad_signal_name() {
    let rt = runtime();
    let b = Bundle::new(&["sleep", "60"]);
    let id = unique_id("badsig");
    rt.start(&b, &id);
    let err = rt.fails(&["kill", &id, "SIGNOPE"]);
    assert_one_line_naming(&err, &["SIGNOPE"]);
    assert_eq!(rt.status(&id), "running");
}

#[test]
fn intel_rdt_clos_id_must_be_a_name() {
    let rt = runtime();
    for clos in ["../../..", "a/b", ".", ".."] {
        let mut b = Bundle::new(&["true"]);
        b.set("/linux/intelRdt", json!({"closID": clos}));
        b.write();
        let err = create_fails(&rt, b.path());
        assert_one_line_naming(&err, &["intelRdt.closID", clos]);
    }
}

/// This test bed has neither AppArmor nor SELinux (see DESIGN.md): requests must be refused.
fn assert_no_lsm() {
    assert!(
        !std::path::Path::new("/sys/module/apparmor/parameters/enabled").exists()
            && !std::path::Path::new("/sys/fs/selinux/enforce").exists(),
        "this test expects a host without AppArmor and SELinux"
    );
}

#[test]
fn lsm_requests_are_refused_where_the_lsm_is_off() {
    assert_no_lsm();
    let rt = runtime();
    for (pointer, value, field) in [
        (
            "/process/apparmorProfile",
            "docker-default",
            "process.apparmorProfile",
        ),
        (
            "/process/selinuxLabel",
            "system_u:system_r:container_t:s0",
            "process.selinuxLabel",
        ),
        (
            "/linux/mountLabel",
            "system_u:object_r:container_file_t:s0",
            "linux.mountLabel",
        ),
    ] {
        let mut b = Bundle::new(&["true"]);
        b.set(pointer, json!(value));
        b.write();
        let err = create_fails(&rt, b.path());
        assert_one_line_naming(&err, &[field, "not"]);
    }
}

#[test]
fn exec_lsm_flags_are_refused_where_the_lsm_is_off() {
    assert_no_lsm();
    let rt = runtime();
    let b = Bundle::new(&["sleep", "60"]);
    let id = unique_id("lsm");
    rt.start(&b, &id);
    for (flag, value) in [
        ("--apparmor", "docker-default"),
        ("--process-label", "system_u:system_r:container_t:s0"),
    ] {
        let err = rt.fails(&["exec", flag, value, &id, "true"]);
        assert_one_line_naming(&err, &[flag, "not"]);
    }
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn bad_namespace_path_names_the_field_and_path() {
    let rt = runtime();
    let mut b = Bundle::new(&["true"]);
    b.namespace("network", Some("/nonexistent/netns"));
    b.write();
    let err = create_fails(&rt, b.path());
    assert_one_line_naming(&err, &["linux.namespaces", "/nonexistent/netns"]);
    // A file that is not a namespace of that type.
    let mut b = Bundle::new(&["true"]);
    b.namespace("ipc", Some("/proc/self/ns/net"));
    b.write();
    let err = create_fails(&rt, b.path());
    assert_one_line_naming(&err, &["linux.namespaces", "ipc", "/proc/self/ns/net"]);
}

#[test]
fn root_must_be_an_object() {
    let rt = runtime();
    let mut b = Bundle::new(&["true"]);
    b.set("/root", json!([]));
    b.write();
    let err = create_fails(&rt, b.path());
    assert_one_line_naming(&err, &["root"]);
}

#[test]
fn long_values_do_not_flood_the_message() {
    let rt = runtime();
    let long = format!("{}\u{0}", "a".repeat(100_000));
    let mut b = Bundle::new(&["true"]);
    b.set("/process/args", json!(["true", long]));
    b.write();
    let err = create_fails(&rt, b.path());
    assert_one_line_naming(&err, &["process.args"]);
    assert!(err.len() < 1000, "{} bytes: {}", err.len(), &err[..200]);
}

#[test]
fn init_dying_during_setup_says_how() {
    // A createRuntime hook kills the init while it waits for the runtime.
    let rt = runtime();
    let mut b = Bundle::new(&["true"]);
    let script = r#"pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'); kill -9 "$pid""#;
    b.set(
        "/hooks/createRuntime",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", script]}]),
    );
    b.write();
    let err = create_fails(&rt, b.path());
    assert_one_line_naming(&err, &["init", "signal", "SIGKILL"]);
}
