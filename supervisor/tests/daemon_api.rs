//! Starts the real `berth daemon` on a private socket and talks to it over HTTP (versioned and
//! unversioned paths, dockerd's headers and error bodies), with the `berth` CLI (auto-start
//! included) and Debian's `docker` client.
mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use berth_supervisor::cli::client::{Body, Client};
use common::*;

/// One raw request; returns the whole response (head and body) as text.
fn raw(host: &str, request: &str) -> String {
    let mut s = UnixStream::connect(host.trim_start_matches("unix://")).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn json_of(client: &Client, method: &str, path: &str) -> (u16, serde_json::Value) {
    let r = client.request(method, path, &[], Body::None).unwrap();
    let status = r.status;
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn cli_version_and_info_through_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let v: serde_json::Value = serde_json::from_str(&ok(berth(&d.host, &["version"]))).unwrap();
    assert_eq!(v["ApiVersion"], "1.41");
    let v: serde_json::Value = serde_json::from_str(&ok(berth(&d.host, &["info"]))).unwrap();
    assert_eq!(v["DockerRootDir"], d.data_root.display().to_string());
    assert_eq!(v["Images"], 0);
}

#[test]
fn ping_versioned_and_unversioned_with_dockerd_headers() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    for path in ["/_ping", "/v1.41/_ping", "/v1.24/_ping"] {
        let out = raw(
            &d.host,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        let lower = out.to_ascii_lowercase();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(lower.contains("\r\napi-version: 1.41\r\n"), "{out}");
        assert!(lower.contains("\r\nostype: linux\r\n"), "{out}");
        assert!(
            lower.contains("\r\ndocker-experimental: false\r\n"),
            "{out}"
        );
        assert!(lower.contains("\r\nserver: berth/"), "{out}");
        assert!(out.ends_with("\r\n\r\nOK"), "{out}");
    }
    let out = raw(
        &d.host,
        "HEAD /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
}

#[test]
fn errors_are_docker_shaped() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let client = Client::new(&d.host);
    let (status, body) = json_of(&client, "GET", "/nothing/here");
    assert_eq!(
        (status, body),
        (404, serde_json::json!({"message": "page not found"}))
    );
    let (status, body) = json_of(&client, "GET", "/images/127.0.0.1:5000/app/web:v1/json");
    assert_eq!(status, 404);
    assert_eq!(body["message"], "No such image: 127.0.0.1:5000/app/web:v1");
    let (status, body) = json_of(&client, "DELETE", "/images/nope");
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("No such image: nope"))
    );
    let (status, body) = json_of(&client, "GET", "/images/json?filters=%7Bbad");
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid filter"),
        "{body}"
    );
    // A registry that refuses connections fails before any progress: an HTTP error.
    let (status, body) = json_of(
        &client,
        "POST",
        "/images/create?fromImage=127.0.0.1:1/nope&tag=v1",
    );
    assert!(status >= 400, "{status} {body}");
    assert!(body["message"].is_string(), "{body}");
    // Garbage is no archive.
    let mut garbage: &[u8] = b"this is not a tar archive";
    let r = client
        .request(
            "POST",
            "/images/load?quiet=1",
            &[],
            Body::Stream(&mut garbage),
        )
        .unwrap();
    assert!(r.status >= 400, "{}", r.status);
    let text = r.text().unwrap();
    assert!(text.contains("\"message\""), "{text}");
}

#[test]
fn image_routes_with_slashes_colons_and_digests() {
    let dir = tempfile::tempdir().unwrap();
    let image = busybox_image("one", 15);
    seed(&dir.path().join("data"), "busybox", &image);
    let d = start(dir.path());
    let client = Client::new(&d.host);
    let r = client
        .request(
            "POST",
            "/images/busybox/tag?repo=127.0.0.1:5000/app/web&tag=v1",
            &[],
            Body::None,
        )
        .unwrap();
    assert_eq!(r.status, 201);
    let (status, body) = json_of(&client, "GET", "/images/127.0.0.1:5000/app/web:v1/json");
    assert_eq!(status, 200);
    assert_eq!(body["Id"], image.id.as_str());
    let id_path = format!("/images/{}/history", image.id);
    let (status, body) = json_of(&client, "GET", &id_path);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["Id"], image.id.as_str());
    assert_eq!(body[1]["Id"], "<missing>");
    let (_, list) = json_of(
        &client,
        "GET",
        "/images/json?filters=%7B%22reference%22%3A%7B%22*%2F*%2F*%22%3Atrue%7D%7D",
    );
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (status, removed) = json_of(&client, "DELETE", "/images/127.0.0.1:5000/app/web:v1");
    assert_eq!(status, 200);
    assert_eq!(
        removed,
        serde_json::json!([{"Untagged": "127.0.0.1:5000/app/web:v1"}])
    );
    // Unversioned paths route the same.
    let out = raw(
        &d.host,
        "GET /images/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(out.contains(&image.id), "{out}");
    let (status, report) = json_of(
        &client,
        "POST",
        "/images/prune?filters=%7B%22dangling%22%3A%7B%22false%22%3Atrue%7D%7D",
    );
    assert_eq!(status, 200);
    assert_eq!(
        report["ImagesDeleted"],
        serde_json::json!([{"Untagged": "busybox:latest"}, {"Deleted": image.id}])
    );
    assert!(report["SpaceReclaimed"].as_u64().unwrap() > 0);
}

/// Waits on `ImageService::save` (service/transfer.rs).
#[test]
fn save_streams_a_tar() {
    let dir = tempfile::tempdir().unwrap();
    let image = busybox_image("one", 15);
    seed(&dir.path().join("data"), "busybox", &image);
    let d = start(dir.path());
    let client = Client::new(&d.host);
    let r = client
        .request(
            "GET",
            "/images/get?names=busybox&names=busybox%3Alatest",
            &[],
            Body::None,
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/x-tar"));
    let mut archive = tar::Archive::new(r.body);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
}

#[test]
fn idle_daemon_rss_under_20_mib() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    ok(berth(&d.host, &["images"]));
    std::thread::sleep(Duration::from_millis(500));
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kib < 20 * 1024, "idle RSS {rss_kib} KiB");
}

#[test]
fn second_daemon_on_same_socket_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let out = Command::new(BERTH)
        .args(["daemon", "--host", &d.host, "--exec-root"])
        .arg(dir.path().join("exec2"))
        .arg("--data-root")
        .arg(dir.path().join("d2"))
        .args(HOST_NETWORK_FLAGS)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already answers"), "{out:?}");
}

#[test]
fn sigterm_removes_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path());
    ok(berth(&d.host, &["version"]));
    // SAFETY: signals our own child.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) };
    assert!(d.child.wait().unwrap().success());
    assert!(!dir.path().join("berth.sock").exists());
    assert!(!dir.path().join("exec/berth.pid").exists());
}

#[test]
fn docker_cli_version_against_berth() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let out = docker(&d.host, &["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(ok(out).trim(), "1.41");
}

#[test]
fn cli_autostarts_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/berth.sock", dir.path().display());
    // In a network namespace of its own: the daemon it starts makes its default bridge and
    // nftables table there, not on the host.
    let out = Command::new("unshare")
        .args(["--net", "--", BERTH, "-H", &host, "version"])
        .env("BERTH_DATA_ROOT", dir.path().join("data"))
        .output()
        .unwrap();
    let pid_file = dir.path().join("berth.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
    let _ = Command::new("kill").arg(pid.trim()).status();
    assert!(out.status.success(), "{out:?}");
    let stderr = stderr(&out);
    assert!(
        stderr.contains(&format!(
            "berth: started daemon (pid {}) on {host}",
            pid.trim()
        )),
        "{stderr}"
    );
    for _ in 0..100 {
        if !dir.path().join("berth.sock").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.path().join("berth.sock").exists());
}
