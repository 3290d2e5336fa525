//! Pull and push over the OCI distribution API. (Owner: the registry engineer.)

/// Errors talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {}
