//! `system df`, `system prune`, `builder prune`: docker's tables, warnings and
//! reclaimed-space lines over `/system/df` and the prune endpoints.
use clap::{Args, Subcommand};
use serde_json::Value;

use super::images::confirm;
use super::{encode, Context};
use crate::cli::format::{human_duration, tabulate};
use crate::images::progress::human_size;

/// `units.HumanSize` (4 significant digits).
fn size4(bytes: i64) -> String {
    human_size(bytes as f64, 4)
}

/// `units.HumanSizeWithPrecision(n, 3)`.
fn size3(bytes: i64) -> String {
    human_size(bytes as f64, 3)
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// `size (percent%)`, docker's reclaimable cell; the plain size when nothing is counted.
fn reclaimable(reclaim: i64, total: i64) -> String {
    if total > 0 {
        format!("{} ({}%)", size4(reclaim), reclaim * 100 / total)
    } else {
        size4(reclaim)
    }
}

fn container_active(c: &Value) -> bool {
    let state = c["State"].as_str().unwrap_or("");
    ["running", "paused", "restarting"]
        .iter()
        .any(|s| state.contains(s))
}

/// The four summary rows of `system df`.
pub fn summary(du: &Value) -> String {
    let images = list(&du["Images"]);
    let total = int(&du["LayersSize"]);
    let used: i64 = images
        .iter()
        .filter(|i| int(&i["Containers"]) != 0)
        .filter(|i| int(&i["Size"]) != -1 && int(&i["SharedSize"]) != -1)
        .map(|i| int(&i["Size"]) - int(&i["SharedSize"]))
        .sum();
    let image_row = format!(
        "Images\t{}\t{}\t{}\t{}",
        images.len(),
        images.iter().filter(|i| int(&i["Containers"]) > 0).count(),
        size4(total),
        reclaimable(total - used, total)
    );
    let containers = list(&du["Containers"]);
    let rw: i64 = containers.iter().map(|c| int(&c["SizeRw"])).sum();
    let idle: i64 = containers
        .iter()
        .filter(|c| !container_active(c))
        .map(|c| int(&c["SizeRw"]))
        .sum();
    let container_row = format!(
        "Containers\t{}\t{}\t{}\t{}",
        containers.len(),
        containers.iter().filter(|c| container_active(c)).count(),
        size4(rw),
        reclaimable(idle, rw)
    );
    let volumes = list(&du["Volumes"]);
    let sized = || {
        volumes
            .iter()
            .filter(|v| int(&v["UsageData"]["Size"]) != -1)
    };
    let vsize: i64 = sized().map(|v| int(&v["UsageData"]["Size"])).sum();
    let vfree: i64 = sized()
        .filter(|v| int(&v["UsageData"]["RefCount"]) == 0)
        .map(|v| int(&v["UsageData"]["Size"]))
        .sum();
    let volume_row = format!(
        "Local Volumes\t{}\t{}\t{}\t{}",
        volumes.len(),
        volumes
            .iter()
            .filter(|v| int(&v["UsageData"]["RefCount"]) > 0)
            .count(),
        size4(vsize),
        reclaimable(vfree, vsize)
    );
    let cache = list(&du["BuildCache"]);
    let unshared = |c: &&Value| !c["Shared"].as_bool().unwrap_or(false);
    let csize: i64 = cache.iter().filter(unshared).map(|c| int(&c["Size"])).sum();
    let in_use: i64 = cache
        .iter()
        .filter(unshared)
        .filter(|c| c["InUse"].as_bool().unwrap_or(false))
        .map(|c| int(&c["Size"]))
        .sum();
    let cache_row = format!(
        "Build Cache\t{}\t{}\t{}\t{}",
        cache.len(),
        cache
            .iter()
            .filter(|c| c["InUse"].as_bool().unwrap_or(false))
            .count(),
        size4(csize),
        size4(csize - in_use)
    );
    tabulate(&[
        "TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE".into(),
        image_row,
        container_row,
        volume_row,
        cache_row,
    ])
}

fn ago(unix: i64) -> String {
    format!(
        "{} ago",
        human_duration(chrono::Utc::now().timestamp() - unix)
    )
}

fn rfc3339_ago(v: &Value) -> String {
    v.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| ago(t.timestamp()))
        .unwrap_or_default()
}

fn image_line(i: &Value) -> String {
    let tags = list(&i["RepoTags"]);
    let first = tags
        .first()
        .and_then(Value::as_str)
        .filter(|t| *t != "<none>:<none>");
    let (repo, tag) = first
        .and_then(|t| t.rsplit_once(':'))
        .unwrap_or(("<none>", "<none>"));
    let id = i["Id"].as_str().unwrap_or("");
    let id: String = id.trim_start_matches("sha256:").chars().take(12).collect();
    let (size, shared) = (int(&i["Size"]), int(&i["SharedSize"]));
    let shared_cell = if shared == -1 {
        "N/A".into()
    } else {
        size4(shared)
    };
    let containers = match int(&i["Containers"]) {
        -1 => "N/A".to_string(),
        n => n.to_string(),
    };
    format!(
        "{repo}\t{tag}\t{id}\t{}\t{}\t{shared_cell}\t{}\t{containers}",
        ago(int(&i["Created"])),
        size3(size),
        size4(size - shared.max(0)),
    )
}

fn container_line(c: &Value) -> String {
    let id: String = c["Id"].as_str().unwrap_or("").chars().take(12).collect();
    let command = super::containers::ellipsis(c["Command"].as_str().unwrap_or(""), 20);
    let volumes = list(&c["Mounts"])
        .iter()
        .filter(|m| m["Driver"] == "local")
        .count();
    let names: Vec<&str> = list(&c["Names"])
        .iter()
        .filter_map(Value::as_str)
        .map(|n| n.trim_start_matches('/'))
        .filter(|n| !n.contains('/'))
        .collect();
    format!(
        "{id}\t{}\t{}\t{volumes}\t{}\t{}\t{}\t{}",
        c["Image"].as_str().unwrap_or(""),
        serde_json::to_string(&command).unwrap_or_default(),
        size3(int(&c["SizeRw"])),
        ago(int(&c["Created"])),
        c["Status"].as_str().unwrap_or(""),
        names.join(",")
    )
}

fn cache_line(c: &Value) -> String {
    let mut id: String = c["ID"].as_str().unwrap_or("").chars().take(12).collect();
    if c["InUse"].as_bool().unwrap_or(false) {
        id.push('*');
    }
    format!(
        "{id}\t{}\t{}\t{}\t{}\t{}\t{}",
        c["Type"].as_str().unwrap_or(""),
        size3(int(&c["Size"])),
        rfc3339_ago(&c["CreatedAt"]),
        rfc3339_ago(&c["LastUsedAt"]),
        int(&c["UsageCount"]),
        c["Shared"].as_bool().unwrap_or(false)
    )
}

fn section(header: &str, rows: Vec<String>) -> String {
    let mut lines = vec![header.to_string()];
    lines.extend(rows);
    tabulate(&lines)
}

/// `system df -v`: one table per kind.
pub fn verbose(du: &Value) -> String {
    let mut out = String::from("Images space usage:\n\n");
    out += &section(
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS",
        list(&du["Images"]).iter().map(image_line).collect(),
    );
    out += "\nContainers space usage:\n\n";
    out += &section(
        "CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES",
        list(&du["Containers"]).iter().map(container_line).collect(),
    );
    out += "\nLocal Volumes space usage:\n\n";
    out += &section(
        "VOLUME NAME\tLINKS\tSIZE",
        list(&du["Volumes"])
            .iter()
            .map(|v| {
                format!(
                    "{}\t{}\t{}",
                    v["Name"].as_str().unwrap_or(""),
                    int(&v["UsageData"]["RefCount"]),
                    size4(int(&v["UsageData"]["Size"]))
                )
            })
            .collect(),
    );
    let cache = list(&du["BuildCache"]);
    let builder: i64 = cache
        .iter()
        .filter(|c| !c["Shared"].as_bool().unwrap_or(false))
        .map(|c| int(&c["Size"]))
        .sum();
    out += &format!("\nBuild cache usage: {}\n\n", size4(builder));
    out += &section(
        "CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED",
        cache.iter().map(cache_line).collect(),
    );
    out
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short, long)]
    pub verbose: bool,
}

pub fn df(ctx: &Context, a: &DfArgs) -> anyhow::Result<()> {
    let du = ctx.client.get("/system/df")?.json()?;
    print!(
        "{}",
        if a.verbose {
            verbose(&du)
        } else {
            summary(&du)
        }
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Prune volumes
    #[arg(long)]
    pub volumes: bool,
    /// Provide filter values (e.g. 'label=<key>=<value>')
    #[arg(long)]
    pub filter: Vec<String>,
}

/// docker's `system prune` warning for these options.
fn system_warning(a: &SystemPruneArgs) -> String {
    let mut items = vec![
        "all stopped containers",
        "all networks not used by at least one container",
    ];
    if a.volumes {
        items.push("all anonymous volumes not used by at least one container");
    }
    if a.all {
        items.push("all images without at least one container associated to them");
        items.push("all build cache");
    } else {
        items.push("all dangling images");
        items.push("all dangling build cache");
    }
    let mut w = String::from("WARNING! This will remove:\n");
    for item in items {
        w += &format!("  - {item}\n");
    }
    if !a.filter.is_empty() {
        w += "\n  Items to be pruned will be filtered with:\n";
        for f in &a.filter {
            w += &format!("  - {f}\n");
        }
    }
    w
}

/// One prune call: what it printed (empty when nothing went) and the bytes it reclaimed.
fn prune_step(
    ctx: &Context,
    path: &str,
    filters: &str,
    key: &str,
    title: &str,
) -> anyhow::Result<(String, i64)> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let report = ctx
        .client
        .post(&format!("{path}{sep}filters={}", encode(filters)))?
        .json()?;
    let items = list(&report[key]);
    let mut out = String::new();
    if !items.is_empty() {
        out = format!("{title}:\n");
        for item in items {
            match (item.as_str(), &item["Untagged"], &item["Deleted"]) {
                (Some(s), _, _) => out += &format!("{s}\n"),
                (_, Value::String(u), _) => out += &format!("untagged: {u}\n"),
                (_, _, Value::String(d)) => out += &format!("deleted: {d}\n"),
                _ => {}
            }
        }
    }
    Ok((out, int(&report["SpaceReclaimed"])))
}

fn filters_with(filter: &[String], extra: Option<(&str, &str)>) -> anyhow::Result<String> {
    let mut all = filter.to_vec();
    if let Some((k, v)) = extra {
        all.push(format!("{k}={v}"));
    }
    super::volumes::filters_json(&all)
}

pub fn system_prune(ctx: &Context, a: &SystemPruneArgs) -> anyhow::Result<()> {
    if a.volumes && a.filter.iter().any(|f| f.starts_with("until=")) {
        anyhow::bail!("ERROR: The \"until\" filter is not supported with \"--volumes\"");
    }
    if !a.force && !confirm(system_warning(a).trim_end()) {
        return Ok(());
    }
    let plain = filters_with(&a.filter, None)?;
    let dangling = if a.all { "false" } else { "true" };
    let images = filters_with(&a.filter, Some(("dangling", dangling)))?;
    let mut steps = vec![
        (
            "/containers/prune",
            plain.clone(),
            "ContainersDeleted",
            "Deleted Containers",
        ),
        (
            "/networks/prune",
            plain.clone(),
            "NetworksDeleted",
            "Deleted Networks",
        ),
    ];
    if a.volumes {
        steps.push((
            "/volumes/prune",
            plain.clone(),
            "VolumesDeleted",
            "Deleted Volumes",
        ));
    }
    steps.push(("/images/prune", images, "ImagesDeleted", "Deleted Images"));
    let build = if a.all {
        "/build/prune?all=1"
    } else {
        "/build/prune"
    };
    steps.push((build, plain, "CachesDeleted", "Deleted build cache objects"));
    let mut reclaimed = 0;
    for (path, filters, key, title) in steps {
        let (out, bytes) = prune_step(ctx, path, &filters, key, title)?;
        reclaimed += bytes;
        if !out.is_empty() {
            println!("{out}");
        }
    }
    println!("Total reclaimed space: {}", size4(reclaimed));
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune(BuilderPruneArgs),
}

#[derive(Debug, Args)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. 'until=24h')
    #[arg(long)]
    pub filter: Vec<String>,
}

pub fn builder(ctx: &Context, command: BuilderCommand) -> anyhow::Result<()> {
    let BuilderCommand::Prune(a) = command;
    let warning = if a.all {
        "WARNING! This will remove all build cache."
    } else {
        "WARNING! This will remove all dangling build cache."
    };
    if !a.force && !confirm(warning) {
        return Ok(());
    }
    let path = if a.all {
        "/build/prune?all=1"
    } else {
        "/build/prune"
    };
    let filters = filters_with(&a.filter, None)?;
    let (out, bytes) = prune_step(
        ctx,
        path,
        &filters,
        "CachesDeleted",
        "Deleted build cache objects",
    )?;
    if !out.is_empty() {
        println!("{out}");
    }
    println!("Total reclaimed space: {}", size4(bytes));
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show docker disk usage
    Df(DfArgs),
    /// Remove unused data
    Prune(SystemPruneArgs),
    /// Get real time events from the server
    Events(super::events::EventsArgs),
    /// Display system-wide information
    Info,
}

pub fn system(ctx: &Context, command: SystemCommand) -> anyhow::Result<()> {
    match command {
        SystemCommand::Df(a) => df(ctx, &a),
        SystemCommand::Prune(a) => system_prune(ctx, &a),
        SystemCommand::Events(a) => super::events::events(ctx, &a),
        SystemCommand::Info => super::system::info(ctx),
    }
}
