//! `berth build`: the context directory sent as a tar to `POST /build`, docker's stream
//! printed as it comes (on a terminal, as a live view of the steps).
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use super::images::stdout_is_terminal;
use super::{encode, Context, Exit};
use crate::build::context::{OUTSIDE_DOCKERFILE, SECRETS_DIR};
use crate::build::ignore::Ignore;
use crate::cli::build_view::BuildView;
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
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_hosts: Vec<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Secret file to expose to the build: id=mysecret,src=/local/secret (RUN
    /// --mount=type=secret,id=mysecret)
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// The build context directory, or `-`: a tar or a Dockerfile on stdin
    pub path: PathBuf,
}

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

fn stdin_bytes() -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .context("reading stdin")?;
    Ok(bytes)
}

/// Whether `bytes` start like an archive docker takes as a context (gzip, bzip2, xz, zstd,
/// tar).
fn is_archive(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
        || bytes.starts_with(b"BZh")
        || bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (bytes.len() >= 262 && &bytes[257..262] == b"ustar")
}

fn temp_file() -> anyhow::Result<std::fs::File> {
    tempfile::tempfile().context("temporary file for the build context")
}

fn rewound(mut file: std::fs::File) -> anyhow::Result<std::fs::File> {
    file.flush()?;
    file.rewind()?;
    Ok(file)
}

/// A tar holding only `dockerfile` as `name`.
fn dockerfile_tar(name: &str, dockerfile: &[u8]) -> anyhow::Result<std::fs::File> {
    let mut tar = tar::Builder::new(temp_file()?);
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    tar.append_data(&mut header, name, dockerfile)?;
    rewound(tar.into_inner()?)
}

/// The context as a tar in a temporary file, and the Dockerfile's name in it: `PATH -` is
/// stdin (a tar as it is, anything else a Dockerfile); `-f -` reads the Dockerfile from
/// stdin; a directory is sent without what its `.dockerignore` excludes (never the
/// Dockerfile and the .dockerignore themselves).
fn context_tar(args: &BuildArgs) -> anyhow::Result<(std::fs::File, String)> {
    let from_stdin = args.file.as_deref() == Some(Path::new("-"));
    if args.path == Path::new("-") {
        if !args.secrets.is_empty() {
            anyhow::bail!("invalid argument: --secret needs a build context directory, not `-`");
        }
        if from_stdin {
            anyhow::bail!(
                "invalid argument: can't use stdin for both build context and dockerfile"
            );
        }
        let bytes = stdin_bytes()?;
        let name = args.file.as_ref().map_or("Dockerfile".to_string(), |f| {
            f.to_string_lossy().into_owned()
        });
        if is_archive(&bytes) {
            let mut file = temp_file()?;
            file.write_all(&bytes)?;
            return Ok((rewound(file)?, name));
        }
        return Ok((dockerfile_tar("Dockerfile", &bytes)?, "Dockerfile".into()));
    }
    let dir = &args.path;
    if !dir.is_dir() {
        anyhow::bail!(
            "unable to prepare context: path {:?} not found",
            dir.display().to_string()
        );
    }
    let (name, outside) = match &args.file {
        None => ("Dockerfile".to_string(), None),
        Some(_) if from_stdin => (OUTSIDE_DOCKERFILE.to_string(), Some(stdin_bytes()?)),
        Some(f) => match inside(dir, f) {
            Some(rel) => (rel, None),
            None => {
                let bytes =
                    std::fs::read(f).with_context(|| format!("open Dockerfile {}", f.display()))?;
                (OUTSIDE_DOCKERFILE.to_string(), Some(bytes))
            }
        },
    };
    let mut ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(e).context(format!("reading {}/.dockerignore", dir.display())),
    };
    if !ignore.is_empty() {
        ignore.keep(".dockerignore");
        if outside.is_none() {
            ignore.keep(&name);
        }
    }
    let mut tar = tar::Builder::new(std::io::BufWriter::new(temp_file()?));
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    add_dir(&mut tar, dir, Path::new(""), &ignore)
        .with_context(|| format!("reading the build context {}", dir.display()))?;
    if let Some(bytes) = outside {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, OUTSIDE_DOCKERFILE, &bytes[..])?;
    }
    for (id, bytes) in secrets(&args.secrets)? {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o400);
        tar.append_data(&mut header, format!("{SECRETS_DIR}/{id}"), &bytes[..])?;
    }
    let file = tar
        .into_inner()?
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing the build context: {}", e.error()))?;
    Ok((rewound(file)?, name))
}

/// `--secret id=x,src=FILE` (or `source=`; `type=file` only) as ids and contents; the
/// daemon takes them out of the context before any step sees it.
fn secrets(specs: &[String]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for spec in specs {
        let (mut id, mut src) = (None, None);
        for field in spec.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                Some(("type", "file")) => {}
                _ => anyhow::bail!("invalid argument: --secret {spec}: unexpected {field:?}"),
            }
        }
        let src = src
            .ok_or_else(|| anyhow::anyhow!("invalid argument: --secret {spec}: src= is missing"))?;
        let id = match id {
            Some(id) => id,
            None => src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        if !crate::build::context::is_plain_name(&id) {
            anyhow::bail!("invalid argument: --secret {spec}: invalid id {id:?}");
        }
        let bytes = std::fs::read(&src)
            .with_context(|| format!("--secret {spec}: read {}", src.display()))?;
        out.push((id, bytes));
    }
    Ok(out)
}

/// Appends the entries below `root/rel` that `ignore` keeps (sorted, symlinks as symlinks);
/// an excluded directory is looked into only when an exception may keep something in it.
fn add_dir(
    tar: &mut tar::Builder<impl Write>,
    root: &Path,
    rel: &Path,
    ignore: &Ignore,
) -> anyhow::Result<()> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("read {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = rel.join(entry.file_name());
        let name = path.to_string_lossy();
        let excluded = ignore.excluded(&name);
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !excluded {
                tar.append_path_with_name(root.join(&path), &path)
                    .with_context(|| format!("add {}", path.display()))?;
            }
            if !excluded || ignore.has_exceptions() {
                add_dir(tar, root, &path, ignore)?;
            }
        } else if !excluded && (kind.is_file() || kind.is_symlink()) {
            tar.append_path_with_name(root.join(&path), &path)
                .with_context(|| format!("add {}", path.display()))?;
        }
    }
    Ok(())
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
    if args.pull {
        path.push_str("&pull=1");
    }
    path.push_str(&format!("&networkmode={}", encode(&args.network)));
    for h in &args.add_hosts {
        path.push_str(&format!("&extrahosts={}", encode(h)));
    }
    if let Some(p) = &args.platform {
        path.push_str(&format!("&platform={}", encode(p)));
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
    let mut view = BuildView::new(!args.quiet && stdout_is_terminal());
    let mut line = String::new();
    while response.body.read_line(&mut line)? > 0 {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
            line.clear();
            continue;
        };
        line.clear();
        if let Some(message) = v["errorDetail"]["message"].as_str().or(v["error"].as_str()) {
            view.failed();
            eprintln!("{message}");
            let code = v["errorDetail"]["code"].as_i64().unwrap_or(1) as i32;
            return Err(Exit(if code == 0 { 1 } else { code }).into());
        }
        if let Some(i) = v["aux"]["ID"].as_str() {
            id = i.to_string();
        }
        if let Some(text) = v["stream"].as_str() {
            view.text(text)?;
        } else if let Some(status) = v["status"].as_str() {
            view.text(&format!("{status}\n"))?;
        }
    }
    view.finish();
    if let Some(file) = &args.iidfile {
        std::fs::write(file, &id).with_context(|| format!("write {}", file.display()))?;
    }
    Ok(())
}
