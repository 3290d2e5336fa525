//! `save` and `load`: docker-archive tarballs and OCI layouts. (Owner: the archive engineer.)
use std::io::{Read, Write};

use super::{Error, ImageService};
use crate::images::progress;

impl ImageService {
    /// Writes the named images (names or IDs) as one docker-archive tarball to `out`.
    /// Blocking: call it from a blocking thread.
    pub fn save(&self, names: &[String], out: &mut dyn Write) -> Result<(), Error> {
        let _ = (names, out);
        Err(Error::Invalid("save is not implemented yet".into()))
    }

    /// Loads a docker-archive tarball or an OCI layout tarball (plain or gzip) from `input`;
    /// returns docker's lines (`Loaded image: busybox:latest`, `Loaded image ID: sha256:…`).
    /// Blocking: call it from a blocking thread.
    pub fn load(
        &self,
        input: &mut dyn Read,
        progress: Option<&progress::Sender>,
    ) -> Result<Vec<String>, Error> {
        let _ = (input, progress);
        Err(Error::Invalid("load is not implemented yet".into()))
    }
}
