//! Facts about the host that the spec depends on, read once (at daemon start) and passed in,
//! so that building a spec stays a pure function of its inputs.
use std::path::{Path, PathBuf};

use super::{caps, SpecError};

/// Names the init binary is looked up by, in order (all static builds: the image may have no
/// libc). Debian's docker.io ships `docker-init` → `tini-static`; `tini` provides `tini-static`.
pub const INIT_NAMES: [&str; 3] = ["docker-init", "tini-static", "catatonit"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The capability bounding set of the daemon (what `--privileged` and `--cap-add ALL` give).
    pub bounding: Vec<&'static str>,
    /// Go's name for the architecture (`amd64`, `arm64`, …), as docker's seccomp profile uses.
    pub arch: &'static str,
    /// Kernel `(major, minor)`.
    pub kernel: (u32, u32),
    /// Pure cgroup v2 (`/sys/fs/cgroup` is cgroup2): containers get a private cgroup namespace.
    pub cgroup_v2: bool,
    /// The static init bound at /sbin/docker-init for `--init`, if the host has one.
    pub init: Option<PathBuf>,
    /// Online CPUs (the upper bound of `--cpus`).
    pub ncpu: usize,
    /// Where `--privileged` takes the host's devices from.
    pub dev: PathBuf,
}

impl HostFacts {
    pub fn probe() -> Result<Self, SpecError> {
        Ok(HostFacts {
            bounding: caps::host_bounding()?,
            arch: go_arch(std::env::consts::ARCH),
            kernel: kernel_version(&nix::sys::utsname::uname().map_or(String::new(), |u| {
                u.release().to_string_lossy().into_owned()
            })),
            cgroup_v2: is_cgroup2(Path::new("/sys/fs/cgroup")),
            init: find_init(&std::env::var("PATH").unwrap_or_default()),
            ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
            dev: PathBuf::from("/dev"),
        })
    }
}

/// Rust's architecture name → Go's.
pub fn go_arch(rust: &str) -> &'static str {
    match rust {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64" => "mips64",
        "loongarch64" => "loong64",
        _ => "unknown",
    }
}

/// `"6.1.0-18-amd64"` → `(6, 1)`.
pub fn kernel_version(release: &str) -> (u32, u32) {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn is_cgroup2(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    statfs(path).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// Whether `path` is an ELF executable without an interpreter (a static build that runs in an
/// image without libc).
pub fn is_static_elf(path: &Path) -> bool {
    const PT_INTERP: u32 = 3;
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    // 64-bit little-endian ELF only (the architectures berth builds for).
    if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).all(|i| u32_at(phoff + i * phentsize).is_some_and(|t| t != PT_INTERP))
}

/// The first of [`INIT_NAMES`] that is a static binary in `path_var`'s directories (or the
/// usual ones).
pub fn find_init(path_var: &str) -> Option<PathBuf> {
    let dirs: Vec<&str> = path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/libexec/docker", "/usr/bin", "/usr/local/bin"])
        .collect();
    INIT_NAMES.iter().find_map(|name| {
        dirs.iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| is_static_elf(p))
    })
}
