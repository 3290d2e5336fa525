//! Images, the containerd way: small services with narrow interfaces.
//!
//! - [`reference`]: image names (`busybox` → `docker.io/library/busybox:latest`).
//! - [`content`]: blobs addressed by digest, written atomically and verified.
//! - [`metadata`]: names, snapshots and leases in an embedded crash-safe store (redb).
//! - [`layer`]: applying a layer tar (gzip, zstd or plain) safely, whiteouts included.
//! - [`snapshot`]: the overlayfs snapshotter (copying fallback) built on `layer`.
//! - [`registry`]: pull and push over the OCI distribution API.
//! - [`archive`]: `docker save` tarballs and OCI layouts in and out.
//! - [`service`]: the image service the API serves: pull, push, list, tag, remove, prune...
pub mod archive;
pub mod content;
pub mod layer;
pub mod metadata;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod service;
pub mod snapshot;
