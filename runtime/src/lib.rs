//! berth-runtime: an OCI runtime that stands where runc stands.
//!
//! The binary (`main.rs`) only parses flags; everything else lives here, one module per concern.
pub mod cgroups;
pub mod error;
pub mod hooks;
pub mod seccomp;

pub use error::{Error, Result};
