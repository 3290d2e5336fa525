//! Volume records in an embedded crash-safe store (redb, `<data-root>/volumes/metadata.redb`),
//! one JSON value per volume name.
use std::path::Path;

use super::record::Volume;
pub use crate::records::StoreError;
use crate::records::{Record, RecordStore};

pub type Store = RecordStore<Volume>;

impl Record for Volume {
    const TABLE: &'static str = "volumes";
    const KIND: &'static str = "volume";
    fn key(&self) -> &str {
        &self.name
    }
}

/// Opens `metadata.redb` under `root`.
pub fn open(root: &Path) -> Result<Store, StoreError> {
    Store::open(&root.join("metadata.redb"))
}
