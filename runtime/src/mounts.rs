//! Mount options and target resolution that never leaves the rootfs.
use crate::{Error, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path};

/// Mount flags, propagation flags, recursive attributes (MOUNT_ATTR_*, applied with
/// mount_setattr(AT_RECURSIVE) to the mount and every mount below it) and the rest
/// (filesystem data) of a mount's `options`.
#[derive(Debug, Clone)]
pub struct Options {
    pub flags: MsFlags,
    pub cleared: MsFlags,
    pub propagation: MsFlags,
    pub recursive_set: u64,
    pub recursive_clear: u64,
    pub data: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: MsFlags::empty(),
            recursive_set: 0,
            recursive_clear: 0,
            data: Vec::new(),
        }
    }
}

/// What one option does.
#[derive(Clone, Copy)]
enum Effect {
    Set(MsFlags),
    Clear(MsFlags),
    Propagation(MsFlags),
    RecursiveSet(u64),
    RecursiveClear(u64),
    /// The atime mode of every mount below (the kernel takes one of them, not bits).
    RecursiveAtime(u64),
    None,
}

const NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);

/// Every option this runtime knows (what `features` lists), with its effect.
const OPTIONS: &[(&str, Effect)] = {
    use libc::{
        MOUNT_ATTR_NOATIME as NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOEXEC,
        MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY,
        MOUNT_ATTR_RELATIME as RELATIME, MOUNT_ATTR_STRICTATIME as STRICTATIME,
    };
    use Effect::*;
    use MsFlags as M;
    &[
        ("defaults", None),
        ("ro", Set(M::MS_RDONLY)),
        ("rw", Clear(M::MS_RDONLY)),
        ("nosuid", Set(M::MS_NOSUID)),
        ("suid", Clear(M::MS_NOSUID)),
        ("nodev", Set(M::MS_NODEV)),
        ("dev", Clear(M::MS_NODEV)),
        ("noexec", Set(M::MS_NOEXEC)),
        ("exec", Clear(M::MS_NOEXEC)),
        ("sync", Set(M::MS_SYNCHRONOUS)),
        ("async", Clear(M::MS_SYNCHRONOUS)),
        ("dirsync", Set(M::MS_DIRSYNC)),
        ("remount", Set(M::MS_REMOUNT)),
        ("mand", Set(M::MS_MANDLOCK)),
        ("nomand", Clear(M::MS_MANDLOCK)),
        ("atime", Clear(M::MS_NOATIME)),
        ("noatime", Set(M::MS_NOATIME)),
        ("diratime", Clear(M::MS_NODIRATIME)),
        ("nodiratime", Set(M::MS_NODIRATIME)),
        ("relatime", Set(M::MS_RELATIME)),
        ("norelatime", Clear(M::MS_RELATIME)),
        ("strictatime", Set(M::MS_STRICTATIME)),
        ("nostrictatime", Clear(M::MS_STRICTATIME)),
        ("lazytime", Set(M::MS_LAZYTIME)),
        ("nolazytime", Clear(M::MS_LAZYTIME)),
        ("silent", Set(M::MS_SILENT)),
        ("loud", Clear(M::MS_SILENT)),
        ("nosymfollow", Set(NOSYMFOLLOW)),
        ("symfollow", Clear(NOSYMFOLLOW)),
        ("bind", Set(M::MS_BIND)),
        ("rbind", Set(M::MS_BIND.union(M::MS_REC))),
        ("private", Propagation(M::MS_PRIVATE)),
        ("rprivate", Propagation(M::MS_PRIVATE.union(M::MS_REC))),
        ("shared", Propagation(M::MS_SHARED)),
        ("rshared", Propagation(M::MS_SHARED.union(M::MS_REC))),
        ("slave", Propagation(M::MS_SLAVE)),
        ("rslave", Propagation(M::MS_SLAVE.union(M::MS_REC))),
        ("unbindable", Propagation(M::MS_UNBINDABLE)),
        (
            "runbindable",
            Propagation(M::MS_UNBINDABLE.union(M::MS_REC)),
        ),
        ("rro", RecursiveSet(MOUNT_ATTR_RDONLY)),
        ("rrw", RecursiveClear(MOUNT_ATTR_RDONLY)),
        ("rnosuid", RecursiveSet(MOUNT_ATTR_NOSUID)),
        ("rsuid", RecursiveClear(MOUNT_ATTR_NOSUID)),
        ("rnodev", RecursiveSet(MOUNT_ATTR_NODEV)),
        ("rdev", RecursiveClear(MOUNT_ATTR_NODEV)),
        ("rnoexec", RecursiveSet(MOUNT_ATTR_NOEXEC)),
        ("rexec", RecursiveClear(MOUNT_ATTR_NOEXEC)),
        ("rnodiratime", RecursiveSet(MOUNT_ATTR_NODIRATIME)),
        ("rdiratime", RecursiveClear(MOUNT_ATTR_NODIRATIME)),
        ("rnosymfollow", RecursiveSet(MOUNT_ATTR_NOSYMFOLLOW)),
        ("rsymfollow", RecursiveClear(MOUNT_ATTR_NOSYMFOLLOW)),
        // atime is one mode per mount: the "not X" options choose the kernel's default
        // (relatime), except norelatime, which means strict atime updates.
        ("rnoatime", RecursiveAtime(NOATIME)),
        ("ratime", RecursiveAtime(RELATIME)),
        ("rrelatime", RecursiveAtime(RELATIME)),
        ("rnorelatime", RecursiveAtime(STRICTATIME)),
        ("rstrictatime", RecursiveAtime(STRICTATIME)),
        ("rnostrictatime", RecursiveAtime(RELATIME)),
    ]
};

/// The names of every option this runtime knows.
pub fn known_options() -> impl Iterator<Item = &'static str> {
    OPTIONS.iter().map(|(name, _)| *name)
}

impl Options {
    pub fn parse(options: &[String]) -> Options {
        let mut o = Options::default();
        for opt in options {
            match OPTIONS
                .iter()
                .find(|(name, _)| name == opt)
                .map(|(_, e)| *e)
            {
                Some(effect) => o.apply(effect),
                None => o.data.push(opt.clone()),
            }
        }
        o
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Set(f) => {
                self.flags |= f;
                self.cleared &= !f;
            }
            Effect::Clear(f) => {
                self.flags &= !f;
                self.cleared |= f;
            }
            Effect::Propagation(p) => self.propagation |= p,
            Effect::RecursiveSet(a) => {
                self.recursive_set |= a;
                self.recursive_clear &= !a;
            }
            Effect::RecursiveClear(a) => {
                self.recursive_set &= !a;
                self.recursive_clear |= a;
            }
            Effect::RecursiveAtime(mode) => {
                self.recursive_set = (self.recursive_set & !libc::MOUNT_ATTR__ATIME) | mode;
                self.recursive_clear |= libc::MOUNT_ATTR__ATIME;
            }
            Effect::None => {}
        }
    }

    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// Whether any recursive attribute was asked for.
    pub fn has_recursive(&self) -> bool {
        self.recursive_set | self.recursive_clear != 0
    }
}

/// Propagation flags of a propagation option (`rootfsPropagation` too).
pub fn propagation(opt: &str) -> Option<MsFlags> {
    OPTIONS.iter().find_map(|(name, e)| match e {
        Effect::Propagation(p) if *name == opt => Some(*p),
        _ => None,
    })
}

/// What a mount target should be when it does not exist yet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// Open `path` inside `root` (an fd on the rootfs), creating what is missing, with every
/// symlink resolved as if `root` were `/`: nothing can point the result outside the rootfs.
pub fn open_in_root(root: &OwnedFd, path: &Path, kind: Kind) -> Result<OwnedFd> {
    open_in_root_depth(root, path, kind, 0)
}

fn resolve_in_root(root: &OwnedFd, path: &Path) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root.as_fd(), path, how)
}

fn open_in_root_depth(root: &OwnedFd, path: &Path, kind: Kind, depth: u32) -> Result<OwnedFd> {
    if let Ok(fd) = resolve_in_root(root, path) {
        return Ok(fd);
    }
    if depth > 40 {
        return Err(Error::sys("open", path.display(), nix::errno::Errno::ELOOP));
    }
    let rel: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut dir =
        resolve_in_root(root, Path::new(".")).map_err(|e| Error::sys("open", "rootfs", e))?;
    for (i, name) in rel.iter().enumerate() {
        let last = i + 1 == rel.len();
        let prefix: std::path::PathBuf = rel[..=i].iter().collect();
        match resolve_in_root(root, &prefix) {
            Ok(fd) => dir = fd,
            Err(nix::errno::Errno::ENOENT) => {
                // Create the missing component in the directory already resolved in root.
                let parent = reopen_dir(&dir, path)?;
                if let Ok(target) = nix::fcntl::readlinkat(parent.as_fd(), *name) {
                    // A dangling symlink: create what it points to, as seen from inside root.
                    let target = Path::new(&target);
                    let inside = if target.is_absolute() {
                        target.to_path_buf()
                    } else {
                        prefix.parent().unwrap_or(Path::new("")).join(target)
                    };
                    let want = if last { kind } else { Kind::Dir };
                    open_in_root_depth(root, &inside, want, depth + 1)?;
                } else if last && kind == Kind::File {
                    let fd = nix::fcntl::openat(
                        parent.as_fd(),
                        *name,
                        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                        Mode::from_bits_truncate(0o644),
                    );
                    fd.map_err(|e| Error::sys("create mount target", path.display(), e))?;
                } else {
                    match nix::sys::stat::mkdirat(
                        parent.as_fd(),
                        *name,
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => return Err(Error::sys("mkdir", path.display(), e)),
                    }
                }
                dir = resolve_in_root(root, &prefix)
                    .map_err(|e| Error::sys("open", path.display(), e))?;
            }
            Err(e) => return Err(Error::sys("open", path.display(), e)),
        }
    }
    Ok(dir)
}

fn reopen_dir(fd: &OwnedFd, path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        proc_fd(fd).as_str(),
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open parent of", path.display(), e))
}

/// The magic link through which a mount call reaches exactly the file `fd` holds.
pub fn proc_fd(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// The flags a bind remount must keep (the kernel refuses to clear locked ones).
pub fn current_flags(path: &str) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::statvfs(path) else {
        return MsFlags::empty();
    };
    use nix::sys::statvfs::FsFlags as F;
    let f = st.flags();
    let mut m = MsFlags::empty();
    for (a, b) in [
        (F::ST_RDONLY, MsFlags::MS_RDONLY),
        (F::ST_NOSUID, MsFlags::MS_NOSUID),
        (F::ST_NODEV, MsFlags::MS_NODEV),
        (F::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (F::ST_NOATIME, MsFlags::MS_NOATIME),
        (F::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (F::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(a) {
            m |= b;
        }
    }
    m
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
pub fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let oct: String = chars.clone().take(3).collect();
            if let Ok(v) = u8::from_str_radix(&oct, 8) {
                out.push(v as char);
                chars.nth(2);
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(opts: &[&str]) -> Options {
        Options::parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn splits_flags_propagation_and_data() {
        let o = parse(&["rbind", "ro", "nosuid", "rslave", "size=64k", "mode=755"]);
        assert!(o.flags.contains(
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        ));
        assert_eq!(o.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(o.data, vec!["size=64k", "mode=755"]);
        assert!(o.is_bind());
    }

    #[test]
    fn later_options_clear_earlier_ones() {
        let o = parse(&["ro", "rw", "noexec", "exec"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(!o.flags.contains(MsFlags::MS_NOEXEC));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC));
    }

    #[test]
    fn open_in_root_never_leaves_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // An absolute symlink and a ../ symlink both aiming outside the root.
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("rel")).unwrap();
        let fd =
            nix::fcntl::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        for link in ["abs/made", "rel/made"] {
            open_in_root(&fd, Path::new(link), Kind::Dir).unwrap();
        }
        assert!(
            std::fs::read_dir(&outside).unwrap().next().is_none(),
            "wrote outside the root"
        );
        // They landed inside the root, where the links resolve when the root is `/`.
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("made")
            .is_dir());
        assert!(root.join("outside/made").is_dir());
    }
}
