//! The image service: what the API serves. It ties the content store, the metadata store and
//! the snapshotter together. Pull and push live in [`pull`] and [`push`], save and load in
//! [`transfer`]; names, inspection, removal and garbage collection here.
use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use super::content::{self, ContentStore};
use super::metadata::{self, ImageRecord, Metadata};
use super::reference::{self, Reference};
use super::snapshot::{self, chain_ids, Snapshotter};
use super::{archive, layer, registry};

pub mod in_use;
pub mod pull;
pub mod push;
pub mod transfer;
pub mod unpack;

/// Errors of the image service. [`Error::status`] maps each to the HTTP status docker uses.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Reference(#[from] reference::Error),
    #[error(transparent)]
    Content(#[from] content::Error),
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
    #[error(transparent)]
    Layer(#[from] layer::Error),
    #[error(transparent)]
    Snapshot(#[from] snapshot::Error),
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Archive(#[from] archive::Error),
    #[error("{what}: {message}")]
    Corrupt { what: String, message: String },
}

impl Error {
    /// The HTTP status the Docker Engine API answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::Invalid(_) | Error::Reference(_) => 400,
            Error::Registry(e) => e.status(),
            _ => 500,
        }
    }
}

/// Settings of the image service.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--data-root`: content, metadata and snapshots live under it.
    pub data_root: PathBuf,
    /// Registries (host[:port]) reachable over plain http besides localhost and 127.0.0.0/8.
    pub insecure_registries: Vec<String>,
    /// How far a layer (or a loaded archive) may expand when decompressed.
    pub layer_bound: layer::SizeBound,
    /// `--registry-stall-timeout`: a registry answer that brings too little for this long
    /// is given up (default [`registry::stall::DEFAULT_TIMEOUT`]).
    pub registry_stall: Option<std::time::Duration>,
}

/// An image as stored: its names, its manifest and its config.
#[derive(Debug, Clone)]
pub struct Image {
    /// The config digest: docker's image ID.
    pub id: String,
    /// Every record (name) that points at this config.
    pub records: Vec<ImageRecord>,
    /// The platform manifest (raw JSON).
    pub manifest: Value,
    /// The image config (raw JSON, docker's extra fields kept).
    pub config: Value,
}

impl Image {
    /// `repository:tag` names, familiar form (`busybox:latest`).
    pub fn repo_tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .records
            .iter()
            .filter(|r| !r.name.starts_with(UNTAGGED))
            .filter_map(|r| Reference::parse_bare(&r.name).ok())
            .filter(|r| r.tag.is_some())
            .map(|r| r.familiar())
            .collect();
        tags.sort();
        tags
    }

    /// `repository@digest` names, familiar form.
    pub fn repo_digests(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        for record in self
            .records
            .iter()
            .filter(|r| !r.name.starts_with(UNTAGGED))
        {
            let Ok(r) = Reference::parse_bare(&record.name) else {
                continue;
            };
            if let Some(d) = record.repo_digest.as_deref().or(r.digest.as_deref()) {
                out.insert(format!("{}@{d}", r.familiar_name()));
            }
        }
        out.into_iter().collect()
    }

    /// The layers' diff IDs from the config.
    pub fn diff_ids(&self) -> Vec<String> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether only the build cache names this image (an intermediate image of a build).
    pub fn is_build_cache(&self) -> bool {
        self.records.iter().all(|r| r.name.starts_with(BUILD_CACHE))
    }

    /// Digests of the manifest's layer blobs.
    pub fn layer_digests(&self) -> Vec<String> {
        self.manifest["layers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["digest"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Creation time from the config, in unix seconds (0 when absent).
    pub fn created(&self) -> i64 {
        self.config["created"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp())
            .unwrap_or(0)
    }
}

/// Most layers one image may have, as dockerd's layer store (a deeper chain cannot be one
/// overlay mount, and every walk along it costs).
pub const MAX_LAYERS: usize = 125;

/// Refuses an image of more than [`MAX_LAYERS`] layers, with dockerd's words.
pub fn check_depth(image: &str, layers: usize) -> Result<(), Error> {
    if layers > MAX_LAYERS {
        return Err(Error::Invalid(format!(
            "max depth exceeded: image {image} has {layers} layers, at most {MAX_LAYERS} are allowed"
        )));
    }
    Ok(())
}

/// Key prefix of an image that lost its last name (docker's `<none>:<none>`).
pub const UNTAGGED: &str = "untagged@";

/// Key prefix of the build cache's names (see `build::cache`): no tags, not dangling either.
pub const BUILD_CACHE: &str = "build-cache@";

/// Whether a record's name is a name users gave (not an untagged or build-cache record).
pub fn is_user_name(name: &str) -> bool {
    !name.starts_with(UNTAGGED) && !name.starts_with(BUILD_CACHE)
}

/// What a garbage collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: usize,
    pub bytes: u64,
    pub snapshots: usize,
}

/// One line of a removal report, docker's `{"Untagged": …}` / `{"Deleted": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Untagged(String),
    Deleted(String),
}

/// The image service.
#[derive(Debug)]
pub struct ImageService {
    pub options: Options,
    pub content: ContentStore,
    pub metadata: Arc<Metadata>,
    pub snapshots: Snapshotter,
    /// Pulls, pushes, saves and loads hold it shared, garbage collection exclusively.
    pub gc_lock: tokio::sync::RwLock<()>,
    /// Held while names change (see [`ImageService::lock_names`]).
    names: std::sync::Mutex<()>,
}

impl ImageService {
    /// A client for a registry host with this service's settings.
    pub(crate) fn registry(
        &self,
        host: &str,
        credentials: Option<&registry::Credentials>,
    ) -> registry::Registry {
        let stall = self
            .options
            .registry_stall
            .unwrap_or(registry::stall::DEFAULT_TIMEOUT);
        registry::Registry::new(host, &self.options.insecure_registries, credentials)
            .stalling_after(stall)
    }
}

impl ImageService {
    /// Opens the stores under `options.data_root`.
    pub fn open(options: Options) -> Result<Self, Error> {
        let root = options.data_root.clone();
        private_dir(&root, 0o710)?;
        // The metadata first: its file lock keeps a second daemon on this data root from
        // touching the content store (which clears half-written ingests when opened).
        let metadata = Arc::new(Metadata::open(&root)?);
        reclaim_crashed(&root, &metadata)?;
        private_dir(&root.join("content"), 0o700)?;
        let content = ContentStore::open(&root.join("content"))?;
        // Unpacked layers keep their setuid files: no other user may reach them.
        private_dir(&root.join("snapshots"), 0o700)?;
        let snapshots = Snapshotter::open(&root.join("snapshots"), metadata.clone())?
            .with_bound(options.layer_bound);
        Ok(ImageService {
            options,
            content,
            metadata,
            snapshots,
            gc_lock: Default::default(),
            names: Default::default(),
        })
    }

    /// Reads a JSON blob from the content store.
    pub fn read_json(&self, digest: &str) -> Result<Value, Error> {
        let size = self.content.size(digest)?;
        if size > content::UNSIZED_LIMIT {
            return Err(Error::Corrupt {
                what: format!("blob {digest}"),
                message: format!(
                    "{size} bytes is too large for a manifest or config (limit {})",
                    content::UNSIZED_LIMIT
                ),
            });
        }
        let bytes = self.content.read(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            what: format!("blob {digest}"),
            message: e.to_string(),
        })
    }

    fn image_of(&self, id: &str, records: Vec<ImageRecord>) -> Result<Image, Error> {
        let manifest_digest = &records[0].target.digest;
        Ok(Image {
            id: id.to_string(),
            manifest: self.read_json(manifest_digest)?,
            config: self.read_json(id)?,
            records,
        })
    }

    /// Every image, one entry per config digest, newest first.
    pub fn images(&self) -> Result<Vec<Image>, Error> {
        let mut by_id: std::collections::BTreeMap<String, Vec<ImageRecord>> = Default::default();
        for record in self.metadata.images()? {
            by_id
                .entry(record.config_digest.clone())
                .or_default()
                .push(record);
        }
        let mut images = Vec::new();
        for (id, records) in by_id {
            images.push(self.image_of(&id, records)?);
        }
        images.sort_by_key(|i| std::cmp::Reverse(i.created()));
        Ok(images)
    }

    /// Finds an image by name (`busybox`, `busybox:1`, `name@sha256:…`), by full ID or by a
    /// unique ID prefix, like docker.
    pub fn resolve(&self, name_or_id: &str) -> Result<Image, Error> {
        let not_found = || Error::NotFound(format!("No such image: {name_or_id}"));
        if let Ok(r) = Reference::parse(name_or_id) {
            // A digest is believed only of a record that points at that content.
            if let Some(record) = self
                .metadata
                .image(&r.to_string())?
                .filter(|rec| r.digest.as_deref().is_none_or(|d| pins(rec, d)))
            {
                return self.resolve_id(&record.config_digest);
            }
            if let Some(digest) = &r.digest {
                let name = r.name();
                let found = self.metadata.images()?.into_iter().find(|rec| {
                    Reference::parse_bare(&rec.name).is_ok_and(|n| n.name() == name)
                        && pins(rec, digest)
                });
                if let Some(record) = found {
                    return self.resolve_id(&record.config_digest);
                }
            }
        }
        let hex = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let mut ids: Vec<String> = self
            .metadata
            .images()?
            .into_iter()
            .map(|r| r.config_digest)
            .filter(|id| id["sha256:".len()..].starts_with(hex))
            .collect();
        ids.sort();
        ids.dedup();
        match ids.as_slice() {
            [id] => self.resolve_id(id),
            [] => Err(not_found()),
            _ => Err(Error::Invalid(format!(
                "{name_or_id}: ambiguous image ID prefix"
            ))),
        }
    }

    fn resolve_id(&self, id: &str) -> Result<Image, Error> {
        let records: Vec<ImageRecord> = self
            .metadata
            .images()?
            .into_iter()
            .filter(|r| r.config_digest == id)
            .collect();
        if records.is_empty() {
            return Err(Error::NotFound(format!("No such image: {id}")));
        }
        self.image_of(id, records)
    }

    /// Points `record.name` at an image. If that name pointed at another image that has no
    /// other name left, the other image stays as an untagged (dangling) one. An untagged
    /// record of the newly named image is dropped.
    pub fn set_name(&self, record: ImageRecord) -> Result<(), Error> {
        let named_digest = (!record.name.starts_with(UNTAGGED))
            .then(|| Reference::parse_bare(&record.name).ok()?.digest)
            .flatten();
        if let Some(digest) = named_digest {
            if !pins(&record, &digest) {
                return Err(Error::Invalid(format!(
                    "refusing the name {}: its digest is not that of the image's content",
                    familiar_of(&record.name)
                )));
            }
        }
        let _names = self.lock_names();
        let previous = self.metadata.image(&record.name)?;
        let config = record.config_digest.clone();
        let mut put = vec![record.clone()];
        if let Some(old) = previous.filter(|p| p.config_digest != config) {
            let others = self
                .names_of(&old.config_digest)?
                .into_iter()
                .filter(|r| r.name != record.name);
            if others.count() == 0 {
                put.push(ImageRecord {
                    name: format!("{UNTAGGED}{}", old.config_digest),
                    repo_digest: None,
                    ..old
                });
            }
        }
        self.metadata
            .change_images(&put, &[format!("{UNTAGGED}{config}")])?;
        Ok(())
    }

    /// Serialises changes of names, so two of them never decide on the same stale view.
    pub fn lock_names(&self) -> std::sync::MutexGuard<'_, ()> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn names_of(&self, id: &str) -> Result<Vec<ImageRecord>, Error> {
        Ok(self
            .metadata
            .images()?
            .into_iter()
            .filter(|r| r.config_digest == id)
            .collect())
    }

    /// `docker tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &str) -> Result<(), Error> {
        let image = self.resolve(source)?;
        let target = Reference::parse(target)?;
        if target.digest.is_some() {
            return Err(Error::Invalid(format!(
                "refusing to create a tag with a digest reference: {}",
                target.familiar()
            )));
        }
        let from = &image.records[0];
        self.set_name(ImageRecord {
            name: target.to_string(),
            target: from.target.clone(),
            config_digest: image.id.clone(),
            repo_digest: None,
            updated: metadata::now(),
        })
    }

    /// `docker rmi`: removes a name, or the whole image when given its ID or its last name.
    pub async fn remove(&self, name_or_id: &str, force: bool) -> Result<Vec<Removed>, Error> {
        let removed = self.remove_names(name_or_id, force)?;
        if removed.iter().any(|r| matches!(r, Removed::Deleted(_))) {
            self.gc().await?;
        }
        Ok(removed)
    }

    /// The naming part of [`ImageService::remove`], in one metadata transaction.
    fn remove_names(&self, name_or_id: &str, force: bool) -> Result<Vec<Removed>, Error> {
        let _names = self.lock_names();
        let image = self.resolve(name_or_id)?;
        let by_name = Reference::parse(name_or_id)
            .ok()
            .and_then(|r| image.records.iter().find(|rec| rec.name == r.to_string()))
            .cloned();
        let named = image
            .records
            .iter()
            .filter(|r| is_user_name(&r.name))
            .count();
        match by_name {
            Some(record) if named > 1 => {
                self.metadata
                    .change_images(&[], std::slice::from_ref(&record.name))?;
                return Ok(vec![Removed::Untagged(familiar_of(&record.name))]);
            }
            None if named > 1 && !force => {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short_image_id(&image.id)
                )));
            }
            _ => {}
        }
        let names: Vec<String> = image.records.iter().map(|r| r.name.clone()).collect();
        self.metadata.change_images(&[], &names)?;
        let mut removed: Vec<Removed> = names
            .iter()
            .filter(|n| is_user_name(n))
            .map(|n| Removed::Untagged(familiar_of(n)))
            .collect();
        removed.push(Removed::Deleted(image.id.clone()));
        Ok(removed)
    }

    /// `docker image prune`: removes untagged images (every image with `all`) that `spare`
    /// does not keep (those containers use, those the filters leave out).
    /// Returns the removal lines and the bytes reclaimed.
    pub async fn prune(
        &self,
        all: bool,
        spare: impl Fn(&Image) -> bool,
    ) -> Result<(Vec<Removed>, u64), Error> {
        let removed = self.prune_names(all, spare)?;
        let report = self.gc().await?;
        Ok((removed, report.bytes))
    }

    /// The naming part of [`ImageService::prune`], in one metadata transaction.
    fn prune_names(
        &self,
        all: bool,
        spare: impl Fn(&Image) -> bool,
    ) -> Result<Vec<Removed>, Error> {
        let _names = self.lock_names();
        let mut removed = Vec::new();
        let mut names = Vec::new();
        for image in self.images()? {
            let dangling = image.records.iter().all(|r| r.name.starts_with(UNTAGGED));
            if !(all || dangling) || spare(&image) {
                continue;
            }
            for record in &image.records {
                names.push(record.name.clone());
                if is_user_name(&record.name) {
                    removed.push(Removed::Untagged(familiar_of(&record.name)));
                }
            }
            removed.push(Removed::Deleted(image.id.clone()));
        }
        self.metadata.change_images(&[], &names)?;
        Ok(removed)
    }

    /// Removes every blob and layer snapshot no image, lease or container needs.
    /// Linear in blobs, snapshots and layers. The gc lock is held exclusively only while
    /// deciding and dropping records and blobs; the snapshot directories (the long part)
    /// are removed after it is released, a crash in between leaving directories without a
    /// record, which the snapshotter removes when opened.
    pub async fn gc(&self) -> Result<GcReport, Error> {
        let (mut report, dead) = {
            let _exclusive = self.gc_lock.write().await;
            tokio::task::block_in_place(|| self.gc_records())?
        };
        tokio::task::block_in_place(|| {
            for snapshot in &dead {
                self.snapshots.remove_dir(snapshot)?;
                report.bytes += snapshot.size;
                report.snapshots += 1;
            }
            Ok::<_, Error>(())
        })?;
        Ok(report)
    }

    /// The part of [`ImageService::gc`] under the exclusive lock: blobs deleted, snapshot
    /// records dropped; returns the dropped snapshots, whose directories are left to remove.
    fn gc_records(&self) -> Result<(GcReport, Vec<metadata::SnapshotRecord>), Error> {
        let mut keep: HashSet<String> = self.metadata.leased_digests()?.into_iter().collect();
        let mut keep_snapshots: HashSet<String> = HashSet::new();
        let mut seen_configs: HashSet<String> = HashSet::new();
        for record in self.metadata.images()? {
            keep.insert(record.target.digest.clone());
            keep.insert(record.config_digest.clone());
            if let Some(d) = &record.repo_digest {
                keep.insert(d.clone());
            }
            // An image that cannot be read aborts the collection rather than losing its layers.
            let id = record.config_digest.clone();
            let image = self.image_of(&id, vec![record])?;
            keep.extend(image.layer_digests());
            if seen_configs.insert(id) {
                keep_snapshots.extend(chain_ids(&image.diff_ids()));
            }
        }
        let mut report = GcReport::default();
        for digest in self.content.list()? {
            if !keep.contains(&digest) {
                report.bytes += self.content.size(&digest).unwrap_or(0);
                self.content.delete(&digest)?;
                report.blobs += 1;
            }
        }
        let dead = self.snapshots.drop_unreferenced(&keep_snapshots)?;
        Ok((report, dead))
    }

    /// Bytes the image's layers take unpacked (sum of its layer snapshots), else compressed.
    pub fn size(&self, image: &Image) -> u64 {
        let snapshots: u64 = chain_ids(&image.diff_ids())
            .iter()
            .filter_map(|key| self.metadata.snapshot(key).ok().flatten())
            .map(|s| s.size)
            .sum();
        if snapshots > 0 {
            return snapshots;
        }
        image.manifest["layers"]
            .as_array()
            .map(|a| a.iter().filter_map(|l| l["size"].as_u64()).sum())
            .unwrap_or(0)
    }

    /// Docker's `GET /images/json` entry.
    pub fn summary(&self, image: &Image) -> Value {
        let size = self.size(image);
        json!({
            "Id": image.id,
            "ParentId": "",
            "RepoTags": image.repo_tags(),
            "RepoDigests": image.repo_digests(),
            "Created": image.created(),
            "Size": size,
            "VirtualSize": size,
            "SharedSize": -1,
            "Labels": image.config["config"]["Labels"].clone(),
            "Containers": -1,
        })
    }

    /// Docker's `GET /images/{name}/json`.
    pub fn inspect(&self, image: &Image) -> Value {
        let size = self.size(image);
        let config = &image.config;
        let last_tag = image.records.iter().map(|r| r.updated).max().unwrap_or(0);
        let last_tag = chrono::DateTime::from_timestamp(last_tag as i64, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .unwrap_or_default();
        json!({
            "Id": image.id,
            "RepoTags": image.repo_tags(),
            "RepoDigests": image.repo_digests(),
            "Parent": "",
            "Comment": config["comment"].as_str().unwrap_or(""),
            "Created": config["created"].as_str().unwrap_or("0001-01-01T00:00:00Z"),
            "Container": config["container"].as_str().unwrap_or(""),
            "ContainerConfig": config.get("container_config").cloned().unwrap_or(json!({})),
            "DockerVersion": config["docker_version"].as_str().unwrap_or(""),
            "Author": config["author"].as_str().unwrap_or(""),
            "Config": config.get("config").cloned().unwrap_or(Value::Null),
            "Architecture": config["architecture"].as_str().unwrap_or(""),
            "Variant": config.get("variant").cloned(),
            "Os": config["os"].as_str().unwrap_or(""),
            "Size": size,
            "VirtualSize": size,
            "GraphDriver": {
                "Name": "overlayfs",
                "Data": { "ManifestDigest": image.records[0].target.digest },
            },
            "RootFS": { "Type": "layers", "Layers": image.diff_ids() },
            "Metadata": { "LastTagTime": last_tag },
        })
    }

    /// Docker's `GET /images/{name}/history`, newest first.
    pub fn history(&self, image: &Image) -> Vec<Value> {
        let diff_ids = image.diff_ids();
        let chains = chain_ids(&diff_ids);
        let empty = Vec::new();
        let entries = image.config["history"].as_array().unwrap_or(&empty);
        let mut layer = 0;
        let mut out = Vec::new();
        for entry in entries {
            let is_empty = entry["empty_layer"].as_bool().unwrap_or(false);
            let size = if is_empty {
                0
            } else {
                let size = chains
                    .get(layer)
                    .and_then(|k| self.metadata.snapshot(k).ok().flatten())
                    .map(|s| s.size)
                    .unwrap_or(0);
                layer += 1;
                size
            };
            let created = entry["created"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.timestamp())
                .unwrap_or(0);
            out.push(json!({
                "Id": "<missing>",
                "Created": created,
                "CreatedBy": entry["created_by"].as_str().unwrap_or(""),
                "Tags": Value::Null,
                "Size": size,
                "Comment": entry["comment"].as_str().unwrap_or(""),
            }));
        }
        out.reverse();
        if let Some(top) = out.first_mut() {
            top["Id"] = json!(image.id);
            top["Tags"] = json!(image.repo_tags());
        }
        out
    }
}

/// What a process that died with this data root open left: its leases (which would keep
/// the blobs of a crashed load or pull from every gc until they expire) and its load spools.
/// The metadata store's file lock makes this process the only one, so all of it is dead.
fn reclaim_crashed(root: &std::path::Path, metadata: &Metadata) -> Result<(), Error> {
    let leases = metadata.clear_leases()?;
    let tmp = root.join("tmp");
    // A build step's snapshots are mounted under it: unmounted first, never removed through.
    let mounts = crate::images::snapshot::unmount_under(&tmp);
    let mut spools = 0;
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => spools += 1,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "removing a crashed spool")
                }
            }
        }
    }
    if leases + spools + mounts > 0 {
        tracing::info!(
            leases,
            spools,
            mounts,
            "reclaimed what a crashed daemon left"
        );
    }
    Ok(())
}

/// Creates `dir` if needed and gives it `mode` (root-only data must not be reachable by
/// other users, as docker's CVE-2021-41091 showed).
fn private_dir(dir: &std::path::Path, mode: u32) -> Result<(), Error> {
    crate::perms::make_dir(dir, mode).map_err(|e| Error::Corrupt {
        what: dir.display().to_string(),
        message: e.to_string(),
    })
}

/// Whether `record` points at the content `digest` names: its manifest, or what the registry
/// served for it (an index).
fn pins(record: &ImageRecord, digest: &str) -> bool {
    record.target.digest == digest || record.repo_digest.as_deref() == Some(digest)
}

/// `busybox:latest` for `docker.io/library/busybox:latest`.
pub fn familiar_of(name: &str) -> String {
    Reference::parse_bare(name)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| name.to_string())
}

/// The 12-digit ID docker prints.
pub fn short_image_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn data_root_is_reachable_by_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let _service = ImageService::open(Options {
            data_root: root.clone(),
            ..Default::default()
        })
        .unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o710);
        assert_eq!(mode(&root.join("content")), 0o700);
        assert_eq!(mode(&root.join("snapshots")), 0o700);
    }
}
