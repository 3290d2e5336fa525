//! Streamed routes: pull and push (JSON progress lines), save (a tar), load (a tar in).
//!
//! Like dockerd, an error before the first byte of a stream is an HTTP error; an error after
//! it is the stream's last line (`{"errorDetail":{"message":…},"error":…}`), or a cut
//! connection for a tar.
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::{Read, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::images::{flag, with_tag};
use super::ApiError;
use crate::images::progress::Message;
use crate::images::reference::Reference;
use crate::images::registry::Credentials;
use crate::images::service;

type Outcome = Result<Vec<Value>, ApiError>;

/// Credentials from docker's `X-Registry-Auth` header; None when absent or naming no user
/// (`{}`, or only a server address).
pub fn registry_auth(headers: &HeaderMap) -> Result<Option<Credentials>, ApiError> {
    let Some(raw) = headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let credentials = Credentials::from_header(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Auth header: {e}")))?;
    let empty = credentials.username.is_empty()
        && credentials.password.is_empty()
        && credentials.identity_token.is_empty();
    Ok((!empty).then_some(credentials))
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.extend_from_slice(b"\r\n");
    Bytes::from(bytes)
}

fn to_value(message: &Message) -> Value {
    serde_json::to_value(message).unwrap_or(Value::Null)
}

fn error_line(message: &str) -> Value {
    to_value(&Message::error(message))
}

fn json_body(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Streams an operation's progress: `head` lines first once it reports anything, then its
/// messages, then its outcome (more lines, or the error line). Like dockerd, an operation
/// that fails having said no more than `Pulling from …` answers with an HTTP error.
async fn progress_response(
    mut progress: mpsc::UnboundedReceiver<Message>,
    mut task: JoinHandle<Outcome>,
    head: Vec<Value>,
) -> Response {
    let mut pending: Vec<Value> = Vec::new();
    let finished = loop {
        tokio::select! {
            biased;
            Some(m) = progress.recv() => {
                let started = !is_preamble(&m);
                pending.push(to_value(&m));
                if started {
                    break None;
                }
            }
            outcome = &mut task => break Some(joined(outcome)),
        }
    };
    match finished {
        None => {}
        Some(Err(e)) => {
            while let Ok(m) = progress.try_recv() {
                pending.push(to_value(&m));
            }
            if pending.iter().all(|p| {
                p["status"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("Pulling from"))
            }) {
                return e.into_response();
            }
            task = tokio::spawn(async move { Err(e) });
        }
        Some(Ok(lines)) => task = tokio::spawn(async move { Ok(lines) }),
    }
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(forward(tx, head, pending, progress, task));
    json_body(rx)
}

/// A message that does not yet show the operation got anywhere.
fn is_preamble(m: &Message) -> bool {
    m.status.starts_with("Pulling from") && m.error.is_none()
}

/// Sends head, pending and live messages, then the outcome's lines that the operation did
/// not already report itself (a service may send its own `Digest:`/`Status:` lines).
async fn forward(
    tx: mpsc::Sender<Bytes>,
    head: Vec<Value>,
    pending: Vec<Value>,
    mut progress: mpsc::UnboundedReceiver<Message>,
    task: JoinHandle<Outcome>,
) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut send = |value: Value| {
        if let Some(status) = value["status"].as_str() {
            seen.insert(status.to_string());
        }
        line(&value)
    };
    let head: Vec<Value> = head
        .into_iter()
        .filter(|h| !pending.iter().any(|p| same_status(h, p)))
        .collect();
    for value in head.into_iter().chain(pending) {
        if tx.send(send(value)).await.is_err() {
            return;
        }
    }
    // A client that went away drops the body: stop here, and the progress receiver with it
    // (a shared pull counts its clients by their receivers).
    loop {
        let m = tokio::select! {
            m = progress.recv() => m,
            () = tx.closed() => return,
        };
        let Some(m) = m else { break };
        if tx.send(send(to_value(&m))).await.is_err() {
            return;
        }
    }
    let tail = match joined(task.await) {
        Ok(lines) => lines,
        Err(e) => vec![error_line(&e.message)],
    };
    for value in tail {
        let repeated = value["status"].as_str().is_some_and(|s| seen.contains(s));
        if !repeated {
            let _ = tx.send(line(&value)).await;
        }
    }
}

/// Runs a service operation whose future need not be `Send` (the registry client's is not):
/// on a blocking thread, driven by the runtime's handle.
pub(super) fn spawn_service<F, Fut>(operation: F) -> JoinHandle<Outcome>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Outcome>,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(operation()))
}

fn same_status(a: &Value, b: &Value) -> bool {
    a["status"].is_string() && a["status"] == b["status"]
}

pub(super) fn joined(outcome: Result<Outcome, tokio::task::JoinError>) -> Outcome {
    outcome.unwrap_or_else(|e| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("task failed: {e}"),
        ))
    })
}

/// `POST /images/create?fromImage=&tag=&platform=`.
pub async fn pull(
    State(state): State<super::State>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let from = params.get("fromImage").cloned().unwrap_or_default();
    if from.is_empty() {
        let e = ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "import (fromSrc) is not supported",
        );
        return e.into_response();
    }
    let auth = match registry_auth(&headers) {
        Ok(auth) => auth,
        Err(e) => return e.into_response(),
    };
    let reference = with_tag(&from, params.get("tag").map(String::as_str).unwrap_or(""));
    let platform = params.get("platform").cloned().filter(|p| !p.is_empty());
    let head = pulling_from(&reference);
    // The service reports the outcome itself (`Digest: …`, then `Status: Image is up to
    // date for …` or `Status: Downloaded newer image for …`): nothing to add here.
    let request = super::pulls::Request {
        reference,
        platform,
        auth,
    };
    let (rx, task) = super::pulls::join(state.images.clone(), request);
    progress_response(rx, task, head).await
}

/// dockerd's first pull line: `v1: Pulling from app/web` (the path, without the registry).
fn pulling_from(reference: &str) -> Vec<Value> {
    let Ok(r) = Reference::parse(reference) else {
        return Vec::new();
    };
    let id = r.tag.clone().or(r.digest.clone()).unwrap_or_default();
    vec![to_value(&Message::status(
        Some(&id),
        format!("Pulling from {}", r.repository),
    ))]
}

/// `POST /images/{name}/push?tag=`: the image `name` with `tag`, or, when `name` has no
/// tag and `tag` is empty (`docker push --all-tags`), every local tag of the repository,
/// one after the other, like dockerd.
pub async fn push(
    state: super::State,
    name: String,
    tag: String,
    auth: Option<Credentials>,
) -> Response {
    let references = match push_references(&state, &name, &tag) {
        Ok(references) => references,
        Err(e) => return e.into_response(),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let images = state.images.clone();
    let task = spawn_service(move || async move {
        let mut aux = Vec::new();
        let mut announced = false;
        for reference in &references {
            let (tag_tx, mut tag_rx) = mpsc::unbounded_channel::<Message>();
            let pushed = async {
                let pushed = images.push(reference, auth.clone(), &tag_tx).await;
                drop(tag_tx);
                pushed
            };
            // Every push names the repository first; the stream says it once.
            let relay = async {
                while let Some(m) = tag_rx.recv().await {
                    if m.id.is_none() && m.status.starts_with("The push refers to repository") {
                        if announced {
                            continue;
                        }
                        announced = true;
                    }
                    let _ = tx.send(m);
                }
            };
            let (digest, ()) = tokio::join!(pushed, relay);
            aux.push(push_result(&images, reference, &digest?)?);
        }
        Ok(aux)
    });
    progress_response(rx, task, Vec::new()).await
}

/// The full names a push works on: `name` with `tag`, or every tag of `name`'s repository.
fn push_references(state: &super::State, name: &str, tag: &str) -> Result<Vec<String>, ApiError> {
    let named = Reference::parse_bare(name).map_err(service::Error::from)?;
    if !tag.is_empty() || named.tag.is_some() || named.digest.is_some() {
        return Ok(vec![with_tag(name, tag)]);
    }
    let mut tags: Vec<(String, String)> = state
        .images
        .metadata
        .images()
        .map_err(service::Error::from)?
        .into_iter()
        .filter_map(|record| Reference::parse_bare(&record.name).ok())
        .filter(|r| r.registry == named.registry && r.repository == named.repository)
        .filter(|r| r.digest.is_none())
        .filter_map(|r| Some((r.tag.clone()?, r.to_string())))
        .collect();
    if tags.is_empty() {
        return Err(service::Error::NotFound(format!(
            "An image does not exist locally with the tag: {}",
            named.familiar_name()
        ))
        .into());
    }
    tags.sort();
    Ok(tags.into_iter().map(|(_, full)| full).collect())
}

/// The `aux` line dockerd ends a tag's push with (the service already said
/// `TAG: digest: … size: …`).
fn push_result(
    images: &service::ImageService,
    reference: &str,
    digest: &str,
) -> Result<Value, ApiError> {
    let parsed = Reference::parse(reference).map_err(service::Error::from)?;
    let size = images
        .metadata
        .image(&parsed.to_string())
        .map_err(service::Error::from)?
        .map(|record| record.target.size)
        .unwrap_or(0);
    let tag = parsed.tag.unwrap_or_default();
    Ok(json!({ "progressDetail": {}, "aux": { "Tag": tag, "Digest": digest, "Size": size } }))
}

/// Feeds a blocking writer's bytes to an async body, 64 KiB at a time.
pub(super) struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    pub(super) fn new(tx: mpsc::Sender<Bytes>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }
}

impl ChannelReader {
    /// A reader of `body` on a blocking thread (fed by a task of the runtime).
    pub(super) fn of(body: Body) -> Self {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut chunks = body.into_data_stream();
            while let Some(chunk) = chunks.next().await {
                if tx.send(chunk.map_err(std::io::Error::other)).await.is_err() {
                    break;
                }
            }
        });
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

/// `GET /images/get?names=a&names=b`.
pub async fn save_many(
    State(state): State<super::State>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let names: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == "names")
        .map(|(_, v)| percent_decode(v))
        .collect();
    save(state, names).await
}

/// A query value decoded: `+` is a space, `%xx` a byte (an invalid escape stays as written).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Streams `docker save` output from a blocking thread.
pub async fn save(state: super::State, names: Vec<String>) -> Result<Response, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let images = state.images.clone();
    let mut task = tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        images.save(&names, &mut writer)?;
        writer
            .flush()
            .map_err(|e| service::Error::Invalid(format!("writing the archive: {e}")))
    });
    let first = tokio::select! {
        biased;
        Some(chunk) = rx.recv() => chunk,
        outcome = &mut task => {
            let outcome = outcome.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            outcome?;
            rx.recv().await.unwrap_or_default()
        }
    };
    let state = (Some(first), rx, Some(task));
    let stream = futures_util::stream::unfold(state, |(first, mut rx, task)| async move {
        if let Some(chunk) = first {
            return Some((Ok(chunk), (None, rx, task)));
        }
        if let Some(chunk) = rx.recv().await {
            return Some((Ok(chunk), (None, rx, task)));
        }
        let outcome = task?.await;
        match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some((Err(std::io::Error::other(e.to_string())), (None, rx, None))),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), (None, rx, None))),
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A blocking reader over the request body's chunks.
pub(super) struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The most of a refused upload read (and dropped) so that its client gets the answer.
const DRAIN_LIMIT: u64 = 256 << 20;
/// The longest time spent on it.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads what is left of a refused upload and drops it, so that the client, still sending,
/// gets the answer rather than a reset connection (a broken pipe) — up to a bound, so an
/// endless body does not keep the daemon reading.
async fn drain(chunks: &mut axum::body::BodyDataStream) {
    let mut dropped = 0u64;
    let rest = async {
        while let Some(Ok(chunk)) = chunks.next().await {
            dropped += chunk.len() as u64;
            if dropped > DRAIN_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, rest).await;
    tracing::debug!(dropped, "rest of a refused upload read and dropped");
}

/// [`drain`] of a whole body: for a request refused before its body was looked at.
pub async fn drain_body(body: Body) {
    drain(&mut body.into_data_stream()).await;
}

/// A blocking reader over a request body: the body streams in on a task. A reader that stops
/// early (a refused upload) makes the task [`drain`] the rest.
pub fn body_reader(body: Body) -> impl Read + Send + 'static {
    body_reader_watched(body).0
}

/// [`body_reader`], and the task, which ends once the body is read or drained: a refusal
/// that waits for it reaches a client that sends the whole body before it reads.
pub fn body_reader_watched(body: Body) -> (impl Read + Send + 'static, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(async move {
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            if tx.send(chunk).await.is_err() {
                drain(&mut chunks).await;
                break;
            }
        }
    });
    let reader = ChannelReader {
        rx,
        current: Bytes::new(),
    };
    (reader, task)
}

/// `POST /images/load?quiet=`: the body streams into `load` on a blocking thread; progress
/// (unless quiet) and the `Loaded image: …` lines stream back.
pub async fn load(
    State(state): State<super::State>,
    Query(params): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    let quiet = flag(&params, "quiet");
    let mut reader = body_reader(body);
    let (progress_tx, progress_rx) = mpsc::unbounded_channel();
    let images = state.images.clone();
    let task = tokio::task::spawn_blocking(move || {
        let progress = (!quiet).then_some(&progress_tx);
        let loaded = images.load(&mut reader, progress)?;
        Ok(loaded
            .into_iter()
            .map(|l| json!({ "stream": format!("{l}\n") }))
            .collect())
    });
    progress_response(progress_rx, task, Vec::new()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn decodes_registry_auth() {
        let mut h = HeaderMap::new();
        let json = r#"{"username":"u","password":"p","serveraddress":"127.0.0.1:5000"}"#;
        let enc = base64::engine::general_purpose::URL_SAFE.encode(json);
        h.insert("X-Registry-Auth", enc.parse().unwrap());
        let c = registry_auth(&h).unwrap().unwrap();
        assert_eq!(c.username, "u");
        assert_eq!(c.server_address, "127.0.0.1:5000");
        h.insert("X-Registry-Auth", "e30=".parse().unwrap());
        assert!(registry_auth(&h).unwrap().is_none());
        h.insert("X-Registry-Auth", "".parse().unwrap());
        assert!(registry_auth(&h).unwrap().is_none());
        h.insert("X-Registry-Auth", "!!".parse().unwrap());
        assert_eq!(
            registry_auth(&h).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert!(registry_auth(&HeaderMap::new()).unwrap().is_none());
    }

    async fn run(messages: Vec<Message>, outcome: Outcome) -> (StatusCode, Vec<Value>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            for m in messages {
                let _ = tx.send(m);
            }
            outcome
        });
        let head = vec![json!({"id": "v1", "status": "Pulling from app"})];
        let response = progress_response(rx, task, head).await;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let lines = String::from_utf8_lossy(&body)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (status, lines)
    }

    fn failed() -> Outcome {
        Err(ApiError::new(StatusCode::NOT_FOUND, "manifest unknown"))
    }

    #[tokio::test]
    async fn error_before_progress_is_an_http_error() {
        let (status, lines) = run(vec![], failed()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(lines, [json!({"message": "manifest unknown"})]);
        let preamble = Message::status(Some("v1"), "Pulling from app");
        let (status, _) = run(vec![preamble], failed()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn error_after_progress_ends_the_stream() {
        let layer = Message::status(Some("0123456789ab"), "Pulling fs layer");
        let (status, lines) = run(vec![layer], failed()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(lines[0]["status"], "Pulling from app");
        assert_eq!(lines[1]["status"], "Pulling fs layer");
        assert_eq!(
            lines[2],
            json!({"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"})
        );
    }

    #[tokio::test]
    async fn outcome_lines_the_service_sent_are_not_repeated() {
        let own = Message::status(Some("v1"), "Pulling from app");
        let digest = Message::status(None, "Digest: sha256:1");
        let tail = vec![
            json!({"status": "Digest: sha256:1"}),
            json!({"status": "Status: done"}),
        ];
        let (status, lines) = run(vec![own, digest], Ok(tail)).await;
        assert_eq!(status, StatusCode::OK);
        let statuses: Vec<&str> = lines
            .iter()
            .map(|l| l["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            ["Pulling from app", "Digest: sha256:1", "Status: done"]
        );
    }

    #[test]
    fn percent_decodes_names() {
        assert_eq!(percent_decode("busybox%3Alatest"), "busybox:latest");
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("abc%"), "abc%");
    }
}
