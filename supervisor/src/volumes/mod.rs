//! Volumes: records in an embedded crash-safe store (redb, `<data-root>/volumes/metadata.redb`),
//! data under `<data-root>/volumes/NAME/_data` (docker's layout), docker's local driver
//! (plain directories, or `type=`/`device=`/`o=` mounted on first use), the references that
//! containers hold, and the copy-up of an image's directory into an empty volume.
//!
//! Crash safety: a volume's directory is made before its record is committed, and its record
//! is deleted before its directory; at open, a directory without a record (an interrupted
//! create or remove) is deleted. So a volume is either whole (record + directory) or absent.
pub mod copyup;
pub mod local;
pub mod mounts;
pub mod names;
pub mod record;
pub mod service;
mod store;

pub use record::Volume;
pub use service::{Error, VolumeService};

/// The label docker (23+) puts on the volumes it makes for `-v /path` and image `VOLUME`s.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
