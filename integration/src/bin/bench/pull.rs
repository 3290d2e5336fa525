//! The pull scenario: the same multi-layer image (generated: ≥ 100 MiB, ≥ 10k files) pulled
//! and unpacked from a private `docker-registry` on 127.0.0.1 by `berth`, by Debian's dockerd,
//! and by `skopeo copy` + `umoci unpack`, round-robin; plus each daemon's idle resident memory
//! (dockerd counted together with the containerd it starts).
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_integration::oci_image::{self, Layer, Layout, LAYER_GZIP};
use berth_integration::registry::Registry;

use crate::daemons::{rss_kib, timed, BerthDaemon, Dockerd};

const REPO: &str = "bench/big";

/// Files per layer and layers: 8 × 1400 files averaging 9.5 KiB ≈ 103 MiB, 11200 files.
const LAYERS: usize = 8;
const FILES_PER_LAYER: usize = 1400;
const MEAN_FILE: usize = 9_700;

pub fn run(work: &Path, supervisor: &Path, rounds: usize) {
    println!(
        "\npull + unpack of a {LAYERS}-layer image ({} files, ~{} MiB) from docker-registry on 127.0.0.1",
        LAYERS * FILES_PER_LAYER,
        (LAYERS * FILES_PER_LAYER * MEAN_FILE) >> 20
    );
    if let Err(e) = scenario(work, supervisor, rounds) {
        println!("failed: {e}");
    }
}

fn scenario(work: &Path, supervisor: &Path, rounds: usize) -> Result<(), String> {
    let dir = work.join("pull");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let layout = generate();
    let registry = Registry::start();
    oci_image::push(&layout, &registry.host(), REPO, None);
    let image = format!("{}/{REPO}:latest", registry.host());

    let berth = BerthDaemon::start(&dir.join("berth"), supervisor)?;
    let docker = Dockerd::start(&dir.join("docker"))?;
    let berth_idle = rss_kib(berth.child.id());
    let docker_idle = docker.rss_kib();

    let mut times: [Vec<Duration>; 3] = Default::default();
    for round in 0..rounds {
        // Each pull starts with no dirty pages of the previous one to write back.
        settle();
        times[0].push(berth.timed_pull(&image)?);
        settle();
        times[1].push(docker.timed_pull(&image)?);
        settle();
        times[2].push(skopeo_umoci(&dir.join(format!("skopeo-{round}")), &image)?);
        berth.forget(&image)?;
        docker.forget(&image)?;
    }
    let names = ["berth", "dockerd", "skopeo+umoci"];
    println!(
        "{:<13} {:>10} {:>10}   vs berth (median)",
        "puller", "median s", "min s"
    );
    let median = |t: &[Duration]| {
        let mut s: Vec<f64> = t.iter().map(Duration::as_secs_f64).collect();
        s.sort_by(f64::total_cmp);
        (s[s.len() / 2], s[0])
    };
    let (berth_median, _) = median(&times[0]);
    for (name, t) in names.iter().zip(&times) {
        let (m, min) = median(t);
        let samples: Vec<String> = t
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect();
        println!(
            "{name:<13} {m:>10.2} {min:>10.2}   {name}/berth = {:.2}x   (s: {})",
            m / berth_median,
            samples.join(" ")
        );
    }
    println!("\ndaemon resident memory, idle after start (VmRSS)");
    println!("berth         {:>8} KiB", berth_idle);
    println!(
        "dockerd+ctrd  {:>8} KiB   dockerd/berth = {:.1}x",
        docker_idle,
        docker_idle as f64 / berth_idle.max(1) as f64
    );
    println!(
        "berth after {rounds} pulls: {} KiB",
        rss_kib(berth.child.id())
    );
    Ok(())
}

/// A deterministic pseudo-random image: incompressible file bodies, varied sizes, nested dirs.
fn generate() -> Layout {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let layers: Vec<Layer> = (0..LAYERS)
        .map(|layer| Layer {
            tar: oci_image::random_tar(&format!("l{layer}"), FILES_PER_LAYER, MEAN_FILE, &mut seed),
            media_type: LAYER_GZIP,
        })
        .collect();
    oci_image::image("latest", &layers)
}

/// Writes back every dirty page (untimed), so no puller pays for another's writes.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// `skopeo copy` into an OCI layout, then `umoci unpack` into a bundle.
fn skopeo_umoci(dir: &Path, image: &str) -> Result<Duration, String> {
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let layout = dir.join("oci");
    let start = Instant::now();
    timed(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{image}"))
            .arg(format!("oci:{}:bench", layout.display())),
        "skopeo copy",
    )?;
    timed(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:bench", layout.display()))
            .arg(dir.join("bundle")),
        "umoci unpack",
    )?;
    let took = start.elapsed();
    let _ = std::io::stdout().flush();
    let _ = fs::remove_dir_all(dir);
    Ok(took)
}
