//! Devices: docker's device cgroup rules, `--device`, `--device-cgroup-rule`, and all of the
//! host's devices with `--privileged`.
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::SpecError;
use crate::containers::config::DeviceMapping;

/// Directories of /dev that are not device nodes of the host's own (runc skips the same).
const SKIPPED_DIRS: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

fn rule(
    allow: bool,
    kind: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(kind);
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// docker's rules: deny all, allow zero, null, urandom, random, tty, console, deny fuse
/// (the runtime adds its own defaults — ptmx, pts, full, tun, mknod — after these).
pub fn default_rules() -> Vec<LinuxDeviceCgroup> {
    let c = Some(LinuxDeviceType::C);
    let mut out = vec![rule(false, None, None, None, "rwm")];
    for (major, minor) in [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)] {
        out.push(rule(true, c, Some(major), Some(minor), "rwm"));
    }
    out.push(rule(false, c, Some(10), Some(229), "rwm"));
    out
}

/// `--privileged`: every device allowed.
pub fn allow_all() -> Vec<LinuxDeviceCgroup> {
    vec![rule(true, None, None, None, "rwm")]
}

/// One device node of the host, as the container gets it.
fn device_at(host: &Path, in_container: &Path) -> Result<Option<LinuxDevice>, SpecError> {
    let meta =
        std::fs::symlink_metadata(host).map_err(|e| SpecError::io("stat device", host, e))?;
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Ok(None);
    };
    let rdev = meta.rdev();
    let mut d = LinuxDevice::default();
    d.set_path(in_container.to_path_buf());
    d.set_typ(kind);
    d.set_major(nix::sys::stat::major(rdev) as i64);
    d.set_minor(nix::sys::stat::minor(rdev) as i64);
    d.set_file_mode(Some(meta.permissions().mode() & 0o777));
    d.set_uid(Some(meta.uid()));
    d.set_gid(Some(meta.gid()));
    Ok(Some(d))
}

fn access_rule(d: &LinuxDevice, access: &str) -> LinuxDeviceCgroup {
    rule(
        true,
        Some(d.typ()),
        Some(d.major()),
        Some(d.minor()),
        access,
    )
}

/// `--device host[:container[:perms]]`: the node, or every node under a directory.
pub fn mapped(m: &DeviceMapping) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), SpecError> {
    let host = Path::new(&m.path_on_host);
    let dest = if m.path_in_container.is_empty() {
        &m.path_on_host
    } else {
        &m.path_in_container
    };
    let perms = if m.cgroup_permissions.is_empty() {
        "rwm"
    } else {
        &m.cgroup_permissions
    };
    if perms.is_empty() || !perms.chars().all(|c| "rwm".contains(c)) {
        return Err(SpecError::invalid(
            "Devices",
            perms,
            "invalid device permissions (r, w, m)",
        ));
    }
    if !dest.starts_with('/') {
        return Err(SpecError::invalid(
            "Devices",
            dest.as_str(),
            "the path in the container must be absolute",
        ));
    }
    let meta = std::fs::metadata(host).map_err(|e| {
        SpecError::invalid(
            "Devices",
            &m.path_on_host,
            format!("error gathering device information: {e}"),
        )
    })?;
    let nodes: Vec<(PathBuf, PathBuf)> = if meta.is_dir() {
        walk(host)?
            .into_iter()
            .map(|p| {
                let rel = p.strip_prefix(host).unwrap_or(&p).to_path_buf();
                (p, Path::new(dest).join(rel))
            })
            .collect()
    } else {
        vec![(host.to_path_buf(), PathBuf::from(dest))]
    };
    let mut devices = Vec::new();
    let mut rules = Vec::new();
    for (h, c) in nodes {
        match std::fs::canonicalize(&h)
            .ok()
            .map(|real| device_at(&real, &c))
            .transpose()?
            .flatten()
        {
            Some(d) => {
                rules.push(access_rule(&d, perms));
                devices.push(d);
            }
            None if !meta.is_dir() => {
                return Err(SpecError::invalid(
                    "Devices",
                    &m.path_on_host,
                    "not a device node",
                ));
            }
            None => {}
        }
    }
    Ok((devices, rules))
}

/// Every device node under `dir` (not following symlinks, skipping [`SKIPPED_DIRS`] at the top).
fn walk(dir: &Path) -> Result<Vec<PathBuf>, SpecError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| SpecError::io("read directory", &d, e))?;
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name();
            if ft.is_dir() {
                if d == dir && SKIPPED_DIRS.iter().any(|s| name == *s) {
                    continue;
                }
                stack.push(e.path());
            } else if ft.is_char_device() || ft.is_block_device() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `--privileged`: the host's device nodes under `dev`, at the same paths (not /dev/console,
/// which the runtime provides for a terminal).
pub fn host_devices(dev: &Path) -> Result<Vec<LinuxDevice>, SpecError> {
    let mut out = Vec::new();
    for p in walk(dev)? {
        let in_container = Path::new("/dev").join(p.strip_prefix(dev).unwrap_or(&p));
        if in_container == Path::new("/dev/console") {
            continue;
        }
        if let Some(d) = device_at(&p, &in_container)? {
            out.push(d);
        }
    }
    Ok(out)
}

/// `--device-cgroup-rule 'c 1:3 mr'` (`a`, `b`, `c`; `*` for any major or minor).
pub fn parse_cgroup_rule(text: &str) -> Result<LinuxDeviceCgroup, SpecError> {
    let bad = || {
        SpecError::invalid(
            "DeviceCgroupRules",
            text,
            "expected 'TYPE MAJOR:MINOR ACCESS', e.g. 'c 1:3 rwm'",
        )
    };
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [kind, numbers, access] = parts.as_slice() else {
        return Err(bad());
    };
    let kind = match *kind {
        "a" => LinuxDeviceType::A,
        "b" => LinuxDeviceType::B,
        "c" => LinuxDeviceType::C,
        _ => return Err(bad()),
    };
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let num = |s: &str| -> Result<Option<i64>, SpecError> {
        if s == "*" {
            Ok(None)
        } else {
            s.parse().map(Some).map_err(|_| bad())
        }
    };
    if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(bad());
    }
    let kind = if kind == LinuxDeviceType::A {
        None
    } else {
        Some(kind)
    };
    Ok(rule(true, kind, num(major)?, num(minor)?, access))
}
