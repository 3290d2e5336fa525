//! The daemon's forwarder for what the kernel's NAT cannot carry to a published port: IPv6
//! clients of a container that has no IPv6 address, and clients on `[::1]` (IPv6 has no
//! `route_localnet`: a packet from `::1` may not leave `lo`, so it cannot be DNATed to a
//! container). Everything else reaches containers by NAT rules alone. All forwarders are
//! tasks of one small runtime on a thread of their own, not a process per port; a dropped
//! [`Forwarder`] has let go of its socket (and port) when `drop` returns.
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use socket2::Socket;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// How long a UDP client's upstream socket lives without traffic (docker-proxy's 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);

/// Each direction's buffer of a forwarded TCP connection: tokio's 8 KiB default costs a
/// wakeup and two syscalls per 8 KiB, a third of docker-proxy's throughput.
const TCP_BUF: usize = 256 * 1024;

/// The largest datagram forwarded.
const UDP_MAX: usize = 65_535;

/// The forwarders' runtime, started at the first forwarder.
fn runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the port forwarders");
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("berth-forward".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .expect("the port forwarders' thread");
        handle
    })
}

/// A running forwarder; dropping it stops it and closes its socket.
#[derive(Debug)]
pub struct Forwarder {
    stop: Option<oneshot::Sender<()>>,
    stopped: std::sync::mpsc::Receiver<()>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        drop(self.stop.take());
        // Disconnected once every `Alive`, and so every holder of the socket, is gone.
        let _ = self.stopped.recv_timeout(Duration::from_secs(2));
    }
}

/// Held by whatever holds a forwarder's socket, and dropped after it: a task the runtime
/// aborts is dropped some time after its abort, so the end of `serve` alone does not say
/// the socket is closed.
#[derive(Clone, Debug)]
struct Alive {
    _stopped: std::sync::mpsc::Sender<()>,
}

fn spawn<F>(serve: impl FnOnce(Alive) -> F) -> Forwarder
where
    F: Future<Output = io::Result<()>> + Send + 'static,
{
    let (stop, stop_asked) = oneshot::channel::<()>();
    let (alive, stopped) = std::sync::mpsc::channel::<()>();
    let alive = Alive { _stopped: alive };
    let serve = serve(alive.clone());
    runtime().spawn(async move {
        tokio::select! {
            _ = stop_asked => {}
            Err(e) = serve => tracing::warn!(error = %e, "port forwarder stopped"),
        }
        // After select!, which dropped `serve` and what it owned.
        drop(alive);
    });
    Forwarder {
        stop: Some(stop),
        stopped,
    }
}

/// Accepts on `socket` (listening, TCP) and joins each connection to one to `to`.
pub fn tcp(socket: Socket, to: SocketAddr) -> io::Result<Forwarder> {
    socket.set_nonblocking(true)?;
    let listener: std::net::TcpListener = socket.into();
    // Connections it accepted may outlive it a moment: they share its port, but with
    // SO_REUSEADDR only a listening socket keeps the next bind off it.
    Ok(spawn(|_| serve_tcp(listener, to)))
}

async fn serve_tcp(listener: std::net::TcpListener, to: SocketAddr) -> io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    // Dropped with the forwarder: its connections end with it.
    let mut connections = JoinSet::new();
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            // Out of fds or memory for a moment: the next accept may do.
            Err(e) => {
                tracing::debug!(error = %e, "accepting a forwarded connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(join(client, to));
    }
}

async fn join(mut client: TcpStream, to: SocketAddr) {
    // Refused or unreachable: the client's connection closes.
    let Ok(mut upstream) = TcpStream::connect(to).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, TCP_BUF, TCP_BUF)
        .await;
}

/// Relays datagrams on `socket` (bound, UDP) to `to`, from a socket of each client's own,
/// and the answers back.
pub fn udp(socket: Socket, to: SocketAddr) -> io::Result<Forwarder> {
    socket.set_nonblocking(true)?;
    let socket: std::net::UdpSocket = socket.into();
    Ok(spawn(|alive| serve_udp(socket, to, alive)))
}

/// A UDP forwarder's socket, shared by its relays, which answer clients from it.
struct Listener {
    socket: UdpSocket,
    // Dropped after `socket` (fields drop in order).
    _alive: Alive,
}

async fn serve_udp(socket: std::net::UdpSocket, to: SocketAddr, alive: Alive) -> io::Result<()> {
    let listener = Arc::new(Listener {
        socket: UdpSocket::from_std(socket)?,
        _alive: alive,
    });
    let socket = &listener.socket;
    let mut clients: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut relays = JoinSet::new();
    let mut buf = vec![0u8; UDP_MAX];
    loop {
        let (n, client) = socket.recv_from(&mut buf).await?;
        let datagram = buf[..n].to_vec();
        let datagram = match clients.get(&client) {
            None => datagram,
            Some(tx) => match tx.try_send(datagram) {
                // Sent, or lost as on a full link when its relay is behind.
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => continue,
                // Its relay ended (idle): a new one.
                Err(mpsc::error::TrySendError::Closed(d)) => d,
            },
        };
        clients.retain(|_, tx| !tx.is_closed());
        while relays.try_join_next().is_some() {}
        let upstream = match upstream_for(to).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "a socket for a forwarded UDP client");
                continue;
            }
        };
        let (tx, rx) = mpsc::channel(64);
        let _ = tx.try_send(datagram);
        clients.insert(client, tx);
        relays.spawn(relay(upstream, rx, listener.clone(), client));
    }
}

async fn upstream_for(to: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = match to {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let upstream = UdpSocket::bind(any).await?;
    upstream.connect(to).await?;
    Ok(upstream)
}

/// One client's datagrams to the container, and the container's answers to it, until it
/// has been quiet for `UDP_IDLE`.
async fn relay(
    upstream: UdpSocket,
    mut datagrams: mpsc::Receiver<Vec<u8>>,
    listener: Arc<Listener>,
    client: SocketAddr,
) {
    let mut buf = vec![0u8; UDP_MAX];
    loop {
        tokio::select! {
            d = datagrams.recv() => match d {
                Some(d) => { let _ = upstream.send(&d).await; }
                None => return,
            },
            // An error is an ICMP answer (nothing listens yet): the client may try again.
            Ok(n) = upstream.recv(&mut buf) => {
                let _ = listener.socket.send_to(&buf[..n], client).await;
            }
            _ = tokio::time::sleep(UDP_IDLE) => return,
        }
    }
}
