//! `berth build`: the context directory sent as a tar to `POST /build`, docker's stream
//! printed as it comes.
use std::collections::BTreeMap;
use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use super::{encode, Context, Exit};
use crate::cli::client::Body;

/// `berth build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: 'PATH/Dockerfile')
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// The build context directory
    pub path: PathBuf,
}

/// Name of a Dockerfile from outside the context, inside the tar sent.
const OUTSIDE_DOCKERFILE: &str = ".dockerfile.berth";

/// `KEY=VALUE` pairs as a JSON object; `KEY` alone takes its value from the environment.
fn pairs(list: &[String], from_env: bool) -> BTreeMap<String, Option<String>> {
    list.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None if from_env => (a.clone(), std::env::var(a).ok()),
            None => (a.clone(), Some(String::new())),
        })
        .collect()
}

/// The context as a tar in a temporary file, and the Dockerfile's name in it.
fn context_tar(args: &BuildArgs) -> anyhow::Result<(std::fs::File, String)> {
    let dir = &args.path;
    if !dir.is_dir() {
        anyhow::bail!(
            "unable to prepare context: path {:?} not found",
            dir.display().to_string()
        );
    }
    let file = tempfile::tempfile().context("temporary file for the build context")?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir)
        .with_context(|| format!("reading the build context {}", dir.display()))?;
    let name = match &args.file {
        None => "Dockerfile".to_string(),
        Some(f) => match inside(dir, f) {
            Some(rel) => rel,
            None => {
                let mut src = std::fs::File::open(f)
                    .with_context(|| format!("open Dockerfile {}", f.display()))?;
                tar.append_file(OUTSIDE_DOCKERFILE, &mut src)?;
                OUTSIDE_DOCKERFILE.to_string()
            }
        },
    };
    let mut file = tar
        .into_inner()?
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing the build context: {}", e.error()))?;
    file.flush()?;
    file.rewind()?;
    Ok((file, name))
}

/// `file`'s path relative to the context `dir`, when it is inside it.
fn inside(dir: &Path, file: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let file = file.canonicalize().ok()?;
    file.strip_prefix(&dir)
        .ok()
        .map(|r| r.to_string_lossy().into_owned())
}

pub fn build(ctx: &Context, args: &BuildArgs) -> anyhow::Result<()> {
    let (mut tar, dockerfile) = context_tar(args)?;
    let mut path = format!(
        "/build?dockerfile={}&rm=1&q={}&nocache={}",
        encode(&dockerfile),
        u8::from(args.quiet),
        u8::from(args.no_cache)
    );
    for t in &args.tags {
        path.push_str(&format!("&t={}", encode(t)));
    }
    if let Some(target) = &args.target {
        path.push_str(&format!("&target={}", encode(target)));
    }
    let build_args = serde_json::to_string(&pairs(&args.build_args, true))?;
    let labels = serde_json::to_string(&pairs(&args.labels, false))?;
    path.push_str(&format!(
        "&buildargs={}&labels={}",
        encode(&build_args),
        encode(&labels)
    ));
    let headers = [("Content-Type", "application/x-tar".to_string())];
    let mut response = ctx
        .client
        .request("POST", &path, &headers, Body::Stream(&mut tar))?
        .ok()?;
    let mut id = String::new();
    let mut stdout = std::io::stdout().lock();
    let mut line = String::new();
    while response.body.read_line(&mut line)? > 0 {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
            line.clear();
            continue;
        };
        line.clear();
        if let Some(message) = v["errorDetail"]["message"].as_str().or(v["error"].as_str()) {
            stdout.flush()?;
            eprintln!("{message}");
            let code = v["errorDetail"]["code"].as_i64().unwrap_or(1) as i32;
            return Err(Exit(if code == 0 { 1 } else { code }).into());
        }
        if let Some(i) = v["aux"]["ID"].as_str() {
            id = i.to_string();
        }
        if let Some(text) = v["stream"].as_str() {
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        } else if let Some(status) = v["status"].as_str() {
            writeln!(stdout, "{status}")?;
        }
    }
    if let Some(file) = &args.iidfile {
        std::fs::write(file, &id).with_context(|| format!("write {}", file.display()))?;
    }
    Ok(())
}
