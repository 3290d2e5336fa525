//! `pull`: resolve a reference on its registry, fetch what is missing, unpack, name it.
//!
//! Every blob goes through the content store's verifying writer with the size its descriptor
//! gives, so a wrong digest or an endless stream is refused and leaves nothing. Blobs already
//! present are not fetched again; concurrent pulls of one blob take its ingest lock, so it is
//! downloaded once. The pull holds the gc lock shared, and a lease names its digests so that a
//! crash mid-pull does not hand the fetched blobs to the next gc (a failed pull leaves it so
//! that a retry resumes, and the retry releases it; a restart drops it, see
//! `reclaim_crashed`).
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use futures_util::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::{Error, Image, ImageService};
use crate::images::content;
use crate::images::metadata::{self, ImageRecord, Lease, Metadata, Target};
use crate::images::progress::{self, short_id, Message};
use crate::images::reference::{Reference, DEFAULT_REGISTRY};
use crate::images::registry::{self, Credentials, Fetched, Platform, Registry};

/// Largest manifest or index accepted when no descriptor gives its size (docker's limit).
pub const MANIFEST_LIMIT: u64 = 4 << 20;
/// Tries per blob when the network fails.
const FETCH_ATTEMPTS: u32 = 3;
/// Wait before the first retry (doubled, then tripled...).
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
/// Layers downloaded at once by one pull.
pub const CONCURRENT_DOWNLOADS: usize = 4;
/// How long a lease left by a crashed or failed pull protects its blobs.
const LEASE_SECONDS: u64 = 3600;
/// Bytes between two "Downloading" messages for one layer.
const PROGRESS_STEP: u64 = 512 << 10;

/// Sends a summary line (no layer); a closed receiver is fine.
pub(crate) fn say(progress: &progress::Sender, id: Option<&str>, status: impl Into<String>) {
    let _ = progress.send(Message::status(id, status));
}

/// Sends a status line of one layer; docker gives these an empty `progressDetail`.
pub(crate) fn say_layer(progress: &progress::Sender, id: &str, status: impl Into<String>) {
    let mut message = Message::status(Some(id), status);
    message.progress_detail = Some(progress::Detail::default());
    let _ = progress.send(message);
}

/// Sends a byte-progress line of one layer, with docker's text bar for old clients.
pub(crate) fn say_bytes(
    progress: &progress::Sender,
    id: &str,
    status: &str,
    current: u64,
    total: u64,
) {
    let mut message = Message::bytes(id, status, current, total);
    message.progress = Some(progress_bar(current, total));
    let _ = progress.send(message);
}

/// Docker's text progress: `[=====>      ]  1.2MB/3.4MB` (50 columns, decimal units).
pub fn progress_bar(current: u64, total: u64) -> String {
    let filled = if total == 0 {
        0
    } else {
        ((current as f64 / total as f64 * 100.0) as usize / 2).min(50)
    };
    format!(
        "[{}>{}] {:>8}/{}",
        "=".repeat(filled),
        " ".repeat(50 - filled),
        progress::human_size(current as f64, 4),
        progress::human_size(total as f64, 4)
    )
}

/// A lease on the digests of one pull, kept in the metadata store.
struct PullLease {
    metadata: Arc<Metadata>,
    id: String,
    digests: Mutex<Vec<String>>,
}

impl PullLease {
    /// One lease per reference and platform: a retry after a failure takes over (and at
    /// the end releases) the lease the failed pull left.
    fn new(metadata: Arc<Metadata>, reference: &Reference, platform: &Platform) -> Self {
        PullLease {
            metadata,
            id: format!("pull {reference} {platform}"),
            digests: Mutex::default(),
        }
    }

    fn add(&self, digests: impl IntoIterator<Item = String>) -> Result<(), Error> {
        let mut all = self.digests.lock().unwrap_or_else(|e| e.into_inner());
        all.extend(digests);
        let lease = Lease {
            digests: all.clone(),
            expires: metadata::now() + LEASE_SECONDS,
        };
        Ok(self.metadata.put_lease(&self.id, &lease)?)
    }

    fn release(&self) {
        if let Err(e) = self.metadata.remove_lease(&self.id) {
            tracing::warn!(lease = %self.id, error = %e, "removing pull lease");
        }
    }
}

/// What one pull works on.
struct Pull<'a> {
    reference: &'a Reference,
    registry: Registry,
    lease: PullLease,
    progress: &'a progress::Sender,
}

impl ImageService {
    /// Pulls `reference` for `platform` (`os/arch[/variant]`, default: this host's),
    /// reporting progress like docker, and returns the record of the name it set.
    pub async fn pull(
        &self,
        reference: &str,
        platform: Option<&str>,
        auth: Option<Credentials>,
        progress: &progress::Sender,
    ) -> Result<ImageRecord, Error> {
        let reference = Reference::parse(reference)?;
        let platform = Platform::parse(platform)?;
        let registry = self.registry(&reference.registry, auth.as_ref());
        let _shared = self.gc_lock.read().await;
        let pull = Pull {
            reference: &reference,
            registry,
            lease: PullLease::new(self.metadata.clone(), &reference, &platform),
            progress,
        };
        tracing::info!(reference = %reference, %platform, "pull");
        let record = self.pull_image(&pull, &platform).await?;
        pull.lease.release();
        Ok(record)
    }

    async fn pull_image(&self, pull: &Pull<'_>, platform: &Platform) -> Result<ImageRecord, Error> {
        let reference = pull.reference;
        say(
            pull.progress,
            Some(reference.tag_or_digest()),
            format!("Pulling from {}", reference.repository),
        );
        let (top, chosen) = self.resolve_manifest(pull, platform).await?;
        let manifest: ImageManifest =
            serde_json::from_slice(&chosen.bytes).map_err(|e| registry::Error::Manifest {
                reference: reference.to_string(),
                message: e.to_string(),
            })?;
        let config = manifest.config();
        super::check_depth(&reference.to_string(), manifest.layers().len())?;
        pull.lease.add(
            std::iter::once(config.digest().to_string())
                .chain(manifest.layers().iter().map(|l| l.digest().to_string())),
        )?;
        self.fetch_config(pull, config).await?;
        self.fetch_layers(pull, manifest.layers()).await?;
        let record = ImageRecord {
            name: reference.to_string(),
            target: Target {
                media_type: chosen.media_type.clone(),
                digest: chosen.digest.clone(),
                size: chosen.bytes.len() as u64,
            },
            config_digest: config.digest().to_string(),
            repo_digest: Some(top.digest.clone()),
            updated: metadata::now(),
        };
        self.finish_pull(pull, record).await
    }

    /// Fetches what the reference names (stored, leased) and, for an index, the manifest
    /// of `platform`. Returns both; they are the same for a plain manifest.
    async fn resolve_manifest(
        &self,
        pull: &Pull<'_>,
        platform: &Platform,
    ) -> Result<(Fetched, Fetched), Error> {
        let reference = pull.reference;
        let top = pull
            .registry
            .manifest(
                &reference.repository,
                reference.tag_or_digest(),
                MANIFEST_LIMIT,
            )
            .await?;
        pull.lease.add([top.digest.clone()])?;
        self.store_manifest(&top)?;
        let chosen = match top.media_type.as_str() {
            registry::OCI_INDEX | registry::DOCKER_MANIFEST_LIST => {
                self.pull_platform_manifest(pull, &top, platform).await?
            }
            _ => top.clone(),
        };
        Ok((top, chosen))
    }

    /// Fetches the config blob unless present (once, under its ingest lock).
    async fn fetch_config(&self, pull: &Pull<'_>, config: &Descriptor) -> Result<(), Error> {
        let digest = config.digest().to_string();
        // A config is read whole whenever the image is listed: refuse a huge one unfetched.
        if config.size() > content::UNSIZED_LIMIT {
            return Err(registry::Error::Manifest {
                reference: pull.reference.to_string(),
                message: format!(
                    "config {digest} declares {} bytes, more than the {} allowed",
                    config.size(),
                    content::UNSIZED_LIMIT
                ),
            }
            .into());
        }
        if self.content.contains(&digest) {
            return self.check_present(&digest, config.size());
        }
        let _ingest = self.content.ingest_lock(&digest).await;
        if !self.content.contains(&digest) {
            self.fetch_blob(pull, &digest, config.size(), None).await?;
        }
        Ok(())
    }

    /// Unpacks, names the image and reports the summary lines.
    async fn finish_pull(
        &self,
        pull: &Pull<'_>,
        record: ImageRecord,
    ) -> Result<ImageRecord, Error> {
        let image = Image {
            id: record.config_digest.clone(),
            manifest: self.read_json(&record.target.digest)?,
            config: self.read_json(&record.config_digest)?,
            records: vec![record.clone()],
        };
        tokio::task::block_in_place(|| self.unpack(&image, Some(pull.progress)))?;
        let up_to_date = self
            .metadata
            .image(&record.name)?
            .is_some_and(|old| old.target.digest == record.target.digest);
        self.set_name(record.clone())?;
        let familiar = pull.reference.familiar();
        if let Some(digest) = &record.repo_digest {
            say(pull.progress, None, format!("Digest: {digest}"));
        }
        let status = if up_to_date {
            format!("Status: Image is up to date for {familiar}")
        } else {
            format!("Status: Downloaded newer image for {familiar}")
        };
        say(pull.progress, None, status);
        Ok(record)
    }

    /// Stores a fetched manifest or index (already verified against its digest).
    fn store_manifest(&self, fetched: &Fetched) -> Result<(), Error> {
        if self.content.contains(&fetched.digest) {
            return Ok(());
        }
        tokio::task::block_in_place(|| {
            let mut writer = self
                .content
                .writer(&fetched.digest, Some(fetched.bytes.len() as u64))?;
            writer
                .write_all(&fetched.bytes)
                .map_err(|e| write_error(&fetched.digest, e))?;
            writer.commit().map_err(Error::from)
        })
    }

    /// Picks the manifest for `platform` out of an index and fetches it.
    async fn pull_platform_manifest(
        &self,
        pull: &Pull<'_>,
        index: &Fetched,
        platform: &Platform,
    ) -> Result<Fetched, Error> {
        let reference = pull.reference.to_string();
        let parsed: ImageIndex =
            serde_json::from_slice(&index.bytes).map_err(|e| registry::Error::Manifest {
                reference: reference.clone(),
                message: e.to_string(),
            })?;
        let entry = select_platform(parsed.manifests(), platform).ok_or_else(|| {
            registry::Error::NoPlatform {
                reference: reference.clone(),
                platform: platform.to_string(),
            }
        })?;
        let digest = entry.digest().to_string();
        // The index's word on the size is the registry's: no more than any manifest gets.
        if entry.size() > MANIFEST_LIMIT {
            return Err(registry::Error::Manifest {
                reference,
                message: format!(
                    "platform manifest {digest} declares {} bytes, more than the {MANIFEST_LIMIT} allowed",
                    entry.size()
                ),
            }
            .into());
        }
        tracing::debug!(%reference, %platform, %digest, "platform manifest");
        pull.lease.add([digest.clone()])?;
        let fetched = if self.content.contains(&digest) {
            // Another blob of that digest (a layer?) is not read whole unless it is this size.
            self.check_present(&digest, entry.size())?;
            let bytes = self.content.read(&digest)?;
            Fetched {
                media_type: registry::media_type_of(&bytes, None),
                bytes: bytes.into(),
                digest,
            }
        } else {
            let fetched = pull
                .registry
                .manifest(
                    &pull.reference.repository,
                    &digest,
                    entry.size().min(MANIFEST_LIMIT),
                )
                .await?;
            if fetched.bytes.len() as u64 != entry.size() {
                return Err(content::Error::SizeMismatch {
                    digest,
                    expected: entry.size(),
                    actual: fetched.bytes.len() as u64,
                }
                .into());
            }
            self.store_manifest(&fetched)?;
            fetched
        };
        Ok(fetched)
    }

    /// A blob already present is the size its descriptor says.
    fn check_present(&self, digest: &str, declared: u64) -> Result<(), Error> {
        let stored = self.content.size(digest)?;
        if stored != declared {
            return Err(content::Error::SizeMismatch {
                digest: digest.to_string(),
                expected: declared,
                actual: stored,
            }
            .into());
        }
        Ok(())
    }

    /// Downloads the missing layers, at most [`CONCURRENT_DOWNLOADS`] at once.
    async fn fetch_layers(&self, pull: &Pull<'_>, layers: &[Descriptor]) -> Result<(), Error> {
        let mut missing = 0;
        for layer in layers {
            let id = short_id(layer.digest().as_ref());
            if self.content.contains(layer.digest().as_ref()) {
                say_layer(pull.progress, &id, "Already exists");
            } else {
                say_layer(pull.progress, &id, "Pulling fs layer");
                missing += 1;
                if missing > CONCURRENT_DOWNLOADS {
                    say_layer(pull.progress, &id, "Waiting");
                }
            }
        }
        futures_util::stream::iter(layers)
            .map(|layer| self.fetch_layer(pull, layer))
            .buffer_unordered(CONCURRENT_DOWNLOADS)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn fetch_layer(&self, pull: &Pull<'_>, layer: &Descriptor) -> Result<(), Error> {
        let digest = layer.digest().to_string();
        if self.content.contains(&digest) {
            return Ok(());
        }
        let id = short_id(&digest);
        let _ingest = self.content.ingest_lock(&digest).await;
        if !self.content.contains(&digest) {
            self.fetch_blob(pull, &digest, layer.size(), Some(&id))
                .await?;
        }
        say_layer(pull.progress, &id, "Download complete");
        Ok(())
    }

    /// Fetches one blob, trying again after a network failure (not after a wrong digest or
    /// size: the registry would only send the same bytes again).
    async fn fetch_blob(
        &self,
        pull: &Pull<'_>,
        digest: &str,
        size: u64,
        id: Option<&str>,
    ) -> Result<(), Error> {
        let mut attempt = 1;
        loop {
            match self.fetch_blob_once(pull, digest, size, id).await {
                Err(Error::Registry(e)) if attempt < FETCH_ATTEMPTS && e.is_transient() => {
                    let wait = RETRY_DELAY * attempt;
                    tracing::warn!(%digest, attempt, error = %e, "blob download failed, retrying");
                    if let Some(id) = id {
                        let message = format!("Retrying in {} seconds", wait.as_secs());
                        say_layer(pull.progress, id, message);
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Streams one blob into the content store, verified against `digest` and `size`;
    /// with `id`, reports docker's per-layer progress.
    async fn fetch_blob_once(
        &self,
        pull: &Pull<'_>,
        digest: &str,
        size: u64,
        id: Option<&str>,
    ) -> Result<(), Error> {
        let mut blob = pull
            .registry
            .blob(&pull.reference.repository, digest)
            .await?;
        if let Some(length) = blob.content_length.filter(|l| *l != size) {
            return Err(content::Error::SizeMismatch {
                digest: digest.to_string(),
                expected: size,
                actual: length,
            }
            .into());
        }
        let mut writer = self.content.writer(digest, Some(size))?;
        let mut reported = 0;
        while let Some(chunk) = blob.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // The stream checks the digest when it ends: let the store say what is wrong.
                Err(_) if writer.written() == size => break,
                Err(e) => {
                    return Err(registry::Error::Blob {
                        digest: digest.to_string(),
                        message: e.to_string(),
                    }
                    .into())
                }
            };
            writer
                .write_all(&chunk)
                .map_err(|e| write_error(digest, e))?;
            if let Some(id) = id {
                if writer.written() - reported >= PROGRESS_STEP || writer.written() == size {
                    reported = writer.written();
                    say_bytes(pull.progress, id, "Downloading", reported, size);
                }
            }
        }
        if let Some(id) = id {
            say_layer(pull.progress, id, "Verifying Checksum");
        }
        tokio::task::block_in_place(|| writer.commit())?;
        tracing::debug!(%digest, size, "blob fetched");
        Ok(())
    }

    /// Checks credentials against a registry (`docker login`); Ok when it accepts them.
    pub async fn login(&self, credentials: &Credentials) -> Result<(), Error> {
        let host = registry_host(&credentials.server_address);
        let registry = self.registry(&host, Some(credentials));
        registry.login().await?;
        tracing::info!(registry = %host, user = %credentials.username, "login succeeded");
        Ok(())
    }
}

/// The registry host of a login's server address: `https://index.docker.io/v1/` and an empty
/// address are Docker Hub; a scheme and a path are dropped.
pub fn registry_host(server_address: &str) -> String {
    let host = server_address
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
        host => host.to_string(),
    }
}

/// The index entry for `platform`: the first that matches, one without variant preferred
/// when no variant was asked for.
fn select_platform<'a>(entries: &'a [Descriptor], platform: &Platform) -> Option<&'a Descriptor> {
    let fits = |d: &&Descriptor| {
        d.platform().as_ref().is_some_and(|p| {
            platform.matches(
                &p.os().to_string(),
                &p.architecture().to_string(),
                p.variant().as_deref(),
            )
        })
    };
    let mut candidates = entries.iter().filter(fits);
    let first = candidates.clone().next();
    candidates
        .find(|d| d.platform().as_ref().is_some_and(|p| p.variant().is_none()))
        .or(first)
}

/// A write into the content store failed: the store's own error (too large) if it is one.
pub(crate) fn write_error(digest: &str, e: std::io::Error) -> Error {
    let message = e.to_string();
    match e
        .into_inner()
        .map(|inner| inner.downcast::<content::Error>())
    {
        Some(Ok(store)) => Error::Content(*store),
        _ => registry::Error::Blob {
            digest: digest.to_string(),
            message,
        }
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_read_like_docker() {
        assert_eq!(progress::human_size(0.0, 4), "0B");
        assert_eq!(progress::human_size(772_800.0, 4), "772.8kB");
        assert_eq!(progress::human_size(1_000_000.0, 4), "1MB");
        assert_eq!(progress::human_size(12_345_678.0, 4), "12.35MB");
        let bar = progress_bar(50, 100);
        assert!(bar.starts_with(&format!("[{}>{}] ", "=".repeat(25), " ".repeat(25))));
        assert!(bar.ends_with("     50B/100B"), "{bar}");
    }

    #[test]
    fn login_addresses_name_registries() {
        assert_eq!(registry_host(""), "docker.io");
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_host("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(
            registry_host("registry.example.com"),
            "registry.example.com"
        );
    }

    #[test]
    fn an_entry_without_variant_is_preferred() {
        let index: ImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                { "mediaType": registry::OCI_MANIFEST, "size": 1,
                  "digest": format!("sha256:{}", "a".repeat(64)),
                  "platform": { "os": "linux", "architecture": "amd64", "variant": "v3" } },
                { "mediaType": registry::OCI_MANIFEST, "size": 1,
                  "digest": format!("sha256:{}", "b".repeat(64)),
                  "platform": { "os": "linux", "architecture": "amd64" } },
                { "mediaType": registry::OCI_MANIFEST, "size": 1,
                  "digest": format!("sha256:{}", "c".repeat(64)),
                  "platform": { "os": "linux", "architecture": "arm", "variant": "v7" } },
            ],
        }))
        .unwrap();
        let pick = |p: &str| {
            select_platform(index.manifests(), &Platform::parse(Some(p)).unwrap())
                .map(|d| d.digest().to_string()[7..8].to_string())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("b"));
        assert_eq!(pick("linux/amd64/v3").as_deref(), Some("a"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("c"));
        assert_eq!(pick("linux/arm/v6"), None);
        assert_eq!(pick("windows/amd64"), None);
    }
}
