//! Why a container's OCI spec could not be built: each names the flag or field and the value.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// docker's text: "No command specified".
    #[error("No command specified")]
    NoCommand,
    #[error("invalid {field}: unknown capability: {value:?}")]
    UnknownCapability { field: &'static str, value: String },
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("Invalid --security-opt: {0:?}")]
    SecurityOpt(String),
    #[error("invalid seccomp profile: {0}")]
    SeccompProfile(String),
    /// docker's words for two mounts at one destination.
    #[error("Duplicate mount point: {0}")]
    DuplicateMount(String),
    #[error(transparent)]
    MountConfig(#[from] super::mounts::MountConfigError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("docker-init is not available on this host (looked for {0})")]
    NoInit(String),
    #[error("building the OCI spec: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
}

impl SpecError {
    pub(crate) fn invalid(
        field: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        SpecError::Invalid {
            field,
            value: value.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SpecError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
