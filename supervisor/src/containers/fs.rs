//! A container's filesystem seen from outside: docker's archive API (stat a path, tar it out,
//! extract a tar into a directory), `export` of the whole tree and `diff` against the image.
//!
//! Every path is resolved inside the rootfs by descriptor (`openat2` with `RESOLVE_IN_ROOT`),
//! and every walk goes from directory descriptor to `O_NOFOLLOW` descriptor, each checked by
//! `fstat` against what was listed: a symlink in the container (or one swapped in mid-walk by
//! a process inside) is at most written out as a symlink, never followed to the host. An
//! upload is extracted by the layer extractor, which resolves each entry the same way.
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, Mode};

use super::record::Container;
use super::service::Error;
use crate::images::layer::{self, at};
use crate::images::service::ImageService;
use crate::images::snapshot::mount;

/// What docker's `X-Docker-Container-Path-Stat` header says of a path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` bits.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    /// The header's value: base64 of the JSON.
    pub fn header(&self) -> String {
        use base64::Engine as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }
}

/// One change of `docker diff`: 0 changed, 1 added, 2 deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub kind: u8,
}

fn nix_at(path: &Path) -> impl FnOnce(Errno) -> Error + '_ {
    move |e| Error::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn not_found(path: &str, container: &Container) -> Error {
    Error::NotFound(format!(
        "Could not find the file {path} in container {}",
        container.name.trim_start_matches('/')
    ))
}

/// The container's root directory, mounted for the time of one operation when its task is
/// not running (and unmounted when dropped).
pub struct Rootfs {
    /// Closed before the unmount (an open descriptor would keep the mount busy).
    dir: Option<OwnedFd>,
    temporary: Option<PathBuf>,
}

impl Rootfs {
    /// The rootfs of `c`: the running task's, or its snapshot mounted under `scratch`.
    pub fn open(
        c: &Container,
        running_rootfs: &Path,
        images: &Arc<ImageService>,
        scratch: &Path,
    ) -> Result<Rootfs, Error> {
        if c.state.status.is_live() {
            let dir = open_root(running_rootfs)?;
            return Ok(Rootfs {
                dir: Some(dir),
                temporary: None,
            });
        }
        let target = scratch.join(format!("{}.{}", c.id, super::service::random_hex()));
        std::fs::create_dir_all(&target).map_err(super::service::io_at(&target))?;
        let mounted = images
            .snapshots
            .mounts(&c.snapshot_key())
            .map_err(|e| Error::Image(e.into()))
            .and_then(|mounts| {
                mount::mount_all(&mounts, &target).map_err(|e| Error::Image(e.into()))
            });
        if let Err(e) = mounted {
            let _ = std::fs::remove_dir(&target);
            return Err(e);
        }
        let mut rootfs = Rootfs {
            dir: None,
            temporary: Some(target.clone()),
        };
        rootfs.dir = Some(open_root(&target)?);
        Ok(rootfs)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.dir {
            Some(dir) => dir.as_fd(),
            None => unreachable!("a Rootfs is made with its directory open"),
        }
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        drop(self.dir.take());
        if let Some(target) = self.temporary.take() {
            if let Err(e) = mount::unmount(&target) {
                tracing::warn!(target = %target.display(), error = %e, "unmounting a rootfs view");
                return;
            }
            let _ = std::fs::remove_dir(&target);
        }
    }
}

fn open_root(path: &Path) -> Result<OwnedFd, Error> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nix_at(path))
}

/// Opens `path` (relative to the root, symlinks resolved inside it) with `flags`.
fn open_in(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, path, how)
}

/// A path of the container split into the directory that holds it (resolved in the root)
/// and its last name; `None` as the name for the root itself or a path ending in `.`/`..`.
struct Located {
    parent: OwnedFd,
    name: Option<OsString>,
}

fn locate(root: BorrowedFd<'_>, path: &str) -> nix::Result<Located> {
    let trimmed = path.trim_end_matches('/');
    let p = Path::new(trimmed);
    let last = p.file_name().map(OsStr::to_os_string);
    let ends_in_dots =
        trimmed.ends_with("/.") || trimmed.ends_with("/..") || trimmed == "." || trimmed == "..";
    match last {
        Some(name) if !ends_in_dots => {
            let parent = p.parent().unwrap_or(Path::new("/"));
            let parent = open_in(root, parent, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
            Ok(Located {
                parent,
                name: Some(name),
            })
        }
        _ => Ok(Located {
            parent: open_in(root, p, OFlag::O_PATH | OFlag::O_DIRECTORY)?,
            name: None,
        }),
    }
}

fn lstat(l: &Located) -> nix::Result<libc::stat> {
    match &l.name {
        Some(name) => fstatat(
            l.parent.as_fd(),
            name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ),
        None => fstat(l.parent.as_fd()),
    }
}

/// Go's `os.FileMode` of a `st_mode`.
fn go_mode(mode: u32) -> u32 {
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        _ => 0,
    };
    let special = [
        (libc::S_ISUID, 1 << 23),
        (libc::S_ISGID, 1 << 22),
        (libc::S_ISVTX, 1 << 20),
    ]
    .iter()
    .filter(|(bit, _)| mode & bit != 0)
    .fold(0, |acc, (_, go)| acc | go);
    kind | special | (mode & 0o777)
}

fn rfc3339(seconds: i64, nanos: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, nanos as u32)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

fn readlink(l: &Located) -> nix::Result<OsString> {
    match &l.name {
        Some(name) => nix::fcntl::readlinkat(l.parent.as_fd(), name.as_os_str()),
        None => Ok(OsString::new()),
    }
}

/// `HEAD /containers/{id}/archive?path=`.
pub fn stat(rootfs: &Rootfs, c: &Container, path: &str) -> Result<PathStat, Error> {
    let located = locate(rootfs.fd(), path).map_err(|_| not_found(path, c))?;
    let st = lstat(&located).map_err(|_| not_found(path, c))?;
    let name = match &located.name {
        Some(n) => n.to_string_lossy().into_owned(),
        None => Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into()),
    };
    let link_target = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        let target = PathBuf::from(readlink(&located).map_err(|_| not_found(path, c))?);
        let dir = Path::new(path).parent().unwrap_or(Path::new("/"));
        dir.join(target).display().to_string()
    } else {
        String::new()
    };
    Ok(PathStat {
        name,
        size: st.st_size,
        mode: go_mode(st.st_mode),
        mtime: rfc3339(st.st_mtime, st.st_mtime_nsec),
        link_target,
    })
}

/// `GET /containers/{id}/archive?path=`: the path as a tar, its entries under the path's
/// last name (`.` for a path ending in `/.`: the directory's contents).
pub fn archive(rootfs: &Rootfs, c: &Container, path: &str, out: impl Write) -> Result<(), Error> {
    let located = locate(rootfs.fd(), path).map_err(|_| not_found(path, c))?;
    lstat(&located).map_err(|_| not_found(path, c))?;
    let trimmed = path.trim_end_matches('/');
    let base = if trimmed.ends_with("/.") || trimmed == "." {
        PathBuf::from(".")
    } else {
        Path::new(trimmed)
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default()
    };
    let mut builder = tar::Builder::new(out);
    let mut walk = Walk {
        builder: &mut builder,
    };
    let io_err = |e: io::Error| Error::Io {
        path: PathBuf::from(path),
        source: e,
    };
    match &located.name {
        Some(name) => walk.entry(located.parent.as_fd(), name, &base),
        None => walk.dir_at(located.parent.as_fd(), &base, true),
    }
    .map_err(io_err)?;
    builder.finish().map_err(io_err)
}

/// `GET /containers/{id}/export`: the whole tree.
pub fn export(rootfs: &Rootfs, out: impl Write) -> Result<(), Error> {
    let mut builder = tar::Builder::new(out);
    let mut walk = Walk {
        builder: &mut builder,
    };
    let io_err = |e: io::Error| Error::Io {
        path: PathBuf::from("/"),
        source: e,
    };
    walk.dir_at(rootfs.fd(), Path::new(""), false)
        .map_err(io_err)?;
    builder.finish().map_err(io_err)
}

/// `PUT /containers/{id}/archive?path=`: extracts the tar into the directory `path`.
pub fn extract(rootfs: &Rootfs, c: &Container, path: &str, tar: impl Read) -> Result<(), Error> {
    let dir = match open_in(
        rootfs.fd(),
        Path::new(path),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
    ) {
        Ok(dir) => dir,
        Err(Errno::ENOTDIR) => {
            return Err(Error::Invalid("extraction point is not a directory".into()))
        }
        Err(_) => return Err(not_found(path, c)),
    };
    // The layer extractor opens its destination by path: this directory's descriptor.
    let dest = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    layer::apply(tar, &dest, &layer::ApplyOptions::default()).map_err(|e| {
        Error::Invalid(format!(
            "copying into {path} of {}: {e}",
            c.name.trim_start_matches('/')
        ))
    })?;
    Ok(())
}

/// Writes entries by descriptor.
struct Walk<'a, W: Write> {
    builder: &'a mut tar::Builder<W>,
}

fn nix_io(e: Errno) -> io::Error {
    e.into()
}

impl<W: Write> Walk<'_, W> {
    /// The entry `name` of directory `dir`, written as `tar_name`.
    fn entry(&mut self, dir: BorrowedFd<'_>, name: &OsStr, tar_name: &Path) -> io::Result<()> {
        let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(nix_io)?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let fd = openat(
                    dir,
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(nix_io)?;
                same(&st, &fstat(fd.as_fd()).map_err(nix_io)?)?;
                self.dir_at(fd.as_fd(), tar_name, true)
            }
            libc::S_IFREG => {
                let fd = openat(
                    dir,
                    name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(nix_io)?;
                let now = fstat(fd.as_fd()).map_err(nix_io)?;
                same(&st, &now)?;
                let mut header = header_of(&now, tar::EntryType::Regular);
                header.set_size(now.st_size as u64);
                let file = std::fs::File::from(fd);
                self.builder.append_data(
                    &mut header,
                    tar_name,
                    ExactReader::new(file, now.st_size as u64),
                )
            }
            libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(dir, name).map_err(nix_io)?;
                let mut header = header_of(&st, tar::EntryType::Symlink);
                self.builder.append_link(&mut header, tar_name, target)
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                let kind = match st.st_mode & libc::S_IFMT {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut header = header_of(&st, kind);
                header.set_device_major(libc::major(st.st_rdev))?;
                header.set_device_minor(libc::minor(st.st_rdev))?;
                header.set_size(0);
                self.builder.append_data(&mut header, tar_name, io::empty())
            }
            // Sockets do not go into archives (as docker).
            _ => Ok(()),
        }
    }

    /// The directory open as `dir`, as `tar_name` (its own entry unless `tar_name` is empty
    /// or `with_self` is false), then its entries in name order.
    fn dir_at(&mut self, dir: BorrowedFd<'_>, tar_name: &Path, with_self: bool) -> io::Result<()> {
        if with_self && !tar_name.as_os_str().is_empty() {
            let st = fstat(dir).map_err(nix_io)?;
            let mut header = header_of(&st, tar::EntryType::Directory);
            header.set_size(0);
            self.builder
                .append_data(&mut header, tar_name, io::empty())?;
        }
        // A descriptor opened with O_PATH cannot be listed: reopen it.
        let listable = openat(
            dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(nix_io)?;
        let mut names = at::list_dir(listable.as_fd()).map_err(nix_io)?;
        names.sort();
        for name in names {
            let child = tar_name.join(&name);
            match self.entry(listable.as_fd(), &name, &child) {
                // Gone since the listing: a live container changes its files.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                other => other?,
            }
        }
        Ok(())
    }
}

/// The entry opened is the one listed (not swapped in between).
fn same(listed: &libc::stat, opened: &libc::stat) -> io::Result<()> {
    if listed.st_dev != opened.st_dev || listed.st_ino != opened.st_ino {
        return Err(io::Error::other("file replaced while being archived"));
    }
    Ok(())
}

fn header_of(st: &libc::stat, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(st.st_mode & 0o7777);
    header.set_uid(st.st_uid.into());
    header.set_gid(st.st_gid.into());
    header.set_mtime(st.st_mtime.max(0) as u64);
    header.set_size(0);
    header
}

/// Exactly `size` bytes of a file: one that shrank while read is an error, growth is cut.
struct ExactReader<R> {
    inner: io::Take<R>,
    left: u64,
}

impl<R: Read> ExactReader<R> {
    fn new(inner: R, size: u64) -> Self {
        ExactReader {
            inner: inner.take(size),
            left: size,
        }
    }
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::other("file shrank while being archived"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// `GET /containers/{id}/changes`: what the container's own layer (an overlay upper
/// directory) adds, changes and deletes relative to its image, in path order.
pub fn changes(images: &ImageService, c: &Container) -> Result<Vec<Change>, Error> {
    let mounts = images
        .snapshots
        .mounts(&c.snapshot_key())
        .map_err(|e| Error::Image(e.into()))?;
    let overlay = mounts
        .iter()
        .find(|m| m.kind == "overlay")
        .ok_or_else(|| Error::Invalid("diff: only overlay snapshots are supported".into()))?;
    let option = |key: &str| {
        overlay
            .options
            .iter()
            .find_map(|o| o.strip_prefix(key).map(str::to_string))
    };
    let upper = PathBuf::from(option("upperdir=").unwrap_or_default());
    let lowers: Vec<OwnedFd> = option("lowerdir=")
        .unwrap_or_default()
        .split(':')
        .filter(|l| !l.is_empty())
        .map(|l| open_root(Path::new(l)))
        .collect::<Result<_, _>>()?;
    let upper_fd = open_root(&upper)?;
    let mut out = Vec::new();
    upper_changes(upper_fd.as_fd(), Path::new("/"), &lowers, &mut out).map_err(nix_at(&upper))?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(without_runtime_mountpoints(out))
}

/// What the runtime creates to mount over (docker keeps these in an init layer, so its
/// diff never shows them).
pub const MOUNTPOINTS: [&str; 10] = [
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/console",
    "/proc",
    "/sys",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/mtab",
];

/// Drops added mountpoints, and the directories copied up only to hold them.
fn without_runtime_mountpoints(changes: Vec<Change>) -> Vec<Change> {
    let kept: Vec<Change> = changes
        .into_iter()
        .filter(|c| !(c.kind == 1 && MOUNTPOINTS.contains(&c.path.as_str())))
        .collect();
    let holds_a_change = |dir: &str| {
        let prefix = format!("{dir}/");
        kept.iter().any(|c| c.path.starts_with(&prefix))
    };
    let holders: Vec<String> = MOUNTPOINTS
        .iter()
        .filter_map(|m| Path::new(m).parent())
        .map(|p| p.display().to_string())
        .collect();
    kept.iter()
        .filter(|c| !(c.kind == 0 && holders.contains(&c.path) && !holds_a_change(&c.path)))
        .cloned()
        .collect()
}

fn in_lowers(lowers: &[OwnedFd], path: &Path) -> bool {
    let rel = path.strip_prefix("/").unwrap_or(path);
    lowers
        .iter()
        .any(|l| open_in(l.as_fd(), rel, OFlag::O_PATH | OFlag::O_NOFOLLOW).is_ok())
}

fn upper_changes(
    dir: BorrowedFd<'_>,
    path: &Path,
    lowers: &[OwnedFd],
    out: &mut Vec<Change>,
) -> nix::Result<()> {
    for name in at::list_dir(dir)? {
        let child = path.join(&name);
        let st = fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let whiteout = st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0;
        let kind = if whiteout {
            2
        } else if in_lowers(lowers, &child) {
            0
        } else {
            1
        };
        out.push(Change {
            path: child.display().to_string(),
            kind,
        });
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let sub = openat(
                dir,
                name.as_os_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            upper_changes(sub.as_fd(), &child, lowers, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_gos() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(
            go_mode(libc::S_IFREG | libc::S_ISUID | 0o755),
            (1 << 23) | 0o755
        );
        assert_eq!(
            go_mode(libc::S_IFCHR | 0o666),
            (1 << 26) | (1 << 21) | 0o666
        );
    }
}
