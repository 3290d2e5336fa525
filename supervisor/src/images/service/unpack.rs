//! Unpacking an image's layers into snapshots; the files reach the disk in the background
//! (see `snapshot::durable`).
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
        super::check_depth(&image.id, layers.len())?;
        let chains = chain_ids(&diff_ids);
        let mut parent: Option<&str> = None;
        let mut unpacked = false;
        for ((digest, diff_id), key) in layers.iter().zip(&diff_ids).zip(&chains) {
            if self.metadata.snapshot(key)?.is_none() {
                self.unpack_layer(digest, diff_id, key, parent, progress)?;
                unpacked = true;
            }
            parent = Some(key);
        }
        if unpacked {
            self.snapshots.request_flush();
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::json;

    use super::*;
    use crate::images::content::digest_of;
    use crate::images::layer::tests::RawTar;
    use crate::images::service::Options;

    /// An image of two layers (the first gzip-compressed) stored in `service`'s content store.
    fn image(service: &ImageService) -> (Image, Vec<String>) {
        let l1 = RawTar::default().dir("etc").file("etc/a", b"a").finish();
        let l2 = RawTar::default()
            .file("etc/.wh.a", b"")
            .file("b", b"b")
            .finish();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&l1).unwrap();
        let l1_blob = gz.finish().unwrap();
        let blobs = [
            service.content.write_blob(&l1_blob).unwrap(),
            service.content.write_blob(&l2).unwrap(),
        ];
        let diff_ids = vec![digest_of(&l1), digest_of(&l2)];
        let config = json!({"rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let manifest =
            json!({"layers": blobs.iter().map(|d| json!({"digest": d})).collect::<Vec<_>>()});
        let image = Image {
            id: digest_of(config.to_string().as_bytes()),
            records: Vec::new(),
            manifest,
            config,
        };
        (image, blobs.to_vec())
    }

    #[test]
    fn layers_become_snapshots_with_progress() {
        let dir = tempfile::tempdir().unwrap();
        let service = ImageService::open(Options {
            data_root: dir.path().to_path_buf(),
            ..Default::default()
        })
        .unwrap();
        let (image, blobs) = image(&service);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        service.unpack(&image, Some(&tx)).unwrap();
        let chains = chain_ids(&image.diff_ids());
        let top = service.metadata.snapshot(&chains[1]).unwrap().unwrap();
        assert_eq!(top.parent.as_deref(), Some(chains[0].as_str()));
        let mut messages = Vec::new();
        while let Ok(m) = rx.try_recv() {
            messages.push((m.id.unwrap_or_default(), m.status));
        }
        for blob in &blobs {
            let id = progress::short_id(blob);
            assert!(
                messages.contains(&(id.clone(), "Extracting".into())),
                "{messages:?}"
            );
            assert!(
                messages.contains(&(id, "Pull complete".into())),
                "{messages:?}"
            );
        }
        // Everything is there: a second unpack does nothing and says nothing.
        service.unpack(&image, Some(&tx)).unwrap();
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_layer_that_does_not_match_its_diff_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let service = ImageService::open(Options {
            data_root: dir.path().to_path_buf(),
            ..Default::default()
        })
        .unwrap();
        let (mut image, _) = image(&service);
        image.config["rootfs"]["diff_ids"][1] = json!(digest_of(b"other"));
        let err = service.unpack(&image, None).unwrap_err();
        assert!(err.to_string().contains("diff ID"), "{err}");
        assert_eq!(service.metadata.snapshots().unwrap().len(), 1);
    }
}
