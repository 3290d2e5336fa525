//! berth's supervisor: the daemon serving a Docker Engine API subset, its CLI, and images.
//!
//! Owners: `images` (content store, metadata, registry, snapshots, archives) — images engineer;
//! `api`, `daemon`, `cli` — daemon engineer.
pub mod api;
pub mod build;
pub mod cli;
pub mod compose;
pub mod containers;
pub mod daemon;
pub mod duration;
pub mod images;
pub mod network;
pub mod perms;
pub mod records;
pub mod tree;
pub mod usage;
pub mod volumes;
