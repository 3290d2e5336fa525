//! OCI hooks: prestart, createRuntime, createContainer, startContainer, poststart, poststop.
//!
//! OWNER: hooks helper. Interface:
//! - `run(kind: &str, hooks: &[Hook], state: &oci_spec::runtime::State) -> Result<(), Error>` runs
//!   each hook in order with the state JSON on stdin, its args/env, and its timeout; the first
//!   failure stops the list and is returned (the caller decides whether it aborts: poststart and
//!   poststop failures only warn).
use oci_spec::runtime::{Hook, State};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} hook {path}: {reason}")]
    Failed {
        kind: String,
        path: String,
        reason: String,
    },
}

pub fn run(_kind: &str, hooks: &[Hook], _state: &State) -> Result<(), Error> {
    if let Some(h) = hooks.first() {
        return Err(Error::Failed {
            kind: _kind.into(),
            path: h.path().display().to_string(),
            reason: "hooks not implemented yet".into(),
        });
    }
    Ok(())
}
