//! Applying one layer tar (gzip, zstd or uncompressed) to a directory, safely, and writing a
//! directory's changes back out as a layer tar ([`export_overlay`], [`export_changes`]).
//!
//! Every name in a layer is checked (no absolute paths, no `..`) and every parent directory
//! is resolved inside the destination with `openat2(RESOLVE_IN_ROOT)`; the last component is
//! created with `*at` calls that never follow it. So nothing a layer says is written outside
//! the destination. The uncompressed stream is hashed while it is applied: its digest is the
//! layer's diff ID. (Owner: the layers & snapshots engineer.)
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fchmodat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, Gid, Uid};

pub(crate) mod at;
pub mod bound;
mod export;
pub(crate) mod stream;

pub use bound::SizeBound;
pub use export::{export_changes, export_overlay, Exported};

/// Errors applying or exporting a layer; each names the entry or path it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading layer: {0}")]
    Stream(#[source] io::Error),
    #[error("layer entry {entry:?}: {reason}")]
    Unsafe { entry: String, reason: String },
    #[error("layer entry {entry:?}: {op}: {source}")]
    Entry {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer diff ID is {actual}, expected {expected}")]
    DiffIdMismatch { expected: String, actual: String },
}

/// How whiteouts (`.wh.NAME`, `.wh..wh..opq`) are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Written in overlayfs form, for a layer that becomes an overlay lower directory:
    /// a 0/0 character device for a removed name, `trusted.overlay.opaque=y` on an opaque dir.
    Overlay,
    /// Applied to what is already there: the named path is deleted, the opaque dir emptied
    /// (of what earlier layers put there).
    Apply,
}

/// Options of [`apply`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Overlay form (for an overlay layer directory) or applied in place. Default: in place.
    pub whiteouts: Whiteouts,
    /// Create block and character devices (skipped otherwise). Default: running as root.
    pub devices: bool,
    /// Set the owners the layer names. Default: running as root.
    pub same_owner: bool,
    /// How far the layer may expand when decompressed.
    pub bound: SizeBound,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        let root = nix::unistd::geteuid().is_root();
        ApplyOptions {
            whiteouts: Whiteouts::Apply,
            devices: root,
            same_owner: root,
            bound: SizeBound::default(),
        }
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `sha256:` of the uncompressed tar stream.
    pub diff_id: String,
    /// Bytes of regular file content written.
    pub size: u64,
    /// Bytes of the uncompressed tar stream.
    pub tar_size: u64,
    /// Entries applied (whiteouts included).
    pub entries: u64,
}

/// Applies the layer tar read from `reader` (gzip, zstd or plain, told apart by magic bytes)
/// to the directory `dest`. On error, `dest` may hold part of the layer: callers extract
/// into a fresh directory and remove it.
pub fn apply(reader: impl Read, dest: &Path, options: &ApplyOptions) -> Result<Applied, Error> {
    let root = File::open(dest).map_err(|source| Error::Io {
        path: dest.to_path_buf(),
        source,
    })?;
    let (_, plain) = bound::decompress(reader, options.bound).map_err(Error::Stream)?;
    let (guarded, arm) = stream::guarded(stream::Hashing::new(plain));
    let mut archive = tar::Archive::new(guarded);
    let mut state = State {
        root: root.into(),
        options: options.clone(),
        created: HashSet::new(),
        dirs: Vec::new(),
        size: 0,
        entries: 0,
    };
    stream::for_each_entry(&mut archive, &arm, stream_error, |entry| {
        state.apply_entry(entry)
    })?;
    state.set_dir_times()?;
    let mut rest = archive.into_inner().into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(Error::Stream)?;
    let (diff_id, tar_size) = rest.finish();
    tracing::debug!(dest = %dest.display(), %diff_id, entries = state.entries, "layer applied");
    Ok(Applied {
        diff_id,
        size: state.size,
        tar_size,
        entries: state.entries,
    })
}

/// A read error of the layer stream; an oversized extension header is named as the entry.
fn stream_error(e: io::Error) -> Error {
    match stream::ExtensionTooLarge::of(&e) {
        Some(refused) => Error::Unsafe {
            entry: refused.header.clone(),
            reason: refused.reason(),
        },
        None => Error::Stream(e),
    }
}

/// Checks an entry name and returns it as clean relative components: a leading `./` is
/// dropped; absolute names, `..` components and names with NUL are refused.
pub fn clean_name(raw: &[u8]) -> Result<PathBuf, String> {
    let path = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute path refused".into());
            }
            Component::ParentDir => return Err("\"..\" in path refused".into()),
        }
    }
    Ok(out)
}

/// Metadata of an entry, from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    fn of<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
        let header = entry.header();
        let mut meta = Meta {
            mode: header.mode()? & 0o7777,
            // Empty numeric fields (some writers leave them blank) read as 0.
            uid: header.uid().unwrap_or(0) as u32,
            gid: header.gid().unwrap_or(0) as u32,
            mtime: TimeSpec::new(header.mtime().unwrap_or(0) as i64, 0),
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax {
                let ext = ext?;
                meta.pax(ext.key_bytes(), ext.value_bytes());
            }
        }
        Ok(meta)
    }

    fn pax(&mut self, key: &[u8], value: &[u8]) {
        let text = std::str::from_utf8(value).unwrap_or("");
        match key {
            b"uid" => self.uid = text.parse().unwrap_or(self.uid),
            b"gid" => self.gid = text.parse().unwrap_or(self.gid),
            b"mtime" => {
                if let Some(t) = parse_pax_time(text) {
                    self.mtime = t;
                }
            }
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    self.xattrs.push((name.to_vec(), value.to_vec()));
                }
            }
        }
    }
}

/// `1700000000.123456789` → a timespec.
fn parse_pax_time(text: &str) -> Option<TimeSpec> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanos = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(TimeSpec::new(secs, nanos))
}

/// The entry being applied, for error messages.
fn io_err<'a>(entry: &'a Path, op: &'static str) -> impl FnOnce(Errno) -> Error + 'a {
    move |e| Error::Entry {
        entry: entry.display().to_string(),
        op,
        source: io::Error::from(e),
    }
}

/// Extraction state of one layer.
struct State {
    root: OwnedFd,
    options: ApplyOptions,
    /// Paths this layer created (for opaque whiteouts applied in place).
    created: HashSet<PathBuf>,
    /// Directories whose mtime is set at the end, when nothing more is written into them.
    dirs: Vec<(PathBuf, TimeSpec)>,
    size: u64,
    entries: u64,
}

impl State {
    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), Error> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let path = clean_name(&raw).map_err(|reason| Error::Unsafe {
            entry: shown.clone(),
            reason,
        })?;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            tracing::debug!(entry = %shown, "root entry skipped");
            return Ok(());
        };
        let (parent, name) = (parent.to_path_buf(), name.to_os_string());
        self.entries += 1;
        if let Some(target) = name.as_bytes().strip_prefix(b".wh.") {
            return self.whiteout(&path, &parent, target);
        }
        let meta = Meta::of(entry).map_err(|source| Error::Entry {
            entry: shown.clone(),
            op: "read header",
            source,
        })?;
        let kind = entry.header().entry_type();
        let dir =
            at::make_dir_in(self.root.as_fd(), &parent).map_err(io_err(&path, "open parent"))?;
        let keep_dir = self.clear_slot(dir.as_fd(), &name, kind.is_dir(), &path)?;
        match kind {
            tar::EntryType::Directory => {
                self.directory(dir.as_fd(), &name, &path, &meta, keep_dir)?
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.regular(dir.as_fd(), &name, &path, &meta, entry)?
            }
            tar::EntryType::Symlink => self.symlink(dir.as_fd(), &name, &path, &meta, entry)?,
            tar::EntryType::Link => self.hardlink(dir.as_fd(), &name, &path, entry)?,
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                self.node(dir.as_fd(), &name, &path, &meta, entry)?
            }
            other => {
                tracing::warn!(entry = %shown, kind = ?other, "unsupported entry type skipped");
                return Ok(());
            }
        }
        self.created.insert(path);
        Ok(())
    }

    /// Makes room for a new entry: removes what is there, unless both are directories
    /// (returns true then: the existing directory is kept and only its metadata changes).
    fn clear_slot(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        is_dir: bool,
        path: &Path,
    ) -> Result<bool, Error> {
        match at::lstat_at(dir, name).map_err(io_err(path, "stat"))? {
            None => Ok(false),
            Some(st) if is_dir && at::is_type(&st, libc::S_IFDIR) => Ok(true),
            Some(_) => {
                at::remove_all_at(dir, name).map_err(io_err(path, "remove existing"))?;
                Ok(false)
            }
        }
    }

    fn directory(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        meta: &Meta,
        exists: bool,
    ) -> Result<(), Error> {
        if !exists {
            nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o700))
                .map_err(io_err(path, "mkdir"))?;
        }
        let fd = openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err(path, "open"))?;
        self.set_owner_mode(fd.as_fd(), path, meta)?;
        self.set_xattrs(dir, name, path, meta);
        self.dirs.push((path.to_path_buf(), meta.mtime));
        Ok(())
    }

    fn regular<R: Read>(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        meta: &Meta,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), Error> {
        let fd = openat(
            dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(io_err(path, "create"))?;
        let mut file = File::from(fd);
        let written = io::copy(entry, &mut file).map_err(|source| Error::Entry {
            entry: path.display().to_string(),
            op: "write",
            source,
        })?;
        self.size += written;
        self.set_owner_mode(file.as_fd(), path, meta)?;
        self.set_xattrs(dir, name, path, meta);
        nix::sys::stat::futimens(&file, &meta.mtime, &meta.mtime).map_err(io_err(path, "set times"))
    }

    fn symlink<R: Read>(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        meta: &Meta,
        entry: &tar::Entry<'_, R>,
    ) -> Result<(), Error> {
        let target = entry.link_name_bytes().unwrap_or_default().into_owned();
        nix::unistd::symlinkat(OsStr::from_bytes(&target), dir, name)
            .map_err(io_err(path, "symlink"))?;
        self.chown_at(dir, name, path, meta)?;
        self.set_xattrs(dir, name, path, meta);
        at::set_times_at(dir, name, meta.mtime).map_err(io_err(path, "set times"))
    }

    fn hardlink<R: Read>(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        entry: &tar::Entry<'_, R>,
    ) -> Result<(), Error> {
        let raw = entry.link_name_bytes().unwrap_or_default().into_owned();
        let unsafe_target = |reason: String| Error::Unsafe {
            entry: path.display().to_string(),
            reason: format!("hardlink to {:?}: {reason}", String::from_utf8_lossy(&raw)),
        };
        let target = clean_name(&raw).map_err(unsafe_target)?;
        let (Some(target_parent), Some(target_name)) = (target.parent(), target.file_name()) else {
            return Err(unsafe_target("not a file".into()));
        };
        let target_dir = at::open_dir_in(self.root.as_fd(), target_parent)
            .map_err(io_err(path, "open link target"))?;
        nix::unistd::linkat(target_dir.as_fd(), target_name, dir, name, AtFlags::empty())
            .map_err(io_err(path, "link"))
    }

    /// Gives a new entry (never followed) the layer's owner, when owners are kept.
    fn chown_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        meta: &Meta,
    ) -> Result<(), Error> {
        if !self.options.same_owner {
            return Ok(());
        }
        fchownat(
            dir,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io_err(path, "chown"))
    }

    fn node<R: Read>(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        meta: &Meta,
        entry: &tar::Entry<'_, R>,
    ) -> Result<(), Error> {
        let header = entry.header();
        let (kind, dev) = match header.entry_type() {
            tar::EntryType::Fifo => (SFlag::S_IFIFO, 0),
            kind => {
                if !self.options.devices {
                    tracing::debug!(entry = %path.display(), "device node skipped: not root");
                    return Ok(());
                }
                let major = header.device_major().ok().flatten().unwrap_or(0) as u64;
                let minor = header.device_minor().ok().flatten().unwrap_or(0) as u64;
                let flag = if kind == tar::EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                (flag, nix::sys::stat::makedev(major, minor))
            }
        };
        mknodat(dir, name, kind, Mode::from_bits_truncate(0o600), dev)
            .map_err(io_err(path, "mknod"))?;
        self.chown_at(dir, name, path, meta)?;
        fchmodat(
            dir,
            name,
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::NoFollowSymlink,
        )
        .or_else(|e| match e {
            // Older kernels refuse the flag; the node was just made and is no symlink.
            Errno::ENOTSUP | Errno::EINVAL => fchmodat(
                dir,
                name,
                Mode::from_bits_truncate(meta.mode),
                FchmodatFlags::FollowSymlink,
            ),
            e => Err(e),
        })
        .map_err(io_err(path, "chmod"))?;
        self.set_xattrs(dir, name, path, meta);
        at::set_times_at(dir, name, meta.mtime).map_err(io_err(path, "set times"))
    }

    /// Owner first, then mode: `chown` clears setuid/setgid, and `fchmod` is not subject to
    /// the umask, so the mode ends exactly as the layer says.
    fn set_owner_mode(&self, fd: BorrowedFd<'_>, path: &Path, meta: &Meta) -> Result<(), Error> {
        if self.options.same_owner {
            fchown(
                fd,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .map_err(io_err(path, "chown"))?;
        }
        fchmod(fd, Mode::from_bits_truncate(meta.mode)).map_err(io_err(path, "chmod"))
    }

    /// Sets the entry's extended attributes; `trusted.overlay.*` ones would steer overlayfs
    /// and are dropped, and ones the filesystem refuses are logged and skipped.
    fn set_xattrs(&self, dir: BorrowedFd<'_>, name: &OsStr, path: &Path, meta: &Meta) {
        for (key, value) in &meta.xattrs {
            if key.starts_with(b"trusted.overlay.") {
                tracing::warn!(entry = %path.display(), "overlay xattr in layer dropped");
                continue;
            }
            if let Err(e) = at::set_xattr_at(dir, name, key, value) {
                tracing::warn!(entry = %path.display(), key = %String::from_utf8_lossy(key), error = %e, "xattr not set");
            }
        }
    }

    /// `.wh.NAME` and `.wh..wh..opq` entries.
    fn whiteout(&mut self, path: &Path, parent: &Path, target: &[u8]) -> Result<(), Error> {
        if target == b".wh..opq" {
            return self.opaque(path, parent);
        }
        if target.starts_with(b".wh.") {
            tracing::debug!(entry = %path.display(), "aufs metadata entry skipped");
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(Error::Unsafe {
                entry: path.display().to_string(),
                reason: "whiteout of an invalid name refused".into(),
            });
        }
        let target = OsStr::from_bytes(target);
        match self.options.whiteouts {
            Whiteouts::Overlay => {
                let dir = at::make_dir_in(self.root.as_fd(), parent)
                    .map_err(io_err(path, "open parent"))?;
                at::remove_all_at(dir.as_fd(), target).map_err(io_err(path, "remove existing"))?;
                mknodat(dir.as_fd(), target, SFlag::S_IFCHR, Mode::empty(), 0)
                    .map_err(io_err(path, "mknod whiteout"))?;
                self.created.insert(parent.join(target));
            }
            Whiteouts::Apply => {
                let dir = match at::open_dir_in(self.root.as_fd(), parent) {
                    Err(Errno::ENOENT) => return Ok(()),
                    other => other.map_err(io_err(path, "open parent"))?,
                };
                at::remove_all_at(dir.as_fd(), target)
                    .map_err(io_err(path, "remove whiteout target"))?;
            }
        }
        Ok(())
    }

    /// An opaque directory hides everything lower layers put in it.
    fn opaque(&mut self, path: &Path, parent: &Path) -> Result<(), Error> {
        match self.options.whiteouts {
            Whiteouts::Overlay => {
                let dir = at::make_dir_in(self.root.as_fd(), parent)
                    .map_err(io_err(path, "open parent"))?;
                let here = OsString::from(".");
                at::set_xattr_at(dir.as_fd(), &here, b"trusted.overlay.opaque", b"y").map_err(
                    |source| Error::Entry {
                        entry: path.display().to_string(),
                        op: "set opaque xattr",
                        source,
                    },
                )
            }
            Whiteouts::Apply => {
                let dir = match at::open_dir_in(self.root.as_fd(), parent) {
                    Err(Errno::ENOENT) => return Ok(()),
                    other => other.map_err(io_err(path, "open parent"))?,
                };
                let created = &self.created;
                at::empty_dir(dir.as_fd(), |name| !created.contains(&parent.join(name)))
                    .map_err(io_err(path, "empty opaque dir"))
            }
        }
    }

    /// Sets directory mtimes last: writing into a directory changes its mtime.
    fn set_dir_times(&self) -> Result<(), Error> {
        for (path, mtime) in self.dirs.iter().rev() {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            let dir = match at::open_dir_in(self.root.as_fd(), parent) {
                Ok(dir) => dir,
                Err(Errno::ENOENT | Errno::ENOTDIR) => continue,
                Err(e) => return Err(io_err(path, "open parent")(e)),
            };
            match at::set_times_at(dir.as_fd(), name, *mtime) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(io_err(path, "set times")(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
