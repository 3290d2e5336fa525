//! `pull`, `push`, `save`, `load`: streamed to and from the daemon.
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::{encode, Context, Exit};
use crate::cli::client::Body;
use crate::cli::{config, progress};
use crate::images::reference::Reference;

/// `berth pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST]
    pub name: String,
}

fn auth_headers(name: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let key = config::key_of_image(name);
    let credentials = config::credentials(&key)?.unwrap_or_default();
    Ok(vec![("X-Registry-Auth", credentials.to_header())])
}

/// Shows a progress stream; a stream error is printed bare and exits 1 like docker.
fn show(body: &mut dyn std::io::BufRead, quiet: bool) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal();
    match progress::display(body, terminal, quiet) {
        Ok(()) => Ok(()),
        Err(progress::Error::Remote(message)) => {
            eprintln!("{message}");
            Err(Exit(1).into())
        }
        Err(e) => Err(e.into()),
    }
}

pub fn pull(ctx: &Context, args: &PullArgs) -> anyhow::Result<()> {
    let bare = Reference::parse_bare(&args.name)?;
    if bare.tag.is_none() && bare.digest.is_none() && !args.quiet {
        println!("Using default tag: latest");
    }
    let r = Reference::parse(&args.name)?;
    let tag = r.digest.clone().or(r.tag.clone()).unwrap_or_default();
    let mut path = format!(
        "/images/create?fromImage={}&tag={}",
        encode(&r.familiar_name()),
        encode(&tag)
    );
    if let Some(platform) = &args.platform {
        path.push_str(&format!("&platform={}", encode(platform)));
    }
    let headers = auth_headers(&args.name)?;
    let mut response = ctx
        .client
        .request("POST", &path, &headers, Body::None)?
        .ok()?;
    show(&mut response.body, args.quiet)?;
    println!("{r}");
    Ok(())
}

/// `berth push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Push all tagged images in the repository
    #[arg(short, long)]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG]
    pub name: String,
}

pub fn push(ctx: &Context, args: &PushArgs) -> anyhow::Result<()> {
    let mut r = Reference::parse_bare(&args.name)?;
    let name_only = r.tag.is_none() && r.digest.is_none();
    if args.all_tags && !name_only {
        anyhow::bail!("tag can't be used with --all-tags/-a");
    }
    if !args.all_tags && name_only {
        r.tag = Some("latest".into());
        if !args.quiet {
            println!("Using default tag: latest");
        }
    }
    // An empty tag asks the daemon for every tag of the repository.
    let tag = r.digest.clone().or(r.tag.clone()).unwrap_or_default();
    let path = format!("/images/{}/push?tag={}", r.familiar_name(), encode(&tag));
    let headers = auth_headers(&args.name)?;
    let mut response = ctx
        .client
        .request("POST", &path, &headers, Body::None)?
        .ok()?;
    show(&mut response.body, args.quiet)?;
    if args.quiet {
        println!("{}", r.familiar());
    }
    Ok(())
}

/// `berth save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub fn save(ctx: &Context, args: &SaveArgs) -> anyhow::Result<()> {
    if args.output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let query: Vec<String> = args
        .images
        .iter()
        .map(|n| format!("names={}", encode(n)))
        .collect();
    let mut response = ctx
        .client
        .get(&format!("/images/get?{}", query.join("&")))?;
    match &args.output {
        Some(path) => {
            let tmp = path.with_extension("berth-save.tmp");
            let mut file = std::fs::File::create(&tmp)
                .with_context(|| format!("failed to save image: {}", tmp.display()))?;
            std::io::copy(&mut response.body, &mut file)
                .with_context(|| format!("failed to save image: {}", path.display()))?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("failed to save image: {}", path.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut response.body, &mut out).context("failed to save image")?;
            out.flush()?;
        }
    }
    Ok(())
}

/// `berth load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn load(ctx: &Context, args: &LoadArgs) -> anyhow::Result<()> {
    let mut input: Box<dyn Read> = match &args.input {
        Some(path) => {
            Box::new(std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?)
        }
        None if std::io::stdin().is_terminal() => {
            anyhow::bail!("requested load from stdin, but stdin is empty")
        }
        None => Box::new(std::io::stdin().lock()),
    };
    let quiet = args.quiet || !std::io::stdout().is_terminal();
    let path = format!("/images/load?quiet={}", u8::from(quiet));
    let mut response = ctx
        .client
        .request("POST", &path, &[], Body::Stream(&mut input))?
        .ok()?;
    show(&mut response.body, false)
}
