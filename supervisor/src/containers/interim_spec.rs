//! TEMPORARY: a minimal OCI spec for a container until `spec/` (docker's full defaults:
//! seccomp, capabilities, masked paths, resources, mounts) lands; replaced by it.
use std::path::Path;

use serde_json::{json, Value};

use super::record::Container;

const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// `uid[:gid]` or names from the rootfs's /etc/passwd and /etc/group.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32), String> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let entry = passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| {
        f.len() > 3 && (f[0] == u || f[2] == u)
    });
    let (uid, mut gid) = match (u.parse::<u32>(), &entry) {
        (_, Some(f)) => (f[2].parse().unwrap_or(0), f[3].parse().unwrap_or(0)),
        (Ok(n), None) => (n, 0),
        (Err(_), None) => {
            return Err(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        }
    };
    if !g.is_empty() {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
                group
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() > 2 && f[0] == g)
                    .and_then(|f| f[2].parse().ok())
                    .ok_or_else(|| {
                        format!("unable to find group {g}: no matching entries in group file")
                    })?
            }
        };
    }
    Ok((uid, gid))
}

/// The spec for `c` whose root filesystem is mounted at `rootfs`; `files` holds its
/// hostname, hosts and resolv.conf.
pub fn build(c: &Container, rootfs: &Path, files: &Path) -> Result<Value, String> {
    let cfg = &c.config;
    let (uid, gid) = resolve_user(rootfs, cfg["User"].as_str().unwrap_or(""))?;
    let mut args = vec![c.path.clone()];
    args.extend(c.args.iter().cloned());
    let cwd = match cfg["WorkingDir"].as_str().unwrap_or("") {
        "" => "/",
        w => w,
    };
    let privileged = c.host_config["Privileged"].as_bool().unwrap_or(false);
    let caps = DEFAULT_CAPS.to_vec();
    let host_net = c.host_config["NetworkMode"].as_str() == Some("host");
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if !host_net {
        namespaces.push(json!({"type": "network"}));
    }
    let bind = |name: &str, dest: &str| {
        json!({"destination": dest, "type": "bind",
               "source": files.join(name).to_string_lossy(), "options": ["rbind", "rprivate"]})
    };
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": c.tty(),
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": cfg["Env"].as_array().cloned().unwrap_or_default(),
            "cwd": cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "noNewPrivileges": false,
        },
        "root": {"path": rootfs.to_string_lossy(), "readonly": c.host_config["ReadonlyRootfs"].as_bool().unwrap_or(false)},
        "hostname": cfg["Hostname"].as_str().unwrap_or(""),
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
            bind("hostname", "/etc/hostname"),
            bind("hosts", "/etc/hosts"),
            bind("resolv.conf", "/etc/resolv.conf"),
        ],
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": format!("/berth/{}", c.id),
            "maskedPaths": if privileged { json!([]) } else { json!([
                "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware"]) },
            "readonlyPaths": if privileged { json!([]) } else { json!([
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]) },
        },
    }))
}
