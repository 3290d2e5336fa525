//! `linux.seccomp` through libseccomp.
//!
//! OWNER: seccomp helper. Interface used by the init process (see `process::init`):
//! - `load(&LinuxSeccomp) -> Result<Option<OwnedFd>>` installs the filter in the calling thread's
//!   process and returns the notify listener fd when an action is `SCMP_ACT_NOTIFY`.
//! - `send_listener(listener_path, metadata, &ContainerProcessState, fd)` hands the listener to the
//!   seccomp agent at `listenerPath` (runc's protocol: SCM_RIGHTS + the state JSON).
//! - `supported_actions()`, `supported_archs()`, `supported_operators()`, `supported_flags()` for
//!   the `features` command.
use oci_spec::runtime::LinuxSeccomp;
use std::os::fd::OwnedFd;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("seccomp: {0}")]
    Unsupported(String),
}

pub fn load(_seccomp: &LinuxSeccomp) -> Result<Option<OwnedFd>, Error> {
    Err(Error::Unsupported("not implemented yet".into()))
}
