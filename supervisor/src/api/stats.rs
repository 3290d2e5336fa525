//! `GET /containers/{id}/stats?stream=&one-shot=` (docker's stats JSON, one per second while
//! streaming) and `GET /containers/{id}/top?ps_args=`.
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

type Params = Query<std::collections::HashMap<String, String>>;
use super::ApiError;
use crate::containers::stats::{with_previous, INTERVAL};

fn truthy(params: &Params, key: &str, default: bool) -> bool {
    match params.0.get(key).map(String::as_str) {
        None | Some("") => default,
        Some(v) => matches!(v, "1" | "true" | "True" | "TRUE"),
    }
}

pub async fn stats(
    State(state): State<super::State>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let stream = truthy(&params, "stream", true);
    let one_shot = truthy(&params, "one-shot", false);
    let service = state.containers.clone();
    let first = service.stats_sample(&id).await?;
    if !stream {
        // As dockerd: two samples a collector interval apart, so that CPU % has a base.
        let v = if one_shot {
            with_previous(first, None)
        } else {
            tokio::time::sleep(INTERVAL).await;
            let second = service.stats_sample(&id).await?;
            with_previous(second, Some(&first))
        };
        return Ok(Json(v).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    tokio::spawn(async move {
        let mut previous = None;
        let mut next = Some(first);
        loop {
            let sample = match next.take() {
                Some(s) => s,
                None => match service.stats_sample(&id).await {
                    Ok(s) => s,
                    Err(_) => return,
                },
            };
            let stopped = sample.0["read"] == crate::containers::record::NEVER;
            let body = {
                let mut line = serde_json::to_vec(&with_previous(
                    crate::containers::stats::Sample(sample.0.clone()),
                    previous.as_ref(),
                ))
                .unwrap_or_default();
                line.push(b'\n');
                line
            };
            if tx.send(body).await.is_err() || stopped {
                return;
            }
            previous = Some(sample);
            tokio::time::sleep(INTERVAL).await;
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    }));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub async fn top(
    State(state): State<super::State>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let ps_args = params.0.get("ps_args").cloned().unwrap_or_default();
    Ok(Json(state.containers.top(&id, &ps_args).await?))
}
