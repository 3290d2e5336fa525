//! `volume create|ls|inspect|rm|prune`: docker's flags, table and words.
use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{self, Body};
use super::images::{confirm, inspect_objects};
use super::{encode, Context, Exit};
use crate::cli::format::print_rows;

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused local volumes
    Prune(PruneArgs),
}

pub fn run(ctx: &Context, command: VolumeCommand) -> anyhow::Result<()> {
    match command {
        VolumeCommand::Create(a) => create(ctx, &a),
        VolumeCommand::Ls(a) => list(ctx, &a),
        VolumeCommand::Inspect(a) => inspect(ctx, &a),
        VolumeCommand::Rm(a) => remove(ctx, &a),
        VolumeCommand::Prune(a) => prune(ctx, &a),
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long)]
    pub opt: Vec<String>,
    /// Specify volume name
    #[arg(long)]
    pub name: Option<String>,
    pub volume: Option<String>,
}

/// `k=v` pairs (a bare `k` has an empty value), as docker's map options read them.
fn pairs(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (i.clone(), String::new()),
        })
        .collect()
}

pub fn create(ctx: &Context, a: &CreateArgs) -> anyhow::Result<()> {
    let name = match (&a.name, &a.volume) {
        (Some(n), Some(v)) if n != v => {
            eprintln!(
                "Conflicting options: either specify --name or provide positional arg, not both"
            );
            return Err(Exit(1).into());
        }
        (Some(n), _) | (None, Some(n)) => n.clone(),
        (None, None) => String::new(),
    };
    let opts: BTreeMap<String, String> = a
        .opt
        .iter()
        .map(|o| {
            o.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("invalid argument \"{o}\" for \"-o, --opt\" flag: invalid key value pair format: {o}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let body = json!({
        "Name": name,
        "Driver": a.driver,
        "DriverOpts": opts,
        "Labels": pairs(&a.label),
    });
    let v = ctx
        .client
        .request(
            "POST",
            "/volumes/create",
            &[],
            Body::Json(serde_json::to_vec(&body)?),
        )?
        .ok()?
        .json()?;
    println!("{}", v["Name"].as_str().unwrap_or(""));
    Ok(())
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Provide filter values (e.g. 'dangling=true')
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Pretty-print volumes using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
}

/// `-f k=v` flags as docker's filters JSON.
pub fn filters_json(filters: &[String]) -> anyhow::Result<String> {
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("bad format of filter (expected name=value): {f}"))?;
        map.entry(k.to_string())
            .or_default()
            .insert(v.to_string(), true);
    }
    Ok(serde_json::to_string(&map)?)
}

/// One `ls` row: the fields docker's templates know.
fn row(v: &Value) -> Value {
    let labels: Vec<String> = v["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, val)| format!("{k}={}", val.as_str().unwrap_or("")))
        .collect();
    json!({
        "Name": v["Name"],
        "Driver": v["Driver"],
        "Scope": v["Scope"],
        "Mountpoint": v["Mountpoint"],
        "Labels": labels.join(","),
        "Links": "N/A",
        "Size": "N/A",
    })
}

fn header(field: &str) -> String {
    match field {
        "Name" => "VOLUME NAME".into(),
        other => other.to_uppercase(),
    }
}

pub fn list(ctx: &Context, a: &ListArgs) -> anyhow::Result<()> {
    let filters = filters_json(&a.filter)?;
    let answer = ctx
        .client
        .get(&format!("/volumes?filters={}", encode(&filters)))?
        .json()?;
    let rows: Vec<Value> = answer["Volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(row)
        .collect();
    print_rows(
        a.format.as_deref(),
        a.quiet.then_some("{{.Name}}"),
        "table {{.Driver}}\t{{.Name}}",
        &rows,
        &header,
    )
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

/// docker's client-side words for a missing volume.
fn volume_error(err: client::Error, name: &str) -> anyhow::Error {
    match err {
        client::Error::Daemon { status: 404, .. } => {
            anyhow::anyhow!("Error: No such volume: {name}")
        }
        other => other.into(),
    }
}

pub fn inspect(ctx: &Context, a: &InspectArgs) -> anyhow::Result<()> {
    inspect_objects(
        ctx,
        a.format.as_deref(),
        &a.volumes,
        |name| format!("/volumes/{}", encode(name)),
        volume_error,
    )
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

pub fn remove(ctx: &Context, a: &RmArgs) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for name in &a.volumes {
        let path = format!("/volumes/{}?force={}", encode(name), u8::from(a.force));
        match ctx
            .client
            .request("DELETE", &path, &[], Body::None)
            .and_then(|r| r.ok())
        {
            Ok(_) => println!("{name}"),
            Err(e) => errors.push(volume_error(e, name).to_string()),
        }
    }
    if !errors.is_empty() {
        eprintln!("{}", errors.join("\n"));
        return Err(Exit(1).into());
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. 'label=<label>')
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Prints a prune report: the `title` list (if any) and docker's reclaimed-space line.
pub fn print_pruned(title: &str, names: &Value, reclaimed: f64) {
    if names.as_array().is_some_and(|a| !a.is_empty()) {
        println!("{title}:");
        for n in names.as_array().into_iter().flatten() {
            println!("{}", n.as_str().unwrap_or(""));
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        crate::images::progress::human_size(reclaimed, 4)
    );
}

pub fn prune(ctx: &Context, a: &PruneArgs) -> anyhow::Result<()> {
    let warning = "WARNING! This will remove all local volumes not used by at least one container.";
    if !a.force && !confirm(warning) {
        return Ok(());
    }
    let filters = filters_json(&a.filter)?;
    let report = ctx
        .client
        .post(&format!("/volumes/prune?filters={}", encode(&filters)))?
        .json()?;
    print_pruned(
        "Deleted Volumes",
        &report["VolumesDeleted"],
        report["SpaceReclaimed"].as_f64().unwrap_or(0.0),
    );
    Ok(())
}
