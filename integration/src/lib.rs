//! Shared helpers for berth tests and benchmarks: real root filesystems, bundles, a wrapper
//! around any runc-compatible runtime binary, a console-socket receiver and host-side checks.
pub mod bundle;
pub mod console;
pub mod host;
pub mod rootfs;
pub mod runtime;
