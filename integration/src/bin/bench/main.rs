//! `berth-bench`: times berth-runtime against runc and crun on the same bundles (`make bench`).
//!
//! Scenarios, each run round-robin across runtimes so machine noise hits all of them alike:
//! - lifecycle: `create` → `start` → wait for `/bin/true` to exit → `delete`, per container;
//! - floor: `unshare -fmuinp chroot ROOTFS /bin/true`, the least any runtime can do;
//! - peak RSS of the `create` process (wait4's `ru_maxrss`) and of the container init before it
//!   exec'd (the kernel carries the high-water mark across exec);
//! - resources: the lifecycle again with a memory, pids and cpu-quota limit (cgroup work);
//! - exec: `exec ID /bin/true` into one running container per runtime.
//! - shims: containerd-shim-berth-v2 against containerd-shim-runc-v2 (see `shim.rs`);
//! - engines: `run --rm`, 50 parallel `run -d`, stack memory with 10 and 100 idle containers
//!   and `logs` of 100 MB through berth, dockerd and podman (see `containers.rs`);
//! - pull: an image of ≥ 100 MiB and ≥ 10k files pulled and unpacked by `berth`, `dockerd` and
//!   `skopeo` + `umoci`, and the daemons' idle memory (see `pull.rs`);
//! - compose: `up -d` and `down -v` of a 5-service project by `berth compose`, docker-compose
//!   1.29 on berth and docker-compose 1.29 on dockerd (see `compose.rs`).
//! - networks: `run -d` on a user bridge, DNS lookups of a container's name, a published
//!   port's throughput (iperf3) and round trip from 127.0.0.1, the memory of 50 published
//!   ports, by berth, dockerd (docker-proxy) and podman (see `networks.rs`);
//! - build: clean, no-change and one-file-changed builds of a 12-step Dockerfile on a 50 MB /
//!   5k-file context by berth, dockerd's classic builder and buildah (see `build.rs`).
//! - volumes: `run --rm` with 5 named volumes vs none, and copy-up of a 100 MB, 10k-file image
//!   directory into a new volume, by berth and dockerd (see `volumes.rs`).
//!
//! - runc's default: `runc spec`'s config unchanged but for terminal off and `/bin/true`, through
//!   `run` (create, start, wait and delete in one process) back to back and 100 ms apart (a
//!   burst of starts shares the kernel's cgroup-attach grace period), and through the lifecycle.
//!
//! On a hybrid cgroup host whose cgroup2 mount has controllers, crun refuses to run at all, so the
//! bench gives those controllers v1 hierarchies in its own mount namespace while it runs
//! (systemd's hybrid layout; `--host-layout` turns this off). Each runtime gets its own `--root`
//! in a temp dir.
//!
//! A runtime that fails is reported as `failed: <error>` and skipped for the rest of that
//! scenario; the bench exits non-zero if any runtime failed the plain lifecycle.
//! This is a benchmark, not a test: it asserts nothing about speed.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod build;
mod compose;
mod containers;
mod cri;
mod daemons;
mod networks;
mod pull;
mod shim;
mod volumes;

const USAGE: &str =
    "usage: berth-bench [--berth PATH] [--supervisor PATH] [--runc PATH] [--crun PATH] [-n N]
                   [--warmup N] [--pulls N] [--pull-only] [--engines N] [--engines-only]
                   [--compose N] [--compose-only] [--host-layout] [--cri N] [--cri-idle N]
                   [--cri-only] [--build N] [--build-only] [--networks N] [--dns-queries N]
                   [--iperf-secs N] [--networks-only] [--volumes N] [--copyups N]
                   [--volumes-only]

  --berth PATH   berth-runtime binary (default target/release/berth-runtime)
  --supervisor PATH  berth (daemon + CLI) binary (default target/release/berth)
  --runc PATH    runc binary (default: runc on PATH)
  --crun PATH    crun binary (default: crun on PATH)
  -n N           containers per runtime and scenario (default 100)
  --warmup N     untimed rounds before each scenario (default 3)
  --pulls N      pulls per puller in the pull scenario (default 3; 0 skips it)
  --pull-only    run only the pull scenario
  --engines N    run --rm rounds per engine in the berth/dockerd/podman scenario (default 20;
                 0 skips it)
  --engines-only run only the berth/dockerd/podman scenario
  --compose N    up -d + down -v rounds per tool in the compose scenario (berth compose,
                 docker-compose 1.29 on berth and on dockerd; default 10; 0 skips it)
  --compose-only run only the compose scenario
  --host-layout  leave hugetlb on a hybrid host's cgroup2 mount (crun then fails)
  --cri N        pods per handler in the CRI scenario (containerd's CRI with runc, berth-runc,
                 berth: pod start and teardown p50/p90; default 50; 0 skips it)
  --cri-idle N   idle pods per handler whose memory is measured (default 20)
  --cri-only     run only the CRI scenario
  --build N      rounds of clean / no-change / one-file-changed builds per builder (berth build,
                 the docker CLI on berth, dockerd's classic builder, buildah; default 3; 0 skips)
  --build-only   run only the build scenario
  --networks N   run -d rounds per engine in the networks scenario (berth, dockerd, podman on a
                 user bridge: start, DNS, published port, memory of 50 ports; default 20;
                 0 skips it)
  --dns-queries N  DNS queries per engine there (default 1000); as many one-byte round trips
  --iperf-secs N seconds of each iperf3 run there (default 5)
  --networks-only  run only the networks scenario
  --volumes N    run --rm rounds per engine with 5 named volumes and with none (berth and
                 dockerd through the docker CLI; default 20; 0 skips it)
  --copyups N    copy-ups of a 100 MB, 10k-file image directory into a new volume per engine
                 (default 3)
  --volumes-only run only the volumes scenario";

/// crun refuses a hybrid layout whose cgroup2 mount has controllers; see `HugetlbV1`.
const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// One runtime under test.
struct Runtime {
    name: String,
    bin: PathBuf,
    /// Its private `--root` state directory.
    root: PathBuf,
    /// Where its stderr (and the container's) goes; read back on failure.
    log: PathBuf,
}

/// Command-line options.
struct Options {
    berth: PathBuf,
    supervisor: PathBuf,
    runc: PathBuf,
    crun: PathBuf,
    iterations: usize,
    warmup: usize,
    pulls: usize,
    pull_only: bool,
    engines: usize,
    engines_only: bool,
    compose: usize,
    compose_only: bool,
    host_layout: bool,
    cri: usize,
    cri_idle: usize,
    cri_only: bool,
    build: usize,
    build_only: bool,
    networks: usize,
    dns_queries: usize,
    iperf_secs: usize,
    networks_only: bool,
    volumes: usize,
    copyups: usize,
    volumes_only: bool,
}

/// The lifecycle's steps, timed separately to show where the time goes.
const PHASES: [&str; 4] = ["create", "start", "wait", "delete"];

/// Durations of one runtime's runs of a scenario.
#[derive(Default)]
struct Timings {
    /// Whole runs.
    totals: Vec<Duration>,
    /// `phases[k]`: step `PHASES[k]` of each run (empty for single-step scenarios).
    phases: Vec<Vec<Duration>>,
}

impl Timings {
    fn push(&mut self, total: Duration, phases: Vec<Duration>) {
        self.totals.push(total);
        self.phases.resize(phases.len(), Vec::new());
        for (all, one) in self.phases.iter_mut().zip(phases) {
            all.push(one);
        }
    }
}

/// What one scenario produced for one runtime.
enum Outcome {
    Timings(Timings),
    Failed(String),
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1).collect()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("berth-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("berth-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: Vec<String>) -> Result<Options, String> {
    let mut opts = Options {
        berth: PathBuf::from("target/release/berth-runtime"),
        supervisor: PathBuf::from("target/release/berth"),
        runc: PathBuf::from("runc"),
        crun: PathBuf::from("crun"),
        iterations: 100,
        warmup: 3,
        pulls: 3,
        pull_only: false,
        engines: 20,
        engines_only: false,
        compose: 10,
        compose_only: false,
        host_layout: false,
        cri: 50,
        cri_idle: 20,
        cri_only: false,
        build: 3,
        build_only: false,
        networks: 20,
        dns_queries: 1000,
        iperf_secs: 5,
        networks_only: false,
        volumes: 20,
        copyups: 3,
        volumes_only: false,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--berth" => opts.berth = value()?.into(),
            "--supervisor" => opts.supervisor = value()?.into(),
            "--pulls" => opts.pulls = parse_count(&flag, &value()?)?,
            "--runc" => opts.runc = value()?.into(),
            "--crun" => opts.crun = value()?.into(),
            "-n" | "--iterations" => opts.iterations = parse_count(&flag, &value()?)?,
            "--warmup" => opts.warmup = parse_count(&flag, &value()?)?,
            "--host-layout" => opts.host_layout = true,
            "--pull-only" => opts.pull_only = true,
            "--engines" => opts.engines = parse_count(&flag, &value()?)?,
            "--engines-only" => opts.engines_only = true,
            "--compose" => opts.compose = parse_count(&flag, &value()?)?,
            "--compose-only" => opts.compose_only = true,
            "--cri" => opts.cri = parse_count(&flag, &value()?)?,
            "--cri-idle" => opts.cri_idle = parse_count(&flag, &value()?)?,
            "--cri-only" => opts.cri_only = true,
            "--networks" => opts.networks = parse_count(&flag, &value()?)?,
            "--dns-queries" => opts.dns_queries = parse_count(&flag, &value()?)?,
            "--iperf-secs" => opts.iperf_secs = parse_count(&flag, &value()?)?,
            "--networks-only" => opts.networks_only = true,
            "--volumes" => opts.volumes = parse_count(&flag, &value()?)?,
            "--copyups" => opts.copyups = parse_count(&flag, &value()?)?,
            "--volumes-only" => opts.volumes_only = true,
            "--build" => opts.build = parse_count(&flag, &value()?)?,
            "--build-only" => opts.build_only = true,
            "-h" | "--help" => return Err("help".into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if opts.iterations == 0 {
        return Err("-n must be at least 1".into());
    }
    Ok(opts)
}

fn parse_count(flag: &str, v: &str) -> Result<usize, String> {
    v.parse()
        .map_err(|_| format!("{flag} {v:?}: not a non-negative integer"))
}

/// Runs every scenario; `Ok(false)` when a runtime failed the plain lifecycle.
fn run(opts: &Options) -> Result<bool, String> {
    let work = WorkDir::create()?;
    run_in(opts, &work.0)
}

/// The bench's private temp dir (rootfs, bundles, runtime roots), removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("berth-bench-{}", std::process::id()));
        fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            eprintln!("berth-bench: remove {}: {e}", self.0.display());
        }
    }
}

fn run_in(opts: &Options, work: &Path) -> Result<bool, String> {
    if opts.pull_only {
        pull::run(work, &opts.supervisor, opts.pulls.max(1));
        return Ok(true);
    }
    // Needs no crun, so no hugetlb hierarchy either.
    if opts.compose_only {
        compose::run(work, &absolute(&opts.supervisor)?, opts.compose.max(1));
        return Ok(true);
    }
    // podman runs runc there: no hugetlb hierarchy needed either.
    if opts.networks_only {
        let settings = network_settings(opts, opts.networks.max(1));
        networks::run(work, &absolute(&opts.supervisor)?, &settings);
        return Ok(true);
    }
    if opts.volumes_only {
        volumes::run(
            work,
            &absolute(&opts.supervisor)?,
            opts.volumes,
            opts.copyups,
        );
        return Ok(true);
    }
    if opts.cri_only {
        cri::run(opts.cri.max(1), opts.cri_idle);
        return Ok(true);
    }
    // RUN steps need a runtime only; crun is not among them.
    if opts.build_only {
        build::run(work, &absolute(&opts.supervisor)?, opts.build.max(1));
        return Ok(true);
    }
    become_subreaper()?;
    let _hugetlb_v1 = if opts.host_layout {
        None
    } else {
        HugetlbV1::mount(work)?
    };
    if opts.engines_only {
        containers::run(work, &absolute(&opts.supervisor)?, opts.engines.max(1));
        return Ok(true);
    }
    let runtimes = runtimes(opts, work)?;
    let rootfs = work.join("rootfs");
    berth_integration::rootfs::busybox(&rootfs)
        .map_err(|e| format!("busybox rootfs in {}: {e}", rootfs.display()))?;
    let plain = write_bundle(&work.join("bundle-true"), &rootfs, &["/bin/true"], None)?;
    let limited = write_bundle(
        &work.join("bundle-limits"),
        &rootfs,
        &["/bin/true"],
        Some(limits()),
    )?;
    let sleeper = write_bundle(
        &work.join("bundle-sleep"),
        &rootfs,
        &["/bin/sleep", "3600"],
        None,
    )?;

    println!(
        "berth-bench: {} containers per runtime and scenario, {} warm-up rounds, interleaved",
        opts.iterations, opts.warmup
    );
    for rt in &runtimes {
        println!(
            "  {:<6} {} ({})",
            rt.name,
            rt.bin.display(),
            version(&rt.bin)
        );
    }
    println!("  load average at start: {}", load_average());

    let floor = measure_floor(&rootfs, opts)?;
    let life = round_robin(&runtimes, opts, |rt, id| lifecycle(rt, &plain, id));
    print_table(
        "lifecycle: create, start, wait for /bin/true, delete",
        &runtimes,
        &life,
        Some(&floor),
    );
    print_rss(&runtimes, &plain);
    let res = round_robin(&runtimes, opts, |rt, id| lifecycle(rt, &limited, id));
    print_table(
        "lifecycle with memory 64M + pids 64 + cpu quota 50ms/100ms",
        &runtimes,
        &res,
        None,
    );
    let runc_default = runc_spec_bundle(&work.join("bundle-runc-spec"), &rootfs, &runtimes[1])?;
    let run = round_robin(&runtimes, opts, |rt, id| {
        run_foreground(rt, &runc_default, id)
    });
    print_table(
        "run /bin/true with runc spec's default config (terminal off)",
        &runtimes,
        &run,
        None,
    );
    // Starts in a burst share the kernel's cgroup-attach grace period (a pid written to
    // cgroup.procs right after another's does not wait for one): spaced out, as a user's
    // starts are, each runtime that writes a pid pays it.
    let spaced = round_robin_spaced(&runtimes, opts, Duration::from_millis(100), |rt, id| {
        run_foreground(rt, &runc_default, id)
    });
    print_table(
        "run /bin/true with runc spec's default config, each 100 ms after the previous",
        &runtimes,
        &spaced,
        None,
    );
    let life_default = round_robin(&runtimes, opts, |rt, id| lifecycle(rt, &runc_default, id));
    print_table(
        "lifecycle with runc spec's default config (terminal off)",
        &runtimes,
        &life_default,
        None,
    );
    let exec = exec_latency(&runtimes, &sleeper, opts);
    print_table(
        "exec /bin/true into a running container",
        &runtimes,
        &exec,
        None,
    );
    shim_scenario(opts, work, &rootfs, &runtimes[0].bin);
    if opts.engines > 0 {
        containers::run(work, &absolute(&opts.supervisor)?, opts.engines);
    }
    if opts.pulls > 0 {
        pull::run(work, &opts.supervisor, opts.pulls);
    }
    if opts.compose > 0 {
        compose::run(work, &absolute(&opts.supervisor)?, opts.compose);
    }
    if opts.cri > 0 {
        cri::run(opts.cri, opts.cri_idle);
    }
    if opts.build > 0 {
        build::run(work, &absolute(&opts.supervisor)?, opts.build);
    }
    if opts.networks > 0 {
        let settings = network_settings(opts, opts.networks);
        networks::run(work, &absolute(&opts.supervisor)?, &settings);
    }
    if opts.volumes > 0 || opts.copyups > 0 {
        volumes::run(
            work,
            &absolute(&opts.supervisor)?,
            opts.volumes,
            opts.copyups,
        );
    }
    println!(
        "\nload average at end: {} (2+ on this 2-core VM inflates every figure)",
        load_average()
    );
    Ok(life.iter().all(|o| matches!(o, Outcome::Timings(_))))
}

fn network_settings(opts: &Options, starts: usize) -> networks::Settings {
    networks::Settings {
        starts,
        queries: opts.dns_queries.max(1),
        iperf_secs: opts.iperf_secs.max(1) as u32,
        round_trips: opts.dns_queries.max(1),
    }
}

/// Resolves and checks the three runtimes; runc and crun missing is an error, not a skip.
fn runtimes(opts: &Options, work: &Path) -> Result<Vec<Runtime>, String> {
    let named = [
        ("berth", &opts.berth),
        ("runc", &opts.runc),
        ("crun", &opts.crun),
    ];
    named
        .into_iter()
        .map(|(name, bin)| {
            let bin = absolute(bin).map_err(|_| {
                format!(
                    "{name}: {} not found{}",
                    bin.display(),
                    if name == "berth" {
                        " (build it: cargo build --release -p berth-runtime, or pass --berth)"
                    } else {
                        " (install the Debian package: apt-get install runc crun)"
                    }
                )
            })?;
            let root = work.join(format!("state-{name}"));
            fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
            Ok(Runtime {
                name: name.to_string(),
                bin,
                log: work.join(format!("{name}.stderr")),
                root,
            })
        })
        .collect()
}

/// The absolute path of a binary given by path or found on `PATH`.
fn absolute(bin: &Path) -> Result<PathBuf, String> {
    resolve(bin)
        .and_then(|b| fs::canonicalize(b).ok())
        .ok_or_else(|| format!("{} not found", bin.display()))
}

/// A path as given if it has a slash, else looked up on `PATH`.
fn resolve(bin: &Path) -> Option<PathBuf> {
    if bin.components().count() > 1 {
        return bin.is_file().then(|| bin.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(bin))
            .find(|p| p.is_file())
    })
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every figure.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "version unknown".into())
}

// ---- bundles ------------------------------------------------------------------------------

/// Writes `dir/config.json`: `runc spec`'s defaults (namespaces, mounts, masked and read-only
/// paths, capabilities, rlimits, device cgroup) but for its `/sys/fs/cgroup` mount, no
/// terminal, `args`, optional resources.
fn write_bundle(
    dir: &Path,
    rootfs: &Path,
    args: &[&str],
    resources: Option<Value>,
) -> Result<PathBuf, String> {
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut config = spec(rootfs, args);
    if let Some(extra) = resources {
        let res = &mut config["linux"]["resources"];
        for (k, v) in extra.as_object().into_iter().flatten() {
            res[k] = v.clone();
        }
    }
    let path = dir.join("config.json");
    let text = serde_json::to_string_pretty(&config).map_err(|e| format!("config: {e}"))?;
    fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(dir.to_path_buf())
}

/// `dir/config.json` as `runc spec` writes it, but with the terminal off, `/bin/true` and `rootfs`.
fn runc_spec_bundle(dir: &Path, rootfs: &Path, runc: &Runtime) -> Result<PathBuf, String> {
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let out = Command::new(&runc.bin)
        .args(["spec", "--bundle"])
        .arg(dir)
        .output()
        .map_err(|e| format!("spawn {} spec: {e}", runc.bin.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{} spec: {}", runc.bin.display(), err.trim()));
    }
    let path = dir.join("config.json");
    let text = fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut config: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["/bin/true"]);
    config["root"]["path"] = json!(rootfs);
    let text = serde_json::to_string_pretty(&config).map_err(|e| format!("config: {e}"))?;
    fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(dir.to_path_buf())
}

fn spec(rootfs: &Path, args: &[&str]) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": rootfs, "readonly": true},
        "hostname": "bench",
        "mounts": mounts(),
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

fn mounts() -> Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]}
    ])
}

/// The issue-3 limits: memory 64 MiB, 64 pids, half a CPU.
fn limits() -> Value {
    json!({
        "memory": {"limit": 64 * 1024 * 1024},
        "pids": {"limit": 64},
        "cpu": {"quota": 50_000, "period": 100_000}
    })
}

// ---- running the runtimes ---------------------------------------------------------------

/// Runs `scenario` `warmup + iterations` times per runtime, round-robin, timing each call.
/// The scenario returns the durations of its steps, if it has several.
/// A runtime's first failure ends its part of the scenario.
fn round_robin(
    runtimes: &[Runtime],
    opts: &Options,
    scenario: impl Fn(&Runtime, &str) -> Result<Vec<Duration>, String>,
) -> Vec<Outcome> {
    round_robin_spaced(runtimes, opts, Duration::ZERO, scenario)
}

/// `round_robin` with an untimed pause of `gap` before each call.
fn round_robin_spaced(
    runtimes: &[Runtime],
    opts: &Options,
    gap: Duration,
    scenario: impl Fn(&Runtime, &str) -> Result<Vec<Duration>, String>,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = runtimes
        .iter()
        .map(|_| Outcome::Timings(Timings::default()))
        .collect();
    for i in 0..opts.warmup + opts.iterations {
        for (rt, outcome) in runtimes.iter().zip(outcomes.iter_mut()) {
            let Outcome::Timings(times) = outcome else {
                continue;
            };
            let id = format!("bench-{}-{}-{i}", std::process::id(), rt.name);
            std::thread::sleep(gap);
            let start = Instant::now();
            match scenario(rt, &id) {
                Ok(phases) if i >= opts.warmup => times.push(start.elapsed(), phases),
                Ok(_) => {}
                Err(e) => *outcome = Outcome::Failed(e),
            }
            reap_orphans();
        }
    }
    outcomes
}

/// One container's life: create, start, wait for its init, delete; returns each step's time.
fn lifecycle(rt: &Runtime, bundle: &Path, id: &str) -> Result<Vec<Duration>, String> {
    let mut clock = Instant::now();
    let mut lap = || {
        let now = Instant::now();
        std::mem::replace(&mut clock, now).elapsed()
    };
    let pid = create(rt, bundle, id).map(|(pid, _)| pid)?;
    let created = lap();
    runtime_ok(rt, &["start", id]).inspect_err(|_| force_delete(rt, id))?;
    let started = lap();
    let exited = wait_exit(rt, id, pid);
    let waited = lap();
    let deleted = runtime_ok(rt, &["delete", id]);
    let phases = vec![created, started, waited, lap()];
    exited.and(deleted).map(|()| phases)
}

/// `run --bundle B ID` in the foreground: create, start, wait and delete in one process.
fn run_foreground(rt: &Runtime, bundle: &Path, id: &str) -> Result<Vec<Duration>, String> {
    runtime_ok(rt, &["run", "--bundle", path_str(bundle)?, id])
        .inspect_err(|_| force_delete(rt, id))
        .map(|()| Vec::new())
}

/// Waits for the container's init, which must exit 0.
fn wait_exit(rt: &Runtime, id: &str, pid: i32) -> Result<(), String> {
    let (status, _) =
        wait4(pid).map_err(|e| format!("{}: wait for container {id}: {e}", rt.name))?;
    if status != 0 {
        return Err(format!(
            "{}: container {id} exited with wait status {status:#x}",
            rt.name
        ));
    }
    Ok(())
}

/// `create --bundle B --pid-file P ID`; returns the init's pid and the create process's rusage.
fn create(rt: &Runtime, bundle: &Path, id: &str) -> Result<(i32, libc::rusage), String> {
    let pid_file = rt.root.join(format!("{id}.pid"));
    let args = [
        "create",
        "--bundle",
        path_str(bundle)?,
        "--pid-file",
        path_str(&pid_file)?,
        id,
    ];
    let child = spawn(rt, &args)?;
    let (status, usage) =
        wait4(child.id() as i32).map_err(|e| format!("{}: wait for create {id}: {e}", rt.name))?;
    if status != 0 {
        let err = failure(rt, &args, status);
        force_delete(rt, id);
        return Err(err);
    }
    let pid = read_pid(&pid_file);
    let _ = fs::remove_file(&pid_file);
    pid.map(|p| (p, usage))
        .inspect_err(|_| force_delete(rt, id))
}

fn read_pid(path: &Path) -> Result<i32, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("{}: not a pid: {text:?}", path.display()))
}

/// Runs `RUNTIME --root R ARGS…` to completion; non-zero exit is an error with its stderr.
fn runtime_ok(rt: &Runtime, args: &[&str]) -> Result<(), String> {
    let child = spawn(rt, args)?;
    let (status, _) =
        wait4(child.id() as i32).map_err(|e| format!("{}: wait for {args:?}: {e}", rt.name))?;
    if status == 0 {
        Ok(())
    } else {
        Err(failure(rt, args, status))
    }
}

fn spawn(rt: &Runtime, args: &[&str]) -> Result<Child, String> {
    let log = File::create(&rt.log).map_err(|e| format!("create {}: {e}", rt.log.display()))?;
    Command::new(&rt.bin)
        .arg("--root")
        .arg(&rt.root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("spawn {} {args:?}: {e}", rt.bin.display()))
}

fn failure(rt: &Runtime, args: &[&str], status: i32) -> String {
    let stderr = fs::read_to_string(&rt.log).unwrap_or_default();
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    format!(
        "{} {}: wait status {status:#x}: {}",
        rt.name,
        args.join(" "),
        last.trim()
    )
}

fn force_delete(rt: &Runtime, id: &str) {
    let _ = runtime_ok(rt, &["kill", id, "KILL"]);
    let _ = runtime_ok(rt, &["delete", "--force", id]);
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{}: path is not UTF-8", p.display()))
}

// ---- the floor, RSS and exec ------------------------------------------------------------

/// `unshare -fmuinp chroot ROOTFS /bin/true`, timed like a container.
fn measure_floor(rootfs: &Path, opts: &Options) -> Result<Vec<Duration>, String> {
    let mut times = Vec::with_capacity(opts.iterations);
    for i in 0..opts.warmup + opts.iterations {
        let start = Instant::now();
        let status = Command::new("unshare")
            .args(["-fmuinp", "chroot"])
            .arg(rootfs)
            .arg("/bin/true")
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("spawn unshare (util-linux): {e}"))?;
        if !status.success() {
            return Err(format!(
                "unshare -fmuinp chroot {}: {status}",
                rootfs.display()
            ));
        }
        if i >= opts.warmup {
            times.push(start.elapsed());
        }
    }
    Ok(times)
}

/// Peak RSS of one `create` per runtime and of its container init before exec.
fn print_rss(runtimes: &[Runtime], bundle: &Path) {
    println!("\npeak RSS (wait4 ru_maxrss)");
    println!(
        "{:<8} {:>14} {:>22}",
        "runtime", "create (KiB)", "init, pre-exec (KiB)"
    );
    for rt in runtimes {
        let id = format!("bench-{}-{}-rss", std::process::id(), rt.name);
        match rss(rt, bundle, &id) {
            Ok((create, init)) => println!("{:<8} {create:>14} {init:>22}", rt.name),
            Err(e) => println!("{:<8} failed: {e}", rt.name),
        }
    }
}

fn rss(rt: &Runtime, bundle: &Path, id: &str) -> Result<(i64, i64), String> {
    let (pid, usage) = create(rt, bundle, id)?;
    runtime_ok(rt, &["start", id]).inspect_err(|_| force_delete(rt, id))?;
    let waited = wait4(pid).map_err(|e| format!("wait for container {id}: {e}"));
    runtime_ok(rt, &["delete", id])?;
    let (_, init) = waited?;
    Ok((usage.ru_maxrss, init.ru_maxrss))
}

/// Starts one `sleep 3600` container per runtime and times `exec ID /bin/true` round-robin.
fn exec_latency(runtimes: &[Runtime], bundle: &Path, opts: &Options) -> Vec<Outcome> {
    let ids: Vec<String> = runtimes
        .iter()
        .map(|rt| format!("bench-{}-{}-exec", std::process::id(), rt.name))
        .collect();
    let started: Vec<Result<i32, String>> = runtimes
        .iter()
        .zip(&ids)
        .map(|(rt, id)| start_sleeper(rt, bundle, id))
        .collect();
    let outcomes = round_robin(runtimes, opts, |rt, _| {
        let i = runtimes.iter().position(|r| r.name == rt.name).unwrap_or(0);
        match &started[i] {
            Ok(_) => runtime_ok(rt, &["exec", &ids[i], "/bin/true"]).map(|()| Vec::new()),
            Err(e) => Err(e.clone()),
        }
    });
    for ((rt, id), pid) in runtimes.iter().zip(&ids).zip(&started) {
        if let Ok(pid) = pid {
            let _ = runtime_ok(rt, &["kill", id, "KILL"]);
            let _ = wait4(*pid);
            let _ = runtime_ok(rt, &["delete", id]);
        }
    }
    outcomes
}

fn start_sleeper(rt: &Runtime, bundle: &Path, id: &str) -> Result<i32, String> {
    let (pid, _) = create(rt, bundle, id)?;
    runtime_ok(rt, &["start", id]).inspect_err(|_| force_delete(rt, id))?;
    Ok(pid)
}

// ---- the host ---------------------------------------------------------------------------

/// On a hybrid host whose cgroup2 mount has controllers (here: hugetlb), crun refuses every
/// container ("cgroups in hybrid mode not supported"). Such a host is unusual: on systemd's
/// hybrid layout every controller has a v1 hierarchy. So that all three runtimes run in that
/// real hybrid layout, the bench moves itself into a private mount namespace, re-stacks
/// `/sys/fs/cgroup`'s hierarchies on a fresh tmpfs that also holds a v1 `hugetlb` hierarchy,
/// and so takes hugetlb off the cgroup2 root while it runs. The kernel binds a controller to
/// one hierarchy for the whole machine, so the guard's drop unmounts the v1 hierarchy (which
/// gives hugetlb back to cgroup2); a namespace torn down without that umount would not.
struct HugetlbV1 {
    mount: PathBuf,
}

impl HugetlbV1 {
    fn mount(work: &Path) -> Result<Option<Self>, String> {
        let controllers = fs::read_to_string(format!("{UNIFIED}/cgroup.controllers"));
        if !controllers.is_ok_and(|c| c.split_whitespace().any(|c| c == "hugetlb")) {
            return Ok(None);
        }
        private_mount_namespace()?;
        let stage = work.join("cgroupfs");
        fs::create_dir_all(&stage).map_err(|e| format!("create {}: {e}", stage.display()))?;
        mount(Some("tmpfs"), &stage, Some("tmpfs"), 0, Some("mode=755"))?;
        if let Err(e) = Self::stack(&stage) {
            // Only our namespace sees what was moved under the stage; detaching it puts the
            // work dir back to an empty directory, so that its removal touches no cgroup.
            let _ = umount2(&stage, libc::MNT_DETACH);
            return Err(e);
        }
        println!(
            "note: {UNIFIED} holds the hugetlb controller, which crun refuses; the bench gave \
             hugetlb a v1 hierarchy (systemd's hybrid layout) while it runs"
        );
        Ok(Some(Self {
            mount: PathBuf::from("/sys/fs/cgroup/hugetlb"),
        }))
    }

    /// The hugetlb hierarchy first (the step the kernel may refuse), then every hierarchy of
    /// `/sys/fs/cgroup` moved beside it, then the stage over `/sys/fs/cgroup`.
    fn stack(stage: &Path) -> Result<(), String> {
        let hugetlb = stage.join("hugetlb");
        fs::create_dir(&hugetlb).map_err(|e| format!("create {}: {e}", hugetlb.display()))?;
        mount(Some("cgroup"), &hugetlb, Some("cgroup"), 0, Some("hugetlb")).map_err(|e| {
            format!(
                "{e}: hugetlb is enabled in a cgroup.subtree_control under {UNIFIED}, so it \
                 cannot have a v1 hierarchy; disable it there or pass --host-layout (crun then \
                 fails)"
            )
        })?;
        for hierarchy in cgroup_mounts()? {
            let to = stage.join(hierarchy.file_name().unwrap_or_default());
            fs::create_dir(&to).map_err(|e| format!("create {}: {e}", to.display()))?;
            move_mount(&hierarchy, &to)?;
        }
        move_mount(stage, Path::new("/sys/fs/cgroup"))
    }
}

/// The kernel frees a v1 hierarchy (and gives its controller back to cgroup2) only once it is
/// unmounted *and* has no cgroup below its root: the cgroups the runtimes and engines made in
/// it while the bench ran (empty once their containers are gone) are removed first.
/// The bench is the subreaper of the shims and engines it ran: their zombies keep their css_sets,
/// and with them the hierarchy, until reaped.
impl Drop for HugetlbV1 {
    fn drop(&mut self) {
        reap_orphans();
        let left = remove_cgroups_below(&self.mount);
        if let Err(e) = umount2(&self.mount, 0) {
            eprintln!("berth-bench: unmount {}: {e}", self.mount.display());
        }
        if !left.is_empty() || !hugetlb_on_cgroup2() {
            eprintln!(
                "berth-bench: hugetlb stays bound to a v1 hierarchy for the whole machine \
                 (runc and berth then see no hugetlb); cgroups left: {left:?}; release it with \
                 tools/release-cgroup-v1"
            );
        }
    }
}

/// Removes every cgroup below `root`, deepest first, retrying a while for ones whose last
/// process is still exiting: the directories that could not be removed.
fn remove_cgroups_below(root: &Path) -> Vec<PathBuf> {
    fn below(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                below(&entry.path(), out);
                out.push(entry.path());
            }
        }
    }
    let mut dirs = Vec::new();
    below(root, &mut dirs);
    for _ in 0..50 {
        dirs.retain(|d| fs::remove_dir(d).is_err() && d.exists());
        if dirs.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    dirs
}

fn hugetlb_on_cgroup2() -> bool {
    // A freed hierarchy goes away a moment after its last umount.
    (0..50).any(|_| {
        let on = fs::read_to_string(format!("{UNIFIED}/cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "hugetlb"));
        if !on {
            std::thread::sleep(Duration::from_millis(20));
        }
        on
    })
}

/// Every mount point directly under `/sys/fs/cgroup`, from `/proc/self/mountinfo`.
fn cgroup_mounts() -> Result<Vec<PathBuf>, String> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.parent() == Some(Path::new("/sys/fs/cgroup")))
        .collect())
}

fn private_mount_namespace() -> Result<(), String> {
    // SAFETY: unshare with a flag; we are single-threaded here.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("unshare(CLONE_NEWNS): {e}"));
    }
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_SLAVE,
        None,
    )
}

fn move_mount(from: &Path, to: &Path) -> Result<(), String> {
    mount(Some(&from.to_string_lossy()), to, None, libc::MS_MOVE, None)
}

/// mount(2), the error naming the target.
fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let c = |s: &str| std::ffi::CString::new(s).map_err(|_| format!("{s:?}: contains NUL"));
    let source = source.map(c).transpose()?;
    let fstype = fstype.map(c).transpose()?;
    let data = data.map(c).transpose()?;
    let target_c = c(&target.to_string_lossy())?;
    let ptr = |s: &Option<std::ffi::CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is null or a valid NUL-terminated string living across the call.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target_c.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("mount {}: {e}", target.display()));
    }
    Ok(())
}

fn umount2(target: &Path, flags: libc::c_int) -> Result<(), String> {
    let c = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: contains NUL", target.display()))?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), flags) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("umount {}: {e}", target.display()));
    }
    Ok(())
}

// ---- processes --------------------------------------------------------------------------

/// Orphaned container inits are re-parented to us, so we can wait for them by pid.
fn become_subreaper() -> Result<(), String> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(format!(
            "prctl(PR_SET_CHILD_SUBREAPER): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Waits for `pid`; returns its raw wait status and resource usage.
fn wait4(pid: i32) -> std::io::Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((status, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reaps any re-parented process nobody waits for (e.g. exec'd processes of a runtime).
fn reap_orphans() {
    let mut status = 0;
    // SAFETY: valid pointer to a local; WNOHANG never blocks.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}

/// containerd-shim-berth-v2 beside containerd-shim-runc-v2 under one private containerd, both
/// running berth-runtime: `ctr run --rm` of /bin/true, round-robin, and each shim's idle RSS.
fn shim_scenario(opts: &Options, work: &Path, rootfs: &Path, berth: &Path) {
    println!("\ncontainerd shims: ctr run --rm /bin/true (both shims run berth-runtime)");
    let shim_dir = berth.parent().unwrap_or(Path::new("."));
    let ctd = match shim::Containerd::start(work, shim_dir, berth, rootfs) {
        Ok(c) => c,
        Err(e) => return println!("failed: {e}"),
    };
    let rounds = (opts.iterations / 5).max(10);
    let mut times = vec![Vec::new(); shim::SHIMS.len()];
    for i in 0..opts.warmup + rounds {
        for (k, (name, runtime)) in shim::SHIMS.iter().enumerate() {
            match ctd.run_true(runtime, &format!("{name}-{i}")) {
                Ok(d) if i >= opts.warmup => times[k].push(d),
                Ok(_) => {}
                Err(e) => return println!("{name:<8} failed: {e}"),
            }
        }
    }
    println!(
        "{:<8} {:>10} {:>10} {:>10}   vs berth (median)",
        "shim", "median ms", "p90 ms", "mean ms"
    );
    let berth_median = stats(&times[0]).median;
    for ((name, _), t) in shim::SHIMS.iter().zip(&times) {
        println!("{}", row(name, &stats(t), Some(berth_median)));
    }
    println!("\nshim resident memory with one idle running container (VmRSS)");
    let mut berth_rss = None;
    for (name, runtime) in shim::SHIMS {
        match ctd.idle_rss(runtime, &format!("rss-{name}")) {
            Ok(kib) => {
                let b = *berth_rss.get_or_insert(kib);
                println!(
                    "{name:<8} {kib:>8} KiB   {name}/berth = {:.1}x",
                    kib as f64 / b.max(1) as f64
                );
            }
            Err(e) => println!("{name:<8} failed: {e}"),
        }
    }
}

// ---- reporting --------------------------------------------------------------------------

struct Stats {
    median: f64,
    p90: f64,
    mean: f64,
}

fn stats(times: &[Duration]) -> Stats {
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p90: at(0.9),
        mean: ms.iter().sum::<f64>() / ms.len() as f64,
    }
}

fn print_table(
    title: &str,
    runtimes: &[Runtime],
    outcomes: &[Outcome],
    floor: Option<&[Duration]>,
) {
    println!("\n{title}");
    println!(
        "{:<8} {:>10} {:>10} {:>10}   vs berth (median)",
        "runtime", "median ms", "p90 ms", "mean ms"
    );
    let berth = match outcomes.first() {
        Some(Outcome::Timings(t)) if !t.totals.is_empty() => Some(stats(&t.totals).median),
        _ => None,
    };
    for (rt, outcome) in runtimes.iter().zip(outcomes) {
        match outcome {
            Outcome::Timings(t) if !t.totals.is_empty() => {
                println!("{}", row(&rt.name, &stats(&t.totals), berth));
                if !t.phases.is_empty() {
                    println!("{}", phase_row(&t.phases));
                }
            }
            Outcome::Timings(_) => println!("{:<8} no samples", rt.name),
            Outcome::Failed(e) => println!("{:<8} failed: {e}", rt.name),
        }
    }
    if let Some(f) = floor {
        println!("{}", row("floor", &stats(f), berth));
        println!("         (floor: unshare -fmuinp chroot ROOTFS /bin/true)");
    }
}

/// "  create 12.30 | start 3.10 | ..." (medians, ms), under a runtime's row.
fn phase_row(phases: &[Vec<Duration>]) -> String {
    let parts: Vec<String> = PHASES
        .iter()
        .zip(phases)
        .map(|(name, times)| format!("{name} {:.2}", stats(times).median))
        .collect();
    format!("           median ms: {}", parts.join(" | "))
}

fn row(name: &str, s: &Stats, berth: Option<f64>) -> String {
    let mut line = format!(
        "{name:<8} {:>10.2} {:>10.2} {:>10.2}",
        s.median, s.p90, s.mean
    );
    if let Some(b) = berth.filter(|b| *b > 0.0) {
        let _ = write!(line, "   {name}/berth = {:.2}x", s.median / b);
    }
    line
}
