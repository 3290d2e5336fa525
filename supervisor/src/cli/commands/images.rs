//! `images`, `image inspect`, `history`, `tag`, `rmi`, `image prune`.
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context as _;
use clap::Args;
use serde_json::{json, Value};

use super::{encode, object_error, Context, Exit};
use crate::cli::format::{created_at, human_size, render_rows, since, Template};
use crate::images::reference::Reference;

/// `berth images` / `berth image ls`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output based on conditions provided (dangling=true, reference=PATTERN)
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Pretty-print images using a Go-like template, `table …` or `json`
    #[arg(long)]
    pub format: Option<String>,
    /// REPOSITORY[:TAG]
    pub repository: Option<String>,
}

pub fn filters_json(filters: &[String], reference: Option<&str>) -> anyhow::Result<String> {
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("bad format of filter (expected name=value): {f}"))?;
        map.entry(k.to_string())
            .or_default()
            .insert(v.to_string(), true);
    }
    if let Some(r) = reference {
        map.entry("reference".into())
            .or_default()
            .insert(r.to_string(), true);
    }
    Ok(serde_json::to_string(&map)?)
}

fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        return id.to_string();
    }
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Splits `repo:tag` / `repo@digest` the way docker's image table does.
fn split_name(name: &str, sep: char) -> (String, String) {
    match name.rfind(sep) {
        Some(i) if !name[i + 1..].contains('/') => {
            (name[..i].to_string(), name[i + 1..].to_string())
        }
        _ => (name.to_string(), "<none>".to_string()),
    }
}

/// Rows of one image: one per tag (times each digest with `--digests`), `<none>` otherwise.
fn image_rows(image: &Value, digests: bool, no_trunc: bool) -> Vec<Value> {
    let strings = |key: &str| -> Vec<String> {
        image[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut repos: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for tag in strings("RepoTags").iter().filter(|t| *t != "<none>:<none>") {
        let (repo, tag) = split_name(tag, ':');
        repos.entry(repo).or_default().0.push(tag);
    }
    for d in strings("RepoDigests")
        .iter()
        .filter(|d| *d != "<none>@<none>")
    {
        let (repo, digest) = split_name(d, '@');
        repos.entry(repo).or_default().1.push(digest);
    }
    let row = |repo: &str, tag: &str, digest: &str| row_json(image, repo, tag, digest, no_trunc);
    if repos.is_empty() {
        return vec![row("<none>", "<none>", "<none>")];
    }
    let mut rows = Vec::new();
    for (repo, (tags, repo_digests)) in repos {
        let shown: &[String] = if digests { &repo_digests } else { &[] };
        if tags.is_empty() {
            // A digest-only name: a row per digest with --digests, else one bare row.
            match digests {
                true => rows.extend(shown.iter().map(|d| row(&repo, "<none>", d))),
                false => rows.push(row(&repo, "<none>", "")),
            }
            continue;
        }
        for tag in &tags {
            if shown.is_empty() {
                rows.push(row(&repo, tag, "<none>"));
            }
            rows.extend(shown.iter().map(|d| row(&repo, tag, d)));
        }
    }
    rows
}

fn row_json(image: &Value, repo: &str, tag: &str, digest: &str, no_trunc: bool) -> Value {
    let created = image["Created"].as_i64().unwrap_or(0);
    let size = human_size(image["Size"].as_f64().unwrap_or(0.0));
    json!({
        "Containers": "N/A",
        "CreatedAt": created_at(created),
        "CreatedSince": since(created),
        "Digest": digest,
        "ID": short_id(image["Id"].as_str().unwrap_or(""), no_trunc),
        "Repository": repo,
        "SharedSize": "N/A",
        "Size": size,
        "Tag": tag,
        "UniqueSize": "N/A",
        "VirtualSize": size,
    })
}

fn image_header(field: &str) -> String {
    match field {
        "ID" => "IMAGE ID".into(),
        "CreatedSince" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        "VirtualSize" => "VIRTUAL SIZE".into(),
        "SharedSize" => "SHARED SIZE".into(),
        "UniqueSize" => "UNIQUE SIZE".into(),
        other => other.to_uppercase(),
    }
}

/// `berth images`.
pub fn list(ctx: &Context, args: &ListArgs) -> anyhow::Result<()> {
    let filters = filters_json(&args.filter, args.repository.as_deref())?;
    let path = format!(
        "/images/json?all={}&digests=1&filters={}",
        u8::from(args.all),
        encode(&filters)
    );
    let images = ctx.client.get(&path)?.json()?;
    let rows: Vec<Value> = images
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| image_rows(i, args.digests, args.no_trunc))
        .collect();
    let format = match (&args.format, args.quiet, args.digests) {
        (Some(f), _, _) => f.clone(),
        (None, true, _) => "{{.ID}}".into(),
        (None, false, true) => {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
                .into()
        }
        (None, false, false) => {
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".into()
        }
    };
    let template = Template::parse(&format)?;
    print!("{}", render_rows(&template, &rows, &image_header));
    Ok(())
}

/// `berth image inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output using a Go-like template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub fn inspect(ctx: &Context, args: &InspectArgs) -> anyhow::Result<()> {
    inspect_objects(
        ctx,
        args.format.as_deref(),
        &args.images,
        |name| format!("/images/{name}/json"),
        object_error,
    )
}

/// `inspect` of several objects, as docker does it: each one's JSON at `path(name)`, rendered
/// with the template or as one pretty array; an object that fails is reported with `error`
/// and makes the command exit 1 after the others are printed.
pub fn inspect_objects(
    ctx: &Context,
    format: Option<&str>,
    names: &[String],
    path: impl Fn(&str) -> String,
    error: impl Fn(crate::cli::client::Error, &str) -> anyhow::Error,
) -> anyhow::Result<()> {
    let template = format.map(Template::parse).transpose()?;
    let mut found = Vec::new();
    let mut failed = false;
    for name in names {
        match ctx.client.get(&path(name)).and_then(|r| r.json()) {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("{}", error(e, name));
                failed = true;
            }
        }
    }
    match template {
        Some(t) => found.iter().for_each(|v| println!("{}", t.render(v))),
        None => println!("{}", pretty4(&Value::Array(found))?),
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// JSON indented by 4 spaces, like `docker inspect`.
pub fn pretty4(value: &Value) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(value, &mut ser)?;
    Ok(String::from_utf8(out)?)
}

/// `berth history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Pretty-print history using a Go-like template
    #[arg(long)]
    pub format: Option<String>,
    pub image: String,
}

fn history_row(entry: &Value, no_trunc: bool) -> Value {
    let id = entry["Id"].as_str().unwrap_or("<missing>");
    let id = if id == "<missing>" {
        id.to_string()
    } else {
        short_id(id, no_trunc)
    };
    let mut created_by = entry["CreatedBy"].as_str().unwrap_or("").replace('\t', " ");
    if !no_trunc && created_by.chars().count() > 45 {
        created_by = created_by.chars().take(44).collect::<String>() + "…";
    }
    let created = entry["Created"].as_i64().unwrap_or(0);
    json!({
        "ID": id,
        "CreatedSince": since(created),
        "CreatedAt": created_at(created),
        "CreatedBy": created_by,
        "Size": human_size(entry["Size"].as_f64().unwrap_or(0.0)),
        "Comment": entry["Comment"].as_str().unwrap_or(""),
    })
}

fn history_header(field: &str) -> String {
    match field {
        "ID" => "IMAGE".into(),
        "CreatedSince" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        "CreatedBy" => "CREATED BY".into(),
        other => other.to_uppercase(),
    }
}

pub fn history(ctx: &Context, args: &HistoryArgs) -> anyhow::Result<()> {
    let entries = ctx
        .client
        .get(&format!("/images/{}/history", args.image))?
        .json()?;
    let rows: Vec<Value> = entries
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| history_row(e, args.no_trunc))
        .collect();
    let format = match (&args.format, args.quiet) {
        (Some(f), _) => f.clone(),
        (None, true) => "{{.ID}}".into(),
        (None, false) => {
            "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".into()
        }
    };
    let template = Template::parse(&format)?;
    print!("{}", render_rows(&template, &rows, &history_header));
    Ok(())
}

/// `berth tag SOURCE TARGET`.
pub fn tag(ctx: &Context, source: &str, target: &str) -> anyhow::Result<()> {
    let r = Reference::parse(target)?;
    if r.digest.is_some() {
        anyhow::bail!("refusing to create a tag with a digest reference");
    }
    let path = format!(
        "/images/{source}/tag?repo={}&tag={}",
        encode(&r.familiar_name()),
        encode(r.tag.as_deref().unwrap_or("latest"))
    );
    ctx.client.post(&path)?;
    Ok(())
}

/// `berth rmi`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    pub no_prune: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

fn print_removed(items: &Value, lower: bool) {
    for item in items.as_array().into_iter().flatten() {
        let (label, value) = match (item["Untagged"].as_str(), item["Deleted"].as_str()) {
            (Some(u), _) => ("Untagged", u),
            (_, Some(d)) => ("Deleted", d),
            _ => continue,
        };
        let label = if lower {
            label.to_lowercase()
        } else {
            label.to_string()
        };
        println!("{label}: {value}");
    }
}

pub fn remove(ctx: &Context, args: &RemoveArgs) -> anyhow::Result<()> {
    let mut failed = false;
    for name in &args.images {
        let path = format!(
            "/images/{name}?force={}&noprune={}",
            u8::from(args.force),
            u8::from(args.no_prune)
        );
        let result = ctx
            .client
            .request("DELETE", &path, &[], super::client::Body::None)
            .and_then(|r| r.ok())
            .and_then(|r| r.json());
        match result {
            Ok(removed) => print_removed(&removed, false),
            Err(e) => {
                eprintln!("{}", object_error(e, name));
                failed = true;
            }
        }
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// `berth image prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub fn confirm(warning: &str) -> bool {
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y")
}

pub fn prune(ctx: &Context, args: &PruneArgs) -> anyhow::Result<()> {
    let warning = if args.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !args.force && !confirm(warning) {
        return Ok(());
    }
    let filters = if args.all {
        r#"{"dangling":{"false":true}}"#
    } else {
        r#"{"dangling":{"true":true}}"#
    };
    let report = ctx
        .client
        .post(&format!("/images/prune?filters={}", encode(filters)))?
        .json()?;
    if report["ImagesDeleted"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        println!("Deleted Images:");
        print_removed(&report["ImagesDeleted"], true);
        println!();
    }
    let reclaimed = report["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    println!(
        "Total reclaimed space: {}",
        crate::images::progress::human_size(reclaimed, 4)
    );
    Ok(())
}

/// Whether stdout is a terminal (tables and bars adapt).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_per_tag_and_none_for_dangling() {
        let image = json!({"Id": "sha256:0123456789abcdef", "Created": 0, "Size": 1000,
            "RepoTags": ["busybox:latest", "busybox:1", "127.0.0.1:5000/app:v1"],
            "RepoDigests": ["127.0.0.1:5000/app@sha256:aa"]});
        let rows = image_rows(&image, false, false);
        let names: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{}:{}",
                    r["Repository"].as_str().unwrap(),
                    r["Tag"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            names,
            ["127.0.0.1:5000/app:v1", "busybox:latest", "busybox:1"]
        );
        assert_eq!(rows[0]["ID"], "0123456789ab");
        assert_eq!(rows[0]["Digest"], "<none>");
        let rows = image_rows(&image, true, false);
        assert_eq!(rows[0]["Digest"], "sha256:aa");
        let dangling = json!({"Id": "sha256:ab", "RepoTags": ["<none>:<none>"],
            "RepoDigests": ["<none>@<none>"]});
        let rows = image_rows(&dangling, true, true);
        assert_eq!(rows[0]["Repository"], "<none>");
        assert_eq!(rows[0]["ID"], "sha256:ab");
    }

    #[test]
    fn history_truncates_created_by() {
        let long = "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in /";
        let row = history_row(
            &json!({"Id": "<missing>", "CreatedBy": long, "Size": 0}),
            false,
        );
        assert_eq!(row["CreatedBy"].as_str().unwrap().chars().count(), 45);
        assert!(row["CreatedBy"].as_str().unwrap().ends_with('…'));
    }
}
