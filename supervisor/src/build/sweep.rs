//! What a build cut short leaves (its client gone, its daemon killed), and its removal.
//!
//! A RUN step's container is marked (an empty file named by its id under the data root's
//! `build-steps/`) from its creation to its removal; the other steps' snapshots are keyed
//! `build-…` and mounted under the data root's `tmp/`, which the image service empties (its
//! mounts detached first) when it opens. So at daemon start, every marked container and
//! every active `build-` snapshot is a dead build's, and goes.
use std::path::PathBuf;
use std::sync::Arc;

use crate::containers::service::{ContainerService, Error};
use crate::images::metadata::SnapshotKind;
use crate::images::service::ImageService;

/// Key prefix of a build step's own snapshots (COPY, ADD, WORKDIR).
pub const SNAPSHOT_PREFIX: &str = "build-";

fn steps_dir(images: &ImageService) -> PathBuf {
    images.options.data_root.join("build-steps")
}

/// Marks `id` as a build step's container.
pub fn mark(images: &ImageService, id: &str) {
    let dir = steps_dir(images);
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(id), b"")) {
        tracing::warn!(id, error = %e, "marking a build step's container");
    }
}

/// Its container removed, the mark goes.
pub fn unmark(images: &ImageService, id: &str) {
    let _ = std::fs::remove_file(steps_dir(images).join(id));
}

/// Removes what builds of a previous daemon left: their step containers and snapshots.
pub async fn sweep(containers: &Arc<ContainerService>) {
    let images = &containers.images;
    let marked: Vec<String> = std::fs::read_dir(steps_dir(images))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    for id in marked {
        tracing::warn!(id, "removing the container of an interrupted build step");
        match containers.remove_with_volumes(&id, true, true).await {
            Ok(()) | Err(Error::NotFound(_)) => unmark(images, &id),
            Err(e) => tracing::error!(id, error = %e, "removing a build step's container"),
        }
    }
    let snapshots = match images.metadata.snapshots() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "listing snapshots to sweep");
            return;
        }
    };
    for s in snapshots {
        if s.kind == SnapshotKind::Active && s.key.starts_with(SNAPSHOT_PREFIX) {
            tracing::warn!(
                key = s.key,
                "removing the snapshot of an interrupted build step"
            );
            if let Err(e) = images.snapshots.remove(&s.key) {
                tracing::error!(key = s.key, error = %e, "removing a build step's snapshot");
            }
        }
    }
}
