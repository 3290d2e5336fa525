//! What the shim reads of a bundle's `config.json` itself.
use std::path::Path;

/// Whether the container has no pid namespace of its own: none listed (the host's) or one
/// joined by path (a pod's). An unreadable config counts as its own (nothing extra killed).
pub fn shares_pid_namespace(bundle: &Path) -> bool {
    let Ok(bytes) = std::fs::read(bundle.join("config.json")) else {
        return false;
    };
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    let Some(namespaces) = config
        .pointer("/linux/namespaces")
        .and_then(|n| n.as_array())
    else {
        return false;
    };
    match namespaces.iter().find(|n| n["type"] == "pid") {
        None => true,
        Some(ns) => ns["path"].as_str().is_some_and(|p| !p.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_namespaces(ns: serde_json::Value) -> bool {
        let dir = tempfile_dir();
        let config = serde_json::json!({"linux": {"namespaces": ns}});
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let shared = shares_pid_namespace(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        shared
    }

    fn tempfile_dir() -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "berth-shim-spec-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn pid_namespace_own_host_or_joined() {
        use serde_json::json;
        assert!(!with_namespaces(
            json!([{"type": "pid"}, {"type": "mount"}])
        ));
        assert!(with_namespaces(json!([{"type": "mount"}])));
        assert!(with_namespaces(
            json!([{"type": "pid", "path": "/proc/1/ns/pid"}])
        ));
        assert!(!with_namespaces(json!([{"type": "pid", "path": ""}])));
    }
}
