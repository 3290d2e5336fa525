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

/// A raw `POST` on the daemon's socket: the whole answer (head and body).
fn post_json(host: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s =
        std::os::unix::net::UnixStream::connect(host.trim_start_matches("unix://")).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
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
            "Error response from daemon: create x3: invalid option: \"bogus\"\n"
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

/// busybox plus `/srv/app/f` (1000:1000, 0640, xattr-free), `/srv/app/sub/`, a symlink
/// `/srv/esc` to the host directory `escape_to`, and `VOLUME /srv/app`.
fn volume_image(escape_to: &std::path::Path) -> TestImage {
    let base = busybox_image("vol", 1);
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    for d in ["srv/", "srv/app/", "srv/app/sub/"] {
        b.append_data(&mut dir.clone(), d, std::io::empty())
            .unwrap();
    }
    let mut file = tar::Header::new_gnu();
    file.set_entry_type(tar::EntryType::Regular);
    file.set_mode(0o640);
    file.set_uid(1000);
    file.set_gid(1000);
    file.set_size(6);
    b.append_data(&mut file, "srv/app/f", &b"image\n"[..])
        .unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_mode(0o777);
    link.set_size(0);
    b.append_link(&mut link, "srv/esc", escape_to).unwrap();
    layered_image(
        &base,
        b.into_inner().unwrap(),
        serde_json::json!({ "Cmd": ["sh"], "Env": ["PATH=/bin"], "Volumes": {"/srv/app": {}} }),
    )
}

fn inspect_json(bin: &str, host: &str, what: &str) -> serde_json::Value {
    let out = ok(run(bin, host, &["inspect", what]));
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

fn volume_names(mounts: &serde_json::Value) -> Vec<(String, String)> {
    mounts
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Type"] == "volume")
        .map(|m| {
            (
                m["Destination"].as_str().unwrap().to_string(),
                m["Name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn containers_use_volumes_as_docker_does() {
    let dir = tempfile::tempdir().unwrap();
    let escape = dir.path().join("host-side");
    std::fs::create_dir(&escape).unwrap();
    std::fs::write(escape.join("secret"), b"host").unwrap();
    let data = dir.path().join("data");
    seed(&data, "busybox", &busybox_image("vol", 1));
    seed(&data, "volimg", &volume_image(&escape));
    let d = start(dir.path());
    let host = d.host.clone();
    let volumes = d.data_root.join("volumes");
    for (i, bin) in [CLIS[0], CLIS[1], BERTH].iter().enumerate() {
        let v = |args: &[&str]| run(bin, &host, args);
        let name = |base: &str| format!("{base}{i}");
        // Persistence across containers; a named volume is created on first use.
        let vol = name("data");
        let spec = format!("{vol}:/data");
        ok(v(&[
            "run",
            "--rm",
            "-v",
            &spec,
            "busybox",
            "sh",
            "-c",
            "echo hi > /data/f",
        ]));
        assert_eq!(
            std::fs::read(volumes.join(&vol).join("_data/f")).unwrap(),
            b"hi\n"
        );
        let ro = format!("{vol}:/data:ro");
        assert_eq!(
            ok(v(&[
                "run", "--rm", "-v", &ro, "busybox", "busybox", "cat", "/data/f"
            ])),
            "hi\n"
        );
        let out = v(&[
            "run",
            "--rm",
            "-v",
            &ro,
            "busybox",
            "sh",
            "-c",
            "echo x > /data/g",
        ]);
        assert_ne!(out.status.code(), Some(0), "{bin}: ro volume written");
        assert!(stderr(&out).contains("Read-only file system"), "{out:?}");

        // Copy-up into an empty volume (owner and mode kept); not into one with content,
        // nor with nocopy.
        let cu = name("cu");
        let spec = format!("{cu}:/srv/app");
        let out = ok(v(&[
            "run",
            "--rm",
            "-v",
            &spec,
            "volimg",
            "busybox",
            "stat",
            "-c",
            "%u:%g %a %s",
            "/srv/app/f",
        ]));
        assert_eq!(out, "1000:1000 640 6\n", "{bin}");
        let host_f = volumes.join(&cu).join("_data/f");
        assert_eq!(std::fs::read(&host_f).unwrap(), b"image\n");
        std::fs::remove_file(&host_f).unwrap();
        std::fs::write(volumes.join(&cu).join("_data/mine"), b"1").unwrap();
        assert_eq!(
            ok(v(&[
                "run", "--rm", "-v", &spec, "volimg", "busybox", "ls", "/srv/app"
            ])),
            "mine\nsub\n"
        );
        let nc = format!("{}:/srv/app:nocopy", name("nc"));
        assert_eq!(
            ok(v(&[
                "run", "--rm", "-v", &nc, "volimg", "busybox", "ls", "-A", "/srv/app"
            ])),
            ""
        );

        // Anonymous volumes: `-v /anon` and the image's VOLUME; `rm -v` removes them.
        let c = name("anon");
        ok(v(&[
            "create", "--name", &c, "-v", "/anon", "volimg", "busybox", "ls", "/srv/app",
        ]));
        let points = volume_names(&inspect_json(bin, &host, &c)["Mounts"]);
        assert_eq!(points.len(), 2, "{points:?}");
        for (_, n) in &points {
            assert_eq!(n.len(), 64, "{points:?}");
            assert!(volumes.join(n).join("_data").is_dir());
        }
        assert_eq!(
            ok(v(&["start", "-a", &c])),
            "f\nsub\n",
            "{bin}: image VOLUME copied up"
        );
        let anon_label = ok(v(&[
            "volume",
            "ls",
            "-q",
            "-f",
            "label=com.docker.volume.anonymous",
        ]));
        assert!(anon_label.contains(&points[0].1), "{anon_label}");
        // In use: refused with docker's words, nothing removed.
        let id = inspect_json(bin, &host, &c)["Id"]
            .as_str()
            .unwrap()
            .to_string();
        let out = v(&["volume", "rm", &points[0].1]);
        assert_eq!(
            failed(&out),
            format!(
                "Error response from daemon: remove {}: volume is in use - [{id}]\n",
                points[0].1
            )
        );
        // prune keeps what is in use.
        let pruned = ok(v(&["volume", "prune", "-f"]));
        assert!(!pruned.contains(&points[0].1), "{pruned}");
        assert!(
            volumes.join(&points[0].1).is_dir(),
            "{bin}: prune removed a used volume"
        );
        ok(v(&["rm", "-v", &c]));
        for (_, n) in &points {
            assert!(!volumes.join(n).exists(), "{bin}: rm -v left {n}");
        }

        // --volumes-from, rw and ro.
        let src = name("src");
        let vf = format!("{}:/shared", name("vf"));
        ok(v(&[
            "create", "--name", &src, "-v", &vf, "busybox", "busybox", "true",
        ]));
        ok(v(&[
            "run",
            "--rm",
            "--volumes-from",
            &src,
            "busybox",
            "sh",
            "-c",
            "echo y > /shared/y",
        ]));
        assert!(volumes.join(name("vf")).join("_data/y").is_file());
        let from_ro = format!("{src}:ro");
        let out = v(&[
            "run",
            "--rm",
            "--volumes-from",
            &from_ro,
            "busybox",
            "sh",
            "-c",
            "echo z > /shared/z",
        ]);
        assert!(stderr(&out).contains("Read-only file system"), "{out:?}");
        ok(v(&["rm", &src]));

        // --mount: readonly volume, volume-nocopy, tmpfs size and mode.
        let m = format!("type=volume,src={},dst=/m,readonly", name("mv"));
        let out = v(&[
            "run", "--rm", "--mount", &m, "busybox", "busybox", "touch", "/m/x",
        ]);
        assert!(stderr(&out).contains("Read-only file system"), "{out:?}");
        let m = "type=volume,dst=/srv/app,volume-nocopy";
        assert_eq!(
            ok(v(&[
                "run", "--rm", "--mount", m, "volimg", "busybox", "ls", "-A", "/srv/app"
            ])),
            ""
        );
        let m = "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770";
        let mounts = ok(v(&[
            "run",
            "--rm",
            "--mount",
            m,
            "busybox",
            "busybox",
            "grep",
            " /t ",
            "/proc/mounts",
        ]));
        assert!(
            mounts.contains("tmpfs")
                && mounts.contains("size=1024k")
                && mounts.contains("mode=1770"),
            "{mounts}"
        );

        // A tmpfs volume of the local driver, mounted while used.
        let tv = name("tv");
        ok(v(&[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=size=2m",
            &tv,
        ]));
        let spec = format!("{tv}:/tv");
        let mounts = ok(v(&[
            "run",
            "--rm",
            "-v",
            &spec,
            "busybox",
            "busybox",
            "grep",
            " /tv ",
            "/proc/mounts",
        ]));
        assert!(
            mounts.starts_with("tmpfs /tv tmpfs") && mounts.contains("size=2048k"),
            "{mounts}"
        );
        let host_mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(
            !host_mounts.contains(&tv),
            "{bin}: the tmpfs volume stayed mounted"
        );

        // Bind mounts: -v makes a missing source, --mount refuses it.
        let made = dir.path().join(name("made"));
        let spec = format!("{}:/b", made.display());
        ok(v(&[
            "run", "--rm", "-v", &spec, "busybox", "busybox", "true",
        ]));
        assert!(made.is_dir());
        let missing = dir.path().join(name("missing"));
        let m = format!("type=bind,src={},dst=/b", missing.display());
        let out = v(&["run", "--rm", "--mount", &m, "busybox", "busybox", "true"]);
        assert_eq!(out.status.code(), Some(125), "{out:?}");
        assert!(
            stderr(&out).contains("bind source path does not exist"),
            "{out:?}"
        );
        assert!(!missing.exists());

        // No symlink of the image leads a mount or a copy-up to the host.
        let spec = format!("{}:/srv/esc/inner", name("esc"));
        ok(v(&[
            "run", "--rm", "-v", &spec, "volimg", "busybox", "true",
        ]));
        assert!(
            !escape.join("inner").exists(),
            "{bin}: a mount followed the image's symlink out"
        );
        let spec = format!("{}:/srv/esc", name("esc2"));
        ok(v(&[
            "run", "--rm", "-v", &spec, "volimg", "busybox", "true",
        ]));
        assert!(
            !volumes.join(name("esc2")).join("_data/secret").exists(),
            "copied from the host"
        );

        // Bad input: docker's words, exit 125, nothing made.
        let out = v(&[
            "run",
            "--rm",
            "-v",
            "bad/name:/x",
            "busybox",
            "busybox",
            "true",
        ]);
        assert_eq!(out.status.code(), Some(125), "{out:?}");
        assert!(
            stderr(&out)
                .contains("\"bad/name\" includes invalid characters for a local volume name"),
            "{out:?}"
        );
        // (The CLIs take a 404 from create for a missing image and try to pull: asked directly.)
        let body = r#"{"Image":"busybox","HostConfig":{"VolumesFrom":["ghost"]}}"#;
        let answer = post_json(&host, "/v1.41/containers/create", body);
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        assert!(
            answer.ends_with("{\"message\":\"No such container: ghost\"}"),
            "{answer}"
        );
        let before = std::fs::read_dir(&volumes).unwrap().count();
        let spec = format!("{}:/data", name("never"));
        let out = v(&[
            "run",
            "--rm",
            "-v",
            &spec,
            "-v",
            "bad/name:/y",
            "busybox",
            "busybox",
            "true",
        ]);
        assert_eq!(out.status.code(), Some(125), "{out:?}");
        assert_eq!(
            std::fs::read_dir(&volumes).unwrap().count(),
            before,
            "{bin}: half-made volumes"
        );
    }
}

/// busybox plus `/srv/x/f` carrying the xattr `user.berth=one` (a PAX record, as docker
/// writes it), no VOLUME.
fn xattr_image() -> TestImage {
    let base = busybox_image("vol", 1);
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    for d in ["srv/", "srv/x/"] {
        b.append_data(&mut dir.clone(), d, std::io::empty())
            .unwrap();
    }
    b.append_pax_extensions([("SCHILY.xattr.user.berth", &b"one"[..])])
        .unwrap();
    let mut file = tar::Header::new_ustar();
    file.set_entry_type(tar::EntryType::Regular);
    file.set_mode(0o600);
    file.set_size(3);
    b.append_data(&mut file, "srv/x/f", &b"xa\n"[..]).unwrap();
    layered_image(
        &base,
        b.into_inner().unwrap(),
        serde_json::json!({ "Cmd": ["sh"], "Env": ["PATH=/bin"] }),
    )
}

/// `user.*` xattrs of `path` (not followed).
fn user_xattrs(path: &std::path::Path) -> Vec<(String, String)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 1 << 16];
    // SAFETY: valid NUL-terminated path and a buffer of the given length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(
        n >= 0,
        "{}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    let mut out = Vec::new();
    for name in names[..n as usize].split(|b| *b == 0) {
        if !name.starts_with(b"user.") {
            continue;
        }
        let key = std::ffi::CString::new(name).unwrap();
        let mut value = vec![0u8; 1 << 16];
        // SAFETY: as above.
        let m = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                key.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(m >= 0);
        out.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(&value[..m as usize]).into_owned(),
        ));
    }
    out
}

#[test]
fn volume_edges_as_docker_has_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed(&data, "busybox", &busybox_image("vol", 1));
    seed(&data, "ximg", &xattr_image());
    let d = start(dir.path());
    let host = d.host.clone();
    let volumes = d.data_root.join("volumes");
    for (i, bin) in CLIS.iter().enumerate() {
        let v = |args: &[&str]| run(bin, &host, args);
        let name = |base: &str| format!("{base}{i}");

        // Copy-up keeps the image's xattrs.
        let spec = format!("{}:/srv/x", name("xa"));
        ok(v(&["run", "--rm", "-v", &spec, "ximg", "busybox", "true"]));
        let copied = volumes.join(name("xa")).join("_data/f");
        assert_eq!(std::fs::read(&copied).unwrap(), b"xa\n");
        assert_eq!(
            user_xattrs(&copied),
            [("user.berth".to_string(), "one".to_string())],
            "{bin}"
        );

        // rm -f of a volume in use is refused too, with the same words; nothing removed.
        let used = name("used");
        let c = name("holder");
        let spec = format!("{used}:/u");
        ok(v(&["create", "--name", &c, "-v", &spec, "busybox", "true"]));
        let id = inspect_json(bin, &host, &c)["Id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            failed(&v(&["volume", "rm", "-f", &used])),
            format!("Error response from daemon: remove {used}: volume is in use - [{id}]\n"),
            "{bin}"
        );
        assert!(volumes.join(&used).join("_data").is_dir());
        ok(v(&["rm", &c]));
        assert_eq!(ok(v(&["volume", "rm", "-f", &used])), format!("{used}\n"));

        // A bind-backed volume of the local driver (type=none, o=bind): the container's
        // writes land in the device directory, mounted only while used.
        let device = dir.path().join(name("device"));
        std::fs::create_dir(&device).unwrap();
        let bv = name("bv");
        let dev = format!("device={}", device.display());
        ok(v(&[
            "volume",
            "create",
            "-o",
            "type=none",
            "-o",
            &dev,
            "-o",
            "o=bind",
            &bv,
        ]));
        let spec = format!("{bv}:/bv");
        ok(v(&[
            "run",
            "--rm",
            "-v",
            &spec,
            "busybox",
            "sh",
            "-c",
            "echo in > /bv/w",
        ]));
        assert_eq!(std::fs::read(device.join("w")).unwrap(), b"in\n", "{bin}");
        assert!(
            !volumes.join(&bv).join("_data/w").exists(),
            "{bin}: the bind stayed mounted"
        );
        ok(v(&["volume", "rm", &bv]));
        assert!(
            device.join("w").is_file(),
            "{bin}: rm removed the device's data"
        );

        // ls --format, as docker's template sees a volume.
        let out = ok(v(&[
            "volume",
            "ls",
            "--filter",
            &format!("name={}", name("xa")),
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}}",
        ]));
        assert_eq!(out, format!("{} local local\n", name("xa")), "{bin}");
        ok(v(&["volume", "rm", &name("xa")]));
    }
}

/// 64 hex digits (a generated volume or container ID) replaced by `ID`.
fn without_ids(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        out.push_str(if run.len() == 64 { "ID" } else { &run });
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// Every bad `--mount` of a `create` and a `run`, by both docker CLIs against a private
/// dockerd and against berth: the same words and exit code (the CLI's own checks and the
/// daemon's, at create), and nothing made on berth. The daemon's checks also through the
/// API, for the fields no CLI flag reaches.
#[test]
fn bad_mounts_fail_as_on_dockerd() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let image = busybox_image("vol", 1);
    let engine = Engine::start_in(&dir.path().join("berth"), "vol");
    let dockerd = Dockerd::start(&dir.path().join("dockerd"));
    dockerd.docker_stdin(&["import", "-", "busybox"], &image.layer);
    let src = src.display().to_string();
    let specs = [
        // The daemon's checks.
        "type=foo,target=/m".to_string(),
        "type=foo,target=rel".into(),
        format!("type=bind,source={src}/missing,target=/m"),
        "type=bind,target=/m".into(),
        format!("type=bind,source={src},target=/m,bind-propagation=bogus"),
        "type=bind,source=rel,target=/m,bind-propagation=bogus".into(),
        format!("type=bind,source={src},target=rel"),
        "type=bind,source=rel,target=/m".into(),
        format!("type=bind,source={src},target=/m/.."),
        "type=volume,target=rel".into(),
        "type=volume,target=/".into(),
        "type=volume,target=/m,readonly".into(),
        "type=volume,source=bad/name,target=/m".into(),
        "type=volume,source=/abs,target=/m".into(),
        "type=volume,target=/m,volume-opt=novalue".into(),
        "type=tmpfs,target=rel".into(),
        "type=tmpfs,target=/".into(),
        "type=tmpfs,source=x,target=/m".into(),
        // The CLI's own.
        format!("type=bind,source={src}"),
        format!("type=bind,source={src},target=/m,volume-nocopy"),
        format!("type=bind,source={src},target=/m,readonly=maybe"),
        format!("type=bind,source={src},target=/m,foo=bar"),
        "type=volume,target=/m,bind-propagation=rshared".into(),
        "type=volume,source=v,target=/m,tmpfs-size=1m".into(),
        "type=tmpfs,target=/m,tmpfs-size=abc".into(),
        "type=tmpfs,target=/m,tmpfs-mode=999".into(),
        "type=tmpfs,target=/m,volume-nocopy".into(),
        String::new(),
    ];
    for bin in CLIS {
        for spec in &specs {
            for command in [&["create"][..], &["run", "--rm"]] {
                let mut args = command.to_vec();
                args.extend(["--mount", spec, "busybox", "true"]);
                let theirs = run(bin, &dockerd.host, &args);
                let ours = run(bin, &engine.host, &args);
                assert!(!theirs.status.success(), "{bin} {args:?}: dockerd took it");
                assert_eq!(
                    (ours.status.code(), without_ids(&stderr(&ours))),
                    (theirs.status.code(), without_ids(&stderr(&theirs))),
                    "{bin} {args:?}: berth (left) and dockerd (right)"
                );
                assert!(ours.stdout.is_empty(), "{bin} {args:?}: {ours:?}");
            }
        }
    }
    assert_eq!(
        ok(berth(&engine.host, &["ps", "-aq"])),
        "",
        "nothing created"
    );
    assert_eq!(ok(berth(&engine.host, &["volume", "ls", "-q"])), "");

    // The API: fields no --mount reaches, and a driver that is not there (docker's 404;
    // its CLI then tries to pull the image, so only the API shows the words).
    let bodies = [
        r#"[{"Type":"bind","Source":"/tmp"}]"#,
        r#"[{"Type":"bind","Source":"/tmp","Target":"/m","VolumeOptions":{}}]"#,
        r#"[{"Type":"volume","Target":"/m","BindOptions":{}}]"#,
        r#"[{"Type":"tmpfs","Target":"/m","BindOptions":{}}]"#,
        r#"[{"Type":"","Target":"/m"}]"#,
        r#"[{"Type":"bind","Source":"/tmp","Target":"/m"},{"Type":"bogus","Target":"/n"}]"#,
        r#"[{"Type":"volume","Source":"bad/x","Target":"/m"},{"Type":"bogus","Target":"/n"}]"#,
        r#"[{"Type":"volume","Source":"v2","Target":"/m","VolumeOptions":{"DriverConfig":{"Name":"nope"}}}]"#,
        r#"[{"Type":"tmpfs","Target":"/m"},{"Type":"tmpfs","Target":"/m"}]"#,
    ];
    let answer = |host: &str, mounts: &str| {
        let body =
            format!(r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{{"Mounts":{mounts}}}}}"#);
        let full = post_json(host, "/v1.41/containers/create", &body);
        let status = full.split(' ').nth(1).unwrap_or_default().to_string();
        let json = full
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        // Chunked or not, the JSON object is the part between the braces.
        let json = &json[json.find('{').unwrap_or(0)..=json.rfind('}').unwrap_or(0)];
        let message: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        (status, message["message"].clone())
    };
    for mounts in bodies {
        let theirs = answer(&dockerd.host, mounts);
        assert_ne!(theirs.0, "201", "{mounts}: dockerd took it");
        assert_eq!(
            answer(&engine.host, mounts),
            theirs,
            "{mounts}: berth (left) and dockerd (right)"
        );
    }
    assert_eq!(
        ok(berth(&engine.host, &["ps", "-aq"])),
        "",
        "nothing created"
    );
}

/// `--mount type=bind,bind-propagation=rshared`: a mount made under the source afterwards
/// appears inside the running container, and with `rprivate` it does not; the container's
/// /proc/self/mountinfo shows each. The daemon runs in a mount namespace of its own, where
/// the source is made a shared mount point, so nothing is mounted on the host.
#[test]
fn bind_propagation_reaches_the_container_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("shared");
    std::fs::create_dir_all(src.join("later")).unwrap();
    let engine = Engine::start_in_wrapped(
        dir.path(),
        "vol",
        &["unshare", "--mount", "--propagation", "private", "--"],
        &HOST_NETWORK_FLAGS,
    );
    let pid = engine.daemon.as_ref().unwrap().child.id().to_string();
    let in_daemon_ns = |script: &str| {
        let out = std::process::Command::new("nsenter")
            .args(["-t", &pid, "-m", "--", "sh", "-euc", script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", stderr(&out));
    };
    let s = src.display();
    in_daemon_ns(&format!("mount --bind {s} {s} && mount --make-shared {s}"));
    let bin = CLIS[1];
    let v = |args: &[&str]| run(bin, &engine.host, args);
    for mode in ["rshared", "rprivate"] {
        let m = format!("type=bind,source={s},target=/m,bind-propagation={mode}");
        ok(v(&[
            "run", "-d", "--name", mode, "--mount", &m, "busybox", "busybox", "sleep", "600",
        ]));
    }
    in_daemon_ns(&format!(
        "mount -t tmpfs later {s}/later && echo made-later > {s}/later/f"
    ));
    assert_eq!(
        ok(v(&["exec", "rshared", "busybox", "cat", "/m/later/f"])),
        "made-later\n"
    );
    assert_eq!(
        ok(v(&["exec", "rprivate", "busybox", "ls", "-A", "/m/later"])),
        ""
    );
    let info = |name: &str| {
        let all = ok(v(&["exec", name, "busybox", "cat", "/proc/self/mountinfo"]));
        all.lines()
            .find(|l| l.split(' ').nth(4) == Some("/m"))
            .unwrap_or_else(|| panic!("{name}: no /m in {all}"))
            .to_string()
    };
    let optional = |line: &str| -> Vec<String> {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-").unwrap();
        fields[6..sep]
            .iter()
            .map(|f| f.split(':').next().unwrap().to_string())
            .collect()
    };
    let shared = info("rshared");
    assert!(
        optional(&shared).contains(&"shared".to_string()),
        "{shared}"
    );
    let private = info("rprivate");
    assert!(optional(&private).is_empty(), "{private}");
    ok(v(&["rm", "-f", "rshared", "rprivate"]));
    drop(engine);
    assert_eq!(
        berth_integration::host::mounts_mentioning(dir.path()),
        Vec::<String>::new(),
        "mounts left on the host"
    );
}
