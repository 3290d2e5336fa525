//! `~/.berth/config.json`: registry credentials in docker's format
//! (`{"auths":{"127.0.0.1:5000":{"auth":"base64(user:password)"}}}`), mode 0600.
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{json, Value};

use crate::images::reference::{Reference, DEFAULT_REGISTRY};
use crate::images::registry::Credentials;

/// Docker Hub's key in `auths`.
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

/// Errors reading or writing the config.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The config file: `$BERTH_CONFIG/config.json`, else `$HOME/.berth/config.json`.
pub fn path() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_CONFIG") {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".berth").join("config.json")
}

/// The `auths` key of a registry (`docker.io` → docker's index URL).
pub fn server_key(server: &str) -> String {
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    match host {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" | "index.docker.io/v1" => {
            INDEX_SERVER.to_string()
        }
        h => h.to_string(),
    }
}

/// The `auths` key of an image reference's registry.
pub fn key_of_image(name: &str) -> String {
    Reference::parse(name)
        .map(|r| r.registry)
        .map(|r| server_key(&r))
        .unwrap_or_else(|_| server_key(DEFAULT_REGISTRY))
}

fn load() -> Result<Value, Error> {
    let path = path();
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({ "auths": {} })),
        Err(source) => Err(Error::Io { path, source }),
    }
}

fn store(config: &Value) -> Result<(), Error> {
    store_at(&path(), config)
}

fn store_at(path: &Path, config: &Value) -> Result<(), Error> {
    let path = path.to_path_buf();
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // A left-over (or planted) tmp file would keep its own mode, and a symlink would take the
    // credentials wherever it points: start from no file, and create a new one that is 0600
    // from its first byte (create_new also refuses to follow a symlink put back meanwhile).
    let tmp = path.with_extension("json.tmp");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    // The umask may only narrow the mode; set it exactly.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    let text = serde_json::to_string_pretty(config).unwrap_or_default();
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

/// Stored credentials for a registry key.
pub fn credentials(key: &str) -> Result<Option<Credentials>, Error> {
    let config = load()?;
    let Some(auth) = config["auths"][key]["auth"].as_str() else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let Some((username, password)) = decoded.split_once(':') else {
        return Ok(None);
    };
    Ok(Some(Credentials {
        username: username.to_string(),
        password: password.to_string(),
        server_address: key.to_string(),
        identity_token: String::new(),
    }))
}

/// Saves credentials under their registry key.
pub fn save(key: &str, credentials: &Credentials) -> Result<(), Error> {
    let mut config = load()?;
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", credentials.username, credentials.password));
    if !config["auths"].is_object() {
        config["auths"] = json!({});
    }
    config["auths"][key] = json!({ "auth": auth });
    store(&config)
}

/// Removes a registry's credentials; false when there were none.
pub fn remove(key: &str) -> Result<bool, Error> {
    let mut config = load()?;
    let removed = config["auths"]
        .as_object_mut()
        .and_then(|a| a.remove(key))
        .is_some();
    if removed {
        store(&config)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_like_docker() {
        assert_eq!(server_key("docker.io"), INDEX_SERVER);
        assert_eq!(server_key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(key_of_image("busybox"), INDEX_SERVER);
        assert_eq!(key_of_image("127.0.0.1:5000/app:v1"), "127.0.0.1:5000");
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn a_left_over_tmp_file_does_not_widen_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let tmp = dir.path().join("config.json.tmp");
        std::fs::write(&tmp, "old").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        store_at(&path, &json!({ "auths": { "r": { "auth": "c2VjcmV0" } } })).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(!tmp.exists());
        let stored: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(stored["auths"]["r"]["auth"], "c2VjcmV0");
    }

    #[test]
    fn a_planted_tmp_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "untouched").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("config.json.tmp")).unwrap();
        store_at(&path, &json!({ "auths": { "r": { "auth": "c2VjcmV0" } } })).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
        assert_eq!(mode(&target), 0o644);
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(mode(&path), 0o600);
        assert!(std::fs::read_to_string(&path).unwrap().contains("c2VjcmV0"));
    }
}
