//! A container's record: what `inspect` shows and what survives the daemon (kept in
//! [`super::store`]). Config and HostConfig are docker's own JSON, stored as given (merged with
//! the image's config), so that the API returns them unchanged.
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Docker's `State.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether a task (shim + process) exists.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// Docker's `State`, times in RFC 3339 with nanoseconds (`0001-01-01T00:00:00Z` for never).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct State {
    pub status: Status,
    pub pid: u32,
    pub exit_code: i32,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
    /// Docker's `State.Health`, for a container with a healthcheck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::Health>,
}

/// The zero time docker shows for "never".
pub const NEVER: &str = "0001-01-01T00:00:00Z";

/// Now in docker's time format.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// One container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// Without docker's leading `/`.
    pub name: String,
    pub created: String,
    /// The image as the user named it (`Config.Image`).
    pub image: String,
    /// The image's config digest (`sha256:…`).
    pub image_id: String,
    /// Docker's `Config`, merged with the image's.
    pub config: Value,
    /// Docker's `HostConfig`.
    pub host_config: Value,
    /// The process's executable and arguments (Entrypoint + Cmd).
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub restart_count: u32,
    /// Where the json-file log is written (by the logging binary under the shim).
    pub log_path: String,
    /// The shim's ttrpc address while a task exists.
    #[serde(default)]
    pub shim_address: Option<String>,
    /// Stopped or killed by hand since its last manual start (docker's
    /// HasBeenManuallyStopped): the restart policy waits for the next start.
    #[serde(default)]
    pub manually_stopped: bool,
    /// Volumes and binds (inspect's `Mounts`), resolved at create.
    #[serde(default)]
    pub mount_points: Vec<crate::volumes::mounts::MountPoint>,
    /// Networks asked for at create that could not be joined yet (docker reports an unknown
    /// network or a bad `--ip` at start): network name → docker's `EndpointSettings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_networks: Option<Value>,
}

impl Container {
    pub fn tty(&self) -> bool {
        self.config["Tty"].as_bool().unwrap_or(false)
    }

    pub fn open_stdin(&self) -> bool {
        self.config["OpenStdin"].as_bool().unwrap_or(false)
    }

    pub fn auto_remove(&self) -> bool {
        self.host_config["AutoRemove"].as_bool().unwrap_or(false)
    }

    /// The snapshot holding the container's writable layer.
    pub fn snapshot_key(&self) -> String {
        format!("container-{}", self.id)
    }

    /// The signal `stop` sends first (`Config.StopSignal`, SIGTERM by default).
    pub fn stop_signal(&self) -> i32 {
        self.config["StopSignal"]
            .as_str()
            .and_then(super::signal::parse)
            .unwrap_or(libc::SIGTERM)
    }

    /// Seconds `stop` waits before SIGKILL (`Config.StopTimeout`, 10 by default).
    pub fn stop_timeout(&self) -> i64 {
        self.config["StopTimeout"].as_i64().unwrap_or(10)
    }
}
