//! The content store: blobs addressed by their sha256 digest under `<root>/blobs/sha256/`.
//!
//! A blob is written to `<root>/ingest/`, hashed and counted as it is written, and only when
//! its digest and size match what was expected is it fsynced and renamed into place, so a crash
//! at any moment leaves either no blob or a correct one. Half-written ingests are removed
//! when the store is opened.
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

/// Largest blob accepted when the caller does not know the size (manifests, configs).
pub const UNSIZED_LIMIT: u64 = 64 << 20;

/// Errors of the content store; each names the digest or path it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported digest {0:?}: only sha256 is supported")]
    Digest(String),
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("blob {expected}: content has digest {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest}: more than {limit} bytes")]
    TooLarge { digest: String, limit: u64 },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl Error {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:` digest, checked.
pub fn hex_of(digest: &str) -> Result<&str, Error> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(hex)
        }
        _ => Err(Error::Digest(digest.to_string())),
    }
}

/// Blobs on disk, addressed by digest.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    ingests: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl ContentStore {
    /// Opens (creating) the store at `root` and removes ingests left by a crash.
    pub fn open(root: &Path) -> Result<Self, Error> {
        let blobs = root.join("blobs/sha256");
        let ingest = root.join("ingest");
        let _ = std::fs::remove_dir_all(&ingest);
        for dir in [root.to_path_buf(), root.join("blobs"), blobs, ingest] {
            crate::perms::make_dir(&dir, 0o700).map_err(|e| Error::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?;
        }
        Ok(ContentStore {
            root: root.to_path_buf(),
            ingests: Arc::default(),
        })
    }

    /// Where the blob of `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &str) -> Result<PathBuf, Error> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// The size of a present blob.
    pub fn size(&self, digest: &str) -> Result<u64, Error> {
        let path = self.path(digest)?;
        match std::fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::NotFound(digest.to_string()))
            }
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &str) -> Result<File, Error> {
        let path = self.path(digest)?;
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(digest.to_string()),
            _ => Error::Io { path, source: e },
        })
    }

    /// Reads a whole (small) blob: a manifest, an index, a config.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        let path = self.path(digest)?;
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(Error::io(&path))?;
        Ok(bytes)
    }

    /// Stores bytes whose digest the store computes; returns that digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<String, Error> {
        let digest = digest_of(bytes);
        if !self.contains(&digest) {
            let mut w = self.writer(&digest, Some(bytes.len() as u64))?;
            w.write_all(bytes).map_err(Error::io(&w.temp))?;
            w.commit()?;
        }
        Ok(digest)
    }

    /// A writer for a blob expected to have `digest` (and `size`, when known). Nothing is
    /// visible in the store until [`BlobWriter::commit`] has verified it; dropping the writer
    /// discards what was written. More bytes than `size` (or [`UNSIZED_LIMIT`]) are refused.
    pub fn writer(&self, digest: &str, size: Option<u64>) -> Result<BlobWriter, Error> {
        let target = self.path(digest)?;
        let temp = self.root.join("ingest").join(format!(
            "{}-{}-{}",
            hex_of(digest)?,
            std::process::id(),
            unique()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temp)
            .map_err(Error::io(&temp))?;
        Ok(BlobWriter {
            file,
            temp,
            target,
            digest: digest.to_string(),
            limit: size.unwrap_or(UNSIZED_LIMIT),
            exact: size,
            written: 0,
            hasher: Sha256::new(),
            committed: false,
        })
    }

    /// Serialises ingests of one digest within this process: concurrent pulls of a shared
    /// layer take this lock, and the second finds the blob present and skips the download.
    pub async fn ingest_lock(&self, digest: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.ingests.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(digest.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Every blob's digest.
    pub fn list(&self) -> Result<Vec<String>, Error> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(Error::io(&dir))? {
            let entry = entry.map_err(Error::io(&dir))?;
            if let Some(name) = entry.file_name().to_str() {
                out.push(format!("sha256:{name}"));
            }
        }
        Ok(out)
    }

    /// Removes a blob; a missing blob is not an error.
    pub fn delete(&self, digest: &str) -> Result<(), Error> {
        let path = self.path(digest)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io { path, source: e }),
            _ => Ok(()),
        }
    }

    /// Recomputes a present blob's digest and compares it with its name.
    pub fn verify(&self, digest: &str) -> Result<(), Error> {
        let path = self.path(digest)?;
        let mut file = self.open_blob(digest)?;
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut hasher).map_err(Error::io(&path))?;
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            return Err(Error::DigestMismatch {
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(())
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A blob being written: hashed and counted on the way to a temp file.
#[derive(Debug)]
pub struct BlobWriter {
    file: File,
    temp: PathBuf,
    target: PathBuf,
    digest: String,
    limit: u64,
    exact: Option<u64>,
    written: u64,
    hasher: Sha256,
    committed: bool,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Verifies size and digest, fsyncs, renames into place and fsyncs the directory.
    pub fn commit(mut self) -> Result<(), Error> {
        if let Some(expected) = self.exact {
            if expected != self.written {
                return Err(Error::SizeMismatch {
                    digest: self.digest.clone(),
                    expected,
                    actual: self.written,
                });
            }
        }
        let actual = format!(
            "sha256:{}",
            hex::encode(std::mem::take(&mut self.hasher).finalize())
        );
        if actual != self.digest {
            return Err(Error::DigestMismatch {
                expected: self.digest.clone(),
                actual,
            });
        }
        self.file.sync_all().map_err(Error::io(&self.temp))?;
        std::fs::rename(&self.temp, &self.target).map_err(Error::io(&self.target))?;
        self.committed = true;
        if let Some(dir) = self.target.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(Error::io(dir))?;
        }
        Ok(())
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::other(Error::TooLarge {
                digest: self.digest.clone(),
                limit: self.limit,
            }));
        }
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_is_visible_only_after_verified_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = digest_of(b"hello");
        let mut w = store.writer(&digest, Some(5)).unwrap();
        w.write_all(b"hello").unwrap();
        assert!(!store.contains(&digest));
        w.commit().unwrap();
        assert_eq!(store.read(&digest).unwrap(), b"hello");
        store.verify(&digest).unwrap();
        assert_eq!(store.list().unwrap(), vec![digest]);
    }

    #[test]
    fn wrong_content_is_rejected_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = digest_of(b"hello");
        let mut w = store.writer(&digest, Some(5)).unwrap();
        w.write_all(b"hellx").unwrap();
        assert!(matches!(w.commit(), Err(Error::DigestMismatch { .. })));
        assert!(!store.contains(&digest));
        assert_eq!(
            std::fs::read_dir(dir.path().join("ingest"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn more_bytes_than_announced_are_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let mut w = store.writer(&digest_of(b"abc"), Some(3)).unwrap();
        assert!(w.write_all(b"abcd").is_err());
    }

    #[test]
    fn crashed_ingests_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let w = store.writer(&digest_of(b"x"), None).unwrap();
        std::mem::forget(w);
        ContentStore::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("ingest"))
                .unwrap()
                .count(),
            0
        );
    }
}
