//! Reading tar streams safely, shared by layer extraction and `load`: decompression told
//! apart by magic bytes, a reader that hashes what passes through it, and a guard that refuses
//! oversized GNU long-name / long-link and PAX extension records before the `tar` crate reads
//! them into memory.
//!
//! The `tar` crate (0.4) reads the data of an `L`, `K` or `x` header whole into a `Vec` while
//! it looks for the entry they describe (and that of a `g` header when its PAX records are
//! asked for), however large the header says it is: a few megabytes of gzip can declare
//! gigabytes. [`Guarded`] sits between the stream and the crate and looks at every header the
//! crate reads while looking for the next entry; one of these four types that declares more
//! than [`EXTENSION_LIMIT`] bytes fails the read before any of its data is read. It knows
//! where the headers are because the caller drains each entry before asking for the next one
//! (see [`Arm::arm`]), so the next header starts at the next 512-byte boundary; headers
//! after an accepted extension header follow at its size rounded up, as the crate reads them.
use std::cell::Cell;
use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::rc::Rc;

use sha2::{Digest as _, Sha256};

/// Largest GNU long name, long link or PAX extension record accepted.
pub(crate) const EXTENSION_LIMIT: u64 = 1 << 20;
const BLOCK: u64 = 512;

/// How a stream is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detects gzip (`1f 8b`) and zstd (`28 b5 2f fd`) magic numbers.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Wraps `reader` in the decompressor its first bytes call for; returns which one it was.
pub(crate) fn decompress<'a>(
    reader: impl Read + 'a,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut reader = BufReader::with_capacity(128 << 10, reader);
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match reader.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let compression = Compression::detect(&magic[..got]);
    let whole = io::Cursor::new(magic[..got].to_vec()).chain(reader);
    let plain: Box<dyn Read + 'a> = match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(whole)?),
        Compression::None => Box::new(whole),
    };
    Ok((compression, plain))
}

/// A decompressing reader over `input`, whatever its compression.
pub(crate) fn decompressed<'a>(input: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    decompress(input).map(|(_, plain)| plain)
}

/// Counts and hashes what is read or written through it.
pub(crate) struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R> Hashing<R> {
    pub(crate) fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// `sha256:<hex>` of what passed, and how many bytes.
    pub(crate) fn finish(self) -> (String, u64) {
        let (_, digest, count) = self.into_parts();
        (digest, count)
    }

    /// The inner reader or writer, the digest and the count.
    pub(crate) fn into_parts(self) -> (R, String, u64) {
        let digest = format!("sha256:{:x}", self.hasher.finalize());
        (self.inner, digest, self.count)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An extension header larger than [`EXTENSION_LIMIT`], refused (inside an `io::Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtensionTooLarge {
    /// The header's own name (`././@LongLink`, `PaxHeaders.1/name`...).
    pub header: String,
    pub kind: &'static str,
    pub size: u64,
}

impl ExtensionTooLarge {
    /// The refusal without the header's name.
    pub(crate) fn reason(&self) -> String {
        format!(
            "{} of {} bytes refused: more than the {EXTENSION_LIMIT} allowed",
            self.kind, self.size
        )
    }

    /// The refusal an `io::Error` from a [`Guarded`] reader carries, if it is one.
    pub(crate) fn of(error: &io::Error) -> Option<&ExtensionTooLarge> {
        error.get_ref().and_then(|e| e.downcast_ref())
    }
}

impl fmt::Display for ExtensionTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tar header {:?}: {}", self.header, self.reason())
    }
}

impl std::error::Error for ExtensionTooLarge {}

/// The reader to give `tar::Archive` (see the module docs).
pub(crate) struct Guarded<R> {
    inner: R,
    /// Bytes read so far: the crate's position in the stream.
    count: u64,
    armed: Rc<Cell<bool>>,
    /// Where the next header the crate reads starts, while it looks for an entry.
    next_header: Option<u64>,
    block: [u8; BLOCK as usize],
    filled: usize,
}

/// Tells a [`Guarded`] reader that the crate is about to look for the next entry.
#[derive(Clone)]
pub(crate) struct Arm(Rc<Cell<bool>>);

impl Arm {
    /// Call before each `Entries::next`, once the previous entry was read to its end.
    pub(crate) fn arm(&self) {
        self.0.set(true);
    }
}

/// A guarded reader over `inner` and the handle that arms it.
pub(crate) fn guarded<R: Read>(inner: R) -> (Guarded<R>, Arm) {
    let armed = Rc::new(Cell::new(false));
    let reader = Guarded {
        inner,
        count: 0,
        armed: armed.clone(),
        next_header: None,
        block: [0; BLOCK as usize],
        filled: 0,
    };
    (reader, Arm(armed))
}

impl<R> Guarded<R> {
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    /// Collects the header bytes among `bytes` (read at `start`), checking each header whole.
    fn watch(&mut self, start: u64, bytes: &[u8]) -> io::Result<()> {
        let end = start + bytes.len() as u64;
        while let Some(at) = self.next_header {
            let from = at + self.filled as u64;
            if from >= end {
                break;
            }
            if from < start {
                // Cannot happen with contiguous reads; stop watching rather than misread.
                self.next_header = None;
                break;
            }
            let offset = (from - start) as usize;
            let take = (BLOCK as usize - self.filled).min(bytes.len() - offset);
            self.block[self.filled..self.filled + take]
                .copy_from_slice(&bytes[offset..offset + take]);
            self.filled += take;
            if self.filled < BLOCK as usize {
                break;
            }
            self.filled = 0;
            self.next_header = self.check(at)?;
        }
        Ok(())
    }

    /// Refuses an oversized extension header; returns where the header after it starts if
    /// the crate reads on to find the entry (an `L`, `K` or `x` header it recognizes).
    fn check(&self, at: u64) -> io::Result<Option<u64>> {
        let header = tar::Header::from_byte_slice(&self.block);
        let kind = header.entry_type();
        let what = if kind.is_gnu_longname() {
            "GNU long name"
        } else if kind.is_gnu_longlink() {
            "GNU long link name"
        } else if kind.is_pax_local_extensions() {
            "PAX extended header"
        } else if kind.is_pax_global_extensions() {
            "PAX global header"
        } else {
            return Ok(None);
        };
        // A size the crate cannot parse is its error to report.
        let Ok(size) = header.entry_size() else {
            return Ok(None);
        };
        if size > EXTENSION_LIMIT {
            let refused = ExtensionTooLarge {
                header: String::from_utf8_lossy(&header.path_bytes()).into_owned(),
                kind: what,
                size,
            };
            return Err(io::Error::new(io::ErrorKind::InvalidData, refused));
        }
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        if !recognized || kind.is_pax_global_extensions() {
            // Handed out as an entry of its own: the search ends here.
            return Ok(None);
        }
        Ok(Some(at + BLOCK + size.div_ceil(BLOCK) * BLOCK))
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.armed.replace(false) {
            self.next_header = Some(self.count.div_ceil(BLOCK) * BLOCK);
            self.filled = 0;
        }
        let n = self.inner.read(buf)?;
        let start = self.count;
        self.count += n as u64;
        self.watch(start, &buf[..n])?;
        Ok(n)
    }
}

/// Reads a tar stream entry by entry through a [`Guarded`] reader: each entry is drained
/// after `each` is done with it, and the guard armed before the next is looked for.
pub(crate) fn for_each_entry<R: Read, E>(
    archive: &mut tar::Archive<Guarded<R>>,
    arm: &Arm,
    stream_error: impl Fn(io::Error) -> E,
    mut each: impl FnMut(&mut tar::Entry<'_, Guarded<R>>) -> Result<(), E>,
) -> Result<(), E> {
    let mut entries = archive.entries().map_err(&stream_error)?;
    loop {
        arm.arm();
        let Some(entry) = entries.next() else {
            return Ok(());
        };
        let mut entry = entry.map_err(&stream_error)?;
        each(&mut entry)?;
        io::copy(&mut entry, &mut io::sink()).map_err(&stream_error)?;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A raw header of `kind` named `name` that declares `size` bytes of data.
    fn raw_header(kind: tar::EntryType, name: &str, size: u64) -> [u8; 512] {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(size);
        header.set_cksum();
        *header.as_bytes()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// A gzip stream of one GNU long-name header declaring `declared` bytes, followed by
    /// `mib` MiB of zeros (gzip members of 1 MiB each, about 1 KiB apiece on disk).
    pub(crate) fn long_name_bomb(declared: u64, mib: usize) -> Vec<u8> {
        let mut out = gzip(&raw_header(
            tar::EntryType::GNULongName,
            "././@LongLink",
            declared,
        ));
        let zeros = gzip(&vec![0u8; 1 << 20]);
        for _ in 0..mib {
            out.extend_from_slice(&zeros);
        }
        out
    }

    /// An entry's path, link name and PAX keys.
    type Listed = (String, Option<String>, Vec<String>);

    /// Entries' path, link name and PAX keys, read the guarded way.
    fn listing(bytes: &[u8]) -> Result<Vec<Listed>, io::Error> {
        let (reader, arm) = guarded(decompressed(bytes)?);
        let mut archive = tar::Archive::new(reader);
        let mut out = Vec::new();
        for_each_entry(
            &mut archive,
            &arm,
            |e| e,
            |entry| {
                let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let link = entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned());
                let mut keys = Vec::new();
                if let Some(pax) = entry.pax_extensions()? {
                    for ext in pax {
                        keys.push(String::from_utf8_lossy(ext?.key_bytes()).into_owned());
                    }
                }
                out.push((path, link, keys));
                Ok(())
            },
        )?;
        Ok(out)
    }

    #[test]
    fn long_names_links_and_pax_records_still_read() {
        let long_dir = "d".repeat(150);
        let long_file = format!("{long_dir}/{}", "f".repeat(200));
        let long_target = format!("../{}", "t".repeat(300));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, &long_file, &b"abc"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "link", &long_target).unwrap();
        // A PAX header (a big but allowed record) naming the next entry.
        let comment = "c".repeat(600 << 10);
        b.append_pax_extensions([
            ("comment", comment.as_bytes()),
            ("path", b"pax/name".as_slice()),
            ("SCHILY.xattr.user.k", b"v".as_slice()),
        ])
        .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "short", &b"x"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let entries = listing(&gzip(&bytes)).unwrap();
        assert_eq!(entries.len(), 3, "{entries:?}");
        assert_eq!(entries[0].0, long_file);
        assert_eq!(entries[1].1.as_deref(), Some(long_target.as_str()));
        assert_eq!(entries[2].0, "pax/name");
        assert_eq!(
            entries[2].2,
            ["comment", "path", "SCHILY.xattr.user.k"].map(String::from)
        );
    }

    #[test]
    fn oversized_extension_headers_are_refused_before_they_are_read() {
        let big = EXTENSION_LIMIT + 1;
        let file = raw_header(tar::EntryType::Regular, "f", 0);
        for (headers, refused) in [
            (
                vec![(tar::EntryType::GNULongName, "L", big)],
                "GNU long name",
            ),
            (
                vec![(tar::EntryType::GNULongLink, "K", big)],
                "GNU long link",
            ),
            (vec![(tar::EntryType::XHeader, "x", big)], "PAX extended"),
            (
                vec![(tar::EntryType::XGlobalHeader, "g", big)],
                "PAX global",
            ),
            // One after an accepted one, and after a whole entry.
            (
                vec![
                    (tar::EntryType::GNULongName, "L", 1000),
                    (tar::EntryType::XHeader, "x2", big),
                ],
                "PAX extended",
            ),
        ] {
            let mut bytes = file.to_vec();
            for (kind, name, size) in headers {
                bytes.extend_from_slice(&raw_header(kind, name, size));
                // Data as declared, up to a little more than the limit.
                let data = size.min(EXTENSION_LIMIT + 512).div_ceil(512) * 512;
                bytes.extend(std::iter::repeat_n(b'a', data as usize));
            }
            bytes.extend_from_slice(&file);
            let error = listing(&bytes).unwrap_err();
            let too_large = ExtensionTooLarge::of(&error).unwrap_or_else(|| panic!("{error}"));
            assert_eq!(too_large.size, big, "{error}");
            assert!(error.to_string().contains(refused), "{error}");
        }
    }
}
