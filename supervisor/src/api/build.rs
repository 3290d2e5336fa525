//! `POST /build` (docker's classic builder protocol: a context tar in, JSON lines out) and
//! `POST /commit`.
use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::ApiError;
use crate::build::{self, BuildError, BuildOptions};
use crate::images::registry::{Credentials, Platform};

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

/// The resource and network settings of the RUN steps' containers, as docker's
/// `HostConfig` keys (the query's names are the CLI's).
fn host_config(params: &[(String, String)]) -> Result<Value, ApiError> {
    let mut hc = serde_json::Map::new();
    match last(params, "networkmode").unwrap_or("") {
        "" | "default" => {}
        mode => {
            hc.insert("NetworkMode".into(), json!(mode));
        }
    }
    let hosts: Vec<&str> = params
        .iter()
        .filter(|(k, v)| k == "extrahosts" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    if !hosts.is_empty() {
        hc.insert("ExtraHosts".into(), json!(hosts));
    }
    for (param, key) in [
        ("shmsize", "ShmSize"),
        ("memory", "Memory"),
        ("memswap", "MemorySwap"),
        ("cpushares", "CpuShares"),
        ("cpuperiod", "CpuPeriod"),
        ("cpuquota", "CpuQuota"),
    ] {
        let Some(text) = last(params, param).filter(|v| !v.is_empty()) else {
            continue;
        };
        let n: i64 = text.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid {param}: {text:?} is not a number"))
        })?;
        if n != 0 {
            hc.insert(key.into(), json!(n));
        }
    }
    for (param, key) in [
        ("cpusetcpus", "CpusetCpus"),
        ("cpusetmems", "CpusetMems"),
        ("cgroupparent", "CgroupParent"),
    ] {
        if let Some(v) = last(params, param).filter(|v| !v.is_empty()) {
            hc.insert(key.into(), json!(v));
        }
    }
    let ulimits: Vec<Value> = json_param::<Option<Vec<Value>>>(params, "ulimits")
        .map_err(|e| {
            ApiError::bad_request(format!("error reading ulimit settings: {}", e.message))
        })?
        .unwrap_or_default();
    if !ulimits.is_empty() {
        hc.insert("Ulimits".into(), json!(ulimits));
    }
    Ok(Value::Object(hc))
}

/// What the classic builder cannot do, refused in dockerd's words.
fn refuse_unsupported(params: &[(String, String)]) -> Result<(), ApiError> {
    if truthy(params, "squash", false) {
        return Err(ApiError::bad_request(
            "squash is only supported with experimental mode",
        ));
    }
    if params
        .iter()
        .any(|(k, v)| k == "securityopt" && !v.is_empty())
    {
        return Err(ApiError::bad_request(
            "The daemon on this platform does not support setting security options on build",
        ));
    }
    match last(params, "isolation").unwrap_or("") {
        "" | "default" => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "Unsupported isolation: {other:?}"
            )))
        }
    }
    if last(params, "version") == Some("2") {
        return Err(ApiError::bad_request(
            "BuildKit (builder version 2) is not supported: berth builds with the classic builder (DOCKER_BUILDKIT=0)",
        ));
    }
    for name in ["cachefrom", "outputs"] {
        let list = json_param::<Option<Vec<Value>>>(params, name)?.unwrap_or_default();
        if !list.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{name} is not supported by berth's builder"
            )));
        }
    }
    Ok(())
}

/// Docker's `X-Registry-Config`: base64url JSON of credentials per registry, for pulls of
/// base images.
fn registry_config(headers: &HeaderMap) -> Result<BTreeMap<String, Credentials>, ApiError> {
    let Some(raw) = headers
        .get("X-Registry-Config")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_end_matches('='))
        .filter(|v| !v.is_empty())
    else {
        return Ok(BTreeMap::new());
    };
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw))
        .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Config header: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Config header: {e}")))
}

/// The build's options, or why the request is refused before its context is looked at.
fn options(params: &[(String, String)], headers: &HeaderMap) -> Result<BuildOptions, ApiError> {
    if last(params, "remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::bad_request(
            "remote build contexts are not supported: send the context as the body",
        ));
    }
    refuse_unsupported(params)?;
    let platform = last(params, "platform").unwrap_or("").to_string();
    if !platform.is_empty() {
        Platform::parse(Some(&platform))
            .map_err(|e| ApiError::bad_request(format!("{e}: invalid argument")))?;
    }
    Ok(BuildOptions {
        pull: truthy(params, "pull", false),
        platform,
        host_config: host_config(params)?,
        registry_auth: registry_config(headers)?,
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
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let options = match options(&params, &headers) {
        Ok(options) => options,
        Err(e) => {
            super::stream::drain_body(body).await;
            return Err(e);
        }
    };
    let (reader, reading) = super::stream::body_reader_watched(body);
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
            // The docker CLI reads the answer only once it has sent the whole context.
            let _ = reading.await;
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
