//! The embedded DNS responder of user-defined networks (docker's 127.0.0.11): per running
//! container, a UDP and a TCP socket bound inside its network namespace and served by
//! hickory-server from the daemon's runtime, each knowing which container asks. Names come
//! from the network records at the time of the query, so connects, disconnects, renames and
//! removals are seen at once.
pub mod forward;
pub mod handler;
pub mod socket;
pub mod table;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::Server;

use super::NetworkService;
use handler::Handler;
pub use socket::{BindError, RESOLVER};

/// An idle TCP client is dropped after this long.
const TCP_IDLE: Duration = Duration::from_secs(5);

/// The responders of the running containers.
pub struct Dns {
    networks: Arc<NetworkService>,
    servers: Mutex<HashMap<String, Server<Handler>>>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").finish_non_exhaustive()
    }
}

impl Dns {
    pub fn new(networks: Arc<NetworkService>) -> Dns {
        Dns {
            networks,
            servers: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Server<Handler>>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `container`'s queries on 127.0.0.11:53 in its namespace at `netns` (replacing
    /// a responder it had). Needs the daemon's runtime.
    pub fn serve(
        &self,
        container: &str,
        netns: &Path,
        upstreams: Vec<SocketAddr>,
    ) -> Result<(), BindError> {
        self.stop(container);
        let (udp, tcp) = socket::bind_in(netns)?;
        let fail = |message: String| BindError {
            netns: netns.display().to_string(),
            message,
        };
        let udp = tokio::net::UdpSocket::from_std(udp).map_err(|e| fail(e.to_string()))?;
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(|e| fail(e.to_string()))?;
        let mut server = Server::new(Handler {
            container: container.to_string(),
            networks: self.networks.clone(),
            upstreams,
        });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, 16);
        self.lock().insert(container.to_string(), server);
        tracing::debug!(container, "DNS responder up");
        Ok(())
    }

    /// Closes `container`'s sockets (its namespace can then go).
    pub fn stop(&self, container: &str) {
        let server = self.lock().remove(container);
        if let Some(server) = server {
            server.shutdown_token().cancel();
            drop(server);
        }
    }

    /// Whether `container` has a responder.
    pub fn serving(&self, container: &str) -> bool {
        self.lock().contains_key(container)
    }
}
