//! Shared helpers for berth tests and benchmarks: real root filesystems and bundles.
pub mod rootfs;
