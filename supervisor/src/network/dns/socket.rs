//! The responder's sockets: UDP and TCP on 127.0.0.11:53 made *inside* a container's network
//! namespace (a thread of our own enters it, binds, and leaves; a socket stays in the
//! namespace it was made in), then served from the daemon's runtime like any other socket.
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;

use nix::sched::{setns, CloneFlags};

/// docker's address of the embedded resolver.
pub const RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// A bind that failed, naming the namespace.
#[derive(Debug, thiserror::Error)]
#[error("DNS listener in {netns}: {message}")]
pub struct BindError {
    pub netns: String,
    pub message: String,
}

/// Binds UDP and TCP `127.0.0.11:53` in the namespace at `netns` (non-blocking, ready for
/// tokio).
pub fn bind_in(netns: &Path) -> Result<(UdpSocket, TcpListener), BindError> {
    let fail = |message: String| BindError {
        netns: netns.display().to_string(),
        message,
    };
    let file = std::fs::File::open(netns).map_err(|e| fail(format!("open: {e}")))?;
    std::thread::spawn(move || -> Result<(UdpSocket, TcpListener), String> {
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
        let at = SocketAddr::from((RESOLVER, 53));
        let udp = UdpSocket::bind(at).map_err(|e| format!("bind udp {at}: {e}"))?;
        let tcp = TcpListener::bind(at).map_err(|e| format!("bind tcp {at}: {e}"))?;
        udp.set_nonblocking(true).map_err(|e| e.to_string())?;
        tcp.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok((udp, tcp))
    })
    .join()
    .unwrap_or_else(|_| Err("thread panicked".into()))
    .map_err(fail)
}
