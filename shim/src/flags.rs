//! containerd's shim command line: Go `flag` style (`-name value`, `-name=value`, `--name`).
use std::path::PathBuf;

/// The flags containerd passes to `containerd-shim-<name>-v2`.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub namespace: String,
    pub address: String,
    pub publish_binary: String,
    pub id: String,
    pub bundle: Option<PathBuf>,
    pub socket: Option<String>,
    pub debug: bool,
    /// `start`, `delete`, or `None` for the long-lived server.
    pub action: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("flag {0} needs a value")]
    MissingValue(String),
    #[error("unknown flag {0}")]
    Unknown(String),
}

impl Flags {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Flags, FlagError> {
        let mut flags = Flags::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                flags.action = Some(arg);
                continue;
            };
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (name.to_owned(), None),
            };
            if name == "debug" || name == "v" {
                flags.debug = inline.as_deref().is_none_or(|v| v != "false");
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => args
                    .next()
                    .ok_or_else(|| FlagError::MissingValue(arg.clone()))?,
            };
            match name.as_str() {
                "namespace" => flags.namespace = value,
                "address" => flags.address = value,
                "publish-binary" => flags.publish_binary = value,
                "id" => flags.id = value,
                "bundle" => flags.bundle = Some(value.into()),
                "socket" => flags.socket = Some(value),
                _ => return Err(FlagError::Unknown(arg)),
            }
        }
        Ok(flags)
    }

    /// Arguments that reproduce these flags (without the action), for re-executing the shim.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "-namespace".into(),
            self.namespace.clone(),
            "-id".into(),
            self.id.clone(),
            "-address".into(),
            self.address.clone(),
            "-publish-binary".into(),
            self.publish_binary.clone(),
        ];
        if self.debug {
            args.push("-debug".into());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_containerd_start_command_line() {
        let args = "-namespace default -address /run/containerd/containerd.sock -publish-binary /usr/bin/containerd -id c1 -debug start";
        let f = Flags::parse(args.split(' ').map(String::from)).unwrap();
        assert_eq!(f.namespace, "default");
        assert_eq!(f.address, "/run/containerd/containerd.sock");
        assert_eq!(f.publish_binary, "/usr/bin/containerd");
        assert_eq!(f.id, "c1");
        assert!(f.debug);
        assert_eq!(f.action.as_deref(), Some("start"));
    }

    #[test]
    fn parses_inline_values_and_bundle() {
        let f = Flags::parse(["--id=x", "-bundle", "/b", "delete"].map(String::from)).unwrap();
        assert_eq!(f.id, "x");
        assert_eq!(f.bundle.unwrap().to_str(), Some("/b"));
        assert_eq!(f.action.as_deref(), Some("delete"));
    }
}
