//! Top-level `include`: other compose files, each read as a model of its own (relative
//! paths against its own directory, variables from its own `env_file` or `.env` over the
//! project's), whose services, networks, volumes, secrets and configs join the including
//! project. A name both sides define differently is an error; the same definition twice is
//! not. Paths are made absolute against the declaring file before `-f` files merge, so each
//! is relative to the file that names it.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::model::Project;
use super::read::At;
use super::yaml::{Mark, Node, Value};
use super::Error;

/// One entry of `include`.
#[derive(Debug, Clone)]
pub struct Include {
    /// The files, merged as `-f` files are (absolute).
    pub paths: Vec<PathBuf>,
    pub project_directory: Option<PathBuf>,
    pub env_files: Vec<PathBuf>,
    /// Where the entry is, for errors.
    pub at: Mark,
    pub path: String,
}

impl Include {
    /// The directory its relative paths resolve against.
    pub fn directory(&self) -> PathBuf {
        self.project_directory.clone().unwrap_or_else(|| {
            self.paths[0]
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/"))
        })
    }
}

/// Makes the paths of `root`'s include list absolute against `dir`.
pub fn absolutize(root: &mut Node, dir: &Path) {
    let Some(Node {
        value: Value::Seq(items),
        ..
    }) = root.get_mut("include")
    else {
        return;
    };
    for item in items {
        match &mut item.value {
            Value::Str(_) => absolute(item, dir),
            Value::Map(entries) => {
                for (key, v) in entries.iter_mut() {
                    if !matches!(key.as_str(), "path" | "project_directory" | "env_file") {
                        continue;
                    }
                    match &mut v.value {
                        Value::Seq(list) => list.iter_mut().for_each(|n| absolute(n, dir)),
                        _ => absolute(v, dir),
                    }
                }
            }
            _ => {}
        }
    }
}

fn absolute(n: &mut Node, dir: &Path) {
    if let Value::Str(s) = &mut n.value {
        *s = super::model::host_path(s, dir);
    }
}

/// The include list of a file's (merged) tree.
pub fn entries(root: &At<'_>) -> Result<Vec<Include>, Error> {
    let Some(list) = root.get("include") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in list.at().items()? {
        let a = item.at();
        let mut inc = Include {
            paths: Vec::new(),
            project_directory: None,
            env_files: Vec::new(),
            at: a.node.mark.clone(),
            path: a.path.to_string(),
        };
        match &a.node.value {
            Value::Str(s) => inc.paths.push(PathBuf::from(s)),
            Value::Map(_) => {
                a.only_keys(&["path", "project_directory", "env_file"])?;
                let Some(p) = a.get("path") else {
                    return Err(a.invalid("has no path"));
                };
                inc.paths = p
                    .at()
                    .string_or_list()?
                    .into_iter()
                    .map(PathBuf::from)
                    .collect();
                inc.project_directory = a
                    .get("project_directory")
                    .map(|d| d.at().string().map(PathBuf::from))
                    .transpose()?;
                if let Some(e) = a.get("env_file") {
                    inc.env_files = e
                        .at()
                        .string_or_list()?
                        .into_iter()
                        .map(PathBuf::from)
                        .collect();
                }
            }
            _ => return Err(a.type_error("a string or a mapping")),
        }
        if inc.paths.is_empty() {
            return Err(a.invalid("has no path"));
        }
        for p in &inc.paths {
            if !p.is_file() {
                return Err(a.invalid(format!("{}: no such file", p.display())));
            }
        }
        out.push(inc);
    }
    Ok(out)
}

/// Adds what an included model defines to `into`.
pub fn join(into: &mut Project, from: Project, inc: &Include) -> Result<(), Error> {
    let file = inc.paths[0].display().to_string();
    let conflict = |kind: &str, name: &str| Error::Invalid {
        at: inc.at.clone(),
        path: inc.path.clone(),
        message: format!(
            "{kind}.{name} of {file} conflicts with {kind}.{name} defined by the including file"
        ),
    };
    let services = from.services.into_iter().map(|(n, s)| (n, s, true));
    for (name, s, enabled) in services.chain(from.disabled.into_iter().map(|(n, s)| (n, s, false)))
    {
        match into.services.get(&name).or(into.disabled.get(&name)) {
            Some(existing) if *existing == s => {}
            Some(_) => return Err(conflict("services", &name)),
            // An included service keeps its file's profile decision.
            None if enabled => {
                into.services.insert(name, s);
            }
            None => {
                into.disabled.insert(name, s);
            }
        }
    }
    add(&mut into.networks, from.networks, |n| {
        conflict("networks", n)
    })?;
    add(&mut into.volumes, from.volumes, |n| conflict("volumes", n))?;
    add(&mut into.secrets, from.secrets, |n| conflict("secrets", n))?;
    add(&mut into.configs, from.configs, |n| conflict("configs", n))?;
    Ok(())
}

fn add<T: PartialEq>(
    into: &mut BTreeMap<String, T>,
    from: BTreeMap<String, T>,
    conflict: impl Fn(&str) -> Error,
) -> Result<(), Error> {
    for (name, v) in from {
        match into.get(&name) {
            Some(existing) if *existing == v => {}
            Some(_) => return Err(conflict(&name)),
            None => {
                into.insert(name, v);
            }
        }
    }
    Ok(())
}
