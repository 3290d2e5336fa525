//! docker's `local` volume driver: a directory, or with `type=`/`device=`/`o=` a filesystem
//! mounted on the volume's `_data` while a container uses it (tmpfs, a bind with `o=bind`,
//! a block device).
use std::collections::BTreeMap;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

/// The one driver.
pub const DRIVER: &str = "local";

/// The options the local driver knows (dockerd 20.10's: `size` is a quota).
const OPTIONS: [&str; 4] = ["type", "device", "o", "size"];

/// dockerd 20.10's checks of the driver options, in its order and words: known keys; a
/// `size` (a quota, which berth's local driver has no support for); `type`, `device` (and
/// `o`) together.
pub fn check_options(options: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(unknown) = options.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
        return Err(format!("invalid option: {unknown:?}"));
    }
    if let Some(size) = options.get("size") {
        match ram_bytes(size) {
            None => return Err(format!("invalid size: '{size}'")),
            Some(0) => {}
            Some(_) => return Err("quota size requested but no quota support".into()),
        }
    }
    let required: [(&str, &[&str]); 3] = [
        ("device", &["type"]),
        ("type", &["device"]),
        ("o", &["device", "type"]),
    ];
    for (given, needs) in required {
        if options.contains_key(given) {
            if let Some(missing) = needs.iter().find(|n| !options.contains_key(**n)) {
                return Err(format!("missing required option: {missing:?}"));
            }
        }
    }
    Ok(())
}

/// A size as docker's `RAMInBytes` reads it: a number, then optionally `b`, `k`, `m`, `g`,
/// `t` or `p` (any case, a trailing `b`/`ib` allowed), binary multiples.
fn ram_bytes(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let number: f64 = t[..digits].parse().ok()?;
    let unit = t[digits..].trim_end_matches("ib").trim_end_matches('b');
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    Some((number * 1024f64.powi(power)) as u64)
}

/// Flags and data of `o=` as mount(2) takes them (`bind`, `ro`, … become flags; the rest,
/// like `size=64m`, stays data).
fn mount_flags(o: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        match opt {
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags.remove(MsFlags::MS_RDONLY),
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Whether `path` is a mount point: listed in `/proc/self/mountinfo` (a bind of a directory
/// of the same filesystem has its parent's device, so comparing devices misses it).
pub fn is_mountpoint(path: &Path) -> bool {
    let (Ok(real), Ok(info)) = (
        std::fs::canonicalize(path),
        std::fs::read_to_string("/proc/self/mountinfo"),
    ) else {
        return false;
    };
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|point| Path::new(&unescape_mountinfo(point)) == real)
}

/// mountinfo's octal escapes (`\040` for a space, …) undone.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts `device` (of `type`, with `o`) on `target` unless something is mounted there.
pub fn mount(options: &BTreeMap<String, String>, target: &Path) -> Result<(), String> {
    if is_mountpoint(target) {
        return Ok(());
    }
    let kind = options.get("type").map(String::as_str).unwrap_or("");
    let device = options.get("device").map(String::as_str).unwrap_or("");
    let (flags, data) = mount_flags(options.get("o").map(String::as_str).unwrap_or(""));
    let kind = (!kind.is_empty() && kind != "none").then_some(kind);
    nix::mount::mount(
        Some(device),
        target,
        kind,
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| format!("error while mounting volume '{}': {e}", target.display()))
}

/// Unmounts what [`mount`] mounted (nothing if nothing is mounted).
pub fn unmount(target: &Path) -> Result<(), String> {
    if !is_mountpoint(target) {
        return Ok(());
    }
    nix::mount::umount2(target, MntFlags::MNT_DETACH)
        .map_err(|e| format!("unmount {}: {e}", target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_checked_as_docker_does() {
        check_options(&opts(&[])).unwrap();
        check_options(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m"),
        ]))
        .unwrap();
        assert_eq!(
            check_options(&opts(&[("foo", "1")])).unwrap_err(),
            "invalid option: \"foo\""
        );
        assert_eq!(
            check_options(&opts(&[("size", "")])).unwrap_err(),
            "invalid size: ''"
        );
        assert_eq!(
            check_options(&opts(&[("size", "1m")])).unwrap_err(),
            "quota size requested but no quota support"
        );
        check_options(&opts(&[("size", "0")])).unwrap();
        assert_eq!(
            check_options(&opts(&[("type", "tmpfs")])).unwrap_err(),
            "missing required option: \"device\""
        );
        assert_eq!(
            check_options(&opts(&[("device", "/x")])).unwrap_err(),
            "missing required option: \"type\""
        );
    }

    #[test]
    fn mountinfo_escapes_undone() {
        assert_eq!(unescape_mountinfo("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert!(is_mountpoint(Path::new("/proc")));
        assert!(!is_mountpoint(Path::new("/proc/self")));
    }

    #[test]
    fn o_splits_into_flags_and_data() {
        let (flags, data) = mount_flags("bind,ro,size=64m,uid=1");
        assert!(flags.contains(MsFlags::MS_BIND | MsFlags::MS_RDONLY));
        assert_eq!(data, "size=64m,uid=1");
    }
}
