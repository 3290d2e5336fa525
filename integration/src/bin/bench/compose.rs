//! The compose scenario: `up -d` and `down -v` of a 5-service project (a dependency chain,
//! the default network, a named volume) by `berth compose` on berth, docker-compose 1.29 on
//! berth, and docker-compose 1.29 on Debian's dockerd, round-robin. Both daemons run in
//! network namespaces of their own (`unshare --net`), since the project makes a bridge
//! network. This is a benchmark: it asserts nothing about speed.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_integration::oci_image;

use crate::containers::quantile;
use crate::daemons::{timed, BerthDaemon, Dockerd};

const IMAGE: &str = "bench/busybox:latest";

/// Five services, each waiting on the one before; SIGKILL to stop, so `down` times the
/// tools and daemons, not a grace period.
fn project() -> String {
    let mut text = String::from("services:\n");
    for i in 1..=5 {
        text.push_str(&format!(
            "  s{i}:\n    image: {IMAGE}\n    command: [\"busybox\", \"sleep\", \"3600\"]\n    \
             stop_signal: SIGKILL\n    volumes: [\"data:/data\"]\n"
        ));
        if i > 1 {
            text.push_str(&format!("    depends_on: [s{}]\n", i - 1));
        }
    }
    text.push_str("volumes:\n  data:\n");
    text
}

struct Tool {
    name: &'static str,
    cli: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Tool {
    fn cmd(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.cli);
        c.args(&self.args)
            .args(["-p", "bench"])
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }
}

pub fn run(work: &Path, supervisor: &Path, rounds: usize) {
    println!("\ncompose: up -d and down -v of 5 services (berth compose, docker-compose 1.29)");
    if let Err(e) = scenario(work, supervisor, rounds) {
        println!("failed: {e}");
    }
}

fn scenario(work: &Path, supervisor: &Path, rounds: usize) -> Result<(), String> {
    let dir = work.join("compose");
    let app = dir.join("app");
    fs::create_dir_all(&app).map_err(|e| format!("create {}: {e}", app.display()))?;
    fs::write(app.join("compose.yaml"), project()).map_err(|e| e.to_string())?;
    let archive = dir.join("busybox.tar");
    oci_image::copy_to(
        &oci_image::busybox("latest"),
        &format!("docker-archive:{}:{IMAGE}", archive.display()),
    );
    let netns = ["unshare", "--net", "--"];
    let berth = BerthDaemon::start_wrapped(&dir.join("berth"), supervisor, &netns)?;
    let docker = Dockerd::start_wrapped(&dir.join("docker"), &netns)?;
    let archive = archive.to_string_lossy().to_string();
    timed(&mut berth.berth(&["load", "-i", &archive]), "berth load")?;
    timed(&mut docker.docker(&["load", "-i", &archive]), "docker load")?;
    let compose = PathBuf::from("/usr/bin/docker-compose");
    let tools = [
        Tool {
            name: "berth compose",
            cli: supervisor.to_path_buf(),
            args: vec!["-H".into(), berth.host.clone(), "compose".into()],
            env: Vec::new(),
        },
        Tool {
            name: "docker-compose on berth",
            cli: compose.clone(),
            args: Vec::new(),
            env: vec![("DOCKER_HOST".into(), berth.host.clone())],
        },
        Tool {
            name: "docker-compose on dockerd",
            cli: compose,
            args: Vec::new(),
            env: vec![("DOCKER_HOST".into(), docker.host.clone())],
        },
    ];
    let mut up = vec![Vec::new(); tools.len()];
    let mut down = vec![Vec::new(); tools.len()];
    let mut failed: Vec<Option<String>> = vec![None; tools.len()];
    for round in 0..rounds + 1 {
        for (k, t) in tools.iter().enumerate() {
            if failed[k].is_some() {
                continue;
            }
            let timings = timed(&mut t.cmd(&app, &["up", "-d"]), t.name)
                .and_then(|u| timed(&mut t.cmd(&app, &["down", "-v"]), t.name).map(|d| (u, d)));
            match timings {
                Ok((u, d)) if round > 0 => {
                    up[k].push(u);
                    down[k].push(d);
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = t.cmd(&app, &["down", "-v"]).output();
                    failed[k] = Some(e);
                }
            }
        }
    }
    print_results(&tools, &up, &down, &failed, rounds);
    Ok(())
}

fn print_results(
    tools: &[Tool],
    up: &[Vec<Duration>],
    down: &[Vec<Duration>],
    failed: &[Option<String>],
    rounds: usize,
) {
    println!("({rounds} rounds each after one warm-up, interleaved)");
    println!(
        "{:<26} {:>12} {:>14}   vs docker-compose on dockerd (up+down)",
        "tool", "up -d ms", "down -v ms"
    );
    let total = |k: usize| Some(quantile(&up[k], 0.5)? + quantile(&down[k], 0.5)?);
    let reference = total(tools.len() - 1);
    for (k, t) in tools.iter().enumerate() {
        if let Some(e) = &failed[k] {
            println!("{:<26} failed: {e}", t.name);
            continue;
        }
        let (Some(u), Some(d)) = (quantile(&up[k], 0.5), quantile(&down[k], 0.5)) else {
            println!("{:<26} no samples", t.name);
            continue;
        };
        let vs = match (reference, k + 1 < tools.len()) {
            (Some(r), true) => format!("   {:.2}x", (u + d) / r),
            _ => String::new(),
        };
        println!("{:<26} {u:>12.1} {d:>14.1}{vs}", t.name);
    }
}
