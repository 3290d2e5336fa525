//! Loading a project: which files (`-f`, `COMPOSE_FILE`, or `compose.yaml` /
//! `docker-compose.yml` found in the directory or a parent, with its `.override` file), which
//! variables (`.env` or `--env-file` under the process environment), then per file: parse,
//! interpolate, normalise, `extends`; then merge, read the model, apply profiles, check
//! references and cycles.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::files::{self, Kind};
use super::interpolate::{self, Vars};
use super::model::{self, Endpoint, Project};
use super::read::{At, Child};
use super::yaml::{self, Mark, Node, Value};
use super::{env, graph, include, merge, names, Error};

const TOP_KEYS: &[&str] = &[
    "version", "name", "services", "networks", "volumes", "secrets", "configs", "include",
];

const DISCOVERED: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// What the command line says about the project.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-f` files (`-` is not supported); empty: `COMPOSE_FILE` or discovery.
    pub files: Vec<PathBuf>,
    pub project_name: Option<String>,
    pub project_directory: Option<PathBuf>,
    pub env_files: Vec<PathBuf>,
    pub profiles: Vec<String>,
    /// Services named on the command line: enabled whatever their profiles.
    pub named_services: Vec<String>,
    /// Where the command runs.
    pub cwd: PathBuf,
    /// The process environment.
    pub environ: BTreeMap<String, String>,
}

impl Options {
    /// Options for `cwd` with this process's environment.
    pub fn here() -> std::io::Result<Self> {
        Ok(Options {
            cwd: std::env::current_dir()?,
            environ: std::env::vars().collect(),
            ..Default::default()
        })
    }
}

/// Loads and checks a project.
pub fn load(opts: &Options) -> Result<Project, Error> {
    let env_dir = opts.project_directory.clone().unwrap_or(opts.cwd.clone());
    let vars = variables(opts, &env_dir)?;
    let files = config_files(opts, &vars)?;
    let working_dir = match &opts.project_directory {
        Some(d) => absolute(&opts.cwd, d),
        None => files[0]
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or(opts.cwd.clone()),
    };
    let mut merged: Option<Node> = None;
    for file in &files {
        let node = load_file(file, &vars)?;
        match &mut merged {
            None => merged = Some(node),
            Some(base) => merge::merge_files(base, node),
        }
    }
    let root = merged.unwrap_or_else(|| Node::new(Value::Map(Vec::new()), Mark::none()));
    let root_at = At::new(&root, "");
    root_at.only_keys(TOP_KEYS)?;
    let name = project_name(opts, &vars, &root, &working_dir)?;
    let mut project = Project::new(&name, &working_dir, files.clone());
    read_model(&root, opts, &vars, &mut project, &files)?;
    check(&root_at, &mut project)?;
    Ok(project)
}

/// Reads a (merged) tree into `project`, then the models it includes; `stack` holds the
/// files being read, to refuse an include cycle.
fn read_model(
    root: &Node,
    opts: &Options,
    vars: &Vars,
    project: &mut Project,
    stack: &[PathBuf],
) -> Result<(), Error> {
    let root_at = At::new(root, "");
    root_at.only_keys(TOP_KEYS)?;
    read_resources(&root_at, project)?;
    read_services(&root_at, opts, vars, project)?;
    for inc in include::entries(&root_at)? {
        if let Some(p) = inc.paths.iter().find(|p| stack.contains(p)) {
            let chain: Vec<String> = stack
                .iter()
                .chain([p])
                .map(|f| f.display().to_string())
                .collect();
            return Err(Error::Invalid {
                at: inc.at.clone(),
                path: inc.path.clone(),
                message: format!("include cycle: {}", chain.join(" -> ")),
            });
        }
        let dir = inc.directory();
        let mut sub_vars = vars.clone();
        let dotenv = dir.join(".env");
        if inc.env_files.is_empty() && dotenv.is_file() {
            env::layer(&mut sub_vars, env::read(&dotenv)?);
        }
        for f in &inc.env_files {
            env::layer(&mut sub_vars, env::read(f)?);
        }
        let mut merged: Option<Node> = None;
        for file in &inc.paths {
            let node = load_file(file, &sub_vars)?;
            match &mut merged {
                None => merged = Some(node),
                Some(base) => merge::merge_files(base, node),
            }
        }
        let sub_root = merged.unwrap_or_else(|| Node::new(Value::Map(Vec::new()), Mark::none()));
        let mut sub = Project::new(&project.name, &dir, inc.paths.clone());
        let mut deeper = stack.to_vec();
        deeper.extend(inc.paths.iter().cloned());
        read_model(&sub_root, opts, &sub_vars, &mut sub, &deeper)?;
        include::join(project, sub, &inc)?;
    }
    Ok(())
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    match p.is_absolute() {
        true => p.to_path_buf(),
        false => cwd.join(p),
    }
}

fn variables(opts: &Options, dir: &Path) -> Result<Vars, Error> {
    let mut vars: Vars = opts.environ.clone();
    if opts.env_files.is_empty() {
        let dotenv = dir.join(".env");
        if dotenv.is_file() {
            env::layer(&mut vars, env::read(&dotenv)?);
        }
    }
    for f in &opts.env_files {
        env::layer(&mut vars, env::read(&absolute(&opts.cwd, f))?);
    }
    Ok(vars)
}

fn config_files(opts: &Options, vars: &Vars) -> Result<Vec<PathBuf>, Error> {
    if !opts.files.is_empty() {
        return existing(opts.files.iter().map(|f| absolute(&opts.cwd, f)).collect());
    }
    if let Some(list) = vars.get("COMPOSE_FILE").filter(|v| !v.is_empty()) {
        let sep = vars
            .get("COMPOSE_PATH_SEPARATOR")
            .and_then(|s| s.chars().next())
            .unwrap_or(':');
        let base = opts.project_directory.clone().unwrap_or(opts.cwd.clone());
        return existing(
            list.split(sep)
                .map(|f| absolute(&base, Path::new(f)))
                .collect(),
        );
    }
    let start = opts.project_directory.clone().unwrap_or(opts.cwd.clone());
    let mut dir = Some(start.as_path());
    while let Some(d) = dir {
        if let Some(found) = DISCOVERED.iter().map(|n| d.join(n)).find(|p| p.is_file()) {
            let mut files = vec![found.clone()];
            let stem = found.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let ext = found.extension().and_then(|s| s.to_str()).unwrap_or("yml");
            let over = d.join(format!("{stem}.override.{ext}"));
            if over.is_file() {
                files.push(over);
            }
            return Ok(files);
        }
        dir = d.parent();
    }
    Err(Error::Project(format!(
        "no configuration file provided: not found (looked for {} in {} and its parents)",
        DISCOVERED.join(", "),
        start.display()
    )))
}

fn existing(files: Vec<PathBuf>) -> Result<Vec<PathBuf>, Error> {
    for f in &files {
        if !f.is_file() {
            return Err(Error::Io {
                path: f.clone(),
                message: "no such file".into(),
            });
        }
    }
    Ok(files)
}

/// One file: parsed, interpolated, services normalised and extended.
fn load_file(path: &Path, vars: &Vars) -> Result<Node, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut root = yaml::parse(&path.display().to_string(), &text)?;
    // Extension fields are not interpolated: they are only fragments for anchors.
    let keep: Vec<(String, Node)> = match &mut root.value {
        Value::Map(entries) => {
            let (x, rest): (Vec<_>, Vec<_>) = std::mem::take(entries)
                .into_iter()
                .partition(|(k, _)| k.starts_with("x-"));
            *entries = rest;
            x
        }
        _ => Vec::new(),
    };
    interpolate::node(&mut root, vars, "")?;
    if let Value::Map(entries) = &mut root.value {
        entries.extend(keep);
    }
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    include::absolutize(&mut root, &dir);
    if let Some(services) = root.get_mut("services") {
        if let Value::Map(entries) = &mut services.value {
            for (_, s) in entries.iter_mut() {
                merge::normalize_service(s);
            }
        }
        let load_other = |file: &str, _at: &Mark| -> Result<Node, Error> {
            let other = load_file(&dir.join(file), vars)?;
            Ok(other
                .get("services")
                .cloned()
                .unwrap_or_else(|| Node::new(Value::Map(Vec::new()), Mark::none())))
        };
        merge::resolve_extends(services, &load_other)?;
    }
    Ok(root)
}

fn project_name(
    opts: &Options,
    vars: &Vars,
    root: &Node,
    working_dir: &Path,
) -> Result<String, Error> {
    let (raw, from) = if let Some(p) = &opts.project_name {
        (p.clone(), "-p")
    } else if let Some(p) = vars.get("COMPOSE_PROJECT_NAME").filter(|p| !p.is_empty()) {
        (p.clone(), "COMPOSE_PROJECT_NAME")
    } else if let Some(n) = root.get("name").and_then(Node::scalar_text) {
        (n, "the top-level name")
    } else {
        let base = working_dir
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        (base, "the project directory's name")
    };
    let name = names::normalize_project(&raw);
    if name.is_empty() {
        return Err(Error::Project(format!(
            "project name {raw:?} (from {from}) has no letter or digit: \
             give one with -p or COMPOSE_PROJECT_NAME"
        )));
    }
    if from != "the project directory's name" && name != raw {
        return Err(Error::Project(format!(
            "invalid project name {raw:?} (from {from}): it must contain only lowercase \
             letters, digits, dashes and underscores, and start with a letter or digit"
        )));
    }
    Ok(name)
}

fn read_resources(root: &At<'_>, project: &mut Project) -> Result<(), Error> {
    if let Some(networks) = root.get("networks") {
        for (key, c) in networks.at().entries()? {
            project
                .networks
                .insert(key.clone(), model::network(&key, &c, &project.name)?);
        }
    }
    if let Some(volumes) = root.get("volumes") {
        for (key, c) in volumes.at().entries()? {
            project
                .volumes
                .insert(key.clone(), model::volume(&key, &c, &project.name)?);
        }
    }
    for kind in [Kind::Secret, Kind::Config] {
        let Some(list) = root.get(kind.key()) else {
            continue;
        };
        for (key, c) in list.at().entries()? {
            let o = files::object(kind, &key, &c, &project.working_dir, &project.name)?;
            match kind {
                Kind::Secret => project.secrets.insert(key, o),
                Kind::Config => project.configs.insert(key, o),
            };
        }
    }
    Ok(())
}

fn active_profiles(opts: &Options, vars: &Vars) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = opts.profiles.iter().cloned().collect();
    if opts.profiles.is_empty() {
        if let Some(p) = vars.get("COMPOSE_PROFILES") {
            set.extend(
                p.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
    }
    set
}

fn read_services(
    root: &At<'_>,
    opts: &Options,
    vars: &Vars,
    project: &mut Project,
) -> Result<(), Error> {
    let Some(services) = root.get("services") else {
        return Ok(());
    };
    let profiles = active_profiles(opts, vars);
    for (name, c) in services.at().entries()? {
        let mut s = model::service(&name, &c, &project.working_dir)?;
        if s.networks.is_empty() && s.network_mode.is_none() {
            s.networks.insert("default".into(), Endpoint::default());
        }
        let enabled = s.profiles.is_empty()
            || s.profiles.iter().any(|p| profiles.contains(p) || p == "*")
            || profiles.contains("*")
            || opts.named_services.contains(&name);
        match enabled {
            true => project.services.insert(name, s),
            false => project.disabled.insert(name, s),
        };
    }
    Ok(())
}

/// References (dependencies, networks, volumes) and cycles.
fn check(root: &At<'_>, project: &mut Project) -> Result<(), Error> {
    let services = root.get("services");
    let at_of = |name: &str, key: &str| -> (Mark, String) {
        let path = format!("services.{name}.{key}");
        let mark = services
            .as_ref()
            .and_then(|s| s.node.get(name))
            .and_then(|n| n.get(key).or(Some(n)))
            .map(|n| n.mark.clone())
            .unwrap_or_else(Mark::none);
        (mark, path)
    };
    let uses_default = project
        .services
        .values()
        .any(|s| s.networks.contains_key("default"));
    if uses_default && !project.networks.contains_key("default") {
        let default = model::network(
            "default",
            &Child {
                node: &Node::new(Value::Null, Mark::none()),
                path: "networks.default".into(),
            },
            &project.name,
        )?;
        project.networks.insert("default".into(), default);
    }
    for (name, s) in &project.services {
        for (dep, d) in &s.depends_on {
            let (at, path) = at_of(name, "depends_on");
            if project.services.contains_key(dep) {
                continue;
            }
            let message = match project.disabled.contains_key(dep) {
                true if !d.required => continue,
                true => format!(
                    "depends on service {dep:?}, which is not enabled by the active profiles"
                ),
                false if !d.required => continue,
                false => format!("depends on undefined service {dep:?}"),
            };
            return Err(Error::Invalid { at, path, message });
        }
        for net in s.networks.keys() {
            if !project.networks.contains_key(net) {
                let (at, path) = at_of(name, "networks");
                return Err(Error::Invalid {
                    at,
                    path,
                    message: format!("refers to undefined network {net:?}"),
                });
            }
        }
        for (kind, refs, objects) in [
            (Kind::Secret, &s.secrets, &project.secrets),
            (Kind::Config, &s.configs, &project.configs),
        ] {
            if let Some(message) = refs
                .iter()
                .find_map(|r| files::check_reference(kind, r, objects))
            {
                let (at, path) = at_of(name, kind.key());
                return Err(Error::Invalid { at, path, message });
            }
        }
        for m in &s.volumes {
            if let (Some(src), "volume") = (&m.source, m.kind.as_str()) {
                if !project.volumes.contains_key(src) {
                    let (at, path) = at_of(name, "volumes");
                    return Err(Error::Invalid {
                        at,
                        path,
                        message: format!("refers to undefined volume {src:?}"),
                    });
                }
            }
        }
    }
    graph::start_order(&project.services)?;
    Ok(())
}

#[cfg(test)]
mod tests;
