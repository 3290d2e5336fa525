//! `pull`: resolve a reference on its registry, fetch what is missing, unpack, name it.
//! (Owner: the registry engineer.)
use super::{Error, ImageService};
use crate::images::metadata::ImageRecord;
use crate::images::{progress, registry::Credentials};

impl ImageService {
    /// Pulls `reference` for `platform` (`os/arch[/variant]`, default: this host's),
    /// reporting progress like docker, and returns the record of the name it set.
    pub async fn pull(
        &self,
        reference: &str,
        platform: Option<&str>,
        auth: Option<Credentials>,
        progress: &progress::Sender,
    ) -> Result<ImageRecord, Error> {
        let _ = (reference, platform, auth, progress);
        Err(Error::Invalid("pull is not implemented yet".into()))
    }

    /// Checks credentials against a registry (`docker login`); Ok when it accepts them.
    pub async fn login(&self, credentials: &Credentials) -> Result<(), Error> {
        let _ = credentials;
        Err(Error::Invalid("login is not implemented yet".into()))
    }
}
