//! `push`: upload an image's blobs and manifest to its registry. (Owner: the registry engineer.)
use super::{Error, ImageService};
use crate::images::{progress, registry::Credentials};

impl ImageService {
    /// Pushes the image named `reference`; returns the pushed manifest's digest.
    pub async fn push(
        &self,
        reference: &str,
        auth: Option<Credentials>,
        progress: &progress::Sender,
    ) -> Result<String, Error> {
        let _ = (reference, auth, progress);
        Err(Error::Invalid("push is not implemented yet".into()))
    }
}
