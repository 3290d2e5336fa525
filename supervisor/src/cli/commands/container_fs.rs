//! A container's files from the command line: `cp` (both ways, through the archive API and
//! its path-stat header), `export`, `diff` and `commit`, with docker's flags and words.
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::Args;
use serde_json::Value;

use super::{encode, Context};
use crate::cli::client::{self, Body};

/// `berth cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH|-
    pub source: String,
    /// DEST_PATH|- or CONTAINER:DEST_PATH
    pub dest: String,
}

/// `berth export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    pub container: String,
}

/// `berth diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    pub container: String,
}

/// `berth commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    pub container: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// `CONTAINER:PATH` → (container, path); a local path otherwise (docker's rule: a colon
/// before any `/`, and not a path starting with `.` or `/`).
fn split_container(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (name, path) = arg.split_once(':')?;
    (!name.contains('/')).then_some((name, path))
}

/// Docker's path-stat header: `{"name","size","mode","mtime","linkTarget"}` in base64.
fn path_stat(response: &client::Response) -> Option<Value> {
    let raw = response.header("X-Docker-Container-Path-Stat")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Go's `os.ModeDir` bit, as the stat header carries it.
const MODE_DIR: u64 = 1 << 31;

fn stat_is_dir(stat: &Value) -> bool {
    stat["mode"].as_u64().is_some_and(|m| m & MODE_DIR != 0)
}

fn base_name(path: &str) -> String {
    Path::new(path.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into())
}

fn not_found(container: &str, path: &str) -> anyhow::Error {
    anyhow::anyhow!("Error: No such container:path: {container}:{path}")
}

/// What an archive request's error becomes: docker's words for a missing path.
fn archive_error(e: client::Error, container: &str, path: &str) -> anyhow::Error {
    match e {
        client::Error::Daemon {
            status: 404,
            message,
        } if !message.starts_with("No such container") => not_found(container, path),
        other => other.into(),
    }
}

pub fn cp(ctx: &Context, a: &CpArgs) -> anyhow::Result<()> {
    match (split_container(&a.source), split_container(&a.dest)) {
        (Some(_), Some(_)) => anyhow::bail!("copying between containers is not supported"),
        (None, None) => anyhow::bail!("must specify at least one container source"),
        (Some((c, path)), None) => copy_from(ctx, c, path, &a.dest, a.archive),
        (None, Some((c, path))) => copy_to(ctx, &a.source, c, path, a),
    }
}

fn copy_from(
    ctx: &Context,
    container: &str,
    path: &str,
    dest: &str,
    archive: bool,
) -> anyhow::Result<()> {
    let query = format!(
        "/containers/{}/archive?path={}",
        encode(container),
        encode(path)
    );
    let mut response = ctx
        .client
        .get(&query)
        .map_err(|e| archive_error(e, container, path))?;
    if dest == "-" {
        std::io::copy(&mut response.body, &mut std::io::stdout().lock())?;
        return Ok(());
    }
    let stat = path_stat(&response).unwrap_or_default();
    let src_dir = stat_is_dir(&stat);
    let dest_path = Path::new(dest);
    let (into, rename) = match std::fs::metadata(dest_path) {
        Ok(m) if m.is_dir() => (dest_path.to_path_buf(), None),
        Ok(_) if src_dir => {
            anyhow::bail!("cannot copy directory to file: {dest}")
        }
        Ok(_) => (parent_of(dest_path), Some(base_name(dest))),
        Err(_) if dest.ends_with('/') && !src_dir => {
            anyhow::bail!("destination directory {dest} does not exist")
        }
        Err(_) => {
            let parent = parent_of(dest_path);
            if !parent.is_dir() {
                anyhow::bail!("destination directory {} does not exist", parent.display());
            }
            (parent, Some(base_name(dest)))
        }
    };
    let from = stat["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| base_name(path));
    unpack(
        &mut response.body,
        &into,
        rename.map(|to| (from, to)),
        archive,
    )
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Unpacks `tar` into `dir`, the top entry `from` renamed `to` when asked.
fn unpack(
    tar: &mut dyn Read,
    dir: &Path,
    rename: Option<(String, String)>,
    archive: bool,
) -> anyhow::Result<()> {
    let mut tar = tar::Archive::new(tar);
    tar.set_preserve_permissions(true);
    tar.set_preserve_ownerships(archive);
    tar.set_overwrite(true);
    for entry in tar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        let name = match &rename {
            Some((from, to)) => match name.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => PathBuf::from(to),
                Ok(rest) => Path::new(to).join(rest),
                Err(_) => name,
            },
            None => name,
        };
        let target = dir.join(&name);
        if name
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            anyhow::bail!(
                "refusing to write outside {}: {}",
                dir.display(),
                name.display()
            );
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        entry.unpack(&target)?;
    }
    Ok(())
}

fn copy_to(
    ctx: &Context,
    source: &str,
    container: &str,
    path: &str,
    a: &CpArgs,
) -> anyhow::Result<()> {
    let stat_query = format!(
        "/containers/{}/archive?path={}",
        encode(container),
        encode(path)
    );
    let stat = ctx.client.request("HEAD", &stat_query, &[], Body::None)?;
    let dest_stat = match stat.status {
        200 => path_stat(&stat),
        404 => None,
        _ => {
            return Err(stat
                .ok()
                .err()
                .map_or_else(|| anyhow::anyhow!("stat {path}"), Into::into))
        }
    };
    let (dir, name) = if source == "-" {
        match &dest_stat {
            Some(s) if stat_is_dir(s) => (path.to_string(), None),
            Some(_) => anyhow::bail!("destination \"{container}:{path}\" must be a directory"),
            None => return Err(not_found(container, path)),
        }
    } else {
        let local = Path::new(source);
        let meta = match a.follow_link {
            true => std::fs::metadata(local),
            false => std::fs::symlink_metadata(local),
        }
        .map_err(|_| anyhow::anyhow!("lstat {source}: no such file or directory"))?;
        match &dest_stat {
            Some(s) if stat_is_dir(s) => (path.to_string(), Some(base_name(source))),
            Some(_) if meta.is_dir() => {
                anyhow::bail!("cannot copy directory to file: {container}:{path}")
            }
            None if path.ends_with('/') => {
                anyhow::bail!("destination directory {container}:{path} does not exist")
            }
            _ => {
                let parent = Path::new(path.trim_end_matches('/'))
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/".into());
                (parent, Some(base_name(path)))
            }
        }
    };
    let mut query = format!(
        "/containers/{}/archive?path={}",
        encode(container),
        encode(&dir)
    );
    if a.archive {
        query.push_str("&copyUIDGID=1");
    }
    let put = |body: &mut dyn Read| {
        ctx.client
            .request(
                "PUT",
                &query,
                &[("Content-Type", "application/x-tar".into())],
                Body::Stream(body),
            )?
            .ok()
            .map_err(|e| archive_error(e, container, &dir))
    };
    match name {
        None => put(&mut std::io::stdin().lock())?,
        Some(name) => {
            let tar = tar_of(Path::new(source), &name, a.follow_link)?;
            put(&mut tar.as_slice())?
        }
    };
    Ok(())
}

/// A tar of `path` named `name` (directories whole, links kept unless `follow`).
fn tar_of(path: &Path, name: &str, follow: bool) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(follow);
    let meta = match follow {
        true => std::fs::metadata(path)?,
        false => std::fs::symlink_metadata(path)?,
    };
    if meta.is_dir() {
        b.append_dir_all(name, path)?;
    } else {
        b.append_path_with_name(path, name)?;
    }
    Ok(b.into_inner()?)
}

pub fn export(ctx: &Context, a: &ExportArgs) -> anyhow::Result<()> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let mut response = ctx
        .client
        .get(&format!("/containers/{}/export", encode(&a.container)))?;
    match &a.output {
        Some(path) => {
            let mut file = std::fs::File::create(path).map_err(|e| {
                anyhow::anyhow!("failed to export container: {}: {e}", path.display())
            })?;
            std::io::copy(&mut response.body, &mut file)?;
            file.flush()?;
        }
        None => {
            std::io::copy(&mut response.body, &mut std::io::stdout().lock())?;
        }
    }
    Ok(())
}

pub fn diff(ctx: &Context, a: &DiffArgs) -> anyhow::Result<()> {
    let changes = ctx
        .client
        .get(&format!("/containers/{}/changes", encode(&a.container)))?
        .json()?;
    let mut out = std::io::stdout().lock();
    for ch in changes.as_array().into_iter().flatten() {
        let kind = match ch["Kind"].as_u64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        writeln!(out, "{kind} {}", ch["Path"].as_str().unwrap_or(""))?;
    }
    Ok(())
}

pub fn commit(ctx: &Context, a: &CommitArgs) -> anyhow::Result<()> {
    let mut query = format!(
        "/commit?container={}&pause={}",
        encode(&a.container),
        a.pause
    );
    if let Some(reference) = &a.reference {
        let r = crate::images::reference::Reference::parse(reference)?;
        query.push_str(&format!("&repo={}", encode(&r.familiar_name())));
        if let Some(tag) = &r.tag {
            query.push_str(&format!("&tag={}", encode(tag)));
        }
    }
    if let Some(m) = &a.message {
        query.push_str(&format!("&comment={}", encode(m)));
    }
    if let Some(author) = &a.author {
        query.push_str(&format!("&author={}", encode(author)));
    }
    for c in &a.change {
        query.push_str(&format!("&changes={}", encode(c)));
    }
    let id = ctx
        .client
        .request("POST", &query, &[], Body::Json(b"{}".to_vec()))?
        .ok()?
        .json()?;
    println!("{}", id["Id"].as_str().unwrap_or(""));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_as_docker_tells_them() {
        assert_eq!(split_container("web:/etc"), Some(("web", "/etc")));
        assert_eq!(split_container("/tmp/a:b"), None);
        assert_eq!(split_container("./x:y"), None);
        assert_eq!(split_container("dir/x:y"), None);
        assert_eq!(split_container("plain"), None);
        assert_eq!(base_name("/etc/hosts"), "hosts");
        assert_eq!(base_name("/etc/"), "etc");
    }
}
