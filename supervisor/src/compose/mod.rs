//! Compose: multi-container applications from compose files.
//!
//! The library side loads a project (file discovery, `.env`, interpolation, merging of several
//! `-f` files, `extends`, profiles, project name) into a typed [`model::Project`], and
//! [`engine`] drives the daemon through the same Engine API client the CLI uses, with
//! docker's labels and names, so that `berth compose` and docker-compose see the same project.
//!
//! YAML parser: `saphyr` (pure Rust, YAML 1.2, maintained, no `unsafe` C translation, no
//! RustSec advisory). `serde_yaml` is deprecated and archived; `serde_yml` carries
//! RUSTSEC-2025-0068 (unsound) and is archived; `serde_norway` and `serde_yaml_ng` are
//! forks of `serde_yaml` over `unsafe-libyaml` (libyaml translated to unsafe Rust);
//! `yaml-rust2` is the same authors' previous crate, which `saphyr` succeeds. `saphyr`'s
//! `MarkedYamlOwned` keeps a span on every node, which is what lets every error here name
//! the file, line and column besides the key path.
use std::path::PathBuf;

pub mod engine;
pub mod env;
pub mod files;
pub mod graph;
pub mod hash;
pub mod include;
pub mod interpolate;
pub mod merge;
pub mod model;
pub mod names;
pub mod output;
pub mod project;
pub mod read;
pub mod yaml;

use yaml::Mark;

/// Errors of loading a project; each names the file and position, or the key path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}:{line}:{col}: {message}")]
    Syntax {
        file: String,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("{at}: {path}: {message}")]
    Type {
        at: Mark,
        path: String,
        message: String,
    },
    #[error("{at}: {path}: {message}")]
    Invalid {
        at: Mark,
        path: String,
        message: String,
    },
    #[error("{at}: {path}: unknown key (not in the compose specification)")]
    UnknownKey { at: Mark, path: String },
    #[error("{at}: {path}: {message}")]
    Variable {
        at: Mark,
        path: String,
        message: String,
    },
    #[error("{file}:{line}: {message}")]
    EnvFile {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{0}")]
    Project(String),
}
