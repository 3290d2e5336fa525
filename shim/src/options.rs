//! Runtime options from a Create request: containerd's runc options
//! (`containerd.runc.v1.Options`: BinaryName, Root, SystemdCgroup) or a runtime config file
//! (`ctr run --runtime-config-path`, `runtimeoptions.v1.Options`) with the same keys in TOML form.
use std::path::{Path, PathBuf};

use berth_proto::protobuf::well_known_types::any::Any;
use berth_proto::protobuf::{CodedInputStream, Message};
use berth_proto::shim::oci::Options as RuncOptions;

use crate::runtime::{DEFAULT_BINARY, DEFAULT_ROOT};

/// File in the bundle recording the options, for `delete` after the shim died.
pub const SAVED: &str = "berth-shim.json";

#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeOptions {
    pub binary: String,
    /// `--root` parent; the namespace is appended.
    pub root: PathBuf,
    pub systemd_cgroup: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            binary: DEFAULT_BINARY.into(),
            root: DEFAULT_ROOT.into(),
            systemd_cgroup: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("runtime options {type_url}: {source}")]
    Decode {
        type_url: String,
        source: berth_proto::protobuf::Error,
    },
    #[error("runtime config {path}: {source}")]
    Config {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `SystemdCgroup = true` where systemd does not manage the cgroups (not booted with it).
    #[error(
        "SystemdCgroup = true, but systemd is not the cgroup manager here ({marker} missing): set SystemdCgroup = false in the runtime options"
    )]
    NoSystemd { marker: String },
}

/// What `sd_booted()` looks at: present when systemd is the init (and cgroup manager).
pub const SYSTEMD_MARKER: &str = "/run/systemd/system";

impl RuntimeOptions {
    pub fn from_any(any: Option<&Any>) -> Result<RuntimeOptions, OptionsError> {
        let mut opts = RuntimeOptions::default();
        let Some(any) = any.filter(|a| !a.value.is_empty()) else {
            return Ok(opts);
        };
        let decode = |source| OptionsError::Decode {
            type_url: any.type_url.clone(),
            source,
        };
        if any.type_url.ends_with("runtimeoptions.v1.Options") {
            if let Some(path) = config_path(&any.value).map_err(decode)? {
                let text =
                    std::fs::read_to_string(&path).map_err(|source| OptionsError::Config {
                        path: path.clone().into(),
                        source,
                    })?;
                opts.apply_toml(&text);
            }
            return Ok(opts);
        }
        let runc = RuncOptions::parse_from_bytes(&any.value).map_err(decode)?;
        if !runc.binary_name.is_empty() {
            opts.binary = runc.binary_name;
        }
        if !runc.root.is_empty() {
            opts.root = runc.root.into();
        }
        opts.systemd_cgroup = runc.systemd_cgroup;
        Ok(opts)
    }

    /// Refuses what this host cannot do: systemd-managed cgroups without systemd (`marker`
    /// is [`SYSTEMD_MARKER`] but for tests). runc-v2 leaves that to runc, which fails each
    /// create with a message that does not name the option.
    pub fn check_host(&self, marker: &Path) -> Result<(), OptionsError> {
        if self.systemd_cgroup && !marker.is_dir() {
            return Err(OptionsError::NoSystemd {
                marker: marker.display().to_string(),
            });
        }
        Ok(())
    }

    /// `BinaryName = "runc"`, `Root = "/run/x"`, `SystemdCgroup = true` lines (TOML's basic
    /// strings and booleans, `#` comments).
    fn apply_toml(&mut self, text: &str) {
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let value = match value.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or_default(),
                None => value.split('#').next().unwrap_or_default().trim(),
            };
            match key.trim() {
                "BinaryName" | "binary_name" => self.binary = value.into(),
                "Root" | "root" => self.root = value.into(),
                "SystemdCgroup" | "systemd_cgroup" => self.systemd_cgroup = value == "true",
                _ => {}
            }
        }
    }

    pub fn save(&self, bundle: &Path) -> std::io::Result<()> {
        let v = serde_json::json!({
            "binary": self.binary, "root": self.root, "systemd_cgroup": self.systemd_cgroup,
        });
        std::fs::write(bundle.join(SAVED), v.to_string())
    }

    pub fn load(bundle: &Path) -> RuntimeOptions {
        let mut opts = RuntimeOptions::default();
        let Ok(text) = std::fs::read_to_string(bundle.join(SAVED)) else {
            return opts;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            return opts;
        };
        if let Some(b) = v["binary"].as_str() {
            opts.binary = b.into();
        }
        if let Some(r) = v["root"].as_str() {
            opts.root = r.into();
        }
        opts.systemd_cgroup = v["systemd_cgroup"].as_bool().unwrap_or(false);
        opts
    }
}

/// Field 2 (`config_path`) of `runtimeoptions.v1.Options`; the crate ships no type for it.
fn config_path(bytes: &[u8]) -> Result<Option<String>, berth_proto::protobuf::Error> {
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut path = None;
    while let Some(tag) = input.read_raw_tag_or_eof()? {
        if tag >> 3 == 2 && tag & 7 == 2 {
            path = Some(input.read_string()?);
        } else {
            input.skip_field(berth_proto::protobuf::rt::WireType::new(tag & 7).ok_or(
                berth_proto::protobuf::Error::from(std::io::Error::other("bad wire type")),
            )?)?;
        }
    }
    Ok(path.filter(|p| !p.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_options_select_binary_and_root() {
        let mut runc = RuncOptions::new();
        runc.binary_name = "runc".into();
        runc.root = "/tmp/r".into();
        let mut any = Any::new();
        any.type_url = "containerd.runc.v1.Options".into();
        any.value = runc.write_to_bytes().unwrap();
        let opts = RuntimeOptions::from_any(Some(&any)).unwrap();
        assert_eq!(opts.binary, "runc");
        assert_eq!(opts.root, PathBuf::from("/tmp/r"));
    }

    #[test]
    fn no_options_mean_defaults() {
        assert_eq!(
            RuntimeOptions::from_any(None).unwrap(),
            RuntimeOptions::default()
        );
    }

    #[test]
    fn config_file_keys() {
        let mut o = RuntimeOptions::default();
        o.apply_toml("BinaryName = \"runc\"\nSystemdCgroup = false\n");
        assert_eq!(o.binary, "runc");
        o.apply_toml(
            "# berth\nBinaryName = \"/opt/x#1\" # the runtime\nRoot = \"/r\"\nSystemdCgroup = true # yes\n",
        );
        assert_eq!(
            o,
            RuntimeOptions {
                binary: "/opt/x#1".into(),
                root: "/r".into(),
                systemd_cgroup: true
            }
        );
    }

    #[test]
    fn systemd_cgroup_needs_systemd() {
        let dir = std::env::temp_dir().join(format!("berth-shim-sd-{}", std::process::id()));
        let mut o = RuntimeOptions::default();
        assert!(o.check_host(&dir).is_ok(), "cgroupfs needs no systemd");
        o.systemd_cgroup = true;
        let err = o.check_host(&dir).unwrap_err().to_string();
        assert!(
            err.contains("SystemdCgroup") && err.contains(&dir.display().to_string()),
            "{err}"
        );
        std::fs::create_dir_all(&dir).unwrap();
        assert!(o.check_host(&dir).is_ok());
        std::fs::remove_dir(&dir).unwrap();
    }
}
