//! The overlayfs snapshotter, with a copying fallback. (Owner: the layers & snapshots engineer.)
//!
//! Each snapshot is a directory `<root>/<id>/fs` (plus `<root>/<id>/work` for an active one
//! on overlay) and a [`SnapshotRecord`] in the metadata store. Committed snapshots are image
//! layers keyed by chain ID; active ones are a container's writable layer. With overlayfs a
//! layer directory holds only that layer's files (whiteouts in overlay form) and mounts
//! stack them; with the copying fallback every snapshot is a full tree, a child starting as
//! a copy of its parent. A directory is recorded only once complete, so a crash leaves at
//! most an unrecorded directory, which [`Snapshotter::open`] removes.
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::Digest as _;

use super::layer::{self, ApplyOptions, Whiteouts};
use super::metadata::{self, Metadata, SnapshotKind, SnapshotRecord};

mod copy;
pub mod durable;
pub mod mount;

pub use mount::{mount_all, unmount, unmount_under, Mount};

/// Errors of the snapshotter; each names the snapshot or path it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("snapshot {0} not found")]
    NotFound(String),
    #[error("snapshot {0} already exists")]
    Exists(String),
    #[error("snapshot {key} is the parent of {child}: remove that first")]
    HasChildren { key: String, child: String },
    #[error("snapshot {key} is not {expected}")]
    WrongKind { key: String, expected: &'static str },
    #[error("snapshot {key}: {source}")]
    Layer {
        key: String,
        #[source]
        source: layer::Error,
    },
    #[error("snapshot {key}: layer has diff ID {actual}, expected {expected}")]
    DiffIdMismatch {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("snapshot {key}: {layers} layers are too many for one overlay mount")]
    TooManyLayers { key: String, layers: usize },
    #[error("mount on {target}: {message}")]
    Mount { target: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

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

/// How snapshots are stored and mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Layers stacked by overlayfs; each layer unpacked once.
    Overlay,
    /// Full copies, bind-mounted: works on any filesystem, costs space and time.
    Copy,
}

/// Snapshots of image layers and container filesystems.
#[derive(Debug)]
pub struct Snapshotter {
    root: PathBuf,
    metadata: Arc<Metadata>,
    backend: Backend,
    next_id: AtomicU64,
    /// Held while checking and changing records (parents and children stay consistent).
    records: Mutex<()>,
    /// One lock per key being created, so one key is never extracted twice at once.
    keys: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Flushes unpacked layers to disk in the background (see `durable`).
    flusher: durable::Flusher,
    /// How far a layer may expand when unpacked.
    bound: layer::SizeBound,
}

impl Snapshotter {
    /// Opens the snapshotter at `root`, using overlayfs if a probe mount works there.
    pub fn open(root: &Path, metadata: Arc<Metadata>) -> Result<Self, Error> {
        Self::open_with(root, metadata, None)
    }

    /// Opens the snapshotter at `root` with the given backend (None: probe for overlayfs).
    /// Finishes a commit a crash interrupted and removes directories without a record.
    pub fn open_with(
        root: &Path,
        metadata: Arc<Metadata>,
        backend: Option<Backend>,
    ) -> Result<Self, Error> {
        crate::perms::make_dir(root, 0o700)
            .map_err(|e| io_at(root)(std::io::Error::other(e.to_string())))?;
        durable::forget_unflushed(&metadata)?;
        let ids = recover(root, &metadata)?;
        durable::flush(root, &metadata)?;
        let backend = backend.unwrap_or_else(|| {
            if mount::overlay_works(root) {
                Backend::Overlay
            } else {
                Backend::Copy
            }
        });
        tracing::info!(root = %root.display(), ?backend, snapshots = ids.len(), "snapshotter opened");
        Ok(Snapshotter {
            root: root.to_path_buf(),
            backend,
            next_id: AtomicU64::new(ids.iter().max().map_or(1, |m| m + 1)),
            records: Mutex::new(()),
            keys: Mutex::new(HashMap::new()),
            flusher: durable::Flusher::start(root.to_path_buf(), metadata.clone()),
            metadata,
            bound: layer::SizeBound::default(),
        })
    }

    /// Sets how far a layer may expand when unpacked.
    pub fn with_bound(mut self, bound: layer::SizeBound) -> Self {
        self.bound = bound;
        self
    }

    /// Asks the background flusher to put unpacked layers on disk soon.
    pub fn request_flush(&self) {
        self.flusher.request();
    }

    /// Puts unpacked layers on disk now; returns how many were waiting.
    pub fn flush(&self) -> Result<usize, Error> {
        durable::flush(&self.root, &self.metadata)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join(id.to_string())
    }

    /// The directory holding a snapshot's files (for overlay: its own layer or upper dir).
    pub fn fs_dir(&self, record: &SnapshotRecord) -> PathBuf {
        self.dir(record.id).join("fs")
    }

    /// The record of `key`.
    pub fn stat(&self, key: &str) -> Result<SnapshotRecord, Error> {
        self.metadata
            .snapshot(key)?
            .ok_or_else(|| Error::NotFound(key.to_string()))
    }

    fn committed(&self, key: &str) -> Result<SnapshotRecord, Error> {
        let record = self.stat(key)?;
        if record.kind != SnapshotKind::Committed {
            return Err(Error::WrongKind {
                key: key.into(),
                expected: "committed",
            });
        }
        Ok(record)
    }

    /// Serialises work on one key; the guard's lock is dropped from the map when unused.
    fn lock_key(&self, key: &str) -> Arc<Mutex<()>> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.retain(|_, lock| Arc::strong_count(lock) > 1);
        keys.entry(key.to_string()).or_default().clone()
    }

    /// Unpacks a layer as the committed snapshot `key` (its chain ID) on top of `parent`.
    /// The layer is extracted into a fresh directory and its diff ID checked before anything
    /// is recorded; on any error the directory is removed. If `key` exists already, its
    /// record is returned and `layer` is not read.
    pub fn unpack(
        &self,
        key: &str,
        parent: Option<&str>,
        layer: impl Read,
        expected_diff_id: &str,
    ) -> Result<SnapshotRecord, Error> {
        let lock = self.lock_key(key);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = self.metadata.snapshot(key)? {
            return match existing.kind {
                SnapshotKind::Committed => Ok(existing),
                SnapshotKind::Active => Err(Error::Exists(key.into())),
            };
        }
        let parent = parent.map(|p| self.committed(p)).transpose()?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let dir = self.dir(id);
        make_private_dir(&dir)?;
        let result = self.extract(key, parent.as_ref(), &dir, layer, expected_diff_id);
        let result = result.and_then(|size| {
            self.record(SnapshotRecord {
                key: key.into(),
                parent: parent.map(|p| p.key),
                kind: SnapshotKind::Committed,
                id,
                size,
                created: metadata::now(),
                unsynced_boot: Some(durable::boot_id()),
            })
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    /// Fills `dir/fs` with the parent's view (copy backend) and the layer; returns its size.
    fn extract(
        &self,
        key: &str,
        parent: Option<&SnapshotRecord>,
        dir: &Path,
        layer: impl Read,
        expected_diff_id: &str,
    ) -> Result<u64, Error> {
        let fs = dir.join("fs");
        self.new_fs(parent, &fs)?;
        let options = ApplyOptions {
            whiteouts: match self.backend {
                Backend::Overlay => Whiteouts::Overlay,
                Backend::Copy => Whiteouts::Apply,
            },
            bound: self.bound,
            ..Default::default()
        };
        let applied = layer::apply(layer, &fs, &options).map_err(|source| Error::Layer {
            key: key.into(),
            source,
        })?;
        if applied.diff_id != expected_diff_id {
            return Err(Error::DiffIdMismatch {
                key: key.into(),
                expected: expected_diff_id.into(),
                actual: applied.diff_id,
            });
        }
        Ok(applied.size)
    }

    /// Creates `fs`: empty, or for the copy backend a copy of the parent's tree.
    fn new_fs(&self, parent: Option<&SnapshotRecord>, fs: &Path) -> Result<(), Error> {
        match (self.backend, parent) {
            (Backend::Copy, Some(parent)) => copy::copy_tree(&self.fs_dir(parent), fs),
            // A layer without a `./` entry leaves the root as docker does: 0755.
            _ => std::fs::DirBuilder::new()
                .mode(0o755)
                .create(fs)
                .map_err(io_at(fs)),
        }
    }

    /// Records a snapshot, checking under the records lock that its parent still exists.
    fn record(&self, record: SnapshotRecord) -> Result<SnapshotRecord, Error> {
        let _records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(parent) = &record.parent {
            self.committed(parent)?;
        }
        self.metadata.put_snapshot(&record)?;
        tracing::debug!(key = %record.key, id = record.id, kind = ?record.kind, "snapshot recorded");
        Ok(record)
    }

    /// Creates the active (writable) snapshot `key` on top of the committed `parent` and
    /// returns the mounts that show it.
    pub fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, Error> {
        let lock = self.lock_key(key);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.metadata.snapshot(key)?.is_some() {
            return Err(Error::Exists(key.into()));
        }
        let parent = parent.map(|p| self.committed(p)).transpose()?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let dir = self.dir(id);
        make_private_dir(&dir)?;
        let result = (|| {
            self.new_fs(parent.as_ref(), &dir.join("fs"))?;
            if self.backend == Backend::Overlay {
                make_private_dir(&dir.join("work"))?;
            }
            self.record(SnapshotRecord {
                key: key.into(),
                parent: parent.as_ref().map(|p| p.key.clone()),
                kind: SnapshotKind::Active,
                id,
                size: 0,
                created: metadata::now(),
                unsynced_boot: None,
            })
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.mounts(key)
    }

    /// The mounts that show snapshot `key`: writable for an active one, read-only for a
    /// committed one.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>, Error> {
        let record = self.stat(key)?;
        let active = record.kind == SnapshotKind::Active;
        if self.backend == Backend::Copy {
            return Ok(vec![Mount::bind(&self.fs_dir(&record), !active)]);
        }
        let mut lowers = self.lowers(record.parent.as_deref())?;
        if !active {
            lowers.insert(0, self.fs_dir(&record));
        }
        let mount = match (active, lowers.len()) {
            (true, 0) => Mount::bind(&self.fs_dir(&record), false),
            (false, 1) => Mount::bind(&lowers[0], true),
            _ => self.overlay_mount(key, &record, &lowers, active)?,
        };
        Ok(vec![mount])
    }

    /// A read-only view of the committed snapshot `key` (an image's root filesystem).
    pub fn view(&self, key: &str) -> Result<Vec<Mount>, Error> {
        self.committed(key)?;
        self.mounts(key)
    }

    /// Layer directories from `key` down to the bottom layer.
    fn lowers(&self, key: Option<&str>) -> Result<Vec<PathBuf>, Error> {
        let mut out = Vec::new();
        let mut key = key.map(str::to_string);
        while let Some(k) = key {
            let record = self.stat(&k)?;
            out.push(self.fs_dir(&record));
            key = record.parent;
        }
        Ok(out)
    }

    fn overlay_mount(
        &self,
        key: &str,
        record: &SnapshotRecord,
        lowers: &[PathBuf],
        active: bool,
    ) -> Result<Mount, Error> {
        let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let mut options = vec![format!("lowerdir={}", lowerdir.join(":"))];
        if active {
            let dir = self.dir(record.id);
            options.push(format!("upperdir={}", dir.join("fs").display()));
            options.push(format!("workdir={}", dir.join("work").display()));
        } else {
            options.insert(0, "ro".into());
        }
        // Layers are shared between mounts (no index); an upper dir must hold whole files
        // and real directories, or `diff` could not turn it into a layer.
        for (param, option) in [
            ("index", "index=off"),
            ("redirect_dir", "redirect_dir=off"),
            ("metacopy", "metacopy=off"),
        ] {
            if Path::new("/sys/module/overlay/parameters")
                .join(param)
                .exists()
            {
                options.push(option.into());
            }
        }
        let mount = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options,
        };
        if !mount::fits(&mount) {
            return Err(Error::TooManyLayers {
                key: key.into(),
                layers: lowers.len(),
            });
        }
        Ok(mount)
    }

    /// Turns the active snapshot `active_key` into the committed snapshot `name` (same
    /// directory, same parent). The active snapshot should not be mounted any more.
    pub fn commit(&self, name: &str, active_key: &str) -> Result<SnapshotRecord, Error> {
        let lock = self.lock_key(name);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let active = self.stat(active_key)?;
        if active.kind != SnapshotKind::Active {
            return Err(Error::WrongKind {
                key: active_key.into(),
                expected: "active",
            });
        }
        if self.metadata.snapshot(name)?.is_some() {
            return Err(Error::Exists(name.into()));
        }
        let fs = self.fs_dir(&active);
        sync_fs(&fs)?;
        let size = match (self.backend, &active.parent) {
            (Backend::Copy, Some(_)) => self.diff_size(&active)?,
            _ => copy::usage(&fs)?,
        };
        // The committed record first: a crash before the active one is removed leaves two
        // records on one directory, which `open` resolves in favour of the committed one.
        let committed = self.record(SnapshotRecord {
            key: name.into(),
            parent: active.parent.clone(),
            kind: SnapshotKind::Committed,
            id: active.id,
            size,
            created: metadata::now(),
            unsynced_boot: None,
        })?;
        self.metadata.remove_snapshot(active_key)?;
        let work = self.dir(active.id).join("work");
        if work.exists() {
            std::fs::remove_dir_all(&work).map_err(io_at(&work))?;
        }
        Ok(committed)
    }

    /// Size of a copy-backend snapshot's own changes: the bytes of its diff as a tar.
    fn diff_size(&self, record: &SnapshotRecord) -> Result<u64, Error> {
        Ok(self.diff(&record.key, std::io::sink())?.tar_size)
    }

    /// Removes snapshot `key` (record, then directory). Refused while it is a parent.
    pub fn remove(&self, key: &str) -> Result<(), Error> {
        let record = {
            let _records = self.records.lock().unwrap_or_else(|e| e.into_inner());
            let record = self.stat(key)?;
            if let Some(child) = self
                .metadata
                .snapshots()?
                .into_iter()
                .find(|s| s.parent.as_deref() == Some(key))
            {
                return Err(Error::HasChildren {
                    key: key.into(),
                    child: child.key,
                });
            }
            self.metadata.remove_snapshot(key)?;
            record
        };
        let dir = self.dir(record.id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_at(&dir)(e)),
            _ => Ok(()),
        }
    }

    /// Drops, in one transaction, the record of every snapshot that is neither in `keep`,
    /// nor active (a container's), nor the parent (however far down) of one of those.
    /// Returns the dropped records: their directories are for [`Snapshotter::remove_dir`].
    /// Linear: each record is looked at a bounded number of times.
    pub fn drop_unreferenced(&self, keep: &HashSet<String>) -> Result<Vec<SnapshotRecord>, Error> {
        let _records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let snapshots: HashMap<String, SnapshotRecord> = self
            .metadata
            .snapshots()?
            .into_iter()
            .map(|s| (s.key.clone(), s))
            .collect();
        let mut live: HashSet<&str> = HashSet::new();
        let roots = snapshots
            .values()
            .filter(|s| s.kind == SnapshotKind::Active || keep.contains(&s.key));
        for root in roots {
            let mut at = Some(root);
            // Stop at the first snapshot already live: its parents were walked from it.
            while let Some(s) = at.filter(|s| live.insert(s.key.as_str())) {
                at = s.parent.as_deref().and_then(|p| snapshots.get(p));
            }
        }
        let dead: Vec<SnapshotRecord> = snapshots
            .values()
            .filter(|s| !live.contains(s.key.as_str()))
            .cloned()
            .collect();
        let keys: Vec<String> = dead.iter().map(|s| s.key.clone()).collect();
        self.metadata.remove_snapshots(&keys)?;
        tracing::debug!(
            dropped = keys.len(),
            kept = live.len(),
            "snapshot records collected"
        );
        Ok(dead)
    }

    /// Removes the directory of a snapshot whose record was dropped.
    pub fn remove_dir(&self, record: &SnapshotRecord) -> Result<(), Error> {
        let dir = self.dir(record.id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_at(&dir)(e)),
            _ => Ok(()),
        }
    }

    /// Writes snapshot `key`'s own changes (relative to its parent) as an uncompressed layer
    /// tar to `out`, overlay whiteouts turned back into `.wh.` entries.
    pub fn diff(&self, key: &str, out: impl Write) -> Result<layer::Exported, Error> {
        let record = self.stat(key)?;
        let fs = self.fs_dir(&record);
        let layer_err = |source| Error::Layer {
            key: key.into(),
            source,
        };
        match self.backend {
            Backend::Overlay => layer::export_overlay(&fs, out).map_err(layer_err),
            Backend::Copy => {
                let parent = record.parent.as_deref().map(|p| self.stat(p)).transpose()?;
                let lower = parent.map(|p| self.fs_dir(&p));
                layer::export_changes(lower.as_deref(), &fs, out).map_err(layer_err)
            }
        }
    }
}

/// Creates a snapshot's own directory (or overlay work dir), for root only.
fn make_private_dir(dir: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(io_at(dir))
}

/// Flushes the filesystem holding `path` (the extracted files reach the disk before their
/// record does).
fn sync_fs(path: &Path) -> Result<(), Error> {
    let dir = std::fs::File::open(path).map_err(io_at(path))?;
    nix::unistd::syncfs(&dir).map_err(|e| io_at(path)(e.into()))
}

/// Crash recovery at open: an active record sharing its directory with a committed one is
/// a finished commit (the active record goes); directories without a record are removed.
/// Returns the ids in use.
fn recover(root: &Path, metadata: &Metadata) -> Result<HashSet<u64>, Error> {
    let records = metadata.snapshots()?;
    let committed: HashSet<u64> = records
        .iter()
        .filter(|r| r.kind == SnapshotKind::Committed)
        .map(|r| r.id)
        .collect();
    for r in &records {
        if r.kind == SnapshotKind::Active && committed.contains(&r.id) {
            tracing::warn!(key = %r.key, "finishing an interrupted commit");
            metadata.remove_snapshot(&r.key)?;
        }
    }
    let ids: HashSet<u64> = records.iter().map(|r| r.id).collect();
    for entry in std::fs::read_dir(root).map_err(io_at(root))? {
        let entry = entry.map_err(io_at(root))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".probe-") {
            mount::remove_probe(&entry.path());
            continue;
        }
        if name.parse::<u64>().is_ok_and(|id| !ids.contains(&id)) {
            tracing::warn!(dir = %entry.path().display(), "removing snapshot directory without a record");
            std::fs::remove_dir_all(entry.path()).map_err(io_at(&entry.path()))?;
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests;
