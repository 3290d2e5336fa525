//! The overlayfs snapshotter with a copying fallback. (Owner: the layers & snapshots engineer.)

/// Errors of the snapshotter.
#[derive(Debug, thiserror::Error)]
pub enum Error {}

use sha2::Digest as _;

/// The chain IDs of a stack of layers (OCI image spec): the first is the first diff ID,
/// each next one is `sha256(previous + " " + diff_id)`. Snapshots of layers are keyed by them.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(format!("{prev} {diff_id}")))
            ),
        };
        out.push(next);
    }
    out
}

/// Placeholder until the snapshotter lands: records only.
#[derive(Debug)]
pub struct Snapshotter {
    metadata: std::sync::Arc<super::metadata::Metadata>,
}

impl Snapshotter {
    pub fn open(
        _root: &std::path::Path,
        metadata: std::sync::Arc<super::metadata::Metadata>,
    ) -> Result<Self, Error> {
        Ok(Snapshotter { metadata })
    }

    /// Removes a snapshot (its directory and its record).
    pub fn remove(&self, key: &str) -> Result<(), Error> {
        let _ = self.metadata.remove_snapshot(key);
        Ok(())
    }
}
