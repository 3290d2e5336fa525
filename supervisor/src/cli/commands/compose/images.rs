//! `compose build`, `pull`, `push`, and the images `up`/`run` need before anything starts.
use std::collections::BTreeSet;

use clap::Args;

use super::{engine, Context};
use crate::cli::commands::{build as docker_build, transfer};
use crate::compose::model::{Project, Service};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image (accepted; images come from the daemon)
    #[arg(long)]
    pub pull: bool,
    /// Don't print anything to STDOUT
    #[arg(short, long)]
    pub quiet: bool,
    /// Set build-time variables for services
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Pull without printing progress information
    #[arg(short, long)]
    pub quiet: bool,
    /// Ignore images that can't be pulled or pushed
    #[arg(long)]
    pub ignore_pull_failures: bool,
    pub services: Vec<String>,
}

/// Builds one service's image, tagged as the service runs it.
pub fn build_service(
    ctx: &Context,
    p: &Project,
    s: &Service,
    no_cache: bool,
    quiet: bool,
    extra_args: &[String],
) -> anyhow::Result<()> {
    let b = s.build.as_ref().expect("a service with build");
    let tag = engine(ctx, p).image_ref(s);
    super::report("Image", &tag, "Building");
    let mut build_args: Vec<String> = b
        .args
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    build_args.extend(extra_args.iter().cloned());
    let args = docker_build::BuildArgs {
        tags: vec![tag.clone()],
        file: b.dockerfile.as_ref().map(|f| b.context.join(f)),
        build_args,
        labels: b.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        no_cache,
        quiet,
        iidfile: None,
        target: b.target.clone(),
        pull: false,
        network: b.network.clone().unwrap_or_else(|| "default".into()),
        add_hosts: Vec::new(),
        platform: None,
        secrets: Vec::new(),
        path: b.context.clone(),
    };
    docker_build::build(ctx, &args).map_err(|e| match e.downcast_ref::<super::Exit>() {
        Some(_) => super::fail(format!("failed to build service {:?}", s.name)),
        None => super::fail(format!("failed to build service {:?}: {e:#}", s.name)),
    })?;
    super::report("Image", &tag, "Built");
    Ok(())
}

fn pull_one(ctx: &Context, image: &str, quiet: bool) -> anyhow::Result<()> {
    super::report("Image", image, "Pulling");
    transfer::pull(
        ctx,
        &transfer::PullArgs {
            platform: None,
            quiet: true,
            name: image.to_string(),
        },
    )
    .map_err(|e| super::fail(format!("pull {image}: {e:#}")))?;
    if !quiet {
        super::report("Image", image, "Pulled");
    }
    Ok(())
}

/// Before `up`/`run` create anything: build (when asked, or when the image is missing) or
/// pull (when missing) each selected service's image, so a failure leaves nothing started.
pub fn ensure(
    ctx: &Context,
    p: &Project,
    selected: &BTreeSet<String>,
    force_build: bool,
    no_build: bool,
) -> anyhow::Result<()> {
    let e = engine(ctx, p);
    for name in selected {
        let s = &p.services[name];
        let image = e.image_ref(s);
        let present = e.image_id(&image)?.is_some();
        let policy = s.pull_policy.as_deref().unwrap_or("missing");
        if s.build.is_some() && !no_build && (force_build || !present || policy == "build") {
            build_service(ctx, p, s, false, false, &[])?;
        } else if policy == "always" || (!present && policy != "never") {
            if s.build.is_some() && no_build && !present {
                return Err(super::fail(format!(
                    "service {name:?} has no image {image:?} and --no-build was given"
                )));
            }
            pull_one(ctx, &image, false)?;
        } else if !present {
            return Err(super::fail(format!(
                "service {name:?}: image {image:?} not found (pull_policy: never)"
            )));
        }
    }
    Ok(())
}

pub fn build(ctx: &Context, p: &Project, a: &BuildArgs) -> anyhow::Result<()> {
    let names: Vec<&String> = match a.services.is_empty() {
        true => p.services.keys().collect(),
        false => a.services.iter().collect(),
    };
    for name in names {
        let s = &p.services[name];
        if s.build.is_some() {
            build_service(ctx, p, s, a.no_cache, a.quiet, &a.build_args)?;
        }
    }
    Ok(())
}

pub fn pull(ctx: &Context, p: &Project, a: &ServicesArgs) -> anyhow::Result<()> {
    for s in p.services.values() {
        if !a.services.is_empty() && !a.services.contains(&s.name) {
            continue;
        }
        let Some(image) = &s.image else { continue };
        if s.build.is_some() && engine(ctx, p).image_id(image)?.is_some() {
            continue;
        }
        match pull_one(ctx, image, a.quiet) {
            Err(_) if a.ignore_pull_failures => {}
            other => other?,
        }
    }
    Ok(())
}

pub fn push(ctx: &Context, p: &Project, a: &ServicesArgs) -> anyhow::Result<()> {
    for s in p.services.values() {
        if !a.services.is_empty() && !a.services.contains(&s.name) {
            continue;
        }
        let (Some(image), Some(_)) = (&s.image, &s.build) else {
            continue;
        };
        super::report("Image", image, "Pushing");
        let pushed = transfer::push(
            ctx,
            &transfer::PushArgs {
                all_tags: false,
                quiet: a.quiet,
                name: image.clone(),
            },
        );
        match pushed {
            Err(_) if a.ignore_pull_failures => {}
            Err(e) => return Err(super::fail(format!("push {image}: {e:#}"))),
            Ok(()) => super::report("Image", image, "Pushed"),
        }
    }
    Ok(())
}
