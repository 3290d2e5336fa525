//! Container routes: docker's JSON in, the container service, docker's JSON out. Attach is
//! hijacked (101, docker's 8-byte frames without a tty, raw with one); logs stream the same
//! frames; wait answers its headers at once and the body at the exit.
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::ApiError;
use crate::containers::logs::{self, Reader, Stream};
use crate::containers::record::{Container, Status};
use crate::containers::service::{self, Error, Output, WaitCondition};
use crate::containers::signal;

type Params = Query<HashMap<String, String>>;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.to_string())
    }
}

fn flag(params: &HashMap<String, String>, key: &str) -> bool {
    params
        .get(key)
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True" | "yes"))
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// 204, or 304 when there was nothing to do.
fn done(result: Result<(), Error>) -> Result<Response, ApiError> {
    match result {
        Ok(()) => Ok(no_content()),
        Err(Error::NotModified) => Ok(StatusCode::NOT_MODIFIED.into_response()),
        Err(e) => Err(e.into()),
    }
}

/// `POST /containers/create?name=`.
pub async fn create(
    State(state): State<super::State>,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    super::json_types::check_create(&body)?;
    let c = state
        .containers
        .create(body, params.get("name").map(String::as_str))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": c.id, "Warnings": [] })),
    )
        .into_response())
}

/// Docker's `State` object.
fn state_json(c: &Container) -> Value {
    let s = &c.state;
    let mut v = json!({
        "Status": s.status.as_str(),
        // docker: a container between two runs of its restart policy is still "running".
        "Running": s.status.is_live() || s.status == Status::Restarting,
        "Paused": s.status == Status::Paused,
        "Restarting": s.status == Status::Restarting,
        "OOMKilled": s.oom_killed,
        "Dead": s.status == Status::Dead,
        "Pid": s.pid,
        "ExitCode": s.exit_code,
        "Error": s.error,
        "StartedAt": s.started_at,
        "FinishedAt": s.finished_at,
    });
    if let Some(h) = &s.health {
        v["Health"] = serde_json::to_value(h).unwrap_or_default();
    }
    v
}

/// Docker's `GET /containers/{id}/json`.
pub fn inspect_json(c: &Container, files: &std::path::Path) -> Value {
    let file = |name: &str| files.join(name).to_string_lossy().into_owned();
    json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": state_json(c),
        "Image": c.image_id,
        "ResolvConfPath": file("resolv.conf"),
        "HostnamePath": file("hostname"),
        "HostsPath": file("hosts"),
        "LogPath": c.log_path,
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": c.host_config,
        "GraphDriver": { "Name": "overlay2", "Data": Value::Null },
        "Mounts": c.mount_points,
        "Config": c.config,
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "HairpinMode": false, "Ports": {},
            "SandboxKey": "", "Networks": {},
        },
    })
}

pub async fn inspect(
    State(state): State<super::State>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = state.containers.inspect(&id).await?;
    let files = state.data_root_path().join("containers").join(&c.id);
    let mut v = inspect_json(&c, &files);
    super::networks::fill_settings(&mut v["NetworkSettings"], &state, &c.id);
    v["NetworkSettings"]["Ports"] = state.containers.ports_settings(&c);
    Ok(Json(v))
}

fn unix(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

/// `Up 3 seconds`, `Exited (0) 5 seconds ago`, `Created`.
fn status_text(c: &Container) -> String {
    let now = chrono::Utc::now().timestamp();
    let human = crate::cli::format::human_duration;
    match c.state.status {
        Status::Running => match &c.state.health {
            Some(h) => format!(
                "Up {} ({})",
                human(now - unix(&c.state.started_at)),
                h.ps_text()
            ),
            None => format!("Up {}", human(now - unix(&c.state.started_at))),
        },
        Status::Paused => format!("Up {} (Paused)", human(now - unix(&c.state.started_at))),
        Status::Exited if c.state.finished_at != crate::containers::record::NEVER => format!(
            "Exited ({}) {} ago",
            c.state.exit_code,
            human(now - unix(&c.state.finished_at))
        ),
        Status::Created | Status::Exited => "Created".into(),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            human(now - unix(&c.state.finished_at))
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

pub(super) fn summary(c: &Container) -> Value {
    let command = std::iter::once(c.path.as_str())
        .chain(c.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": command,
        "Created": unix(&c.created),
        "Ports": [],
        "Labels": c.config["Labels"],
        "State": c.state.status.as_str(),
        "Status": status_text(c),
        "HostConfig": { "NetworkMode": c.host_config["NetworkMode"] },
        "NetworkSettings": { "Networks": {} },
        "Mounts": c.mount_points,
    })
}

/// Docker's `filters` JSON: `{"name":["x"]}` (or the old `{"name":{"x":true}}`).
pub(super) fn parse_filters(
    raw: Option<&String>,
) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(HashMap::new());
    };
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filters {raw:?}: {e}")))?;
    let mut out = HashMap::new();
    for (k, v) in v.as_object().into_iter().flatten() {
        let values: Vec<String> = match v {
            Value::Array(a) => a
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        };
        out.insert(k.clone(), values);
    }
    Ok(out)
}

fn matches(c: &Container, filters: &HashMap<String, Vec<String>>) -> Result<bool, ApiError> {
    for (key, values) in filters {
        let any = |f: &dyn Fn(&str) -> bool| values.iter().any(|v| f(v));
        let ok = match key.as_str() {
            "name" => any(&|v| c.name.contains(v.trim_start_matches('/'))),
            "id" => any(&|v| c.id.starts_with(v)),
            "status" => any(&|v| c.state.status.as_str() == v),
            "ancestor" => any(&|v| c.image == v || c.image_id.contains(v)),
            "exited" => {
                any(&|v| c.state.status == Status::Exited && v.parse() == Ok(c.state.exit_code))
            }
            "health" => {
                if let Some(bad) = values
                    .iter()
                    .find(|v| !matches!(v.as_str(), "starting" | "healthy" | "unhealthy" | "none"))
                {
                    return Err(ApiError::bad_request(format!(
                        "Unrecognised filter value for health: {bad}"
                    )));
                }
                any(&|v| crate::containers::health::filter_value(c) == v)
            }
            // Several labels must all match (docker's AND), unlike the other filters.
            "label" => values.iter().all(|v| {
                let (k, want) = v
                    .split_once('=')
                    .map_or((v.as_str(), None), |(k, x)| (k, Some(x)));
                match (&c.config["Labels"][k], want) {
                    (Value::String(_), None) => true,
                    (Value::String(s), Some(w)) => s == w,
                    _ => false,
                }
            }),
            other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `GET /containers/json?all=&limit=&filters=`.
pub async fn list(
    State(state): State<super::State>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let all = flag(&params, "all");
    let filters = parse_filters(params.get("filters"))?;
    let limit: i64 = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(-1);
    let mut out = Vec::new();
    for c in state.containers.list().await {
        let listed = all
            || limit > 0
            || c.state.status.is_live()
            || c.state.status == Status::Restarting
            || filters.contains_key("status");
        if listed && matches(&c, &filters)? {
            let mut v = summary(&c);
            v["NetworkSettings"]["Networks"] = state.containers.network_settings(&c.id);
            v["Ports"] = state.containers.ports_summary(&c);
            out.push(v);
        }
        if limit > 0 && out.len() as i64 >= limit {
            break;
        }
    }
    Ok(Json(Value::Array(out)))
}

pub async fn start(
    State(state): State<super::State>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    done(state.containers.start(&id).await)
}

fn timeout(params: &HashMap<String, String>) -> Result<Option<i64>, ApiError> {
    params
        .get("t")
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid stop timeout {t:?}")))
        })
        .transpose()
}

pub async fn stop(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    done(state.containers.stop(&id, timeout(&params)?).await)
}

pub async fn restart(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    done(state.containers.restart(&id, timeout(&params)?).await)
}

pub async fn kill(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let sig = match params.get("signal").filter(|s| !s.is_empty()) {
        None => libc::SIGKILL,
        Some(s) => {
            signal::parse(s).ok_or_else(|| ApiError::bad_request(format!("Invalid signal: {s}")))?
        }
    };
    done(state.containers.kill(&id, sig).await)
}

pub async fn remove(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let (force, volumes) = (flag(&params, "force"), flag(&params, "v"));
    done(
        state
            .containers
            .remove_with_volumes(&id, force, volumes)
            .await,
    )
}

pub async fn pause(
    State(state): State<super::State>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    done(state.containers.pause(&id, true).await)
}

pub async fn unpause(
    State(state): State<super::State>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    done(state.containers.pause(&id, false).await)
}

pub async fn rename(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let name = params.get("name").cloned().unwrap_or_default();
    done(state.containers.rename(&id, &name).await)
}

/// `POST /containers/{id}/wait?condition=`: registered before the headers go out, the body
/// `{"StatusCode": n, "Error": null}` at the exit (or removal).
pub async fn wait(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let condition = WaitCondition::parse(params.get("condition").map_or("", String::as_str))?;
    let exited = state.containers.wait(&id, condition).await?;
    let stream = futures_util::stream::once(async move {
        let code = exited.await;
        let body = json!({ "StatusCode": code, "Error": Value::Null });
        Ok::<_, Infallible>(Bytes::from(format!("{body}\n")))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /containers/{id}/resize?h=&w=`.
pub async fn resize(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let (w, h) = size(&params)?;
    let (address, c) = state.containers.task(&id).await?;
    tokio::task::spawn_blocking(move || {
        crate::containers::shim::Shim::connect(&address).and_then(|s| s.resize(&c.id, "", w, h))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(StatusCode::OK.into_response())
}

pub fn size(params: &HashMap<String, String>) -> Result<(u32, u32), ApiError> {
    let get = |k: &str| -> Result<u32, ApiError> {
        params
            .get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ApiError::bad_request(format!("resize: invalid or missing {k}")))
    };
    Ok((get("w")?, get("h")?))
}

/// What to send of a log: which streams, with timestamps or not, framed or raw.
#[derive(Clone, Copy)]
struct Selection {
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    tty: bool,
}

impl Selection {
    fn encode(&self, e: &logs::Entry) -> Option<Vec<u8>> {
        let wanted = match e.stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        };
        if !wanted {
            return None;
        }
        let payload = if self.timestamps {
            format!("{} {}", e.time, e.log).into_bytes()
        } else {
            e.log.clone().into_bytes()
        };
        Some(if self.tty {
            payload
        } else {
            logs::frame(e.stream, &payload)
        })
    }
}

/// How often a follower looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(25);

/// Sends entries from `reader` until `finished` says so and the writer is done.
async fn follow(
    mut reader: Reader,
    sel: Selection,
    mut out: Output,
    finished: impl Fn(&service::Progress) -> bool,
    tx: mpsc::Sender<Vec<u8>>,
) {
    loop {
        let ended = finished(&out.progress.borrow()) && logs::writer_done(&reader.path);
        let entries = match reader.read_new() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "reading log");
                return;
            }
        };
        for e in &entries {
            if let Some(bytes) = sel.encode(e) {
                if tx.send(bytes).await.is_err() {
                    return;
                }
            }
        }
        if ended {
            return;
        }
        tokio::select! {
            _ = out.progress.changed() => {},
            _ = tokio::time::sleep(FOLLOW_POLL) => {},
            _ = tx.closed() => return,
        }
    }
}

/// `GET /containers/{id}/logs?stdout=&stderr=&follow=&tail=&timestamps=`.
pub async fn logs(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let out = state.containers.output(&id).await?;
    let record = state.containers.inspect(&id).await?;
    if !logs::Driver::of(&record.host_config).is_ok_and(logs::Driver::readable) {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            logs::NOT_READABLE,
        ));
    }
    let sel = Selection {
        stdout: flag(&params, "stdout"),
        stderr: flag(&params, "stderr"),
        timestamps: flag(&params, "timestamps"),
        tty: out.tty,
    };
    if !sel.stdout && !sel.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail: Option<usize> = params
        .get("tail")
        .filter(|t| *t != "all" && !t.is_empty())
        .and_then(|t| t.parse().ok());
    let mut reader = Reader::from_start(out.log_path.clone());
    let backlog = reader
        .read_new()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let skip = tail.map_or(0, |n| backlog.len().saturating_sub(n));
    let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
    let follow_on = flag(&params, "follow");
    tokio::spawn(async move {
        for e in &backlog[skip..] {
            if let Some(bytes) = sel.encode(e) {
                if tx.send(bytes).await.is_err() {
                    return;
                }
            }
        }
        if follow_on {
            follow(reader, sel, out, |p| !p.running || p.removed, tx).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Bytes::from(b)), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/vnd.docker.raw-stream")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The 101 answer of a hijacked request; `Upgrade: tcp` like dockerd.
pub fn upgraded_response(tty: bool) -> Response {
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .unwrap_or_default()
}

/// Runs `pump` on the connection once the client has switched protocols.
pub fn hijack<F, Fut>(req: &mut Request, pump: F)
where
    F: FnOnce(hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(conn) => pump(hyper_util::rt::TokioIo::new(conn)).await,
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
}

/// Copies the client's input into `stdin` (a fifo the shim reads) until the client's EOF.
/// A fifo that nobody holds open loses what it buffers, and input may end before the
/// container starts (docker's `run -i` sends it at once): the fifo is closed only once the
/// shim has read every byte (or the container ended).
pub async fn pump_stdin(
    mut from: impl AsyncRead + Unpin,
    stdin: std::path::PathBuf,
    mut progress: tokio::sync::watch::Receiver<service::Progress>,
) {
    let sender = tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(&stdin);
    let mut to = match sender {
        Ok(to) => to,
        Err(e) => {
            tracing::warn!(error = %e, path = %stdin.display(), "open stdin fifo");
            return;
        }
    };
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let exits = progress.borrow().exits;
    loop {
        let p = *progress.borrow();
        if p.exits > exits || p.removed || (p.running && unread(&to) == 0) {
            return;
        }
        tokio::select! {
            _ = progress.changed() => {},
            _ = tokio::time::sleep(Duration::from_millis(10)) => {},
        }
    }
}

/// Bytes buffered in a pipe, not yet read.
fn unread(pipe: &impl std::os::fd::AsRawFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes an int through the pointer.
    if unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) } != 0 {
        return 0;
    }
    n
}

/// Writes what `rx` yields to the client, then closes its write side.
pub async fn pump_out(mut to: impl AsyncWrite + Unpin, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        if to.write_all(&bytes).await.is_err() || to.flush().await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

/// `POST /containers/{id}/attach?stream=&stdin=&stdout=&stderr=`: the output of the
/// container's next (or current) run, and its stdin, until it exits.
pub async fn attach(
    State(state): State<super::State>,
    Path(id): Path<String>,
    Query(params): Params,
    mut req: Request,
) -> Result<Response, ApiError> {
    let out = state.containers.output(&id).await?;
    let sel = Selection {
        stdout: flag(&params, "stdout"),
        stderr: flag(&params, "stderr"),
        timestamps: false,
        tty: out.tty,
    };
    let stdin = flag(&params, "stdin").then(|| out.stdin.clone()).flatten();
    let tty = out.tty;
    let reader = Reader::at_end(out.log_path.clone());
    let exits = out.progress.borrow().exits;
    let replay = flag(&params, "logs");
    hijack(&mut req, move |conn| async move {
        let (from, to) = tokio::io::split(conn);
        let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
        let progress = out.progress.clone();
        let input = stdin.map(|path| tokio::spawn(pump_stdin(from, path, progress)));
        let reader = if replay {
            Reader::at(reader.path.clone(), 0)
        } else {
            reader
        };
        let follower = tokio::spawn(follow(
            reader,
            sel,
            out,
            move |p| p.exits > exits || p.removed,
            tx,
        ));
        pump_out(to, rx).await;
        let _ = follower.await;
        if let Some(input) = input {
            input.abort();
        }
    });
    Ok(upgraded_response(tty))
}

/// `POST /containers/prune?filters={"label":[…],"until":[…]}`.
pub async fn prune(
    State(state): State<super::State>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filters: Value = match params.get("filters").filter(|f| !f.is_empty()) {
        Some(f) => serde_json::from_str(f)
            .map_err(|_| ApiError::bad_request(format!("invalid filter '{f}'")))?,
        None => Value::Null,
    };
    let values = |key: &str| -> Vec<String> {
        match &filters[key] {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        }
    };
    if let Some(key) = filters
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .find(|k| !matches!(k.as_str(), "label" | "until"))
    {
        return Err(ApiError::bad_request(format!("Invalid filter '{key}'")));
    }
    let now = chrono::Utc::now().timestamp();
    let until = values("until")
        .first()
        .map(|u| super::housekeeping::until(u, now))
        .transpose()?;
    let removed = state.containers.prune(&values("label"), until).await?;
    Ok(Json(json!({
        "ContainersDeleted": if removed.is_empty() { Value::Null } else { json!(removed) },
        "SpaceReclaimed": 0,
    })))
}
