//! `linux.cgroupsPath`: absolute, relative (to the runtime's own cgroup, like runc), empty
//! (runc's default: the container id, relative), or with `--systemd-cgroup` `slice:prefix:name`
//! translated to the path systemd would give the unit (`/system.slice/prefix-name.scope`).
//! No systemd is contacted: the cgroup is made through cgroupfs at that path.
use super::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// A cgroup path before it is placed on a hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// From the hierarchy's root.
    Absolute(PathBuf),
    /// Below the runtime's own cgroup.
    Relative(PathBuf),
}

impl Wanted {
    pub fn display_path(&self) -> PathBuf {
        match self {
            Wanted::Absolute(p) | Wanted::Relative(p) => p.clone(),
        }
    }
}

pub fn resolve(spec_path: &str, id: &str, systemd: bool) -> Result<Wanted> {
    if systemd {
        return systemd_path(spec_path, id).map(Wanted::Absolute);
    }
    if spec_path.is_empty() {
        return Ok(Wanted::Relative(clean(id, id)?));
    }
    let cleaned = clean(spec_path, spec_path)?;
    if spec_path.starts_with('/') {
        Ok(Wanted::Absolute(Path::new("/").join(cleaned)))
    } else {
        Ok(Wanted::Relative(cleaned))
    }
}

/// Normalise `p` lexically; a `..` that climbs above its start is an error.
fn clean(p: &str, shown: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if !out.pop() {
                    return Err(Error::BadCgroupsPath {
                        path: shown.to_string(),
                        reason: "\"..\" escapes the parent cgroup".into(),
                    });
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if out.as_os_str().is_empty() && !p.starts_with('/') {
        return Err(Error::BadCgroupsPath {
            path: shown.to_string(),
            reason: "names no cgroup".into(),
        });
    }
    Ok(out)
}

/// `slice:prefix:name` → `/parent.slice/…/slice/prefix-name.scope` (systemd's cgroup for it).
fn systemd_path(spec_path: &str, id: &str) -> Result<PathBuf> {
    let bad = |reason: &str| Error::BadCgroupsPath {
        path: spec_path.to_string(),
        reason: reason.to_string(),
    };
    let (slice, prefix, name) = if spec_path.is_empty() {
        ("system.slice", "runc", id)
    } else {
        let parts: Vec<&str> = spec_path.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(bad("--systemd-cgroup expects \"slice:prefix:name\""));
        };
        (
            if slice.is_empty() {
                "system.slice"
            } else {
                slice
            },
            prefix,
            name,
        )
    };
    if name.is_empty()
        || [slice, prefix, name]
            .iter()
            .any(|s| s.contains('/') || *s == "..")
    {
        return Err(bad(
            "slice, prefix and name must be non-empty names without \"/\"",
        ));
    }
    let mut path = expand_slice(slice).ok_or_else(|| bad("not a valid systemd slice name"))?;
    if name.ends_with(".slice") {
        path.push(name);
    } else if prefix.is_empty() {
        path.push(format!("{name}.scope"));
    } else {
        path.push(format!("{prefix}-{name}.scope"));
    }
    Ok(path)
}

/// systemd's slice nesting: `a-b-c.slice` lives at `/a.slice/a-b.slice/a-b-c.slice`.
fn expand_slice(slice: &str) -> Option<PathBuf> {
    let base = slice.strip_suffix(".slice")?;
    let mut path = PathBuf::from("/");
    if base == "-" {
        return Some(path);
    }
    if base.is_empty() || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
        return None;
    }
    let mut prefix = String::new();
    for part in base.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Some(path)
}

/// The cgroup path inside one hierarchy: absolute as is; relative below `own` (v1) or below
/// the parent of `own` (cgroup2, where the runtime itself sits in a leaf), like runc.
pub fn place(wanted: &Wanted, own: Option<&Path>, v2: bool) -> PathBuf {
    match wanted {
        Wanted::Absolute(p) => p.clone(),
        Wanted::Relative(p) => {
            let own = own.unwrap_or(Path::new("/"));
            let base = if v2 {
                own.parent().unwrap_or(Path::new("/"))
            } else {
                own
            };
            base.join(p)
        }
    }
}
