//! A container's volumes through its life: resolved and checked at create, created and
//! referenced once the request is good, mounted (and filled by copy-up) at start, unmounted
//! at exit, released (anonymous ones removed with `rm -v` / `--rm`) at removal.
use std::collections::HashMap;
use std::path::Path;

use super::config::{Config, HostConfig};
use super::record::Container;
use super::service::Error;
use crate::volumes::mounts::{self, MountPoint, PlanError};
use crate::volumes::service::CreateOptions;
use crate::volumes::{copyup, VolumeService};

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Invalid(m) => Error::Invalid(m),
            e @ (PlanError::NoContainer(_) | PlanError::NoDriver(_)) => {
                Error::NotFound(e.to_string())
            }
        }
    }
}

fn volume_error(e: crate::volumes::Error) -> Error {
    match e.status() {
        400 => Error::Invalid(e.to_string()),
        404 => Error::NotFound(e.to_string()),
        409 => Error::Conflict(e.to_string()),
        _ => Error::Task(e.to_string()),
    }
}

/// The mount points of a new container (nothing made yet); `others` holds the mount points
/// of the `--volumes-from` containers by the name the request gives.
pub fn plan(
    volumes: &VolumeService,
    config: &Config,
    host: &HostConfig,
    others: &HashMap<String, Vec<MountPoint>>,
) -> Result<Vec<MountPoint>, Error> {
    let from = |name: &str| {
        others
            .get(name)
            .cloned()
            .ok_or_else(|| PlanError::NoContainer(name.to_string()))
    };
    let mut points = mounts::plan(config, host, &|n| volumes.mountpoint(n), &from)?;
    points.extend(mounts::binds(host));
    Ok(points)
}

/// The HostConfig the spec is built from (volumes as binds of their data).
pub fn effective(c: &Container, host: &HostConfig) -> HostConfig {
    mounts::effective(host, &c.mount_points)
}

fn volume_points(c: &Container) -> impl Iterator<Item = &MountPoint> {
    c.mount_points.iter().filter(|p| p.kind == "volume")
}

/// Creates the volumes `c` names (a named one on first use) and records `c` as their user,
/// each in one step of the volume service (no prune comes between); on failure, nothing
/// stays made.
pub fn realize(volumes: &VolumeService, c: &Container) -> Result<(), Error> {
    let mut done: Vec<&MountPoint> = Vec::new();
    for p in volume_points(c) {
        let acquired = if p.inherited {
            volumes.acquire_existing(&p.name, &c.id)
        } else {
            let opts = CreateOptions {
                name: p.name.clone(),
                driver: String::new(),
                labels: p.create_labels.clone(),
                options: p.create_options.clone(),
                anonymous: p.anonymous,
            };
            volumes.acquire(opts, &c.id)
        };
        if let Err(e) = acquired {
            for d in done {
                release_one(volumes, d, &c.id, true);
            }
            return Err(volume_error(e));
        }
        done.push(p);
    }
    Ok(())
}

fn release_one(volumes: &VolumeService, p: &MountPoint, id: &str, remove_anonymous: bool) {
    volumes.release(&p.name, id);
    if remove_anonymous && p.anonymous {
        if let Err(e) = volumes.remove(&p.name, true) {
            tracing::warn!(volume = p.name, error = %e, "removing an anonymous volume");
        }
    }
}

/// `c` is removed: its references go; with `remove_anonymous`, its anonymous volumes too.
pub fn release(volumes: &VolumeService, c: &Container, remove_anonymous: bool) {
    for p in volume_points(c) {
        release_one(volumes, p, &c.id, remove_anonymous);
    }
}

/// The daemon starts: `c`'s references (and its mounts if it still runs) are known again.
pub fn restore(volumes: &VolumeService, c: &Container) {
    for p in volume_points(c) {
        volumes.add_ref(&p.name, &c.id);
        if c.state.status.is_live() {
            if let Err(e) = volumes.mount(&p.name, &c.id) {
                tracing::warn!(volume = p.name, error = %e, "re-adopting a volume mount");
            }
        }
    }
}

/// Before the task starts: `type=` volumes mounted, empty volumes filled from the image.
pub fn attach(volumes: &VolumeService, c: &Container, rootfs: &Path) -> Result<(), Error> {
    for p in volume_points(c) {
        let data = volumes.mount(&p.name, &c.id).map_err(volume_error)?;
        if p.copy_up {
            copyup::copy_if_empty(rootfs, &p.destination, &data)
                .map_err(|e| Error::Task(e.to_string()))?;
        }
    }
    Ok(())
}

/// After the task ended: `type=` volumes unmounted after their last user.
pub fn detach(volumes: &VolumeService, c: &Container) {
    for p in volume_points(c) {
        if let Err(e) = volumes.unmount(&p.name, &c.id) {
            tracing::warn!(volume = p.name, error = %e, "unmounting a volume");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container_with(points: Vec<MountPoint>) -> Container {
        let mut c: Container = serde_json::from_value(serde_json::json!({
            "id": "c".repeat(64), "name": "c", "created": "", "image": "", "image_id": "",
            "config": {}, "host_config": {}, "path": "", "args": [],
            "state": serde_json::to_value(super::super::record::State::default()).unwrap(),
            "restart_count": 0, "log_path": "",
        }))
        .unwrap();
        c.mount_points = points;
        c
    }

    fn volume_point(name: &str, anonymous: bool) -> MountPoint {
        serde_json::from_value(serde_json::json!({
            "Type": "volume", "Name": name, "Source": "", "Destination": "/data",
            "Mode": "", "RW": true, "Propagation": "", "BerthAnonymous": anonymous,
        }))
        .unwrap()
    }

    /// A prune that comes between a volume's creation and its first reference must not
    /// delete it: realize makes and references each volume under one lock.
    #[test]
    fn a_prune_cannot_slip_between_create_and_reference() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = VolumeService::open(dir.path()).unwrap();
        let pruned = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = pruned.clone();
        *volumes.before_ref.0.lock().unwrap() = Some(Box::new(move |s: &VolumeService| {
            if let Some(names) = s.prune_if_idle() {
                seen.lock().unwrap().extend(names);
            }
        }));
        let c = container_with(vec![
            volume_point("named", false),
            volume_point("a".repeat(64).as_str(), true),
        ]);
        realize(&volumes, &c).unwrap();
        assert_eq!(
            *pruned.lock().unwrap(),
            Vec::<String>::new(),
            "a prune ran between"
        );
        for name in ["named".to_string(), "a".repeat(64)] {
            volumes.get(&name).unwrap();
            assert!(volumes.mountpoint(&name).is_dir(), "{name}'s data is gone");
            assert_eq!(volumes.users(&name), vec![c.id.clone()]);
        }
    }
}
