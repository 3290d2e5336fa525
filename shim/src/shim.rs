//! The shim's three lives: `start` (spawn or reuse the long-lived shim, print its address),
//! the long-lived ttrpc server itself, and `delete` (clean up after a shim that died).
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;

use berth_proto::api::DeleteResponse;
use berth_proto::protobuf::well_known_types::timestamp::Timestamp;
use berth_proto::protobuf::{Message, MessageField};
use berth_proto::ttrpc;
use sha2::{Digest, Sha256};

use crate::events::{unix_address, Publisher};
use crate::flags::Flags;
use crate::service::{runtime_for, Service};
use crate::{mount, reaper};

/// Where shim sockets live (containerd's own convention, so tools find them).
pub const SOCKET_DIR: &str = "/run/containerd/s";
/// How long an exiting shim waits for its last events to reach containerd.
const EVENTS_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);
/// The listener is handed to the long-lived shim as this fd.
const LISTENER_FD: i32 = 3;
/// Annotations that put containers into one shim, in containerd's order: its runc shim's own
/// group label, then the Kubernetes pod (sandbox) id.
const GROUP_LABELS: [&str; 2] = [
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("ttrpc server: {0}")]
    Ttrpc(#[from] ttrpc::Error),
}

fn io_at(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ShimError {
    let path = path.to_owned();
    move |source| ShimError::Io { what, path, source }
}

fn bundle_dir(flags: &Flags) -> Result<PathBuf, ShimError> {
    match &flags.bundle {
        Some(b) => Ok(b.clone()),
        None => std::env::current_dir().map_err(io_at("cwd", Path::new("."))),
    }
}

/// containerd's socket naming: sha256 of `<containerd address>/<namespace>/<group>`.
pub fn socket_address(address: &str, namespace: &str, group: &str) -> String {
    let key = Path::new(address).join(namespace).join(group);
    let digest = Sha256::digest(key.to_string_lossy().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("unix://{SOCKET_DIR}/{hex}")
}

fn group_of(bundle: &Path, id: &str) -> String {
    let spec = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default();
    GROUP_LABELS
        .iter()
        .find_map(|label| spec["annotations"][label].as_str())
        .filter(|group| !group.is_empty())
        .unwrap_or(id)
        .to_owned()
}

/// `start`: make sure a shim serves this container and print its address.
pub fn start(flags: &Flags) -> Result<(), ShimError> {
    let bundle = bundle_dir(flags)?;
    let address = match &flags.socket {
        Some(s) => unix_address(s),
        None => socket_address(
            &flags.address,
            &flags.namespace,
            &group_of(&bundle, &flags.id),
        ),
    };
    let path = PathBuf::from(address.trim_start_matches("unix://"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_at("create", dir))?;
    }
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            if UnixStream::connect(&path).is_ok() {
                // A shim of the same group already serves: reuse it.
                return reuse(&bundle, &address);
            }
            std::fs::remove_file(&path).map_err(io_at("remove stale socket", &path))?;
            UnixListener::bind(&path).map_err(io_at("bind", &path))?
        }
        Err(e) => return Err(io_at("bind", &path)(e)),
    };
    let pid = spawn_server(flags, &bundle, listener)?;
    std::fs::write(bundle.join("shim.pid"), pid.to_string()).map_err(io_at("write", &bundle))?;
    write_address(&bundle, &address)?;
    print!("{address}");
    io::stdout()
        .flush()
        .map_err(io_at("stdout", Path::new("-")))?;
    Ok(())
}

/// Points the bundle at the running shim of its group: its address and its pid.
fn reuse(bundle: &Path, address: &str) -> Result<(), ShimError> {
    match running_shim_pid(address) {
        Ok(pid) => {
            let path = bundle.join("shim.pid");
            std::fs::write(&path, pid.to_string()).map_err(io_at("write", &path))?;
        }
        Err(e) => tracing::warn!(error = %e, address, "pid of the running shim"),
    }
    write_address(bundle, address)?;
    print!("{address}");
    io::stdout()
        .flush()
        .map_err(io_at("stdout", Path::new("-")))
}

/// Asks the shim at `address` for its pid (Connect), as containerd does.
fn running_shim_pid(address: &str) -> Result<u32, ttrpc::Error> {
    let client = berth_proto::TaskClient::new(ttrpc::Client::connect(address)?);
    let reply = client.connect(
        ttrpc::context::with_timeout(5_000_000_000),
        &berth_proto::api::ConnectRequest::new(),
    )?;
    Ok(reply.shim_pid)
}

fn write_address(bundle: &Path, address: &str) -> Result<(), ShimError> {
    let path = bundle.join("address");
    std::fs::write(&path, address).map_err(io_at("write", &path))
}

/// Re-executes this binary as the long-lived server, in its own session, listener on fd 3.
fn spawn_server(flags: &Flags, bundle: &Path, listener: UnixListener) -> Result<u32, ShimError> {
    let exe = std::env::current_exe().map_err(io_at("current_exe", Path::new("/proc/self/exe")))?;
    let fd = listener.into_raw_fd();
    let mut cmd = Command::new(&exe);
    cmd.args(flags.to_args())
        .current_dir(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if fd == LISTENER_FD {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, LISTENER_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(io_at("spawn", &exe))?;
    // SAFETY: we own fd; the child has its copy.
    drop(unsafe { UnixListener::from_raw_fd(fd) });
    Ok(child.id())
}

/// The long-lived shim: serves the Task API on the listener from `start` until Shutdown.
pub fn serve(flags: &Flags) -> Result<(), ShimError> {
    crate::memory::one_arena();
    let exits = reaper::init().map_err(io_at("subreaper", Path::new("/proc/self")))?;
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").unwrap_or_else(|_| {
        if flags.address.is_empty() {
            String::new()
        } else {
            format!("{}.ttrpc", flags.address)
        }
    });
    let events = Publisher::start(ttrpc_address, flags.namespace.clone())
        .map_err(io_at("thread", Path::new("events")))?;
    let (shutdown_tx, shutdown_rx) = channel();
    let socket_path = local_socket_path(LISTENER_FD);
    let service = Service::new(
        events.clone(),
        flags.namespace.clone(),
        shutdown_tx,
        socket_path,
    );
    let exit_service = service.clone();
    std::thread::Builder::new()
        .name("exits".into())
        .stack_size(128 * 1024)
        .spawn(move || exit_service.handle_exits(exits))
        .map_err(io_at("thread", Path::new("exits")))?;
    let mut server = ttrpc::Server::new()
        .add_listener(LISTENER_FD)?
        .register_service(task_methods(&service, "v2"))
        .register_service(task_methods(&service, "v3"))
        // The fewest ttrpc accepts (min < default < max). A Wait holds its worker until the
        // process exits; ttrpc starts another whenever fewer than `min` are idle.
        .set_thread_count_min(1)
        .set_thread_count_default(2)
        .set_thread_count_max(3);
    server.start()?;
    tracing::info!(pid = std::process::id(), "shim serving");
    crate::memory::release_clean_file_pages();
    let _ = shutdown_rx.recv();
    // Let the Shutdown reply leave before the server goes, and the last events reach containerd.
    std::thread::sleep(std::time::Duration::from_millis(20));
    events.flush(EVENTS_FLUSH);
    // Stop accepting, but do not drain connections: ttrpc's disconnect waits for every
    // connection handler, and one whose client (containerd) closes at the same moment can
    // keep it waiting forever. Nothing is left to serve; exiting closes them all.
    drop(server.stop_listen());
    Ok(())
}

/// containerd 1.6 speaks `containerd.task.v2.Task`, 2.x `containerd.task.v3.Task`; the messages
/// are the same, so the service answers under both names.
fn task_methods(
    service: &std::sync::Arc<Service>,
    version: &str,
) -> std::collections::HashMap<String, Box<dyn ttrpc::MethodHandler + Send + Sync>> {
    berth_proto::create_task(service.clone())
        .into_iter()
        .map(|(k, v)| {
            (
                k.replace(
                    "containerd.task.v3.",
                    &format!("containerd.task.{version}."),
                ),
                v,
            )
        })
        .collect()
}

fn local_socket_path(fd: i32) -> Option<PathBuf> {
    // SAFETY: getsockname on a listening unix socket fd, into a zeroed sockaddr_un.
    let listener = std::mem::ManuallyDrop::new(unsafe { UnixListener::from_raw_fd(fd) });
    let _ = listener.as_raw_fd();
    listener
        .local_addr()
        .ok()?
        .as_pathname()
        .map(Path::to_owned)
}

/// `delete`: the shim died; clean up the container and report it killed.
pub fn delete(flags: &Flags) -> Result<(), ShimError> {
    let bundle = bundle_dir(flags)?;
    reaper::init().map_err(io_at("subreaper", Path::new("/proc/self")))?;
    // Without saved options the shim already deleted the container itself.
    if bundle.join(crate::options::SAVED).exists() {
        let runtime = runtime_for(&bundle, &flags.namespace);
        if let Err(e) = runtime.run(&["delete", "--force", &flags.id], None) {
            tracing::warn!(error = %e, "runtime delete");
        }
    }
    mount::unmount_rootfs(&bundle.join("rootfs"));
    remove_dead_socket(&bundle);
    let mut r = DeleteResponse::new();
    r.exit_status = 128 + libc::SIGKILL as u32;
    r.exited_at = MessageField::some(Timestamp::now());
    let bytes = r.write_to_bytes().unwrap_or_default();
    io::stdout()
        .write_all(&bytes)
        .map_err(io_at("stdout", Path::new("-")))?;
    Ok(())
}

/// Removes the socket named in the bundle's `address` file if no shim listens on it any more.
fn remove_dead_socket(bundle: &Path) {
    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = Path::new(address.trim().trim_start_matches("unix://"));
    if path.starts_with(SOCKET_DIR) && UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_comes_from_runc_group_label_then_sandbox_id() {
        let dir = std::env::temp_dir().join(format!("berth-shim-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |annotations: serde_json::Value| {
            let spec = serde_json::json!({ "annotations": annotations });
            std::fs::write(dir.join("config.json"), spec.to_string()).unwrap();
        };
        write(serde_json::json!({"io.kubernetes.cri.sandbox-id": "pod"}));
        assert_eq!(group_of(&dir, "c1"), "pod");
        write(serde_json::json!({
            "io.kubernetes.cri.sandbox-id": "pod", "io.containerd.runc.v2.group": "g",
        }));
        assert_eq!(group_of(&dir, "c1"), "g");
        write(serde_json::json!({}));
        assert_eq!(group_of(&dir, "c1"), "c1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn socket_address_is_containerds_hash() {
        let a = socket_address("/run/containerd/containerd.sock", "default", "c1");
        let b = socket_address("/run/containerd/containerd.sock", "default", "c2");
        assert!(a.starts_with("unix:///run/containerd/s/"));
        assert_eq!(a.len(), "unix:///run/containerd/s/".len() + 64);
        assert_ne!(a, b);
    }
}
