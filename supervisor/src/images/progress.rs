//! Progress of pulls, pushes and loads, as docker's JSON message stream carries it:
//! `{"status":"Downloading","progressDetail":{"current":1,"total":2},"id":"0123456789ab"}`.
use serde::{Deserialize, Serialize};

/// Bytes done out of a total, for one layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// An error carried in the stream (docker sends it as the last message).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
}

/// One message of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Short layer id (12 hex digits) or the tag being pulled; absent for summary lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(
        default,
        rename = "progressDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_detail: Option<Detail>,
    /// A text bar like docker's `[=====>    ]  1.2MB/3.4MB`, for old clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(
        default,
        rename = "errorDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_detail: Option<ErrorDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Message {
    /// A status line for one layer (`id`) or, with `id` None, for the whole operation.
    pub fn status(id: Option<&str>, status: impl Into<String>) -> Self {
        Message {
            id: id.map(str::to_string),
            status: status.into(),
            ..Default::default()
        }
    }

    /// A byte-progress line for one layer.
    pub fn bytes(id: &str, status: &str, current: u64, total: u64) -> Self {
        Message {
            id: Some(id.to_string()),
            status: status.to_string(),
            progress_detail: Some(Detail {
                current: Some(current),
                total: Some(total),
            }),
            ..Default::default()
        }
    }

    /// The final error line.
    pub fn error(message: impl Into<String>) -> Self {
        let message = message.into();
        Message {
            error: Some(message.clone()),
            error_detail: Some(ErrorDetail { message }),
            ..Default::default()
        }
    }
}

/// Where an operation reports progress; a closed receiver is ignored.
pub type Sender = tokio::sync::mpsc::UnboundedSender<Message>;

/// A size in decimal units with `precision` significant digits, trailing zeros dropped:
/// docker's `units.HumanSizeWithPrecision` (`HumanSize` is precision 4: `1.987MB`).
pub fn human_size(bytes: f64, precision: i32) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", significant(size, precision), UNITS[unit])
}

/// `%.*g`: `digits` significant digits, trailing zeros dropped.
fn significant(value: f64, digits: i32) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let s = format!("{value:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The short id docker shows for a layer: 12 hex digits of its digest.
pub fn short_id(digest: &str) -> String {
    let hex = digest.split_once(':').map(|(_, h)| h).unwrap_or(digest);
    hex.chars().take(12).collect()
}
