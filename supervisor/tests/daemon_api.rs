//! Starts the real `berth daemon` on a private socket and talks to it with the `berth` CLI
//! (auto-start included) and Debian's `docker` client.
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path) -> (Daemon, String) {
    let host = format!("unix://{}/berth.sock", dir.display());
    let child = Command::new(BERTH)
        .args(["daemon", "--host", &host, "--data-root"])
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .spawn()
        .expect("spawn berth daemon");
    for _ in 0..100 {
        if dir.join("berth.sock").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (Daemon { child }, host)
}

fn berth(host: &str, args: &[&str]) -> Output {
    Command::new(BERTH)
        .arg("-H")
        .arg(host)
        .args(args)
        .output()
        .expect("run berth")
}

#[test]
fn cli_version_and_info_through_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, host) = start(dir.path());
    let out = berth(&host, &["version"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ApiVersion"], "1.41");
    let out = berth(&host, &["info"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["DockerRootDir"],
        dir.path().join("data").display().to_string()
    );
}

#[test]
fn second_daemon_on_same_socket_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, host) = start(dir.path());
    let out = Command::new(BERTH)
        .args(["daemon", "--host", &host, "--exec-root"])
        .arg(dir.path().join("exec2"))
        .arg("--data-root")
        .arg(dir.path().join("d2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already answers"),
        "{out:?}"
    );
}

#[test]
fn sigterm_removes_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, host) = start(dir.path());
    assert!(berth(&host, &["version"]).status.success());
    Command::new("kill")
        .arg(daemon.child.id().to_string())
        .status()
        .unwrap();
    assert!(daemon.child.wait().unwrap().success());
    assert!(!dir.path().join("berth.sock").exists());
    assert!(!dir.path().join("exec/berth.pid").exists());
}

#[test]
fn docker_cli_version_against_berth() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, host) = start(dir.path());
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .env("DOCKER_HOST", &host)
        .output()
        .expect("docker CLI missing: apt-get install docker.io");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.41");
}

#[test]
fn cli_autostarts_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/berth.sock", dir.path().display());
    let out = Command::new(BERTH)
        .args(["-H", &host, "version"])
        .env("BERTH_DATA_ROOT", dir.path().join("data"))
        .output()
        .unwrap();
    let pid_file = dir.path().join("berth.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
    let _ = Command::new("kill").arg(pid.trim()).status();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
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
