//! Container records in an embedded crash-safe store (redb, `<data-root>/containers.redb`),
//! one JSON value per container id.
use std::path::Path;

use super::record::Container;
pub use crate::records::StoreError;
use crate::records::{Record, RecordStore};

pub type Store = RecordStore<Container>;

impl Record for Container {
    const TABLE: &'static str = "containers";
    const KIND: &'static str = "container";
    fn key(&self) -> &str {
        &self.id
    }
}

/// Opens `containers.redb` under `data_root`.
pub fn open(data_root: &Path) -> Result<Store, StoreError> {
    Store::open(&data_root.join("containers.redb"))
}
