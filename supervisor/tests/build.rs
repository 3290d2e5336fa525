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

/// `build ARGS` with the docker CLI `bin` against `host`.
fn build_cli(bin: &str, host: &str, args: &[&str]) -> Output {
    cli(bin, host, &[&["build"][..], args].concat(), None)
}

/// [`build_cli`], to success; its stdout.
fn build_ok(bin: &str, host: &str, args: &[&str]) -> String {
    ok(build_cli(bin, host, args))
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A daemon with `busybox` seeded, and a context `ctx` in its directory holding only
/// `dockerfile` (the daemon is dropped, and so stopped, before the directory).
fn with_dockerfile(dockerfile: &str) -> (tempfile::TempDir, Daemon, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let ctx = dir.path().join("ctx");
    write(&ctx, "Dockerfile", dockerfile);
    (dir, d, ctx)
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
        let out = build_cli(
            bin,
            &d.host,
            &[
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
    let text = build_ok(
        CLIS[0],
        &d.host,
        &["--build-arg", "V=two", "--label", "built=yes", "-q", ctx_s],
    );
    assert_eq!(text.trim(), first_id, "touched file, same image");
    write(&ctx, "a.txt", "changed\n");
    let text = build_ok(
        CLIS[0],
        &d.host,
        &["-t", "app:changed", "--build-arg", "V=two", ctx_s],
    );
    assert_eq!(count(&text, " ---> Using cache"), 4, "{text}");
    assert!(
        text.contains("run two b\n"),
        "RUN after the changed COPY runs again: {text}"
    );
    let run = ok(docker(&d.host, &["run", "--rm", "app:changed"]));
    assert!(run.starts_with("changed\n"), "{run}");
    // Another build arg value: the RUN step misses.
    let text = build_ok(CLIS[0], &d.host, &["--build-arg", "V=three", ctx_s]);
    assert!(text.contains("run three b\n"), "{text}");
    let text = build_ok(
        CLIS[1],
        &d.host,
        &["--no-cache", "--build-arg", "V=two", ctx_s],
    );
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
        build_ok(CLIS[0], &d.host, &["-q", ctx_s])
    };
    let d = start(dir.path());
    let text = build_ok(CLIS[0], &d.host, &[ctx_s]);
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
            let out = build_cli(bin, &d.host, &[ctx.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(3), "{bin}: {out:?}");
            assert!(stdout(&out).contains("before\n"), "{bin}: {out:?}");
            assert!(
                stderr(&out).contains(
                    "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"
                ),
                "{bin}: {out:?}"
            );
            write(&ctx, "Dockerfile", "FROM busybox\nfrobnicate all\n");
            let out = build_cli(bin, &d.host, &[ctx.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(1), "{bin}: {out:?}");
            assert!(
                stderr(&out)
                    .contains("dockerfile parse error line 2: unknown instruction: FROBNICATE"),
                "{bin}: {out:?}"
            );
            write(&ctx, "Dockerfile", "FROM busybox\nCOPY missing /x\n");
            let out = build_cli(bin, &d.host, &[ctx.to_str().unwrap()]);
            assert!(
                stderr(&out).contains("COPY failed: file not found in build context or excluded by .dockerignore: stat missing: file does not exist"),
                "{bin}: {out:?}"
            );
            let out = build_cli(bin, &d.host, &["-t", "Bad:Tag", ctx.to_str().unwrap()]);
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
    build_ok(CLIS[0], &d.host, &["-t", "sec", ctx.to_str().unwrap()]);
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
    let out = build_cli(CLIS[0], &d.host, &[ctx.to_str().unwrap()]);
    assert!(
        stderr(&out)
            .contains("COPY failed: forbidden path outside the build context: ../../etc/passwd ()"),
        "{out:?}"
    );
    // A tar ADD unpacks is refused when an entry climbs out.
    std::fs::write(ctx.join("evil.tar"), raw_tar("../../escaped", b"x")).unwrap();
    write(&ctx, "Dockerfile", "FROM busybox\nADD evil.tar /t/\n");
    let out = build_cli(CLIS[0], &d.host, &[ctx.to_str().unwrap()]);
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
    build_ok(CLIS[1], &d.host, &["-t", "cp", ctx.to_str().unwrap()]);
    let run = ok(docker(&d.host, &["run", "--rm", "cp"]));
    assert_eq!(
        run, "/copied/a:\nb\n\n/txt:\none.txt\ntwo.txt\ntar\n7:8\npack.tar.gz\n",
        "{run}"
    );
}

#[test]
fn multi_stage_with_copy_from_and_target() {
    let (_dir, d, ctx) = with_dockerfile("ARG BASE=busybox\nFROM $BASE AS builder\nRUN echo artifact > /out.txt\n\nFROM ${BASE} AS test\nRUN echo testing > /test.txt\n\nFROM busybox\nCOPY --from=builder /out.txt /final/\nCMD [\"busybox\", \"cat\", \"/final/out.txt\"]\n");
    let c = ctx.to_str().unwrap();
    let text = build_ok(CLIS[0], &d.host, &["-t", "ms", c]);
    assert!(text.contains("Step 1/8 : ARG BASE=busybox\n"), "{text}");
    assert_eq!(ok(docker(&d.host, &["run", "--rm", "ms"])), "artifact\n");
    let text = build_ok(
        CLIS[0],
        &d.host,
        &["--target", "builder", "-t", "ms:builder", c],
    );
    assert!(!text.contains("testing"), "{text}");
    assert_eq!(
        ok(docker(
            &d.host,
            &["run", "--rm", "ms:builder", "busybox", "cat", "/out.txt"]
        )),
        "artifact\n"
    );
    let out = build_cli(CLIS[0], &d.host, &["--target", "nosuch", c]);
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

/// `berth ARGS` under script(1), on a terminal of its own: what it drew.
fn berth_on_a_tty(host: &str, args: &[&str]) -> (std::process::ExitStatus, String) {
    let line = std::iter::once(BERTH)
        .chain(["-H", host])
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("BERTH_CONFIG", config_dir(host))
        .env("COLUMNS", "120")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux)");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The time a finished step's line ends with (`✔ [2/3] RUN …  1.2s`), in seconds.
fn step_seconds(drawn: &str, title: &str) -> Option<f64> {
    let done = format!("\u{2714} {title}  ");
    let rest = &drawn[drawn.find(&done)? + done.len()..];
    rest[..rest.find('s')?].parse().ok()
}

#[test]
fn berth_build_on_a_terminal_shows_each_step_live_with_its_time() {
    let (_dir, d, ctx) =
        with_dockerfile("FROM busybox\nRUN echo live-out\nRUN busybox sleep 1.5\n");
    let c = ctx.to_str().unwrap();
    let (status, drawn) = berth_on_a_tty(&d.host, &["build", "-t", "tv:1", c]);
    assert!(status.success(), "{drawn}");
    // Each step, finished, on a line with its time; a step's output under it.
    assert!(
        step_seconds(&drawn, "[1/3] FROM busybox").is_some(),
        "{drawn}"
    );
    assert!(
        step_seconds(&drawn, "[2/3] RUN echo live-out").is_some(),
        "{drawn}"
    );
    assert!(drawn.contains("    live-out "), "{drawn}");
    let slept = step_seconds(&drawn, "[3/3] RUN busybox sleep 1.5").unwrap_or(0.0);
    assert!(slept >= 1.5, "the sleep took {slept}s: {drawn}");
    // While it ran, the step was drawn with a spinner, more than once.
    assert!(
        drawn.matches("[3/3] RUN busybox sleep 1.5").count() >= 3,
        "no live line: {drawn}"
    );
    assert!(drawn.contains("Successfully tagged tv:1 "), "{drawn}");
    assert!(drawn.contains("Built in "), "{drawn}");
    // The builder's bookkeeping is not shown.
    assert!(!drawn.contains(" ---> "), "{drawn}");

    // Again: every step from the cache.
    let (status, drawn) = berth_on_a_tty(&d.host, &["build", "-t", "tv:1", c]);
    assert!(status.success(), "{drawn}");
    assert!(
        drawn.contains("\u{2714} [3/3] RUN busybox sleep 1.5  CACHED"),
        "{drawn}"
    );

    // A failing step is marked, and its error printed.
    write(&ctx, "Dockerfile", "FROM busybox\nRUN exit 3\n");
    let (status, drawn) = berth_on_a_tty(&d.host, &["build", c]);
    assert_eq!(status.code(), Some(3), "{drawn}");
    assert!(
        drawn.contains("\u{2717} [2/2] RUN exit 3  ERROR"),
        "{drawn}"
    );
    assert!(
        drawn.contains("The command '/bin/sh -c exit 3' returned a non-zero code: 3"),
        "{drawn}"
    );

    // Not on a terminal: docker's text, unchanged.
    write(&ctx, "Dockerfile", "FROM busybox\nRUN echo plain\n");
    let text = ok(berth(&d.host, &["build", c]));
    assert!(
        text.contains("Step 2/2 : RUN echo plain\n ---> Running in "),
        "{text}"
    );
}

/// What a `COPY . /ctx/` of the context holds, listed by the image's CMD.
const LIST_CONTEXT: &str = "FROM busybox\nCOPY . /ctx/\nCMD [\"sh\", \"-c\", \"cd /ctx && busybox find . | busybox sort\"]\n";

#[test]
fn dockerignore_with_dockers_matcher_through_every_cli() {
    let (dir, d, ctx) = with_dockerfile(LIST_CONTEXT);
    write(
        &ctx,
        ".dockerignore",
        "# comment\n*.log\n**/*.tmp\nsecret\n/build/\n!build/keep.txt\ndocs/**\n!important.log\nDockerfile\n.dockerignore\nREADME*\n!README.md\nnotes.md\n./dot/../cleaned\n",
    );
    for f in [
        "a.log",
        "important.log",
        "x.tmp",
        "d/e/x.tmp",
        "d/e/kept",
        "secret/key",
        "build/out.bin",
        "build/keep.txt",
        "docs/a/b.md",
        "src/main.rs",
        "src/b.log",
        "README.md",
        "README.txt",
        "notes.md",
        "cleaned",
    ] {
        write(&ctx, f, "x\n");
    }
    // Docker's own walk: `*` stays in its directory, `**` spans any, `!` takes back, the
    // last match wins, an excluded directory's exception is kept, patterns are cleaned, and
    // the Dockerfile and .dockerignore reach the daemon (which drops them, as dockerd does,
    // since the .dockerignore names them).
    let want = ".\n./README.md\n./build\n./build/keep.txt\n./d\n./d/e\n./d/e/kept\n./docs\n./important.log\n./src\n./src/b.log\n./src/main.rs\n";
    let c = ctx.to_str().unwrap();
    for (n, bin) in CLIS.iter().enumerate() {
        let tag = format!("ign:{n}");
        build_ok(bin, &d.host, &["-t", &tag, c]);
        let listed = ok(docker(&d.host, &["run", "--rm", &tag]));
        assert_eq!(listed, want, "{bin}");
    }
    ok(berth(&d.host, &["build", "-t", "ign:berth", c]));
    let listed = ok(docker(&d.host, &["run", "--rm", "ign:berth"]));
    assert_eq!(listed, want, "berth build");
    // Not matched by the .dockerignore, the Dockerfile and .dockerignore stay in the context.
    let small = dir.path().join("small");
    write(&small, "Dockerfile", LIST_CONTEXT);
    write(&small, ".dockerignore", "*.log\n");
    write(&small, "a.log", "x\n");
    write(&small, "keep", "x\n");
    let s = small.to_str().unwrap();
    ok(berth(&d.host, &["build", "-t", "ign:kept", s]));
    let listed = ok(docker(&d.host, &["run", "--rm", "ign:kept"]));
    assert_eq!(
        listed, ".\n./.dockerignore\n./Dockerfile\n./keep\n",
        "berth build"
    );
    // A COPY of an ignored file fails in docker's words.
    write(&ctx, "Dockerfile", "FROM busybox\nCOPY a.log /x\n");
    let out = berth(&d.host, &["build", c]);
    assert!(
        stderr(&out).contains("COPY failed: file not found in build context or excluded by .dockerignore: stat a.log: file does not exist"),
        "{out:?}"
    );
}

fn berth_stdin(host: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BERTH)
        .args(["-H", host])
        .args(args)
        .env("BERTH_CONFIG", config_dir(host))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn build_from_stdin_a_dockerfile_a_tar_or_f_dash() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let dockerfile =
        b"FROM busybox\nRUN echo from-stdin > /s\nCMD [\"busybox\", \"cat\", \"/s\"]\n";
    // `build -` with a Dockerfile: no context at all.
    for bin in CLIS {
        let out = cli(
            bin,
            &d.host,
            &["build", "-t", "stdin:df", "-"],
            Some(dockerfile),
        );
        ok(out);
        assert_eq!(
            ok(docker(&d.host, &["run", "--rm", "stdin:df"])),
            "from-stdin\n"
        );
    }
    let out = berth_stdin(&d.host, &["build", "-t", "stdin:berth", "-"], dockerfile);
    let text = ok(out);
    assert!(text.contains("Step 1/3 : FROM busybox\n"), "{text}");
    assert_eq!(
        ok(docker(&d.host, &["run", "--rm", "stdin:berth"])),
        "from-stdin\n"
    );

    // `build -` with a tar (gzip too): the tar is the context; -f names a file in it.
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        (
            "build.df",
            "FROM busybox\nCOPY in.txt /in.txt\nCMD [\"busybox\", \"cat\", \"/in.txt\"]\n",
        ),
        ("in.txt", "from the tar\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data.as_bytes()).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    for (n, body) in [&tar, &gz].into_iter().enumerate() {
        let tag = format!("stdin:tar{n}");
        ok(berth_stdin(
            &d.host,
            &["build", "-f", "build.df", "-t", &tag, "-"],
            body,
        ));
        assert_eq!(
            ok(docker(&d.host, &["run", "--rm", &tag])),
            "from the tar\n"
        );
        ok(cli(
            CLIS[0],
            &d.host,
            &["build", "-f", "build.df", "-t", &tag, "-"],
            Some(body),
        ));
        assert_eq!(
            ok(docker(&d.host, &["run", "--rm", &tag])),
            "from the tar\n"
        );
    }

    // `-f -` with a context directory: the Dockerfile from stdin is no file of the context.
    let ctx = dir.path().join("ctx");
    write(&ctx, "f.txt", "f\n");
    let c = ctx.to_str().unwrap();
    ok(berth_stdin(
        &d.host,
        &["build", "-f", "-", "-t", "stdin:f", c],
        LIST_CONTEXT.as_bytes(),
    ));
    assert_eq!(
        ok(docker(&d.host, &["run", "--rm", "stdin:f"])),
        ".\n./f.txt\n"
    );
    ok(cli(
        CLIS[0],
        &d.host,
        &["build", "-f", "-", "-t", "stdin:f0", c],
        Some(LIST_CONTEXT.as_bytes()),
    ));
    assert_eq!(
        ok(docker(&d.host, &["run", "--rm", "stdin:f0"])),
        ".\n./f.txt\n"
    );
    let out = berth_stdin(&d.host, &["build", "-f", "-", "-"], dockerfile);
    assert!(
        !out.status.success()
            && stderr(&out).contains("can't use stdin for both build context and dockerfile"),
        "{out:?}"
    );
}

#[test]
fn workdir_makes_its_directory_as_dockerd_does() {
    let (_dir, d, ctx) = with_dockerfile("FROM busybox\nWORKDIR /etc\nWORKDIR /made/deep\nWORKDIR rel\nUSER 1000\nWORKDIR /other\nRUN busybox pwd; busybox stat -c '%n %u %a' /made/deep/rel /other\n");
    let c = ctx.to_str().unwrap();
    let text = build_ok(CLIS[0], &d.host, &["-t", "wd", c]);
    assert!(
        text.contains("/other\n/made/deep/rel 0 755\n/other 0 755\n"),
        "missing directories made root's, 0755, before RUN: {text}"
    );
    assert_eq!(count(&text, " ---> Running in "), 5, "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(docker(&d.host, &["image", "inspect", "wd"]))).unwrap();
    assert_eq!(v[0]["Config"]["WorkingDir"], "/other");
    // busybox's layer, one per directory made (not /etc, which was there), RUN's.
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 5, "{v}");
    let history = ok(docker(
        &d.host,
        &[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}|{{.Size}}",
            "wd",
        ],
    ));
    assert!(
        history.contains("/bin/sh -c #(nop) WORKDIR /etc|0B\n"),
        "{history}"
    );
    assert!(
        history.contains("/bin/sh -c #(nop) WORKDIR /made/deep/rel|"),
        "{history}"
    );
    // A rebuild takes every step from the cache, and the directories are still there.
    let text = build_ok(CLIS[0], &d.host, &["-t", "wd", c]);
    assert_eq!(count(&text, " ---> Using cache"), 6, "{text}");
    assert_eq!(
        ok(docker(
            &d.host,
            &["run", "--rm", "wd", "busybox", "ls", "-d", "/made/deep/rel"]
        )),
        "/made/deep/rel\n"
    );
    // FROM scratch: WORKDIR makes the directory the COPY lands in.
    write(&ctx, "f", "f\n");
    write(&ctx, "Dockerfile", "FROM scratch\nWORKDIR /w\nCOPY f .\n");
    build_ok(CLIS[0], &d.host, &["-t", "wd:scratch", c]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(docker(&d.host, &["image", "inspect", "wd:scratch"]))).unwrap();
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2, "{v}");
    let saved = docker(&d.host, &["save", "wd:scratch"]);
    assert!(saved.status.success(), "{saved:?}");
    let mut outer = tar::Archive::new(&saved.stdout[..]);
    let mut names = Vec::new();
    for entry in outer.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry
            .path()
            .unwrap()
            .to_string_lossy()
            .ends_with("layer.tar")
            || entry
                .path()
                .unwrap()
                .to_string_lossy()
                .starts_with("blobs/")
        {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            if let Ok(entries) = tar::Archive::new(&bytes[..]).entries() {
                for e in entries.flatten() {
                    let name = e.path().unwrap().to_string_lossy().into_owned();
                    names.push(name.trim_end_matches('/').to_string());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    assert_eq!(
        names,
        ["w", "w/f"],
        "the scratch image holds only /w and /w/f"
    );
}

/// Starts `docker build` of `ctx` and returns it once its RUN step has said `started`.
fn build_until_started(host: &str, ctx: &Path) -> std::process::Child {
    use std::io::BufRead;
    let mut child = Command::new(CLIS[0])
        .args(["build", ctx.to_str().unwrap()])
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config_dir(host))
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    loop {
        match lines.next() {
            Some(Ok(l)) if l == "started" => break,
            Some(Ok(l)) => seen.push_str(&format!("{l}\n")),
            _ => panic!("the build ended before its RUN step started: {seen}"),
        }
    }
    child
}

/// What an interrupted build may leave: containers, mounts, active snapshots, temporary
/// files, step marks; all checked empty (the daemon stopped for the snapshot records).
fn assert_nothing_left(dir: &Path, d: Daemon) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let ps = ok(docker(&d.host, &["ps", "-a", "-q"]));
        if ps.is_empty() && mounts_under(dir).is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left after 20 s: containers {ps:?}, mounts {:?}",
            mounts_under(dir)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(d);
    let data = dir.join("data");
    assert!(
        active_snapshots(&data).is_empty(),
        "{:?}",
        active_snapshots(&data)
    );
    for sub in ["tmp", "build-steps"] {
        let left: Vec<_> = std::fs::read_dir(data.join(sub))
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{sub}: {left:?}");
    }
}

#[test]
fn an_interrupted_build_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    write(&ctx, "a", "a\n");
    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\nCOPY a /a\nRUN echo started; busybox sleep 120\nRUN echo never\n",
    );
    // The client goes (docker build killed): the step's container is stopped and removed
    // well before its sleep would end.
    let d = daemon(dir.path());
    let mut client = build_until_started(&d.host, &ctx);
    client.kill().unwrap();
    client.wait().unwrap();
    assert_nothing_left(dir.path(), d);

    // The daemon is killed mid-step: the next one removes the step's container (which
    // outlived it, as containers do) and its snapshot.
    let d = start(dir.path());
    let client = build_until_started(&d.host, &ctx);
    // SAFETY: signals our own child.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGKILL) };
    let mut client = client;
    let _ = client.wait();
    let mut d = d;
    let _ = d.child.wait();
    std::mem::forget(d);
    let d = start(dir.path());
    assert_nothing_left(dir.path(), d);
}

#[test]
fn run_layers_hold_no_runtime_mountpoints() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let ctx = dir.path().join("ctx");
    // busybox here has no /proc, /sys, /dev, /etc/hosts: the runtime makes them to mount
    // over. A RUN that writes elsewhere in /etc keeps that, and nothing of theirs.
    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\nRUN busybox cat /etc/hosts > /dev/null && echo x > /made\nRUN echo y > /etc/own\n",
    );
    build_ok(CLIS[0], &d.host, &["-t", "hyg", ctx.to_str().unwrap()]);
    let saved = docker(&d.host, &["save", "hyg"]);
    assert!(saved.status.success(), "{saved:?}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(docker(&d.host, &["image", "inspect", "hyg"]))).unwrap();
    let layers: Vec<String> = v[0]["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers.len(), 3, "{v}");
    let mut by_digest = std::collections::HashMap::new();
    let mut outer = tar::Archive::new(&saved.stdout[..]);
    for entry in outer.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        let digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
        );
        let mut names = Vec::new();
        if let Ok(entries) = tar::Archive::new(&bytes[..]).entries() {
            for e in entries.flatten() {
                let name = e.path().unwrap().to_string_lossy().into_owned();
                names.push(name.trim_end_matches('/').to_string());
            }
        }
        names.sort();
        by_digest.insert(digest, names);
    }
    assert_eq!(by_digest[&layers[1]], ["made"], "first RUN's layer");
    assert_eq!(
        by_digest[&layers[2]],
        ["etc", "etc/own"],
        "second RUN's layer"
    );
}

#[test]
fn heredocs_in_run_and_copy() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let ctx = dir.path().join("ctx");
    let dockerfile = "FROM busybox\nARG WHO=world\nRUN <<EOF\necho \"hello $WHO\" > /greet\nbusybox cat /greet\nEOF\nRUN busybox cat > /two <<'X'\n$WHO literal\nX\nCOPY <<conf.txt <<-\"raw.txt\" /etc/app/\nname=$WHO\nconf.txt\n\t$WHO kept\n\traw.txt\nCMD [\"sh\", \"-c\", \"busybox cat /greet /two /etc/app/conf.txt /etc/app/raw.txt\"]\n";
    write(&ctx, "Dockerfile", dockerfile);
    let c = ctx.to_str().unwrap();
    let text = build_ok(CLIS[0], &d.host, &["-t", "hd", c]);
    assert!(text.contains("hello world\n"), "{text}");
    let want = "hello world\n$WHO literal\nname=world\n$WHO kept\n";
    assert_eq!(ok(docker(&d.host, &["run", "--rm", "hd"])), want);
    let text = ok(berth(&d.host, &["build", "-t", "hd", c]));
    assert_eq!(count(&text, " ---> Using cache"), 5, "{text}");
    // Another body: that step and what follows run again.
    write(
        &ctx,
        "Dockerfile",
        &dockerfile.replace("name=$WHO", "name=$WHO!"),
    );
    let text = ok(berth(&d.host, &["build", "-t", "hd", c]));
    assert_eq!(count(&text, " ---> Using cache"), 3, "{text}");
    assert!(ok(docker(&d.host, &["run", "--rm", "hd"])).contains("name=world!\n"));
    write(&ctx, "Dockerfile", "FROM busybox\nRUN <<EOF\nexit 5\n");
    let out = berth(&d.host, &["build", c]);
    assert!(
        stderr(&out).contains("dockerfile parse error line 2: unterminated heredoc <<EOF"),
        "{out:?}"
    );
}

#[test]
fn run_mounts_cache_bind_and_tmpfs() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let ctx = dir.path().join("ctx");
    write(&ctx, "data/x", "from the context\n");
    write(
        &ctx,
        "Dockerfile",
        "FROM busybox\nWORKDIR /w\nRUN --mount=type=cache,target=/cache sh -c 'echo run >> /cache/log; echo \"runs: $(busybox wc -l < /cache/log)\"'\nRUN --mount=type=bind,source=data,target=mnt busybox cat /w/mnt/x > /copied\nRUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/t && busybox ls /scratch'\nCMD [\"sh\", \"-c\", \"busybox cat /copied; busybox ls /; echo --; busybox ls -A /w\"]\n",
    );
    let c = ctx.to_str().unwrap();
    let text = build_ok(CLIS[0], &d.host, &["-t", "mnt", c]);
    assert!(text.contains("runs: 1\n"), "{text}");
    assert!(text.contains("\nt\n"), "the tmpfs is writable: {text}");
    // The mounts' contents and their mountpoints stay out of the image.
    let run = ok(docker(&d.host, &["run", "--rm", "mnt"]));
    assert!(run.starts_with("from the context\n"), "{run}");
    assert!(
        !run.contains("cache\n") && !run.contains("scratch\n") && run.ends_with("--\n"),
        "{run}"
    );
    // The cache mount outlives the build; a rebuild takes the cache mount step from the
    // build cache, and the bind step misses only when the bound content changes.
    let text = ok(berth(&d.host, &["build", "--no-cache", "-t", "mnt", c]));
    assert!(text.contains("runs: 2\n"), "{text}");
    let text = ok(berth(&d.host, &["build", "-t", "mnt", c]));
    assert_eq!(count(&text, " ---> Using cache"), 5, "{text}");
    write(&ctx, "data/x", "changed\n");
    let text = ok(berth(&d.host, &["build", "-t", "mnt", c]));
    assert_eq!(count(&text, " ---> Using cache"), 2, "{text}");
    assert!(ok(docker(&d.host, &["run", "--rm", "mnt"])).starts_with("changed\n"));
    for (spec, error) in [
        ("type=ssh", "type=ssh is not supported"),
        ("type=secret,id=s,required", "secret s: not found"),
        (
            "type=bind,source=../../etc,target=/x",
            "forbidden path outside the build context",
        ),
        ("type=bind,source=data,target=/x,rw", "rw is not supported"),
    ] {
        write(
            &ctx,
            "Dockerfile",
            &format!("FROM busybox\nRUN --mount={spec} true\n"),
        );
        let out = berth(&d.host, &["build", c]);
        assert!(
            !out.status.success() && stderr(&out).contains(error),
            "{spec}: {out:?}"
        );
    }
}

#[test]
fn onbuild_triggers_run_in_the_child_build() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let base = dir.path().join("base");
    write(
        &base,
        "Dockerfile",
        "FROM busybox\nONBUILD COPY app.txt /app/\nONBUILD RUN busybox cat /app/app.txt > /app/seen\n",
    );
    build_ok(CLIS[0], &d.host, &["-t", "onb", base.to_str().unwrap()]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(docker(&d.host, &["image", "inspect", "onb"]))).unwrap();
    assert_eq!(
        v[0]["Config"]["OnBuild"],
        serde_json::json!([
            "COPY app.txt /app/",
            "RUN busybox cat /app/app.txt > /app/seen"
        ])
    );
    let child = dir.path().join("child");
    write(&child, "app.txt", "child's\n");
    write(
        &child,
        "Dockerfile",
        "FROM onb\nCMD [\"busybox\", \"cat\", \"/app/seen\"]\n",
    );
    let text = build_ok(CLIS[0], &d.host, &["-t", "child", child.to_str().unwrap()]);
    assert!(text.contains("# Executing 2 build triggers\n"), "{text}");
    assert_eq!(ok(docker(&d.host, &["run", "--rm", "child"])), "child's\n");
    let v: serde_json::Value =
        serde_json::from_str(&ok(docker(&d.host, &["image", "inspect", "child"]))).unwrap();
    assert!(
        v[0]["Config"]["OnBuild"].is_null() || v[0]["Config"]["OnBuild"] == serde_json::json!([]),
        "{v}"
    );
    // A grandchild sees no triggers.
    let grand = dir.path().join("grand");
    write(&grand, "Dockerfile", "FROM child\nRUN echo grand\n");
    let text = ok(berth(&d.host, &["build", grand.to_str().unwrap()]));
    assert!(!text.contains("build trigger"), "{text}");
}

const PARITY: &str = r#"FROM busybox
MAINTAINER someone <a@b>
ARG V=one
ENV A=b C="d e"
ENV OLD old form value
LABEL k=v "x y"="z w"
EXPOSE 80 53/udp 8000-8001 443
HEALTHCHECK --interval=5s --retries=3 CMD wget -q x
HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --retries=10 CMD ["true", "a b"]
WORKDIR /app
USER 1000:1000
USER 0
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-ec"]
RUN echo "run $V $A"
SHELL ["/bin/sh", "-c"]
COPY a.txt /x/
COPY d /data/
COPY a.txt b.txt /m/
COPY --chown=1000:1000 a.txt /c
COPY link /l
COPY *.txt /w/
COPY a.txt d/ /two/
ADD a.txt /addx
VOLUME /vol
RUN echo hi > /vol/f; echo there > /made
ONBUILD RUN echo child
ENTRYPOINT ["sh", "-c"]
CMD echo shell form
HEALTHCHECK NONE
CMD ["a", "b c"]
"#;

/// The steps' history (text and size, the base image's left out) and the config keys a
/// Dockerfile sets, of the image `name` at `host` (berth or dockerd).
fn steps_and_config(host: &str, name: &str) -> (Vec<String>, serde_json::Value) {
    let history = ok(docker(
        host,
        &[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}|{{.Size}}",
            name,
        ],
    ));
    let base = ok(docker(host, &["history", "-q", "busybox"]))
        .lines()
        .count();
    let mut steps: Vec<String> = history.lines().map(str::to_string).collect();
    steps.truncate(steps.len() - base);
    let v: serde_json::Value =
        serde_json::from_str(&ok(docker(host, &["image", "inspect", name]))).unwrap();
    let c = &v[0]["Config"];
    let keys = [
        "ExposedPorts",
        "Healthcheck",
        "Volumes",
        "Labels",
        "WorkingDir",
        "User",
        "Entrypoint",
        "Cmd",
        "OnBuild",
        "StopSignal",
        "Shell",
    ];
    let mut config = serde_json::Map::new();
    for k in keys {
        config.insert(k.into(), c[k].clone());
    }
    let env: Vec<&serde_json::Value> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e.as_str().unwrap().starts_with("PATH="))
        .collect();
    config.insert("Env".into(), serde_json::json!(env));
    config.insert("Author".into(), v[0]["Author"].clone());
    config.insert(
        "ContainerConfig.Cmd".into(),
        v[0]["ContainerConfig"]["Cmd"].clone(),
    );
    (steps, serde_json::Value::Object(config))
}

#[test]
fn history_and_config_are_dockerds() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let dockerd = Dockerd::start(&dir.path().join("dockerd"));
    dockerd.docker_stdin(&["import", "-", "busybox"], &busybox_image("base", 1).layer);
    let ctx = dir.path().join("ctx");
    write(&ctx, "Dockerfile", PARITY);
    write(&ctx, "a.txt", "hello\n");
    write(&ctx, "b.txt", "b\n");
    write(&ctx, "d/sub/y", "y\n");
    std::os::unix::fs::symlink("a.txt", ctx.join("link")).unwrap();
    let c = ctx.to_str().unwrap();
    let args = [
        "build",
        "--network",
        "none",
        "--build-arg",
        "V=two",
        "-t",
        "parity",
        c,
    ];
    ok(cli(CLIS[0], &d.host, &args, None));
    ok(cli(CLIS[0], &dockerd.host, &args, None));
    let (ours, theirs) = (
        steps_and_config(&d.host, "parity"),
        steps_and_config(&dockerd.host, "parity"),
    );
    assert_eq!(ours.0, theirs.0, "history: berth (left), dockerd (right)");
    assert_eq!(ours.1, theirs.1, "config: berth (left), dockerd (right)");
    // The RUN after VOLUME wrote into an anonymous volume, which went with its container.
    for host in [&d.host, &dockerd.host] {
        assert_eq!(ok(docker(host, &["volume", "ls", "-q"])), "", "{host}");
        assert_eq!(ok(docker(host, &["ps", "-a", "-q"])), "", "{host}");
    }
}

#[test]
fn run_steps_get_the_builds_network_hosts_and_limits() {
    let (dir, d, ctx) = with_dockerfile("FROM busybox\nRUN busybox grep db.example /etc/hosts; busybox ls /sys/class/net; echo nofile $(ulimit -n); busybox df -k /dev/shm | busybox tail -1\n");
    let c = ctx.to_str().unwrap();
    let text = build_ok(
        CLIS[0],
        &d.host,
        &[
            "--rm=false",
            "--network",
            "none",
            "--add-host",
            "db.example:10.1.2.3",
            "--shm-size",
            "8m",
            "--ulimit",
            "nofile=512:1024",
            "--memory",
            "64m",
            "--cpu-shares",
            "512",
            c,
        ],
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("10.1.2.3") && l.ends_with("db.example")),
        "--add-host: {text}"
    );
    assert!(
        text.contains("\nlo\nnofile 512\n"),
        "--network none, --ulimit: {text}"
    );
    assert!(text.contains(" 8192 "), "--shm-size: {text}");
    // The kept step container carries the limits.
    let kept = ok(docker(&d.host, &["ps", "-a", "-q"]));
    let v: serde_json::Value =
        serde_json::from_str(&ok(docker(&d.host, &["inspect", kept.trim()]))).unwrap();
    let hc = &v[0]["HostConfig"];
    assert_eq!(
        (&hc["Memory"], &hc["CpuShares"], &hc["NetworkMode"]),
        (
            &serde_json::json!(67108864),
            &serde_json::json!(512),
            &serde_json::json!("none")
        ),
        "{hc}"
    );
    ok(docker(&d.host, &["rm", kept.trim()]));
    // berth's CLI, the same flags.
    let text = ok(berth(
        &d.host,
        &[
            "build",
            "--no-cache",
            "--network",
            "none",
            "--add-host",
            "db.example:10.9.9.9",
            c,
        ],
    ));
    assert!(
        text.contains("10.9.9.9") && text.contains("\nlo\nnofile "),
        "{text}"
    );
    // What the classic builder cannot do is refused in dockerd's words, before any step
    // (asked over the socket: the CLI may see its upload cut by the early answer).
    let tar = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(13);
        h.set_mode(0o644);
        b.append_data(&mut h, "Dockerfile", &b"FROM busybox\n"[..])
            .unwrap();
        b.into_inner().unwrap()
    };
    for (query, error) in [
        (
            "securityopt=seccomp%3Dunconfined",
            "does not support setting security options on build",
        ),
        ("isolation=hyperv", r#"Unsupported isolation: \"hyperv\""#),
        ("platform=foo", "unknown operating system or architecture"),
        (
            "squash=1",
            "squash is only supported with experimental mode",
        ),
    ] {
        use std::io::Read;
        let path = d.host.trim_start_matches("unix://");
        let mut sock = std::os::unix::net::UnixStream::connect(path).unwrap();
        let mut request = format!(
            "POST /v1.41/build?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            tar.len()
        )
        .into_bytes();
        request.extend_from_slice(&tar);
        sock.write_all(&request).unwrap();
        let mut answer = String::new();
        let _ = sock.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 400") && answer.contains(error),
            "{query}: {answer}"
        );
    }
    // The CLIs send the whole context before they read the answer: a refusal waits for it
    // (16 MiB here), or they see their upload cut ("broken pipe") instead of the error.
    let big = dir.path().join("big");
    write(&big, "Dockerfile", "FROM busybox\n");
    write(&big, "Bad.Dockerfile", "FROM busybox\nNOPE x\n");
    let noise: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(big.join("blob"), noise).unwrap();
    let b = big.to_str().unwrap();
    let bad = big.join("Bad.Dockerfile");
    let bad = bad.to_str().unwrap();
    for bin in CLIS {
        for (flags, error) in [
            (
                &["--security-opt", "seccomp=unconfined"][..],
                "does not support setting security options on build",
            ),
            (
                &["--platform", "foo"][..],
                "unknown operating system or architecture",
            ),
            (
                &["-f", bad][..],
                "dockerfile parse error line 2: unknown instruction: NOPE",
            ),
        ] {
            let out = build_cli(bin, &d.host, &[flags, &[b]].concat());
            let err = stderr(&out);
            assert!(
                !out.status.success() && err.contains(error) && !err.contains("broken pipe"),
                "{bin} {flags:?}: {err}"
            );
        }
    }
    assert_eq!(ok(docker(&d.host, &["ps", "-a", "-q"])), "");
}

#[test]
fn run_mounts_from_a_stage_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let ctx = dir.path().join("ctx");
    write(dir.path(), "secret.txt", "s3cret-value\n");
    write(&ctx, "f", "f\n");
    write(
        &ctx,
        "Dockerfile",
        "FROM busybox AS build\nRUN echo artifact > /out\nFROM busybox\nCOPY . /ctx\nRUN --mount=type=bind,from=build,target=/b busybox cat /b/out > /copied\nRUN --mount=type=secret,id=tok echo \"secret: $(busybox wc -c < /run/secrets/tok)\"\nRUN --mount=type=secret,id=tok,target=/tok,required echo \"again: $(busybox cat /tok)\"\nCMD [\"sh\", \"-c\", \"busybox cat /copied; busybox ls -A /ctx; busybox ls /\"]\n",
    );
    let c = ctx.to_str().unwrap();
    let secret = format!("id=tok,src={}", dir.path().join("secret.txt").display());
    let text = ok(berth(
        &d.host,
        &["build", "--secret", &secret, "-t", "sec", c],
    ));
    assert!(text.contains("secret: 13\n"), "{text}");
    assert!(text.contains("again: s3cret-value\n"), "{text}");
    let run = ok(docker(&d.host, &["run", "--rm", "sec"]));
    assert!(
        run.starts_with("artifact\nDockerfile\nf\n"),
        "the context without the secret: {run}"
    );
    assert!(
        !run.contains("run\n") && !run.contains("tok\n") && !run.contains("\nb\n"),
        "mountpoints left: {run}"
    );
    let saved = docker(&d.host, &["save", "sec"]);
    assert!(saved.status.success(), "{saved:?}");
    assert!(
        !saved.stdout.windows(12).any(|w| w == b"s3cret-value"),
        "the secret is in the image"
    );
    // A rebuild with another secret reuses the cache (the content is not in its key).
    write(dir.path(), "secret.txt", "other\n");
    let text = ok(berth(
        &d.host,
        &["build", "--secret", &secret, "-t", "sec", c],
    ));
    assert_eq!(count(&text, " ---> Using cache"), 6, "{text}");
    // Without it, the optional one is skipped and the required one fails.
    let out = berth(&d.host, &["build", "--no-cache", c]);
    assert!(
        !out.status.success() && stderr(&out).contains("secret tok: not found"),
        "{out:?}"
    );
    assert!(
        stdout(&out).contains("secret: \n") || stdout(&out).contains("can't open"),
        "{out:?}"
    );
}

/// An HTTP server on 127.0.0.1 for ADD's downloads: `/file.txt` (with a Last-Modified),
/// `/arch.tar.gz` (without), anything else 404. Its address; it serves until the test ends.
fn file_server() -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let gz = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        b.append_data(&mut h, "inner", &b"tar\n"[..]).unwrap();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&b.into_inner().unwrap()).unwrap();
        e.finish().unwrap()
    };
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) <= 2 {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, extra, body): (&str, &str, Vec<u8>) = match path.split('?').next() {
                Some("/file.txt") => (
                    "200 OK",
                    "Last-Modified: Thu, 02 Jan 2020 03:04:05 GMT\r\n",
                    b"remote body\n".to_vec(),
                ),
                Some("/arch.tar.gz") => ("200 OK", "", gz.clone()),
                _ => ("404 Not Found", "", b"nope\n".to_vec()),
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    addr
}

#[test]
fn add_downloads_urls_as_dockerd_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let dockerd = Dockerd::start(&dir.path().join("dockerd"));
    dockerd.docker_stdin(&["import", "-", "busybox"], &busybox_image("base", 1).layer);
    let server = file_server();
    let ctx = dir.path().join("ctx");
    write(
        &ctx,
        "Dockerfile",
        &format!(
            "FROM busybox\nADD http://{server}/file.txt /r/\nADD http://{server}/file.txt /named\nADD http://{server}/arch.tar.gz /a/\nADD http://{server}/file.txt?x=1 /q/\n"
        ),
    );
    let c = ctx.to_str().unwrap();
    let stat = [
        "run",
        "--rm",
        "url",
        "busybox",
        "stat",
        "-c",
        "%n %a %u:%g %s %Y",
        "/r/file.txt",
        "/named",
        "/a/arch.tar.gz",
        "/q/file.txt",
    ];
    let mut seen = Vec::new();
    for host in [&d.host, &dockerd.host] {
        build_ok(CLIS[0], host, &["--network", "none", "-t", "url", c]);
        let history = ok(docker(
            host,
            &["history", "--no-trunc", "--format", "{{.CreatedBy}}", "url"],
        ));
        let steps: Vec<String> = history.lines().take(4).map(str::to_string).collect();
        seen.push((steps, ok(docker(host, &stat))));
        // Unchanged content: every step from the cache, though downloaded again.
        let text = build_ok(CLIS[0], host, &["--network", "none", "-t", "url", c]);
        assert_eq!(count(&text, " ---> Using cache"), 4, "{host}: {text}");
    }
    assert_eq!(seen[0], seen[1], "berth (left), dockerd (right)");
    assert!(
        seen[0].1.contains("/r/file.txt 600 0:0 12 1577934245\n"),
        "{}",
        seen[0].1
    );
    // A download kept only with the digest asked for (from an ARG, as BuildKit expands it).
    use sha2::Digest;
    let body_sum = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(b"remote body\n"))
    );
    let other = format!("sha256:{}", hex::encode(sha2::Sha256::digest(b"other\n")));
    write(
        &ctx,
        "Dockerfile",
        &format!(
            "FROM busybox\nARG SUM={body_sum}\nADD --checksum=$SUM http://{server}/file.txt /sum/\nCMD [\"busybox\", \"cat\", \"/sum/file.txt\"]\n"
        ),
    );
    build_ok(CLIS[0], &d.host, &["--network", "none", "-t", "summed", c]);
    assert_eq!(
        ok(docker(&d.host, &["run", "--rm", "summed"])),
        "remote body\n"
    );
    for (text, error) in [
        (
            format!("FROM busybox\nADD http://{server}/missing /m\n"),
            format!("failed to GET http://{server}/missing with status 404 Not Found: nope"),
        ),
        (
            format!("FROM busybox\nCOPY http://{server}/file.txt /c\n"),
            "source can't be a URL for COPY".to_string(),
        ),
        // --checksum, BuildKit's, with its words.
        (
            format!("FROM busybox\nADD --checksum={other} http://{server}/file.txt /c\n"),
            format!("digest mismatch {body_sum}: {other}"),
        ),
        (
            format!("FROM busybox\nCOPY --checksum={body_sum} a /c\n"),
            "checksum can't be specified for COPY".to_string(),
        ),
        (
            format!("FROM busybox\nADD --checksum={body_sum} http://{server}/file.txt http://{server}/file.txt /c/\n"),
            "checksum can't be specified for multiple sources".to_string(),
        ),
        (
            format!("FROM busybox\nADD --checksum={body_sum} Dockerfile /c\n"),
            "checksum can't be specified for non-HTTP(S) sources".to_string(),
        ),
        (
            format!("FROM busybox\nADD --checksum=sha256:abc http://{server}/file.txt /c\n"),
            "invalid checksum digest format: sha256:abc".to_string(),
        ),
    ] {
        write(&ctx, "Dockerfile", &text);
        let out = build_cli(CLIS[0], &d.host, &[c]);
        assert!(
            !out.status.success() && stderr(&out).contains(&error),
            "{text}: {out:?}"
        );
    }
}
