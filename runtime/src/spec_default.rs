//! `spec`: write a default config.json, the very one `runc spec` (1.1.5) writes: tools and
//! test suites run `spec` and then edit the result, so the template's fields, their order and
//! their values (terminal on, devices deny-all, no inheritable capabilities, no cgroup
//! namespace) are runc's.
use crate::{Error, Result};
use std::path::Path;

const DEFAULT: &str = include_str!("spec_template/default.json");
/// `spec --rootless`: the user namespace maps container root to the caller's effective ids.
const ROOTLESS: &str = include_str!("spec_template/rootless.json");

/// The text of the default config.json.
pub fn default_spec_text(rootless: bool) -> String {
    if rootless {
        ROOTLESS
            .replace("@HOST_UID@", &nix::unistd::geteuid().to_string())
            .replace("@HOST_GID@", &nix::unistd::getegid().to_string())
    } else {
        DEFAULT.to_string()
    }
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
    std::fs::write(&path, default_spec_text(rootless)).map_err(|e| Error::io("write", &path, e))
}

#[cfg(test)]
mod tests {
    use super::default_spec_text;
    use oci_spec::runtime::Spec;

    #[test]
    fn templates_are_valid_specs() {
        for rootless in [false, true] {
            let spec: Spec = serde_json::from_str(&default_spec_text(rootless)).unwrap();
            let process = spec.process().as_ref().unwrap();
            assert!(process.terminal().unwrap());
            let caps = process.capabilities().as_ref().unwrap();
            assert!(caps.inheritable().is_none());
            let linux = spec.linux().as_ref().unwrap();
            let user = linux
                .namespaces()
                .as_ref()
                .unwrap()
                .iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User);
            assert_eq!(user, rootless);
            assert_eq!(linux.uid_mappings().is_some(), rootless);
        }
    }
}
