//! What a daemon killed in the middle of `create`, `start` or `rm` leaves behind, removed
//! when the next one opens its records: every container is then either whole or gone.
//!
//! - `create` makes its files, snapshot and network endpoints before it writes the record:
//!   a crash before the record leaves them without one.
//! - `rm` removes the record first, then the rest: a crash after it leaves the same.
//! - `start` starts the shim and the task before it records `running`: a crash in between
//!   leaves a recorded, stopped container with a live task, a mounted rootfs, a bundle.
//!
//! So: any container file, snapshot, bundle or endpoint whose id has no record goes, and a
//! task of a container recorded as stopped is killed and deleted with its bundle.
use std::collections::HashSet;
use std::path::Path;

use super::record::Container;
use super::service::ContainerService;
use super::shim::Shim;

/// Snapshot key prefix of containers' writable layers ([`Container::snapshot_key`]).
const SNAPSHOT_PREFIX: &str = "container-";

/// The ids named by the entries of `dir` (64 hex digits).
fn ids_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

impl ContainerService {
    /// Removes what no record owns and the tasks of stopped containers (blocking: run at
    /// open, before anything else uses the service).
    pub(super) fn sweep(&self, records: &[Container]) {
        let recorded: HashSet<&str> = records.iter().map(|c| c.id.as_str()).collect();
        let stopped: HashSet<&str> = records
            .iter()
            .filter(|c| !c.state.status.is_live())
            .map(|c| c.id.as_str())
            .collect();
        for id in ids_in(&self.paths.exec_root.join("containers")) {
            if !recorded.contains(id.as_str()) || stopped.contains(id.as_str()) {
                tracing::warn!(id, "sweeping a task and bundle left by a killed daemon");
                self.end_orphan_task(&id);
            }
        }
        for id in ids_in(&self.files_root) {
            if !recorded.contains(id.as_str()) {
                tracing::warn!(id, "sweeping the files of a container without a record");
                let _ = std::fs::remove_dir_all(self.files_root.join(&id));
            }
        }
        match self.images.metadata.snapshots() {
            Ok(snapshots) => {
                for s in snapshots {
                    let Some(id) = s.key.strip_prefix(SNAPSHOT_PREFIX) else {
                        continue;
                    };
                    if id.len() == 64 && !recorded.contains(id) {
                        tracing::warn!(id, "sweeping the snapshot of a container without a record");
                        if let Err(e) = self.images.snapshots.remove(&s.key) {
                            tracing::error!(key = s.key, error = %e, "sweep snapshot");
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "listing snapshots to sweep"),
        }
        let endpoints: HashSet<String> = self
            .networks
            .list()
            .into_iter()
            .flat_map(|n| n.endpoints.into_keys())
            .collect();
        for id in endpoints {
            if !recorded.contains(id.as_str()) {
                tracing::warn!(id, "sweeping the endpoints of a container without a record");
                if let Err(e) = self.networks.release_all(&id) {
                    tracing::error!(id, error = %e, "sweep endpoints");
                }
            }
        }
    }

    /// The task (its shim, if it answers; else through the runtime), the netns, the
    /// rootfs mount and the bundle of a container that should have none.
    fn end_orphan_task(&self, id: &str) {
        let bundle = self.bundle_of(id);
        let address = format!("unix://{}", self.paths.shim_socket(id).display());
        match Shim::connect(&address) {
            Ok(s) => {
                let _ = s.kill(id, "", libc::SIGKILL as u32, true);
                let _ = s.wait(id, "");
                let _ = s.delete(id, "");
                s.shutdown();
            }
            Err(_) => super::bundle::force_delete(&bundle, id),
        }
        crate::network::link::remove_netns(&self.netns_path(id));
        super::bundle::release(&bundle, &bundle.join("rootfs"));
    }
}
