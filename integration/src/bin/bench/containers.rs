//! The container-engine scenario: the same busybox image loaded into `berth`, Debian's dockerd
//! and podman (with crun), then, side by side:
//! - `run --rm IMG busybox true`, round-robin (berth through the docker CLI and its own CLI);
//! - 50 `run -d` started at once (wall time);
//! - the stack's memory with 10 and 100 idle containers: the proportional set size (PSS) of
//!   every process the engine runs for them — daemon, containerd, shims, conmon — but not the
//!   containers' own processes;
//! - `logs` of a container that wrote 100 MB.
//!
//! Every engine gets `--network none` (berth's networks are a later issue), so all three do
//! the same work. This is a benchmark: it asserts nothing about speed.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_integration::oci_image;

use crate::daemons::{timed, BerthDaemon, Dockerd};

const IMAGE: &str = "bench/busybox:latest";
const PARALLEL: usize = 50;
const IDLE: [usize; 2] = [10, 100];
const LOG_BYTES: u64 = 100_000_000;
const SLEEP: [&str; 2] = ["sleep", "3600"];

/// One engine, driven through a CLI.
pub struct Engine {
    pub name: &'static str,
    /// The CLI binary, the arguments that point it at this engine, and its environment.
    pub cli: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// A path every process of this engine's stack names on its command line.
    pub marker: PathBuf,
    /// Flags an engine needs for `run` to work on this host at all.
    pub run_flags: Vec<String>,
    /// A command the CLI runs under (e.g. `nsenter --net=… --`), or none.
    pub wrapper: Vec<String>,
}

impl Engine {
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.cli);
                c
            }
            None => Command::new(&self.cli),
        };
        cmd.args(&self.args).args(args).stdin(Stdio::null());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `run OPTIONS --network none IMAGE busybox COMMAND…`.
    fn run(&self, options: &[&str], command: &[&str]) -> Command {
        let mut args = vec!["run"];
        args.extend(self.run_flags.iter().map(String::as_str));
        args.extend(options);
        args.extend(["--network", "none", IMAGE, "busybox"]);
        args.extend(command);
        self.cmd(&args)
    }

    /// Runs `cmd` to success; its stdout, or an error naming the engine and its stderr.
    pub fn output(&self, mut cmd: Command) -> Result<String, String> {
        let what = format!("{cmd:?}");
        let out = cmd
            .output()
            .map_err(|e| format!("{}: {what}: {e}", self.name))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("{}: {what}: {}", self.name, err.trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn ok(&self, args: &[&str]) -> Result<String, String> {
        self.output(self.cmd(args))
    }

    /// Removes every container of the engine (untimed).
    pub fn remove_all(&self) {
        let ids = self.ok(&["ps", "-aq"]).unwrap_or_default();
        let mut args = vec!["rm", "-f"];
        args.extend(ids.split_whitespace());
        if args.len() > 2 {
            if let Err(e) = self.ok(&args) {
                println!("{:<10} cleanup: {e}", self.name);
            }
        }
    }
}

pub fn run(work: &Path, supervisor: &Path, rounds: usize) {
    println!("\ncontainer engines: berth, dockerd (runc), podman (crun); --network none");
    if let Err(e) = scenario(work, supervisor, rounds) {
        println!("failed: {e}");
    }
}

fn scenario(work: &Path, supervisor: &Path, rounds: usize) -> Result<(), String> {
    let dir = work.join("engines");
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let archive = dir.join("busybox.tar");
    let layout = oci_image::busybox("latest");
    oci_image::copy_to(
        &layout,
        &format!("docker-archive:{}:{IMAGE}", archive.display()),
    );
    let berth = BerthDaemon::start(&dir.join("berth"), supervisor)?;
    let docker = Dockerd::start(&dir.join("docker"))?;
    let berth_cli = Engine {
        name: "berth-cli",
        cli: supervisor.to_path_buf(),
        args: vec!["-H".into(), berth.host.clone()],
        env: Vec::new(),
        marker: dir.join("berth"),
        run_flags: Vec::new(),
        wrapper: Vec::new(),
    };
    let engines = [
        docker_cli("berth", &berth.host, &dir.join("berth")),
        docker_cli("dockerd", &docker.host, &dir.join("docker")),
        podman(&dir.join("podman"))?,
    ];
    for e in &engines {
        e.ok(&["load", "-i", &archive.to_string_lossy()])?;
    }
    let mut with_cli: Vec<&Engine> = engines.iter().collect();
    with_cli.insert(1, &berth_cli);
    run_rm(&with_cli, rounds);
    // The rest compares engines, not CLIs: berth once, through the docker CLI.
    parallel_starts(&engines);
    idle_memory(&engines);
    logs(&engines);
    engines.iter().for_each(Engine::remove_all);
    Ok(())
}

pub fn docker_cli(name: &'static str, host: &str, dir: &Path) -> Engine {
    Engine {
        name,
        cli: PathBuf::from("/usr/bin/docker"),
        args: Vec::new(),
        env: vec![("DOCKER_HOST".into(), host.into())],
        marker: dir.to_path_buf(),
        run_flags: Vec::new(),
        wrapper: Vec::new(),
    }
}

/// podman on private storage. Explicit `--ulimit`s: as root it asks for RLIMIT_NOFILE 1048576
/// and RLIMIT_NPROC 4194304 by default, which this host (no CAP_SYS_RESOURCE) refuses, and
/// `--ulimit host` is refused too.
pub fn podman(dir: &Path) -> Result<Engine, String> {
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut args: Vec<String> = Vec::new();
    for (flag, sub) in [
        ("--root", "root"),
        ("--runroot", "run"),
        ("--tmpdir", "tmp"),
    ] {
        args.extend([
            flag.to_string(),
            dir.join(sub).to_string_lossy().into_owned(),
        ]);
    }
    for (flag, value) in [
        ("--runtime", "crun"),
        ("--cgroup-manager", "cgroupfs"),
        ("--events-backend", "none"),
    ] {
        args.extend([flag.to_string(), value.to_string()]);
    }
    Ok(Engine {
        name: "podman",
        cli: PathBuf::from("/usr/bin/podman"),
        args,
        env: Vec::new(),
        marker: dir.to_path_buf(),
        run_flags: [
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
        ]
        .map(String::from)
        .to_vec(),
        wrapper: Vec::new(),
    })
}

/// `run --rm IMG busybox true`, round-robin across engines, after two warm-up rounds.
fn run_rm(engines: &[&Engine], rounds: usize) {
    let mut times = vec![Vec::new(); engines.len()];
    let mut failed: Vec<Option<String>> = vec![None; engines.len()];
    for i in 0..rounds + 2 {
        for (k, e) in engines.iter().enumerate() {
            if failed[k].is_some() {
                continue;
            }
            match timed(&mut e.run(&["--rm"], &["true"]), e.name) {
                Ok(d) if i >= 2 => times[k].push(d),
                Ok(_) => {}
                Err(err) => failed[k] = Some(err),
            }
        }
    }
    println!("\nrun --rm {IMAGE} busybox true ({rounds} each, interleaved)");
    println!(
        "{:<10} {:>10} {:>10}   vs dockerd (median)",
        "engine", "median ms", "p90 ms"
    );
    let dockerd = engines.iter().position(|e| e.name == "dockerd");
    let reference = dockerd.and_then(|k| quantile(&times[k], 0.5));
    for (k, e) in engines.iter().enumerate() {
        let (median, p90) = (quantile(&times[k], 0.5), quantile(&times[k], 0.9));
        match (&failed[k], median, p90) {
            (Some(err), _, _) => println!("{:<10} failed: {err}", e.name),
            (None, Some(m), Some(p90)) => {
                let vs = reference
                    .filter(|_| e.name != "dockerd")
                    .map(|r| format!("   {}/dockerd = {:.2}x", e.name, m / r))
                    .unwrap_or_default();
                println!("{:<10} {m:>10.1} {p90:>10.1}{vs}", e.name);
            }
            _ => println!("{:<10} no samples", e.name),
        }
    }
}

/// `PARALLEL` × `run -d` at once; the wall time until every one of them returned.
fn parallel_starts(engines: &[Engine]) {
    println!("\n{PARALLEL} containers started at once with run -d (wall time)");
    let mut results = Vec::new();
    for e in engines {
        let start = Instant::now();
        let children: Vec<_> = (0..PARALLEL)
            .map(|i| {
                let name = format!("par-{i}");
                e.run(&["-d", "--name", &name], &SLEEP)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
            })
            .collect();
        let mut error = None;
        for child in children {
            let out = child.and_then(|c| c.wait_with_output());
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => error = Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
                Err(err) => error = Some(err.to_string()),
            }
        }
        let took = start.elapsed();
        match error {
            Some(err) => println!("{:<10} failed: {err}", e.name),
            None => {
                println!("{:<10} {:>8.2} s", e.name, took.as_secs_f64());
                results.push((e.name, took.as_secs_f64()));
            }
        }
        e.remove_all();
    }
    print_ratios(&results);
}

/// The stack's PSS with 10, then 100, idle containers per engine.
fn idle_memory(engines: &[Engine]) {
    println!("\nstack memory (PSS of daemon, containerd, shims, conmon; not the containers)");
    println!(
        "{:<10} {:>14} {:>14}",
        "engine", "10 idle (MiB)", "100 idle (MiB)"
    );
    let mut at_most = Vec::new();
    for e in engines {
        let mut line = format!("{:<10}", e.name);
        let mut started = 0;
        for n in IDLE {
            let mut error = None;
            while started < n && error.is_none() {
                let name = format!("idle-{started}");
                error = e.output(e.run(&["-d", "--name", &name], &SLEEP)).err();
                started += 1;
            }
            if let Some(err) = error {
                line.push_str(&format!(" failed: {err}"));
                break;
            }
            // Let every process settle (shims release their startup pages when idle).
            std::thread::sleep(Duration::from_secs(3));
            let mib = stack_pss_kib(&e.marker) as f64 / 1024.0;
            line.push_str(&format!(" {mib:>14.1}"));
            if n == IDLE[IDLE.len() - 1] {
                at_most.push((e.name, mib));
            }
        }
        println!("{line}");
        e.remove_all();
    }
    print_ratios(&at_most);
}

/// `logs` of a container that wrote `LOG_BYTES` in 64-byte lines, read to the end.
fn logs(engines: &[Engine]) {
    println!(
        "\nlogs of a container that wrote {} MB",
        LOG_BYTES / 1_000_000
    );
    let script = format!(
        "busybox yes 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc \
         | busybox head -c {LOG_BYTES}"
    );
    let mut results = Vec::new();
    for e in engines {
        let made = e
            .output(e.run(&["-d", "--name", "logger"], &["sh", "-c", &script]))
            .and_then(|_| e.ok(&["wait", "logger"]));
        if let Err(err) = made {
            println!("{:<10} failed: {err}", e.name);
            e.remove_all();
            continue;
        }
        let start = Instant::now();
        let out = e.cmd(&["logs", "logger"]).stderr(Stdio::null()).output();
        let took = start.elapsed().as_secs_f64();
        match out {
            Ok(o) if o.status.success() => {
                let read = o.stdout.len();
                println!("{:<10} {took:>8.2} s   ({read} bytes read)", e.name);
                results.push((e.name, took));
            }
            Ok(o) => println!(
                "{:<10} failed: {}",
                e.name,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(err) => println!("{:<10} failed: {err}", e.name),
        }
        e.remove_all();
    }
    print_ratios(&results);
}

/// Sum of `Pss:` of every process whose command line names `marker`.
fn stack_pss_kib(marker: &Path) -> u64 {
    let marker = marker.to_string_lossy().into_owned();
    let Ok(procs) = fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .flatten()
        .filter(|p| p.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|p| {
            fs::read(p.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        })
        .filter_map(|p| fs::read_to_string(p.path().join("smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum()
}

pub fn quantile(times: &[Duration], q: f64) -> Option<f64> {
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    (!ms.is_empty()).then(|| ms[((ms.len() - 1) as f64 * q).round() as usize])
}

/// "berth/dockerd = 0.20x, berth/podman = 0.50x" for a figure where lower is better.
pub fn print_ratios(results: &[(&str, f64)]) {
    let Some((_, berth)) = results.iter().find(|(n, _)| *n == "berth") else {
        return;
    };
    let parts: Vec<String> = results
        .iter()
        .filter(|(n, _)| *n != "berth")
        .map(|(n, v)| format!("berth/{n} = {:.2}x", berth / v.max(f64::MIN_POSITIVE)))
        .collect();
    if !parts.is_empty() {
        println!("           {}", parts.join(", "));
    }
}
