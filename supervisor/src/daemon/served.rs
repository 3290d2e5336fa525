//! What the daemon serving a socket was configured with, kept beside the socket
//! (`<socket>.daemon.json`), so that a CLI finding the socket dead never starts another
//! daemon in its place on another data root: it restarts one it had started itself, with the
//! same settings, and otherwise says which daemon is down.
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The settings a socket was last served with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    #[serde(default)]
    pub max_layer_size: Option<u64>,
    #[serde(default)]
    pub registry_stall_timeout: Option<u64>,
    /// Started by a CLI that found no daemon (not by an administrator or a service manager).
    #[serde(default)]
    pub autostarted: bool,
}

/// Where the record of `socket` lives.
pub fn path_of(socket: &Path) -> PathBuf {
    let mut name = socket.file_name().unwrap_or_default().to_os_string();
    name.push(".daemon.json");
    socket.with_file_name(name)
}

/// Writes the record of `socket` (mode 0644, replaced atomically).
pub fn write(socket: &Path, served: &Served) -> std::io::Result<()> {
    let path = path_of(socket);
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)?;
    std::io::Write::write_all(&mut file, &serde_json::to_vec_pretty(served)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// The record of `socket`, if there is one to trust: owned by root or by this user and
/// writable by nobody else.
pub fn read(socket: &Path) -> Option<Served> {
    let path = path_of(socket);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_file() || (meta.uid() != 0 && meta.uid() != me) || meta.mode() & 0o022 != 0 {
        tracing::warn!(path = %path.display(), "ignoring an untrusted daemon record");
        return None;
    }
    serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_beside_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("berth.sock");
        assert_eq!(path_of(&socket), dir.path().join("berth.sock.daemon.json"));
        assert_eq!(read(&socket), None);
        let served = Served {
            data_root: "/d".into(),
            exec_root: "/e".into(),
            insecure_registries: vec!["r:5000".into()],
            max_layer_size: Some(5),
            registry_stall_timeout: Some(7),
            autostarted: true,
        };
        write(&socket, &served).unwrap();
        assert_eq!(read(&socket), Some(served));
        crate::perms::set_mode(&path_of(&socket), 0o666).unwrap();
        assert_eq!(read(&socket), None, "a record others can write is believed");
    }
}
