//! Writing a directory's changes out as an (uncompressed) layer tar: either an overlayfs upper
//! directory, whose whiteout devices and opaque xattrs become `.wh.` entries, or the
//! difference between two full trees (the copying snapshotter's case).
//!
//! The trees are walked by path: export a snapshot nothing is changing (a stopped or paused
//! container's), or a process inside could swap a directory for a symlink mid-walk.
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::stream::Hashing;

use super::{at, Error};

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// `sha256:` of the tar written: the new layer's diff ID.
    pub diff_id: String,
    /// Bytes written.
    pub tar_size: u64,
}

/// One change of a tree relative to its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    /// The path (relative) was added or modified: write it as it is now.
    Put(PathBuf),
    /// The path was removed: a `.wh.` entry.
    Whiteout(PathBuf),
    /// The directory hides everything below it in the parent: `.wh..wh..opq`.
    Opaque(PathBuf),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Sorted entry names of a directory.
fn names(dir: &Path) -> Result<Vec<std::ffi::OsString>, Error> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        out.push(entry.map_err(io_at(dir))?.file_name());
    }
    out.sort();
    Ok(out)
}

/// Writes the overlayfs upper directory `upper` as a layer tar to `out`.
pub fn export_overlay(upper: &Path, out: impl Write) -> Result<Exported, Error> {
    let mut changes = Vec::new();
    overlay_changes(upper, Path::new(""), &mut changes)?;
    write_changes(upper, &changes, out)
}

fn overlay_changes(upper: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<(), Error> {
    for name in names(&upper.join(rel))? {
        let rel = rel.join(&name);
        let full = upper.join(&rel);
        let meta = fs::symlink_metadata(&full).map_err(io_at(&full))?;
        if meta.file_type().is_char_device() && meta.rdev() == 0 {
            out.push(Change::Whiteout(rel));
            continue;
        }
        out.push(Change::Put(rel.clone()));
        if meta.is_dir() {
            let opaque = at::get_xattr(&full, "trusted.overlay.opaque").map_err(io_at(&full))?;
            if opaque.as_deref() == Some(b"y") {
                out.push(Change::Opaque(rel.clone()));
            }
            overlay_changes(upper, &rel, out)?;
        }
    }
    Ok(())
}

/// Writes what differs in the full tree `upper` from the full tree `lower` (None: empty) as
/// a layer tar to `out`. Files count as unchanged when type, mode, owner, size, mtime (with
/// nanoseconds), link target and xattrs are equal.
pub fn export_changes(
    lower: Option<&Path>,
    upper: &Path,
    out: impl Write,
) -> Result<Exported, Error> {
    let mut changes = Vec::new();
    diff_dir(lower, upper, Path::new(""), &mut changes)?;
    write_changes(upper, &changes, out)
}

fn diff_dir(
    lower: Option<&Path>,
    upper: &Path,
    rel: &Path,
    out: &mut Vec<Change>,
) -> Result<(), Error> {
    let upper_names = names(&upper.join(rel))?;
    if let Some(lower) = lower {
        for name in names(&lower.join(rel))? {
            if upper_names.binary_search(&name).is_err() {
                out.push(Change::Whiteout(rel.join(&name)));
            }
        }
    }
    for name in upper_names {
        let rel = rel.join(&name);
        let full = upper.join(&rel);
        let meta = fs::symlink_metadata(&full).map_err(io_at(&full))?;
        let old = lower.map(|l| l.join(&rel));
        let old_meta = old.as_ref().and_then(|p| fs::symlink_metadata(p).ok());
        let same = match (&old, &old_meta) {
            (Some(old), Some(old_meta)) => same_entry(old, old_meta, &full, &meta)?,
            _ => false,
        };
        if !meta.is_dir() {
            if !same {
                out.push(Change::Put(rel));
            }
            continue;
        }
        let before = out.len();
        let lower_dir = match &old_meta {
            Some(m) if m.is_dir() => lower,
            _ => None,
        };
        diff_dir(lower_dir, upper, &rel, out)?;
        if !same || out.len() > before {
            out.insert(before, Change::Put(rel));
        }
    }
    Ok(())
}

fn same_entry(a: &Path, am: &fs::Metadata, b: &Path, bm: &fs::Metadata) -> Result<bool, Error> {
    let same_meta = am.mode() == bm.mode()
        && am.uid() == bm.uid()
        && am.gid() == bm.gid()
        && am.rdev() == bm.rdev()
        && (am.is_dir()
            || (am.size() == bm.size()
                && am.mtime() == bm.mtime()
                && am.mtime_nsec() == bm.mtime_nsec()));
    if !same_meta {
        return Ok(false);
    }
    if am.file_type().is_symlink()
        && fs::read_link(a).map_err(io_at(a))? != fs::read_link(b).map_err(io_at(b))?
    {
        return Ok(false);
    }
    Ok(at::xattrs(a).map_err(io_at(a))? == at::xattrs(b).map_err(io_at(b))?)
}

/// Writes `changes` (paths relative to `tree`) as tar entries.
fn write_changes(tree: &Path, changes: &[Change], out: impl Write) -> Result<Exported, Error> {
    let sink = Hashing::new(out);
    let mut builder = tar::Builder::new(sink);
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for change in changes {
        let (path, result) = match change {
            Change::Put(rel) => (rel.clone(), put(&mut builder, tree, rel, &mut links)),
            Change::Whiteout(rel) => {
                let name = rel.file_name().unwrap_or_default().to_string_lossy();
                let wh = rel.with_file_name(format!(".wh.{name}"));
                (wh.clone(), marker(&mut builder, &wh))
            }
            Change::Opaque(rel) => {
                let wh = rel.join(".wh..wh..opq");
                (wh.clone(), marker(&mut builder, &wh))
            }
        };
        result.map_err(|source| Error::Entry {
            entry: path.display().to_string(),
            op: "write tar entry",
            source,
        })?;
    }
    let sink = builder.into_inner().map_err(io_at(tree))?;
    let (mut inner, diff_id, tar_size) = sink.into_parts();
    inner.flush().map_err(io_at(tree))?;
    Ok(Exported { diff_id, tar_size })
}

/// An empty whiteout marker entry.
fn marker<W: Write>(builder: &mut tar::Builder<W>, path: &Path) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0);
    header.set_size(0);
    header.set_mtime(0);
    builder.append_data(&mut header, path, io::empty())
}

/// One file, directory, link or node as a tar entry (xattrs as PAX records).
fn put<W: Write>(
    builder: &mut tar::Builder<W>,
    tree: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let full = tree.join(rel);
    let meta = fs::symlink_metadata(&full)?;
    let xattrs: Vec<(String, Vec<u8>)> = at::xattrs(&full)?
        .into_iter()
        .filter(|(k, _)| !k.starts_with(b"trusted.overlay."))
        .map(|(k, v)| (format!("SCHILY.xattr.{}", String::from_utf8_lossy(&k)), v))
        .collect();
    if !xattrs.is_empty() {
        builder.append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(meta.uid() as u64);
    header.set_gid(meta.gid() as u64);
    header.set_mtime(meta.mtime().max(0) as u64);
    header.set_size(0);
    let kind = meta.file_type();
    if kind.is_file() && meta.nlink() > 1 {
        if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
            header.set_entry_type(tar::EntryType::Link);
            return builder.append_link(&mut header, rel, first);
        }
        links.insert((meta.dev(), meta.ino()), rel.to_path_buf());
    }
    if kind.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
        builder.append_data(&mut header, rel, io::empty())
    } else if kind.is_file() {
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.size());
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&full)?;
        builder.append_data(&mut header, rel, file)
    } else if kind.is_symlink() {
        header.set_entry_type(tar::EntryType::Symlink);
        builder.append_link(&mut header, rel, fs::read_link(&full)?)
    } else {
        let entry_type = if kind.is_fifo() {
            tar::EntryType::Fifo
        } else if kind.is_char_device() {
            tar::EntryType::Char
        } else if kind.is_block_device() {
            tar::EntryType::Block
        } else {
            tracing::debug!(path = %full.display(), "socket not exported");
            return Ok(());
        };
        header.set_entry_type(entry_type);
        header.set_device_major(nix::sys::stat::major(meta.rdev()) as u32)?;
        header.set_device_minor(nix::sys::stat::minor(meta.rdev()) as u32)?;
        builder.append_data(&mut header, rel, io::empty())
    }
}
