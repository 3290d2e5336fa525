//! The runtime's error type: every variant says what it was about.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed on a path or value: `mount "proc" on /proc: EPERM`.
    #[error("{op} {target}: {errno}")]
    Sys {
        op: &'static str,
        target: String,
        errno: nix::errno::Errno,
    },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Spec(String),
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container with id \"{0}\" already exists")]
    Exists(String),
    #[error("{0}")]
    State(String),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::Error),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::Error),
    #[error(transparent)]
    Hook(#[from] crate::hooks::Error),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn sys(op: &'static str, target: impl std::fmt::Display, errno: nix::errno::Errno) -> Self {
        Error::Sys {
            op,
            target: target.to_string(),
            errno,
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
