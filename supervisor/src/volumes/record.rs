//! One volume's record, and docker's JSON for it (`volume inspect`, `GET /volumes`).
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What the store keeps of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    /// Always `local` (the only driver).
    pub driver: String,
    /// `None` is docker's `null` (a volume made by a container), `Some({})` one made by
    /// `volume create` without labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// The local driver's `type`, `device`, `o`.
    pub options: Option<BTreeMap<String, String>>,
    /// RFC 3339, seconds, local offset (docker's `CreatedAt`).
    pub created_at: String,
}

impl Volume {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key).map(String::as_str)
    }

    pub fn is_anonymous(&self) -> bool {
        self.label(super::ANONYMOUS_LABEL).is_some()
    }

    /// The local driver's options, empty when none.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.as_ref()?.get(key).map(String::as_str)
    }

    /// Whether the volume is a mount (`type=`/`device=`) rather than a plain directory.
    pub fn is_mounted_kind(&self) -> bool {
        self.option("type").is_some() || self.option("device").is_some()
    }

    /// docker's `volume.Volume` JSON; `mountpoint` is `<root>/NAME/_data`.
    pub fn to_json(&self, mountpoint: &Path) -> Value {
        json!({
            "CreatedAt": self.created_at,
            "Driver": self.driver,
            "Labels": self.labels,
            "Mountpoint": mountpoint.display().to_string(),
            "Name": self.name,
            "Options": self.options,
            "Scope": "local",
        })
    }
}

/// Now as docker writes `CreatedAt` (`2026-12-01T18:40:00Z`).
pub fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
