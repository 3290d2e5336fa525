//! `system df`, `system prune`, `builder prune` and `network prune` on `berth daemon`, with
//! the real docker CLIs (20.10 and 28) and berth's own: the figures of `/system/df` against
//! `du`, the tables of berth's CLI against docker's for the same daemon, and what each prune
//! removes and keeps.
mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

const CLIS: [&str; 3] = ["/usr/bin/docker", "/usr/local/bin/docker", BERTH];

fn run(bin: &str, host: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("DOCKER_HOST", host)
        .env("BERTH_HOST", host)
        .env("DOCKER_CONFIG", config_dir(host))
        .env("BERTH_CONFIG", config_dir(host))
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{bin} missing: {e}"))
}

/// What the tests ask of an engine: its CLIs and its API.
trait Calls {
    fn cli(&self, bin: &str, args: &[&str]) -> Output;
    fn get(&self, path: &str) -> serde_json::Value;
}

impl Calls for Engine {
    fn cli(&self, bin: &str, args: &[&str]) -> Output {
        run(bin, &self.host, args)
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let socket = self.host.trim_start_matches("unix://");
        let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{answer}"
        );
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }
}

/// `du`'s byte count of the regular files and symlinks under `dir` (hard links once),
/// which is what docker's `directory.Size` counts (directories are not).
fn du_files(dir: &Path) -> u64 {
    du_of(dir, &["(", "-type", "f", "-o", "-type", "l", ")"])
}

/// `du`'s byte count of the regular files only: a layer's size as docker's layer store
/// counts it (the file bytes of its tar; a symlink's entry has none).
fn du_regular(dir: &Path) -> u64 {
    du_of(dir, &["-type", "f"])
}

fn du_of(dir: &Path, kinds: &[&str]) -> u64 {
    let listing = Command::new("find")
        .arg(dir)
        .args(kinds)
        .args(["-size", "+0", "-print0"])
        .output()
        .expect("find");
    assert!(listing.status.success(), "{listing:?}");
    if listing.stdout.is_empty() {
        return 0;
    }
    let mut du = Command::new("du")
        .args(["-cb", "--files0-from=-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("du");
    du.stdin.take().unwrap().write_all(&listing.stdout).unwrap();
    let out = du.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let total = text.lines().last().unwrap();
    assert!(total.ends_with("\ttotal"), "{text}");
    total.split('\t').next().unwrap().parse().unwrap()
}

/// The snapshot directories (`snapshots/N/fs`) that hold `file`.
fn snapshot_dirs_with(data_root: &Path, file: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(data_root.join("snapshots"))
        .unwrap()
        .flatten()
    {
        let fs = entry.path().join("fs");
        if fs.join(file).symlink_metadata().is_ok() {
            out.push(fs);
        }
    }
    out
}

/// Table lines as cells (docker pads with 3+ spaces), with `N seconds ago`-like cells of
/// a moving clock masked, so that two runs a moment apart compare equal.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| {
                    if c.contains("second") || c.contains("minute") {
                        "recently".to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect()
}

fn build_context(dir: &Path) -> PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY blob /blob\nLABEL step=two\n",
    )
    .unwrap();
    std::fs::write(ctx.join("blob"), vec![7u8; 20_000]).unwrap();
    ctx
}

#[test]
fn system_df_figures_match_du_and_the_docker_clis() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start_in(dir.path(), "hk");
    let data = e.data_root.clone();
    ok(e.cli(BERTH, &["volume", "create", "v1"]));
    let v1 = data.join("volumes/v1/_data");
    std::fs::write(v1.join("a"), vec![1u8; 3000]).unwrap();
    std::fs::create_dir(v1.join("sub")).unwrap();
    std::fs::write(v1.join("sub/b"), vec![2u8; 500]).unwrap();
    std::fs::hard_link(v1.join("a"), v1.join("a-link")).unwrap();
    ok(e.cli(BERTH, &["volume", "create", "idle"]));
    std::fs::write(data.join("volumes/idle/_data/c"), vec![3u8; 1234]).unwrap();
    ok(e.cli(
        CLIS[0],
        &[
            "run", "-d", "--name", "busy", "-v", "v1:/data", "busybox", "busybox", "sleep", "600",
        ],
    ));
    ok(e.cli(
        CLIS[0],
        &[
            "run",
            "--name",
            "writer",
            "busybox",
            "busybox",
            "dd",
            "if=/dev/zero",
            "of=/big",
            "bs=1000",
            "count=100",
        ],
    ));
    let ctx = build_context(dir.path());
    ok(e.cli(
        CLIS[0],
        &["build", "-q", "-t", "app", ctx.to_str().unwrap()],
    ));
    ok(e.cli(CLIS[0], &["rmi", "app"]));

    let du = e.get("/system/df");
    // Volumes: file bytes as du counts them, hard links once; users.
    let vols = du["Volumes"].as_array().unwrap();
    let vol = |n: &str| vols.iter().find(|v| v["Name"] == n).unwrap().clone();
    assert_eq!(vol("v1")["UsageData"]["Size"], du_files(&v1), "{du}");
    assert_eq!(vol("v1")["UsageData"]["Size"], 3500);
    assert_eq!(vol("v1")["UsageData"]["RefCount"], 1);
    assert_eq!(vol("idle")["UsageData"]["Size"], 1234);
    assert_eq!(vol("idle")["UsageData"]["RefCount"], 0);
    // The image's layers: du of the busybox layer directory.
    let layers = snapshot_dirs_with(&data, "bin/busybox");
    let layers: Vec<&PathBuf> = layers
        .iter()
        .filter(|d| !d.join("big").exists() && !d.join("blob").exists())
        .collect();
    assert_eq!(layers.len(), 1, "{layers:?}");
    assert_eq!(du["LayersSize"], du_regular(layers[0]), "{du}");
    let images = du["Images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{du}");
    assert_eq!(images[0]["Size"], du["LayersSize"]);
    assert_eq!(images[0]["Containers"], 2);
    // The writer's writable layer: du of its upper directory.
    let uppers = snapshot_dirs_with(&data, "big");
    assert_eq!(uppers.len(), 1, "{uppers:?}");
    let containers = du["Containers"].as_array().unwrap();
    let writer = containers
        .iter()
        .find(|c| c["Names"][0] == "/writer")
        .unwrap();
    assert_eq!(writer["SizeRw"], du_files(&uppers[0]), "{du}");
    assert!(writer["SizeRw"].as_u64().unwrap() >= 100_000, "{writer}");
    // The build cache: the COPY step's layer (no named image holds it any more).
    let cache = du["BuildCache"].as_array().unwrap();
    let blob_dirs = snapshot_dirs_with(&data, "blob");
    assert_eq!(blob_dirs.len(), 1, "{blob_dirs:?}");
    let unshared: u64 = cache
        .iter()
        .filter(|c| c["Shared"] == false)
        .map(|c| c["Size"].as_u64().unwrap())
        .sum();
    assert_eq!(unshared, du_files(&blob_dirs[0]), "{du}");
    assert_eq!(unshared, 20_000);
    assert_eq!(du["BuilderSize"], 20_000);

    // The tables: berth's CLI prints what both docker CLIs print for the same daemon.
    let summary = ok(e.cli(BERTH, &["system", "df"]));
    assert!(summary.starts_with("TYPE      "), "{summary}");
    assert!(summary.contains("Local Volumes   2         1"), "{summary}");
    for bin in &CLIS[..2] {
        assert_eq!(ok(e.cli(bin, &["system", "df"])), summary, "{bin}");
    }
    // `-v` as the newer CLI prints it (20.10 shows an image's SIZE with 4 digits, not 3).
    for bin in &CLIS[1..2] {
        let theirs = ok(e.cli(bin, &["system", "df", "-v"]));
        let ours = ok(e.cli(BERTH, &["system", "df", "-v"]));
        assert_eq!(
            cells(&ours),
            cells(&theirs),
            "{bin}:\n{theirs}\nberth:\n{ours}"
        );
    }
}

/// The bytes of the `Total reclaimed space: 43.5kB` line.
fn reclaimed(out: &str) -> f64 {
    let line = out.lines().last().unwrap();
    let size = line.strip_prefix("Total reclaimed space: ").unwrap();
    let digits = size.find(|c: char| c.is_ascii_alphabetic()).unwrap();
    let scale = match &size[digits..] {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        other => panic!("unit {other}"),
    };
    size[..digits].parse::<f64>().unwrap() * scale
}

fn ids(text: &str) -> BTreeSet<String> {
    text.split_whitespace().map(str::to_string).collect()
}

#[test]
fn system_prune_removes_what_docker_would_and_keeps_what_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start_in(dir.path(), "hk");
    let ctx = build_context(dir.path());
    let ctx = ctx.to_str().unwrap();
    ok(e.cli(
        CLIS[0],
        &[
            "run",
            "-d",
            "--name",
            "keep",
            "-v",
            "kept:/data",
            "busybox",
            "busybox",
            "sleep",
            "600",
        ],
    ));
    for (i, bin) in CLIS.iter().enumerate() {
        let c = |args: &[&str]| e.cli(bin, args);
        let n = |base: &str| format!("{base}{i}");
        // A stopped container, a labelled one, an unused network and volume, build cache.
        let stopped = ok(c(&["create", "--name", &n("stopped"), "busybox", "true"]));
        let tmp = ok(c(&["create", "--label", "tier=tmp", "busybox", "true"]));
        ok(c(&["network", "create", &n("net")]));
        ok(c(&["volume", "create", &n("vol")]));
        ok(e.cli(CLIS[0], &["build", "-q", "-t", &n("app"), ctx]));
        ok(e.cli(CLIS[0], &["rmi", &n("app")]));

        // A filter narrows every kind: only the labelled container goes.
        let out = ok(c(&["system", "prune", "-f", "--filter", "label=tier=tmp"]));
        assert_eq!(
            out,
            format!(
                "Deleted Containers:\n{}\n\nTotal reclaimed space: 0B\n",
                tmp.trim()
            ),
            "{bin}"
        );
        // `until` in the past keeps what was just made.
        let out = ok(c(&["system", "prune", "-f", "--filter", "until=1h"]));
        assert_eq!(out, "Total reclaimed space: 0B\n", "{bin}");

        let out = ok(c(&["system", "prune", "-f"]));
        assert!(
            out.starts_with(&format!(
                "Deleted Containers:\n{}\n\nDeleted Networks:\n{}\n\nDeleted build cache objects:\n",
                stopped.trim(),
                n("net")
            )),
            "{bin}: {out}"
        );
        // The COPY layer only the cache held (20 kB unpacked, and its blob).
        assert!(reclaimed(&out) > 40_000.0, "{bin}: {out}");
        assert_eq!(ok(c(&["ps", "-aq"])).lines().count(), 1, "{bin}");
        assert!(
            ok(c(&["volume", "ls", "-q"])).contains(&n("vol")),
            "{bin}: volume went"
        );

        // -a --volumes: unused volumes too (API 1.41: named ones as well), never used ones.
        let out = ok(c(&["system", "prune", "-a", "-f", "--volumes"]));
        assert!(
            out.contains(&format!("Deleted Volumes:\n{}\n", n("vol"))),
            "{bin}: {out}"
        );
        assert!(
            !out.contains("Deleted Images"),
            "{bin}: the running container's image went: {out}"
        );
        assert_eq!(ids(&ok(c(&["volume", "ls", "-q"]))), ids("kept"), "{bin}");
        assert_eq!(ok(c(&["images", "-q"])).lines().count(), 1, "{bin}");
        let state = ok(c(&["inspect", "-f", "{{.State.Running}}", "keep"]));
        assert_eq!(state, "true\n", "{bin}");
        let e2 = c(&["system", "prune", "-f", "--volumes", "--filter", "until=1h"]);
        assert!(!e2.status.success(), "{bin}: {e2:?}");
        assert!(
            stderr(&e2).contains("\"until\" filter is not supported with \"--volumes\""),
            "{bin}: {e2:?}"
        );
    }
}

#[test]
fn builder_and_network_prune_print_dockers_lines() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::start_in(dir.path(), "hk");
    let ctx = build_context(dir.path());
    let ctx = ctx.to_str().unwrap();
    for (i, bin) in CLIS.iter().enumerate() {
        let c = |args: &[&str]| e.cli(bin, args);
        let tag = format!("app{i}");
        ok(e.cli(CLIS[0], &["build", "-q", "-t", &tag, ctx]));
        // The tagged image holds the layers: the cache entries go, only the bytes of
        // their own configs and manifests come back.
        let out = ok(c(&["builder", "prune", "-f"]));
        assert!(
            out.starts_with("Deleted build cache objects:\n"),
            "{bin}: {out}"
        );
        assert!(out.contains("\n\nTotal reclaimed space: "), "{bin}: {out}");
        assert!(reclaimed(&out) < 20_000.0, "{bin}: {out}");
        assert_eq!(e.get("/system/df")["BuildCache"], serde_json::json!([]));
        assert_eq!(
            ok(c(&["builder", "prune", "-f"])),
            "Total reclaimed space: 0B\n",
            "{bin}"
        );
        // The image gone, rebuilt and untagged: the cache alone holds the COPY layer.
        ok(e.cli(CLIS[0], &["rmi", &tag]));
        ok(e.cli(CLIS[0], &["build", "-q", "-t", &tag, ctx]));
        ok(e.cli(CLIS[0], &["rmi", &tag]));
        let out = ok(c(&["builder", "prune", "-f", "--filter", "until=1h"]));
        assert_eq!(
            out, "Total reclaimed space: 0B\n",
            "{bin}: until keeps new entries"
        );
        let before = e.get("/system/df");
        let out = ok(c(&["builder", "prune", "-a", "-f"]));
        assert!(
            out.contains("\n\nTotal reclaimed space: "),
            "{bin}: {out} {before}"
        );
        assert!(reclaimed(&out) > 40_000.0, "{bin}: {out}");
        let bad = c(&["builder", "prune", "-f", "--filter", "until=soon"]);
        assert!(!bad.status.success(), "{bin}: {bad:?}");
        assert!(
            stderr(&bad).contains("failed to parse value as time or duration: \\\"soon\\\"")
                || stderr(&bad).contains("failed to parse value as time or duration: \"soon\""),
            "{bin}: {bad:?}"
        );

        let net = format!("n{i}");
        ok(c(&["network", "create", "--label", "k=v", &net]));
        let out = ok(c(&["network", "prune", "-f", "--filter", "label=other"]));
        assert_eq!(out, "", "{bin}");
        let out = ok(c(&["network", "prune", "-f"]));
        assert_eq!(out, format!("Deleted Networks:\n{net}\n\n"), "{bin}");
    }
}
