//! Names that are not the containers': the query as the container sent it, to each upstream
//! server in turn from the daemon's own network namespace (so that the host's loopback
//! resolvers, e.g. 127.0.0.53, are reachable, as with docker), with a short timeout each.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::op::Message;
use tokio::net::UdpSocket;

/// How long one upstream server gets to answer.
pub const ATTEMPT: Duration = Duration::from_millis(1500);
/// How many upstream servers one query tries (docker's resolver tries three).
pub const MAX_SERVERS: usize = 3;

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream name servers")]
    NoServers,
    #[error("no answer from {0:?}")]
    NoAnswer(Vec<SocketAddr>),
}

/// Sends `query` (a whole DNS message) to the servers in order and returns the first reply
/// that parses and matches its id.
pub async fn forward(
    query: &[u8],
    id: u16,
    servers: &[SocketAddr],
) -> Result<Message, ForwardError> {
    if servers.is_empty() {
        return Err(ForwardError::NoServers);
    }
    let tried: Vec<SocketAddr> = servers.iter().take(MAX_SERVERS).copied().collect();
    for server in &tried {
        match tokio::time::timeout(ATTEMPT, ask(query, id, *server)).await {
            Ok(Ok(reply)) => return Ok(reply),
            Ok(Err(e)) => tracing::debug!(%server, error = %e, "upstream"),
            Err(_) => tracing::debug!(%server, "upstream timed out"),
        }
    }
    Err(ForwardError::NoAnswer(tried))
}

async fn ask(query: &[u8], id: u16, server: SocketAddr) -> std::io::Result<Message> {
    let local: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((local, 0)).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == id => return Ok(m),
            // A stray or late datagram: keep waiting for ours.
            _ => continue,
        }
    }
}
