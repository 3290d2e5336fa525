//! A container's files: `HEAD`/`GET`/`PUT /containers/{id}/archive?path=` (docker cp, with
//! the `X-Docker-Container-Path-Stat` header), `GET /containers/{id}/export`, and
//! `GET /containers/{id}/changes` (docker diff). The work is `containers::fs`'s.
use std::collections::HashMap;
use std::io::Write as _;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::stream::{ChannelReader, ChannelWriter};
use super::ApiError;
use crate::containers::fs::{self, Rootfs};
use crate::containers::record::Container;
use crate::containers::service::Error;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

type Params = Query<HashMap<String, String>>;

fn path_param(params: &HashMap<String, String>) -> Result<String, ApiError> {
    match params.get("path").filter(|p| !p.is_empty()) {
        Some(p) => Ok(p.clone()),
        None => Err(ApiError::bad_request("Path cannot be empty")),
    }
}

/// Runs `work` on the container's rootfs (mounted for the moment if it is stopped).
async fn with_rootfs<T: Send + 'static>(
    state: &super::State,
    id: &str,
    work: impl FnOnce(&Rootfs, &Container) -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    let (c, running, images, scratch) = state.containers.fs_parts(id).await?;
    let outcome = tokio::task::spawn_blocking(move || {
        let rootfs = Rootfs::open(&c, &running, &images, &scratch)?;
        work(&rootfs, &c)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(outcome?)
}

fn stat_response(stat: &fs::PathStat, body: Body) -> Response {
    let mut response = body.into_response();
    if let Ok(value) = stat.header().parse() {
        response.headers_mut().insert(STAT_HEADER, value);
    }
    response
}

/// `HEAD /containers/{id}/archive?path=`.
pub async fn head(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let path = path_param(&params)?;
    let stat = with_rootfs(&state, &id, move |r, c| fs::stat(r, c, &path)).await?;
    Ok(stat_response(&stat, Body::empty()))
}

/// Streams a tar that `write` makes on a blocking thread; an error before its first byte
/// is answered as an HTTP error.
async fn tar_response(
    state: &super::State,
    id: &str,
    write: impl FnOnce(&Rootfs, &Container, &mut ChannelWriter) -> Result<(), Error> + Send + 'static,
) -> Result<Body, ApiError> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let (c, running, images, scratch) = state.containers.fs_parts(id).await?;
    let mut task = tokio::task::spawn_blocking(move || {
        let rootfs = Rootfs::open(&c, &running, &images, &scratch)?;
        let mut writer = ChannelWriter::new(tx);
        write(&rootfs, &c, &mut writer)?;
        writer.flush().map_err(|e| Error::Io {
            path: "archive".into(),
            source: e,
        })
    });
    let first = tokio::select! {
        biased;
        Some(chunk) = rx.recv() => chunk,
        outcome = &mut task => {
            outcome.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
            rx.recv().await.unwrap_or_default()
        }
    };
    let stream = futures_util::stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        if let Some(chunk) = first {
            return Some((Ok::<_, std::io::Error>(chunk), (None, rx)));
        }
        rx.recv().await.map(|chunk| (Ok(chunk), (None, rx)))
    });
    // A failure mid-way cuts the stream short: the client's tar reader sees it.
    tokio::spawn(async move {
        if let Ok(Err(e)) = task.await {
            tracing::warn!(error = %e, "container archive cut short");
        }
    });
    Ok(Body::from_stream(stream))
}

/// `GET /containers/{id}/archive?path=`.
pub async fn get(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let path = path_param(&params)?;
    let stat_path = path.clone();
    let stat = with_rootfs(&state, &id, move |r, c| fs::stat(r, c, &stat_path)).await?;
    let body = tar_response(&state, &id, move |r, c, out| fs::archive(r, c, &path, out)).await?;
    let mut response = stat_response(&stat, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-tar"),
    );
    Ok(response)
}

/// `GET /containers/{id}/export`.
pub async fn export(
    State(state): State<super::State>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let body = tar_response(&state, &id, |r, _, out| fs::export(r, out)).await?;
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

/// `PUT /containers/{id}/archive?path=`: the body is a tar extracted into `path`.
pub async fn put(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Params,
    body: Body,
) -> Result<Response, ApiError> {
    let path = path_param(&params)?;
    let reader = ChannelReader::of(body);
    with_rootfs(&state, &id, move |r, c| fs::extract(r, c, &path, reader)).await?;
    Ok(StatusCode::OK.into_response())
}

/// `GET /containers/{id}/changes`.
pub async fn changes(
    State(state): State<super::State>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (c, _, images, _) = state.containers.fs_parts(&id).await?;
    let changes = tokio::task::spawn_blocking(move || fs::changes(&images, &c))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let list: Vec<Value> = changes
        .iter()
        .map(|ch| json!({ "Path": ch.path, "Kind": ch.kind }))
        .collect();
    Ok(Json(Value::Array(list)))
}
