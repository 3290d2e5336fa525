//! The build cache: every step's result is an image, named in the image metadata by a key of
//! its parent image and what the step did (`build-cache@<sha256>`), so that a rebuild finds
//! it again, also after a daemon restart. Such names are no tags: listings hide images that
//! have only them, and garbage collection keeps their layers as it keeps any image's.
use sha2::{Digest, Sha256};

use super::commit;
use crate::images::service::{Error, Image, ImageService};

/// Prefix of cache names (not a valid reference, so never shown as a tag or digest).
pub use crate::images::service::BUILD_CACHE as PREFIX;

/// The cache name of the step `step` (a description of everything its result depends on
/// besides the parent) on top of `parent` (an image ID, or `scratch`).
pub fn key(parent: &str, step: &str) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    h.update(b"\n");
    h.update(step.as_bytes());
    format!("{PREFIX}{}", hex::encode(h.finalize()))
}

/// The image a cache name points at, if it is still there.
pub fn lookup(images: &ImageService, key: &str) -> Result<Option<Image>, Error> {
    let Some(record) = images.metadata.image(key)? else {
        return Ok(None);
    };
    match images.resolve(&record.config_digest) {
        Ok(image) => Ok(Some(image)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Names `image` by the cache name `key`.
pub fn remember(images: &ImageService, key: &str, image: &Image) -> Result<(), Error> {
    images.metadata.put_image(&commit::record_for(image, key))?;
    Ok(())
}
