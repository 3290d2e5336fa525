//! `GET /events?since=&until=&filters=`: docker's event stream, one JSON object a line;
//! with `until` it ends at that time (at once when it is past).
use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::containers::journal::{parse_time, Event, Filter};

fn time_param(params: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    match params.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_time(v)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("invalid value for {key}: {v}"))),
    }
}

fn now_nano() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

fn line(e: &Event) -> Bytes {
    let mut bytes = serde_json::to_vec(&e.to_json()).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

pub async fn events(
    State(state): State<super::State>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let since = time_param(&params, "since")?;
    let until = time_param(&params, "until")?;
    let filter = Filter::parse(params.get("filters").map(String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (past, mut rx) = state.containers.journal.subscribe(since);
    let (tx, body) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let within = |e: &Event| until.is_none_or(|u| e.time_nano <= u);
        for e in past.iter().filter(|e| within(e) && filter.matches(e)) {
            if tx.send(line(e)).await.is_err() {
                return;
            }
        }
        loop {
            let next = match until {
                Some(u) => {
                    let left = u - now_nano();
                    if left <= 0 {
                        return;
                    }
                    match tokio::time::timeout(Duration::from_nanos(left as u64), rx.recv()).await {
                        Ok(next) => next,
                        Err(_) => return,
                    }
                }
                None => rx.recv().await,
            };
            match next {
                Ok(e) if within(&e) && filter.matches(&e) => {
                    if tx.send(line(&e)).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(body, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}
