//! Capabilities: docker's 14 defaults, `--cap-add`/`--cap-drop` (names with or without `CAP_`,
//! any case, `ALL`), and `--privileged` (every capability in the host's bounding set).
use std::collections::HashSet;

use oci_spec::runtime::{Capability, LinuxCapabilities};

use super::SpecError;

/// Linux capability names by number (`capability.h`).
pub const ALL: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// docker's default set, in docker's order.
pub const DEFAULT: [&str; 14] = [
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

/// The names of the capabilities set in a `CapBnd`-style mask (bits past the table ignored).
pub fn from_mask(mask: u64) -> Vec<&'static str> {
    ALL.iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << bit) != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// `"sys_admin"`, `"CAP_SYS_ADMIN"` → `"CAP_SYS_ADMIN"`; `"all"` → `"ALL"`; unknown → error.
fn normalize(field: &'static str, value: &str) -> Result<&'static str, SpecError> {
    let upper = value.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok("ALL");
    }
    let name = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    ALL.iter()
        .find(|c| **c == name)
        .copied()
        .ok_or(SpecError::UnknownCapability { field, value: name })
}

/// The container's set as docker computes it from the defaults: `--cap-add ALL` is every
/// capability of the host's bounding set but the dropped ones; `--cap-drop ALL` keeps only the
/// added ones; otherwise defaults minus drops plus adds (an add wins over a drop).
pub fn resolve(
    host_bounding: &[&'static str],
    add: &[String],
    drop: &[String],
) -> Result<Vec<&'static str>, SpecError> {
    let add = normalize_all("CapAdd", add)?;
    let drop = normalize_all("CapDrop", drop)?;
    let mut caps: Vec<&'static str> = if add.contains(&"ALL") {
        host_bounding
            .iter()
            .filter(|c| !drop.contains(c))
            .copied()
            .collect()
    } else if drop.contains(&"ALL") {
        add.clone()
    } else {
        DEFAULT
            .iter()
            .filter(|c| !drop.contains(c))
            .copied()
            .chain(add.clone())
            .collect()
    };
    let mut seen = HashSet::new();
    caps.retain(|c| *c != "ALL" && seen.insert(*c));
    Ok(caps)
}

fn normalize_all(field: &'static str, names: &[String]) -> Result<Vec<&'static str>, SpecError> {
    names.iter().map(|c| normalize(field, c)).collect()
}

/// The OCI capability sets: bounding always; effective and permitted (no inheritable, no
/// ambient) only for uid 0, like docker since 20.10.14.
pub fn linux_capabilities(caps: &[&str], uid: u32) -> Result<LinuxCapabilities, SpecError> {
    let set: HashSet<Capability> = caps
        .iter()
        .map(|c| {
            serde_json::from_value(serde_json::Value::String(c.to_string()))
                .map_err(|e| SpecError::invalid("capability", *c, e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let mut out = LinuxCapabilities::default();
    out.set_bounding(Some(set.clone()));
    out.set_inheritable(None);
    out.set_ambient(None);
    if uid == 0 {
        out.set_effective(Some(set.clone()));
        out.set_permitted(Some(set));
    } else {
        out.set_effective(None);
        out.set_permitted(None);
    }
    Ok(out)
}

/// The capability bounding set of this process (`CapBnd` in /proc/self/status).
pub fn host_bounding() -> Result<Vec<&'static str>, SpecError> {
    let path = "/proc/self/status";
    let status = std::fs::read_to_string(path).map_err(|e| SpecError::io("read", path, e))?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(str::trim)
        .ok_or_else(|| SpecError::invalid("CapBnd", path, "no CapBnd line"))?;
    let mask = u64::from_str_radix(hex, 16)
        .map_err(|e| SpecError::invalid("CapBnd", hex, e.to_string()))?;
    Ok(from_mask(mask))
}
