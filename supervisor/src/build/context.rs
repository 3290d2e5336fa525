//! The build context: the tar the client sent, unpacked (by the layer extractor, so no entry
//! lands outside it) into a private directory, and the files COPY and ADD name in it.
//!
//! Every source is opened with `openat2(RESOLVE_IN_ROOT)` on the context's directory: `..`,
//! absolute paths and symlinks (at any depth) are resolved as if the context were `/`, so a
//! build never reads outside it; a source that names a path above the context lexically is
//! refused, in docker's words. Inside a copied directory, symlinks are copied as symlinks.
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use sha2::{Digest, Sha256};

use super::ignore::Ignore;
use super::BuildError;

/// The name berth's CLI gives a Dockerfile from outside the context (or stdin) in the tar.
pub const OUTSIDE_DOCKERFILE: &str = ".dockerfile.berth";
/// Where berth's CLI puts `--secret` files in the tar (`.secrets.berth/<id>`); the daemon
/// moves them out of the context before the first step.
pub const SECRETS_DIR: &str = ".secrets.berth";

/// A name that is one path component: not empty, no `/`, not `.` or `..` (a secret's id, a
/// download's file name).
pub fn is_plain_name(id: &str) -> bool {
    !id.is_empty() && !id.contains('/') && id != "." && id != ".."
}
use crate::images::layer::{self, at, ApplyOptions};

/// An unpacked context.
pub struct Context {
    pub dir: PathBuf,
    root: OwnedFd,
}

/// One COPY/ADD source: what the pattern named (or matched) and the open file.
pub struct Source {
    /// As named or matched, relative to the context.
    pub rel: PathBuf,
    pub file: File,
    pub st: libc::stat,
}

impl Source {
    pub fn is_dir(&self) -> bool {
        at::is_type(&self.st, libc::S_IFDIR)
    }
}

fn sys(what: &Path, e: nix::errno::Errno) -> BuildError {
    BuildError::Context(format!("{}: {}", what.display(), std::io::Error::from(e)))
}

/// A plain tar stream ended as docker's 20.10 CLI ends the context of `build -f -`: its last
/// entry's data without padding and no end-of-archive blocks. dockerd reads it; so does
/// the build, given the zeros the stream lacks. A compressed stream passes as it is.
struct Completed<R> {
    inner: R,
    /// Bytes read so far; None once the stream is known compressed.
    read: Option<u64>,
    /// Zeros still to give after the inner stream ended.
    zeros: Option<u64>,
}

impl<R: Read> Read for Completed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(left) = &mut self.zeros {
            let n = (*left).min(buf.len() as u64) as usize;
            buf[..n].fill(0);
            *left -= n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        match (&mut self.read, n) {
            (Some(read), 0) => {
                let pad = (512 - *read % 512) % 512;
                self.zeros = Some(pad + 1024);
                return self.read(buf);
            }
            (Some(read), n) => {
                if *read == 0 && is_compressed(&buf[..n]) {
                    self.read = None;
                } else {
                    *read += n as u64;
                }
            }
            (None, _) => {}
        }
        Ok(n)
    }
}

fn is_compressed(head: &[u8]) -> bool {
    [
        &[0x1f, 0x8b][..],
        b"BZh",
        &[0xfd, b'7', b'z', b'X', b'Z'],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ]
    .iter()
    .any(|magic| head.starts_with(magic))
}

impl Context {
    /// Unpacks `reader` (a tar, plain or compressed) into the new directory `dir`.
    pub fn extract(reader: impl Read, dir: &Path) -> Result<Context, BuildError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| BuildError::Context(format!("{}: {e}", dir.display())))?;
        let options = ApplyOptions::default();
        let reader = Completed {
            inner: reader,
            read: Some(0),
            zeros: None,
        };
        layer::apply(reader, dir, &options)
            .map_err(|e| BuildError::Context(format!("unpacking the build context: {e}")))?;
        let root =
            File::open(dir).map_err(|e| BuildError::Context(format!("{}: {e}", dir.display())))?;
        Ok(Context {
            dir: dir.to_path_buf(),
            root: root.into(),
        })
    }

    /// A directory already there (an image's mounted files, for `COPY --from`).
    pub fn at(dir: &Path) -> Result<Context, BuildError> {
        let root =
            File::open(dir).map_err(|e| BuildError::Context(format!("{}: {e}", dir.display())))?;
        Ok(Context {
            dir: dir.to_path_buf(),
            root: root.into(),
        })
    }

    fn open_in(&self, rel: &Path) -> nix::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(self.root.as_fd(), rel, how)
    }

    /// Where an opened source is on the host: the path the kernel resolved inside the
    /// context (symlinks followed), not the name as written.
    pub fn resolved(&self, file: &File) -> Result<PathBuf, BuildError> {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|e| BuildError::Context(format!("{}: {e}", self.dir.display())))
    }

    /// The context's directory, symlinks resolved.
    pub fn root_path(&self) -> PathBuf {
        self.dir.canonicalize().unwrap_or_else(|_| self.dir.clone())
    }

    /// A source's path relative to the context, as resolved ([`Self::resolved`]).
    pub fn resolved_rel(&self, source: &Source) -> Result<PathBuf, BuildError> {
        let resolved = self.resolved(&source.file)?;
        Ok(resolved
            .strip_prefix(self.root_path())
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| source.rel.clone()))
    }

    /// Moves the secrets berth's CLI sent ([`SECRETS_DIR`]) out of the context to `into`
    /// (made, 0700), so no step can copy them; anything there but a directory is dropped.
    pub fn take_secrets(&self, into: &Path) -> Result<(), BuildError> {
        let err =
            |p: &Path, e: std::io::Error| BuildError::Context(format!("{}: {e}", p.display()));
        let sent = self.dir.join(SECRETS_DIR);
        match std::fs::symlink_metadata(&sent) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(err(&sent, e)),
            Ok(m) if !m.is_dir() => return std::fs::remove_file(&sent).map_err(|e| err(&sent, e)),
            Ok(_) => {}
        }
        std::fs::rename(&sent, into).map_err(|e| err(&sent, e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(into, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| err(into, e))
    }

    /// A file of the context (the Dockerfile), resolved inside it.
    pub fn read_file(&self, name: &str) -> Result<Vec<u8>, BuildError> {
        let rel = inside(name).ok_or_else(|| {
            BuildError::Context(format!("forbidden path outside the build context: {name}"))
        })?;
        let fd = self.open_in(&rel).map_err(|_| {
            BuildError::Context(format!("Cannot locate specified Dockerfile: {name}"))
        })?;
        let mut bytes = Vec::new();
        File::from(fd)
            .read_to_end(&mut bytes)
            .map_err(|e| BuildError::Context(format!("{name}: {e}")))?;
        Ok(bytes)
    }

    /// What dockerd does once it has read the Dockerfile: the Dockerfile and the
    /// `.dockerignore` go from the context when the `.dockerignore` excludes them (the CLI
    /// sends them always), as does the Dockerfile berth's CLI sends from outside the context.
    pub fn drop_build_files(&self, dockerfile: &str) -> Result<(), BuildError> {
        let mut names = vec![OUTSIDE_DOCKERFILE.to_string()];
        if let Ok(text) = self.read_file(".dockerignore") {
            let ignore = Ignore::parse(&String::from_utf8_lossy(&text));
            for name in [".dockerignore", dockerfile] {
                if ignore.excluded(name) {
                    names.push(name.to_string());
                }
            }
        }
        for name in names {
            let Some(rel) = inside(&name) else { continue };
            let (Some(parent), Some(file)) = (rel.parent(), rel.file_name()) else {
                continue;
            };
            let Ok(dir) = self.open_in(parent) else {
                continue;
            };
            match nix::unistd::unlinkat(&dir, file, nix::unistd::UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(sys(&rel, e)),
            }
        }
        Ok(())
    }

    /// The sources `pattern` names: one path, or every path a wildcard matches (sorted).
    pub fn sources(&self, pattern: &str) -> Result<Vec<Source>, BuildError> {
        let rel = inside(pattern).ok_or_else(|| {
            BuildError::Copy(format!(
                "forbidden path outside the build context: {pattern} ()"
            ))
        })?;
        let paths = if pattern.contains(['*', '?', '[']) {
            let mut found = Vec::new();
            self.matches(self.root.as_fd(), Path::new(""), &rel, &mut found)?;
            found.sort();
            found
        } else {
            vec![rel]
        };
        let mut out = Vec::new();
        for rel in paths {
            let fd = self.open_in(&rel).map_err(|_| {
                BuildError::Copy(format!(
                    "file not found in build context or excluded by .dockerignore: stat {}: file does not exist",
                    rel.display()
                ))
            })?;
            let file = File::from(fd);
            let st = nix::sys::stat::fstat(&file).map_err(|e| sys(&rel, e))?;
            out.push(Source { rel, file, st });
        }
        Ok(out)
    }

    /// Paths under `dir` (at `rel`) matching `pattern` as a whole, walked without following
    /// symlinks.
    fn matches(
        &self,
        dir: BorrowedFd<'_>,
        rel: &Path,
        pattern: &Path,
        out: &mut Vec<PathBuf>,
    ) -> Result<(), BuildError> {
        let depth = rel.components().count();
        let Some(segment) = pattern.iter().nth(depth) else {
            return Ok(());
        };
        for name in at::list_dir(dir).map_err(|e| sys(rel, e))? {
            if !glob(segment.as_bytes(), name.as_bytes()) {
                continue;
            }
            let path = rel.join(&name);
            if depth + 1 == pattern.iter().count() {
                out.push(path);
                continue;
            }
            let st = at::lstat_at(dir, &name).map_err(|e| sys(&path, e))?;
            if st.is_some_and(|st| at::is_type(&st, libc::S_IFDIR)) {
                let child = open_child_dir(dir, &name).map_err(|e| sys(&path, e))?;
                self.matches(child.as_fd(), &path, pattern, out)?;
            }
        }
        Ok(())
    }
}

/// `name` as a path relative to the context root; None when it climbs above it.
pub fn inside(name: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => return None,
            _ => {}
        }
    }
    Some(out)
}

fn open_child_dir(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// `filepath.Match`: `*` any run without `/`, `?` one byte, `[…]` a class (`^`/`!` negates).
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len())
            .take_while(|&i| i == 0 || text[i - 1] != b'/')
            .any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && text[0] != b'/' && glob(rest, &text[1..]),
        Some((b'[', rest)) => {
            let Some(end) = rest.iter().skip(1).position(|&b| b == b']').map(|i| i + 1) else {
                return text.first() == Some(&b'[') && glob(rest, &text[1..]);
            };
            let Some(&c) = text.first() else { return false };
            let (negate, class) = match rest[..end].split_first() {
                Some((b'^' | b'!', class)) => (true, class),
                _ => (false, &rest[..end]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob(&rest[end + 1..], &text[1..])
        }
        Some((&p, rest)) => text.first() == Some(&p) && glob(rest, &text[1..]),
    }
}

/// What a walk finds at one path.
pub enum Node {
    Dir,
    File(File),
    Symlink(PathBuf),
}

/// Calls `visit` for every entry below `dir` (sorted, depth first, symlinks not followed;
/// fifos, sockets and devices skipped) with its path relative to `dir`.
pub fn walk(
    dir: BorrowedFd<'_>,
    rel: &Path,
    visit: &mut dyn FnMut(&Path, &libc::stat, Node) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let mut names = at::list_dir(dir).map_err(|e| sys(rel, e))?;
    names.sort();
    for name in names {
        let path = rel.join(&name);
        let Some(st) = at::lstat_at(dir, &name).map_err(|e| sys(&path, e))? else {
            continue;
        };
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                visit(&path, &st, Node::Dir)?;
                let child = open_child_dir(dir, &name).map_err(|e| sys(&path, e))?;
                walk(child.as_fd(), &path, visit)?;
            }
            libc::S_IFREG => {
                let fd = openat(
                    dir,
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| sys(&path, e))?;
                visit(&path, &st, Node::File(File::from(fd)))?;
            }
            libc::S_IFLNK => {
                let target =
                    nix::fcntl::readlinkat(dir, name.as_os_str()).map_err(|e| sys(&path, e))?;
                visit(&path, &st, Node::Symlink(PathBuf::from(target)))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Visits a source: a directory's contents (named relative to it), or the file itself
/// (named `name`).
pub fn visit_source(
    source: &Source,
    name: &Path,
    visit: &mut dyn FnMut(&Path, &libc::stat, Node) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    if source.is_dir() {
        return walk(source.file.as_fd(), name, visit);
    }
    use std::io::Seek;
    let mut file = source
        .file
        .try_clone()
        .map_err(|e| BuildError::Copy(format!("{}: {e}", source.rel.display())))?;
    // The clone shares the offset: start each visit at the beginning.
    file.rewind()
        .map_err(|e| BuildError::Copy(format!("{}: {e}", source.rel.display())))?;
    visit(name, &source.st, Node::File(file))
}

/// docker's tarsum (version 1) of one entry, named relative to its root (a directory with a
/// trailing `/`): the header's fields as `name` + value (no times, no owner names), then a
/// file's bytes. Hex.
fn entry_sum(name: &Path, st: &libc::stat, node: Node, names: bool) -> Result<String, BuildError> {
    let mut name = name.to_string_lossy().into_owned();
    let (typeflag, link, size) = match &node {
        Node::Dir => {
            name.push('/');
            ('5', String::new(), 0)
        }
        Node::Symlink(t) => ('2', t.to_string_lossy().into_owned(), 0),
        Node::File(_) => ('0', String::new(), st.st_size),
    };
    // dockerd names owners (from this host's databases) only for files on disk: a
    // download, a stage's or image's; a context's come from the client's tar, unnamed.
    let (uname, gname) = if names {
        (
            nix::unistd::User::from_uid(st.st_uid.into())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_default(),
            nix::unistd::Group::from_gid(st.st_gid.into())
                .ok()
                .flatten()
                .map(|g| g.name)
                .unwrap_or_default(),
        )
    } else {
        Default::default()
    };
    let mut hasher = Sha256::new();
    let fields = [
        ("name", name.as_str()),
        ("mode", &st.st_mode.to_string()),
        ("uid", &st.st_uid.to_string()),
        ("gid", &st.st_gid.to_string()),
        ("size", &size.to_string()),
        ("typeflag", &typeflag.to_string()),
        ("linkname", link.as_str()),
        ("uname", uname.as_str()),
        ("gname", gname.as_str()),
        ("devmajor", "0"),
        ("devminor", "0"),
    ];
    for (key, value) in fields {
        hasher.update(key);
        hasher.update(value);
    }
    if let Node::File(mut f) = node {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| BuildError::Copy(format!("{name}: {e}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// sha256 of `parts` joined by `,`, after `prefix:` (docker's `hashStringSlice`).
fn joined_sum(prefix: &str, parts: &[String]) -> String {
    format!(
        "{prefix}:{}",
        hex::encode(Sha256::digest(parts.join(",").as_bytes()))
    )
}

/// The content hash of COPY/ADD sources, as dockerd's classic builder writes it in the
/// history and the cache sees it: `file:<tarsum>` for one file, `dir:<…>` for a directory
/// (its entries' sums, itself included, sorted), `multi:<…>` over several; names are the
/// paths the sources resolve to in `context`, modes and owners count (with `names`, their
/// names too, as dockerd's sums of files not sent by the client), times never.
pub fn hash_sources(
    context: &Context,
    sources: &[Source],
    names: bool,
) -> Result<String, BuildError> {
    Ok(combined_sum(&source_sums(context, sources, names)?))
}

/// One sum, or `multi:` over several (docker's `getSourceHashFromInfos`).
pub fn combined_sum(each: &[String]) -> String {
    match each {
        [one] => one.clone(),
        _ => joined_sum("multi", each),
    }
}

/// Each source's sum ([`hash_sources`]).
pub fn source_sums(
    context: &Context,
    sources: &[Source],
    names: bool,
) -> Result<Vec<String>, BuildError> {
    let mut each = Vec::new();
    for source in sources {
        let rel = context.resolved_rel(source)?;
        if !source.is_dir() {
            visit_source(source, &rel, &mut |path, st, node| {
                each.push(format!("file:{}", entry_sum(path, st, node, names)?));
                Ok(())
            })?;
            continue;
        }
        let mut sums = Vec::new();
        if !rel.as_os_str().is_empty() {
            sums.push(entry_sum(&rel, &source.st, Node::Dir, names)?);
        }
        walk(source.file.as_fd(), &rel, &mut |path, st, node| {
            sums.push(entry_sum(path, st, node, names)?);
            Ok(())
        })?;
        sums.sort();
        each.push(joined_sum("dir", &sums));
    }
    Ok(each)
}

/// Writes `sources` as a tar whose names are under `dest` (relative to the image root):
/// a directory's contents go into `dest`, a file goes to `dest/<its name>` when
/// `into_dir`, else to `dest` itself. Owners are `owner` (docker: 0:0 unless --chown).
pub fn write_tar(
    sources: &[Source],
    dest: &Path,
    into_dir: bool,
    owner: (u32, u32),
    mode: Option<u32>,
    out: impl Write,
) -> Result<(), BuildError> {
    let mut builder = tar::Builder::new(out);
    let werr = |p: &Path, e: std::io::Error| BuildError::Copy(format!("{}: {e}", p.display()));
    for source in sources {
        let name = match (source.is_dir(), into_dir) {
            (true, _) => dest.to_path_buf(),
            (false, true) => dest.join(source.rel.file_name().unwrap_or_default()),
            (false, false) => dest.to_path_buf(),
        };
        visit_source(source, &name, &mut |path, st, node| {
            let mut header = tar::Header::new_gnu();
            header.set_mode(mode.unwrap_or(st.st_mode & 0o7777));
            header.set_uid(owner.0 as u64);
            header.set_gid(owner.1 as u64);
            header.set_mtime(st.st_mtime.max(0) as u64);
            match node {
                Node::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, path, std::io::empty())
                        .map_err(|e| werr(path, e))
                }
                Node::File(f) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(st.st_size as u64);
                    builder
                        .append_data(&mut header, path, f.take(st.st_size as u64))
                        .map_err(|e| werr(path, e))
                }
                Node::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, path, &target)
                        .map_err(|e| werr(path, e))
                }
            }
        })?;
    }
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| werr(dest, e))
}

/// Whether a file is an archive ADD unpacks: gzip, bzip2, xz, zstd, or a tar.
pub fn is_archive(file: &File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 512];
    let n = file.read_at(&mut head, 0).unwrap_or(0);
    let head = &head[..n];
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (n >= 262 && &head[257..262] == b"ustar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_like_filepath_match() {
        assert!(glob(b"*.txt", b"a.txt"));
        assert!(!glob(b"*.txt", b"d/a.txt"));
        assert!(glob(b"a?c", b"abc"));
        assert!(glob(b"[a-c]x", b"bx"));
        assert!(!glob(b"[!a-c]x", b"bx"));
        assert!(glob(b"*", b""));
    }

    #[test]
    fn a_tar_without_its_end_is_completed() {
        let mut raw = vec![7u8; 512 + 47];
        let mut out = Vec::new();
        Completed {
            inner: &raw[..],
            read: Some(0),
            zeros: None,
        }
        .read_to_end(&mut out)
        .unwrap();
        assert_eq!(out.len(), 1024 + 1024);
        assert!(out[559..].iter().all(|&b| b == 0));
        raw[..2].copy_from_slice(&[0x1f, 0x8b]);
        let mut out = Vec::new();
        Completed {
            inner: &raw[..],
            read: Some(0),
            zeros: None,
        }
        .read_to_end(&mut out)
        .unwrap();
        assert_eq!(out, raw, "compressed: untouched");
    }

    #[test]
    fn paths_above_the_context_are_refused() {
        assert_eq!(inside("/a/../b"), Some(PathBuf::from("b")));
        assert_eq!(inside("./x/y"), Some(PathBuf::from("x/y")));
        assert_eq!(inside("../x"), None);
        assert_eq!(inside("a/../../x"), None);
        assert_eq!(inside("."), Some(PathBuf::new()));
    }
}
