//! Lifecycle and command line: create → start → kill → delete, state, list, run, spec, features.
mod support;
use support::{runtime, unique_id, Bundle};

#[test]
fn create_start_kill_delete_walks_the_states() {
    let rt = runtime();
    let b = Bundle::new(&["sleep", "60"]);
    let id = unique_id("life");
    let pid_file = b.path().join("pid");
    b.write();
    rt.ok(&[
        "create",
        "--bundle",
        b.path_str(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    let state = rt.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], id.as_str());
    let pid = state["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    assert_eq!(
        state["bundle"],
        b.path().canonicalize().unwrap().to_str().unwrap()
    );
    assert!(state["ociVersion"].as_str().unwrap().starts_with("1."));
    assert!(state["created"].as_str().unwrap().contains('T'));
    assert!(state["rootfs"].as_str().unwrap().ends_with("rootfs"));
    // The user process has not run yet: the init is still the runtime, not sleep.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sleep");

    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "sleep"
    );
    let err = rt.fails(&["start", &id]);
    assert!(err.contains("running"), "{err}");
    let err = rt.fails(&["delete", &id]);
    assert!(err.contains("not stopped"), "{err}");

    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    assert_eq!(rt.state(&id)["pid"], 0);
    let err = rt.fails(&["start", &id]);
    assert!(err.contains("stopped"), "{err}");
    rt.ok(&["delete", &id]);
    rt.assert_no_state(&id);
    rt.fails(&["state", &id]);
}

#[test]
fn kill_takes_names_and_numbers() {
    let rt = runtime();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'echo got-usr1 > /tmp/usr1' USR1; while :; do sleep 0.05; done",
    ]);
    let id = unique_id("kill");
    rt.create(&b, &id);
    rt.ok(&["start", &id]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    rt.ok(&["kill", &id, "SIGUSR1"]);
    let usr1 = b.rootfs().join("tmp/usr1");
    for _ in 0..200 {
        if usr1.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(std::fs::read_to_string(&usr1).unwrap().trim(), "got-usr1");
    rt.ok(&["kill", &id, "9"]);
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
}

#[test]
fn kill_all_reaches_every_process() {
    let rt = runtime();
    let b = Bundle::new(&["sh", "-c", "sleep 60 & sleep 60 & wait"]);
    let id = unique_id("killall");
    rt.create(&b, &id);
    rt.ok(&["start", &id]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    rt.ok(&["kill", "--all", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    assert!(
        support::processes_in(&b.rootfs()).is_empty(),
        "processes left"
    );
}

#[test]
fn run_returns_the_exit_code_and_cleans_up() {
    let rt = runtime();
    let mut b = Bundle::new(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let id = unique_id("run");
    let out = rt.run(&b, &id);
    assert_eq!(out.code, 7);
    assert_eq!(out.stdout, "out\n");
    assert!(out.stderr.contains("err"), "{out:?}");
    rt.assert_no_state(&id);
    // A signal death is reported as 128 + signal number, like a shell (pid 1 cannot be
    // killed from inside its namespace, so the test kills it from outside).
    b.set("/process/args", serde_json::json!(["sleep", "60"]));
    b.write();
    let id = unique_id("run");
    let (id2, bin, root) = (id.clone(), rt.bin.clone(), rt.root.path().to_path_buf());
    let path = b.path().to_path_buf();
    let runner = std::thread::spawn(move || {
        std::process::Command::new(bin)
            .arg("--root")
            .arg(root)
            .args(["run", "--bundle"])
            .arg(path)
            .arg(id2)
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap()
            .code()
    });
    for _ in 0..500 {
        if rt.ids().contains(&id) && rt.status(&id) == "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    rt.ok(&["kill", &id, "KILL"]);
    assert_eq!(runner.join().unwrap(), Some(137));
    rt.assert_no_state(&id);
}

#[test]
fn run_detached_keeps_running() {
    let rt = runtime();
    let b = Bundle::new(&["sleep", "60"]);
    b.write();
    let id = unique_id("detach");
    rt.ok(&[
        "run",
        "--detach",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    assert_eq!(rt.status(&id), "running");
    rt.ok(&["delete", "--force", &id]);
    rt.assert_no_state(&id);
}

#[test]
fn list_shows_containers_as_table_and_json() {
    let rt = runtime();
    let b = Bundle::new(&["sleep", "60"]);
    let id = unique_id("list");
    rt.create(&b, &id);
    let table = rt.ok(&["list"]);
    let header = table.lines().next().unwrap();
    for col in ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("created")),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(json[0]["id"], id.as_str());
    assert_eq!(json[0]["status"], "created");
    assert_eq!(rt.ok(&["list", "-q"]).trim(), id);
}

#[test]
fn spec_writes_a_loadable_config() {
    for rootless in [false, true] {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["spec", "--bundle", dir.path().to_str().unwrap()];
        if rootless {
            args.push("--rootless");
        }
        rt.ok(&args);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert!(config["ociVersion"].as_str().unwrap().starts_with("1."));
        let namespaces = config["linux"]["namespaces"].as_array().unwrap();
        assert_eq!(namespaces.iter().any(|n| n["type"] == "user"), rootless);
        assert_eq!(
            config,
            runc_spec(rootless),
            "spec (rootless: {rootless}) is not runc's"
        );
        // A second `spec` must not overwrite it.
        rt.fails(&args);
    }
    // The default config runs as is (with terminal off) on a busybox rootfs.
    let rt = runtime();
    let mut b = Bundle::new(&["true"]);
    let dir = b.path().to_str().unwrap().to_string();
    std::fs::remove_file(b.path().join("config.json")).ok();
    rt.ok(&["spec", "--bundle", &dir]);
    b.config =
        serde_json::from_slice(&std::fs::read(b.path().join("config.json")).unwrap()).unwrap();
    b.set("/process/terminal", serde_json::json!(false));
    b.set(
        "/process/args",
        serde_json::json!(["echo", "default spec ok"]),
    );
    assert_eq!(rt.run_ok(&b), "default spec ok\n");
}

/// What Debian's runc (1.1.5) writes for `runc spec [--rootless]`, as JSON.
fn runc_spec(rootless: bool) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new("runc");
    cmd.args(["spec", "--bundle"]).arg(dir.path());
    if rootless {
        cmd.arg("--rootless");
    }
    let out = cmd
        .output()
        .expect("runc (Debian's runc package) is needed");
    assert!(out.status.success(), "runc spec: {out:?}");
    serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap()
}

#[test]
fn features_and_version() {
    let rt = runtime();
    let features: serde_json::Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert!(features["ociVersionMax"]
        .as_str()
        .unwrap()
        .starts_with("1."));
    let ns = features["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.contains(&serde_json::json!("user")));
    assert!(features["linux"]["seccomp"]["actions"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("SCMP_ACT_ERRNO")));
    let v = rt.ok(&["--version"]);
    assert!(v.contains("version"), "{v}");
    assert!(v.lines().any(|l| l.starts_with("spec: 1.")), "{v}");
}

#[test]
fn state_carries_annotations_and_delete_force_stops_a_running_container() {
    let rt = runtime();
    let mut b = Bundle::new(&["sleep", "60"]);
    b.set(
        "/annotations",
        serde_json::json!({"org.berth.test": "yes", "k": "v"}),
    );
    let id = unique_id("annot");
    rt.start(&b, &id);
    let state = rt.state(&id);
    assert_eq!(state["annotations"]["org.berth.test"], "yes", "{state}");
    assert_eq!(state["annotations"]["k"], "v", "{state}");
    let pid = state["pid"].as_i64().unwrap();
    rt.ok(&["delete", "--force", &id]);
    rt.assert_no_state(&id);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z"),
        "pid {pid} survived delete --force"
    );
}
