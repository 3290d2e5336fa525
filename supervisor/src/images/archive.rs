//! `docker save` tarballs and OCI image layouts in and out. (Owner: the archive engineer.)

/// Errors reading or writing an archive.
#[derive(Debug, thiserror::Error)]
pub enum Error {}
