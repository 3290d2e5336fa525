//! The build scenario: a clean build (`--no-cache`), a no-change rebuild and a rebuild after
//! one file of the context changed, of a 12-step Dockerfile on a 50 MB / 5 000-file context,
//! by `berth build` and the docker CLI (20.10, classic builder) on berth, the docker CLI on
//! Debian's dockerd (its classic builder), and Debian's buildah (`bud --layers`), round-robin.
//! RUN steps have no network in all of them. This is a benchmark: it asserts nothing about
//! speed.
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_integration::oci_image;

use crate::containers::quantile;
use crate::daemons::{timed, BerthDaemon, Dockerd};

const IMAGE: &str = "bench/busybox:latest";
const DIRS: usize = 50;
const FILES_PER_DIR: usize = 100;
const FILE_SIZE: usize = 10_000;

const DOCKERFILE: &str = r#"FROM bench/busybox:latest
ARG MODE=release
ENV APP=/app MODE=$MODE
LABEL bench=build
WORKDIR /app
COPY src/ /app/src/
RUN busybox find /app/src -type f | busybox wc -l > /app/count
COPY main.txt /app/
RUN busybox md5sum /app/main.txt /app/src/d0/f0 > /app/sums
USER 1000
EXPOSE 8080
CMD ["busybox", "cat", "/app/sums"]
"#;

/// Bytes that do not compress (xorshift), so no tool gains by its compressor.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn context(dir: &Path) -> Result<(), String> {
    let err = |e: std::io::Error| format!("context in {}: {e}", dir.display());
    for d in 0..DIRS {
        let sub = dir.join(format!("src/d{d}"));
        fs::create_dir_all(&sub).map_err(err)?;
        for f in 0..FILES_PER_DIR {
            let seed = (d * FILES_PER_DIR + f) as u64;
            fs::write(sub.join(format!("f{f}")), noise(seed, FILE_SIZE)).map_err(err)?;
        }
    }
    fs::write(dir.join("main.txt"), "main\n").map_err(err)?;
    fs::write(dir.join("Dockerfile"), DOCKERFILE).map_err(err)?;
    fs::write(dir.join(".dockerignore"), "*.swp\n").map_err(err)
}

/// One builder under test: how to run a build with or without the cache.
struct Builder {
    name: &'static str,
    command: Box<dyn Fn(bool) -> Command>,
}

/// buildah with a storage of its own under `dir`.
fn buildah(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("/usr/bin/buildah");
    c.arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .args(["--storage-driver", "overlay"])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Removes buildah's images and what its storage left mounted.
fn buildah_cleanup(dir: &Path) {
    let _ = buildah(dir, &["rm", "-a"]).stdout(Stdio::null()).output();
    let _ = buildah(dir, &["rmi", "-a", "-f"])
        .stdout(Stdio::null())
        .output();
    for sub in ["root", "runroot"] {
        let _ = Command::new("umount")
            .arg("-R")
            .arg(dir.join(sub))
            .stderr(Stdio::null())
            .status();
    }
}

pub fn run(work: &Path, supervisor: &Path, rounds: usize) {
    println!(
        "\nbuild: clean, no-change and one-file-changed builds of a 12-step Dockerfile, \
         {} files / {} MB context",
        DIRS * FILES_PER_DIR,
        DIRS * FILES_PER_DIR * FILE_SIZE / 1_000_000
    );
    let dir = work.join("build");
    let result = scenario(&dir, supervisor, rounds);
    buildah_cleanup(&dir.join("buildah"));
    if let Err(e) = result {
        println!("failed: {e}");
    }
}

fn scenario(dir: &Path, supervisor: &Path, rounds: usize) -> Result<(), String> {
    let ctx = dir.join("ctx");
    context(&ctx)?;
    let archive = dir.join("busybox.tar");
    oci_image::copy_to(
        &oci_image::busybox("latest"),
        &format!("docker-archive:{}:{IMAGE}", archive.display()),
    );
    let archive_s = archive.to_string_lossy().to_string();
    let berth = BerthDaemon::start(&dir.join("berth"), supervisor)?;
    let docker = Dockerd::start(&dir.join("docker"))?;
    timed(&mut berth.berth(&["load", "-i", &archive_s]), "berth load")?;
    timed(
        &mut docker.docker(&["load", "-i", &archive_s]),
        "docker load",
    )?;
    let bdir = dir.join("buildah");
    timed(
        &mut buildah(
            &bdir,
            &["pull", "-q", &format!("docker-archive:{archive_s}")],
        ),
        "buildah pull",
    )?;
    let c = ctx.to_string_lossy().to_string();
    let with = move |base: Vec<String>, no_cache: bool| -> Vec<String> {
        let mut a = base;
        if no_cache {
            a.push("--no-cache".into());
        }
        a.push(c.clone());
        a
    };
    let builders = [
        Builder {
            name: "berth build",
            command: {
                let (bin, host) = (supervisor.to_path_buf(), berth.host.clone());
                let with = with.clone();
                Box::new(move |no_cache| {
                    let mut cmd = Command::new(&bin);
                    cmd.args(["-H", &host]).args(with(
                        vec!["build".into(), "-t".into(), "bench/app".into()],
                        no_cache,
                    ));
                    cmd
                })
            },
        },
        Builder {
            name: "docker CLI on berth",
            command: {
                let host = berth.host.clone();
                let with = with.clone();
                Box::new(move |no_cache| docker_build(&host, with(docker_args(), no_cache)))
            },
        },
        Builder {
            name: "dockerd (classic)",
            command: {
                let host = docker.host.clone();
                let with = with.clone();
                Box::new(move |no_cache| docker_build(&host, with(docker_args(), no_cache)))
            },
        },
        Builder {
            name: "buildah bud",
            command: {
                let bdir = bdir.clone();
                let with = with.clone();
                Box::new(move |no_cache| {
                    let args = with(
                        [
                            "bud",
                            "--layers",
                            // Debian's crun refuses this host's hybrid cgroups.
                            "--runtime",
                            "/usr/sbin/runc",
                            "--network",
                            "none",
                            "-q",
                            "-t",
                            "bench/app",
                        ]
                        .map(String::from)
                        .to_vec(),
                        no_cache,
                    );
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    buildah(&bdir, &args)
                })
            },
        },
    ];
    const KINDS: [&str; 3] = ["clean", "no change", "1 file changed"];
    let mut times = vec![vec![Vec::new(); KINDS.len()]; builders.len()];
    let mut failed: Vec<Option<String>> = vec![None; builders.len()];
    let changed = ctx.join("src/d7/f42");
    for round in 0..rounds + 1 {
        for (k, b) in builders.iter().enumerate() {
            if failed[k].is_some() {
                continue;
            }
            let one = (|| -> Result<[Duration; 3], String> {
                let clean = timed(&mut (b.command)(true), b.name)?;
                let same = timed(&mut (b.command)(false), b.name)?;
                let seed = 1_000_000 + (round * builders.len() + k) as u64;
                fs::write(&changed, noise(seed, FILE_SIZE)).map_err(|e| e.to_string())?;
                let after = timed(&mut (b.command)(false), b.name)?;
                Ok([clean, same, after])
            })();
            match one {
                Ok(t) if round > 0 => {
                    for (kind, d) in t.into_iter().enumerate() {
                        times[k][kind].push(d);
                    }
                }
                Ok(_) => {}
                Err(e) => failed[k] = Some(e),
            }
        }
    }
    println!("({rounds} rounds each after one warm-up, interleaved; p50 ms)");
    println!(
        "{:<22} {:>10} {:>10} {:>15}   vs dockerd / vs buildah",
        "builder", KINDS[0], KINDS[1], KINDS[2]
    );
    let p50 = |k: usize, kind: usize| quantile(&times[k][kind], 0.5);
    for (k, b) in builders.iter().enumerate() {
        if let Some(e) = &failed[k] {
            println!("{:<22} failed: {e}", b.name);
            continue;
        }
        let cells: Vec<String> = (0..KINDS.len())
            .map(|kind| p50(k, kind).map_or("-".into(), |ms| format!("{ms:.0}")))
            .collect();
        let ratio = |reference: usize| -> String {
            (0..KINDS.len())
                .map(|kind| match (p50(k, kind), p50(reference, kind)) {
                    (Some(a), Some(r)) if r > 0.0 => format!("{:.2}x", a / r),
                    _ => "-".into(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{:<22} {:>10} {:>10} {:>15}   {} / {}",
            b.name,
            cells[0],
            cells[1],
            cells[2],
            ratio(2),
            ratio(3)
        );
    }
    Ok(())
}

fn docker_args() -> Vec<String> {
    ["build", "--network", "none", "-t", "bench/app"]
        .map(String::from)
        .to_vec()
}

/// Debian's docker CLI with the classic builder.
fn docker_build(host: &str, args: Vec<String>) -> Command {
    let mut cmd = Command::new("/usr/bin/docker");
    cmd.env("DOCKER_HOST", host)
        .env("DOCKER_BUILDKIT", "0")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}
