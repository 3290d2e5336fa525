//! The daemon's end of containerd's Events API: shims forward their task events here
//! (`TTRPC_ADDRESS`); exits go to the container service. While the daemon is down a shim
//! retries and then drops them; the service asks every shim for its state when it starts.
use std::path::Path;
use std::sync::Arc;

use berth_proto::events::task::TaskExit;
use berth_proto::protobuf::well_known_types::empty::Empty;
use berth_proto::protobuf::Message;
use berth_proto::shim::events::ForwardRequest;
use berth_proto::ttrpc;
use tokio::sync::mpsc::UnboundedSender;

/// A process of a task ended.
#[derive(Debug, Clone)]
pub struct Exit {
    pub container_id: String,
    /// The exec id, or the container id for the init.
    pub id: String,
    /// The process's pid: an init's exit applies only to the task it ended (a re-adopted
    /// shim can deliver its exit after the daemon has already started the container again).
    pub pid: u32,
    pub status: u32,
}

struct Sink(UnboundedSender<Exit>);

impl berth_proto::Events for Sink {
    fn forward(&self, _: &ttrpc::TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        let envelope = &req.envelope;
        if envelope.topic == "/tasks/exit" {
            if let Some(any) = envelope.event.as_ref() {
                match TaskExit::parse_from_bytes(&any.value) {
                    Ok(e) => {
                        let _ = self.0.send(Exit {
                            container_id: e.container_id,
                            id: e.id,
                            pid: e.pid,
                            status: e.exit_status,
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "undecodable TaskExit"),
                }
            }
        }
        Ok(Empty::new())
    }
}

/// Serves the Events API on `socket` until dropped.
pub struct EventServer {
    server: Option<ttrpc::Server>,
}

impl EventServer {
    pub fn listen(
        socket: &Path,
        exits: UnboundedSender<Exit>,
    ) -> Result<EventServer, ttrpc::Error> {
        let _ = std::fs::remove_file(socket);
        let mut server = ttrpc::Server::new()
            .bind(&format!("unix://{}", socket.display()))?
            .register_service(berth_proto::create_events(Arc::new(Sink(exits))));
        server.start()?;
        Ok(EventServer {
            server: Some(server),
        })
    }
}

impl Drop for EventServer {
    fn drop(&mut self) {
        // Not `shutdown`: that waits on connection handlers, which may never finish.
        if let Some(server) = self.server.take() {
            drop(server.stop_listen());
        }
    }
}
