//! A container's on-disk record: `<root>/<id>/state.json`, and its live status.
use crate::cgroups::Cgroup;
use crate::{Error, Result};
use oci_spec::runtime::{ContainerState, State};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// An empty file that says `create` is still setting the container up: an interrupted create
/// leaves it. A marker rather than a field, so that state.json is written once per container:
/// on ext4 a rename over an existing file forces its blocks to disk, which makes the later
/// unlink cost milliseconds (a synchronous discard on this kind of disk).
pub const CREATING_MARKER: &str = "creating";

/// What the runtime remembers about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/PID/stat), to tell it from a reused pid.
    pub pid_start: u64,
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: Cgroup,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// The hooks that run after create (poststart, poststop), kept in case the bundle goes.
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The config's `ociVersion`: from 1.3 a failing poststart hook fails `start`.
    #[serde(default)]
    pub oci_version: String,
}

/// The state directory of one container.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Container ids become directory names: keep them to what runc accepts.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::State(format!("invalid container id {id:?}")))
    }
}

impl Container {
    pub fn load(root: &Path, id: &str) -> Result<Self> {
        check_id(id)?;
        let path = dir(root, id).join(STATE_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        serde_json::from_slice(&text).map_err(|e| Error::State(format!("{}: {e}", path.display())))
    }

    /// Write state.json atomically (temp file + rename), so a crash never leaves half a file.
    /// Written once per container (see `CREATING_MARKER`).
    pub fn save(&self, root: &Path) -> Result<()> {
        let dir = dir(root, &self.id);
        let tmp = dir.join(".state.json.tmp");
        let text = serde_json::to_vec(self).map_err(|e| Error::Other(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| Error::io("write", &tmp, e))?;
        let path = dir.join(STATE_FILE);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
    }

    /// Is the container's init still the process we started?
    pub fn is_alive(&self) -> bool {
        self.pid > 0
            && process_start_time(self.pid).is_some_and(|t| t == self.pid_start)
            && !is_zombie(self.pid)
    }

    pub fn status(&self, root: &Path) -> ContainerState {
        if !self.is_alive() {
            return ContainerState::Stopped;
        }
        let dir = dir(root, &self.id);
        if dir.join(CREATING_MARKER).exists() {
            ContainerState::Creating
        } else if dir.join(EXEC_FIFO).exists() {
            ContainerState::Created
        } else {
            ContainerState::Running
        }
    }

    /// Status as a word, with runc's `paused` for a running container whose cgroup is frozen.
    pub fn status_word(&self, root: &Path) -> String {
        let status = self.status(root);
        if status == ContainerState::Running && self.cgroup.is_frozen().unwrap_or(false) {
            return "paused".into();
        }
        status.to_string()
    }

    /// The runtime-spec state, as given to hooks.
    pub fn oci_state(&self, status: ContainerState) -> State {
        let mut state = State::default();
        state.set_version(oci_spec::runtime::VERSION.to_string());
        state.set_id(self.id.clone());
        state.set_status(status);
        state.set_pid((status != ContainerState::Stopped).then_some(self.pid));
        state.set_bundle(self.bundle.clone());
        state.set_annotations((!self.annotations.is_empty()).then(|| self.annotations.clone()));
        state
    }

    /// runc's `state` output: the runtime-spec state plus rootfs, created and owner.
    pub fn runc_state_json(&self, root: &Path) -> RuncState {
        let status = self.status_word(root);
        RuncState {
            oci_version: oci_spec::runtime::VERSION.to_string(),
            id: self.id.clone(),
            pid: if status == "stopped" { 0 } else { self.pid },
            status: status.to_string(),
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            annotations: self.annotations.clone(),
            owner: self.owner.clone(),
        }
    }
}

/// What `state` and `list --format json` print, keys in runc's order.
#[derive(Debug, Clone, Serialize)]
pub struct RuncState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    pub owner: String,
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split(' ').nth(19)?.parse().ok()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(true)
}

/// Ids of every container under `root`, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read dir", root, e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// RFC 3339 UTC time with nanoseconds, like runc's `created`.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn rejects_bad_ids() {
        assert!(check_id("web-1_a.b+c").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
    }
}
