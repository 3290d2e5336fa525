//! `/_ping`, `/version`, `/info`, `/auth`.
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, API_VERSION, MIN_API_VERSION};
use crate::images::registry::Credentials;

pub async fn ping() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
        ],
        "OK",
    )
}

pub async fn version() -> Json<Value> {
    Json(json!({
        "Platform": { "Name": "berth" },
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "rust",
        "Os": std::env::consts::OS,
        "Arch": crate::images::registry::Platform::host().architecture,
        "KernelVersion": kernel_release(),
        "Components": [{ "Name": "Engine", "Version": env!("CARGO_PKG_VERSION"), "Details": {} }],
    }))
}

pub async fn info(State(state): State<super::State>) -> Result<Json<Value>, ApiError> {
    let images = state.images.images()?.len();
    let insecure: Vec<String> = std::iter::once("127.0.0.0/8".to_string())
        .chain(state.images.options.insecure_registries.iter().cloned())
        .collect();
    Ok(Json(json!({
        "ID": "berth",
        "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
        "Images": images,
        "Driver": "overlayfs",
        "DockerRootDir": state.data_root,
        "OperatingSystem": "berth",
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
    })))
}

/// `POST /auth`: checks credentials with the registry (`docker login`).
pub async fn auth(
    State(state): State<super::State>,
    Json(credentials): Json<Credentials>,
) -> Result<Json<Value>, ApiError> {
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
