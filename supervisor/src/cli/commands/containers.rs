//! Container commands: `create`, `run`, `start`, `ps`, `logs`, `stop`, `kill`, `rm`, `wait`,
//! `inspect`, `exec`, `restart`, `pause`, `unpause`, `rename` — docker's flags, tables,
//! messages and exit codes (125 for the daemon's refusal, 126/127 for a command that cannot
//! run, the process's own code otherwise).
use std::io::{BufRead, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;

use anyhow::Context as _;
use clap::Args;
use serde_json::{json, Value};

use super::{encode, Context, Exit};
use crate::cli::client::{self, Body};
use crate::cli::format::{created_at, human_duration, print_rows};
use crate::cli::tty;

/// Flags shared by `create` and `run` (`-h` is the hostname, as with docker).
#[derive(Debug, Args, Clone)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long)]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Connect a container to a network
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long)]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    pub read_only: bool,
    /// Signal to stop the container
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long)]
    pub stop_timeout: Option<i64>,
    /// Restart policy to apply when a container exits (no, always, on-failure[:N], unless-stopped)
    #[arg(long)]
    pub restart: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Limit read rate (bytes per second) from a device
    #[arg(long)]
    pub device_read_bps: Vec<String>,
    /// Limit write rate (bytes per second) to a device
    #[arg(long)]
    pub device_write_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device
    #[arg(long)]
    pub device_read_iops: Vec<String>,
    /// Limit write rate (IO per second) to a device
    #[arg(long)]
    pub device_write_iops: Vec<String>,
    /// Logging driver for the container
    #[arg(long)]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long)]
    pub log_opt: Vec<String>,
    #[command(flatten)]
    pub health: super::health::HealthArgs,
    #[command(flatten)]
    pub mounts: super::mounts::MountArgs,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `berth run`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

fn env_file(path: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open {path}"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.contains('=') {
            true => l.to_string(),
            false => format!("{l}={}", std::env::var(l).unwrap_or_default()),
        })
        .collect())
}

/// `--dns*`, `--add-host`, `--mac-address`, checked as docker's CLI checks them.
fn name_flags(a: &CreateArgs, body: &mut Value) -> anyhow::Result<()> {
    for d in &a.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            anyhow::bail!("invalid argument {d:?} for \"--dns\" flag: {d} is not an ip address");
        }
    }
    for h in &a.add_host {
        crate::network::hosts::parse_extra(
            std::slice::from_ref(h),
            std::net::Ipv4Addr::UNSPECIFIED,
        )
        .map_err(|e| anyhow::anyhow!("invalid argument {h:?} for \"--add-host\" flag: {e}"))?;
    }
    let host_config = &mut body["HostConfig"];
    host_config["Dns"] = json!(a.dns);
    host_config["DnsSearch"] = json!(a.dns_search);
    host_config["DnsOptions"] = json!(a.dns_option);
    host_config["ExtraHosts"] = json!(a.add_host);
    if let Some(mac) = &a.mac_address {
        body["MacAddress"] = json!(mac);
    }
    Ok(())
}

/// Docker's create request body for these flags.
fn create_body(a: &CreateArgs) -> anyhow::Result<Value> {
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(env_file(f)?);
    }
    for e in &a.env {
        env.push(match e.contains('=') {
            true => e.clone(),
            false => format!("{e}={}", std::env::var(e).unwrap_or_default()),
        });
    }
    let mut labels = serde_json::Map::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.into(), json!(v));
    }
    let mut body = json!({
        "Image": a.image,
        "Env": env,
        "Cmd": if a.command.is_empty() { Value::Null } else { json!(a.command) },
        "Tty": a.tty,
        "OpenStdin": a.interactive,
        "StdinOnce": a.interactive,
        "AttachStdin": a.interactive,
        "AttachStdout": true,
        "AttachStderr": true,
        "Labels": labels,
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "User": a.user.clone().unwrap_or_default(),
        "Hostname": a.hostname.clone().unwrap_or_default(),
        "HostConfig": {
            "AutoRemove": a.rm,
            "NetworkMode": a.network.clone().unwrap_or_else(|| "default".into()),
            "Privileged": a.privileged,
            "ReadonlyRootfs": a.read_only,
        },
    });
    if let Some(endpoints) = super::networks::endpoints_config(
        a.network.as_deref(),
        a.ip.as_deref(),
        a.ip6.as_deref(),
        &a.network_alias,
    ) {
        body["NetworkingConfig"] = endpoints;
    }
    if let Some(ep) = &a.entrypoint {
        body["Entrypoint"] = json!([ep]);
    }
    name_flags(a, &mut body)?;
    a.mounts.apply(&mut body)?;
    if let Some(h) = a.health.config()? {
        body["Healthcheck"] = h;
    }
    if let Some(s) = &a.stop_signal {
        body["StopSignal"] = json!(s);
    }
    if let Some(t) = a.stop_timeout {
        body["StopTimeout"] = json!(t);
    }
    if let Some(r) = &a.restart {
        let (name, count) = r.split_once(':').unwrap_or((r, "0"));
        let count: i64 = count
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid restart policy format: {r}"))?;
        body["HostConfig"]["RestartPolicy"] = json!({"Name": name, "MaximumRetryCount": count});
    }
    if let Some(m) = &a.memory {
        body["HostConfig"]["Memory"] = json!(ram_in_bytes(m)?);
    }
    if let Some(p) = a.pids_limit {
        body["HostConfig"]["PidsLimit"] = json!(p);
    }
    if let Some(w) = a.blkio_weight {
        body["HostConfig"]["BlkioWeight"] = json!(w);
    }
    for (flag, key, list, bytes) in [
        (
            "device-read-bps",
            "BlkioDeviceReadBps",
            &a.device_read_bps,
            true,
        ),
        (
            "device-write-bps",
            "BlkioDeviceWriteBps",
            &a.device_write_bps,
            true,
        ),
        (
            "device-read-iops",
            "BlkioDeviceReadIOps",
            &a.device_read_iops,
            false,
        ),
        (
            "device-write-iops",
            "BlkioDeviceWriteIOps",
            &a.device_write_iops,
            false,
        ),
    ] {
        if !list.is_empty() {
            let devices = list
                .iter()
                .map(|d| throttle_device(flag, d, bytes))
                .collect::<anyhow::Result<Vec<_>>>()?;
            body["HostConfig"][key] = json!(devices);
        }
    }
    if a.log_driver.is_some() || !a.log_opt.is_empty() {
        let mut config = serde_json::Map::new();
        for o in &a.log_opt {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("invalid key value pair format in log-opt: {o}"))?;
            config.insert(k.into(), json!(v));
        }
        body["HostConfig"]["LogConfig"] =
            json!({"Type": a.log_driver.clone().unwrap_or_default(), "Config": config});
    }
    Ok(body)
}

/// `--device-write-bps PATH:RATE` (RATE with docker's units) or `--device-write-iops
/// PATH:N`, as the API's `{Path, Rate}`.
fn throttle_device(flag: &str, spec: &str, bytes: bool) -> anyhow::Result<Value> {
    let bad = || anyhow::anyhow!("invalid argument {spec:?} for \"--{flag}\" flag: bad format");
    let (path, rate) = spec.rsplit_once(':').ok_or_else(bad)?;
    if !path.starts_with("/dev/") {
        return Err(bad());
    }
    let rate = if bytes {
        ram_in_bytes(rate).map_err(|_| bad())?
    } else {
        rate.parse().map_err(|_| bad())?
    };
    Ok(json!({"Path": path, "Rate": rate}))
}

/// docker's `units.RAMInBytes`: binary units (`64m` is 64 MiB).
pub(super) fn ram_in_bytes(s: &str) -> anyhow::Result<i64> {
    let bad =
        || anyhow::anyhow!("invalid argument {s:?} for \"-m, --memory\" flag: invalid size: '{s}'");
    let lower = s.trim().to_ascii_lowercase();
    let digits = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let number: f64 = lower[..digits].parse().map_err(|_| bad())?;
    let unit = lower[digits..].trim_end_matches('b').trim_end_matches('i');
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    Ok((number * (1u64 << shift) as f64) as i64)
}

/// Pulls `image` quietly, after docker's note, when create found it missing.
fn pull_missing(ctx: &Context, image: &str) -> anyhow::Result<()> {
    let r = crate::images::reference::Reference::parse(image)?;
    eprintln!("Unable to find image '{}' locally", r.familiar());
    let tag = r.digest.clone().or(r.tag.clone()).unwrap_or_default();
    let path = format!(
        "/images/create?fromImage={}&tag={}",
        encode(&r.familiar_name()),
        encode(&tag)
    );
    let mut response = ctx.client.request("POST", &path, &[], Body::None)?.ok()?;
    crate::cli::progress::display(&mut response.body, false, true)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// `berth: Error response from daemon: …` and exit 125, like `docker run`/`docker create`.
fn refused(command: &str, e: impl std::fmt::Display) -> anyhow::Error {
    eprintln!("berth: {e}.\nSee 'berth {command} --help'.");
    Exit(125).into()
}

fn create_container(ctx: &Context, a: &CreateArgs, command: &str) -> anyhow::Result<String> {
    let mut body = create_body(a)?;
    super::ports::fill_body(&mut body, &a.publish, &a.expose, a.publish_all)
        .map_err(|e| refused(command, e))?;
    let body = serde_json::to_vec(&body)?;
    let path = match &a.name {
        Some(n) => format!("/containers/create?name={}", encode(n)),
        None => "/containers/create".to_string(),
    };
    let send = || {
        ctx.client
            .request("POST", &path, &[], Body::Json(body.clone()))?
            .ok()
    };
    let response = match send() {
        Err(client::Error::Daemon {
            status: 404,
            message,
        }) if message.starts_with("No such image") => {
            pull_missing(ctx, &a.image).map_err(|e| refused(command, e))?;
            send()
        }
        other => other,
    };
    let v = response.map_err(|e| refused(command, e))?.json()?;
    Ok(v["Id"].as_str().unwrap_or("").to_string())
}

pub fn create(ctx: &Context, a: &CreateArgs) -> anyhow::Result<()> {
    println!("{}", create_container(ctx, a, "create")?);
    Ok(())
}

/// docker's exit code for a start that failed: 127 not found, 126 not executable, else 125.
fn start_failure_code(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        125
    }
}

/// A wait request whose head has been answered (so it is registered in the daemon).
struct PendingWait(std::thread::JoinHandle<anyhow::Result<i32>>);

fn register_wait(ctx: &Context, id: &str, condition: &str) -> anyhow::Result<PendingWait> {
    let response = ctx
        .client
        .request(
            "POST",
            &format!("/containers/{id}/wait?condition={condition}"),
            &[],
            Body::None,
        )?
        .ok()?;
    Ok(PendingWait(std::thread::spawn(move || {
        let v = response.json()?;
        Ok(v["StatusCode"].as_i64().unwrap_or(0) as i32)
    })))
}

impl PendingWait {
    fn code(self) -> anyhow::Result<i32> {
        self.0
            .join()
            .map_err(|_| anyhow::anyhow!("wait thread panicked"))?
    }
}

pub fn run(ctx: &Context, a: &RunArgs) -> anyhow::Result<()> {
    let id = create_container(ctx, &a.create, "run")?;
    if a.detach {
        start_one(ctx, &id, a.create.rm)?;
        println!("{id}");
        return Ok(());
    }
    let c = &a.create;
    let mut query = String::from("stream=1&stdout=1&stderr=1");
    if c.interactive {
        query.push_str("&stdin=1");
    }
    let (reader, writer) = ctx
        .client
        .upgrade(&format!("/containers/{id}/attach?{query}"), None)
        .map_err(|e| refused("run", e))?;
    let wait = register_wait(ctx, &id, if c.rm { "removed" } else { "next-exit" })?;
    let raw = (c.tty && std::io::stdin().is_terminal())
        .then(tty::RawMode::enter)
        .transpose()?;
    start_one(ctx, &id, c.rm)?;
    if c.tty {
        tty::follow_size(ctx.client.clone(), format!("/containers/{id}/resize"));
    }
    stream(reader, writer, c.tty, c.interactive);
    drop(raw);
    let code = wait.code()?;
    if code != 0 {
        return Err(Exit(code).into());
    }
    Ok(())
}

/// Starts `id`; a refusal exits 125/126/127 (and removes an `--rm` container, as docker).
fn start_one(ctx: &Context, id: &str, rm: bool) -> anyhow::Result<()> {
    match ctx.client.post(&format!("/containers/{id}/start")) {
        Ok(_) => Ok(()),
        Err(e) => {
            let message = e.to_string();
            eprintln!("berth: {message}.");
            if rm {
                let _ = ctx.client.request(
                    "DELETE",
                    &format!("/containers/{id}?force=1"),
                    &[],
                    Body::None,
                );
            }
            Err(Exit(start_failure_code(&message)).into())
        }
    }
}

/// Copies a hijacked stream: output to stdout/stderr (docker's frames unless `tty`), and
/// stdin to the connection when `input` (then half-closes it).
pub fn stream(
    mut reader: std::io::BufReader<UnixStream>,
    writer: UnixStream,
    tty: bool,
    input: bool,
) {
    if input {
        let mut writer = writer;
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 8192];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if writer.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = writer.shutdown(std::net::Shutdown::Write);
        });
    }
    if tty {
        let mut out = std::io::stdout();
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = out.flush();
        }
        return;
    }
    demux(&mut reader);
}

/// Docker's 8-byte frames to stdout (1) and stderr (2), until EOF.
pub fn demux(reader: &mut dyn BufRead) {
    let mut head = [0u8; 8];
    let mut payload = Vec::new();
    while reader.read_exact(&mut head).is_ok() {
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        payload.resize(len, 0);
        if reader.read_exact(&mut payload).is_err() {
            break;
        }
        let _ = if head[0] == 2 {
            let mut e = std::io::stderr();
            e.write_all(&payload).and_then(|_| e.flush())
        } else {
            let mut o = std::io::stdout();
            o.write_all(&payload).and_then(|_| o.flush())
        };
    }
}

/// `berth start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn daemon_error(e: client::Error) -> anyhow::Error {
    eprintln!("{e}");
    Exit(1).into()
}

pub fn start(ctx: &Context, a: &StartArgs) -> anyhow::Result<()> {
    if a.attach || a.interactive {
        let name = &a.containers[0];
        let c = ctx
            .client
            .get(&format!("/containers/{name}/json"))
            .map_err(daemon_error)?
            .json()?;
        let id = c["Id"].as_str().unwrap_or(name).to_string();
        let tty = c["Config"]["Tty"].as_bool().unwrap_or(false);
        let mut query = String::from("stream=1&stdout=1&stderr=1");
        if a.interactive {
            query.push_str("&stdin=1");
        }
        let (reader, writer) = ctx
            .client
            .upgrade(&format!("/containers/{id}/attach?{query}"), None)
            .map_err(daemon_error)?;
        let wait = register_wait(ctx, &id, "next-exit")?;
        let raw = (tty && a.interactive && std::io::stdin().is_terminal())
            .then(tty::RawMode::enter)
            .transpose()?;
        start_one(ctx, &id, false)?;
        stream(reader, writer, tty, a.interactive);
        drop(raw);
        let code = wait.code()?;
        return if code != 0 {
            Err(Exit(code).into())
        } else {
            Ok(())
        };
    }
    each(&a.containers, |name| {
        ctx.client
            .post(&format!("/containers/{name}/start"))
            .map(|_| ())
    })
}

/// Runs `f` for each container, printing its name on success and docker's error otherwise;
/// exits 1 if any failed.
fn each(names: &[String], f: impl Fn(&str) -> Result<(), client::Error>) -> anyhow::Result<()> {
    let mut failed = false;
    for name in names {
        match f(name) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// `berth stop` / `berth restart`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait for stop before killing it
    #[arg(short = 't', long = "time")]
    pub time: Option<i64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn stop(ctx: &Context, a: &StopArgs, action: &str) -> anyhow::Result<()> {
    let query = a.time.map(|t| format!("?t={t}")).unwrap_or_default();
    each(&a.containers, |name| {
        ctx.client
            .post(&format!("/containers/{name}/{action}{query}"))
            .map(|_| ())
    })
}

/// `berth kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn kill(ctx: &Context, a: &KillArgs) -> anyhow::Result<()> {
    let signal = encode(&a.signal);
    each(&a.containers, |name| {
        ctx.client
            .post(&format!("/containers/{name}/kill?signal={signal}"))
            .map(|_| ())
    })
}

/// `berth rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn rm(ctx: &Context, a: &RmArgs) -> anyhow::Result<()> {
    let force = u8::from(a.force);
    each(&a.containers, |name| {
        ctx.client
            .request(
                "DELETE",
                &format!("/containers/{name}?force={force}&v={}", u8::from(a.volumes)),
                &[],
                Body::None,
            )?
            .ok()
            .map(|_| ())
    })
}

/// `berth pause` / `unpause` / `wait`.
#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn simple(ctx: &Context, a: &NamesArgs, action: &str) -> anyhow::Result<()> {
    each(&a.containers, |name| {
        ctx.client
            .post(&format!("/containers/{name}/{action}"))
            .map(|_| ())
    })
}

pub fn wait(ctx: &Context, a: &NamesArgs) -> anyhow::Result<()> {
    let mut failed = false;
    for name in &a.containers {
        match ctx
            .client
            .post(&format!("/containers/{name}/wait"))
            .and_then(|r| r.json())
        {
            Ok(v) => println!("{}", v["StatusCode"].as_i64().unwrap_or(0)),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

pub fn rename(ctx: &Context, old: &str, new: &str) -> anyhow::Result<()> {
    ctx.client
        .post(&format!("/containers/{old}/rename?name={}", encode(new)))
        .map_err(daemon_error)?;
    Ok(())
}

/// `berth inspect` / `berth container inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output using a Go-like template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn inspect(ctx: &Context, a: &InspectArgs) -> anyhow::Result<()> {
    super::images::inspect_objects(
        ctx,
        a.format.as_deref(),
        &a.containers,
        |name| format!("/containers/{name}/json"),
        |e, name| match e {
            client::Error::Daemon { status: 404, .. } => {
                anyhow::anyhow!("Error: No such object: {name}")
            }
            e => e.into(),
        },
    )
}

/// `berth ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long)]
    pub last: Option<i64>,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Pretty-print containers using a Go-like template
    #[arg(long)]
    pub format: Option<String>,
}

/// Docker's `Ellipsis`: at most `n` characters, the last one `…` when cut.
pub(crate) fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    s.chars().take(n - 1).collect::<String>() + "…"
}

fn ps_row(c: &Value, no_trunc: bool) -> Value {
    let id = c["Id"].as_str().unwrap_or("");
    let command = c["Command"].as_str().unwrap_or("");
    let command = if no_trunc {
        command.to_string()
    } else {
        ellipsis(command, 20)
    };
    let created = c["Created"].as_i64().unwrap_or(0);
    let now = chrono::Utc::now().timestamp();
    let names: Vec<String> = c["Names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(|n| n.trim_start_matches('/').to_string()))
        .collect();
    let labels: Vec<String> = c["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    json!({
        "ID": if no_trunc { id.to_string() } else { id.chars().take(12).collect() },
        "Image": c["Image"],
        "Command": serde_json::to_string(&command).unwrap_or_default(),
        "CreatedAt": created_at(created),
        "RunningFor": format!("{} ago", human_duration(now - created)),
        "Ports": super::ports::ps_column(&c["Ports"]),
        "Status": c["Status"],
        "State": c["State"],
        "Size": "",
        "Names": names.join(","),
        "Labels": labels.join(","),
        "Mounts": "",
        "Networks": "",
    })
}

fn ps_header(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID".into(),
        "RunningFor" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        other => other.to_uppercase(),
    }
}

pub fn ps(ctx: &Context, a: &PsArgs) -> anyhow::Result<()> {
    let mut filters: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("bad format of filter (expected name=value): {f}"))?;
        filters.entry(k.into()).or_default().push(v.into());
    }
    let limit = if a.latest { Some(1) } else { a.last };
    let mut path = format!(
        "/containers/json?all={}&filters={}",
        u8::from(a.all),
        encode(&serde_json::to_string(&filters)?)
    );
    if let Some(n) = limit {
        path.push_str(&format!("&limit={n}"));
    }
    let list = ctx.client.get(&path).map_err(daemon_error)?.json()?;
    let rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| ps_row(c, a.no_trunc))
        .collect();
    print_rows(
        a.format.as_deref(),
        a.quiet.then_some("{{.ID}}"),
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
        &rows,
        &ps_header,
    )
}

/// `berth logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    pub container: String,
}

pub fn logs(ctx: &Context, a: &LogsArgs) -> anyhow::Result<()> {
    let name = &a.container;
    let c = ctx
        .client
        .get(&format!("/containers/{name}/json"))
        .map_err(daemon_error)?
        .json()?;
    let tty = c["Config"]["Tty"].as_bool().unwrap_or(false);
    let path = format!(
        "/containers/{name}/logs?stdout=1&stderr=1&follow={}&tail={}&timestamps={}",
        u8::from(a.follow),
        encode(&a.tail),
        u8::from(a.timestamps)
    );
    let mut response = ctx.client.get(&path).map_err(daemon_error)?;
    if tty {
        std::io::copy(&mut response.body, &mut std::io::stdout())?;
    } else {
        demux(&mut response.body);
    }
    Ok(())
}

/// `berth exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

pub fn exec(ctx: &Context, a: &ExecArgs) -> anyhow::Result<()> {
    let body = json!({
        "AttachStdin": a.interactive && !a.detach,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Tty": a.tty,
        "Env": a.env,
        "Cmd": a.command,
        "User": a.user.clone().unwrap_or_default(),
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "Privileged": a.privileged,
    });
    let created = ctx
        .client
        .request(
            "POST",
            &format!("/containers/{}/exec", a.container),
            &[],
            Body::Json(serde_json::to_vec(&body)?),
        )?
        .ok()
        .map_err(daemon_error)?
        .json()?;
    let id = created["Id"].as_str().unwrap_or("").to_string();
    let start = serde_json::to_vec(&json!({ "Detach": a.detach, "Tty": a.tty }))?;
    if a.detach {
        ctx.client
            .request("POST", &format!("/exec/{id}/start"), &[], Body::Json(start))?
            .ok()
            .map_err(daemon_error)?;
        return Ok(());
    }
    let (reader, writer) = ctx
        .client
        .upgrade(&format!("/exec/{id}/start"), Some(start))
        .map_err(|e| {
            eprintln!("{e}");
            Exit(126)
        })?;
    let raw = (a.tty && std::io::stdin().is_terminal())
        .then(tty::RawMode::enter)
        .transpose()?;
    if a.tty {
        tty::follow_size(ctx.client.clone(), format!("/exec/{id}/resize"));
    }
    stream(reader, writer, a.tty, a.interactive);
    drop(raw);
    let v = ctx.client.get(&format!("/exec/{id}/json"))?.json()?;
    let code = v["ExitCode"].as_i64().unwrap_or(0) as i32;
    if code != 0 {
        return Err(Exit(code).into());
    }
    Ok(())
}
