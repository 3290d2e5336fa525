//! Compiled seccomp programs kept under the runtime's root, so that a container with the same
//! profile as an earlier one skips libseccomp (docker's default profile costs ~20 ms of CPU to
//! compile for its three architectures; loading the kept program costs microseconds).
//!
//! An entry is found by a hash of its key and used only when the key it holds is byte for byte
//! the one asked for: the profile as JSON, this runtime's version and program format, the
//! libseccomp version and the kernel release (libseccomp's output depends on what the kernel
//! supports). A missing, unreadable or half-written entry is compiled again.
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bumped whenever the program built for the same profile changes.
const FORMAT: u32 = 1;
/// Past this many entries the directory is emptied before a new one is kept.
const MAX_ENTRIES: usize = 64;
/// Never a container id (`@` is not allowed in one), so it cannot clash with a state dir.
const DIR: &str = "seccomp@cache";

/// Where the programs of containers under `root` are kept.
pub fn dir(root: &Path) -> PathBuf {
    root.join(DIR)
}

/// The identity of a compiled program: what it was compiled from and with.
pub fn key(profile_json: &[u8]) -> Vec<u8> {
    let v = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut key = format!(
        "berth-runtime {} format {FORMAT}\nlibseccomp {v}\nkernel {kernel}\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes();
    key.extend_from_slice(profile_json);
    key
}

fn entry_path(dir: &Path, key: &[u8]) -> PathBuf {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    dir.join(format!("{:016x}", h.finish()))
}

/// The program kept for `key`, if there is a whole one.
pub fn lookup(dir: &Path, key: &[u8]) -> Option<Vec<libc::sock_filter>> {
    let bytes = std::fs::read(entry_path(dir, key)).ok()?;
    let (len, rest) = bytes.split_first_chunk::<8>()?;
    let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
    if rest.len() < len || rest[..len] != *key {
        return None;
    }
    let program = &rest[len..];
    if program.is_empty() || program.len() % 8 != 0 {
        return None;
    }
    Some(program.chunks_exact(8).map(decode).collect())
}

/// Keeps `program` for `key` (written aside, then renamed: never seen half-written). Failing
/// to keep it only costs the next container a compile.
pub fn store(dir: &Path, key: &[u8], program: &[libc::sock_filter]) {
    if let Err(e) = try_store(dir, key, program) {
        tracing::debug!(dir = %dir.display(), error = %e, "seccomp cache: not kept");
    }
}

fn try_store(dir: &Path, key: &[u8], program: &[libc::sock_filter]) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if std::fs::read_dir(dir)?.count() >= MAX_ENTRIES {
        for e in std::fs::read_dir(dir)?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let path = entry_path(dir, key);
    let aside = path.with_extension(format!("{}.new", std::process::id()));
    let mut bytes = Vec::with_capacity(8 + key.len() + program.len() * 8);
    bytes.extend_from_slice(&(key.len() as u64).to_le_bytes());
    bytes.extend_from_slice(key);
    for insn in program {
        bytes.extend_from_slice(&encode(insn));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&aside)?;
    let written = file
        .write_all(&bytes)
        .and_then(|()| std::fs::rename(&aside, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&aside);
    }
    written
}

/// A BPF instruction as the kernel lays it out (`struct sock_filter`, native endian).
pub fn decode(c: &[u8]) -> libc::sock_filter {
    libc::sock_filter {
        code: u16::from_ne_bytes([c[0], c[1]]),
        jt: c[2],
        jf: c[3],
        k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
    }
}

fn encode(i: &libc::sock_filter) -> [u8; 8] {
    let mut b = [0; 8];
    b[..2].copy_from_slice(&i.code.to_ne_bytes());
    b[2] = i.jt;
    b[3] = i.jf;
    b[4..].copy_from_slice(&i.k.to_ne_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program() -> Vec<libc::sock_filter> {
        vec![
            libc::sock_filter {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 4,
            },
            libc::sock_filter {
                code: 0x06,
                jt: 1,
                jf: 2,
                k: 0x7fff_0000,
            },
        ]
    }

    fn same(a: &[libc::sock_filter], b: &[libc::sock_filter]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k))
    }

    #[test]
    fn a_kept_program_comes_back_for_its_key_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir(tmp.path());
        let (a, b) = (
            key(b"{\"defaultAction\":\"A\"}"),
            key(b"{\"defaultAction\":\"B\"}"),
        );
        assert!(lookup(&dir, &a).is_none());
        store(&dir, &a, &program());
        assert!(same(&lookup(&dir, &a).unwrap(), &program()));
        assert!(lookup(&dir, &b).is_none(), "another profile's key");
        // An entry whose name matches but whose key differs (a hash collision) is not used.
        std::fs::copy(entry_path(&dir, &a), entry_path(&dir, &b)).unwrap();
        assert!(lookup(&dir, &b).is_none(), "the key inside is checked");
    }

    #[test]
    fn a_half_written_entry_is_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir(tmp.path());
        let k = key(b"{}");
        store(&dir, &k, &program());
        let path = entry_path(&dir, &k);
        let whole = std::fs::read(&path).unwrap();
        for cut in [0, 5, 8 + k.len(), whole.len() - 3] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            assert!(lookup(&dir, &k).is_none(), "cut at {cut}");
        }
    }
}
