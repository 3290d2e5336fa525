//! Applying one layer tar (gzip, zstd or uncompressed) to a directory, safely.
//! (Owner: the layers & snapshots engineer.)

/// Errors applying a layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {}
