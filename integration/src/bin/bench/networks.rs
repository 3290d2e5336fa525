//! The networks scenario: berth, Debian's dockerd and podman, each in a network namespace of
//! the bench's own (`ip netns add`, loopback up), side by side:
//! - `run -d` of a container on a user-defined bridge network;
//! - DNS lookups of a container's name from another container on that network: A queries
//!   sent one after another from a thread of the bench in the client container's network
//!   namespace to the nameserver of the client's resolv.conf, p50/p99 per query;
//! - a published port reached from 127.0.0.1 in the engine's namespace: iperf3 throughput
//!   (Debian's, the host's binary run in the container through its dynamic loader from a
//!   read-only bind mount of `/usr`) and the round trip of one byte through an echo server
//!   (busybox `nc -e cat`), p50/p99; the same from `[::1]` to a port published on every
//!   address, which no NAT rule can carry (berth's in-daemon forwarder, `docker-proxy`); and
//!   straight to the container's address, the floor. dockerd's 127.0.0.1 traffic goes
//!   through its userland proxy (`docker-proxy`);
//! - the memory of 50 published ports: the PSS of every process in the engine's namespace
//!   (daemon, containerd, shims, conmon, proxies — not the containers, which have namespaces
//!   of their own) with one container publishing 50 ports, against one publishing none, and
//!   how many processes the ports add.
//!
//! podman runs runc here (crun would need the bench's hugetlb v1 mount).
//! This is a benchmark: it asserts nothing about speed.
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use berth_integration::oci_image;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::Value;

use crate::containers::{self, print_ratios, quantile, Engine};
use crate::daemons::{timed, BerthDaemon, Dockerd};

const IMAGE: &str = "bench/busybox:latest";
const NETWORK: &str = "benchnet";
/// Where CNI's host-local IPAM (podman's) keeps its leases, one directory per network.
const CNI_LEASES: &str = "/var/lib/cni/networks";
const SLEEP: [&str; 3] = ["busybox", "sleep", "3600"];
const PORTS: u16 = 50;
/// The dynamic loader and library directory of the host, for iperf3 inside busybox.
const LOADER: &str = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
const LIBS: &str = "/usr/lib/x86_64-linux-gnu";
const IPERF3: &str = "/usr/bin/iperf3";
/// Host ports of the published iperf3 and echo servers: on 127.0.0.1, and on every address
/// (reached from `[::1]`).
const IPERF_PORT: u16 = 15201;
const ECHO_PORT: u16 = 15207;
const IPERF_ANY_PORT: u16 = 15301;
const ECHO_ANY_PORT: u16 = 15307;

/// How much the scenario does.
pub struct Settings {
    /// Timed `run -d` per engine.
    pub starts: usize,
    /// DNS queries per engine.
    pub queries: usize,
    /// Seconds of each iperf3 run.
    pub iperf_secs: u32,
    /// One-byte round trips per engine and path.
    pub round_trips: usize,
}

/// A network namespace of the bench's own, bind-mounted on a file in its work dir, loopback
/// up; unmounted and removed on drop.
struct Netns {
    path: PathBuf,
}

impl Netns {
    fn add(path: PathBuf) -> Result<Netns, String> {
        fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        let ns = Netns { path };
        let target = std::ffi::CString::new(ns.path.as_os_str().as_encoded_bytes())
            .map_err(|e| e.to_string())?;
        std::thread::spawn(move || {
            // SAFETY: unshare(2) moves only this thread into a new network namespace, which
            // mount(2) then binds on `target` (a NUL-terminated path) so that it outlives it.
            unsafe {
                if libc::unshare(libc::CLONE_NEWNET) != 0 {
                    return Err(format!("unshare: {}", std::io::Error::last_os_error()));
                }
                let own =
                    std::ffi::CString::new(format!("/proc/self/task/{}/ns/net", libc::gettid()))
                        .unwrap_or_default();
                let bound = libc::mount(
                    own.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                );
                if bound != 0 {
                    return Err(format!("bind netns: {}", std::io::Error::last_os_error()));
                }
            }
            Ok(())
        })
        .join()
        .map_err(|_| "netns thread panicked".to_string())??;
        let mut lo_up = Command::new("nsenter");
        lo_up
            .arg(format!("--net={}", ns.path.display()))
            .args(["ip", "link", "set", "lo", "up"]);
        timed(&mut lo_up, "lo up")?;
        Ok(ns)
    }

    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// `nsenter --net=PATH --`: a wrapper that runs a program in this namespace.
    fn wrapper(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            format!("--net={}", self.path.display()),
            "--".into(),
        ]
    }

    /// The namespace's inode: what `/proc/PID/ns/net` of its processes links to.
    fn inode(&self) -> u64 {
        fs::metadata(&self.path).map(|m| m.ino()).unwrap_or(0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(target) = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes()) {
            // SAFETY: umount2(2) of our own bind mount, by a NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = fs::remove_file(&self.path);
    }
}

/// One engine with its namespace, daemon and network; dropped in field order: containers
/// and network first, then the daemon, then the namespace.
struct Subject {
    engine: Engine,
    /// Keeps the daemon (none for podman) alive while the engine is used.
    _daemon: Option<Box<dyn std::any::Any>>,
    netns: Netns,
    /// What failed in setting the engine up; then it is skipped.
    broken: Option<String>,
}

impl Drop for Subject {
    fn drop(&mut self) {
        self.engine.remove_all();
        let _ = self.engine.ok(&["network", "rm", NETWORK]);
        if self.engine.name == "podman" {
            // CNI's host-local IPAM keeps its leases by network name on the host.
            let _ = fs::remove_dir_all(Path::new(CNI_LEASES).join(NETWORK));
        }
    }
}

pub fn run(work: &Path, supervisor: &Path, settings: &Settings) {
    println!(
        "\nnetworks: berth, dockerd (docker-proxy), podman (CNI, runc); each in a network namespace \
         of its own, a user bridge network"
    );
    if let Err(e) = scenario(work, supervisor, settings) {
        println!("failed: {e}");
    }
}

/// Host directories podman makes on first use (`/run/netns`, a mount, for its containers'
/// namespaces; CNI's state); removed at the end if the bench made them.
struct HostDirs(Vec<&'static str>);

impl HostDirs {
    fn note() -> HostDirs {
        let dirs = ["/run/netns", "/var/lib/cni"];
        HostDirs(
            dirs.into_iter()
                .filter(|d| !Path::new(d).exists())
                .collect(),
        )
    }
}

impl Drop for HostDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            if *d == "/run/netns" {
                if let Ok(c) = std::ffi::CString::new(*d) {
                    // SAFETY: umount2(2) by a NUL-terminated path; a failure is harmless.
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
                // Only if empty: a namespace left in it is not the bench's to remove.
                let _ = fs::remove_dir(d);
            } else {
                let _ = fs::remove_dir_all(d);
            }
        }
    }
}

fn scenario(work: &Path, supervisor: &Path, settings: &Settings) -> Result<(), String> {
    let _host_dirs = HostDirs::note();
    let dir = work.join("networks");
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let archive = dir.join("busybox.tar");
    oci_image::copy_to(
        &oci_image::busybox("latest"),
        &format!("docker-archive:{}:{IMAGE}", archive.display()),
    );
    let subjects = [
        subject("berth", &dir, |ns, d| {
            let wrapper = ns.wrapper();
            let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
            let daemon = BerthDaemon::start_with(d, supervisor, &wrapper, &["--bridge=none"])?;
            let engine = containers::docker_cli("berth", &daemon.host, d);
            Ok((engine, Some(Box::new(daemon))))
        }),
        subject("dockerd", &dir, |ns, d| {
            let wrapper = ns.wrapper();
            let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
            let daemon = Dockerd::start_wrapped(d, &wrapper)?;
            let engine = containers::docker_cli("dockerd", &daemon.host, d);
            Ok((engine, Some(Box::new(daemon))))
        }),
        subject("podman", &dir, |ns, d| {
            let mut engine = containers::podman(d)?;
            // runc, not crun: crun needs the bench's hugetlb v1 mount (see main.rs), which
            // another cgroup's use of hugetlb can refuse; the runtime is not measured here.
            if let Some(rt) = engine.args.iter().position(|a| a == "crun") {
                engine.args[rt] = "runc".into();
            }
            engine.wrapper = ns.wrapper();
            let cni = d.join("cni");
            fs::create_dir_all(&cni).map_err(|e| format!("create {}: {e}", cni.display()))?;
            engine
                .args
                .extend(["--network-config-dir".into(), cni.display().to_string()]);
            Ok((engine, None))
        }),
    ];
    let subjects: Vec<Subject> = subjects
        .into_iter()
        .enumerate()
        .map(|(k, s)| s.and_then(|s| prepare(s, &archive, k)))
        .collect::<Result<_, _>>()?;
    for s in subjects.iter().filter(|s| s.broken.is_some()) {
        println!(
            "{:<10} failed: {}",
            s.engine.name,
            s.broken.as_deref().unwrap_or("")
        );
    }
    let ready: Vec<&Subject> = subjects.iter().filter(|s| s.broken.is_none()).collect();
    starts(&ready, settings.starts);
    lookups(&ready, settings.queries);
    published_ports(&ready, settings);
    port_memory(&ready);
    Ok(())
}

type Made = Result<(Engine, Option<Box<dyn std::any::Any>>), String>;

/// Makes the namespace and starts the engine in it.
fn subject(
    name: &str,
    dir: &Path,
    start: impl FnOnce(&Netns, &Path) -> Made,
) -> Result<Subject, String> {
    let netns = Netns::add(dir.join(format!("{name}.netns")))?;
    let d = dir.join(name);
    fs::create_dir_all(&d).map_err(|e| format!("create {}: {e}", d.display()))?;
    let (engine, daemon) = start(&netns, &d).map_err(|e| format!("{name}: {e}"))?;
    Ok(Subject {
        engine,
        _daemon: daemon,
        netns,
        broken: None,
    })
}

/// Loads the image and makes the user network (`10.240.K.0/24`).
fn prepare(mut s: Subject, archive: &Path, k: usize) -> Result<Subject, String> {
    let subnet = format!("10.240.{}.0/24", k + 1);
    let done = s
        .engine
        .ok(&["load", "-i", &archive.to_string_lossy()])
        .and_then(|_| {
            s.engine
                .ok(&["network", "create", "--subnet", &subnet, NETWORK])
        });
    if let Err(e) = done {
        s.broken = Some(e);
    }
    Ok(s)
}

/// `run -d --network NETWORK OPTIONS IMAGE COMMAND…`.
fn run_cmd(e: &Engine, options: &[&str], command: &[&str]) -> Command {
    let mut args = vec!["run", "-d", "--network", NETWORK];
    args.extend(e.run_flags.iter().map(String::as_str));
    args.extend(options);
    args.push(IMAGE);
    args.extend(command);
    e.cmd(&args)
}

/// Timed `run -d` on the user network, round-robin, after two warm-up rounds; each
/// container removed (untimed) before the next.
fn starts(subjects: &[&Subject], rounds: usize) {
    println!("\nrun -d on a user bridge network ({rounds} each, interleaved)");
    let mut times = vec![Vec::new(); subjects.len()];
    let mut failed: Vec<Option<String>> = vec![None; subjects.len()];
    for i in 0..rounds + 2 {
        for (k, s) in subjects.iter().enumerate() {
            if failed[k].is_some() {
                continue;
            }
            let name = format!("start-{i}");
            let took = timed(
                &mut run_cmd(&s.engine, &["--name", &name], &SLEEP),
                s.engine.name,
            );
            let _ = s.engine.ok(&["rm", "-f", &name]);
            match took {
                Ok(d) if i >= 2 => times[k].push(d),
                Ok(_) => {}
                Err(e) => failed[k] = Some(e),
            }
        }
    }
    print_quantiles(subjects, &times, &failed, ("p50 ms", 0.5), ("p90 ms", 0.9));
}

/// `queries` A lookups of `target` from a client container on the same network.
fn lookups(subjects: &[&Subject], queries: usize) {
    println!(
        "\nDNS: A queries for a container's name from another container on its network \
         ({queries} each, one after another)"
    );
    let mut times = Vec::new();
    let mut failed = Vec::new();
    for s in subjects {
        let r = lookup_times(&s.engine, queries);
        failed.push(r.as_ref().err().cloned());
        times.push(r.unwrap_or_default());
        s.engine.remove_all();
    }
    print_quantiles(subjects, &times, &failed, ("p50 ms", 0.5), ("p99 ms", 0.99));
}

fn lookup_times(e: &Engine, queries: usize) -> Result<Vec<Duration>, String> {
    e.output(run_cmd(e, &["--name", "target"], &SLEEP))?;
    e.output(run_cmd(e, &["--name", "client"], &SLEEP))?;
    let target: Ipv4Addr = container_ip(e, "target")?;
    let resolv = e.ok(&["exec", "client", "cat", "/etc/resolv.conf"])?;
    let server: Ipv4Addr = resolv
        .lines()
        .find_map(|l| l.strip_prefix("nameserver "))
        .and_then(|a| a.trim().parse().ok())
        .ok_or_else(|| format!("no IPv4 nameserver in the client's resolv.conf:\n{resolv}"))?;
    let pid = e.ok(&["inspect", "-f", "{{.State.Pid}}", "client"])?;
    let netns = PathBuf::from(format!("/proc/{}/ns/net", pid.trim()));
    in_netns(&netns, move || {
        let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
        sock.connect((server, 53))
            .map_err(|e| format!("connect {server}:53: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let warmup = 20;
        let mut times = Vec::with_capacity(queries);
        for i in 0..queries + warmup {
            let took = query_a(&sock, i as u16, "target.", target)
                .map_err(|e| format!("query {i} of target. to {server}: {e}"))?;
            if i >= warmup {
                times.push(took);
            }
        }
        Ok(times)
    })
}

/// One A query; how long until its answer came, which must be `want`.
fn query_a(sock: &UdpSocket, id: u16, name: &str, want: Ipv4Addr) -> Result<Duration, String> {
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(
        Name::from_str(name).map_err(|e| e.to_string())?,
        RecordType::A,
    ));
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    let start = Instant::now();
    sock.send(&bytes).map_err(|e| format!("send: {e}"))?;
    loop {
        let n = sock.recv(&mut buf).map_err(|e| format!("recv: {e}"))?;
        let took = start.elapsed();
        let reply = Message::from_vec(&buf[..n]).map_err(|e| format!("reply: {e}"))?;
        if reply.metadata.id != id {
            continue; // a late answer to an earlier query
        }
        if reply.metadata.response_code != ResponseCode::NoError {
            return Err(format!("{}", reply.metadata.response_code));
        }
        let got: Vec<Ipv4Addr> = reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        if !got.contains(&want) {
            return Err(format!("answer {got:?}, want {want}"));
        }
        return Ok(took);
    }
}

/// The container's address on the bench network.
fn container_ip(e: &Engine, name: &str) -> Result<Ipv4Addr, String> {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}");
    let ip = e.ok(&["inspect", "-f", &format, name])?;
    ip.trim()
        .parse()
        .map_err(|_| format!("{name}: address {ip:?}"))
}

/// Runs `f` on a thread that joined the network namespace at `netns`.
fn in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let ns = fs::File::open(netns).map_err(|e| format!("open {}: {e}", netns.display()))?;
    let shown = netns.display().to_string();
    std::thread::spawn(move || {
        // SAFETY: setns(2) on a valid descriptor; it moves only this thread.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!(
                "setns {shown}: {}",
                std::io::Error::last_os_error()
            ));
        }
        f()
    })
    .join()
    .map_err(|_| "measuring thread panicked".to_string())?
}

/// Throughput and round trips through a published port from 127.0.0.1, and straight to the
/// container's address.
fn published_ports(subjects: &[&Subject], settings: &Settings) {
    println!(
        "\npublished port from 127.0.0.1 (iperf3 -t {}, {} one-byte round trips), and straight \
         to the container's address",
        settings.iperf_secs, settings.round_trips
    );
    println!(
        "{:<10} {:<10} {:>10} {:>12} {:>12}",
        "engine", "path", "Gbit/s", "rtt p50 us", "rtt p99 us"
    );
    let mut gbits = Vec::new();
    let mut rtts = Vec::new();
    let mut v6_rtts = Vec::new();
    for s in subjects {
        match port_figures(s, settings) {
            Ok(rows) => {
                for (path, figures) in &rows {
                    let (g, rtt) = match figures {
                        Ok(f) => f,
                        Err(e) => {
                            println!("{:<10} {path:<10} failed: {e}", s.engine.name);
                            continue;
                        }
                    };
                    let (p50, p99) = (quantile(rtt, 0.5), quantile(rtt, 0.99));
                    println!(
                        "{:<10} {:<10} {g:>10.2} {:>12.0} {:>12.0}",
                        s.engine.name,
                        path,
                        p50.unwrap_or(0.0) * 1e3,
                        p99.unwrap_or(0.0) * 1e3,
                    );
                    match *path {
                        "127.0.0.1" => {
                            gbits.push((s.engine.name, *g));
                            rtts.push((s.engine.name, p50.unwrap_or(0.0)));
                        }
                        "[::1]" => v6_rtts.push((s.engine.name, p50.unwrap_or(0.0))),
                        _ => {}
                    }
                }
            }
            Err(e) => println!("{:<10} failed: {e}", s.engine.name),
        }
        s.engine.remove_all();
    }
    println!("           via 127.0.0.1, throughput (higher is better):");
    print_ratios(&gbits);
    println!("           via 127.0.0.1, rtt p50 (lower is better):");
    print_ratios(&rtts);
    println!("           via [::1], rtt p50 (lower is better):");
    print_ratios(&v6_rtts);
}

/// A path's iperf3 Gbit/s and round trips, or why it could not be measured.
type PathFigures = (&'static str, Result<(f64, Vec<Duration>), String>);

fn port_figures(s: &Subject, settings: &Settings) -> Result<Vec<PathFigures>, String> {
    let e = &s.engine;
    let published = [
        format!("127.0.0.1:{IPERF_PORT}:5201"),
        format!("127.0.0.1:{ECHO_PORT}:7"),
        format!("{IPERF_ANY_PORT}:5201"),
        format!("{ECHO_ANY_PORT}:7"),
    ];
    let server = format!(
        "{LOADER} --library-path {LIBS} {IPERF3} -s -p 5201 & exec busybox nc -ll -p 7 -e /bin/cat"
    );
    let mut options = vec!["--name", "ports", "-v", "/usr:/usr:ro"];
    for p in &published {
        options.extend(["-p", p.as_str()]);
    }
    e.output(run_cmd(e, &options, &["/bin/sh", "-c", &server]))?;
    let ip = container_ip(e, "ports")?;
    let paths: [(&'static str, IpAddr, u16, u16); 3] = [
        (
            "127.0.0.1",
            Ipv4Addr::LOCALHOST.into(),
            IPERF_PORT,
            ECHO_PORT,
        ),
        (
            "[::1]",
            Ipv6Addr::LOCALHOST.into(),
            IPERF_ANY_PORT,
            ECHO_ANY_PORT,
        ),
        ("container", ip.into(), 5201, 7),
    ];
    let rows = paths
        .into_iter()
        .map(|(path, addr, iperf_port, echo_port)| {
            let figures = round_trips(
                &s.netns,
                SocketAddr::from((addr, echo_port)),
                settings.round_trips,
            )
            .and_then(|rtt| Ok((iperf(&s.netns, addr, iperf_port, settings.iperf_secs)?, rtt)));
            (path, figures)
        })
        .collect();
    Ok(rows)
}

/// `n` one-byte round trips on one connection to an echo server, after a few untimed.
fn round_trips(netns: &Netns, to: SocketAddr, n: usize) -> Result<Vec<Duration>, String> {
    in_netns(&netns.path(), move || {
        // The server may still be starting.
        let until = Instant::now() + Duration::from_secs(10);
        let mut conn = loop {
            match TcpStream::connect(to) {
                Ok(c) => break c,
                Err(e) if Instant::now() > until => return Err(format!("connect {to}: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        conn.set_nodelay(true).map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let warmup = 20;
        let mut times = Vec::with_capacity(n);
        let mut byte = [0u8; 1];
        for i in 0..n + warmup {
            let start = Instant::now();
            conn.write_all(b"x")
                .and_then(|_| conn.read_exact(&mut byte))
                .map_err(|e| format!("round trip {i} to {to}: {e}"))?;
            if i >= warmup {
                times.push(start.elapsed());
            }
        }
        Ok(times)
    })
}

/// The host's iperf3 client in `netns` against `addr:port`: received Gbit/s.
fn iperf(netns: &Netns, addr: IpAddr, port: u16, secs: u32) -> Result<f64, String> {
    let mut last = String::new();
    // The server may still be starting: a few tries.
    for _ in 0..20 {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", netns.path().display()))
            .args([
                IPERF3,
                "-J",
                "-c",
                &addr.to_string(),
                "-p",
                &port.to_string(),
            ])
            .args(["-t", &secs.to_string()])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{IPERF3} (apt-get install iperf3): {e}"))?;
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if out.status.success() {
            let bits = report["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .ok_or("iperf3 -J: no end.sum_received.bits_per_second")?;
            return Ok(bits / 1e9);
        }
        last = report["error"].as_str().unwrap_or_default().to_string();
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("iperf3 to {addr}:{port}: {last}"))
}

/// The stack's PSS and process count with one container publishing `PORTS` ports, against
/// one publishing none.
fn port_memory(subjects: &[&Subject]) {
    println!(
        "\nmemory of {PORTS} published ports: PSS of every process in the engine's namespace \
         (not the containers)"
    );
    println!(
        "{:<10} {:>12} {:>14} {:>10} {:>14}",
        "engine", "0 ports MiB", "50 ports MiB", "+ MiB", "+ processes"
    );
    let mut totals = Vec::new();
    for s in subjects {
        match memory_of_ports(s) {
            Ok(((kib0, n0), (kib1, n1))) => {
                let delta = (kib1 as f64 - kib0 as f64) / 1024.0;
                println!(
                    "{:<10} {:>12.1} {:>14.1} {delta:>10.1} {:>14}",
                    s.engine.name,
                    kib0 as f64 / 1024.0,
                    kib1 as f64 / 1024.0,
                    n1 as i64 - n0 as i64
                );
                totals.push((s.engine.name, kib1 as f64));
            }
            Err(e) => println!("{:<10} failed: {e}", s.engine.name),
        }
        s.engine.remove_all();
    }
    // Of the totals with 50 ports: the additions are near zero where no process is added.
    print_ratios(&totals);
}

type Usage = (u64, usize);

fn memory_of_ports(s: &Subject) -> Result<(Usage, Usage), String> {
    let e = &s.engine;
    let range = format!(
        "127.0.0.1:16000-{}:8000-{}",
        16000 + PORTS - 1,
        8000 + PORTS - 1
    );
    let mut usage = Vec::new();
    for (name, ports) in [("noports", None), ("ports50", Some(range.as_str()))] {
        let mut options = vec!["--name", name];
        if let Some(p) = ports {
            options.extend(["-p", p]);
        }
        e.output(run_cmd(e, &options, &SLEEP))?;
        // Let every process settle.
        std::thread::sleep(Duration::from_secs(3));
        usage.push(netns_usage(s.netns.inode()));
        e.ok(&["rm", "-f", name])?;
    }
    Ok((usage[0], usage[1]))
}

/// PSS (KiB) and number of the processes whose network namespace has inode `ino`.
fn netns_usage(ino: u64) -> Usage {
    let want = format!("net:[{ino}]");
    let Ok(procs) = fs::read_dir("/proc") else {
        return (0, 0);
    };
    let mut kib = 0;
    let mut count = 0;
    for p in procs.flatten() {
        if p.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let ns = fs::read_link(p.path().join("ns/net")).unwrap_or_default();
        if ns.to_string_lossy() != want {
            continue;
        }
        count += 1;
        kib += fs::read_to_string(p.path().join("smaps_rollup"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Pss:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(0);
    }
    (kib, count)
}

/// A table of two quantiles per engine, then berth's ratios to the others (of the first).
fn print_quantiles(
    subjects: &[&Subject],
    times: &[Vec<Duration>],
    failed: &[Option<String>],
    first: (&str, f64),
    second: (&str, f64),
) {
    println!("{:<10} {:>10} {:>10}", "engine", first.0, second.0);
    let mut medians = Vec::new();
    for (k, s) in subjects.iter().enumerate() {
        let name = s.engine.name;
        match (
            &failed[k],
            quantile(&times[k], first.1),
            quantile(&times[k], second.1),
        ) {
            (Some(e), _, _) => println!("{name:<10} failed: {e}"),
            (None, Some(a), Some(b)) => {
                println!("{name:<10} {a:>10.3} {b:>10.3}");
                medians.push((name, a));
            }
            _ => println!("{name:<10} no samples"),
        }
    }
    print_ratios(&medians);
}
