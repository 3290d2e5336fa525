//! Publishes task events to containerd over its ttrpc Events service (`TTRPC_ADDRESS`), in
//! order, from one thread; an event is retried until containerd takes it or it is clearly gone.
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use berth_proto::protobuf::well_known_types::any::Any;
use berth_proto::protobuf::well_known_types::timestamp::Timestamp;
use berth_proto::protobuf::{Message, MessageField};
use berth_proto::shim::event::Envelope;
use berth_proto::shim::events::ForwardRequest;
use berth_proto::ttrpc::context;
use berth_proto::{ttrpc, EventsClient};

const RETRIES: u32 = 10;

/// What the publisher thread is handed, in order.
enum Item {
    Event(Envelope),
    /// Activity without an event (see [`Publisher::touch`]).
    Touch,
    /// Answered once everything queued before it was forwarded (or given up).
    Flush(Sender<()>),
}

/// A cloneable handle that queues events for the publisher thread.
#[derive(Clone)]
pub struct Publisher {
    tx: Sender<Item>,
    namespace: String,
}

impl Publisher {
    /// Starts the publisher thread for `ttrpc_address` (empty: events are dropped).
    pub fn start(ttrpc_address: String, namespace: String) -> std::io::Result<Publisher> {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("events".into())
            .stack_size(128 * 1024)
            .spawn(move || forward_all(&ttrpc_address, rx))?;
        Ok(Publisher { tx, namespace })
    }

    /// Marks activity: the quiet period after it ends with the memory release.
    pub fn touch(&self) {
        let _ = self.tx.send(Item::Touch);
    }

    /// Waits (at most `limit`) until every event queued so far reached containerd: the shim
    /// calls it before exiting, so a TaskDelete right before Shutdown is not lost.
    pub fn flush(&self, limit: Duration) {
        let (tx, rx) = channel();
        if self.tx.send(Item::Flush(tx)).is_ok() && rx.recv_timeout(limit).is_err() {
            tracing::warn!(?limit, "events not all forwarded before exit");
        }
    }

    /// Queues `event` on `topic` (e.g. `/tasks/exit`).
    pub fn publish<M: Message>(&self, topic: &str, event: &M) {
        let mut any = Any::new();
        any.type_url = format!("containerd.events.{}", event_name(topic));
        any.value = event.write_to_bytes().unwrap_or_default();
        let mut env = Envelope::new();
        env.timestamp = MessageField::some(Timestamp::now());
        env.namespace = self.namespace.clone();
        env.topic = topic.to_owned();
        env.event = MessageField::some(any);
        let _ = self.tx.send(Item::Event(env));
    }
}

/// containerd's message names for the task topics.
fn event_name(topic: &str) -> &'static str {
    match topic {
        "/tasks/create" => "TaskCreate",
        "/tasks/start" => "TaskStart",
        "/tasks/exit" => "TaskExit",
        "/tasks/oom" => "TaskOOM",
        "/tasks/exec-added" => "TaskExecAdded",
        "/tasks/exec-started" => "TaskExecStarted",
        "/tasks/paused" => "TaskPaused",
        "/tasks/resumed" => "TaskResumed",
        "/tasks/delete" => "TaskDelete",
        "/tasks/checkpointed" => "TaskCheckpointed",
        _ => "Unknown",
    }
}

/// How long a connection to containerd is kept after the last event. The client is dropped
/// when idle so a running container costs no connection threads, and the shim's code pages
/// are released (see `memory`).
const IDLE: Duration = Duration::from_millis(500);
/// A second, later release after a quiet period of this length.
const SETTLE: Duration = Duration::from_secs(3);

fn forward_all(address: &str, rx: Receiver<Item>) {
    let mut pending = None;
    loop {
        let first = match pending.take() {
            Some(item) => item,
            None => match rx.recv() {
                Ok(item) => item,
                Err(_) => return,
            },
        };
        burst(address, &rx, first);
        // Quiet again: give back the code pages the burst of work touched, and once more
        // when the tail of the work (thread exits, late replies) has settled too.
        crate::memory::release_clean_file_pages();
        match rx.recv_timeout(SETTLE) {
            Ok(item) => pending = Some(item),
            Err(RecvTimeoutError::Timeout) => {
                crate::memory::release_clean_file_pages();
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Forwards events until none came for [`IDLE`], over one connection dropped at the end.
fn burst(address: &str, rx: &Receiver<Item>, first: Item) {
    let mut client: Option<EventsClient> = None;
    let mut next = first;
    loop {
        match next {
            Item::Event(env) if !address.is_empty() => forward(address, &mut client, env),
            Item::Flush(done) => {
                let _ = done.send(());
            }
            Item::Event(_) | Item::Touch => {}
        }
        match rx.recv_timeout(IDLE) {
            Ok(item) => next = item,
            Err(_) => return,
        }
    }
}

/// Forwards one event, reconnecting and retrying with backoff.
fn forward(address: &str, client: &mut Option<EventsClient>, env: Envelope) {
    let mut req = ForwardRequest::new();
    req.envelope = MessageField::some(env);
    for attempt in 0..RETRIES {
        if client.is_none() {
            *client = ttrpc::Client::connect(&unix_address(address))
                .ok()
                .map(EventsClient::new);
        }
        if let Some(c) = client.as_ref() {
            match c.forward(context::with_timeout(5_000_000_000), &req) {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, topic = %req.envelope.topic, "publish event");
                    *client = None;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100 << attempt.min(4)));
    }
    tracing::error!(topic = %req.envelope.topic, "event dropped: containerd unreachable");
}

/// ttrpc-rust wants `unix://`; containerd's env carries a plain path.
pub fn unix_address(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("unix://{address}")
    }
}
