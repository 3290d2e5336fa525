//! `berth daemon`: serves the API on a unix socket, one instance per socket.
//!
//! Minimal HTTP/1.1 (one request per connection, `Connection: close`) on a current_thread
//! runtime to keep idle RSS small. SIGTERM/SIGINT remove the socket and pid file.
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Errors starting or running the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported host {0:?}: only unix:// sockets are supported")]
    Host(String),
    #[error("another daemon already answers on {0}")]
    AlreadyRunning(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Daemon settings from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub insecure_registries: Vec<String>,
    pub debug: bool,
}

/// The socket path of a `unix://` host.
pub fn socket_path(host: &str) -> Result<PathBuf, Error> {
    host.strip_prefix("unix://")
        .map(PathBuf::from)
        .ok_or_else(|| Error::Host(host.to_string()))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs the daemon in the foreground until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io(Path::new("tokio runtime")))?;
    rt.block_on(serve(config))
}

async fn serve(config: Config) -> Result<(), Error> {
    let socket = socket_path(&config.host)?;
    for dir in [&config.data_root, &config.exec_root] {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    if UnixStream::connect(&socket).await.is_ok() {
        return Err(Error::AlreadyRunning(socket));
    }
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(io(&socket))?;
    let pid_file = config.exec_root.join("berth.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).map_err(io(&pid_file))?;
    tracing::info!(socket = %socket.display(), "berth daemon listening");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io(Path::new("SIGTERM handler")))?;
    let data_root = config.data_root.display().to_string();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let data_root = data_root.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, &data_root).await {
                            tracing::debug!(error = %e, "connection failed");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down");
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pid_file);
    Ok(())
}

async fn handle(stream: UnixStream, data_root: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let response = crate::api::route(&method, &path, data_root);
    let body = if method == "HEAD" {
        ""
    } else {
        response.body.as_str()
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nApi-Version: {}\r\n\
         Docker-Experimental: false\r\nOstype: linux\r\nServer: berth/{}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
        crate::api::API_VERSION,
        env!("CARGO_PKG_VERSION"),
    );
    let mut stream = reader.into_inner();
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "",
    }
}
