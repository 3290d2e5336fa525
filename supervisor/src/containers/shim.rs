//! Starting `containerd-shim-berth-v2` the way containerd does (`start` in the bundle, the
//! printed address), and calling its Task API over ttrpc. Calls are synchronous (the ttrpc
//! crate's client): callers run them on a blocking thread.
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_proto::api::*;
use berth_proto::protobuf::well_known_types::any::Any;
use berth_proto::protobuf::Message;
use berth_proto::shim::oci::Options as RuncOptions;
use berth_proto::ttrpc::{self, context};
use berth_proto::TaskClient;

/// The namespace berth's tasks live in (the runtime's state is under `<root>/berth`).
pub const NAMESPACE: &str = "berth";
const SHIM: &str = "containerd-shim-berth-v2";
const RUNTIME: &str = "berth-runtime";
/// Per-call limit, so that a shim that stopped answering fails the call instead of hanging.
const CALL_TIMEOUT_NS: i64 = 30_000_000_000;
/// How long a shim that was told to shut down gets to exit.
const SHUTDOWN_WAIT_MS: u16 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("starting shim {path}: {message}")]
    Start { path: PathBuf, message: String },
    #[error("shim {address}: {source}")]
    Connect {
        address: String,
        source: ttrpc::Error,
    },
    /// The task API's answer: the runtime's message when it failed.
    #[error("{0}")]
    Task(String),
    /// The connection broke mid-call (the shim died).
    #[error("shim connection lost: {0}")]
    Lost(String),
}

impl ShimError {
    fn task(e: ttrpc::Error) -> ShimError {
        match e {
            ttrpc::Error::RpcStatus(s) => ShimError::Task(s.message().to_string()),
            ttrpc::Error::Socket(m) => ShimError::Lost(m),
            other => ShimError::Task(other.to_string()),
        }
    }

    /// The task no longer exists in the shim (or the shim is gone).
    pub fn is_gone(&self) -> bool {
        match self {
            ShimError::Connect { .. } | ShimError::Lost(_) => true,
            ShimError::Task(m) => m.contains("not found"),
            ShimError::Start { .. } => false,
        }
    }
}

/// A binary next to this executable (how tests and `make install` lay them out), else on PATH.
pub fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Where the daemon's shims, runtime state and event socket live.
#[derive(Debug, Clone)]
pub struct Paths {
    pub exec_root: PathBuf,
}

impl Paths {
    pub fn events_socket(&self) -> PathBuf {
        self.exec_root.join("events.sock")
    }

    pub fn shim_socket(&self, id: &str) -> PathBuf {
        self.exec_root.join("s").join(&id[..24.min(id.len())])
    }

    pub fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("runtime")
    }
}

/// Runs `containerd-shim-berth-v2 start` for container `id` in `bundle`; returns its address.
pub fn start(paths: &Paths, id: &str, bundle: &Path) -> Result<String, ShimError> {
    let shim = sibling_binary(SHIM);
    let socket = paths.shim_socket(id);
    let fail = |message: String| ShimError::Start {
        path: shim.clone(),
        message,
    };
    let out = Command::new(&shim)
        .args(["-namespace", NAMESPACE, "-address"])
        .arg(paths.exec_root.join("berth.shim"))
        .args(["-publish-binary", "/bin/true", "-id", id, "-socket"])
        .arg(&socket)
        .arg("start")
        .current_dir(bundle)
        .env("TTRPC_ADDRESS", paths.events_socket())
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let address = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !address.starts_with("unix://") {
        return Err(fail(format!("printed {address:?}, not an address")));
    }
    Ok(address)
}

/// containerd's runc options: berth-runtime (next to us) and a root under the exec root.
fn runtime_options(paths: &Paths) -> Any {
    let mut o = RuncOptions::new();
    o.binary_name = sibling_binary(RUNTIME).to_string_lossy().into_owned();
    o.root = paths.runtime_root().to_string_lossy().into_owned();
    let mut any = Any::new();
    any.type_url = "containerd.runc.v1.Options".into();
    any.value = o.write_to_bytes().unwrap_or_default();
    any
}

fn ctx() -> context::Context {
    context::with_timeout(CALL_TIMEOUT_NS)
}

/// What a task's process reads and writes.
#[derive(Debug, Clone, Default)]
pub struct TaskIo {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// One connection to a shim.
pub struct Shim {
    client: TaskClient,
    /// The socket's path (from a `unix://` address).
    socket: PathBuf,
}

impl Shim {
    pub fn connect(address: &str) -> Result<Shim, ShimError> {
        let client = ttrpc::Client::connect(address).map_err(|source| ShimError::Connect {
            address: address.to_string(),
            source,
        })?;
        Ok(Shim {
            client: TaskClient::new(client),
            socket: PathBuf::from(address.trim_start_matches("unix://")),
        })
    }

    pub fn create(
        &self,
        paths: &Paths,
        id: &str,
        bundle: &Path,
        io: &TaskIo,
    ) -> Result<u32, ShimError> {
        let mut req = CreateTaskRequest::new();
        req.id = id.to_string();
        req.bundle = bundle.to_string_lossy().into_owned();
        req.stdin = io.stdin.clone();
        req.stdout = io.stdout.clone();
        req.stderr = io.stderr.clone();
        req.terminal = io.terminal;
        req.options = Some(runtime_options(paths)).into();
        let r = self.client.create(ctx(), &req).map_err(ShimError::task)?;
        Ok(r.pid)
    }

    pub fn start(&self, id: &str, exec_id: &str) -> Result<u32, ShimError> {
        let mut req = StartRequest::new();
        req.id = id.to_string();
        req.exec_id = exec_id.to_string();
        Ok(self.client.start(ctx(), &req).map_err(ShimError::task)?.pid)
    }

    pub fn kill(&self, id: &str, exec_id: &str, signal: u32, all: bool) -> Result<(), ShimError> {
        let mut req = KillRequest::new();
        req.id = id.to_string();
        req.exec_id = exec_id.to_string();
        req.signal = signal;
        req.all = all;
        self.client.kill(ctx(), &req).map_err(ShimError::task)?;
        Ok(())
    }

    /// The task's cgroup metrics (containerd's cgroups v1 or v2 `Metrics`, packed).
    pub fn stats(&self, id: &str) -> Result<Any, ShimError> {
        let mut req = StatsRequest::new();
        req.id = id.to_string();
        let r = self.client.stats(ctx(), &req).map_err(ShimError::task)?;
        Ok(r.stats.into_option().unwrap_or_default())
    }

    /// The pids of the task's processes.
    pub fn pids(&self, id: &str) -> Result<Vec<u32>, ShimError> {
        let mut req = PidsRequest::new();
        req.id = id.to_string();
        let r = self.client.pids(ctx(), &req).map_err(ShimError::task)?;
        Ok(r.processes.iter().map(|p| p.pid).collect())
    }

    /// The process's status (`Status` of containerd's task types) and exit status.
    pub fn state(&self, id: &str, exec_id: &str) -> Result<StateResponse, ShimError> {
        let mut req = StateRequest::new();
        req.id = id.to_string();
        req.exec_id = exec_id.to_string();
        self.client.state(ctx(), &req).map_err(ShimError::task)
    }

    /// Blocks until the process exited: its exit status.
    pub fn wait(&self, id: &str, exec_id: &str) -> Result<u32, ShimError> {
        let mut req = WaitRequest::new();
        req.id = id.to_string();
        req.exec_id = exec_id.to_string();
        // No deadline: a container may run for ever.
        let r = self
            .client
            .wait(context::Context::default(), &req)
            .map_err(ShimError::task)?;
        Ok(r.exit_status)
    }

    /// Deletes the task (or an exec): its exit status.
    pub fn delete(&self, id: &str, exec_id: &str) -> Result<u32, ShimError> {
        let mut req = DeleteRequest::new();
        req.id = id.to_string();
        req.exec_id = exec_id.to_string();
        Ok(self
            .client
            .delete(ctx(), &req)
            .map_err(ShimError::task)?
            .exit_status)
    }

    /// Stops the shim. It unlinks its socket before it answers, so a `start` of the same
    /// container right after makes a new shim; one that keeps its socket until it exits (a
    /// shim of an older berth, re-adopted) is waited for (bounded), or that `start` would
    /// reuse the dying shim.
    pub fn shutdown(&self) {
        let pid = self
            .client
            .connect(ctx(), &ConnectRequest::new())
            .map(|r| r.shim_pid)
            .ok();
        let mut req = ShutdownRequest::new();
        req.now = true;
        if self.client.shutdown(ctx(), &req).is_ok() && self.socket.exists() {
            if let Some(pid) = pid.filter(|&p| p > 0) {
                wait_gone(pid, SHUTDOWN_WAIT_MS);
            }
        }
    }

    pub fn exec(
        &self,
        id: &str,
        exec_id: &str,
        process: &serde_json::Value,
        io: &TaskIo,
    ) -> Result<(), ShimError> {
        let mut req = ExecProcessRequest::new();
        req.id = id.to_string();
        req.exec_id = exec_id.to_string();
        req.stdin = io.stdin.clone();
        req.stdout = io.stdout.clone();
        req.stderr = io.stderr.clone();
        req.terminal = io.terminal;
        let mut any = Any::new();
        any.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Process".into();
        any.value = serde_json::to_vec(process).unwrap_or_default();
        req.spec = Some(any).into();
        self.client.exec(ctx(), &req).map_err(ShimError::task)?;
        Ok(())
    }

    pub fn resize(
        &self,
        id: &str,
        exec_id: &str,
        width: u32,
        height: u32,
    ) -> Result<(), ShimError> {
        let mut req = ResizePtyRequest::new();
        req.id = id.to_string();
        req.exec_id = exec_id.to_string();
        req.width = width;
        req.height = height;
        self.client
            .resize_pty(ctx(), &req)
            .map_err(ShimError::task)?;
        Ok(())
    }

    pub fn close_stdin(&self, id: &str, exec_id: &str) -> Result<(), ShimError> {
        let mut req = CloseIORequest::new();
        req.id = id.to_string();
        req.exec_id = exec_id.to_string();
        req.stdin = true;
        self.client.close_io(ctx(), &req).map_err(ShimError::task)?;
        Ok(())
    }

    pub fn pause(&self, id: &str) -> Result<(), ShimError> {
        let mut req = PauseRequest::new();
        req.id = id.to_string();
        self.client.pause(ctx(), &req).map_err(ShimError::task)?;
        Ok(())
    }

    pub fn resume(&self, id: &str) -> Result<(), ShimError> {
        let mut req = ResumeRequest::new();
        req.id = id.to_string();
        self.client.resume(ctx(), &req).map_err(ShimError::task)?;
        Ok(())
    }
}

/// Waits until process `pid` has exited (its pidfd turns readable), at most `ms`.
fn wait_gone(pid: u32, ms: u16) {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return; // already gone (ESRCH), or no pidfd on this kernel
    }
    // SAFETY: a descriptor pidfd_open just returned, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&fd),
        nix::poll::PollFlags::POLLIN,
    )];
    if !matches!(nix::poll::poll(&mut fds, ms), Ok(n) if n > 0) {
        tracing::warn!(pid, "shim still running {ms} ms after shutdown");
    }
}
