//! Network records in an embedded crash-safe store (redb, `<data-root>/networks.redb`), one
//! JSON value per network id; a network's endpoints (its IPAM state) are part of its record,
//! so an address is reserved and recorded in one transaction.
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::record::Network;

const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");

#[derive(Debug, thiserror::Error)]
#[error("network store {path}: {message}")]
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
    pub fn open(data_root: &Path) -> Result<Store, StoreError> {
        let path = data_root.join("networks.redb");
        let err = |e: &dyn std::fmt::Display| StoreError {
            path: path.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(data_root).map_err(|e| err(&e))?;
        let db = Database::create(&path).map_err(|e| err(&e))?;
        let txn = db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(NETWORKS).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        Ok(Store { db, path })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    pub fn put(&self, n: &Network) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(n).map_err(|e| self.err(e))?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.open_table(NETWORKS)
            .map_err(|e| self.err(e))?
            .insert(n.id.as_str(), bytes.as_slice())
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.open_table(NETWORKS)
            .map_err(|e| self.err(e))?
            .remove(id)
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    pub fn list(&self) -> Result<Vec<Network>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(NETWORKS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            match serde_json::from_slice(value.value()) {
                Ok(n) => out.push(n),
                Err(e) => {
                    tracing::error!(id = key.value(), error = %e, "unreadable network record")
                }
            }
        }
        Ok(out)
    }
}
