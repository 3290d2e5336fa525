//! Pulls shared by the clients that wait on them, as dockerd shares its downloads: a second
//! `POST /images/create` of the same reference, platform and credentials joins the running
//! pull (its messages so far, then the live ones, then its outcome) instead of starting
//! another; when the last client has gone, the pull is cancelled. A cancelled pull keeps
//! what a retry resumes from (whole blobs, under the pull's lease) and nothing half-written.
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use axum::http::StatusCode;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ApiError;
use crate::images::progress::Message;
use crate::images::registry::Credentials;
use crate::images::service::ImageService;

type Outcome = Result<Vec<serde_json::Value>, ApiError>;

/// The pulls running in this daemon, by [`key`].
static RUNNING: LazyLock<Mutex<HashMap<String, Arc<Shared>>>> = LazyLock::new(Mutex::default);

/// What one pull asks for.
pub struct Request {
    pub reference: String,
    pub platform: Option<String>,
    pub auth: Option<Credentials>,
}

impl Request {
    /// Clients share a pull only when they ask for the same thing with the same credentials.
    fn key(&self) -> String {
        let auth = self.auth.as_ref().map(Credentials::to_header);
        let digest = crate::images::content::digest_of(auth.unwrap_or_default().as_bytes());
        format!("{} {:?} {digest}", self.reference, self.platform)
    }
}

/// One running pull and the clients that wait on it.
struct Shared {
    key: String,
    clients: Mutex<Clients>,
    /// Cancelled when the last client leaves.
    cancel: CancellationToken,
    /// Cancelled once the outcome is handed out.
    done: CancellationToken,
}

#[derive(Default)]
struct Clients {
    log: Vec<Message>,
    progress: Vec<mpsc::UnboundedSender<Message>>,
    outcomes: Vec<oneshot::Sender<Outcome>>,
    count: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Joins the pull of `request` (starting it if none runs): its progress messages, and a task
/// that ends with its outcome. The client counts as gone when it drops the receiver.
pub fn join(
    images: Arc<ImageService>,
    request: Request,
) -> (mpsc::UnboundedReceiver<Message>, JoinHandle<Outcome>) {
    let key = request.key();
    let mut running = lock(&RUNNING);
    let shared = match running.get(&key).filter(|s| !s.cancel.is_cancelled()) {
        Some(shared) => {
            tracing::info!(reference = %request.reference, "joining a running pull");
            shared.clone()
        }
        None => {
            let shared = start(images, request, key.clone());
            running.insert(key, shared.clone());
            shared
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let (outcome_tx, outcome_rx) = oneshot::channel();
    {
        let mut clients = lock(&shared.clients);
        for m in &clients.log {
            let _ = tx.send(m.clone());
        }
        clients.progress.push(tx.clone());
        clients.outcomes.push(outcome_tx);
        clients.count += 1;
    }
    drop(running);
    tokio::spawn(async move {
        tokio::select! {
            _ = tx.closed() => shared.leave(),
            _ = shared.done.cancelled() => {}
        }
    });
    let outcome = tokio::spawn(async move {
        outcome_rx.await.unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "pull cancelled",
            ))
        })
    });
    (rx, outcome)
}

/// Starts the pull and the task that hands its messages and outcome to the clients.
fn start(images: Arc<ImageService>, request: Request, key: String) -> Arc<Shared> {
    let shared = Arc::new(Shared {
        key,
        clients: Mutex::default(),
        cancel: CancellationToken::new(),
        done: CancellationToken::new(),
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = shared.cancel.clone();
    let mut task = super::stream::spawn_service(move || async move {
        let Request {
            reference,
            platform,
            auth,
        } = request;
        tokio::select! {
            pulled = images.pull(&reference, platform.as_deref(), auth, &tx) => {
                pulled?;
                Ok(Vec::new())
            }
            _ = cancel.cancelled() => {
                tracing::info!(%reference, "pull cancelled: no client waits for it");
                Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "pull cancelled"))
            }
        }
    });
    let hub = shared.clone();
    tokio::spawn(async move {
        let outcome = loop {
            tokio::select! {
                Some(m) = rx.recv() => hub.broadcast(m),
                outcome = &mut task => break outcome,
            }
        };
        while let Ok(m) = rx.try_recv() {
            hub.broadcast(m);
        }
        hub.finish(super::stream::joined(outcome));
    });
    shared
}

impl Shared {
    fn broadcast(&self, m: Message) {
        let mut clients = lock(&self.clients);
        clients.progress.retain(|tx| tx.send(m.clone()).is_ok());
        clients.log.push(m);
    }

    fn forget(&self, running: &mut HashMap<String, Arc<Shared>>) {
        if running
            .get(&self.key)
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), self))
        {
            running.remove(&self.key);
        }
    }

    fn finish(&self, outcome: Outcome) {
        self.forget(&mut lock(&RUNNING));
        let mut clients = lock(&self.clients);
        for tx in clients.outcomes.drain(..) {
            let _ = tx.send(copy(&outcome));
        }
        clients.progress.clear();
        self.done.cancel();
    }

    /// A client went away; the last one takes the pull with it.
    fn leave(&self) {
        let mut running = lock(&RUNNING);
        let mut clients = lock(&self.clients);
        clients.count = clients.count.saturating_sub(1);
        if clients.count == 0 && !self.done.is_cancelled() {
            self.cancel.cancel();
            self.forget(&mut running);
        }
    }
}

fn copy(outcome: &Outcome) -> Outcome {
    match outcome {
        Ok(lines) => Ok(lines.clone()),
        Err(e) => Err(ApiError::new(e.status, e.message.clone())),
    }
}
