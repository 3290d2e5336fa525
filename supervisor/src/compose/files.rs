//! Secrets and configs: top-level objects with a `file:` source, and the services'
//! references to them (short `NAME`, or long `{source, target, uid, gid, mode}`). Without
//! swarm, compose mounts the file read-only into the container, as berth does: a secret at
//! `/run/secrets/TARGET` (TARGET defaults to the source's key), a config at `/TARGET`; an
//! absolute target is used as it is. `uid`, `gid` and `mode` are read and kept in the model
//! (and its config hash) but a bind mount keeps the file's own owner and mode, as compose
//! v2's does.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::read::{At, Child};
use super::Error;

/// Which of the two a top-level object or a reference is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Secret,
    Config,
}

impl Kind {
    /// The top-level and the service key: `secrets` or `configs`.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::Config => "configs",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }

    /// Where a reference without an absolute target is mounted.
    fn target(self, name: &str) -> String {
        match (name.starts_with('/'), self) {
            (true, _) => name.to_string(),
            (false, Kind::Secret) => format!("/run/secrets/{name}"),
            (false, Kind::Config) => format!("/{name}"),
        }
    }
}

/// A top-level secret or config.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FileObject {
    /// The engine's name: `P_KEY`, `name:`, or the external name.
    pub name: String,
    /// The host file (absolute), for a `file:` source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A service's use of a secret or config.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileRef {
    /// The top-level key.
    pub source: String,
    /// The absolute path in the container.
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<i64>,
}

/// Reads a top-level secret or config; `dir` resolves a relative `file:`.
pub fn object(
    kind: Kind,
    key: &str,
    c: &Child<'_>,
    dir: &Path,
    project: &str,
) -> Result<FileObject, Error> {
    let at = c.at();
    let allowed: &[&str] = match kind {
        Kind::Secret => &[
            "file",
            "environment",
            "external",
            "name",
            "labels",
            "driver",
            "driver_opts",
            "template_driver",
        ],
        Kind::Config => &[
            "file",
            "environment",
            "content",
            "external",
            "name",
            "labels",
            "template_driver",
        ],
    };
    at.only_keys(allowed)?;
    for unsupported in ["environment", "content"] {
        if let Some(u) = at.get(unsupported) {
            return Err(u.at().invalid(format!(
                "{} sources are not supported by berth; use file:",
                unsupported
            )));
        }
    }
    let external = match at.get("external") {
        Some(e) => e.at().bool()?,
        None => false,
    };
    let file = match at.get("file") {
        Some(f) => Some(super::model::host_path(&f.at().string()?, dir).into()),
        None => None,
    };
    if file.is_none() && !external {
        return Err(at.invalid(format!("{} {key:?} has no file: source", kind.noun())));
    }
    let name = match at.get("name") {
        Some(n) => n.at().string()?,
        None if external => key.to_string(),
        None => format!("{project}_{key}"),
    };
    let labels = match at.get("labels") {
        Some(l) => l
            .at()
            .string_map()?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
        None => BTreeMap::new(),
    };
    Ok(FileObject {
        name,
        file,
        external,
        labels,
    })
}

/// A service's `secrets:` or `configs:` list.
pub fn references(kind: Kind, at: At<'_>) -> Result<Vec<FileRef>, Error> {
    let mut out = Vec::new();
    for item in at.items()? {
        let a = item.at();
        let r = match &a.node.value {
            super::yaml::Value::Map(_) => {
                a.only_keys(&["source", "target", "uid", "gid", "mode"])?;
                let source = match a.get("source") {
                    Some(s) => s.at().string()?,
                    None => return Err(a.invalid("has no source")),
                };
                let target = match a.get("target") {
                    Some(t) => t.at().string()?,
                    None => source.clone(),
                };
                let text = |k: &str| a.get(k).map(|v| v.at().string()).transpose();
                FileRef {
                    target: kind.target(&target),
                    source,
                    uid: text("uid")?,
                    gid: text("gid")?,
                    mode: a.get("mode").map(|m| m.at().int()).transpose()?,
                }
            }
            super::yaml::Value::Str(_) => {
                let source = a.string()?;
                FileRef {
                    target: kind.target(&source),
                    source,
                    uid: None,
                    gid: None,
                    mode: None,
                }
            }
            _ => return Err(a.type_error("a string or a mapping")),
        };
        out.push(r);
    }
    Ok(out)
}

/// Why a reference cannot be mounted: undefined, or external (a swarm object).
pub fn check_reference(
    kind: Kind,
    r: &FileRef,
    objects: &BTreeMap<String, FileObject>,
) -> Option<String> {
    match objects.get(&r.source) {
        None => Some(format!(
            "refers to undefined {} {:?}",
            kind.noun(),
            r.source
        )),
        Some(o) if o.file.is_none() => Some(format!(
            "{} {:?} is external: berth has no swarm to get it from; use file:",
            kind.noun(),
            r.source
        )),
        Some(o) => o.file.as_ref().filter(|f| !f.is_file()).map(|f| {
            format!(
                "{} {:?}: {}: no such file",
                kind.noun(),
                r.source,
                f.display()
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_targets() {
        assert_eq!(Kind::Secret.target("token"), "/run/secrets/token");
        assert_eq!(Kind::Secret.target("/etc/token"), "/etc/token");
        assert_eq!(Kind::Config.target("app.conf"), "/app.conf");
        assert_eq!(Kind::Config.target("/etc/app.conf"), "/etc/app.conf");
    }
}
