//! `docker build` against `berth daemon` with the real docker CLIs (Debian's 20.10 with
//! DOCKER_BUILDKIT=0, and the newer one, which without buildx falls back to the legacy
//! builder by itself): docker's stream, the image it makes, the cache, errors, the context's
//! confinement, multi-stage builds, and `docker commit`.
mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

const CLIS: [&str; 2] = ["/usr/bin/docker", "/usr/local/bin/docker"];

fn cli(bin: &str, host: &str, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config_dir(host))
        .env("DOCKER_BUILDKIT", "0")
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

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A daemon with `busybox` seeded.
fn daemon(dir: &Path) -> Daemon {
    seed(&dir.join("data"), "busybox", &busybox_image("base", 1));
    start(dir)
}

const APP: &str = r#"FROM busybox
ARG V=one
ENV A=b C="d e"
LABEL k=v
WORKDIR /app
COPY a.txt .
COPY d /data/
RUN echo "run $V $A"; echo built > /app/made.txt
EXPOSE 80 53/udp
USER 1000:1000
ENTRYPOINT ["sh", "-c"]
CMD ["busybox cat /app/a.txt /app/made.txt; echo $A/$C; busybox id -u"]
"#;

fn app_context(dir: &Path) {
    write(dir, "Dockerfile", APP);
    write(dir, "a.txt", "hello\n");
    write(dir, "d/sub/y", "y\n");
}

fn count(text: &str, word: &str) -> usize {
    text.matches(word).count()
}

#[test]
fn docker_build_makes_the_image_and_reuses_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let ctx = dir.path().join("ctx");
    app_context(&ctx);
    let ctx_s = ctx.to_str().unwrap();
    let iid = dir.path().join("iid");
    let mut first_id = String::new();
    for (n, bin) in CLIS.iter().enumerate() {
        let tag = format!("app:{n}");
        let out = cli(
            bin,
            &d.host,
            &[
                "build",
                "-t",
                &tag,
                "-t",
                "app:latest",
                "--build-arg",
                "V=two",
                "--label",
                "built=yes",
                "--iidfile",
                iid.to_str().unwrap(),
                ctx_s,
            ],
            None,
        );
        let text = ok(out);
        let id = std::fs::read_to_string(&iid).unwrap();
        assert!(id.starts_with("sha256:"), "{bin}: {id}");
        assert!(
            text.contains(&format!("Successfully built {}\n", short(&id))),
            "{bin}: {text}"
        );
        assert!(
            text.contains(&format!("Successfully tagged {tag}\n")),
            "{bin}: {text}"
        );
        assert!(
            text.contains("Successfully tagged app:latest\n"),
            "{bin}: {text}"
        );
        assert!(text.contains("Step 1/13 : FROM busybox\n"), "{bin}: {text}");
        assert!(
            text.contains("Step 13/13 : LABEL built=yes\n"),
            "{bin}: {text}"
        );
        if n == 0 {
            assert!(text.contains(" ---> Running in "), "{text}");
            assert!(text.contains("run two b\n"), "{text}");
            assert!(text.contains("Removing intermediate container "), "{text}");
            assert_eq!(count(&text, " ---> Using cache"), 0, "{text}");
            first_id = id.clone();
        } else {
            // The other CLI, other tags: every step from the cache, the same image.
            assert_eq!(count(&text, " ---> Using cache"), 12, "{bin}: {text}");
            assert!(!text.contains("Running in"), "{bin}: {text}");
            assert_eq!(id, first_id, "{bin}");
        }
        let run = ok(cli(bin, &d.host, &["run", "--rm", &tag], None));
        assert_eq!(run, "hello\nbuilt\nb/d e\n1000\n", "{bin}");
    }
    let inspect = ok(docker(&d.host, &["image", "inspect", "app:latest"]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let c = &v[0]["Config"];
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["Entrypoint"], serde_json::json!(["sh", "-c"]));
    assert_eq!(c["Labels"], serde_json::json!({"k": "v", "built": "yes"}));
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"80/tcp": {}, "53/udp": {}})
    );
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(env, ["PATH=/bin", "A=b", "C=d e"]);
    let cc = &v[0]["ContainerConfig"]["Cmd"];
    assert_eq!(
        cc,
        &serde_json::json!(["/bin/sh", "-c", "#(nop) ", "LABEL built=yes"])
    );
    let history = ok(docker(
        &d.host,
        &[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}",
            "app:latest",
        ],
    ));
    assert!(
        history.contains("|1 V=two /bin/sh -c echo \"run $V $A\"; echo built > /app/made.txt\n"),
        "{history}"
    );
    assert!(
        history.contains("/bin/sh -c #(nop)  ENV A=b C=d e\n"),
        "{history}"
    );
    assert!(
        history.contains("/bin/sh -c #(nop)  CMD [\"busybox cat"),
        "{history}"
    );
    assert!(
        history.contains("/bin/sh -c #(nop) COPY file:"),
        "{history}"
    );
    // Intermediate images are hidden, as dockerd's, except with -a.
    let images = ok(docker(
        &d.host,
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
    ));
    let mut names: Vec<&str> = images.lines().collect();
    names.sort();
    assert_eq!(
        names,
        ["app:0", "app:1", "app:latest", "busybox:latest"],
        "{images}"
    );
    let all = ok(docker(&d.host, &["images", "-a", "-q"]));
    assert!(all.lines().count() > 10, "{all}");

    // A new mtime alone keeps the cache; new content invalidates COPY a.txt and what follows.
    let a = ctx.join("a.txt");
    let f = std::fs::File::options().write(true).open(&a).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    drop(f);
    let text = ok(cli(
        CLIS[0],
        &d.host,
        &[
            "build",
            "--build-arg",
            "V=two",
            "--label",
            "built=yes",
            "-q",
            ctx_s,
        ],
        None,
    ));
    assert_eq!(text.trim(), first_id, "touched file, same image");
    write(&ctx, "a.txt", "changed\n");
    let text = ok(cli(
        CLIS[0],
        &d.host,
        &["build", "-t", "app:changed", "--build-arg", "V=two", ctx_s],
        None,
    ));
    assert_eq!(count(&text, " ---> Using cache"), 4, "{text}");
    assert!(
        text.contains("run two b\n"),
        "RUN after the changed COPY runs again: {text}"
    );
    let run = ok(docker(&d.host, &["run", "--rm", "app:changed"]));
    assert!(run.starts_with("changed\n"), "{run}");
    // Another build arg value: the RUN step misses.
    let text = ok(cli(
        CLIS[0],
        &d.host,
        &["build", "--build-arg", "V=three", ctx_s],
        None,
    ));
    assert!(text.contains("run three b\n"), "{text}");
    let text = ok(cli(
        CLIS[1],
        &d.host,
        &["build", "--no-cache", "--build-arg", "V=two", ctx_s],
        None,
    ));
    assert_eq!(count(&text, "Using cache"), 0, "{text}");
    assert!(text.contains("run two b\n"), "{text}");
}

#[test]
fn the_cache_survives_a_daemon_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    app_context(&ctx);
    let ctx_s = ctx.to_str().unwrap();
    let first = {
        let d = daemon(dir.path());
        ok(cli(CLIS[0], &d.host, &["build", "-q", ctx_s], None))
    };
    let d = start(dir.path());
    let text = ok(cli(CLIS[0], &d.host, &["build", ctx_s], None));
    assert_eq!(count(&text, " ---> Using cache"), 11, "{text}");
    assert!(
        text.contains(&format!("Successfully built {}", short(first.trim()))),
        "{text}"
    );
}

/// Active snapshots (containers', steps') in a stopped daemon's data root.
fn active_snapshots(data_root: &Path) -> Vec<String> {
    use berth_supervisor::images::metadata::SnapshotKind;
    let svc = berth_supervisor::images::service::ImageService::open(
        berth_supervisor::images::service::Options {
            data_root: data_root.to_path_buf(),
            ..Default::default()
        },
    )
    .unwrap();
    svc.metadata
        .snapshots()
        .unwrap()
        .into_iter()
        .filter(|s| s.kind == SnapshotKind::Active)
        .map(|s| s.key)
        .collect()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn failing_steps_say_what_docker_says_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let d = daemon(dir.path());
        let ctx = dir.path().join("ctx");
        for bin in CLIS {
            write(
                &ctx,
                "Dockerfile",
                "FROM busybox\nRUN echo before; exit 3\n",
            );
            let out = cli(bin, &d.host, &["build", ctx.to_str().unwrap()], None);
            assert_eq!(out.status.code(), Some(3), "{bin}: {out:?}");
            assert!(stdout(&out).contains("before\n"), "{bin}: {out:?}");
            assert!(
                stderr(&out).contains(
                    "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"
                ),
                "{bin}: {out:?}"
            );
            write(&ctx, "Dockerfile", "FROM busybox\nfrobnicate all\n");
            let out = cli(bin, &d.host, &["build", ctx.to_str().unwrap()], None);
            assert_eq!(out.status.code(), Some(1), "{bin}: {out:?}");
            assert!(
                stderr(&out)
                    .contains("dockerfile parse error line 2: unknown instruction: FROBNICATE"),
                "{bin}: {out:?}"
            );
            write(&ctx, "Dockerfile", "FROM busybox\nCOPY missing /x\n");
            let out = cli(bin, &d.host, &["build", ctx.to_str().unwrap()], None);
            assert!(
                stderr(&out).contains("COPY failed: file not found in build context or excluded by .dockerignore: stat missing: file does not exist"),
                "{bin}: {out:?}"
            );
            let out = cli(
                bin,
                &d.host,
                &["build", "-t", "Bad:Tag", ctx.to_str().unwrap()],
                None,
            );
            assert!(!out.status.success(), "{bin}: {out:?}");
        }
        assert_eq!(ok(docker(&d.host, &["ps", "-a", "-q"])), "");
        assert!(
            mounts_under(dir.path()).is_empty(),
            "{:?}",
            mounts_under(dir.path())
        );
    }
    assert!(
        active_snapshots(&data).is_empty(),
        "{:?}",
        active_snapshots(&data)
    );
    let tmp = data.join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// A tar with one entry named `name` (written raw: the tar crate refuses `..`).
fn raw_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    {
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    }
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(512 + data.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[test]
fn a_context_cannot_make_the_build_read_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let ctx = dir.path().join("ctx");
    write(&ctx, "etc/passwd", "inside\n");
    std::os::unix::fs::symlink("/etc/passwd", ctx.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc/passwd", ctx.join("rel")).unwrap();
    std::os::unix::fs::symlink("/etc", ctx.join("etcdir")).unwrap();
    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\nCOPY abs /abs\nCOPY rel /rel\nCOPY etcdir/passwd /viadir\nCOPY /etc/passwd /absolute\nCMD [\"busybox\", \"cat\", \"/abs\", \"/rel\", \"/viadir\", \"/absolute\"]\n",
    );
    ok(cli(
        CLIS[0],
        &d.host,
        &["build", "-t", "sec", ctx.to_str().unwrap()],
        None,
    ));
    let run = ok(docker(&d.host, &["run", "--rm", "sec"]));
    assert_eq!(
        run,
        "inside\n".repeat(4),
        "symlinks and absolute paths resolve inside the context"
    );

    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\nCOPY ../../etc/passwd /x\n",
    );
    let out = cli(CLIS[0], &d.host, &["build", ctx.to_str().unwrap()], None);
    assert!(
        stderr(&out)
            .contains("COPY failed: forbidden path outside the build context: ../../etc/passwd ()"),
        "{out:?}"
    );
    // A tar ADD unpacks is refused when an entry climbs out.
    std::fs::write(ctx.join("evil.tar"), raw_tar("../../escaped", b"x")).unwrap();
    write(&ctx, "Dockerfile", "FROM busybox\nADD evil.tar /t/\n");
    let out = cli(CLIS[0], &d.host, &["build", ctx.to_str().unwrap()], None);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("ADD failed:") && stderr(&out).contains("\"..\" in path refused"),
        "{out:?}"
    );
    assert!(!Path::new("/escaped").exists() && !dir.path().join("escaped").exists());
}

#[test]
fn copy_and_add_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let ctx = dir.path().join("ctx");
    write(&ctx, "src/one.txt", "1\n");
    write(&ctx, "src/two.txt", "2\n");
    write(&ctx, "src/skip.md", "no\n");
    write(&ctx, "tree/a/b", "b\n");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o600);
    b.append_data(&mut h, "inner/file", &b"tar\n"[..]).unwrap();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&b.into_inner().unwrap()).unwrap();
        e.finish().unwrap()
    };
    std::fs::write(ctx.join("pack.tar.gz"), gz).unwrap();
    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\nCOPY src/*.txt /txt/\nCOPY tree /copied\nCOPY --chown=7:8 src/one.txt /owned\nADD pack.tar.gz /unpacked/\nCOPY pack.tar.gz /kept/\nCMD [\"sh\", \"-c\", \"busybox ls /txt /copied/a; busybox cat /unpacked/inner/file; busybox stat -c '%u:%g' /owned; busybox ls /kept\"]\n",
    );
    ok(cli(
        CLIS[1],
        &d.host,
        &["build", "-t", "cp", ctx.to_str().unwrap()],
        None,
    ));
    let run = ok(docker(&d.host, &["run", "--rm", "cp"]));
    assert_eq!(
        run, "/copied/a:\nb\n\n/txt:\none.txt\ntwo.txt\ntar\n7:8\npack.tar.gz\n",
        "{run}"
    );
}

#[test]
fn multi_stage_with_copy_from_and_target() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let ctx = dir.path().join("ctx");
    write(
        &ctx,
        "Dockerfile",
        "ARG BASE=busybox\nFROM $BASE AS builder\nRUN echo artifact > /out.txt\n\nFROM ${BASE} AS test\nRUN echo testing > /test.txt\n\nFROM busybox\nCOPY --from=builder /out.txt /final/\nCMD [\"busybox\", \"cat\", \"/final/out.txt\"]\n",
    );
    let c = ctx.to_str().unwrap();
    let text = ok(cli(CLIS[0], &d.host, &["build", "-t", "ms", c], None));
    assert!(text.contains("Step 1/8 : ARG BASE=busybox\n"), "{text}");
    assert_eq!(ok(docker(&d.host, &["run", "--rm", "ms"])), "artifact\n");
    let text = ok(cli(
        CLIS[0],
        &d.host,
        &["build", "--target", "builder", "-t", "ms:builder", c],
        None,
    ));
    assert!(!text.contains("testing"), "{text}");
    assert_eq!(
        ok(docker(
            &d.host,
            &["run", "--rm", "ms:builder", "busybox", "cat", "/out.txt"]
        )),
        "artifact\n"
    );
    let out = cli(CLIS[0], &d.host, &["build", "--target", "nosuch", c], None);
    assert!(
        stderr(&out).contains("failed to reach build target nosuch in Dockerfile"),
        "{out:?}"
    );
}

#[test]
fn docker_commit_makes_an_image_of_a_container() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    for bin in CLIS {
        let name = format!("c{}", bin.len());
        ok(cli(
            bin,
            &d.host,
            &[
                "run",
                "--name",
                &name,
                "busybox",
                "sh",
                "-c",
                "echo saved > /kept; echo gone > /etc/marker",
            ],
            None,
        ));
        let tag = format!("committed:{}", bin.len());
        let id = ok(cli(
            bin,
            &d.host,
            &[
                "commit",
                "-m",
                "a message",
                "-a",
                "me",
                "-c",
                "ENV X=1",
                "-c",
                "CMD [\"busybox\", \"cat\", \"/kept\"]",
                &name,
                &tag,
            ],
            None,
        ));
        assert!(id.trim().starts_with("sha256:"), "{bin}: {id}");
        assert_eq!(
            ok(cli(bin, &d.host, &["run", "--rm", &tag], None)),
            "saved\n",
            "{bin}"
        );
        let marker = ok(cli(
            bin,
            &d.host,
            &["run", "--rm", &tag, "busybox", "cat", "/etc/marker"],
            None,
        ));
        assert_eq!(marker, "gone\n", "{bin}");
        let v: serde_json::Value =
            serde_json::from_str(&ok(cli(bin, &d.host, &["image", "inspect", &tag], None)))
                .unwrap();
        assert_eq!(v[0]["Comment"], "a message", "{bin}");
        assert_eq!(v[0]["Author"], "me", "{bin}");
        assert!(
            v[0]["Config"]["Env"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("X=1")),
            "{bin}: {v}"
        );
        assert_eq!(
            v[0]["RootFS"]["Layers"].as_array().unwrap().len(),
            2,
            "{bin}"
        );
        ok(cli(bin, &d.host, &["rm", &name], None));
    }
}

#[test]
fn berth_build_with_dockers_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let ctx = dir.path().join("ctx");
    app_context(&ctx);
    let other = dir.path().join("Other.dockerfile");
    std::fs::write(
        &other,
        "FROM busybox\nARG V\nRUN echo \"arg=$V\" > /v\nCMD [\"busybox\", \"cat\", \"/v\"]\n",
    )
    .unwrap();
    let iid = dir.path().join("iid");
    let c = ctx.to_str().unwrap();
    let text = ok(berth(&d.host, &["build", "-t", "bb:1", c]));
    assert!(
        text.contains("Step 1/12 : FROM busybox\n") && text.contains("Successfully tagged bb:1\n"),
        "{text}"
    );
    let args = [
        "build",
        "-q",
        "-f",
        other.to_str().unwrap(),
        "--build-arg",
        "V=x",
        "--iidfile",
        iid.to_str().unwrap(),
        "-t",
        "bb:2",
        c,
    ];
    let text = ok(berth(&d.host, &args));
    let id = std::fs::read_to_string(&iid).unwrap();
    assert_eq!(text.trim(), id, "-q prints only the ID");
    assert_eq!(ok(docker(&d.host, &["run", "--rm", "bb:2"])), "arg=x\n");
    let text = ok(berth(&d.host, &["build", "--no-cache", c]));
    assert!(!text.contains("Using cache"), "{text}");
    std::fs::write(&other, "FROM busybox\nRUN exit 4\n").unwrap();
    let out = berth(&d.host, &["build", "-f", other.to_str().unwrap(), c]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        stderr(&out).contains("The command '/bin/sh -c exit 4' returned a non-zero code: 4"),
        "{out:?}"
    );
}
