//! Volumes on `berth daemon`, driven by the real docker CLIs (20.10 and 28) and by berth's
//! own CLI: create/ls/inspect/rm/prune with docker's output, errors and exit codes.
mod common;

use std::process::Output;

use common::*;

const CLIS: [&str; 2] = ["/usr/bin/docker", "/usr/local/bin/docker"];

fn run(bin: &str, host: &str, args: &[&str]) -> Output {
    std::process::Command::new(bin)
        .args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config_dir(host))
        .env("BERTH_CONFIG", config_dir(host))
        .arg_if_berth(bin, host)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{bin} missing: {e}"))
}

trait ArgIfBerth {
    fn arg_if_berth(&mut self, bin: &str, host: &str) -> &mut Self;
}

impl ArgIfBerth for std::process::Command {
    /// berth takes its host from `BERTH_HOST`.
    fn arg_if_berth(&mut self, bin: &str, host: &str) -> &mut Self {
        if bin == BERTH {
            self.env("BERTH_HOST", host);
        }
        self
    }
}

fn failed(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    stderr(out)
}

#[test]
fn volume_commands_speak_dockers_words() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let host = d.host.clone();
    let volumes = d.data_root.join("volumes");
    for bin in [CLIS[0], CLIS[1], BERTH] {
        let v = |args: &[&str]| run(bin, &host, args);
        assert_eq!(ok(v(&["volume", "create", "--label", "a=b", "v1"])), "v1\n");
        assert!(volumes.join("v1/_data").is_dir(), "{bin}: docker's layout");
        assert_eq!(
            ok(v(&["volume", "create", "v1"])),
            "v1\n",
            "{bin}: idempotent"
        );
        assert_eq!(ok(v(&["volume", "create", "--name", "v2"])), "v2\n");
        let table = ok(v(&["volume", "ls"]));
        assert_eq!(
            table, "DRIVER    VOLUME NAME\nlocal     v1\nlocal     v2\n",
            "{bin}"
        );
        assert_eq!(ok(v(&["volume", "ls", "-q", "-f", "label=a=b"])), "v1\n");
        assert_eq!(ok(v(&["volume", "ls", "-q", "-f", "name=2"])), "v2\n");
        assert_eq!(
            ok(v(&["volume", "ls", "-q", "-f", "dangling=true"])),
            "v1\nv2\n"
        );
        assert_eq!(
            ok(v(&["volume", "ls", "-q", "-f", "driver=local"])),
            "v1\nv2\n"
        );
        let inspect: serde_json::Value =
            serde_json::from_str(&ok(v(&["volume", "inspect", "v1"]))).unwrap();
        let one = &inspect[0];
        assert_eq!(one["Name"], "v1");
        assert_eq!(one["Driver"], "local");
        assert_eq!(one["Scope"], "local");
        assert_eq!(one["Labels"], serde_json::json!({"a": "b"}));
        assert_eq!(one["Options"], serde_json::Value::Null);
        assert_eq!(
            one["Mountpoint"],
            volumes.join("v1/_data").display().to_string()
        );
        assert!(
            one["CreatedAt"].as_str().unwrap().starts_with("20"),
            "{one}"
        );
        assert_eq!(
            ok(v(&[
                "volume",
                "inspect",
                "-f",
                "{{.Name}} {{.Labels}}",
                "v1"
            ])),
            "v1 map[a:b]\n"
        );

        // Bad input: one line, exit 1, nothing made.
        let e = failed(&v(&["volume", "create", "bad/name"]));
        assert_eq!(e, "Error response from daemon: create bad/name: \"bad/name\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path\n", "{bin}");
        let e = failed(&v(&["volume", "create", "-d", "nodriver", "x1"]));
        assert_eq!(e, "Error response from daemon: create x1: error looking up volume plugin nodriver: plugin \"nodriver\" not found\n");
        let e = failed(&v(&["volume", "create", "-o", "type=tmpfs", "x2"]));
        assert_eq!(
            e,
            "Error response from daemon: create x2: missing required option: \"device\"\n"
        );
        let e = failed(&v(&["volume", "create", "-o", "bogus=1", "x3"]));
        assert_eq!(
            e,
            "Error response from daemon: create x3: invalid option key: \"bogus\"\n"
        );
        assert!(!volumes.join("bad").exists() && !volumes.join("x1").exists());
        assert!(!volumes.join("x2").exists() && !volumes.join("x3").exists());
        let e = failed(&v(&["volume", "rm", "nope"]));
        // docker 28 prints the daemon's words, 20.10 (and berth) its own.
        let want = if bin == CLIS[1] {
            "Error response from daemon: get nope: no such volume\n"
        } else {
            "Error: No such volume: nope\n"
        };
        assert_eq!(e, want, "{bin}");
        let e = run(bin, &host, &["volume", "inspect", "nope"]);
        assert_eq!(e.status.code(), Some(1));
        assert!(stderr(&e).contains("nope"), "{e:?}");
        assert_eq!(ok(v(&["volume", "rm", "-f", "nope"])), "nope\n");

        // Options of the local driver are kept and shown.
        ok(v(&[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=size=1m",
            "t1",
        ]));
        assert_eq!(
            ok(v(&["volume", "inspect", "-f", "{{.Options}}", "t1"])),
            "map[device:tmpfs o:size=1m type:tmpfs]\n"
        );

        // rm prints each name; prune (API 1.41: named volumes too) reports what it removed.
        assert_eq!(ok(v(&["volume", "rm", "v1", "t1"])), "v1\nt1\n");
        assert!(!volumes.join("v1").exists());
        std::fs::write(volumes.join("v2/_data/f"), vec![0u8; 1500]).unwrap();
        ok(v(&["volume", "create", "--label", "keep=1", "v3"]));
        let out = ok(v(&["volume", "prune", "-f", "--filter", "label!=keep"]));
        assert_eq!(
            out, "Deleted Volumes:\nv2\n\nTotal reclaimed space: 1.5kB\n",
            "{bin}"
        );
        let out = ok(v(&["volume", "prune", "-f"]));
        assert_eq!(
            out, "Deleted Volumes:\nv3\n\nTotal reclaimed space: 0B\n",
            "{bin}"
        );
        assert_eq!(
            ok(v(&["volume", "prune", "-f"])),
            "Total reclaimed space: 0B\n"
        );
        assert_eq!(ok(v(&["volume", "ls", "-q"])), "");
    }
}
