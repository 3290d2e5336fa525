//! docker's create-time merge of the image's config into the request's, and the process's
//! environment and argv as docker derives them.
//!
//! Call [`merge`] once, at create, and store the result (it is what `inspect` shows as
//! `Config`); the spec is later built from that stored, merged config. Merging twice is not
//! idempotent (an `--entrypoint ""` is reset to `null` by the first merge).
use oci_spec::image::ImageConfiguration;

use super::SpecError;
use crate::containers::config::{Config, HealthConfig, HostConfig};

/// docker's default `PATH` for Linux containers.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The image's `config` as docker's `Config` (docker image configs are that same type).
pub fn image_config(image: &ImageConfiguration) -> Config {
    let Some(c) = image.config() else {
        return Config::default();
    };
    let set = |v: &Option<std::collections::HashMap<String, String>>| {
        v.as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    };
    let keys = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|k| k.iter().map(|k| (k.clone(), Default::default())).collect())
    };
    Config {
        user: c.user().clone().unwrap_or_default(),
        exposed_ports: keys(c.exposed_ports()),
        env: c.env().clone(),
        entrypoint: c.entrypoint().clone(),
        cmd: c.cmd().clone(),
        volumes: keys(c.volumes()),
        working_dir: c.working_dir().clone().unwrap_or_default(),
        labels: set(c.labels()),
        stop_signal: c.stop_signal().clone().unwrap_or_default(),
        ..Config::default()
    }
}

/// What docker keeps in an image's config beyond OCI's fields (`Healthcheck`, `Shell`),
/// from the raw config JSON, into `config`.
pub fn docker_fields(raw: &serde_json::Value, config: &mut Config) {
    let c = &raw["config"];
    if let Ok(h) = serde_json::from_value(c["Healthcheck"].clone()) {
        config.healthcheck = h;
    }
    if let Ok(s) = serde_json::from_value(c["Shell"].clone()) {
        config.shell = s;
    }
}

/// Merges `image` into `user` as docker does at create, then checks there is a command.
pub fn merge(user: &mut Config, image: &Config) -> Result<(), SpecError> {
    if user.user.is_empty() {
        user.user = image.user.clone();
    }
    merge_set(&mut user.exposed_ports, &image.exposed_ports);
    merge_env(user, image);
    if user.labels.is_none() {
        user.labels = image.labels.clone();
    } else if let (Some(u), Some(i)) = (user.labels.as_mut(), image.labels.as_ref()) {
        for (k, v) in i {
            u.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    merge_command(user, image);
    if user.working_dir.is_empty() {
        user.working_dir = image.working_dir.clone();
    }
    merge_set(&mut user.volumes, &image.volumes);
    if user.stop_signal.is_empty() {
        user.stop_signal = image.stop_signal.clone();
    }
    merge_healthcheck(user, image);
    if user.on_build.as_deref().unwrap_or_default().is_empty() {
        user.on_build = image.on_build.clone();
    }
    if user.shell.is_none() {
        user.shell = image.shell.clone();
    }
    // `--entrypoint ""` sends `[""]`: it keeps the image's Cmd out, then means "no entrypoint".
    if user.entrypoint.as_deref() == Some(&[String::new()][..]) {
        user.entrypoint = None;
    }
    if list(&user.entrypoint).is_empty() && list(&user.cmd).is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(())
}

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or_default()
}

fn merge_set<V: Clone>(
    user: &mut Option<std::collections::BTreeMap<String, V>>,
    image: &Option<std::collections::BTreeMap<String, V>>,
) {
    let Some(image) = image else { return };
    let user = user.get_or_insert_with(Default::default);
    for (k, v) in image {
        user.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

fn env_key(entry: &str) -> &str {
    entry.split('=').next().unwrap_or(entry)
}

/// The user's variables first, then the image's that the user did not set.
fn merge_env(user: &mut Config, image: &Config) {
    let image_env = list(&image.env);
    if list(&user.env).is_empty() {
        user.env = image.env.clone();
        return;
    }
    let env = user.env.get_or_insert_with(Vec::new);
    for entry in image_env {
        if !env.iter().any(|u| env_key(u) == env_key(entry)) {
            env.push(entry.clone());
        }
    }
}

/// An entrypoint given (even `""`) resets the image's Cmd; otherwise Cmd and Entrypoint come
/// from the image where the request has none.
fn merge_command(user: &mut Config, image: &Config) {
    if !list(&user.entrypoint).is_empty() {
        return;
    }
    if list(&user.cmd).is_empty() {
        user.cmd = image.cmd.clone();
        user.args_escaped = image.args_escaped;
    }
    if user.entrypoint.is_none() {
        user.entrypoint = image.entrypoint.clone();
    }
}

/// Fields the request leaves zero come from the image's healthcheck.
fn merge_healthcheck(user: &mut Config, image: &Config) {
    let Some(ih) = &image.healthcheck else { return };
    let Some(uh) = &mut user.healthcheck else {
        user.healthcheck = Some(ih.clone());
        return;
    };
    inherit_health(uh, ih);
}

/// What `uh` leaves zero (or its test empty), `ih` gives, as dockerd merges a container's
/// (or a build step's) healthcheck with its image's.
pub fn inherit_health(uh: &mut HealthConfig, ih: &HealthConfig) {
    if list(&uh.test).is_empty() {
        uh.test = ih.test.clone();
    }
    for (u, i) in [
        (&mut uh.interval, ih.interval),
        (&mut uh.timeout, ih.timeout),
        (&mut uh.start_period, ih.start_period),
        (&mut uh.retries, ih.retries),
        (&mut uh.start_interval, ih.start_interval),
    ] {
        if *u == 0 {
            *u = i;
        }
    }
}

/// docker's create-time defaults that are not the image's: the hostname (the id's first 12
/// characters, or the host's own with `--network host`).
pub fn fill_hostname(config: &mut Config, host_config: &HostConfig, id: &str, host_name: &str) {
    if !config.hostname.is_empty() {
        return;
    }
    config.hostname = if host_config.network_mode == "host" {
        host_name.to_string()
    } else {
        id.chars().take(12).collect()
    };
}

/// The process's argv: entrypoint then cmd (the merged config has at least one of them).
pub fn args(config: &Config) -> Result<Vec<String>, SpecError> {
    let args: Vec<String> = list(&config.entrypoint)
        .iter()
        .chain(list(&config.cmd))
        .cloned()
        .collect();
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(args)
}

/// The process's environment: `PATH`, `HOSTNAME` (and `TERM=xterm` with a tty) as defaults
/// that the config's variables replace in place or follow; a bare `NAME` (no `=`) removes it.
pub fn env(config: &Config) -> Vec<String> {
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={}", config.hostname),
    ];
    if config.tty {
        env.push("TERM=xterm".to_string());
    }
    for entry in list(&config.env) {
        if !entry.contains('=') {
            env.retain(|e| env_key(e) != entry);
            continue;
        }
        match env.iter_mut().find(|e| env_key(e) == env_key(entry)) {
            Some(slot) => *slot = entry.clone(),
            None => env.push(entry.clone()),
        }
    }
    env
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
