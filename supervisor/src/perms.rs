//! File modes set explicitly, never left to the umask the daemon was started with, and the
//! check that a socket's directory is not one other users can write (they could swap it).
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Errors making or checking a directory, naming it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}: refusing to serve a socket there (other users could replace it)")]
    Unsafe { path: PathBuf, problem: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The umask the daemon runs with: what it creates without naming a mode is never writable
/// by group or others, whatever umask it was started under.
pub const DAEMON_UMASK: u32 = 0o022;

/// Sets the process umask to [`DAEMON_UMASK`].
pub fn set_daemon_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(DAEMON_UMASK));
}

/// Creates `dir` (and missing parents, mode 0755) and gives it exactly `mode`.
pub fn make_dir(dir: &Path, mode: u32) -> Result<(), Error> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && std::fs::symlink_metadata(at).is_err() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    for path in missing.iter().rev() {
        match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => set_mode(path, 0o755)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(path)(e)),
        }
    }
    set_mode(dir, mode)
}

/// Gives `path` exactly `mode`.
pub fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// Refuses `dir` if it, or any directory above it, could be changed by a user other than
/// root or the caller: owned by another user, or group/other-writable without the sticky bit.
pub fn check_private(dir: &Path) -> Result<(), Error> {
    let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
    let me = nix::unistd::geteuid().as_raw();
    for at in dir.ancestors() {
        let meta = std::fs::metadata(at).map_err(io(at))?;
        let mode = meta.mode();
        let problem = if meta.uid() != 0 && meta.uid() != me {
            Some(format!("owned by uid {}", meta.uid()))
        } else if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            Some(format!(
                "mode {:04o} lets other users write it",
                mode & 0o7777
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Error::Unsafe {
                path: at.to_path_buf(),
                problem,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_dirs_have_their_modes_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/c");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let made = make_dir(&target, 0o700);
        nix::sys::stat::umask(old);
        made.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&target), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o755);
        assert_eq!(mode(&dir.path().join("a/b")), 0o755);
    }

    #[test]
    fn a_dir_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        check_private(dir.path()).unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        set_mode(&open, 0o777).unwrap();
        let inner = open.join("inner");
        std::fs::create_dir(&inner).unwrap();
        let err = check_private(&inner).unwrap_err().to_string();
        assert!(err.contains("open: mode 0777"), "{err}");
        set_mode(&open, 0o1777).unwrap();
        check_private(&inner).unwrap();
    }
}
