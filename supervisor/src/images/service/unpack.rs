//! Unpacking an image's layers into snapshots. (Owner: the layers & snapshots engineer.)
use std::io::Read;

use super::{Error, Image, ImageService};
use crate::images::progress::{self, Message};
use crate::images::snapshot::chain_ids;

/// Bytes between two "Extracting" messages.
const PROGRESS_STEP: u64 = 512 << 10;

impl ImageService {
    /// Makes sure every layer of `image` is a committed snapshot (keyed by chain ID),
    /// unpacking the missing ones in order and verifying each diff ID. Blocking.
    /// Concurrent unpacks of a shared layer extract it once: the snapshotter locks per key.
    pub fn unpack(&self, image: &Image, progress: Option<&progress::Sender>) -> Result<(), Error> {
        let diff_ids = image.diff_ids();
        let layers = image.layer_digests();
        if diff_ids.len() != layers.len() {
            return Err(Error::Corrupt {
                what: format!("image {}", image.id),
                message: format!(
                    "manifest has {} layers but config has {} diff IDs",
                    layers.len(),
                    diff_ids.len()
                ),
            });
        }
        let chains = chain_ids(&diff_ids);
        let mut parent: Option<&str> = None;
        for ((digest, diff_id), key) in layers.iter().zip(&diff_ids).zip(&chains) {
            if self.metadata.snapshot(key)?.is_none() {
                self.unpack_layer(digest, diff_id, key, parent, progress)?;
            }
            parent = Some(key);
        }
        Ok(())
    }

    /// Unpacks the layer blob `digest` as snapshot `key`, reporting like docker.
    fn unpack_layer(
        &self,
        digest: &str,
        diff_id: &str,
        key: &str,
        parent: Option<&str>,
        progress: Option<&progress::Sender>,
    ) -> Result<(), Error> {
        let blob = self.content.open_blob(digest)?;
        let total = blob.metadata().map(|m| m.len()).unwrap_or(0);
        let id = progress::short_id(digest);
        let reader = ProgressReader {
            inner: blob,
            sender: progress,
            id: &id,
            total,
            done: 0,
            reported: 0,
        };
        tracing::debug!(%digest, %key, "unpacking layer");
        self.snapshots.unpack(key, parent, reader, diff_id)?;
        if let Some(sender) = progress {
            let _ = sender.send(Message::status(Some(&id), "Pull complete"));
        }
        Ok(())
    }
}

/// A blob reader that sends "Extracting" messages as its bytes are consumed.
struct ProgressReader<'a, R> {
    inner: R,
    sender: Option<&'a progress::Sender>,
    id: &'a str,
    total: u64,
    done: u64,
    reported: u64,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        let finished = n == 0 && self.reported < self.done;
        if self.done - self.reported >= PROGRESS_STEP || finished {
            if let Some(sender) = self.sender {
                let _ = sender.send(Message::bytes(self.id, "Extracting", self.done, self.total));
            }
            self.reported = self.done;
        }
        Ok(n)
    }
}
