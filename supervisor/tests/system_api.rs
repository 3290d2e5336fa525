//! `/_ping`, `/version` and `/info` of a real `berth daemon`: the fields dockerd 20.10 has
//! (names recorded from a private dockerd), with the host's real values, read by both docker
//! CLIs.
mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;

use berth_supervisor::cli::client::{Body, Client};
use common::*;
use serde_json::Value;

fn get(host: &str, path: &str) -> Value {
    let client = Client::new(host);
    let r = client.request("GET", path, &[], Body::None).unwrap();
    assert_eq!(r.status, 200, "{path}");
    serde_json::from_str(&r.text().unwrap()).unwrap()
}

fn cgroup_version() -> &'static str {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let v2 = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.get(1) == Some(&"/sys/fs/cgroup") && f.get(2) == Some(&"cgroup2")
    });
    if v2 {
        "2"
    } else {
        "1"
    }
}

#[test]
fn ping_carries_builder_version() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    for method in ["GET", "HEAD"] {
        let mut s = UnixStream::connect(d.host.trim_start_matches("unix://")).unwrap();
        write!(
            s,
            "{method} /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let lower = out.to_ascii_lowercase();
        for header in [
            "api-version: 1.41",
            "ostype: linux",
            "builder-version: 1",
            "cache-control: no-cache, no-store, must-revalidate",
            "pragma: no-cache",
        ] {
            assert!(
                lower.contains(&format!("\r\n{header}\r\n")),
                "{method}: {header}\n{out}"
            );
        }
    }
}

#[test]
fn version_has_the_engine_details() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let v = get(&d.host, "/version");
    let engine = &v["Components"][0];
    assert_eq!(engine["Name"], "Engine");
    let details = engine["Details"].as_object().unwrap();
    for key in [
        "ApiVersion",
        "MinAPIVersion",
        "Os",
        "Arch",
        "KernelVersion",
        "GitCommit",
        "GoVersion",
        "Experimental",
    ] {
        assert!(details.contains_key(key), "Engine Details lacks {key}: {v}");
    }
    assert_eq!(
        (
            details["ApiVersion"].as_str(),
            details["MinAPIVersion"].as_str()
        ),
        (Some("1.41"), Some("1.12"))
    );
    assert_eq!(details["Os"], "linux");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(details["KernelVersion"], kernel.trim());
    let names: Vec<&str> = v["Components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Engine", "berth-runtime", "docker-init"]);
    assert_eq!(
        v["Components"][2]["Version"], "0.19.0",
        "Debian's tini-static"
    );

    let out = Command::new("/usr/local/bin/docker")
        .args(["-H", &d.host, "version"])
        .output()
        .expect("docker 28 CLI");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("API version:      1.41 (minimum version 1.12)"),
        "{text}"
    );
    assert!(
        text.contains("docker-init:\n  Version:          0.19.0"),
        "{text}"
    );
}

#[test]
fn info_reports_the_hosts_cgroups_runtime_and_security() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let v = get(&d.host, "/info");
    assert_eq!(v["CgroupDriver"], "cgroupfs");
    assert_eq!(v["CgroupVersion"], cgroup_version());
    assert_eq!(v["DefaultRuntime"], "berth");
    let runtime = v["Runtimes"]["berth"]["path"].as_str().unwrap();
    assert!(runtime.ends_with("berth-runtime"), "{runtime}");
    assert!(v["SecurityOptions"]
        .as_array()
        .unwrap()
        .contains(&Value::from("name=seccomp,profile=default")));
    assert_eq!(v["LiveRestoreEnabled"], true);
    assert_eq!(v["InitBinary"], "docker-init");
    assert_eq!(v["Swarm"]["LocalNodeState"], "inactive");
    let os = std::fs::read_to_string("/etc/os-release").unwrap();
    let pretty = os
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .unwrap()
        .trim_matches('"');
    assert_eq!(v["OperatingSystem"], pretty);
    assert_eq!(v["DockerRootDir"], d.data_root.display().to_string());

    let out = Command::new(DOCKER)
        .args(["-H", &d.host, "info"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        " Cgroup Driver: cgroupfs\n".to_string(),
        format!(" Cgroup Version: {}\n", cgroup_version()),
        " Runtimes: berth\n".into(),
        " Default Runtime: berth\n".into(),
        " Init Binary: docker-init\n".into(),
        " Security Options:\n  seccomp\n   Profile: default\n".into(),
        " Live Restore Enabled: true\n".into(),
        format!(" Operating System: {pretty}\n"),
    ] {
        assert!(text.contains(&line), "docker info lacks {line:?}:\n{text}");
    }
}
