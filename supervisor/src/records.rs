//! Records in an embedded crash-safe store (redb): one table of JSON values by key, one file
//! per kind of record (containers, networks, volumes).
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};

/// A value kept in a [`RecordStore`]: its table, its kind (for messages) and its key.
pub trait Record: Serialize + DeserializeOwned {
    const TABLE: &'static str;
    const KIND: &'static str;
    fn key(&self) -> &str;
}

#[derive(Debug, thiserror::Error)]
#[error("{kind} store {path}: {message}")]
pub struct StoreError {
    pub kind: &'static str,
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug)]
pub struct RecordStore<T> {
    db: Database,
    path: PathBuf,
    _records: PhantomData<T>,
}

/// Opens the redb file at `path`, creating it whole: a new file is made beside it and renamed
/// into place, so that a daemon killed while creating it leaves no file redb cannot open ("Not a
/// redb database: magic number mismatch" at every start after). A leftover of that is removed.
pub fn open_database(path: &Path) -> Result<Database, String> {
    if !path.exists() {
        let new = path.with_extension("redb.new");
        let _ = std::fs::remove_file(&new);
        drop(Database::create(&new).map_err(|e| format!("{}: {e}", new.display()))?);
        std::fs::rename(&new, path).map_err(|e| format!("rename {}: {e}", new.display()))?;
    }
    Database::create(path).map_err(|e| e.to_string())
}

impl<T: Record> RecordStore<T> {
    /// Opens (or creates) the store file at `path`, with its table.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |e: &dyn std::fmt::Display| error::<T>(path, e);
        let db = open_database(path).map_err(|e| err(&e))?;
        let txn = db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(Self::table()).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        Ok(RecordStore {
            db,
            path: path.to_path_buf(),
            _records: PhantomData,
        })
    }

    fn table() -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(T::TABLE)
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        error::<T>(&self.path, &e)
    }

    pub fn put(&self, record: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| self.err(e))?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.open_table(Self::table())
            .map_err(|e| self.err(e))?
            .insert(record.key(), bytes.as_slice())
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    pub fn remove(&self, key: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.open_table(Self::table())
            .map_err(|e| self.err(e))?
            .remove(key)
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    pub fn get(&self, key: &str) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(Self::table()).map_err(|e| self.err(e))?;
        match table.get(key).map_err(|e| self.err(e))? {
            Some(v) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }

    /// Every readable record; an unreadable one is logged and left out.
    pub fn list(&self) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(Self::table()).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            match serde_json::from_slice(value.value()) {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::error!(kind = T::KIND, key = key.value(), error = %e, "unreadable record")
                }
            }
        }
        Ok(out)
    }
}

fn error<T: Record>(path: &Path, e: &dyn std::fmt::Display) -> StoreError {
    StoreError {
        kind: T::KIND,
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}
