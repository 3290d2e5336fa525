//! `/_ping`, `/version`, `/info`, `/auth`.
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{ApiError, API_VERSION, MIN_API_VERSION};
use crate::containers::spec::HostFacts;
use crate::images::registry::Credentials;

/// `/_ping` (`Api-Version` and `OSType` come with every response, see `docker_headers`).
pub async fn ping() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
            (header::HeaderName::from_static("builder-version"), "1"),
        ],
        "OK",
    )
}

/// The commit berth was built from, when the build sets `BERTH_GIT_COMMIT`.
const GIT_COMMIT: &str = match option_env!("BERTH_GIT_COMMIT") {
    Some(c) => c,
    None => "",
};

/// Host facts for `/info` and `/version`, read once.
fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(Host::probe)
}

struct Host {
    facts: Option<HostFacts>,
    /// `berth-runtime`, next to the daemon's binary (what the shim runs).
    runtime: PathBuf,
    runtime_version: String,
    init_version: String,
    os_name: String,
    os_version: String,
}

impl Host {
    fn probe() -> Host {
        let facts = HostFacts::probe()
            .map_err(|e| tracing::warn!("host facts: {e}"))
            .ok();
        let runtime = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("berth-runtime")))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("berth-runtime"));
        let init = facts.as_ref().and_then(|f| f.init.clone());
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        Host {
            runtime_version: first_version(&runtime),
            init_version: init.as_deref().map(first_version).unwrap_or_default(),
            runtime,
            facts,
            os_name: os_release_field(&os_release, "PRETTY_NAME").unwrap_or_else(|| "Linux".into()),
            os_version: os_release_field(&os_release, "VERSION_ID").unwrap_or_default(),
        }
    }

    fn cgroup_version(&self) -> &'static str {
        match &self.facts {
            Some(f) if f.cgroup_v2 => "2",
            _ => "1",
        }
    }
}

/// The version in the first line of `bin --version` (`tini version 0.19.0` → `0.19.0`).
fn first_version(bin: &Path) -> String {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .next()
        .and_then(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        })
        .unwrap_or_default()
        .to_string()
}

/// A field of /etc/os-release, unquoted.
fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
}

pub async fn version() -> Json<Value> {
    let h = host();
    let arch = crate::images::registry::Platform::host().architecture;
    let kernel = kernel_release();
    Json(json!({
        "Platform": { "Name": "berth" },
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": GIT_COMMIT,
        "GoVersion": "rust",
        "Os": std::env::consts::OS,
        "Arch": arch,
        "KernelVersion": kernel,
        "Components": [
            { "Name": "Engine", "Version": env!("CARGO_PKG_VERSION"), "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": std::env::consts::OS,
                "Arch": arch,
                "KernelVersion": kernel,
                "GitCommit": GIT_COMMIT,
                "GoVersion": "rust",
                "Experimental": "false",
            }},
            { "Name": "berth-runtime", "Version": h.runtime_version, "Details": { "GitCommit": "" } },
            { "Name": "docker-init", "Version": h.init_version, "Details": { "GitCommit": "" } },
        ],
    }))
}

/// `/info`'s fields about the host and the runtime (the counts are the caller's).
fn host_info() -> Value {
    let h = host();
    let mut security = vec!["name=seccomp,profile=default".to_string()];
    if h.cgroup_version() == "2" {
        security.push("name=cgroupns".into());
    }
    let commit = json!({ "ID": "", "Expected": "" });
    json!({
        "MemoryLimit": true, "SwapLimit": true, "KernelMemory": false, "KernelMemoryTCP": false,
        "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true,
        "PidsLimit": true, "OomKillDisable": h.cgroup_version() == "1",
        "IPv4Forwarding": read_trimmed("/proc/sys/net/ipv4/ip_forward") == "1",
        "BridgeNfIptables": read_trimmed("/proc/sys/net/bridge/bridge-nf-call-iptables") == "1",
        "BridgeNfIp6tables": read_trimmed("/proc/sys/net/bridge/bridge-nf-call-ip6tables") == "1",
        "Debug": false,
        "NFd": std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
        "NGoroutines": 0,
        "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": h.cgroup_version(),
        "NEventsListener": 0,
        "OperatingSystem": h.os_name,
        "OSVersion": h.os_version,
        "Runtimes": { "berth": { "path": h.runtime } },
        "DefaultRuntime": "berth",
        "Swarm": { "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                   "ControlAvailable": false, "Error": "", "RemoteManagers": null },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": commit, "RuncCommit": commit, "InitCommit": commit,
        "SecurityOptions": security,
        "Labels": [], "ExperimentalBuild": false,
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
    })
}

pub async fn info(State(state): State<super::State>) -> Result<Json<Value>, ApiError> {
    let images = state.images.images()?.len();
    let insecure: Vec<String> = std::iter::once("127.0.0.0/8".to_string())
        .chain(state.images.options.insecure_registries.iter().cloned())
        .collect();
    let mut info = host_info();
    let counts = state.containers.counts().await;
    let base = json!({
        "ID": "berth",
        "Containers": counts.total(), "ContainersRunning": counts.running,
        "ContainersPaused": counts.paused, "ContainersStopped": counts.stopped,
        "Images": images,
        "Driver": "overlayfs",
        "DockerRootDir": state.data_root,
        "OSType": std::env::consts::OS,
        "Architecture": std::env::consts::ARCH,
        "KernelVersion": kernel_release(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem_total(),
        "Name": hostname(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": { "IndexConfigs": {}, "InsecureRegistryCIDRs": insecure },
        "Plugins": { "Volume": [], "Network": [], "Log": [] },
        "Warnings": [],
    });
    if let (Some(info), Value::Object(base)) = (info.as_object_mut(), base) {
        info.extend(base);
    }
    Ok(Json(info))
}

/// `POST /auth`: checks credentials with the registry (`docker login`).
pub async fn auth(
    State(state): State<super::State>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let credentials: Credentials = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid auth configuration: {e}")))?;
    state.images.login(&credentials).await?;
    Ok(Json(
        json!({ "Status": "Login Succeeded", "IdentityToken": "" }),
    ))
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn kernel_release() -> String {
    read_trimmed("/proc/sys/kernel/osrelease")
}

fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
}

fn mem_total() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
