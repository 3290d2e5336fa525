//! The real docker CLIs (Debian's 20.10 at /usr/bin/docker and the newer one at
//! /usr/local/bin/docker) driving containers on `berth daemon`: `run` (hijacked attach and
//! `wait?condition=` registered before start), `-i`, `-d`, `ps`, `logs`, `exec`, `stop`,
//! `rm`, and docker's errors and exit codes.
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::json;

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
    let engine = Engine::start_tmp("one");
    let host = engine.host.clone();
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
        // kill, as dockerd's: SIGKILL returns once the container has exited, so the
        // inspect right after shows it exited; a paused one is thawed to die.
        let state = || {
            ok(run(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                "web",
            ]))
        };
        for paused in [false, true] {
            assert_eq!(ok(run(&["start", "web"])), "web\n", "{bin}");
            if paused {
                assert_eq!(ok(run(&["pause", "web"])), "web\n", "{bin}");
            }
            assert_eq!(ok(run(&["kill", "web"])), "web\n", "{bin} paused={paused}");
            assert_eq!(state(), "exited 137\n", "{bin} paused={paused}");
        }
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

/// dockerd 20.10's behaviour for an exec that cannot start (recorded from a private dockerd
/// with runc): the hijacked stream carries only the message, the exit code is 126, at once;
/// the runtime's path is in no message (docker shows the runtime's own words).
#[test]
fn exec_that_cannot_start_fails_fast_with_126() {
    let engine = Engine::start_tmp("one");
    let host = engine.host.clone();
    ok(berth(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "up",
            "busybox",
            "sh",
            "-c",
            "while :; do busybox sleep 1; done",
        ],
    ));
    let berth_cli = BERTH.to_string();
    for bin in [CLIS[0], CLIS[1], &berth_cli] {
        for args in [
            &["exec", "-w", "/missing", "up", "true"][..],
            &["exec", "-t", "-w", "/missing", "up", "true"][..],
            &["exec", "up", "nosuch"][..],
            &["exec", "-u", "nobody9", "up", "true"][..],
        ] {
            let out = if bin == berth_cli {
                berth(&host, args)
            } else {
                cli(bin, &host, args, None)
            };
            assert_eq!(out.status.code(), Some(126), "{bin} {args:?}: {out:?}");
            let text = stdout(&out) + &stderr(&out);
            assert!(!text.contains("berth-runtime"), "{bin} {args:?}: {text}");
            let expected = match args {
                _ if args.contains(&"nobody9") => {
                    "unable to find user nobody9: no matching entries in passwd file"
                }
                _ if args.contains(&"nosuch") => {
                    "OCI runtime exec failed: exec: \"nosuch\": executable file not found in $PATH: unknown"
                }
                _ => "OCI runtime exec failed: chdir /missing: ",
            };
            assert!(text.contains(expected), "{bin} {args:?}: {text}");
        }
    }
    let out = cli(CLIS[0], &host, &["run", "--rm", "busybox", "nosuch"], None);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(
        stderr(&out).contains(
            "docker: Error response from daemon: failed to create shim task: OCI runtime create failed: exec: \"nosuch\": executable file not found in $PATH: unknown"
        ),
        "{out:?}"
    );
}

/// `rmi` of an image that a container uses: dockerd 20.10's 409s (texts recorded from a
/// private dockerd), and `rmi -f NAME` only untags, the image stays for its container.
#[test]
fn rmi_of_an_image_in_use_is_refused() {
    let engine = Engine::start_tmp("one");
    let host = engine.host.clone();
    let image = short(&engine.image_id);
    let id = ok(berth(
        &host,
        &[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "while :; do busybox sleep 1; done",
        ],
    ));
    let cid = &id.trim()[..12];
    let stopped = ok(berth(&host, &["create", "busybox", "sh", "-c", "exit 0"]));
    let sid = &stopped.trim()[..12];
    for bin in CLIS {
        let out = cli(bin, &host, &["rmi", "busybox"], None);
        assert_eq!(out.status.code(), Some(1), "{bin}: {out:?}");
        let first = "Error response from daemon: conflict: unable to remove repository reference \"busybox\" (must force) - container ";
        assert!(stderr(&out).starts_with(first), "{bin}: {out:?}");
        assert!(
            stderr(&out)
                .trim_end()
                .ends_with(&format!("is using its referenced image {image}")),
            "{bin}: {out:?}"
        );
        for force in [&["rmi", &image][..], &["rmi", "-f", &image][..]] {
            let out = cli(bin, &host, force, None);
            assert_eq!(out.status.code(), Some(1), "{bin}: {out:?}");
            assert_eq!(
                stderr(&out),
                format!("Error response from daemon: conflict: unable to delete {image} (cannot be forced) - image is being used by running container {cid}\n"),
                "{bin}"
            );
        }
    }
    ok(berth(&host, &["rm", "-f", cid]));
    let out = cli(CLIS[0], &host, &["rmi", &image], None);
    assert_eq!(
        stderr(&out),
        format!("Error response from daemon: conflict: unable to delete {image} (must be forced) - image is being used by stopped container {sid}\n"),
    );
    assert_eq!(
        ok(cli(CLIS[0], &host, &["rmi", "-f", "busybox"], None)),
        "Untagged: busybox:latest\n"
    );
    assert_eq!(
        ok(cli(
            CLIS[0],
            &host,
            &["images", "--format", "{{.Repository}} {{.ID}}"],
            None
        )),
        format!("<none> {image}\n"),
        "the image stays for its container"
    );
    assert_eq!(ok(cli(CLIS[0], &host, &["start", "-a", sid], None)), "");
    ok(berth(&host, &["rm", sid]));
    let out = cli(CLIS[1], &host, &["rmi", &image], None);
    assert_eq!(ok(out), format!("Deleted: {}\n", engine.image_id));
}

/// Restart policies through docker's CLIs: `on-failure:2` restarts twice (RestartCount 2, its
/// exit code kept), `always` restarts until a manual stop; the daemon's start applies them
/// again: `always` starts even after a manual stop, a manually stopped `unless-stopped` not.
#[test]
fn restart_policies() {
    let mut engine = Engine::start_tmp("one");
    let host = engine.host.clone();
    let docker = |bin: &str, args: &[&str]| ok(cli(bin, &host, args, None));
    docker(
        CLIS[0],
        &[
            "run",
            "-d",
            "--restart",
            "on-failure:2",
            "--name",
            "fail",
            "busybox",
            "sh",
            "-c",
            "echo run; exit 3",
        ],
    );
    let f = "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}";
    assert_eq!(engine.until("fail", f, |s| s == "exited 3 2"), "exited 3 2");
    assert_eq!(docker(CLIS[1], &["logs", "fail"]), "run\nrun\nrun\n");
    assert_eq!(
        docker(CLIS[1], &["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}} {{.RestartCount}}", "fail"]),
        "on-failure:2 2\n"
    );

    docker(
        CLIS[1],
        &[
            "run",
            "-d",
            "--restart",
            "always",
            "--name",
            "alw",
            "busybox",
            "sh",
            "-c",
            "echo a; exit 0",
        ],
    );
    engine.until("alw", "{{.RestartCount}}", |s| {
        s.parse::<u32>().unwrap_or(0) >= 3
    });
    assert_eq!(docker(CLIS[0], &["stop", "alw"]), "alw\n");
    engine.until("alw", "{{.State.Status}}", |s| s == "exited");

    let loop_ = "trap 'exit 0' TERM; while :; do busybox sleep 0.1; done";
    docker(
        CLIS[0],
        &[
            "run",
            "-d",
            "--restart",
            "unless-stopped",
            "--name",
            "unl",
            "busybox",
            "sh",
            "-c",
            loop_,
        ],
    );
    docker(
        CLIS[0],
        &[
            "run",
            "-d",
            "--restart",
            "unless-stopped",
            "--name",
            "up",
            "busybox",
            "sh",
            "-c",
            loop_,
        ],
    );
    assert_eq!(docker(CLIS[0], &["stop", "unl"]), "unl\n");
    assert_eq!(
        docker(
            CLIS[0],
            &[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}",
                "unl"
            ]
        ),
        "exited 0 0\n"
    );

    // Containers outlive the daemon: a killed one exits meanwhile and is restarted on start.
    let up_pid = docker(CLIS[0], &["inspect", "-f", "{{.State.Pid}}", "up"]);
    engine.daemon.take();
    // SAFETY: kills the init of this test's container.
    unsafe { libc::kill(up_pid.trim().parse().unwrap(), libc::SIGKILL) };
    engine.restart_daemon();
    let host = engine.host.clone();
    let status = |name: &str| {
        ok(cli(
            CLIS[0],
            &host,
            &["inspect", "-f", "{{.State.Status}}", name],
            None,
        ))
    };
    // Started with the daemon (after the merge with networks, its first start there can fail
    // and the policy's back-off starts it again: polled).
    engine.until("alw", "{{.State.Status}}", |s| s == "running");
    assert_eq!(
        status("unl"),
        "exited\n",
        "unless-stopped, stopped by hand: stays"
    );
    assert_eq!(
        status("fail"),
        "exited\n",
        "on-failure:2 after two restarts: stays"
    );
    engine.until("up", "{{.State.Status}} {{.RestartCount}}", |s| {
        s == "running 1"
    });
}

/// Reads the first `n` lines of a streamed API answer (chunked JSON lines).
fn stream_lines(host: &str, path: &str, n: usize) -> Vec<serde_json::Value> {
    use std::io::{BufRead, BufReader};
    let socket = host.trim_start_matches("unix://");
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(s).lines() {
        let line = line.unwrap();
        // Chunk sizes (`3e8`) parse as JSON numbers: only the objects are samples.
        if let Ok(v @ serde_json::Value::Object(_)) = serde_json::from_str(line.trim()) {
            lines.push(v);
            if lines.len() == n {
                break;
            }
        }
    }
    lines
}

/// `stats` and `top` through both docker CLIs and berth's: the memory limit, pids and name
/// as set, `top` rows of the container's processes only with `ps`'s own titles; the
/// streamed API answers one sample a second, each with the previous as its `precpu_stats`.
#[test]
fn stats_and_top() {
    let engine = Engine::start_tmp("one");
    let host = engine.host.clone();
    let script = "while :; do busybox sleep 0.1; done";
    ok(cli(
        CLIS[0],
        &host,
        &[
            "run",
            "-d",
            "--name",
            "busy",
            "-m",
            "64m",
            "--pids-limit",
            "50",
            "busybox",
            "sh",
            "-c",
            script,
        ],
        None,
    ));
    for bin in CLIS {
        let out = ok(cli(
            bin,
            &host,
            &[
                "stats",
                "--no-stream",
                "--format",
                "{{.Name}} {{.MemUsage}} {{.PIDs}}",
                "busy",
            ],
            None,
        ));
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words[0], "busy", "{bin}: {out}");
        assert_eq!(&words[2..4], ["/", "64MiB"], "{bin}: {out}");
        let pids: u32 = words[4].parse().unwrap();
        assert!((1..=3).contains(&pids), "{bin}: {out}");
        let out = ok(cli(bin, &host, &["top", "busy"], None));
        let mut lines = out.lines();
        let titles: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            titles,
            ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
            "{bin}"
        );
        let rows: Vec<&str> = lines.collect();
        assert!(
            rows.iter().any(|r| r.ends_with(&format!("sh -c {script}"))),
            "{bin}: {out}"
        );
        assert!(rows.len() <= 2, "only the container's processes: {out}");
        let out = ok(cli(bin, &host, &["top", "busy", "-o", "pid,comm"], None));
        assert!(out.starts_with("PID"), "{bin}: {out}");
        assert!(out.contains("COMMAND"), "{bin}: {out}");
        let out = cli(bin, &host, &["top", "nosuch"], None);
        assert!(
            stderr(&out).contains("No such container: nosuch"),
            "{bin}: {out:?}"
        );
    }
    let out = ok(berth(&host, &["stats", "--no-stream", "busy"]));
    let mut lines = out.lines();
    assert_eq!(
        lines
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        "CONTAINER ID NAME CPU % MEM USAGE / LIMIT MEM % NET I/O BLOCK I/O PIDS"
    );
    assert!(lines.next().unwrap().contains(" busy "), "{out}");
    let out = ok(berth(&host, &["top", "busy"]));
    assert!(out.starts_with("UID "), "{out}");
    assert!(out.contains(&format!("sh -c {script}")), "{out}");

    let samples = stream_lines(&host, "/v1.41/containers/busy/stats", 2);
    assert_eq!(samples.len(), 2);
    let total = |v: &serde_json::Value, k: &str| v[k]["cpu_usage"]["total_usage"].as_u64().unwrap();
    assert_eq!(
        total(&samples[0], "precpu_stats"),
        0,
        "the first sample has no base"
    );
    assert_eq!(
        total(&samples[1], "precpu_stats"),
        total(&samples[0], "cpu_stats")
    );
    assert_eq!(samples[1]["memory_stats"]["limit"], 64 << 20);
    assert_eq!(samples[1]["name"], "/busy");
    assert!(
        total(&samples[1], "cpu_stats") > 0,
        "a looping shell used CPU: {}",
        samples[1]["cpu_stats"]
    );
    assert!(samples[1]["pids_stats"]["current"].as_u64().unwrap() >= 1);

    // `/info` counts the containers by state.
    let info = |bin: &str| {
        ok(cli(bin, &host, &["info", "--format", "{{.Containers}} {{.ContainersRunning}} {{.ContainersPaused}} {{.ContainersStopped}}"], None))
    };
    assert_eq!(info(CLIS[0]), "1 1 0 0\n");
    ok(berth(&host, &["create", "busybox", "true"]));
    ok(berth(&host, &["pause", "busy"]));
    assert_eq!(info(CLIS[1]), "2 0 1 1\n");
    ok(berth(&host, &["unpause", "busy"]));

    // BLOCK I/O: 8 MiB written with O_DIRECT reach the disk from the container's cgroup.
    // The kernel counts a cgroup's block I/O only on a disk that has a throttle, so the
    // container gets a generous one on the disk under the daemon's data root.
    let disk = "busybox dd if=/dev/zero of=/big bs=1M count=8 oflag=direct && busybox sleep 600";
    let throttle = format!("{}:10gb", disk_of(&std::env::temp_dir()));
    ok(berth(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "disk",
            "--device-write-bps",
            &throttle,
            "busybox",
            "sh",
            "-c",
            disk,
        ],
    ));
    let spec: serde_json::Value =
        serde_json::from_str(&ok(berth(&host, &["inspect", "disk"]))).unwrap();
    let spec = &spec[0];
    assert_eq!(
        spec["HostConfig"]["BlkioDeviceWriteBps"][0]["Rate"],
        10u64 << 30,
        "berth's --device-write-bps reaches the API as docker's does"
    );
    let written = || {
        let out = ok(cli(
            CLIS[0],
            &host,
            &["stats", "--no-stream", "--format", "{{.BlockIO}}", "disk"],
            None,
        ));
        let write = out.trim().rsplit(" / ").next().unwrap_or("").to_string();
        let mb = write.strip_suffix("MB").and_then(|n| n.parse::<f64>().ok());
        (mb.unwrap_or(0.0), out)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (mut mb, mut out) = written();
    while mb < 8.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        (mb, out) = written();
    }
    assert!(mb >= 8.0, "8 MiB written show in BLOCK I/O: {out}");
}

/// The whole disk (`/dev/vda`, not a partition of it) that holds `path`.
fn disk_of(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).unwrap();
    let disk = if sys.join("partition").exists() {
        sys.parent().unwrap().to_path_buf()
    } else {
        sys
    };
    format!("/dev/{}", disk.file_name().unwrap().to_string_lossy())
}

/// `events` with both docker CLIs: the lifecycle of a container in dockerd 20.10's order and
/// attributes (recorded from a private dockerd doing the same steps), filters, and
/// `since`/`until`; then `container prune` removes the stopped containers only.
#[test]
fn events_and_container_prune() {
    let engine = Engine::start_tmp("one");
    let host = engine.host.clone();
    let since = chrono::Utc::now().timestamp().to_string();
    let docker = |args: &[&str]| ok(cli(CLIS[0], &host, args, None));
    let script = "trap 'exit 0' TERM; while :; do busybox sleep 0.1; done";
    docker(&[
        "run", "-d", "--name", "ev", "-l", "a=b", "busybox", "sh", "-c", script,
    ]);
    docker(&["rename", "ev", "ev2"]);
    docker(&["pause", "ev2"]);
    docker(&["unpause", "ev2"]);
    docker(&["exec", "ev2", "busybox", "true"]);
    docker(&["restart", "-t", "5", "ev2"]);
    docker(&["stop", "ev2"]);
    docker(&["rm", "ev2"]);
    let until = (chrono::Utc::now().timestamp() + 1).to_string();
    let attrs = |name: &str, extra: &str| {
        format!(r#"{{"a":"b",{extra}"image":"busybox","name":"{name}"}}"#)
    };
    let expected: String = [
        ("create", attrs("ev", "")),
        ("start", attrs("ev", "")),
        (
            "rename",
            r#"{"a":"b","image":"busybox","name":"ev2","oldName":"/ev"}"#.to_string(),
        ),
        ("pause", attrs("ev2", "")),
        ("unpause", attrs("ev2", "")),
        (
            "exec_create: busybox true",
            attrs("ev2", r#""execID":"X","#),
        ),
        ("exec_start: busybox true", attrs("ev2", r#""execID":"X","#)),
        (
            "kill",
            r#"{"a":"b","image":"busybox","name":"ev2","signal":"15"}"#.to_string(),
        ),
        ("die", attrs("ev2", r#""exitCode":"0","#)),
        ("stop", attrs("ev2", "")),
        ("start", attrs("ev2", "")),
        ("restart", attrs("ev2", "")),
        (
            "kill",
            r#"{"a":"b","image":"busybox","name":"ev2","signal":"15"}"#.to_string(),
        ),
        ("die", attrs("ev2", r#""exitCode":"0","#)),
        ("stop", attrs("ev2", "")),
        ("destroy", attrs("ev2", "")),
    ]
    .iter()
    .map(|(action, attrs)| format!("{action} {attrs}\n"))
    .collect();
    let format = "{{.Action}} {{json .Actor.Attributes}}";
    // The exec id is random: compared as X.
    let normal = |out: &str| -> String {
        out.lines()
            .map(|l| match l.find(r#""execID":""#) {
                Some(i) => {
                    let at = i + r#""execID":""#.len();
                    format!("{}X{}\n", &l[..at], &l[(at + 64).min(l.len())..])
                }
                None => format!("{}\n", l.trim_end()),
            })
            .collect()
    };
    for bin in CLIS {
        let out = ok(cli(
            bin,
            &host,
            &[
                "events", "--since", &since, "--until", &until, "--format", format,
            ],
            None,
        ));
        assert_eq!(normal(&out), expected, "{bin}");
        let out = ok(cli(
            bin,
            &host,
            &[
                "events",
                "--since",
                &since,
                "--until",
                &until,
                "--filter",
                "event=die",
                "--filter",
                "label=a=b",
                "--format",
                "{{.Type}} {{.Action}} {{.Actor.Attributes.image}}",
            ],
            None,
        ));
        assert_eq!(
            out, "container die busybox\ncontainer die busybox\n",
            "{bin}"
        );
        let out = ok(cli(
            bin,
            &host,
            &[
                "events",
                "--since",
                &since,
                "--until",
                &until,
                "--filter",
                "container=nosuch",
            ],
            None,
        ));
        assert_eq!(out, "", "{bin}");
    }
    let out = ok(berth(
        &host,
        &[
            "events", "--since", &since, "--until", &until, "--format", format,
        ],
    ));
    assert_eq!(normal(&out), expected, "berth");
    let out = ok(berth(
        &host,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "event=rename",
        ],
    ));
    assert!(
        out.trim_end()
            .ends_with("(a=b, image=busybox, name=ev2, oldName=/ev)"),
        "{out}"
    );
    assert!(out.contains("Z container rename "), "{out}");
    let line = ok(cli(
        CLIS[1],
        &host,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "event=create",
            "--format",
            "{{json .}}",
        ],
        None,
    ));
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["status"], "create");
    assert_eq!(v["from"], "busybox");
    assert_eq!(v["scope"], "local");
    assert_eq!(v["Actor"]["Attributes"]["a"], "b");
    assert_eq!(
        v["time"].as_i64().unwrap(),
        v["timeNano"].as_i64().unwrap() / 1_000_000_000
    );

    // A follower gets the past events since its `since`, then the new ones as they happen.
    let mut follower = Command::new(CLIS[1])
        .args([
            "events",
            "--since",
            &since,
            "--filter",
            "event=destroy",
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
        .env("DOCKER_HOST", &host)
        .env("DOCKER_CONFIG", config_dir(&host))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let keep = ok(berth(
        &host,
        &["run", "-d", "--name", "keep", "busybox", "sh", "-c", script],
    ));
    let gone = ok(berth(
        &host,
        &["create", "--name", "gone", "-l", "x=1", "busybox", "true"],
    ));
    ok(berth(
        &host,
        &["create", "--name", "other", "busybox", "true"],
    ));
    let out = ok(cli(
        CLIS[0],
        &host,
        &["container", "prune", "-f", "--filter", "label=x=1"],
        None,
    ));
    assert_eq!(
        out,
        format!(
            "Deleted Containers:\n{}\n\nTotal reclaimed space: 0B\n",
            gone.trim()
        )
    );
    let out = ok(berth(&host, &["container", "prune", "-f"]));
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert_eq!(
        ok(cli(CLIS[1], &host, &["container", "prune", "-f"], None)),
        "Total reclaimed space: 0B\n"
    );
    assert_eq!(
        ok(berth(&host, &["ps", "-aq"])),
        format!("{}\n", &keep.trim()[..12])
    );
    let mut names = String::new();
    {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(follower.stdout.take().unwrap()).lines();
        for _ in 0..3 {
            names.push_str(&lines.next().unwrap().unwrap());
            names.push('\n');
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(names, "ev2\ngone\nother\n");
}

/// `State.Health` of `name` as JSON.
fn health(engine: &Engine, name: &str) -> serde_json::Value {
    let out = stdout(&berth(
        &engine.host,
        &["inspect", "-f", "{{json .State.Health}}", name],
    ));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{name}: {out:?}: {e}"))
}

#[test]
fn healthchecks() {
    let mut engine = Engine::start_tmp("one");
    let host = engine.host.clone();
    let script = "trap 'exit 0' TERM; while :; do busybox sleep 0.1; done";
    let bins = [CLIS[0], CLIS[1], "berth"];
    for (i, bin) in bins.iter().enumerate() {
        let run = |args: &[&str]| match *bin {
            "berth" => berth(&host, args),
            _ => cli(bin, &host, args, None),
        };
        let name = format!("hc{i}");
        let since = chrono::Utc::now().timestamp().to_string();
        let id = ok(run(&[
            "run",
            "-d",
            "--name",
            &name,
            "--health-cmd",
            "test -e /etc/ok && echo fine",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "busybox",
            "sh",
            "-c",
            script,
        ]));
        let id = id.trim().to_string();
        let config = stdout(&berth(
            &host,
            &["inspect", "-f", "{{json .Config.Healthcheck}}", &name],
        ));
        let config: serde_json::Value = serde_json::from_str(config.trim()).unwrap();
        assert_eq!(
            config,
            json!({"Test": ["CMD-SHELL", "test -e /etc/ok && echo fine"], "Interval": 200000000, "Retries": 2}),
            "{bin}"
        );
        engine.until(&name, "{{.State.Health.Status}}", |s| s == "unhealthy");
        let h = health(&engine, &name);
        assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{bin}: {h}");
        let last = &h["Log"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["ExitCode"], 1, "{bin}: {h}");
        assert!(last["Start"].as_str().unwrap() <= last["End"].as_str().unwrap());
        assert_eq!(
            ok(run(&[
                "ps",
                "-q",
                "--no-trunc",
                "--filter",
                "health=unhealthy"
            ]))
            .trim(),
            id,
            "{bin}"
        );
        let status = ok(run(&[
            "ps",
            "--filter",
            &format!("name={name}"),
            "--format",
            "{{.Status}}",
        ]));
        assert!(status.trim().ends_with("(unhealthy)"), "{bin}: {status}");

        ok(run(&["exec", &name, "busybox", "touch", "/etc/ok"]));
        engine.until(&name, "{{.State.Health.Status}}", |s| s == "healthy");
        let h = health(&engine, &name);
        assert_eq!(h["FailingStreak"], 0, "{bin}: {h}");
        let log = h["Log"].as_array().unwrap();
        assert!(log.len() <= 5, "{bin}: {h}");
        let last = log.last().unwrap();
        assert_eq!(
            (&last["ExitCode"], &last["Output"]),
            (&json!(0), &json!("fine\n")),
            "{bin}: {h}"
        );
        assert_eq!(
            ok(run(&[
                "ps",
                "-q",
                "--no-trunc",
                "--filter",
                "health=healthy"
            ]))
            .trim(),
            id,
            "{bin}"
        );
        assert!(
            ok(run(&["ps", "-q", "--filter", "health=unhealthy"])).is_empty(),
            "{bin}"
        );
        let status = ok(run(&[
            "ps",
            "--filter",
            &format!("name={name}"),
            "--format",
            "{{.Status}}",
        ]));
        assert!(status.trim().ends_with("(healthy)"), "{bin}: {status}");
        // Docker's health_status events (the journal also holds each probe's exec events).
        let until = (chrono::Utc::now().timestamp() + 1).to_string();
        let events = ok(run(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "event=health_status",
            "--filter",
            &format!("container={name}"),
            "--format",
            "{{.Action}}",
        ]));
        assert_eq!(
            events, "health_status: unhealthy\nhealth_status: healthy\n",
            "{bin}"
        );
        // Stopped: the monitor ends, the status is docker's `unhealthy`.
        ok(run(&["stop", &name]));
        assert_eq!(health(&engine, &name)["Status"], "unhealthy", "{bin}");
        ok(run(&["rm", &name]));
    }

    // A probe past its timeout is killed and fails with exit -1 and docker's text.
    ok(berth(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "slow",
            "--health-cmd",
            "busybox sleep 30",
            "--health-timeout",
            "300ms",
            "--health-interval",
            "100ms",
            "--health-retries",
            "1",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    ));
    engine.until("slow", "{{.State.Health.Status}}", |s| s == "unhealthy");
    let h = health(&engine, "slow");
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], -1, "{h}");
    assert_eq!(
        last["Output"], "Health check exceeded timeout (300ms)",
        "{h}"
    );

    // The image's HEALTHCHECK, and --no-healthcheck against it.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nHEALTHCHECK --interval=200ms --retries=1 CMD cat /etc/marker\n",
    )
    .unwrap();
    ok(berth(
        &host,
        &["build", "-q", "-t", "hcimage", ctx.path().to_str().unwrap()],
    ));
    ok(berth(
        &host,
        &["run", "-d", "--name", "img", "hcimage", "sh", "-c", script],
    ));
    ok(berth(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "nohc",
            "--no-healthcheck",
            "hcimage",
            "sh",
            "-c",
            script,
        ],
    ));
    engine.until("img", "{{.State.Health.Status}}", |s| s == "healthy");
    let h = health(&engine, "img");
    assert_eq!(h["Log"][0]["Output"], "one", "{h}");
    assert_eq!(
        stdout(&berth(
            &host,
            &["inspect", "-f", "{{json .State.Health}}", "nohc"]
        ))
        .trim(),
        "null"
    );
    assert_eq!(
        ok(berth(
            &host,
            &["ps", "--filter", "health=none", "--format", "{{.Names}}"]
        )),
        "nohc\n"
    );
    let out = berth(&host, &["ps", "--filter", "health=fine"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Unrecognised filter value for health: fine"),
        "{out:?}"
    );

    // A daemon restart keeps State.Health and the probes go on.
    let before = health(&engine, "img");
    let last_start =
        |h: &serde_json::Value| h["Log"].as_array().unwrap().last().unwrap()["Start"].clone();
    engine.restart_daemon();
    let after = health(&engine, "img");
    assert_eq!(after["Status"], "healthy", "{after}");
    assert!(!after["Log"].as_array().unwrap().is_empty(), "{after}");
    let seen = last_start(&before);
    let mut newer = false;
    for _ in 0..300 {
        let now = last_start(&health(&engine, "img"));
        if now.as_str() > seen.as_str() {
            newer = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(newer, "no probe after the daemon's restart (last {seen})");
}

/// `run -it` under a real terminal (util-linux `script` gives the CLI a pty): the container
/// gets a pty of its own, reads what is typed, and the CLI exits with the process's code.
#[test]
fn run_it_in_a_pty() {
    let engine = Engine::start_tmp("one");
    let host = engine.host.clone();
    let inner = "tty; read l; echo got $l; exit 3";
    for bin in [CLIS[0], CLIS[1], common::BERTH] {
        let command = format!("{bin} -H {host} run -it --rm busybox sh -c '{inner}'");
        let mut child = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("DOCKER_CONFIG", config_dir(&host))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("script (util-linux) missing");
        child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        assert_eq!(out.status.code(), Some(3), "{bin}: {text}");
        assert!(text.contains("/dev/pts/"), "{bin}: no pty: {text}");
        assert!(text.lines().any(|l| l == "got hello"), "{bin}: {text}");
    }
}
