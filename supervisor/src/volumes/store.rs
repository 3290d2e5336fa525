//! Volume records in an embedded crash-safe store (redb, `<data-root>/volumes/metadata.redb`),
//! one JSON value per volume name.
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::record::Volume;

const VOLUMES: TableDefinition<&str, &[u8]> = TableDefinition::new("volumes");

#[derive(Debug, thiserror::Error)]
#[error("volume store {path}: {message}")]
pub struct StoreError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let path = root.join("metadata.redb");
        let err = |e: &dyn std::fmt::Display| StoreError {
            path: path.clone(),
            message: e.to_string(),
        };
        let db = Database::create(&path).map_err(|e| err(&e))?;
        let txn = db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(VOLUMES).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        Ok(Store { db, path })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    pub fn put(&self, c: &Volume) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(c).map_err(|e| self.err(e))?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.open_table(VOLUMES)
            .map_err(|e| self.err(e))?
            .insert(c.name.as_str(), bytes.as_slice())
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.open_table(VOLUMES)
            .map_err(|e| self.err(e))?
            .remove(name)
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    pub fn get(&self, name: &str) -> Result<Option<Volume>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(VOLUMES).map_err(|e| self.err(e))?;
        match table.get(name).map_err(|e| self.err(e))? {
            Some(v) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }

    pub fn list(&self) -> Result<Vec<Volume>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(VOLUMES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            match serde_json::from_slice(value.value()) {
                Ok(c) => out.push(c),
                Err(e) => {
                    tracing::error!(id = key.value(), error = %e, "unreadable volume record")
                }
            }
        }
        Ok(out)
    }
}
