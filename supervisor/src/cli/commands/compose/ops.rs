//! `compose ps`, `logs`, `start`, `stop`, `restart`, `kill`, `rm`, `pause`, `unpause`, `top`,
//! `images`, `port`, `config`: each on the containers of the named services (or all).
use std::io::{BufRead, Write};

use clap::Args;
use serde_json::Value;

use super::{engine, service_containers, Context};
use crate::cli::client::Body;
use crate::cli::commands::ports::join_host;
use crate::cli::format::{created_at, tabulate};
use crate::compose::engine::Existing;
use crate::compose::model::Project;
use crate::compose::output;

#[derive(Debug, Args)]
pub struct ServicesArgs {
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all stopped containers
    #[arg(short, long)]
    pub all: bool,
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Display services
    #[arg(long = "services")]
    pub services_only: bool,
    /// Format the output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs for each container
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Produce monochrome output
    #[arg(long)]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long)]
    pub no_log_prefix: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// SIGNAL to send to the container
    #[arg(short, long, default_value = "SIGKILL")]
    pub signal: String,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Don't ask to confirm removal
    #[arg(short, long)]
    pub force: bool,
    /// Stop the containers, if required, before removing
    #[arg(short, long)]
    pub stop: bool,
    /// Remove any anonymous volumes attached to containers
    #[arg(short, long)]
    pub volumes: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    pub private_port: u16,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the service names, one per line
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Only validate the configuration, don't print anything
    #[arg(short, long)]
    pub quiet: bool,
    /// Format the output: yaml or json
    #[arg(long, default_value = "yaml")]
    pub format: String,
}

fn ports_text(c: &Value) -> String {
    let mut out: Vec<String> = c["Ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let private = format!(
                "{}/{}",
                p["PrivatePort"],
                p["Type"].as_str().unwrap_or("tcp")
            );
            match p["PublicPort"].as_u64() {
                Some(public) => format!(
                    "{}->{private}",
                    join_host(p["IP"].as_str().unwrap_or("0.0.0.0"), &public.to_string())
                ),
                None => private,
            }
        })
        .collect();
    out.dedup();
    out.join(", ")
}

pub fn ps(ctx: &Context, p: &Project, a: &PsArgs) -> anyhow::Result<()> {
    let e = engine(ctx, p);
    let list = service_containers(&e, &a.services, a.all)?;
    if a.services_only {
        let mut names: Vec<&String> = list.iter().map(|c| &c.service).collect();
        names.dedup();
        for n in names {
            println!("{n}");
        }
        return Ok(());
    }
    if a.quiet {
        for c in &list {
            println!("{}", c.id);
        }
        return Ok(());
    }
    if a.format == "json" {
        let rows: Vec<Value> = list
            .iter()
            .map(|c| {
                serde_json::json!({
                    "ID": c.id, "Name": c.name, "Image": c.summary["Image"],
                    "Command": c.summary["Command"], "Project": p.name, "Service": c.service,
                    "State": c.state, "Status": c.summary["Status"],
                    "Health": health_of(&c.summary), "ExitCode": 0,
                    "Publishers": c.summary["Ports"],
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.summary["Image"].as_str().unwrap_or("").to_string(),
                format!("{:?}", c.summary["Command"].as_str().unwrap_or("")),
                c.service.clone(),
                created_at(c.summary["Created"].as_i64().unwrap_or(0)),
                c.summary["Status"].as_str().unwrap_or("").to_string(),
                ports_text(&c.summary),
            ]
        })
        .collect();
    let header = [
        "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
    ];
    print!("{}", table(&header, &rows));
    Ok(())
}

fn health_of(summary: &Value) -> String {
    let status = summary["Status"].as_str().unwrap_or("");
    ["healthy", "unhealthy", "starting"]
        .iter()
        .find(|h| status.contains(&format!("({h})")) || status.contains(&format!("(health: {h})")))
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Aligned columns under a header.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut lines = vec![header.join("\t")];
    lines.extend(rows.iter().map(|r| r.join("\t")));
    tabulate(&lines)
}

const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// Follows one container's log in a thread, each line prefixed with its name.
pub fn follow(
    ctx: &Context,
    c: &Existing,
    width: usize,
    colors: bool,
    index: usize,
    query: &str,
) -> std::thread::JoinHandle<()> {
    let prefix = match colors {
        true => format!(
            "\x1b[{}m{:width$} |\x1b[0m ",
            COLORS[index % COLORS.len()],
            c.name
        ),
        false => format!("{:width$} | ", c.name),
    };
    let client = ctx.client.clone();
    let path = format!("/containers/{}/logs?stdout=1&stderr=1&{query}", c.id);
    let inspect = format!("/containers/{}/json", c.id);
    std::thread::spawn(move || {
        let tty = client
            .get(&inspect)
            .ok()
            .and_then(|r| r.json().ok())
            .and_then(|v| v["Config"]["Tty"].as_bool())
            .unwrap_or(false);
        let Ok(r) = client.request("GET", &path, &[], Body::None) else {
            return;
        };
        let Ok(mut r) = r.ok() else { return };
        print_lines(&mut r.body, &prefix, tty);
    })
}

/// Prints a log stream line by line behind `prefix` (docker's frames unless `tty`).
fn print_lines(body: &mut dyn BufRead, prefix: &str, tty: bool) {
    let mut pending = String::new();
    let emit = |bytes: &[u8], pending: &mut String| {
        pending.push_str(&String::from_utf8_lossy(bytes));
        while let Some(i) = pending.find('\n') {
            let line: String = pending.drain(..=i).collect();
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(format!("{prefix}{line}").as_bytes());
            let _ = out.flush();
        }
    };
    if tty {
        let mut buf = [0u8; 8192];
        while let Ok(n) = body.read(&mut buf) {
            if n == 0 {
                break;
            }
            emit(&buf[..n], &mut pending);
        }
    } else {
        let mut head = [0u8; 8];
        let mut payload = Vec::new();
        while body.read_exact(&mut head).is_ok() {
            let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
            payload.resize(len, 0);
            if body.read_exact(&mut payload).is_err() {
                break;
            }
            emit(&payload, &mut pending);
        }
    }
    if !pending.is_empty() {
        println!("{prefix}{pending}");
    }
}

pub fn logs(ctx: &Context, p: &Project, a: &LogsArgs) -> anyhow::Result<()> {
    let e = engine(ctx, p);
    let list = service_containers(&e, &a.services, true)?;
    let width = list.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let colors = super::stdout_is_tty() && !a.no_color;
    let mut query = format!("tail={}", super::super::encode(&a.tail));
    if a.follow {
        query.push_str("&follow=1");
    }
    if a.timestamps {
        query.push_str("&timestamps=1");
    }
    let handles: Vec<_> = list
        .iter()
        .enumerate()
        .map(|(i, c)| match a.no_log_prefix {
            true => follow_bare(ctx, c, &query),
            false => follow(ctx, c, width, colors, i, &query),
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

fn follow_bare(ctx: &Context, c: &Existing, query: &str) -> std::thread::JoinHandle<()> {
    let client = ctx.client.clone();
    let path = format!("/containers/{}/logs?stdout=1&stderr=1&{query}", c.id);
    std::thread::spawn(move || {
        if let Ok(Ok(mut r)) = client
            .request("GET", &path, &[], Body::None)
            .map(|r| r.ok())
        {
            print_lines(&mut r.body, "", false);
        }
    })
}

/// `start`, `pause`, `unpause`: one call per container.
pub fn simple(ctx: &Context, p: &Project, services: &[String], action: &str) -> anyhow::Result<()> {
    let e = engine(ctx, p);
    let all = action == "start";
    let list = service_containers(&e, services, all)?;
    if action == "start" {
        for name in crate::compose::graph::start_order(&p.services)? {
            let Some(s) = p.services.get(&name) else {
                continue;
            };
            let mine: Vec<&Existing> = list.iter().filter(|c| c.service == name).collect();
            if mine.is_empty() {
                continue;
            }
            e.wait_dependencies(s).map_err(super::fail)?;
            for c in mine.into_iter().filter(|c| c.state != "running") {
                e.start(&c.id, &c.name).map_err(super::fail)?;
            }
        }
        return Ok(());
    }
    for c in &list {
        ctx.client
            .post(&format!("/containers/{}/{action}", c.id))
            .map_err(super::fail)?;
        let done = if action == "pause" {
            "Paused"
        } else {
            "Unpaused"
        };
        super::report("Container", &c.name, done);
    }
    Ok(())
}

pub fn stop(ctx: &Context, p: &Project, a: &StopArgs, action: &str) -> anyhow::Result<()> {
    let e = engine(ctx, p);
    let list = service_containers(&e, &a.services, action == "restart")?;
    if action == "stop" {
        let all: Vec<&Existing> = list.iter().collect();
        return e
            .parallel(&all, |c| e.stop(c, a.timeout))
            .map_err(super::fail);
    }
    for c in &list {
        let path = match a.timeout {
            Some(t) => format!("/containers/{}/restart?t={t}", c.id),
            None => format!("/containers/{}/restart", c.id),
        };
        super::report("Container", &c.name, "Restarting");
        ctx.client.post(&path).map_err(super::fail)?;
        super::report("Container", &c.name, "Started");
    }
    Ok(())
}

pub fn kill(ctx: &Context, p: &Project, a: &KillArgs) -> anyhow::Result<()> {
    let e = engine(ctx, p);
    for c in service_containers(&e, &a.services, false)? {
        let path = format!(
            "/containers/{}/kill?signal={}",
            c.id,
            super::super::encode(&a.signal)
        );
        ctx.client.post(&path).map_err(super::fail)?;
        super::report("Container", &c.name, "Killed");
    }
    Ok(())
}

pub fn rm(ctx: &Context, p: &Project, a: &RmArgs) -> anyhow::Result<()> {
    let e = engine(ctx, p);
    let list = service_containers(&e, &a.services, true)?;
    for c in &list {
        if c.state == "running" || c.state == "paused" {
            match a.stop {
                true => e.stop(c, None).map_err(super::fail)?,
                false => continue,
            }
        }
        e.remove(c, a.volumes).map_err(super::fail)?;
    }
    if list.is_empty() {
        eprintln!("No stopped containers");
    }
    Ok(())
}

pub fn top(ctx: &Context, p: &Project, a: &ServicesArgs) -> anyhow::Result<()> {
    let e = engine(ctx, p);
    for c in service_containers(&e, &a.services, false)? {
        let v = ctx
            .client
            .get(&format!("/containers/{}/top", c.id))?
            .json()?;
        println!("{}", c.name);
        let header: Vec<String> = v["Titles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t.as_str().unwrap_or("").to_string())
            .collect();
        let rows: Vec<Vec<String>> = v["Processes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r.as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| x.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        print!("{}", table(&header, &rows));
        println!();
    }
    Ok(())
}

pub fn images(ctx: &Context, p: &Project, a: &ServicesArgs) -> anyhow::Result<()> {
    let e = engine(ctx, p);
    let mut rows = Vec::new();
    for c in service_containers(&e, &a.services, true)? {
        let image = c.summary["Image"].as_str().unwrap_or("").to_string();
        let (repo, tag) = match image.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((r, t)) => (r.to_string(), t.to_string()),
            None => (image.clone(), "latest".to_string()),
        };
        let v = ctx
            .client
            .get(&format!("/images/{}/json", super::super::encode(&image)))
            .ok()
            .and_then(|r| r.json().ok())
            .unwrap_or_default();
        let id = v["Id"].as_str().unwrap_or("").trim_start_matches("sha256:");
        let size = v["Size"].as_u64().unwrap_or(0);
        rows.push(vec![
            c.name.clone(),
            repo,
            tag,
            id.chars().take(12).collect(),
            crate::cli::format::human_size(size as f64),
        ]);
    }
    let header = ["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"];
    print!("{}", table(&header, &rows));
    Ok(())
}

pub fn port(ctx: &Context, p: &Project, a: &PortArgs) -> anyhow::Result<()> {
    let e = engine(ctx, p);
    let c = service_containers(&e, std::slice::from_ref(&a.service), false)?
        .into_iter()
        .find(|c| c.number == a.index)
        .ok_or_else(|| {
            super::fail(format!(
                "service {:?} has no running container number {}",
                a.service, a.index
            ))
        })?;
    let v = ctx
        .client
        .get(&format!("/containers/{}/json", c.id))?
        .json()?;
    let key = format!("{}/{}", a.private_port, a.protocol);
    let binding = &v["NetworkSettings"]["Ports"][&key][0];
    match binding["HostPort"].as_str() {
        Some(port) => {
            println!("{}:{port}", binding["HostIp"].as_str().unwrap_or("0.0.0.0"));
            Ok(())
        }
        None => Err(super::fail(format!(
            "no port {key} published for {}",
            c.name
        ))),
    }
}

pub fn config(p: &Project, a: &ConfigArgs) -> anyhow::Result<()> {
    if a.quiet {
        return Ok(());
    }
    if a.services {
        for name in p.services.keys() {
            println!("{name}");
        }
        return Ok(());
    }
    if a.volumes {
        for name in p.volumes.keys() {
            println!("{name}");
        }
        return Ok(());
    }
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(p)?),
        "yaml" => print!("{}", output::project_yaml(p)),
        other => anyhow::bail!("unsupported format {other:?}: yaml or json"),
    }
    Ok(())
}
