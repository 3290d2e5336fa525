//! `docker cp` (both directions, the archive API with its path-stat header), `docker export`
//! and `docker diff`, with both real docker CLIs against `berth daemon`; a symlink in the
//! container never leads a copy to the host's files.
mod common;

use std::io::Write;
use std::process::Output;

use common::*;

const CLIS: [&str; 2] = ["/usr/bin/docker", "/usr/local/bin/docker"];

/// `bin` with `args`: a docker CLI, or berth's own (`berth`).
fn run_with(bin: &str, host: &str, args: &[&str]) -> Output {
    match bin {
        "berth" => berth(host, args),
        _ => cli(bin, host, args),
    }
}

/// One raw request with a body over the daemon's socket: the status line and the body.
fn put_tar(socket: &std::path::Path, path: &str, tar: &[u8]) -> String {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        tar.len()
    )
    .unwrap();
    s.write_all(tar).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A tar whose first entry is a symlink to a host directory and whose second writes
/// through it.
fn escaping_tar(host_dir: &std::path::Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_mode(0o777);
    link.set_size(0);
    b.append_link(&mut link, "evil", host_dir).unwrap();
    let mut file = tar::Header::new_gnu();
    file.set_size(6);
    file.set_mode(0o644);
    b.append_data(&mut file, "evil/pwned", &b"pwned\n"[..])
        .unwrap();
    b.into_inner().unwrap()
}

/// `HEAD` of `path`: the status and the path-stat header (or the status line's rest).
fn head(socket: &std::path::Path, path: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let stat = out
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("x-docker-container-path-stat:")
                .then(|| l.split_once(':').unwrap().1.trim().to_string())
        })
        .unwrap_or(out);
    (code, stat)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

/// Removes the test's containers even when an assertion fails.
struct Containers<'a> {
    host: &'a str,
    names: Vec<String>,
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = cli(CLIS[0], self.host, &["rm", "-f", name]);
        }
    }
}

#[test]
fn cp_export_and_diff_with_the_docker_clis() {
    let dir = tempfile::tempdir().unwrap();
    seed(
        &dir.path().join("data"),
        "busybox",
        &busybox_image("one", 1),
    );
    let d = start(dir.path());
    let host = d.host.clone();
    let socket = dir.path().join("berth.sock");
    // What the container's symlinks point at on the host: nothing may land or be read there.
    let host_side = dir.path().join("host-side");
    std::fs::create_dir(&host_side).unwrap();
    std::fs::write(host_side.join("secret"), "host secret\n").unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("hello.txt"), "hello from the host\n").unwrap();
    let mut made = Containers {
        host: &host,
        names: Vec::new(),
    };
    for (i, bin) in CLIS.iter().chain(&["berth"]).enumerate() {
        let name = format!("fs{i}");
        made.names.push(name.clone());
        let run = |args: &[&str]| run_with(bin, &host, args);
        let script = format!(
            "busybox mkdir /data; echo inside > /data/f; busybox ln -s / /data/up; \
             busybox ln -s {hs} /data/hostdir; busybox ln -s {hs}/secret /data/secret; \
             busybox rm /etc/marker; echo ready > /data/ready; exec busybox sleep 1000",
            hs = host_side.display()
        );
        ok(run(&[
            "run", "-d", "--name", &name, "busybox", "sh", "-c", &script,
        ]));
        let mut ready = false;
        for _ in 0..100 {
            let out = run(&["cp", &format!("{name}:/data/ready"), "-"]);
            if out.status.success() {
                ready = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(ready, "{bin}: the container never wrote /data/ready");

        // Into the container: a directory target, a new name, and through its symlinks.
        let hello = work.join("hello.txt");
        ok(run(&[
            "cp",
            hello.to_str().unwrap(),
            &format!("{name}:/data/"),
        ]));
        ok(run(&[
            "cp",
            hello.to_str().unwrap(),
            &format!("{name}:/data/renamed.txt"),
        ]));
        let out = run(&[
            "cp",
            hello.to_str().unwrap(),
            &format!("{name}:/data/hostdir/"),
        ]);
        assert!(
            !host_side.join("hello.txt").exists(),
            "{bin}: cp wrote through a symlink to the host ({out:?})"
        );
        ok(run(&[
            "cp",
            hello.to_str().unwrap(),
            &format!("{name}:/data/up/etc/"),
        ]));
        assert!(
            !std::path::Path::new("/etc/hello.txt").exists(),
            "{bin}: cp reached the host's /etc"
        );
        let inside = ok(run(&["exec", &name, "sh", "-c", "read l < /data/hello.txt; echo $l; read l < /data/renamed.txt; echo $l; read l < /etc/hello.txt; echo $l"]));
        assert_eq!(inside, "hello from the host\n".repeat(3), "{bin}");
        // A crafted upload: a symlink to the host, then a file through it.
        let answer = put_tar(
            &socket,
            &format!("/v1.41/containers/{name}/archive?path=/data"),
            &escaping_tar(&host_side),
        );
        // Resolved inside the container, the link leads to no directory: refused, as a
        // chrooted dockerd refuses it.
        assert!(answer.starts_with("HTTP/1.1 400"), "{bin}: {answer}");
        assert!(answer.contains("evil/pwned"), "{bin}: {answer}");
        assert!(
            !host_side.join("pwned").exists(),
            "{bin}: the upload escaped to the host"
        );

        // Out of the container: a file, a directory, and not the host's file behind a link.
        let out_dir = work.join(format!("out{i}"));
        std::fs::create_dir(&out_dir).unwrap();
        ok(run(&[
            "cp",
            &format!("{name}:/data/f"),
            out_dir.to_str().unwrap(),
        ]));
        assert_eq!(
            std::fs::read_to_string(out_dir.join("f")).unwrap(),
            "inside\n"
        );
        ok(run(&[
            "cp",
            &format!("{name}:/data"),
            out_dir.join("copy").to_str().unwrap(),
        ]));
        assert_eq!(
            std::fs::read_to_string(out_dir.join("copy/hello.txt")).unwrap(),
            "hello from the host\n"
        );
        let link = std::fs::read_link(out_dir.join("copy/up")).unwrap();
        assert_eq!(
            link,
            std::path::Path::new("/"),
            "{bin}: a symlink came out as something else"
        );
        let out = run(&["cp", &format!("{name}:/data/hostdir/secret"), "-"]);
        assert!(
            !stdout(&out).contains("host secret"),
            "{bin}: read the host's file"
        );
        // 20.10 words the daemon's 404 itself, 28.x shows the daemon's message.
        let err = stderr(&out);
        assert!(
            err.contains("No such container:path")
                || err.contains("Could not find the file /data/hostdir/secret"),
            "{bin}: {out:?}"
        );
        let out = run(&["cp", "-L", &format!("{name}:/data/secret"), "-"]);
        assert!(
            !stdout(&out).contains("host secret"),
            "{bin}: read the host's file via -L"
        );
        let out = run(&["cp", &format!("{name}:/nonexistent"), "-"]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains(&format!("No such container:path: {name}:/nonexistent"))
                || err.contains(&format!(
                    "Could not find the file /nonexistent in container {name}"
                )),
            "{bin}: {out:?}"
        );
        let (code, body) = head(
            &socket,
            &format!("/v1.41/containers/{name}/archive?path=/nonexistent"),
        );
        assert_eq!(code, 404, "{body}");
        let (code, stat) = head(
            &socket,
            &format!("/v1.41/containers/{name}/archive?path=/data/up"),
        );
        assert_eq!(code, 200);
        let stat: serde_json::Value = serde_json::from_slice(&base64_decode(&stat)).unwrap();
        assert_eq!(stat["name"], "up");
        assert_eq!(stat["mode"], (1u64 << 27) | 0o777);
        assert_eq!(stat["linkTarget"], "/");

        // diff: what the container did to its image's tree.
        let diff = ok(run(&["diff", &name]));
        for line in [
            "A /data",
            "A /data/f",
            "A /data/hello.txt",
            "D /etc/marker",
            "C /etc",
            "A /etc/hello.txt",
        ] {
            assert!(
                diff.lines().any(|l| l == line),
                "{bin}: {line} missing from\n{diff}"
            );
        }
        for hidden in [
            "/proc",
            "/sys",
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
        ] {
            assert!(
                !diff.lines().any(|l| l[2..] == *hidden),
                "{bin}: {hidden} in\n{diff}"
            );
        }

        // commit: the container's changes as an image a new container runs.
        let image = format!("snap{i}:v1");
        let id = ok(run(&["commit", "-m", "snapshot", &name, &image]));
        assert!(id.trim().starts_with("sha256:"), "{bin}: {id}");
        let out = ok(run(&[
            "run",
            "--rm",
            &image,
            "sh",
            "-c",
            "read l < /data/f; echo $l",
        ]));
        assert_eq!(out, "inside\n", "{bin}");
        let comment = ok(run(&["image", "inspect", "-f", "{{.Comment}}", &image]));
        assert_eq!(comment, "snapshot\n", "{bin}");

        // Stopped: cp and export still work (the snapshot is mounted for the moment).
        ok(run(&["stop", "-t", "1", &name]));
        let exported = work.join(format!("export{i}.tar"));
        ok(run(&["export", "-o", exported.to_str().unwrap(), &name]));
        let names = tar_names(&std::fs::read(&exported).unwrap());
        for wanted in [
            "bin/busybox",
            "bin/sh",
            "data/f",
            "data/up",
            "etc/hello.txt",
        ] {
            assert!(
                names.iter().any(|n| n.trim_end_matches('/') == wanted),
                "{bin}: {wanted} not in {names:?}"
            );
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("secret") && n != "data/secret"),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n == "etc/marker"),
            "{bin}: a deleted file was exported"
        );
        let out = run(&["cp", &format!("{name}:/data/f"), "-"]);
        assert!(
            out.status.success(),
            "{bin}: cp from a stopped container: {out:?}"
        );
        ok(run(&["rm", &name]));
    }
    drop(made);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(dir.path().to_str().unwrap()),
        "a rootfs view stayed mounted"
    );
}
