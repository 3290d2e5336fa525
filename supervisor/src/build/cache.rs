//! The build cache: every step's result is an image, named in the image metadata by a key of
//! its parent image and what the step did (`build-cache@<sha256>`), so that a rebuild finds
//! it again, also after a daemon restart. Such names are no tags: listings hide images that
//! have only them, and garbage collection keeps their layers as it keeps any image's.
use sha2::{Digest, Sha256};

use super::commit;
use crate::images::service::{Error, Image, ImageService};

/// Prefix of cache names (not a valid reference, so never shown as a tag or digest).
pub use crate::images::service::BUILD_CACHE as PREFIX;

/// The cache name of the step `step` (a description of everything its result depends on
/// besides the parent) on top of `parent` (an image ID, or `scratch`).
pub fn key(parent: &str, step: &str) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    h.update(b"\n");
    h.update(step.as_bytes());
    format!("{PREFIX}{}", hex::encode(h.finalize()))
}

/// The image a cache name points at, if it is still there.
pub fn lookup(images: &ImageService, key: &str) -> Result<Option<Image>, Error> {
    let Some(record) = images.metadata.image(key)? else {
        return Ok(None);
    };
    match images.resolve(&record.config_digest) {
        Ok(image) => Ok(Some(image)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Names `image` by the cache name `key`.
pub fn remember(images: &ImageService, key: &str, image: &Image) -> Result<(), Error> {
    images.metadata.put_image(&commit::record_for(image, key))?;
    Ok(())
}

/// One step's result in the cache, as `system df -v` and `builder prune` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The cache key without its prefix.
    pub id: String,
    /// What the step did (its history line).
    pub description: String,
    /// Bytes of the step's top layer.
    pub size: u64,
    /// Its top layer is counted elsewhere: by a named image or by an earlier entry.
    pub shared: bool,
    /// Unix seconds when the step was cached (or last reused).
    pub updated: u64,
    /// The image's labels (`LABEL` steps), for `label=` filters.
    pub labels: serde_json::Value,
}

/// Every cache entry, by key. The first entry with a top layer no named image holds counts
/// its size; others on that layer are `shared`, so the unshared sizes add up to the bytes
/// only the cache holds.
pub fn entries(images: &ImageService) -> Result<Vec<Entry>, Error> {
    let all = images.images()?;
    let mut counted: std::collections::HashSet<String> = all
        .iter()
        .filter(|i| !i.is_build_cache())
        .flat_map(|i| crate::images::snapshot::chain_ids(&i.diff_ids()))
        .collect();
    let mut out = Vec::new();
    for image in &all {
        let top = crate::images::snapshot::chain_ids(&image.diff_ids()).pop();
        let size = top
            .as_ref()
            .and_then(|k| images.metadata.snapshot(k).ok().flatten())
            .map_or(0, |s| s.size);
        let description = image.config["history"]
            .as_array()
            .and_then(|h| h.last())
            .and_then(|h| h["created_by"].as_str())
            .unwrap_or("")
            .to_string();
        for record in image.records.iter().filter(|r| r.name.starts_with(PREFIX)) {
            let shared = top.as_ref().is_some_and(|k| !counted.insert(k.clone()));
            out.push(Entry {
                id: record.name[PREFIX.len()..].to_string(),
                description: description.clone(),
                size,
                shared,
                updated: record.updated,
                labels: image.config["config"]["Labels"].clone(),
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// `builder prune`: forgets the cache entries `select` picks and collects what only they
/// held; their IDs and the bytes reclaimed.
pub async fn prune(
    images: &ImageService,
    select: impl Fn(&Entry) -> bool,
) -> Result<(Vec<String>, u64), Error> {
    let names: Vec<String> = {
        let _names = images.lock_names();
        let chosen: Vec<String> = entries(images)?
            .into_iter()
            .filter(|e| select(e))
            .map(|e| e.id)
            .collect();
        let names: Vec<String> = chosen.iter().map(|id| format!("{PREFIX}{id}")).collect();
        images.metadata.change_images(&[], &names)?;
        chosen
    };
    let report = images.gc().await?;
    Ok((names, report.bytes))
}
