//! The API's connections: hyper's HTTP/1 server on each accepted unix stream, with upgrades
//! (attach, exec) and a header-read timeout. hyper runs that timeout whenever it waits for a
//! request's head, so it is also the idle timeout between requests: a connection that sends
//! nothing is closed, and thousands of idle sockets cannot hold the daemon's descriptors.
//! A streamed answer (logs -f, events, a pull) is not reading a head, so no timeout cuts it.
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::UnixListener;

/// Wait before accepting again when the process is out of descriptors.
const FULL_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until the future is dropped.
pub async fn serve(listener: UnixListener, app: axum::Router, idle: Duration) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE/ENFILE and the like: the idle timeout frees descriptors soon.
                tracing::warn!(error = %e, "accepting an API connection");
                tokio::time::sleep(FULL_BACKOFF).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(idle)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "API connection ended");
            }
        });
    }
}
