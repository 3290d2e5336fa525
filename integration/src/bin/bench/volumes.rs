//! The volumes scenario: berth and Debian's dockerd, each on a private socket and data root,
//! both through the docker CLI, side by side:
//! - `run --rm --network none IMG busybox true` with 5 named volumes mounted (`-v vK:/vK`,
//!   made beforehand) and with none, round-robin, p50 and p90 of each and the cost of the
//!   volumes (difference of the medians);
//! - copy-up: the first `run --rm -v NEWVOL:/data IMG busybox true` on an image whose `/data`
//!   holds ~100 MB in 10k files, so the new volume is filled from it, with `sync` before
//!   each run so nobody pays for another's dirty pages; the volume is checked to hold every
//!   file afterwards (untimed).
//!
//! This is a benchmark: it asserts nothing about speed.
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_integration::oci_image::{self, Layer, LAYER_TAR};

use crate::containers::{docker_cli, print_ratios, quantile, Engine};
use crate::daemons::{timed, BerthDaemon, Dockerd};

const IMAGE: &str = "bench/copyup:latest";
const VOLUMES: usize = 5;
/// The copy-up directory: 10 000 files averaging 10 000 bytes ≈ 100 MB under /data.
const FILES: usize = 10_000;
const MEAN_FILE: usize = 10_000;
const WARMUP: usize = 2;

pub fn run(work: &Path, supervisor: &Path, starts: usize, copyups: usize) {
    println!(
        "\nvolumes: berth and dockerd (runc) through the docker CLI, --network none; \
         {VOLUMES} named volumes, copy-up of {FILES} files / ~{} MB",
        FILES * MEAN_FILE / 1_000_000
    );
    if let Err(e) = scenario(work, supervisor, starts, copyups) {
        println!("failed: {e}");
    }
}

fn scenario(work: &Path, supervisor: &Path, starts: usize, copyups: usize) -> Result<(), String> {
    let dir = work.join("volumes");
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let archive = dir.join("copyup.tar");
    oci_image::copy_to(
        &image(),
        &format!("docker-archive:{}:{IMAGE}", archive.display()),
    );
    let berth = BerthDaemon::start(&dir.join("berth"), supervisor)?;
    let docker = Dockerd::start(&dir.join("docker"))?;
    let engines = [
        docker_cli("berth", &berth.host, &dir.join("berth")),
        docker_cli("dockerd", &docker.host, &dir.join("docker")),
    ];
    for e in &engines {
        e.ok(&["load", "-q", "-i", &archive.to_string_lossy()])?;
        for k in 1..=VOLUMES {
            e.ok(&["volume", "create", &format!("v{k}")])?;
        }
    }
    if starts > 0 {
        start_with_volumes(&engines, starts);
    }
    if copyups > 0 {
        copy_up(&engines, copyups);
    }
    for e in &engines {
        e.remove_all();
        let _ = e.ok(&["volume", "prune", "-f", "--filter", "all=1"]);
    }
    Ok(())
}

/// busybox, then one plain layer of `FILES` pseudo-random files under `/data/vol/dNN/`.
fn image() -> oci_image::Layout {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let data = Layer {
        tar: oci_image::random_tar("vol", FILES, MEAN_FILE, &mut seed),
        media_type: LAYER_TAR,
    };
    oci_image::image("latest", &[Layer::gzip(&oci_image::busybox_rootfs()), data])
}

/// `run --rm --network none [OPTIONS] IMAGE busybox true`.
fn run_true(e: &Engine, options: &[String]) -> Command {
    let mut args: Vec<&str> = vec!["run", "--rm", "--network", "none"];
    args.extend(options.iter().map(String::as_str));
    args.extend([IMAGE, "busybox", "true"]);
    e.cmd(&args)
}

fn start_with_volumes(engines: &[Engine], rounds: usize) {
    let mounts: Vec<String> = (1..=VOLUMES)
        .flat_map(|k| ["-v".to_string(), format!("v{k}:/v{k}")])
        .collect();
    let variants: [(&str, &[String]); 2] = [("none", &[]), ("5 volumes", &mounts)];
    // times[engine][variant]
    let mut times = vec![vec![Vec::<Duration>::new(); variants.len()]; engines.len()];
    let mut failed: Vec<Option<String>> = vec![None; engines.len()];
    for round in 0..rounds + WARMUP {
        for (k, e) in engines.iter().enumerate() {
            for (v, (_, options)) in variants.iter().enumerate() {
                if failed[k].is_some() {
                    continue;
                }
                match timed(&mut run_true(e, options), e.name) {
                    Ok(d) if round >= WARMUP => times[k][v].push(d),
                    Ok(_) => {}
                    Err(err) => failed[k] = Some(err),
                }
            }
        }
    }
    println!("\nrun --rm {IMAGE} busybox true, with {VOLUMES} named volumes (-v vK:/vK) and without ({rounds} each, interleaved)");
    println!(
        "{:<10} {:>14} {:>14} {:>16} {:>16} {:>12}",
        "engine", "none p50 ms", "none p90 ms", "5 vols p50 ms", "5 vols p90 ms", "cost ms"
    );
    let mut none = Vec::new();
    let mut five = Vec::new();
    for (k, e) in engines.iter().enumerate() {
        if let Some(err) = &failed[k] {
            println!("{:<10} failed: {err}", e.name);
            continue;
        }
        let q = |v: usize, p: f64| quantile(&times[k][v], p).unwrap_or(f64::NAN);
        println!(
            "{:<10} {:>14.1} {:>14.1} {:>16.1} {:>16.1} {:>12.1}",
            e.name,
            q(0, 0.5),
            q(0, 0.9),
            q(1, 0.5),
            q(1, 0.9),
            q(1, 0.5) - q(0, 0.5)
        );
        none.push((e.name, q(0, 0.5)));
        five.push((e.name, q(1, 0.5)));
    }
    print!("none:     ");
    print_ratios(&none);
    print!("5 vols:   ");
    print_ratios(&five);
}

fn copy_up(engines: &[Engine], rounds: usize) {
    let mut times = vec![Vec::<Duration>::new(); engines.len()];
    let mut failed: Vec<Option<String>> = vec![None; engines.len()];
    for round in 0..rounds {
        for (k, e) in engines.iter().enumerate() {
            if failed[k].is_some() {
                continue;
            }
            let name = format!("copyup-{round}");
            settle();
            let run = timed(
                &mut run_true(e, &["-v".into(), format!("{name}:/data")]),
                e.name,
            );
            let checked = run.and_then(|d| check_copied(e, &name).map(|()| d));
            match checked {
                Ok(d) => times[k].push(d),
                Err(err) => failed[k] = Some(err),
            }
            let _ = e.ok(&["volume", "rm", &name]);
        }
    }
    println!(
        "\ncopy-up: first run --rm -v NEWVOL:/data {IMAGE} busybox true, /data = {FILES} files, ~{} MB ({rounds} each, interleaved)",
        FILES * MEAN_FILE / 1_000_000
    );
    println!(
        "{:<10} {:>10} {:>10}   (ms)",
        "engine", "median ms", "min ms"
    );
    let mut medians = Vec::new();
    for (k, e) in engines.iter().enumerate() {
        if let Some(err) = &failed[k] {
            println!("{:<10} failed: {err}", e.name);
            continue;
        }
        let (m, min) = (
            quantile(&times[k], 0.5).unwrap_or(f64::NAN),
            quantile(&times[k], 0.0).unwrap_or(f64::NAN),
        );
        let samples: Vec<String> = times[k]
            .iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
            .collect();
        println!(
            "{:<10} {m:>10.1} {min:>10.1}   ({})",
            e.name,
            samples.join(" ")
        );
        medians.push((e.name, m));
    }
    print_ratios(&medians);
}

/// The volume holds all `FILES` files after its first mount (untimed).
fn check_copied(e: &Engine, volume: &str) -> Result<(), String> {
    let out = e.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{volume}:/check"),
        IMAGE,
        "busybox",
        "sh",
        "-c",
        "busybox find /check -type f | busybox wc -l",
    ])?;
    if out.trim() != FILES.to_string() {
        return Err(format!(
            "{}: volume {volume} holds {out} files after copy-up, not {FILES}",
            e.name
        ));
    }
    Ok(())
}

/// Writes back every dirty page (untimed).
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}
