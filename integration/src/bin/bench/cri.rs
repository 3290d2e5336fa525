//! The CRI scenario: containerd 1.6's CRI plugin with each runtime handler (`runc`,
//! `berth-runc`, `berth`; see `berth_integration::cri`). Pod start is RunPodSandbox of a CNI
//! pod, CreateContainer and StartContainer of one sleeping container; teardown is
//! StopPodSandbox and RemovePodSandbox (containers included); p50/p90 over `pods` pods, one at
//! a time. Then the memory (Pss) of `idle` idle pods: their shims, and the pods' own processes
//! (pause and the container).
use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_integration::cri::{images, Cri, HANDLERS};
use k8s_cri::v1::*;

use crate::containers::quantile;

pub fn run(pods: usize, idle: usize) {
    println!("\nCRI: containerd 1.6 CRI plugin, {pods} pods one at a time, then {idle} idle pods, per handler");
    let cri = Cri::start("bench");
    let mut starts: HashMap<&str, f64> = HashMap::new();
    let mut shims: HashMap<&str, u64> = HashMap::new();
    for handler in HANDLERS {
        match lifecycle(&cri, handler, pods) {
            Ok((start, teardown)) => {
                let q = |t: &[Duration], p| quantile(t, p).unwrap_or(f64::NAN);
                println!(
                    "  {handler:<11} pod start p50 {:7.1} ms  p90 {:7.1} ms   teardown p50 {:7.1} ms  p90 {:7.1} ms",
                    q(&start, 0.5),
                    q(&start, 0.9),
                    q(&teardown, 0.5),
                    q(&teardown, 0.9)
                );
                starts.insert(handler, q(&start, 0.5));
            }
            Err(e) => println!("  {handler:<11} failed: {e}"),
        }
        match idle_memory(&cri, handler, idle) {
            Ok((shim_kib, pod_kib, count)) => {
                println!(
                    "  {handler:<11} {idle} idle pods: {count} shims {:.1} MiB, pause + container processes {:.1} MiB (Pss)",
                    shim_kib as f64 / 1024.0,
                    pod_kib as f64 / 1024.0
                );
                shims.insert(handler, shim_kib);
            }
            Err(e) => println!("  {handler:<11} idle pods failed: {e}"),
        }
    }
    if let (Some(b), Some(r)) = (starts.get("berth"), starts.get("runc")) {
        println!("  pod start p50 berth/runc = {:.2}x", b / r);
    }
    if let (Some(b), Some(r)) = (shims.get("berth"), shims.get("runc")) {
        println!(
            "  shim memory berth/runc = {:.2}x",
            *b as f64 / (*r).max(1) as f64
        );
    }
}

/// Start and teardown durations of `n` pods run one after the other.
fn lifecycle(cri: &Cri, handler: &str, n: usize) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let (mut start, mut teardown) = (Vec::new(), Vec::new());
    for i in 0..n {
        let t = Instant::now();
        let pod = start_pod(cri, handler, &format!("b{i}"))?;
        start.push(t.elapsed());
        let t = Instant::now();
        remove_pod(cri, &pod)?;
        teardown.push(t.elapsed());
    }
    Ok((start, teardown))
}

/// Pss (KiB) of this handler's shims and of the pods' processes with `n` idle pods, and the
/// number of shims.
fn idle_memory(cri: &Cri, handler: &str, n: usize) -> Result<(u64, u64, usize), String> {
    let mut pods = Vec::new();
    for i in 0..n {
        pods.push(start_pod(cri, handler, &format!("idle{i}"))?);
    }
    std::thread::sleep(Duration::from_secs(2));
    let shims = cri.shims();
    let shim_kib = shims.iter().map(|p| pss_kib(*p)).sum();
    let pod_kib = cri
        .cgroup_dirs()
        .iter()
        .filter(|d| d.starts_with("/sys/fs/cgroup/memory"))
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .map(pss_kib)
        .sum();
    for pod in &pods {
        remove_pod(cri, pod)?;
    }
    Ok((shim_kib, pod_kib, shims.len()))
}

fn pss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// RunPodSandbox (CNI network, pod pid/ipc) + CreateContainer + StartContainer.
fn start_pod(cri: &Cri, handler: &str, name: &str) -> Result<String, String> {
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{handler}"),
            namespace: "berth-bench".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: cri.dir.join("logs").display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("{}/{name}-{handler}", cri.cgroup_parent),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = |what: &str, e: tonic::Status| format!("{what} {name}: {}", e.message());
    let pod = cri
        .call(cri.runtime().run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        }))
        .map_err(|e| err("RunPodSandbox", e))?
        .pod_sandbox_id;
    let container = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "sleep".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: images::BUSYBOX.into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "100000".into()],
        log_path: format!("{name}-{handler}.log"),
        ..Default::default()
    };
    let id = cri
        .call(cri.runtime().create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container),
            sandbox_config: Some(config),
        }))
        .map_err(|e| err("CreateContainer", e))?
        .container_id;
    cri.call(
        cri.runtime()
            .start_container(StartContainerRequest { container_id: id }),
    )
    .map_err(|e| err("StartContainer", e))?;
    Ok(pod)
}

fn remove_pod(cri: &Cri, pod: &str) -> Result<(), String> {
    cri.call(cri.runtime().stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.into(),
    }))
    .map_err(|e| format!("StopPodSandbox: {}", e.message()))?;
    cri.call(cri.runtime().remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.into(),
    }))
    .map_err(|e| format!("RemovePodSandbox: {}", e.message()))?;
    Ok(())
}
