//! `berth daemon`: serves the API (axum) on a unix socket, one instance per socket.
//!
//! A multi-thread runtime with two workers (the image service uses `block_in_place`); one
//! [`ImageService`] opened at start. SIGTERM/SIGINT remove the socket and pid file.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};

use crate::images::service::{self, ImageService};
use crate::perms;

mod listen;
pub mod served;

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
    #[error("container service under {path}: {source}")]
    Containers {
        path: PathBuf,
        source: crate::containers::service::Error,
    },
    #[error("network service under {path}: {source}")]
    Networks {
        path: PathBuf,
        source: crate::network::Error,
    },
    #[error(transparent)]
    Perms(#[from] perms::Error),
    #[error("volume service under {path}: {source}")]
    Volumes {
        path: PathBuf,
        source: crate::volumes::Error,
    },
    #[error("image service under {path}: {source}")]
    Images {
        path: PathBuf,
        source: service::Error,
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
    /// `--max-layer-size`: a fixed bound on a layer's uncompressed size.
    pub max_layer_size: Option<u64>,
    /// `--registry-stall-timeout`.
    pub registry_stall: Duration,
    /// `--api-idle-timeout`: an API connection that sends no request head for this long is
    /// closed.
    pub api_idle_timeout: Duration,
    /// Started by a CLI that found no daemon on the socket.
    pub autostarted: bool,
    /// `--bip`, `--bridge`, `--default-address-pool`.
    pub network: NetworkFlags,
}

/// The daemon's network flags.
#[derive(Debug, Clone)]
pub struct NetworkFlags {
    pub bip: String,
    pub bridge: String,
    pub pools: Vec<crate::network::ipam::AddressPool>,
    /// `--iptables`.
    pub firewall: bool,
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
    perms::set_daemon_umask();
    limit_malloc_arenas();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .thread_keep_alive(Duration::from_secs(5))
        .enable_all()
        .build()
        .map_err(io(Path::new("tokio runtime")))?;
    let result = rt.block_on(serve(config));
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

/// glibc gives threads that allocate their own arenas; two keep the idle RSS low.
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes the allocator; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Removes the socket and pid file when dropped.
struct Cleanup {
    socket: PathBuf,
    pid_file: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

async fn bind(config: &Config) -> Result<(UnixListener, Cleanup), Error> {
    let socket = socket_path(&config.host)?;
    // Created for root; non-root members of the socket's group only pass through.
    for dir in [Some(config.exec_root.as_path()), socket.parent()]
        .into_iter()
        .flatten()
    {
        if !dir.exists() {
            perms::make_dir(dir, 0o711)?;
        }
        perms::check_private(dir)?;
    }
    if UnixStream::connect(&socket).await.is_ok() {
        return Err(Error::AlreadyRunning(socket));
    }
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(io(&socket))?;
    // The API is root's power: owner and group only, as dockerd's socket.
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o660))
        .map_err(io(&socket))?;
    let pid_file = config.exec_root.join("berth.pid");
    let cleanup = Cleanup {
        socket,
        pid_file: pid_file.clone(),
    };
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).map_err(io(&pid_file))?;
    perms::set_mode(&pid_file, 0o644)?;
    let served = served::Served {
        data_root: absolute(&config.data_root),
        exec_root: absolute(&config.exec_root),
        insecure_registries: config.insecure_registries.clone(),
        max_layer_size: config.max_layer_size,
        registry_stall_timeout: Some(config.registry_stall.as_secs()),
        autostarted: config.autostarted,
    };
    served::write(&cleanup.socket, &served).map_err(io(&served::path_of(&cleanup.socket)))?;
    Ok((listener, cleanup))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn open_images(config: &Config) -> Result<ImageService, Error> {
    ImageService::open(service::Options {
        data_root: config.data_root.clone(),
        insecure_registries: config.insecure_registries.clone(),
        layer_bound: config
            .max_layer_size
            .map(crate::images::layer::SizeBound::fixed)
            .unwrap_or_default(),
        registry_stall: Some(config.registry_stall),
    })
    .map_err(|source| Error::Images {
        path: config.data_root.clone(),
        source,
    })
}

fn open_networks(config: &Config) -> Result<crate::network::NetworkService, Error> {
    crate::network::NetworkService::open(&crate::network::Options {
        data_root: config.data_root.clone(),
        bip: config.network.bip.clone(),
        bridge: config.network.bridge.clone(),
        pools: config.network.pools.clone(),
        firewall: config.network.firewall,
    })
    .map_err(|source| Error::Networks {
        path: config.data_root.clone(),
        source,
    })
}

async fn serve(config: Config) -> Result<(), Error> {
    let (listener, cleanup) = bind(&config).await?;
    let images = Arc::new(open_images(&config)?);
    let volumes = Arc::new(
        crate::volumes::VolumeService::open(&config.data_root).map_err(|source| {
            Error::Volumes {
                path: config.data_root.clone(),
                source,
            }
        })?,
    );
    let containers = crate::containers::service::ContainerService::open(
        crate::containers::service::Options {
            data_root: config.data_root.clone(),
            exec_root: config.exec_root.clone(),
            volumes: volumes.clone(),
            networks: Arc::new(open_networks(&config)?),
        },
        images.clone(),
    )
    .await
    .map_err(|source| Error::Containers {
        path: config.data_root.clone(),
        source,
    })?;
    crate::build::sweep::sweep(&containers).await;
    // Networking is ready (networks opened above): the restart policies may start containers.
    containers.restart_at_daemon_start().await;
    let state = crate::api::State {
        images,
        containers,
        volumes,
        data_root: config.data_root.display().to_string(),
    };
    tracing::info!(socket = %cleanup.socket.display(), "berth daemon listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io(Path::new("SIGTERM handler")))?;
    let server = listen::serve(listener, crate::api::app(state), config.api_idle_timeout);
    tokio::select! {
        () = server => {},
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down");
    drop(cleanup);
    Ok(())
}
