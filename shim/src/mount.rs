//! Mounts the rootfs that containerd passes in a Create request onto `<bundle>/rootfs`.
use std::path::Path;

use berth_proto::types::mount::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

#[derive(Debug, thiserror::Error)]
#[error("mount {kind} {source_path} on {target}: {errno}")]
pub struct MountError {
    kind: String,
    source_path: String,
    target: String,
    errno: nix::Error,
}

/// Mounts every mount of the request, in order, on `target`.
pub fn mount_rootfs(mounts: &[Mount], target: &Path) -> Result<(), MountError> {
    for m in mounts {
        let (flags, data) = parse_options(&m.options);
        let is_bind = flags.contains(MsFlags::MS_BIND);
        let kind = if is_bind {
            None
        } else {
            Some(m.type_.as_str())
        };
        let err = |errno| MountError {
            kind: m.type_.clone(),
            source_path: m.source.clone(),
            target: target.display().to_string(),
            errno,
        };
        let data = (!data.is_empty()).then_some(data.as_str());
        mount(Some(m.source.as_str()), target, kind, flags, data).map_err(err)?;
        if is_bind && flags.contains(MsFlags::MS_RDONLY) {
            let ro = flags | MsFlags::MS_REMOUNT;
            mount(None::<&str>, target, None::<&str>, ro, None::<&str>).map_err(err)?;
        }
    }
    Ok(())
}

/// Unmounts everything mounted on `target` (lazy, so a busy mount never blocks a Delete).
pub fn unmount_rootfs(target: &Path) {
    while umount2(target, MntFlags::MNT_DETACH).is_ok() {}
}

/// Splits mount(8) style options into flags and filesystem data.
fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        let (set, f) = match o.as_str() {
            "ro" => (true, MsFlags::MS_RDONLY),
            "rw" => (false, MsFlags::MS_RDONLY),
            "bind" => (true, MsFlags::MS_BIND),
            "rbind" => (true, MsFlags::MS_BIND | MsFlags::MS_REC),
            "nosuid" => (true, MsFlags::MS_NOSUID),
            "suid" => (false, MsFlags::MS_NOSUID),
            "nodev" => (true, MsFlags::MS_NODEV),
            "dev" => (false, MsFlags::MS_NODEV),
            "noexec" => (true, MsFlags::MS_NOEXEC),
            "exec" => (false, MsFlags::MS_NOEXEC),
            "sync" => (true, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (true, MsFlags::MS_DIRSYNC),
            "noatime" => (true, MsFlags::MS_NOATIME),
            "nodiratime" => (true, MsFlags::MS_NODIRATIME),
            "relatime" => (true, MsFlags::MS_RELATIME),
            "strictatime" => (true, MsFlags::MS_STRICTATIME),
            "remount" => (true, MsFlags::MS_REMOUNT),
            "defaults" => continue,
            other => {
                data.push(other);
                continue;
            }
        };
        if set {
            flags |= f;
        } else {
            flags &= !f;
        }
    }
    (flags, data.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_become_data() {
        let opts = ["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l"].map(String::from);
        let (flags, data) = parse_options(&opts);
        assert!(flags.is_empty());
        assert_eq!(data, "index=off,workdir=/w,upperdir=/u,lowerdir=/l");
    }

    #[test]
    fn bind_ro_are_flags() {
        let (flags, data) = parse_options(&["rbind".into(), "ro".into()]);
        assert!(flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert!(data.is_empty());
    }
}
