//! The real docker CLIs (Debian's 20.10 at /usr/bin/docker and the newer one at
//! /usr/local/bin/docker) driving containers on `berth daemon`: `run` (hijacked attach and
//! `wait?condition=` registered before start), `-i`, `-d`, `ps`, `logs`, `exec`, `stop`,
//! `rm`, and docker's errors and exit codes.
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

const CLIS: [&str; 2] = ["/usr/bin/docker", "/usr/local/bin/docker"];

fn cli(bin: &str, host: &str, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config_dir(host))
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin} missing: {e}"));
    if let Some(bytes) = input {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

#[test]
fn docker_cli_runs_containers() {
    let dir = tempfile::tempdir().unwrap();
    seed(
        &dir.path().join("data"),
        "busybox",
        &busybox_image("one", 1),
    );
    let d = start(dir.path());
    let host = d.host.clone();
    for bin in CLIS {
        let run = |args: &[&str]| cli(bin, &host, args, None);
        let out = run(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]);
        assert_eq!(out.status.code(), Some(3), "{bin}: {out:?}");
        assert_eq!(stdout(&out), "out\n", "{bin}");
        assert_eq!(stderr(&out), "err\n", "{bin}");
        let out = cli(
            bin,
            &host,
            &[
                "run", "-i", "--rm", "busybox", "busybox", "tr", "a-z", "A-Z",
            ],
            Some(b"piped\n"),
        );
        assert_eq!(stdout(&out), "PIPED\n", "{bin}: {out:?}");
        let out = run(&["run", "--rm", "busybox", "nosuch"]);
        assert_eq!(out.status.code(), Some(127), "{bin}: {out:?}");
        assert!(
            stderr(&out).contains("executable file not found"),
            "{bin}: {out:?}"
        );

        let id = ok(run(&[
            "run",
            "-d",
            "--name",
            "web",
            "busybox",
            "sh",
            "-c",
            "echo up; while true; do busybox sleep 0.1; done",
        ]));
        let id = id.trim();
        assert_eq!(ok(run(&["ps", "-q"])), format!("{}\n", &id[..12]), "{bin}");
        assert_eq!(
            ok(run(&[
                "ps",
                "--format",
                "{{.Names}} {{.Image}} {{.Command}}"
            ])),
            "web busybox \"sh -c echo up; whil…\"\n",
            "{bin}"
        );
        let out = run(&["run", "-d", "--name", "web", "busybox", "true"]);
        assert_eq!(out.status.code(), Some(125), "{bin}");
        assert!(
            stderr(&out).contains("Conflict. The container name \"/web\" is already in use"),
            "{bin}: {out:?}"
        );
        let out = run(&[
            "exec",
            "web",
            "sh",
            "-c",
            "echo in $(busybox hostname); exit 4",
        ]);
        assert_eq!(out.status.code(), Some(4), "{bin}: {out:?}");
        assert_eq!(stdout(&out), format!("in {}\n", &id[..12]), "{bin}");
        let mut logs = String::new();
        for _ in 0..100 {
            logs = ok(run(&["logs", "web"]));
            if !logs.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(logs, "up\n", "{bin}");
        let v: serde_json::Value = serde_json::from_str(&ok(run(&["inspect", "web"]))).unwrap();
        assert_eq!(v[0]["State"]["Status"], "running", "{bin}");
        assert_eq!(v[0]["Name"], "/web", "{bin}");
        let out = run(&["rm", "web"]);
        assert_eq!(out.status.code(), Some(1), "{bin}");
        assert!(
            stderr(&out).contains("You cannot remove a running container"),
            "{bin}: {out:?}"
        );
        assert_eq!(ok(run(&["stop", "-t", "1", "web"])), "web\n", "{bin}");
        assert_eq!(
            ok(run(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                "web"
            ])),
            "exited 137\n",
            "{bin}"
        );
        assert_eq!(ok(run(&["rm", "web"])), "web\n", "{bin}");
        let out = run(&["rm", "web"]);
        assert_eq!(out.status.code(), Some(1), "{bin}");
        assert!(
            stderr(&out).contains("No such container: web"),
            "{bin}: {out:?}"
        );
        assert_eq!(ok(run(&["ps", "-aq"])), "", "{bin}: containers left");
    }
}
