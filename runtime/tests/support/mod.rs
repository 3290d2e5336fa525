//! Harness for the runtime's integration tests: real containers from a busybox rootfs.
//!
//! The binary under test is `$BERTH_TEST_RUNTIME` if set, else the `berth-runtime` this crate
//! builds. Every test is written against the OCI runtime spec and runc's command line and was
//! validated against Debian's runc first, so a failure against berth-runtime is berth's bug.
//!
//! Run against runc (or crun):
//!
//! ```sh
//! BERTH_TEST_RUNTIME=/usr/sbin/runc CARGO_TARGET_DIR=/work/target-tests \
//!     cargo test -p berth-runtime --tests
//! ```
//!
//! Needs root and Debian's `busybox-static`, `iproute2`. The reusable pieces (bundle builder,
//! runtime wrapper, console-socket receiver, host checks) live in `berth_integration`.
#![allow(dead_code, unused_imports)]

pub use berth_integration::bundle::{default_config, Bundle, DEFAULT_CAPS};
pub use berth_integration::console::ConsoleSocket;
pub use berth_integration::host::*;
pub use berth_integration::runtime::{unique_id, Outcome, Runtime};
pub use serde_json::{json, Value};

/// The runtime binary under test.
pub fn runtime_bin() -> std::path::PathBuf {
    std::env::var_os("BERTH_TEST_RUNTIME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_berth-runtime")))
}

/// The runtime under test with a private `--root`.
pub fn runtime() -> Runtime {
    Runtime::new(runtime_bin())
}

/// True when testing Debian's runc (for notes on known runc deviations only).
pub fn is_runc() -> bool {
    runtime_bin().file_name().is_some_and(|n| n == "runc")
}

/// Run `script` with `sh -c` in a default container; its stdout.
pub fn sh(script: &str) -> String {
    let b = Bundle::new(&["sh", "-c", script]);
    runtime().run_ok(&b)
}

/// Run `script` with `sh -c` in a container configured by `tweak`; its stdout.
pub fn sh_with(script: &str, tweak: impl FnOnce(&mut Bundle)) -> String {
    let mut b = Bundle::new(&["sh", "-c", script]);
    tweak(&mut b);
    runtime().run_ok(&b)
}

/// The mountinfo line (inside the container output) whose mount point is `target`.
pub fn mount_line<'a>(mountinfo: &'a str, target: &str) -> &'a str {
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(target))
        .unwrap_or_else(|| panic!("no mount at {target} in:\n{mountinfo}"))
}

/// The per-mount options (field 6) and the super options (last field) of a mountinfo line.
pub fn mount_opts(line: &str) -> (Vec<&str>, Vec<&str>) {
    let fields: Vec<&str> = line.split(' ').collect();
    let per_mount = fields[5].split(',').collect();
    let sup = fields.last().unwrap().split(',').collect();
    (per_mount, sup)
}
