//! Docker Engine API subset on axum: system routes, image routes, streamed responses.
//!
//! Version prefixes (`/v1.41/...`, any `/vX.Y/`) are stripped before routing; errors answer
//! `{"message": "..."}` with docker's status codes; every response carries dockerd's headers.
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::images::service::{self, ImageService};

mod archive;
mod build;
mod containers;
mod events;
mod exec;
mod housekeeping;
mod images;
mod json_types;
mod networks;
mod pulls;
mod stats;
mod stream;
mod system;
mod volumes;

/// Highest and lowest API versions this daemon speaks.
pub const API_VERSION: &str = "1.41";
pub const MIN_API_VERSION: &str = "1.12";

/// What every handler shares.
#[derive(Clone)]
pub struct State {
    pub images: Arc<ImageService>,
    pub containers: Arc<crate::containers::service::ContainerService>,
    pub volumes: Arc<crate::volumes::VolumeService>,
    pub data_root: String,
}

impl State {
    pub fn data_root_path(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(&self.data_root)
    }
}

/// An error answered as docker does: a status code and `{"message": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<service::Error> for ApiError {
    fn from(e: service::Error) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = axum::Json(serde_json::json!({ "message": self.message }));
        (self.status, body).into_response()
    }
}

/// Strips a `/vX.Y` prefix (and the query string) from a path.
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

/// The whole API: version prefixes stripped, then routed.
pub fn app(state: State) -> Router {
    Router::new()
        .fallback_service(router(state))
        .layer(axum::middleware::map_request(unversioned))
}

fn router(state: State) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/auth", post(system::auth))
        .route("/images/json", get(images::list))
        .route("/images/create", post(stream::pull))
        .route("/images/get", get(stream::save_many))
        .route("/images/load", post(stream::load))
        .route("/images/prune", post(images::prune))
        .route(
            "/images/{*name}",
            get(images::get_action)
                .post(images::post_action)
                .delete(images::remove),
        )
        .route("/events", get(events::events))
        .route("/containers/prune", post(containers::prune))
        .route("/build", post(build::build))
        .route("/build/prune", post(housekeeping::build_prune))
        .route("/system/df", get(housekeeping::disk_usage))
        .route("/commit", post(build::commit))
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/containers/{id}/stats", get(stats::stats))
        .route("/containers/{id}/top", get(stats::top))
        .route(
            "/containers/{id}/archive",
            get(archive::get).head(archive::head).put(archive::put),
        )
        .route("/containers/{id}/export", get(archive::export))
        .route("/containers/{id}/changes", get(archive::changes))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/exec/{id}/resize", post(exec::resize))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(axum::middleware::map_response(docker_headers))
        .with_state(state)
}

/// The API version of a request (its `/vX.Y` prefix, else [`API_VERSION`]), as an extension.
#[derive(Debug, Clone)]
pub struct ApiVersion(pub String);

/// `X.Y` as numbers, for comparing API versions.
pub(crate) fn version_key(version: &str) -> Vec<u64> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Docker's answer to a version prefix outside [`MIN_API_VERSION`]..=[`API_VERSION`].
pub fn check_version(version: &str) -> Result<(), ApiError> {
    let key = version_key(version);
    if key < version_key(MIN_API_VERSION) {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too old. Minimum supported API version is \
             {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    if key > version_key(API_VERSION) {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    Ok(())
}

async fn unversioned(mut req: Request) -> Result<Request, ApiError> {
    tracing::debug!(method = %req.method(), uri = %req.uri(), "request");
    let path = req.uri().path();
    let stripped = strip_version(path);
    let mut version = API_VERSION.to_string();
    if stripped.len() != path.len() {
        version = path[2..path.len() - stripped.len()].to_string();
        check_version(&version)?;
        let rebuilt = match req.uri().query() {
            Some(q) => format!("{stripped}?{q}"),
            None => stripped.to_string(),
        };
        if let Ok(uri) = rebuilt.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req.extensions_mut().insert(ApiVersion(version));
    Ok(req)
}

async fn docker_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    res
}

async fn not_found(uri: Uri) -> ApiError {
    tracing::debug!(path = %uri.path(), "no route");
    ApiError::new(StatusCode::NOT_FOUND, "page not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_any_version_prefix() {
        assert_eq!(strip_version("/v1.41/_ping"), "/_ping");
        assert_eq!(strip_version("/v1.24/images/json?all=1"), "/images/json");
        assert_eq!(strip_version("/version"), "/version");
        assert_eq!(strip_version("/volumes"), "/volumes");
    }

    #[test]
    fn versions_out_of_range_get_dockers_words() {
        check_version("1.41").unwrap();
        check_version("1.12").unwrap();
        check_version("1.24").unwrap();
        let new = check_version("9.99").unwrap_err().message;
        assert_eq!(
            new,
            "client version 9.99 is too new. Maximum supported API version is 1.41"
        );
        let old = check_version("1.0").unwrap_err().message;
        assert_eq!(old, "client version 1.0 is too old. Minimum supported API version is 1.12, please upgrade your client to a newer version");
    }
}
