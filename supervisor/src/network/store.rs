//! Network records in an embedded crash-safe store (redb, `<data-root>/networks.redb`), one
//! JSON value per network id; a network's endpoints (its IPAM state) are part of its record,
//! so an address is reserved and recorded in one transaction.
use std::path::Path;

use super::record::Network;
pub use crate::records::StoreError;
use crate::records::{Record, RecordStore};

pub type Store = RecordStore<Network>;

impl Record for Network {
    const TABLE: &'static str = "networks";
    const KIND: &'static str = "network";
    fn key(&self) -> &str {
        &self.id
    }
}

/// Opens `networks.redb` under `data_root`.
pub fn open(data_root: &Path) -> Result<Store, StoreError> {
    Store::open(&data_root.join("networks.redb"))
}
