//! `save` and `load`: docker-archive tarballs and OCI layouts. (Owner: the archive engineer.)
//!
//! `load` spools the whole input under `<data-root>/tmp/` (manifest.json may come last),
//! verifies every digest, size and diff ID ([`archive::plan`]), and only then imports blobs,
//! unpacks and sets names, holding the gc lock shared and a lease on what it imports. A
//! failure before the names are set removes the blobs it added.
use std::io::{Read, Write};

use serde_json::Value;

use super::{familiar_of, Error, Image, ImageService, UNTAGGED};
use crate::images::archive::{self, ArchiveImage, DockerArchiveWriter, LayerFile, Spool};
use crate::images::metadata::{self, ImageRecord, Lease, Target};
use crate::images::progress;
use crate::images::reference::Reference;

/// How long a lease of a save or load protects its blobs if the process dies.
const LEASE_SECS: u64 = 3600;

impl ImageService {
    /// Writes the named images (names or IDs) as one docker-archive tarball to `out`.
    /// Blocking: call it from a blocking thread.
    pub fn save(&self, names: &[String], out: &mut dyn Write) -> Result<(), Error> {
        // Shared: a garbage collection cannot remove what is being written.
        let _gc = self.gc_lock.blocking_read();
        let selection = self.select(names)?;
        let digests = selection
            .iter()
            .flat_map(|(image, _)| {
                let mut d = image.layer_digests();
                d.push(image.id.clone());
                d
            })
            .collect();
        let lease = self.take_lease("save", digests)?;
        let result = self.write_archive(&selection, out);
        self.metadata.remove_lease(&lease)?;
        result
    }

    fn write_archive(
        &self,
        selection: &[(Image, Vec<String>)],
        out: &mut dyn Write,
    ) -> Result<(), Error> {
        let mut writer = DockerArchiveWriter::new(out);
        for (image, tags) in selection {
            let config = self.content.read(&image.id)?;
            let layers = self.layer_files(image)?;
            writer.add_image(&config, tags, &layers)?;
        }
        writer.finish()?.flush().map_err(archive::Error::Write)?;
        Ok(())
    }

    fn layer_files(&self, image: &Image) -> Result<Vec<LayerFile>, Error> {
        let digests = image.layer_digests();
        let diff_ids = image.diff_ids();
        if digests.len() != diff_ids.len() {
            return Err(Error::Corrupt {
                what: format!("image {}", image.id),
                message: format!("{} layers, {} diff IDs", digests.len(), diff_ids.len()),
            });
        }
        digests
            .into_iter()
            .zip(diff_ids)
            .map(|(digest, diff_id)| {
                Ok(LayerFile {
                    path: self.content.path(&digest)?,
                    digest,
                    diff_id,
                })
            })
            .collect()
    }

    /// The images to save and their tags (familiar form), like docker: a name with a tag
    /// saves that tag, a repository without tag saves all its tags, an ID saves no tag.
    fn select(&self, names: &[String]) -> Result<Vec<(Image, Vec<String>)>, Error> {
        let mut out: Vec<(Image, Vec<String>)> = Vec::new();
        for name in names {
            for (image, tag) in self.select_one(name)? {
                match out.iter_mut().find(|(i, _)| i.id == image.id) {
                    Some((_, tags)) => tags.extend(tag),
                    None => out.push((image, tag.into_iter().collect())),
                }
            }
        }
        for (_, tags) in &mut out {
            tags.sort();
            tags.dedup();
        }
        Ok(out)
    }

    fn select_one(&self, name: &str) -> Result<Vec<(Image, Option<String>)>, Error> {
        if let Ok(r) = Reference::parse_bare(name) {
            if r.digest.is_none() && r.tag.is_some() {
                if let Some(rec) = self.metadata.image(&r.to_string())? {
                    let image = self.resolve(&rec.config_digest)?;
                    return Ok(vec![(image, Some(r.familiar()))]);
                }
            }
            if r.digest.is_none() && r.tag.is_none() {
                let mut all = Vec::new();
                for rec in self.metadata.images()? {
                    match Reference::parse_bare(&rec.name) {
                        Ok(t) if t.tag.is_some() && t.name() == r.name() => {
                            all.push((self.resolve(&rec.config_digest)?, Some(t.familiar())))
                        }
                        _ => {}
                    }
                }
                if !all.is_empty() {
                    return Ok(all);
                }
            }
        }
        Ok(vec![(self.resolve(name)?, None)])
    }

    fn take_lease(&self, what: &str, digests: Vec<String>) -> Result<String, Error> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = format!(
            "{what}-{}-{}-{}",
            std::process::id(),
            metadata::now(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.metadata.put_lease(
            &id,
            &Lease {
                digests,
                expires: metadata::now() + LEASE_SECS,
            },
        )?;
        Ok(id)
    }

    /// Loads a docker-archive tarball or an OCI layout tarball (plain or gzip) from `input`;
    /// returns docker's lines (`Loaded image: busybox:latest`, `Loaded image ID: sha256:…`).
    /// Blocking: call it from a blocking thread.
    pub fn load(
        &self,
        input: &mut dyn Read,
        progress: Option<&progress::Sender>,
    ) -> Result<Vec<String>, Error> {
        let spool = Spool::read(
            input,
            &self.options.data_root.join("tmp"),
            self.options.layer_bound,
        )?;
        let images = archive::plan(&spool)?;
        if images.is_empty() {
            return Err(Error::Invalid("the archive holds no image".into()));
        }
        for image in &images {
            super::check_depth(&image.config.digest, image.layers.len())?;
        }
        let _shared = self.gc_lock.blocking_read();
        let digests = images.iter().flat_map(blob_digests).collect();
        let lease = self.take_lease("load", digests)?;
        let result = self.import_all(&spool, &images, progress);
        self.metadata.remove_lease(&lease)?;
        result
    }

    fn import_all(
        &self,
        spool: &Spool,
        images: &[ArchiveImage],
        progress: Option<&progress::Sender>,
    ) -> Result<Vec<String>, Error> {
        let mut added = Vec::new();
        let result = self.import_and_unpack(spool, images, progress, &mut added);
        let loaded = match result {
            Ok(loaded) => loaded,
            Err(e) => {
                // Its blobs stay: a concurrent pull may already rely on one of them. What no
                // image names is removed by the next garbage collection after the lease ends.
                tracing::warn!(error = %e, blobs = added.len(), "load failed");
                return Err(e);
            }
        };
        let mut lines = Vec::new();
        for (image, archived) in loaded.iter().zip(images) {
            lines.extend(self.name_loaded(image, archived)?);
        }
        Ok(lines)
    }

    fn import_and_unpack(
        &self,
        spool: &Spool,
        images: &[ArchiveImage],
        progress: Option<&progress::Sender>,
        added: &mut Vec<String>,
    ) -> Result<Vec<Image>, Error> {
        let mut loaded = Vec::new();
        for archived in images {
            for blob in &archived.layers {
                self.import_blob(spool, blob, added)?;
                report(progress, blob);
            }
            self.import_blob(spool, &archived.config, added)?;
            let digest = archived.manifest_digest();
            if !self.content.contains(&digest) {
                self.content.write_blob(&archived.manifest)?;
                added.push(digest);
            }
            let image = self.image_from(archived)?;
            self.unpack(&image, progress)?;
            loaded.push(image);
        }
        Ok(loaded)
    }

    fn import_blob(
        &self,
        spool: &Spool,
        blob: &archive::Blob,
        added: &mut Vec<String>,
    ) -> Result<(), Error> {
        if self.content.contains(&blob.digest) {
            return Ok(());
        }
        let (mut file, _) = spool.open(&blob.member)?;
        let mut writer = self.content.writer(&blob.digest, Some(blob.size))?;
        std::io::copy(&mut file, &mut writer).map_err(|source| archive::Error::MemberIo {
            member: blob.member.clone(),
            source,
        })?;
        writer.commit()?;
        added.push(blob.digest.clone());
        Ok(())
    }

    fn image_from(&self, archived: &ArchiveImage) -> Result<Image, Error> {
        let target = Target {
            media_type: archived.manifest_media_type.clone(),
            digest: archived.manifest_digest(),
            size: archived.manifest.len() as u64,
        };
        let id = archived.config.digest.clone();
        let record = |name: String| ImageRecord {
            name,
            target: target.clone(),
            config_digest: id.clone(),
            repo_digest: None,
            updated: metadata::now(),
        };
        let mut records: Vec<ImageRecord> = archived.names.iter().cloned().map(record).collect();
        if records.is_empty() {
            records.push(record(format!("{UNTAGGED}{id}")));
        }
        let manifest: Value =
            serde_json::from_slice(&archived.manifest).map_err(|e| Error::Corrupt {
                what: format!("manifest {}", target.digest),
                message: e.to_string(),
            })?;
        Ok(Image {
            manifest,
            config: self.read_json(&id)?,
            id,
            records,
        })
    }

    /// Sets the names of a loaded image (an untagged record if it has none and no other
    /// name yet) and returns docker's lines for it.
    fn name_loaded(&self, image: &Image, archived: &ArchiveImage) -> Result<Vec<String>, Error> {
        if archived.names.is_empty() {
            let known = self
                .metadata
                .images()?
                .iter()
                .any(|r| r.config_digest == image.id);
            if !known {
                self.metadata.put_image(&image.records[0])?;
            }
            tracing::info!(id = %image.id, "loaded unnamed image");
            return Ok(vec![format!("Loaded image ID: {}", image.id)]);
        }
        let mut lines = Vec::new();
        for record in &image.records {
            self.set_name(record.clone())?;
            tracing::info!(name = %record.name, id = %image.id, "loaded image");
            lines.push(format!("Loaded image: {}", familiar_of(&record.name)));
        }
        Ok(lines)
    }
}

fn blob_digests(image: &ArchiveImage) -> Vec<String> {
    let mut d: Vec<String> = image.layers.iter().map(|l| l.digest.clone()).collect();
    d.push(image.config.digest.clone());
    d.push(image.manifest_digest());
    d
}

fn report(progress: Option<&progress::Sender>, blob: &archive::Blob) {
    if let Some(tx) = progress {
        let id = progress::short_id(&blob.digest);
        let _ = tx.send(progress::Message::bytes(
            &id,
            "Loading layer",
            blob.size,
            blob.size,
        ));
    }
}
