//! `POST /build` (docker's classic builder protocol: a context tar in, JSON lines out) and
//! `POST /commit`.
use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::ApiError;
use crate::build::{self, BuildError, BuildOptions};

type Pairs = Query<Vec<(String, String)>>;

fn last<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn truthy(params: &[(String, String)], name: &str, default: bool) -> bool {
    match last(params, name) {
        Some(v) => matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
        None => default,
    }
}

fn json_param<T: serde::de::DeserializeOwned + Default>(
    params: &[(String, String)],
    name: &str,
) -> Result<T, ApiError> {
    match last(params, name).filter(|v| !v.is_empty()) {
        Some(v) => serde_json::from_str(v)
            .map_err(|e| ApiError::bad_request(format!("invalid {name}: {e}"))),
        None => Ok(T::default()),
    }
}

fn options(params: &[(String, String)]) -> Result<BuildOptions, ApiError> {
    Ok(BuildOptions {
        dockerfile: last(params, "dockerfile").unwrap_or("").to_string(),
        tags: params
            .iter()
            .filter(|(k, v)| k == "t" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect(),
        build_args: json_param::<BTreeMap<String, Option<String>>>(params, "buildargs")?,
        labels: json_param(params, "labels")?,
        no_cache: truthy(params, "nocache", false),
        quiet: truthy(params, "q", false),
        remove: truthy(params, "rm", true),
        force_remove: truthy(params, "forcerm", false),
        target: last(params, "target").unwrap_or("").to_string(),
    })
}

fn error_line(e: &BuildError) -> Value {
    let message = e.to_string();
    let mut detail = json!({ "message": message });
    if let BuildError::Run { code, .. } = e {
        detail["code"] = json!(code);
    }
    json!({ "errorDetail": detail, "error": message })
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.extend_from_slice(b"\r\n");
    Bytes::from(bytes)
}

/// `POST /build`: like dockerd, an error before the first line of output is an HTTP error;
/// after it, the stream's last line.
pub async fn build(
    State(state): State<super::State>,
    Query(params): Pairs,
    body: Body,
) -> Result<Response, ApiError> {
    if last(&params, "remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::bad_request(
            "remote build contexts are not supported: send the context as the body",
        ));
    }
    let options = options(&params)?;
    let reader = super::stream::body_reader(body);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut task = tokio::spawn(build::build(state.containers.clone(), reader, options, tx));
    let first = tokio::select! {
        biased;
        Some(first) = rx.recv() => first,
        done = &mut task => {
            let e = match done {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => BuildError::Invalid("the build said nothing".into()),
                Err(e) => BuildError::Invalid(format!("build task: {e}")),
            };
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Err(ApiError::new(status, e.to_string()));
        }
    };
    let (lines_tx, lines_rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let _ = lines_tx.send(line(&first)).await;
        loop {
            tokio::select! {
                v = rx.recv() => match v {
                    Some(v) if lines_tx.send(line(&v)).await.is_ok() => {}
                    _ => break,
                },
                // The client went away: the build sees its stream closed and stops.
                () = lines_tx.closed() => break,
            }
        }
        drop(rx);
        if let Ok(Err(e)) = task.await {
            tracing::info!(error = %e, "build failed");
            let _ = lines_tx.send(line(&error_line(&e))).await;
        }
    });
    let stream = futures_util::stream::unfold(lines_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`, the body a
/// container config whose fields replace the container's.
pub async fn commit(
    State(state): State<super::State>,
    Query(params): Pairs,
    body: Bytes,
) -> Result<Response, ApiError> {
    let container = last(&params, "container").unwrap_or("").to_string();
    if container.is_empty() {
        return Err(ApiError::bad_request("No container name or ID supplied"));
    }
    let overrides: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid config: {e}")))?
    };
    let options = build::commit::CommitOptions {
        repo: last(&params, "repo").unwrap_or("").to_string(),
        tag: last(&params, "tag").unwrap_or("").to_string(),
        comment: last(&params, "comment").unwrap_or("").to_string(),
        author: last(&params, "author").unwrap_or("").to_string(),
        pause: truthy(&params, "pause", true),
        changes: params
            .iter()
            .filter(|(k, v)| k == "changes" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect(),
        overrides,
    };
    let id = build::commit::commit_container(&state.containers, &container, options)
        .await
        .map_err(|e| {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            ApiError::new(status, e.to_string())
        })?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "Id": id }))).into_response())
}
