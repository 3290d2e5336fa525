//! Exec routes: create, start (hijacked unless detached), inspect, resize.
use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::containers::{hijack, pump_out, size, upgraded_response};
use super::ApiError;
use crate::containers::logs::{frame, Stream};

/// `POST /containers/{id}/exec`.
pub async fn create(
    State(state): State<super::State>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    super::json_types::check_exec(&config)?;
    let exec_id = state.containers.exec_create(&id, config).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))).into_response())
}

pub async fn inspect(
    State(state): State<super::State>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.containers.execs.get(&id)?.inspect()))
}

pub async fn resize(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (w, h) = size(&params)?;
    state.containers.exec_resize(&id, w, h).await?;
    Ok(StatusCode::OK.into_response())
}

/// Copies a fifo into the channel, framed for `stream` unless raw.
async fn pump_fifo(
    mut from: tokio::net::unix::pipe::Receiver,
    stream: Stream,
    raw: bool,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let bytes = if raw {
                    buf[..n].to_vec()
                } else {
                    frame(stream, &buf[..n])
                };
                if tx.send(bytes).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// `POST /exec/{id}/start` `{"Detach": bool, "Tty": bool}`.
pub async fn start(
    State(state): State<super::State>,
    Path(id): Path<String>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let body = axum::body::to_bytes(std::mem::take(req.body_mut()), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let opts: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let detach = opts["Detach"].as_bool().unwrap_or(false);
    if detach {
        state.containers.exec_start(&id, true).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let tty = state.containers.exec_startable(&id).await?;
    let service = state.containers.clone();
    // As dockerd: the process starts after the hijack, and a failure to start it (no such
    // working directory, user or binary) is the stream's only output, with exit code 126.
    hijack(&mut req, move |conn| async move {
        let (mut from, mut to) = tokio::io::split(conn);
        let io = match service.exec_start(&id, false).await {
            Ok(io) => io,
            Err(e) => {
                service.exec_failed(&id);
                let line = format!("{e}\r\n");
                let bytes = if tty {
                    line.into_bytes()
                } else {
                    frame(Stream::Stdout, line.as_bytes())
                };
                let _ = to.write_all(&bytes).await;
                let _ = to.shutdown().await;
                return;
            }
        };
        let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
        let input = io.stdin.map(|mut stdin| {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from, &mut stdin).await;
            })
        });
        let mut outputs = Vec::new();
        if let Some(out) = io.stdout {
            outputs.push(tokio::spawn(pump_fifo(
                out,
                Stream::Stdout,
                tty,
                tx.clone(),
            )));
        }
        if let Some(err) = io.stderr {
            outputs.push(tokio::spawn(pump_fifo(
                err,
                Stream::Stderr,
                tty,
                tx.clone(),
            )));
        }
        let writer = tokio::spawn(pump_out_later(to, rx));
        for o in outputs {
            let _ = o.await;
        }
        // The exit code is known before the client sees the end of the stream.
        let _ = service.exec_finish(&id).await;
        drop(tx);
        let _ = writer.await;
        if let Some(input) = input {
            input.abort();
        }
    });
    Ok(upgraded_response(tty))
}

async fn pump_out_later(
    to: tokio::io::WriteHalf<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>,
    rx: mpsc::Receiver<Vec<u8>>,
) {
    pump_out(to, rx).await
}
