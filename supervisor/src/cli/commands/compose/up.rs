//! `compose up` and `compose down`.
use std::collections::BTreeMap;
use std::sync::mpsc;

use clap::Args;
use nix::sys::signal::{SigSet, Signal};

use super::{engine, images, ops, selection, service_containers, Context, Exit};
use crate::compose::engine::{Engine, Existing, UpOptions};
use crate::compose::model::Project;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Detached mode: Run containers in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Build images before starting containers
    #[arg(long)]
    pub build: bool,
    /// Don't build an image, even if it's missing
    #[arg(long, conflicts_with = "build")]
    pub no_build: bool,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long)]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them
    #[arg(long, conflicts_with = "force_recreate")]
    pub no_recreate: bool,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Don't start the services after creating them
    #[arg(long)]
    pub no_start: bool,
    /// Scale SERVICE to NUM instances (SERVICE=NUM)
    #[arg(long)]
    pub scale: Vec<String>,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Wait for services to be running|healthy (implies detached mode)
    #[arg(long)]
    pub wait: bool,
    /// Stops all containers if any container was stopped (incompatible with -d)
    #[arg(long, conflicts_with = "detach")]
    pub abort_on_container_exit: bool,
    /// Return the exit code of the selected service container
    #[arg(long)]
    pub exit_code_from: Option<String>,
    /// Use this timeout in seconds for container shutdown
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove named volumes declared in the "volumes" section and anonymous volumes
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove images used by services ("local" for those without a custom tag, or "all")
    #[arg(long)]
    pub rmi: Option<String>,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
}

fn scales(p: &Project, list: &[String]) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for s in list {
        let (name, n) = s
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid --scale {s:?}: expected SERVICE=NUM"))?;
        let n: u32 = n
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid --scale {s:?}: {n:?} is not a number"))?;
        if !p.services.contains_key(name) {
            anyhow::bail!("no such service: {name}");
        }
        out.insert(name.to_string(), n);
    }
    Ok(out)
}

pub fn up(ctx: &Context, p: &Project, a: &UpArgs) -> anyhow::Result<()> {
    let opts = UpOptions {
        force_recreate: a.force_recreate,
        no_recreate: a.no_recreate,
        no_start: a.no_start,
        scale: scales(p, &a.scale)?,
        no_deps: a.no_deps,
    };
    if let Some(s) = &a.exit_code_from {
        if !p.services.contains_key(s) {
            anyhow::bail!("no such service: {s}");
        }
    }
    let selected = selection(p, &a.services, !a.no_deps);
    images::ensure(ctx, p, &selected, a.build, a.no_build)?;
    let e = engine(ctx, p);
    let orphans = e.orphans()?;
    if !orphans.is_empty() {
        match a.remove_orphans {
            true => {
                for c in &orphans {
                    e.stop(c, a.timeout)?;
                    e.remove(c, false)?;
                }
            }
            false => {
                eprintln!(
                "WARN Found orphan containers ({}) for this project. If you removed or renamed \
                 this service in your compose file, you can run this command with the \
                 --remove-orphans flag to clean it up.",
                orphans.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            )
            }
        }
    }
    e.up(&selected, &opts).map_err(super::fail)?;
    if a.wait {
        return wait_running(ctx, p, &selected.into_iter().collect::<Vec<_>>());
    }
    if a.detach || a.no_start {
        return Ok(());
    }
    attached(ctx, p, a, &selected.into_iter().collect::<Vec<_>>())
}

/// `--wait`: every selected container running, and healthy where it has a healthcheck.
fn wait_running(ctx: &Context, p: &Project, services: &[String]) -> anyhow::Result<()> {
    let e = engine(ctx, p);
    for c in service_containers(&e, services, true)? {
        let v = ctx
            .client
            .get(&format!("/containers/{}/json", c.id))?
            .json()?;
        if v["State"]["Health"].is_object() {
            e.wait_healthy(&c).map_err(super::fail)?;
        } else if v["State"]["Running"] != true {
            return Err(super::fail(format!("container {} exited", c.name)));
        }
    }
    Ok(())
}

/// What the foreground `up` waits on.
enum Event {
    Exited(Box<Existing>, i64),
    Interrupted,
    /// The graceful stop after the first Ctrl-C finished.
    Stopped,
}

/// Foreground `up`: follows the logs of the containers until they all exit (or, with
/// `--abort-on-container-exit`, the first one), then returns that exit code. As compose
/// v2: the first SIGINT/SIGTERM stops the containers (not removed), a second one kills
/// them; either way the exit code is 130.
fn attached(ctx: &Context, p: &Project, a: &UpArgs, services: &[String]) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel();
    // Blocked before any thread starts, so that only the waiting thread takes them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;
    let interrupts = tx.clone();
    std::thread::spawn(move || {
        while signals.wait().is_ok() {
            if interrupts.send(Event::Interrupted).is_err() {
                break;
            }
        }
    });
    let e = engine(ctx, p);
    let containers = service_containers(&e, services, true)?;
    let width = containers.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let colors = super::stdout_is_tty();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    eprintln!("Attaching to {}", names.join(", "));
    let mut followers = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        followers.push(ops::follow(ctx, c, width, colors, i, "follow=1&tail=all"));
    }
    for c in &containers {
        let (tx, client, c) = (tx.clone(), ctx.client.clone(), c.clone());
        std::thread::spawn(move || {
            let code = client
                .post(&format!("/containers/{}/wait", c.id))
                .ok()
                .and_then(|r| r.json().ok())
                .and_then(|v| v["StatusCode"].as_i64())
                .unwrap_or(-1);
            let _ = tx.send(Event::Exited(Box::new(c), code));
        });
    }
    let mut result = 0i64;
    let mut left = containers.len();
    let mut stopping = false;
    while left > 0 || stopping {
        let Ok(event) = rx.recv() else { break };
        match event {
            Event::Exited(c, code) => {
                left -= 1;
                eprintln!("{} exited with code {code}", c.name);
                let from = a.exit_code_from.as_deref();
                if !stopping
                    && (from == Some(c.service.as_str())
                        || (from.is_none() && a.abort_on_container_exit))
                {
                    result = code;
                }
                if !stopping && (a.abort_on_container_exit || from == Some(c.service.as_str())) {
                    eprintln!("Aborting on container exit...");
                    for other in service_containers(&e, services, false)? {
                        e.stop(&other, a.timeout)?;
                    }
                    break;
                }
            }
            Event::Interrupted if !stopping => {
                eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
                stopping = true;
                result = 130;
                let (tx, client, project) = (tx.clone(), ctx.client.clone(), p.clone());
                let (services, timeout) = (services.to_vec(), a.timeout);
                std::thread::spawn(move || {
                    let e = Engine {
                        client: &client,
                        project: &project,
                        report: &super::report,
                    };
                    if let Err(err) = stop_all(&e, &services, timeout) {
                        eprintln!("{err}");
                    }
                    let _ = tx.send(Event::Stopped);
                });
            }
            Event::Interrupted => {
                // The second one: kill what is still running, and leave.
                let running = service_containers(&e, services, false)?;
                let list: Vec<&Existing> = running.iter().collect();
                e.parallel(&list, |c| e.kill(c, "SIGKILL"))
                    .map_err(super::fail)?;
                return Err(Exit(130).into());
            }
            Event::Stopped => break,
        }
    }
    // The log streams end with their containers; after a stop, give the last lines a
    // moment rather than waiting on a stream the daemon keeps open.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    for f in followers {
        while stopping && !f.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !stopping || f.is_finished() {
            let _ = f.join();
        }
    }
    match result {
        0 => Ok(()),
        code => Err(Exit(code as i32).into()),
    }
}

/// Stops the running containers of `services` at once (each with its grace period).
fn stop_all(e: &Engine<'_>, services: &[String], timeout: Option<i64>) -> anyhow::Result<()> {
    let running = service_containers(e, services, false)?;
    let list: Vec<&Existing> = running.iter().collect();
    e.parallel(&list, |c| e.stop(c, timeout))?;
    Ok(())
}

pub fn down(ctx: &Context, p: &Project, a: &DownArgs) -> anyhow::Result<()> {
    if let Some(r) = &a.rmi {
        if r != "all" && r != "local" {
            anyhow::bail!("invalid --rmi {r:?}: use \"local\" or \"all\"");
        }
    }
    let e = engine(ctx, p);
    e.down(a.volumes, a.remove_orphans, a.timeout)
        .map_err(super::fail)?;
    if let Some(r) = &a.rmi {
        for s in p.services.values() {
            if r == "local" && s.image.is_some() {
                continue;
            }
            let image = e.image_ref(s);
            match ctx
                .client
                .request(
                    "DELETE",
                    &format!("/images/{}", super::super::encode(&image)),
                    &[],
                    crate::cli::client::Body::None,
                )?
                .ok()
            {
                Ok(_) => super::report("Image", &image, "Removed"),
                Err(crate::cli::client::Error::Daemon { status: 404, .. }) => {}
                Err(err) => return Err(super::fail(format!("remove image {image}: {err}"))),
            }
        }
    }
    Ok(())
}
