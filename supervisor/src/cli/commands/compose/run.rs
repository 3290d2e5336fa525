//! `compose exec` (in a service's running container) and `compose run` (a one-off container
//! of a service, `P-S-run-ID`, labelled `oneoff=True`).
use std::collections::BTreeMap;
use std::io::IsTerminal;

use clap::Args;
use serde_json::json;

use super::{engine, images, selection, service_containers, Context};
use crate::cli::commands::containers;
use crate::compose::engine::UpOptions;
use crate::compose::model::Project;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: Run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Disable pseudo-TTY allocation
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Run the command as this user
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Give extended privileges to the process
    #[arg(long)]
    pub privileged: bool,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Override the entrypoint of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Disable pseudo-TTY allocation
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Run as specified username or uid
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Add or override a label
    #[arg(short = 'l', long = "label")]
    pub labels: Vec<String>,
    pub service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn exec(ctx: &Context, p: &Project, a: &ExecArgs) -> anyhow::Result<()> {
    let e = engine(ctx, p);
    let c = service_containers(&e, std::slice::from_ref(&a.service), false)?
        .into_iter()
        .find(|c| c.number == a.index)
        .ok_or_else(|| {
            super::fail(format!(
                "service {:?} is not running container #{}",
                a.service, a.index
            ))
        })?;
    let tty = !a.no_tty && std::io::stdin().is_terminal();
    containers::exec(
        ctx,
        &containers::ExecArgs {
            detach: a.detach,
            interactive: !a.detach,
            tty,
            env: a.env.clone(),
            user: a.user.clone(),
            workdir: a.workdir.clone(),
            privileged: a.privileged,
            container: c.id,
            command: a.command.clone(),
        },
    )
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    hex::encode(bytes)
}

pub fn run(ctx: &Context, p: &Project, a: &RunArgs) -> anyhow::Result<()> {
    let s = &p.services[&a.service];
    let deps = match a.no_deps {
        true => Default::default(),
        false => {
            let mut d = selection(p, std::slice::from_ref(&a.service), true);
            d.remove(&a.service);
            d
        }
    };
    let mut needed = deps.clone();
    needed.insert(a.service.clone());
    images::ensure(ctx, p, &needed, false, false)?;
    let e = engine(ctx, p);
    e.ensure_networks(&needed).map_err(super::fail)?;
    e.ensure_volumes(&needed).map_err(super::fail)?;
    if !deps.is_empty() {
        e.up(&deps, &UpOptions::default()).map_err(super::fail)?;
    }
    e.wait_dependencies(s).map_err(super::fail)?;
    let mut body = e
        .create_body(s, 1, true, &BTreeMap::new())
        .map_err(super::fail)?;
    if !a.command.is_empty() {
        body["Cmd"] = json!(a.command);
    }
    if let Some(ep) = &a.entrypoint {
        body["Entrypoint"] = json!(crate::compose::read::split_words(ep).map_err(super::fail)?);
    }
    if let Some(env) = body["Env"].as_array_mut() {
        env.extend(a.env.iter().map(|e| json!(e)));
    }
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        body["Labels"][k] = json!(v);
    }
    if let Some(u) = &a.user {
        body["User"] = json!(u);
    }
    if let Some(w) = &a.workdir {
        body["WorkingDir"] = json!(w);
    }
    // A one-off container publishes no ports (as compose's run without --service-ports).
    body["HostConfig"]["PortBindings"] = json!({});
    body["HostConfig"]["AutoRemove"] = json!(a.rm && !a.detach);
    let tty = !a.no_tty && std::io::stdin().is_terminal();
    body["Tty"] = json!(tty);
    body["OpenStdin"] = json!(!a.detach);
    body["AttachStdin"] = json!(!a.detach);
    body["StdinOnce"] = json!(!a.detach);
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}-run-{}", p.name, s.name, random_suffix()));
    let id = e.create_named(s, &name, body).map_err(super::fail)?;
    if a.detach {
        ctx.client
            .post(&format!("/containers/{id}/start"))
            .map_err(super::fail)?;
        println!("{name}");
        return Ok(());
    }
    containers::start(
        ctx,
        &containers::StartArgs {
            attach: true,
            interactive: !a.detach,
            containers: vec![id],
        },
    )
}
