//! Root filesystems built from Debian's `busybox-static`.
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's `busybox-static` installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Populate `dir` with a minimal busybox root filesystem: `/bin/busybox`, one symlink per applet
/// in `/bin`, and the empty directories an OCI runtime mounts onto.
///
/// Fails loudly if busybox-static is not installed (`make setup` installs it).
pub fn busybox(dir: &Path) -> io::Result<()> {
    let applets = applets()?;
    for sub in [
        "bin", "dev", "proc", "sys", "tmp", "etc", "root", "run", "var", "usr",
    ] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::copy(BUSYBOX, dir.join("bin/busybox"))?;
    for applet in applets.iter().filter(|a| a.as_str() != "busybox") {
        let link = dir.join("bin").join(applet);
        if !link.exists() {
            symlink("busybox", link)?;
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnobody:x:65534:\n")?;
    Ok(())
}

/// The applets the installed busybox provides.
fn applets() -> io::Result<Vec<String>> {
    let out = Command::new(BUSYBOX).arg("--list").output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{BUSYBOX}: {e} (install Debian's busybox-static: `make setup`)"),
        )
    })?;
    if !out.status.success() {
        return Err(io::Error::other(format!("{BUSYBOX} --list failed")));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// A shared, read-only busybox rootfs under the system temp dir, built once per user of it.
/// Tests that only read the rootfs can point many bundles at it.
pub fn shared_busybox() -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("berth-busybox-rootfs-{}", std::process::id()));
    if !dir.join("bin/sh").exists() {
        busybox(&dir)?;
    }
    Ok(dir)
}
