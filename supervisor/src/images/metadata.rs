//! Metadata in an embedded crash-safe store (redb, one file `<root>/metadata.redb`):
//! image names, snapshots and leases. Blobs themselves live in the content store.
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");

/// Errors of the metadata store, naming the database file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("metadata {path}: {message}")]
    Db { path: PathBuf, message: String },
}

/// A content descriptor: what a name points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// One image name (`docker.io/library/busybox:latest`, or `name@sha256:…` when pulled by
/// digest) and the platform manifest it resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Full reference string, the key.
    pub name: String,
    /// The platform-specific image manifest.
    pub target: Target,
    /// The image config digest: docker's image ID.
    pub config_digest: String,
    /// Digest the registry served for this name (an index or the manifest), for RepoDigests.
    pub repo_digest: Option<String>,
    /// Unix seconds when the name was last set.
    pub updated: u64,
}

/// Whether a snapshot is a read-only layer or a container's writable one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotKind {
    Committed,
    Active,
}

/// One snapshot: a directory of the snapshotter, keyed by name (a chain ID for layers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub key: String,
    pub parent: Option<String>,
    pub kind: SnapshotKind,
    /// Directory number under `<snapshots>/`, so renames never move data.
    pub id: u64,
    /// Bytes used by this snapshot's own files.
    pub size: u64,
    pub created: u64,
    /// The boot (`/proc/sys/kernel/random/boot_id`) in which its files were written, while
    /// they may still be only in the page cache; None once flushed to disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsynced_boot: Option<String>,
}

/// A lease protects blobs from garbage collection while a pull or load is in progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub digests: Vec<String>,
    /// Unix seconds after which a lease left by a crash no longer protects anything.
    pub expires: u64,
}

/// Now, in unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The metadata database.
#[derive(Debug)]
pub struct Metadata {
    db: Database,
    path: PathBuf,
}

impl Metadata {
    /// Opens (creating) `<root>/metadata.redb` with its tables.
    pub fn open(root: &Path) -> Result<Self, Error> {
        let path = root.join("metadata.redb");
        let db_err = |e: &dyn std::fmt::Display| Error::Db {
            path: path.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(root).map_err(|e| db_err(&e))?;
        let db = crate::records::open_database(&path).map_err(|e| db_err(&e))?;
        crate::perms::set_mode(&path, 0o600).map_err(|e| db_err(&e))?;
        let txn = db.begin_write().map_err(|e| db_err(&e))?;
        for table in [IMAGES, SNAPSHOTS, LEASES] {
            txn.open_table(table).map_err(|e| db_err(&e))?;
        }
        txn.commit().map_err(|e| db_err(&e))?;
        Ok(Metadata { db, path })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn put<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &T,
    ) -> Result<(), Error> {
        let bytes = serde_json::to_vec(value).map_err(|e| self.err(e))?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.open_table(table)
            .map_err(|e| self.err(e))?
            .insert(key, bytes.as_slice())
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, Error> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(table).map_err(|e| self.err(e))?;
        match table.get(key).map_err(|e| self.err(e))? {
            Some(v) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|e| self.err(format!("{key}: {e}"))),
            None => Ok(None),
        }
    }

    fn list<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<T>, Error> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(table).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            let item = serde_json::from_slice(value.value())
                .map_err(|e| self.err(format!("{}: {e}", key.value())))?;
            out.push(item);
        }
        Ok(out)
    }

    fn remove(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> Result<bool, Error> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let existed = txn
            .open_table(table)
            .map_err(|e| self.err(e))?
            .remove(key)
            .map_err(|e| self.err(e))?
            .is_some();
        txn.commit().map_err(|e| self.err(e))?;
        Ok(existed)
    }

    pub fn put_image(&self, image: &ImageRecord) -> Result<(), Error> {
        self.put(IMAGES, &image.name, image)
    }

    /// Writes and removes image names in one transaction: all of it happens or none.
    pub fn change_images(&self, put: &[ImageRecord], remove: &[String]) -> Result<(), Error> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(IMAGES).map_err(|e| self.err(e))?;
            for name in remove {
                table.remove(name.as_str()).map_err(|e| self.err(e))?;
            }
            for image in put {
                let bytes = serde_json::to_vec(image).map_err(|e| self.err(e))?;
                table
                    .insert(image.name.as_str(), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }
    pub fn image(&self, name: &str) -> Result<Option<ImageRecord>, Error> {
        self.get(IMAGES, name)
    }
    pub fn images(&self) -> Result<Vec<ImageRecord>, Error> {
        self.list(IMAGES)
    }
    pub fn remove_image(&self, name: &str) -> Result<bool, Error> {
        self.remove(IMAGES, name)
    }

    pub fn put_snapshot(&self, snapshot: &SnapshotRecord) -> Result<(), Error> {
        self.put(SNAPSHOTS, &snapshot.key, snapshot)
    }
    pub fn snapshot(&self, key: &str) -> Result<Option<SnapshotRecord>, Error> {
        self.get(SNAPSHOTS, key)
    }
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>, Error> {
        self.list(SNAPSHOTS)
    }
    pub fn remove_snapshot(&self, key: &str) -> Result<bool, Error> {
        self.remove(SNAPSHOTS, key)
    }

    /// Marks the given snapshots (key and directory id) as flushed, in one transaction; a key
    /// no longer recorded, or recorded again with another directory since, is left alone.
    pub fn mark_synced(&self, keys: &[(String, u64)]) -> Result<(), Error> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(SNAPSHOTS).map_err(|e| self.err(e))?;
            for (key, id) in keys {
                let current = table.get(key.as_str()).map_err(|e| self.err(e))?;
                let Some(bytes) = current.map(|v| v.value().to_vec()) else {
                    continue;
                };
                let mut record: SnapshotRecord =
                    serde_json::from_slice(&bytes).map_err(|e| self.err(format!("{key}: {e}")))?;
                if record.id != *id {
                    continue;
                }
                record.unsynced_boot = None;
                let bytes = serde_json::to_vec(&record).map_err(|e| self.err(e))?;
                table
                    .insert(key.as_str(), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    pub fn put_lease(&self, id: &str, lease: &Lease) -> Result<(), Error> {
        self.put(LEASES, id, lease)
    }
    pub fn remove_lease(&self, id: &str) -> Result<bool, Error> {
        self.remove(LEASES, id)
    }
    /// Removes every lease; returns how many there were. Called when the store is opened:
    /// its file lock keeps other processes out, so any lease left is a dead process's.
    pub fn clear_leases(&self) -> Result<usize, Error> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed = {
            let mut table = txn.open_table(LEASES).map_err(|e| self.err(e))?;
            let removed = table.len().map_err(|e| self.err(e))? as usize;
            table.retain(|_, _| false).map_err(|e| self.err(e))?;
            removed
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    /// Removes these snapshot records in one transaction.
    pub fn remove_snapshots(&self, keys: &[String]) -> Result<(), Error> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(SNAPSHOTS).map_err(|e| self.err(e))?;
            for key in keys {
                table.remove(key.as_str()).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Digests protected by leases that have not expired.
    pub fn leased_digests(&self) -> Result<Vec<String>, Error> {
        let now = now();
        Ok(self
            .list::<Lease>(LEASES)?
            .into_iter()
            .filter(|l| l.expires > now)
            .flat_map(|l| l.digests)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let image = ImageRecord {
            name: "docker.io/library/busybox:latest".into(),
            target: Target {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: format!("sha256:{}", "1".repeat(64)),
                size: 10,
            },
            config_digest: format!("sha256:{}", "2".repeat(64)),
            repo_digest: None,
            updated: now(),
        };
        Metadata::open(dir.path())
            .unwrap()
            .put_image(&image)
            .unwrap();
        let md = Metadata::open(dir.path()).unwrap();
        assert_eq!(md.image(&image.name).unwrap(), Some(image.clone()));
        assert_eq!(md.images().unwrap().len(), 1);
        assert!(md.remove_image(&image.name).unwrap());
        assert_eq!(md.image(&image.name).unwrap(), None);
    }

    #[test]
    fn expired_leases_protect_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let md = Metadata::open(dir.path()).unwrap();
        let live = Lease {
            digests: vec!["sha256:a".into()],
            expires: now() + 60,
        };
        let dead = Lease {
            digests: vec!["sha256:b".into()],
            expires: 1,
        };
        md.put_lease("live", &live).unwrap();
        md.put_lease("dead", &dead).unwrap();
        assert_eq!(md.leased_digests().unwrap(), vec!["sha256:a".to_string()]);
    }
}
