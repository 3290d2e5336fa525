//! `push`: upload an image's blobs and manifest to its registry.
//!
//! Layers the repository has are skipped (HEAD); a layer that another repository of the same
//! registry got from us is mounted from there; the rest are streamed from the content store.
//! The manifest goes up byte for byte as stored, so its digest stays what it was.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;
use oci_spec::image::{Descriptor, ImageManifest};

use super::pull::{say, say_bytes, say_layer};
use super::{Error, ImageService};
use crate::images::metadata::ImageRecord;
use crate::images::progress::{self, short_id};
use crate::images::reference::Reference;
use crate::images::registry::{Credentials, Registry};

/// Layers uploaded at once by one push.
pub const CONCURRENT_UPLOADS: usize = 4;
/// Bytes between two "Pushing" messages for one layer.
const PROGRESS_STEP: u64 = 512 << 10;

/// What one push works on.
struct Push<'a> {
    reference: &'a Reference,
    registry: Registry,
    progress: &'a progress::Sender,
    /// Blob digest → other repositories of this registry that have it.
    sources: HashMap<String, Vec<String>>,
}

impl ImageService {
    /// Pushes the image named `reference`; returns the pushed manifest's digest.
    pub async fn push(
        &self,
        reference: &str,
        auth: Option<Credentials>,
        progress: &progress::Sender,
    ) -> Result<String, Error> {
        let reference = Reference::parse(reference)?;
        let record = self
            .metadata
            .image(&reference.to_string())?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "An image does not exist locally with the tag: {}",
                    reference.familiar_name()
                ))
            })?;
        say(
            progress,
            None,
            format!("The push refers to repository [{}]", reference.name()),
        );
        let push = Push {
            reference: &reference,
            registry: self.registry(&reference.registry, auth.as_ref()),
            progress,
            sources: self.mount_sources(&reference)?,
        };
        tracing::info!(reference = %reference, "push");
        // Shared: no garbage collection removes the blobs while they are uploaded.
        let _gc = self.gc_lock.read().await;
        let digest = self.push_image(&push, &record).await?;
        self.record_pushed(&record, &digest)?;
        Ok(digest)
    }

    /// Remembers the pushed digest on the name, unless the name moved during the push.
    fn record_pushed(&self, pushed: &ImageRecord, digest: &str) -> Result<(), Error> {
        let _names = self.lock_names();
        if self.metadata.image(&pushed.name)?.as_ref() != Some(pushed) {
            return Ok(());
        }
        self.metadata.put_image(&ImageRecord {
            repo_digest: Some(digest.to_string()),
            ..pushed.clone()
        })?;
        Ok(())
    }

    async fn push_image(&self, push: &Push<'_>, record: &ImageRecord) -> Result<String, Error> {
        let name = push.reference.to_string();
        let bytes = self.content.read(&record.target.digest)?;
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                what: format!("manifest {} of {name}", record.target.digest),
                message: e.to_string(),
            })?;
        let ids = self.layer_ids(&manifest, &record.config_digest);
        for id in &ids {
            say_layer(push.progress, id, "Preparing");
        }
        futures_util::stream::iter(manifest.layers().iter().zip(&ids))
            .map(|(layer, id)| self.push_layer(push, layer, id))
            .buffer_unordered(CONCURRENT_UPLOADS)
            .try_collect::<Vec<()>>()
            .await?;
        let config = manifest.config();
        self.push_blob_if_missing(push, config, None).await?;
        let repository = &push.reference.repository;
        let tag = push.reference.tag_or_digest();
        let size = bytes.len();
        push.registry
            .push_manifest(repository, tag, bytes, &record.target.media_type)
            .await?;
        let digest = record.target.digest.clone();
        say(
            push.progress,
            None,
            format!("{tag}: digest: {digest} size: {size}"),
        );
        Ok(digest)
    }

    /// The ids docker shows while pushing: short diff IDs, else short blob digests.
    fn layer_ids(&self, manifest: &ImageManifest, config_digest: &str) -> Vec<String> {
        let diff_ids: Vec<String> = self
            .read_json(config_digest)
            .ok()
            .and_then(|c| c["rootfs"]["diff_ids"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|d| d.as_str().map(short_id))
            .collect();
        if diff_ids.len() == manifest.layers().len() {
            return diff_ids;
        }
        manifest
            .layers()
            .iter()
            .map(|l| short_id(l.digest().as_ref()))
            .collect()
    }

    async fn push_layer(&self, push: &Push<'_>, layer: &Descriptor, id: &str) -> Result<(), Error> {
        let digest = layer.digest().to_string();
        let repository = &push.reference.repository;
        if push.registry.has_blob(repository, &digest).await? {
            say_layer(push.progress, id, "Layer already exists");
            return Ok(());
        }
        for from in push.sources.get(&digest).into_iter().flatten() {
            if push.registry.mount(repository, from, &digest).await {
                say_layer(push.progress, id, format!("Mounted from {from}"));
                return Ok(());
            }
        }
        self.upload(push, &digest, layer.size(), Some(id)).await?;
        say_layer(push.progress, id, "Pushed");
        Ok(())
    }

    async fn push_blob_if_missing(
        &self,
        push: &Push<'_>,
        blob: &Descriptor,
        id: Option<&str>,
    ) -> Result<(), Error> {
        let digest = blob.digest().to_string();
        if !push
            .registry
            .has_blob(&push.reference.repository, &digest)
            .await?
        {
            self.upload(push, &digest, blob.size(), id).await?;
        }
        Ok(())
    }

    /// Streams a blob from the content store to the registry, reporting "Pushing" progress.
    async fn upload(
        &self,
        push: &Push<'_>,
        digest: &str,
        size: u64,
        id: Option<&str>,
    ) -> Result<(), Error> {
        let file = tokio::fs::File::from_std(self.content.open_blob(digest)?);
        let sent = Arc::new(AtomicU64::new(0));
        let reported = Arc::new(AtomicU64::new(0));
        let report = id.map(|id| (id.to_string(), push.progress.clone()));
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10)
            .map_err(OciDistributionError::IoError)
            .inspect_ok(move |chunk| {
                let now =
                    sent.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
                if let Some((id, progress)) = &report {
                    if now - reported.load(Ordering::Relaxed) >= PROGRESS_STEP || now == size {
                        reported.store(now, Ordering::Relaxed);
                        say_bytes(progress, id, "Pushing", now, size);
                    }
                }
            });
        push.registry
            .push_blob(&push.reference.repository, digest, size, stream)
            .await?;
        tracing::debug!(%digest, size, "blob pushed");
        Ok(())
    }

    /// For every blob of images we pulled from or pushed to this registry under another
    /// repository, the repositories that have it (candidates for a cross-repository mount).
    fn mount_sources(&self, target: &Reference) -> Result<HashMap<String, Vec<String>>, Error> {
        let mut sources: HashMap<String, Vec<String>> = HashMap::new();
        for record in self.metadata.images()? {
            let Ok(name) = Reference::parse_bare(&record.name) else {
                continue;
            };
            if name.registry != target.registry
                || name.repository == target.repository
                || record.repo_digest.is_none()
            {
                continue;
            }
            let Ok(manifest) = self.read_json(&record.target.digest) else {
                continue;
            };
            let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
            for digest in layers.iter().filter_map(|l| l["digest"].as_str()) {
                let repos = sources.entry(digest.to_string()).or_default();
                if !repos.contains(&name.repository) {
                    repos.push(name.repository.clone());
                }
            }
        }
        Ok(sources)
    }
}
