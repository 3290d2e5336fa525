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

// LEAD: temporary stand-ins so the crate builds until the seccomp engineer's versions land;
// replace them (same names and signatures).
pub fn send_listener(
    _listener_path: &std::path::Path,
    _metadata: Option<&str>,
    _state: &oci_spec::runtime::State,
    _pid: i32,
    _fd: std::os::fd::BorrowedFd,
) -> Result<(), Error> {
    Err(Error::Unsupported("listener not implemented yet".into()))
}
pub fn supported_actions() -> Vec<String> {
    Vec::new()
}
pub fn supported_archs() -> Vec<String> {
    Vec::new()
}
pub fn supported_operators() -> Vec<String> {
    Vec::new()
}
pub fn supported_flags() -> Vec<String> {
    Vec::new()
}
