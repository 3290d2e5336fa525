//! `berth compose`: compose v2's command set over the daemon's API. The project is loaded
//! by `crate::compose::project`, the daemon driven by `crate::compose::engine`; this module
//! parses flags, builds and pulls images, and prints.
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Context, Exit};
use crate::compose::engine::{Engine, Existing};
use crate::compose::model::Project;
use crate::compose::{graph, project};

mod images;
mod ops;
mod run;
mod up;

/// `berth compose [-f FILE]... [-p NAME] COMMAND`.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Compose configuration files
    #[arg(short = 'f', long = "file", global = true)]
    pub files: Vec<PathBuf>,
    /// Project name
    #[arg(short = 'p', long = "project-name", global = true)]
    pub project_name: Option<String>,
    /// Specify an alternate working directory (default: the path of the first file)
    #[arg(long, global = true)]
    pub project_directory: Option<PathBuf>,
    /// Specify an alternate environment file
    #[arg(long, global = true)]
    pub env_file: Vec<PathBuf>,
    /// Specify a profile to enable
    #[arg(long = "profile", global = true)]
    pub profiles: Vec<String>,
    #[command(subcommand)]
    pub command: ComposeCommand,
}

#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Create and start containers
    Up(up::UpArgs),
    /// Stop and remove containers, networks
    Down(up::DownArgs),
    /// List containers
    Ps(ops::PsArgs),
    /// View output from containers
    Logs(ops::LogsArgs),
    /// Build or rebuild services
    Build(images::BuildArgs),
    /// Pull service images
    Pull(images::ServicesArgs),
    /// Push service images
    Push(images::ServicesArgs),
    /// Execute a command in a running container
    Exec(run::ExecArgs),
    /// Run a one-off command on a service
    Run(run::RunArgs),
    /// Start services
    Start(ops::ServicesArgs),
    /// Stop services
    Stop(ops::StopArgs),
    /// Restart service containers
    Restart(ops::StopArgs),
    /// Force stop service containers
    Kill(ops::KillArgs),
    /// Removes stopped service containers
    Rm(ops::RmArgs),
    /// Pause services
    Pause(ops::ServicesArgs),
    /// Unpause services
    Unpause(ops::ServicesArgs),
    /// Display the running processes
    Top(ops::ServicesArgs),
    /// List images used by the created containers
    Images(ops::ServicesArgs),
    /// Print the public port for a port binding
    Port(ops::PortArgs),
    /// Parse, resolve and render compose file in canonical format
    Config(ops::ConfigArgs),
    /// Show the Docker Compose version information
    Version,
}

/// Runs a compose command.
pub fn run(ctx: &Context, a: ComposeArgs) -> anyhow::Result<()> {
    use ComposeCommand as C;
    let load = |named: &[String]| load_project(&a, named);
    match &a.command {
        C::Version => {
            println!(
                "Docker Compose version v{} (berth {})",
                crate::compose::names::COMPOSE_VERSION,
                env!("CARGO_PKG_VERSION")
            );
            Ok(())
        }
        C::Up(u) => up::up(ctx, &load(&u.services)?, u),
        C::Down(d) => up::down(ctx, &load(&[])?, d),
        C::Ps(p) => ops::ps(ctx, &load(&p.services)?, p),
        C::Logs(l) => ops::logs(ctx, &load(&l.services)?, l),
        C::Build(b) => images::build(ctx, &load(&b.services)?, b),
        C::Pull(p) => images::pull(ctx, &load(&p.services)?, p),
        C::Push(p) => images::push(ctx, &load(&p.services)?, p),
        C::Exec(e) => run::exec(ctx, &load(std::slice::from_ref(&e.service))?, e),
        C::Run(r) => run::run(ctx, &load(std::slice::from_ref(&r.service))?, r),
        C::Start(s) => ops::simple(ctx, &load(&s.services)?, &s.services, "start"),
        C::Stop(s) => ops::stop(ctx, &load(&s.services)?, s, "stop"),
        C::Restart(s) => ops::stop(ctx, &load(&s.services)?, s, "restart"),
        C::Kill(k) => ops::kill(ctx, &load(&k.services)?, k),
        C::Rm(r) => ops::rm(ctx, &load(&r.services)?, r),
        C::Pause(s) => ops::simple(ctx, &load(&s.services)?, &s.services, "pause"),
        C::Unpause(s) => ops::simple(ctx, &load(&s.services)?, &s.services, "unpause"),
        C::Top(s) => ops::top(ctx, &load(&s.services)?, s),
        C::Images(s) => ops::images(ctx, &load(&s.services)?, s),
        C::Port(p) => ops::port(ctx, &load(std::slice::from_ref(&p.service))?, p),
        C::Config(c) => ops::config(&load(&[])?, c),
    }
}

fn load_project(a: &ComposeArgs, named: &[String]) -> anyhow::Result<Project> {
    let mut opts = project::Options::here()?;
    opts.files = a.files.clone();
    opts.project_name = a.project_name.clone();
    opts.project_directory = a.project_directory.clone();
    opts.env_files = a.env_file.clone();
    opts.profiles = a.profiles.clone();
    opts.named_services = named.to_vec();
    let p = project::load(&opts)?;
    check_services(&p, named)?;
    Ok(p)
}

/// Services named on the command line must exist.
fn check_services(p: &Project, named: &[String]) -> anyhow::Result<()> {
    for n in named {
        if !p.services.contains_key(n) {
            anyhow::bail!("no such service: {n}");
        }
    }
    Ok(())
}

/// Prints progress as compose v2 does, on stderr.
pub fn report(kind: &str, name: &str, status: &str) {
    eprintln!(" {kind} {name}  {status}");
}

pub fn engine<'a>(ctx: &'a Context, p: &'a Project) -> Engine<'a> {
    Engine {
        client: &ctx.client,
        project: p,
        report: &report,
    }
}

/// The services named, or all of them; with dependencies when `deps`.
pub fn selection(p: &Project, named: &[String], deps: bool) -> BTreeSet<String> {
    if named.is_empty() {
        return p.services.keys().cloned().collect();
    }
    match deps {
        true => graph::with_dependencies(&p.services, named),
        false => named.iter().cloned().collect(),
    }
}

/// The project's service containers (not one-off), of the named services or all.
pub fn service_containers(
    e: &Engine<'_>,
    named: &[String],
    all: bool,
) -> anyhow::Result<Vec<Existing>> {
    Ok(e.containers(all)?
        .into_iter()
        .filter(|c| !c.oneoff && (named.is_empty() || named.contains(&c.service)))
        .collect())
}

pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// A failure already printed: exit `code`.
pub fn fail(message: impl std::fmt::Display) -> anyhow::Error {
    eprintln!("{message}");
    Exit(1).into()
}
