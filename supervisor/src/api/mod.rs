//! Docker Engine API subset: routing of one parsed request to a JSON response.
//!
//! Version prefixes (`/v1.41/...`, any `/vX.Y/`) are stripped; unknown paths answer 404 and
//! not-yet-wired image endpoints answer 501, both as `{"message": "..."}` like dockerd.

/// Highest and lowest API versions this daemon speaks.
pub const API_VERSION: &str = "1.41";
pub const MIN_API_VERSION: &str = "1.12";

/// One response: status code and JSON (or plain) body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    fn json(status: u16, value: serde_json::Value) -> Self {
        Response {
            status,
            content_type: "application/json",
            body: value.to_string(),
        }
    }

    /// A docker-shaped error body: `{"message": "..."}`.
    pub fn error(status: u16, message: &str) -> Self {
        Self::json(status, serde_json::json!({ "message": message }))
    }
}

/// Strips a `/vX.Y` prefix and the query string.
pub fn strip_version(path: &str) -> &str {
    let path = path.split('?').next().unwrap_or(path);
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(slash) = rest.find('/') {
            let version = &rest[..slash];
            if !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.') {
                return &rest[slash..];
            }
        }
    }
    path
}

/// Routes a request (without body handling yet) to its response.
pub fn route(method: &str, raw_path: &str, data_root: &str) -> Response {
    let path = strip_version(raw_path);
    match (method, path) {
        ("GET" | "HEAD", "/_ping") => Response {
            status: 200,
            content_type: "text/plain",
            body: "OK".into(),
        },
        ("GET", "/version") => Response::json(200, version()),
        ("GET", "/info") => Response::json(200, info(data_root)),
        (_, p) if p.starts_with("/images") || p == "/auth" => {
            Response::error(501, &format!("{method} {p} is not implemented yet"))
        }
        (_, p) => Response::error(404, &format!("page not found: {p}")),
    }
}

fn version() -> serde_json::Value {
    serde_json::json!({
        "Platform": { "Name": "berth" },
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "rust",
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "KernelVersion": kernel_release(),
        "Components": [{ "Name": "Engine", "Version": env!("CARGO_PKG_VERSION"), "Details": {} }],
    })
}

fn info(data_root: &str) -> serde_json::Value {
    serde_json::json!({
        "ID": "berth",
        "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
        "Images": 0,
        "Driver": "overlayfs",
        "DockerRootDir": data_root,
        "OperatingSystem": "berth",
        "OSType": std::env::consts::OS,
        "Architecture": std::env::consts::ARCH,
        "KernelVersion": kernel_release(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "Name": hostname(),
        "RegistryConfig": { "IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"] },
        "Plugins": { "Volume": [], "Network": [], "Log": [] },
        "Warnings": [],
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_any_version_prefix() {
        assert_eq!(strip_version("/v1.41/_ping"), "/_ping");
        assert_eq!(strip_version("/v1.24/images/json?all=1"), "/images/json");
        assert_eq!(strip_version("/version"), "/version");
    }

    #[test]
    fn unknown_path_is_404_with_message() {
        let r = route("GET", "/nope", "/tmp");
        assert_eq!(r.status, 404);
        assert!(r.body.contains("\"message\""));
    }
}
