//! `spec`: write a default config.json like `runc spec`.
use crate::{Error, Result};
use oci_spec::runtime::Spec;
use std::path::Path;

pub fn default_spec(rootless: bool) -> Result<Spec> {
    let mut spec = if rootless {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        Spec::rootless(uid, gid)
    } else {
        Spec::default()
    };
    spec.set_hostname(Some("berth".into()));
    Ok(spec)
}

/// Write `<bundle>/config.json`, refusing to overwrite one that exists.
pub fn write(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::Other(format!(
            "File {} exists. Remove it first",
            path.display()
        )));
    }
    let spec = default_spec(rootless)?;
    let text = serde_json::to_string_pretty(&spec).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| Error::io("write", &path, e))
}
