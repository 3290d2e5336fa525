//! containerd-shim-berth-v2: containerd's shim v2 over ttrpc, running any runc-compatible
//! runtime (`berth-runtime` by default, `runc` through the runtime options).
#[cfg(test)]
mod cgroup_v2_tests;
mod events;
mod flags;
mod logger;
mod memory;
mod mount;
mod oom;
mod options;
mod process;
mod reaper;
mod runtime;
mod service;
mod shim;
mod spec;
mod stats;
mod stdio;
#[cfg(test)]
mod vm;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;

use flags::Flags;

fn main() {
    let flags = match Flags::parse(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd-shim-berth-v2: {e}");
            std::process::exit(2);
        }
    };
    let result = match flags.action.as_deref() {
        Some("start") => shim::start(&flags),
        Some("delete") => {
            init_logging(&flags, false);
            shim::delete(&flags)
        }
        None => {
            init_logging(&flags, true);
            shim::serve(&flags)
        }
        Some(other) => {
            eprintln!("containerd-shim-berth-v2: unknown action {other:?} (start, delete)");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "shim failed");
        eprintln!("containerd-shim-berth-v2: {e}");
        std::process::exit(1);
    }
}

/// Logs go to the `log` fifo containerd reads in the bundle (the server), else stderr.
fn init_logging(flags: &Flags, server: bool) {
    let level = if flags.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let fifo = server
        .then(|| {
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open("log")
                .ok()
        })
        .flatten();
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false);
    match fifo {
        Some(f) => builder.with_writer(std::sync::Mutex::new(f)).init(),
        None => builder.with_writer(std::io::stderr).init(),
    }
}
