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
    /// The init closed its end of the sync channel without a word.
    #[error("container init exited during setup")]
    InitExited,
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn sys(op: &'static str, target: impl std::fmt::Display, errno: nix::errno::Errno) -> Self {
        Error::Sys {
            op,
            target: shorten(&target.to_string()),
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

/// A value short enough for a one-line error: long ones keep their start and say how long
/// they were.
pub fn shorten(value: &str) -> String {
    const MAX: usize = 160;
    if value.len() <= MAX {
        return value.to_string();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &value[..end], value.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn shorten_keeps_short_values_and_cuts_long_ones() {
        assert_eq!(super::shorten("abc"), "abc");
        let long = "é".repeat(1000);
        let s = super::shorten(&long);
        assert!(s.len() < 200 && s.ends_with("(2000 bytes)"), "{s}");
    }
}
