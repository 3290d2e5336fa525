//! One function per command; each talks to the daemon through [`Client`].
use std::fmt;

use super::client::{self, Client};

pub mod auth;
pub mod build;
pub mod compose;
pub mod container_fs;
pub mod containers;
pub mod disk;
pub mod events;
pub mod health;
pub mod images;
pub mod mounts;
pub mod networks;
pub mod ports;
pub mod stats;
pub mod system;
pub mod transfer;
pub mod volumes;

/// A failure already reported to the user: exit with this code, print nothing more.
#[derive(Debug)]
pub struct Exit(pub i32);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Docker's client-side wording for a missing object (`Error: No such image: x`).
pub fn object_error(err: client::Error, name: &str) -> anyhow::Error {
    match err {
        client::Error::Daemon { status: 404, .. } => {
            anyhow::anyhow!("Error: No such image: {name}")
        }
        other => other.into(),
    }
}

/// Shared by every command.
pub struct Context {
    pub client: Client,
}
