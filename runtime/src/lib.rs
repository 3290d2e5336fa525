//! berth-runtime: an OCI runtime that stands where runc stands.
//!
//! The binary (`main.rs`) only parses flags; everything else lives here, one module per concern.
pub mod cgroups;
pub mod checkpoint;
pub mod container;
pub mod duration;
pub mod error;
pub mod exec;
pub mod fdmount;
pub mod features;
pub mod foreground;
pub mod hooks;
mod init;
pub mod logging;
pub mod lsm;
pub mod manage;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod procfs;
pub mod protect;
pub mod rootfs;
pub mod seccomp;
pub mod seccomp_bpf;
pub mod seccomp_cache;
pub mod self_exe;
pub mod signal;
pub mod spec;
pub mod spec_default;
pub mod state;
pub mod sync;
pub mod sysctl;
pub mod tty;

pub use error::{Error, Result};
