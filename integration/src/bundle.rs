//! OCI bundles in temp dirs: a busybox rootfs and a config.json like `runc spec` writes.
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A bundle in its own temp dir (removed on drop): `rootfs/` with busybox and `config`,
/// written to `config.json` by [`Bundle::write`].
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    /// A bundle whose process runs `args` (no terminal).
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("berth-test-bundle")
            .tempdir()
            .expect("temp dir for a bundle");
        crate::rootfs::busybox(&dir.path().join("rootfs"))
            .expect("busybox rootfs (apt-get install busybox-static)");
        Bundle {
            dir,
            config: default_config(args),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 temp path")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Set a value by JSON pointer (`/process/cwd`), creating objects on the way.
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Self {
        let mut cur = &mut self.config;
        let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                cur[*part] = value;
                break;
            }
            if cur.get(*part).is_none() {
                cur[*part] = json!({});
            }
            cur = cur.get_mut(*part).expect("just inserted");
        }
        self
    }

    /// Append to an array by JSON pointer, creating it if absent.
    pub fn push(&mut self, pointer: &str, value: Value) -> &mut Self {
        if self.config.pointer(pointer).is_none() {
            self.set(pointer, json!([]));
        }
        let arr = self
            .config
            .pointer_mut(pointer)
            .and_then(Value::as_array_mut)
            .unwrap_or_else(|| panic!("{pointer} is not an array"));
        arr.push(value);
        self
    }

    /// Add a namespace (optionally joined by `path`) unless one of that type is present.
    pub fn namespace(&mut self, kind: &str, path: Option<&str>) -> &mut Self {
        let list = self
            .config
            .pointer_mut("/linux/namespaces")
            .and_then(Value::as_array_mut)
            .expect("linux.namespaces");
        list.retain(|n| n["type"] != kind);
        match path {
            Some(p) => list.push(json!({"type": kind, "path": p})),
            None => list.push(json!({"type": kind})),
        }
        self
    }

    /// Remove a namespace type: the container shares the host's.
    pub fn without_namespace(&mut self, kind: &str) -> &mut Self {
        if let Some(list) = self
            .config
            .pointer_mut("/linux/namespaces")
            .and_then(Value::as_array_mut)
        {
            list.retain(|n| n["type"] != kind);
        }
        self
    }

    /// Write `config.json`.
    pub fn write(&self) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("config serializes"),
        )
        .expect("write config.json");
    }
}

/// The capabilities `runc spec` grants.
pub const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// runc's `spec` default, without a terminal and with the `/sys/fs/cgroup` mount.
pub fn default_config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
                "ambient": DEFAULT_CAPS
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "berth-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}
