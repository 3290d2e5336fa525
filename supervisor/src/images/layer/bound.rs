//! How far a compressed stream may expand when it is unpacked: a layer (or an archive) of a
//! few megabytes of gzip can declare gigabytes of zeros. The bound grows with the compressed
//! bytes read so far, so it needs no size known in advance.
use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// The bound: `ratio` times the compressed bytes read, never less than `floor`; or a fixed
/// `cap` when one is configured (`berth daemon --max-layer-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeBound {
    pub ratio: u64,
    pub floor: u64,
    pub cap: Option<u64>,
}

/// The default ratio: generous for real layers, which rarely compress 10:1.
pub const DEFAULT_RATIO: u64 = 64;
/// The default floor: small layers of zeros up to 1 GiB still unpack.
pub const DEFAULT_FLOOR: u64 = 1 << 30;

impl Default for SizeBound {
    fn default() -> Self {
        SizeBound {
            ratio: DEFAULT_RATIO,
            floor: DEFAULT_FLOOR,
            cap: None,
        }
    }
}

impl SizeBound {
    /// A fixed limit.
    pub fn fixed(cap: u64) -> Self {
        SizeBound {
            cap: Some(cap),
            ..Default::default()
        }
    }

    /// Bytes allowed out of `compressed` bytes in.
    pub fn limit(&self, compressed: u64) -> u64 {
        self.cap
            .unwrap_or_else(|| compressed.saturating_mul(self.ratio).max(self.floor))
    }
}

/// What a read past the bound fails with.
#[derive(Debug, thiserror::Error)]
pub enum Expanded {
    #[error("more than {cap} bytes uncompressed, the limit set by --max-layer-size")]
    Cap { cap: u64 },
    #[error(
        "more than {limit} bytes uncompressed from {compressed} compressed bytes: at most \
         {ratio}x the compressed size (and never less than {floor} bytes) is unpacked; \
         `berth daemon --max-layer-size` sets another limit"
    )]
    Ratio {
        limit: u64,
        compressed: u64,
        ratio: u64,
        floor: u64,
    },
}

/// Counts the compressed bytes read through it.
pub(crate) struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Fails a read that would take the decompressed bytes past the bound.
pub(crate) struct Bounded<R> {
    inner: R,
    read: u64,
    compressed: Rc<Cell<u64>>,
    bound: SizeBound,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let compressed = self.compressed.get();
        let limit = self.bound.limit(compressed);
        if self.read > limit {
            let err = match self.bound.cap {
                Some(cap) => Expanded::Cap { cap },
                None => Expanded::Ratio {
                    limit,
                    compressed,
                    ratio: self.bound.ratio,
                    floor: self.bound.floor,
                },
            };
            return Err(io::Error::other(err));
        }
        Ok(n)
    }
}

/// Decompresses `reader` (see [`super::stream::decompress`]) within `bound`.
pub(crate) fn decompress<'a>(
    reader: impl Read + 'a,
    bound: SizeBound,
) -> io::Result<(super::stream::Compression, Box<dyn Read + 'a>)> {
    let count = Rc::new(Cell::new(0));
    let counting = Counting {
        inner: reader,
        count: count.clone(),
    };
    let (compression, plain) = super::stream::decompress(counting)?;
    let bounded = Bounded {
        inner: plain,
        read: 0,
        compressed: count,
        bound,
    };
    Ok((compression, Box::new(bounded)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip_zeros(n: usize) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        io::Write::write_all(&mut gz, &vec![0u8; n]).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn a_bomb_stops_at_the_ratio_and_a_fair_stream_passes() {
        let bomb = gzip_zeros(8 << 20);
        let bound = SizeBound {
            ratio: 64,
            floor: 1 << 20,
            cap: None,
        };
        let (_, mut plain) = decompress(&bomb[..], bound).unwrap();
        let err = io::copy(&mut plain, &mut io::sink())
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 64x the compressed size"), "{err}");
        let (_, mut plain) = decompress(&bomb[..], SizeBound::default()).unwrap();
        assert_eq!(io::copy(&mut plain, &mut io::sink()).unwrap(), 8 << 20);
        let (_, mut plain) = decompress(&bomb[..], SizeBound::fixed(1000)).unwrap();
        let err = io::copy(&mut plain, &mut io::sink())
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 1000 bytes"), "{err}");
        assert_eq!(SizeBound::default().limit(100 << 20), 6400 << 20);
    }
}
