//! containerd's Task service (shim API) over the processes of one or more containers.
use std::collections::HashMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use berth_proto::api::*;
use berth_proto::events::task as ev;
use berth_proto::protobuf::well_known_types::any::Any;
use berth_proto::protobuf::well_known_types::empty::Empty;
use berth_proto::protobuf::well_known_types::timestamp::Timestamp;
use berth_proto::protobuf::{Message, MessageField};
use berth_proto::shim::oci::{CheckpointOptions, ProcessDetails};
use berth_proto::ttrpc::{self, Code, TtrpcContext};
use berth_proto::types::task::{ProcessInfo, Status};

use crate::events::Publisher;
use crate::options::RuntimeOptions;
use crate::process::{Container, Process};
use crate::runtime::{read_pid, Runtime, RuntimeError};
use crate::stdio::{Io, Owner, StdioPaths};
use crate::{mount, reaper, stats};

type Result<T> = ttrpc::Result<T>;

/// How long an exit waits for a terminal's last output to reach the client.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);
/// How long an exit waits for the processes a `kill --all` signalled to be gone.
const KILL_ALL_WAIT: Duration = Duration::from_secs(2);

pub struct Service {
    containers: Mutex<HashMap<String, Container>>,
    changed: Condvar,
    events: Publisher,
    namespace: String,
    shutdown: Mutex<Sender<()>>,
    /// The listening socket's path, unlinked at Shutdown.
    socket: Option<PathBuf>,
}

fn status(code: Code, msg: impl Display) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg.to_string()))
}

fn runtime_err(e: RuntimeError) -> ttrpc::Error {
    let code = match &e {
        RuntimeError::Spawn { .. } => Code::FAILED_PRECONDITION,
        RuntimeError::Failed { message, .. }
            if message.contains("does not exist") || message.contains("not found") =>
        {
            Code::NOT_FOUND
        }
        RuntimeError::Failed { .. } => Code::UNKNOWN,
    };
    status(code, e)
}

/// The runtime's failure of `create`, `start` or `exec`, worded as runc-v2 words it
/// ("OCI runtime create failed: …"): the kubelet and containerd's logs show that text.
fn oci_err(what: &str, e: RuntimeError) -> ttrpc::Error {
    match e {
        RuntimeError::Failed { message } => runtime_err(RuntimeError::Failed {
            message: format!("OCI runtime {what} failed: {message}"),
        }),
        other => runtime_err(other),
    }
}

/// A kill the runtime refused because the process is gone: NotFound ("process already
/// finished"), which containerd takes for stopped, as from runc-v2.
fn kill_err(e: RuntimeError) -> ttrpc::Error {
    match &e {
        RuntimeError::Failed { message }
            if ["not running", "already finished", "no such process"]
                .iter()
                .any(|s| message.to_lowercase().contains(s)) =>
        {
            status(
                Code::NOT_FOUND,
                format!("process already finished: {message}"),
            )
        }
        _ => runtime_err(e),
    }
}

fn io_err(what: &str, e: impl Display) -> ttrpc::Error {
    status(Code::INTERNAL, format!("{what}: {e}"))
}

/// Container `id`, or NotFound.
fn container<'a>(containers: &'a HashMap<String, Container>, id: &str) -> Result<&'a Container> {
    containers.get(id).ok_or_else(|| not_found(id, ""))
}

/// Container `id` for changing, or NotFound.
fn container_mut<'a>(
    containers: &'a mut HashMap<String, Container>,
    id: &str,
) -> Result<&'a mut Container> {
    containers.get_mut(id).ok_or_else(|| not_found(id, ""))
}

/// Process `exec_id` of container `id` (the init for ""), or NotFound.
fn find_process<'a>(c: &'a Container, id: &str, exec_id: &str) -> Result<&'a Process> {
    c.process(exec_id).ok_or_else(|| not_found(id, exec_id))
}

fn not_found(id: &str, exec_id: &str) -> ttrpc::Error {
    if exec_id.is_empty() {
        status(Code::NOT_FOUND, format!("container {id}: not found"))
    } else {
        status(
            Code::NOT_FOUND,
            format!("process {exec_id} of container {id}: not found"),
        )
    }
}

fn timestamp(t: &Option<Timestamp>) -> MessageField<Timestamp> {
    MessageField::from_option(t.clone())
}

impl Service {
    pub fn new(
        events: Publisher,
        namespace: String,
        shutdown: Sender<()>,
        socket: Option<PathBuf>,
    ) -> Arc<Service> {
        Arc::new(Service {
            containers: Mutex::new(HashMap::new()),
            changed: Condvar::new(),
            events,
            namespace,
            shutdown: Mutex::new(shutdown),
            socket,
        })
    }

    /// Every RPC and exit goes through here; it also marks the shim busy (see `memory`).
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Container>> {
        self.events.touch();
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the exit loop: every container process exit, in the order the reaper saw them.
    /// A terminal's last output drains first, with the state unlocked meanwhile.
    pub fn handle_exits(self: Arc<Self>, exits: Receiver<(i32, i32)>) {
        for (pid, code) in exits {
            if let Some((runtime, id, cgroups)) = self.kill_all_for(pid) {
                // Before the output drains and the exit is published: what is left may hold
                // the container's stdout, and containerd closes its end at the exit.
                let sig = (libc::SIGKILL).to_string();
                match runtime.run(&["kill", "--all", &id, &sig], None) {
                    Ok(_) => stats::wait_emptied(&cgroups, KILL_ALL_WAIT),
                    Err(e) => {
                        tracing::warn!(container = %id, error = %e, "kill --all after init exit")
                    }
                }
            }
            let drained = self.with_running(pid, |p| p.io.take_output_done());
            if let Some(Some(done)) = drained {
                let _ = done.recv_timeout(OUTPUT_DRAIN);
            }
            self.record_exit(pid, code);
        }
    }

    /// The runtime and id of the container whose running init is `pid`, if that container
    /// has no pid namespace of its own.
    fn kill_all_for(&self, pid: i32) -> Option<(Runtime, String, String)> {
        let containers = self.lock();
        containers
            .values()
            .find(|c| c.kill_all_on_exit && c.init.pid == pid && !c.init.exited())
            .map(|c| (c.runtime.clone(), c.id.clone(), c.cgroups.clone()))
    }

    /// Runs `f` on the running container process `pid`, if there is one.
    fn with_running<T>(&self, pid: i32, f: impl FnOnce(&mut Process) -> T) -> Option<T> {
        let mut containers = self.lock();
        containers
            .values_mut()
            .find_map(|c| {
                if c.init.pid == pid && !c.init.exited() {
                    return Some(&mut c.init);
                }
                c.execs.values_mut().find(|p| p.pid == pid && !p.exited())
            })
            .map(f)
    }

    /// Marks `pid` stopped and publishes its exit; the init's only after its execs' exits.
    fn record_exit(&self, pid: i32, code: i32) {
        let mut containers = self.lock();
        let Some(c) = containers.values_mut().find(|c| {
            (c.init.pid == pid && !c.init.exited())
                || c.execs.values().any(|p| p.pid == pid && !p.exited())
        }) else {
            return;
        };
        let is_init = c.init.pid == pid;
        let p = if is_init {
            &mut c.init
        } else {
            c.execs
                .values_mut()
                .find(|p| p.pid == pid && !p.exited())
                .expect("found above")
        };
        p.io.close_output();
        p.status = Status::STOPPED;
        p.exit_status = code as u32;
        p.exited_at = Some(Timestamp::now());
        if !is_init {
            self.events.publish("/tasks/exit", &exit_event(&c.id, p));
        } else {
            c.pending_init_exit = true;
        }
        if c.pending_init_exit && c.running_execs() == 0 {
            c.pending_init_exit = false;
            self.events
                .publish("/tasks/exit", &exit_event(&c.id, &c.init));
        }
        self.changed.notify_all();
    }

    fn create_container(&self, req: &CreateTaskRequest) -> Result<Container> {
        let bundle = PathBuf::from(&req.bundle);
        if !bundle.join("config.json").is_file() {
            return Err(status(
                Code::INVALID_ARGUMENT,
                format!("bundle {}: no config.json", bundle.display()),
            ));
        }
        let opts = RuntimeOptions::from_any(req.options.as_ref())
            .map_err(|e| status(Code::INVALID_ARGUMENT, e))?;
        opts.check_host(Path::new(crate::options::SYSTEMD_MARKER))
            .map_err(|e| status(Code::FAILED_PRECONDITION, e))?;
        opts.save(&bundle)
            .map_err(|e| io_err("save runtime options", e))?;
        let runtime = Runtime::new(
            &opts.binary,
            &opts.root.join(&self.namespace),
            opts.systemd_cgroup,
            &bundle,
        );
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let mut c = Container {
            id: req.id.clone(),
            bundle: bundle.clone(),
            runtime,
            init: Process::new("", stdio),
            execs: HashMap::new(),
            rootfs_mounted: false,
            pending_init_exit: false,
            kill_all_on_exit: crate::spec::shares_pid_namespace(&bundle),
            cgroups: String::new(),
            oom: None,
        };
        if !req.rootfs.is_empty() {
            let rootfs = bundle.join("rootfs");
            std::fs::create_dir_all(&rootfs)
                .map_err(|e| io_err(&rootfs.display().to_string(), e))?;
            mount::mount_rootfs(&req.rootfs, &rootfs).map_err(|e| status(Code::INTERNAL, e))?;
            c.rootfs_mounted = true;
        }
        if let Err(e) = self.create_init(&mut c) {
            if c.rootfs_mounted {
                mount::unmount_rootfs(&bundle.join("rootfs"));
            }
            return Err(e);
        }
        Ok(c)
    }

    fn create_init(&self, c: &mut Container) -> Result<()> {
        let owner = Owner {
            container_id: &c.id,
            namespace: &self.namespace,
        };
        let (mut io, pio) = Io::open(&c.init.stdio, &owner).map_err(|e| io_err("stdio", e))?;
        let pid_file = c.bundle.join("init.pid");
        let bundle = c.bundle.to_string_lossy().into_owned();
        let pid_path = pid_file.to_string_lossy().into_owned();
        let mut args = vec!["create", "--bundle", &bundle, "--pid-file", &pid_path];
        let console = io
            .console_socket_path()
            .map(|p| p.to_string_lossy().into_owned());
        if let Some(s) = &console {
            args.extend(["--console-socket", s]);
        }
        args.push(&c.id);
        c.runtime
            .run(&args, Some(pio))
            .map_err(|e| oci_err("create", e))?;
        let attached = io
            .connect_console(&c.init.stdio)
            .map_err(|e| io_err("console", e))
            .and_then(|()| read_pid(&pid_file).map_err(|e| io_err("pid file", e)));
        match attached {
            Ok(pid) => {
                c.init.pid = pid;
                c.init.io = io;
                c.cgroups =
                    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
                c.oom = crate::oom::Watch::prepare(&c.cgroups)
                    .inspect_err(|e| tracing::warn!(container = %c.id, error = %e, "no OOM watch"))
                    .ok();
                Ok(())
            }
            Err(e) => {
                discard_created(c);
                Err(e)
            }
        }
    }

    fn start_exec(&self, c: &mut Container, exec_id: &str) -> Result<i32> {
        let id = c.id.clone();
        let runtime = c.runtime.clone();
        let bundle = c.bundle.clone();
        let p = c
            .execs
            .get_mut(exec_id)
            .ok_or_else(|| not_found(&id, exec_id))?;
        if p.pid != 0 {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("process {exec_id}: already started"),
            ));
        }
        let spec_path = bundle.join(format!("exec-{exec_id}.json"));
        let pid_file = bundle.join(format!("exec-{exec_id}.pid"));
        std::fs::write(&spec_path, &p.spec)
            .map_err(|e| io_err(&spec_path.display().to_string(), e))?;
        let owner = Owner {
            container_id: &id,
            namespace: &self.namespace,
        };
        let (mut io, pio) = Io::open(&p.stdio, &owner).map_err(|e| io_err("stdio", e))?;
        let spec_s = spec_path.to_string_lossy().into_owned();
        let pid_s = pid_file.to_string_lossy().into_owned();
        let mut args = vec![
            "exec",
            "--process",
            &spec_s,
            "--detach",
            "--pid-file",
            &pid_s,
        ];
        let console = io
            .console_socket_path()
            .map(|p| p.to_string_lossy().into_owned());
        if let Some(s) = &console {
            args.extend(["--console-socket", s]);
        }
        args.push(&id);
        let result = runtime.run(&args, Some(pio));
        let _ = std::fs::remove_file(&spec_path);
        result.map_err(|e| oci_err("exec", e))?;
        io.connect_console(&p.stdio)
            .map_err(|e| io_err("console", e))?;
        let pid = read_pid(&pid_file).map_err(|e| io_err("pid file", e))?;
        let _ = std::fs::remove_file(&pid_file);
        p.pid = pid;
        p.io = io;
        p.status = Status::RUNNING;
        p.spec = Vec::new();
        Ok(pid)
    }

    fn delete_init(&self, c: &Container) -> Result<()> {
        if matches!(c.init.status, Status::RUNNING | Status::PAUSED) {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("container {}: still running", c.id),
            ));
        }
        c.runtime
            .run(&["delete", "--force", &c.id], None)
            .map_err(runtime_err)?;
        if c.rootfs_mounted {
            mount::unmount_rootfs(&c.bundle.join("rootfs"));
        }
        let _ = std::fs::remove_file(c.bundle.join(crate::options::SAVED));
        let _ = std::fs::remove_file(c.bundle.join("init.pid"));
        Ok(())
    }
}

/// The runtime created the container but the shim could not take it over: the caller gets
/// an error, so the container must not stay behind.
fn discard_created(c: &Container) {
    if let Err(e) = c.runtime.run(&["delete", "--force", &c.id], None) {
        tracing::warn!(container = %c.id, error = %e, "delete after failed create");
    }
}

fn exit_event(container_id: &str, p: &Process) -> ev::TaskExit {
    let mut e = ev::TaskExit::new();
    e.container_id = container_id.to_owned();
    e.id = if p.exec_id.is_empty() {
        container_id.to_owned()
    } else {
        p.exec_id.clone()
    };
    e.pid = p.pid as u32;
    e.exit_status = p.exit_status;
    e.exited_at = timestamp(&p.exited_at);
    e
}

fn signal(sig: u32) -> Result<nix::sys::signal::Signal> {
    nix::sys::signal::Signal::try_from(sig as i32)
        .map_err(|_| status(Code::INVALID_ARGUMENT, format!("signal {sig}: invalid")))
}

impl berth_proto::Task for Service {
    fn state(&self, _: &TtrpcContext, req: StateRequest) -> Result<StateResponse> {
        let containers = self.lock();
        let c = container(&containers, &req.id)?;
        let p = find_process(c, &req.id, &req.exec_id)?;
        let mut r = StateResponse::new();
        r.id = req.id.clone();
        r.exec_id = req.exec_id.clone();
        r.bundle = c.bundle.to_string_lossy().into_owned();
        r.pid = p.pid as u32;
        r.status = p.status.into();
        r.stdin = p.stdio.stdin.clone();
        r.stdout = p.stdio.stdout.clone();
        r.stderr = p.stdio.stderr.clone();
        r.terminal = p.stdio.terminal;
        r.exit_status = p.exit_status;
        r.exited_at = timestamp(&p.exited_at);
        Ok(r)
    }

    fn create(&self, _: &TtrpcContext, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        let mut containers = self.lock();
        if containers.contains_key(&req.id) {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("container {}: already exists", req.id),
            ));
        }
        let c = self.create_container(&req)?;
        let pid = c.init.pid;
        let mut e = ev::TaskCreate::new();
        e.container_id = req.id.clone();
        e.bundle = req.bundle.clone();
        e.rootfs = req.rootfs.clone();
        let mut tio = ev::TaskIO::new();
        tio.stdin = req.stdin.clone();
        tio.stdout = req.stdout.clone();
        tio.stderr = req.stderr.clone();
        tio.terminal = req.terminal;
        e.io = MessageField::some(tio);
        e.checkpoint = req.checkpoint.clone();
        e.pid = pid as u32;
        containers.insert(req.id.clone(), c);
        reaper::watch(pid);
        self.events.publish("/tasks/create", &e);
        let mut r = CreateTaskResponse::new();
        r.pid = pid as u32;
        Ok(r)
    }

    fn start(&self, _: &TtrpcContext, req: StartRequest) -> Result<StartResponse> {
        let mut containers = self.lock();
        let c = container_mut(&mut containers, &req.id)?;
        let pid = if req.exec_id.is_empty() {
            if c.init.status != Status::CREATED {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("container {}: not in created state", req.id),
                ));
            }
            c.runtime
                .run(&["start", &req.id], None)
                .map_err(|e| oci_err("start", e))?;
            if !c.init.exited() {
                c.init.status = Status::RUNNING;
            }
            let mut e = ev::TaskStart::new();
            e.container_id = req.id.clone();
            e.pid = c.init.pid as u32;
            self.events.publish("/tasks/start", &e);
            if let Some(watch) = c.oom.take() {
                let (events, id) = (self.events.clone(), req.id.clone());
                let watched = watch.spawn(move || {
                    let mut oom = ev::TaskOOM::new();
                    oom.container_id = id.clone();
                    events.publish("/tasks/oom", &oom);
                });
                if let Err(e) = watched {
                    tracing::warn!(container = %req.id, error = %e, "no OOM watch");
                }
            }
            c.init.pid
        } else {
            if c.init.exited() {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("container {}: stopped", req.id),
                ));
            }
            let pid = self.start_exec(c, &req.exec_id)?;
            reaper::watch(pid);
            let mut e = ev::TaskExecStarted::new();
            e.container_id = req.id.clone();
            e.exec_id = req.exec_id.clone();
            e.pid = pid as u32;
            self.events.publish("/tasks/exec-started", &e);
            pid
        };
        let mut r = StartResponse::new();
        r.pid = pid as u32;
        Ok(r)
    }

    fn delete(&self, _: &TtrpcContext, req: DeleteRequest) -> Result<DeleteResponse> {
        let mut containers = self.lock();
        let c = container_mut(&mut containers, &req.id)?;
        let mut r = DeleteResponse::new();
        if !req.exec_id.is_empty() {
            let p = c
                .execs
                .get(&req.exec_id)
                .ok_or_else(|| not_found(&req.id, &req.exec_id))?;
            if p.pid != 0 && !p.exited() {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("process {}: still running", req.exec_id),
                ));
            }
            let p = c.execs.remove(&req.exec_id).expect("checked");
            r.pid = p.pid as u32;
            r.exit_status = p.exit_status;
            r.exited_at = timestamp(&p.exited_at);
            return Ok(r);
        }
        self.delete_init(c)?;
        let c = containers.remove(&req.id).expect("checked");
        r.pid = c.init.pid as u32;
        r.exit_status = c.init.exit_status;
        r.exited_at = timestamp(&c.init.exited_at);
        let mut e = ev::TaskDelete::new();
        e.container_id = req.id.clone();
        e.pid = r.pid;
        e.exit_status = r.exit_status;
        e.exited_at = r.exited_at.clone();
        self.events.publish("/tasks/delete", &e);
        self.changed.notify_all();
        Ok(r)
    }

    fn pids(&self, _: &TtrpcContext, req: PidsRequest) -> Result<PidsResponse> {
        let containers = self.lock();
        let c = container(&containers, &req.id)?;
        let out = c
            .runtime
            .run(&["ps", "--format", "json", &req.id], None)
            .map_err(runtime_err)?;
        let pids: Vec<u32> = serde_json::from_slice(&out).map_err(|e| io_err("ps output", e))?;
        let mut r = PidsResponse::new();
        for pid in pids {
            let mut info = ProcessInfo::new();
            info.pid = pid;
            if let Some(p) = c.execs.values().find(|p| p.pid as u32 == pid) {
                let mut d = ProcessDetails::new();
                d.exec_id = p.exec_id.clone();
                let mut any = Any::new();
                any.type_url = "containerd.runc.v1.ProcessDetails".into();
                any.value = d.write_to_bytes().unwrap_or_default();
                info.info = MessageField::some(any);
            }
            r.processes.push(info);
        }
        Ok(r)
    }

    fn pause(&self, _: &TtrpcContext, req: PauseRequest) -> Result<Empty> {
        let mut containers = self.lock();
        let c = container_mut(&mut containers, &req.id)?;
        c.runtime
            .run(&["pause", &req.id], None)
            .map_err(runtime_err)?;
        c.init.status = Status::PAUSED;
        let mut e = ev::TaskPaused::new();
        e.container_id = req.id.clone();
        self.events.publish("/tasks/paused", &e);
        Ok(Empty::new())
    }

    fn resume(&self, _: &TtrpcContext, req: ResumeRequest) -> Result<Empty> {
        let mut containers = self.lock();
        let c = container_mut(&mut containers, &req.id)?;
        c.runtime
            .run(&["resume", &req.id], None)
            .map_err(runtime_err)?;
        if !c.init.exited() {
            c.init.status = Status::RUNNING;
        }
        let mut e = ev::TaskResumed::new();
        e.container_id = req.id.clone();
        self.events.publish("/tasks/resumed", &e);
        Ok(Empty::new())
    }

    fn checkpoint(&self, _: &TtrpcContext, req: CheckpointTaskRequest) -> Result<Empty> {
        let containers = self.lock();
        let c = container(&containers, &req.id)?;
        let opts = match req.options.as_ref().filter(|a| !a.value.is_empty()) {
            Some(a) => CheckpointOptions::parse_from_bytes(&a.value)
                .map_err(|e| status(Code::INVALID_ARGUMENT, e))?,
            None => CheckpointOptions::new(),
        };
        let image = if opts.image_path.is_empty() {
            req.path.clone()
        } else {
            opts.image_path.clone()
        };
        let mut args = vec!["checkpoint", "--image-path", &image];
        if !opts.exit {
            args.push("--leave-running");
        }
        if !opts.work_path.is_empty() {
            args.extend(["--work-path", &opts.work_path]);
        }
        args.push(&req.id);
        c.runtime.run(&args, None).map_err(runtime_err)?;
        Ok(Empty::new())
    }

    fn kill(&self, _: &TtrpcContext, req: KillRequest) -> Result<Empty> {
        let containers = self.lock();
        let c = container(&containers, &req.id)?;
        let p = find_process(c, &req.id, &req.exec_id)?;
        if p.exited() {
            return Err(status(
                Code::NOT_FOUND,
                format!("process {}: already finished", p.pid),
            ));
        }
        if req.exec_id.is_empty() {
            let sig = req.signal.to_string();
            let mut args = vec!["kill"];
            if req.all {
                args.push("--all");
            }
            args.extend([req.id.as_str(), sig.as_str()]);
            c.runtime.run(&args, None).map_err(kill_err)?;
        } else {
            if p.pid == 0 {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("process {}: not started", req.exec_id),
                ));
            }
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), signal(req.signal)?)
                .map_err(|e| status(Code::NOT_FOUND, format!("kill {}: {e}", p.pid)))?;
        }
        Ok(Empty::new())
    }

    fn exec(&self, _: &TtrpcContext, req: ExecProcessRequest) -> Result<Empty> {
        let mut containers = self.lock();
        let c = container_mut(&mut containers, &req.id)?;
        if c.execs.contains_key(&req.exec_id) {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("process {}: already exists", req.exec_id),
            ));
        }
        if c.init.exited() {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("container {}: stopped", req.id),
            ));
        }
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let mut p = Process::new(&req.exec_id, stdio);
        p.spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        c.execs.insert(req.exec_id.clone(), p);
        let mut e = ev::TaskExecAdded::new();
        e.container_id = req.id.clone();
        e.exec_id = req.exec_id.clone();
        self.events.publish("/tasks/exec-added", &e);
        Ok(Empty::new())
    }

    fn resize_pty(&self, _: &TtrpcContext, req: ResizePtyRequest) -> Result<Empty> {
        let containers = self.lock();
        let c = container(&containers, &req.id)?;
        let p = find_process(c, &req.id, &req.exec_id)?;
        let console =
            p.io.console
                .as_ref()
                .ok_or_else(|| status(Code::FAILED_PRECONDITION, "process has no terminal"))?;
        crate::stdio::resize(console, req.width, req.height).map_err(|e| io_err("resize", e))?;
        Ok(Empty::new())
    }

    fn close_io(&self, _: &TtrpcContext, req: CloseIORequest) -> Result<Empty> {
        let mut containers = self.lock();
        let c = container_mut(&mut containers, &req.id)?;
        let p = c
            .process_mut(&req.exec_id)
            .ok_or_else(|| not_found(&req.id, &req.exec_id))?;
        if req.stdin {
            p.io.close_stdin();
        }
        Ok(Empty::new())
    }

    fn update(&self, _: &TtrpcContext, req: UpdateTaskRequest) -> Result<Empty> {
        let containers = self.lock();
        let c = container(&containers, &req.id)?;
        let value = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        let path = c.bundle.join("update-resources.json");
        std::fs::write(&path, value).map_err(|e| io_err(&path.display().to_string(), e))?;
        let path_s = path.to_string_lossy().into_owned();
        let result = c
            .runtime
            .run(&["update", "--resources", &path_s, &req.id], None);
        let _ = std::fs::remove_file(&path);
        result.map_err(runtime_err)?;
        Ok(Empty::new())
    }

    fn wait(&self, _: &TtrpcContext, req: WaitRequest) -> Result<WaitResponse> {
        let mut containers = self.lock();
        loop {
            let c = container(&containers, &req.id)?;
            let p = find_process(c, &req.id, &req.exec_id)?;
            if p.exited() {
                let mut r = WaitResponse::new();
                r.exit_status = p.exit_status;
                r.exited_at = timestamp(&p.exited_at);
                return Ok(r);
            }
            containers = self
                .changed
                .wait(containers)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn stats(&self, _: &TtrpcContext, req: StatsRequest) -> Result<StatsResponse> {
        let containers = self.lock();
        let c = container(&containers, &req.id)?;
        let any = stats::metrics(&c.cgroups);
        let mut r = StatsResponse::new();
        r.stats = MessageField::some(any);
        Ok(r)
    }

    fn connect(&self, _: &TtrpcContext, req: ConnectRequest) -> Result<ConnectResponse> {
        let containers = self.lock();
        let mut r = ConnectResponse::new();
        r.shim_pid = std::process::id();
        r.task_pid = containers
            .get(&req.id)
            .map(|c| c.init.pid as u32)
            .unwrap_or(0);
        Ok(r)
    }

    fn shutdown(&self, _: &TtrpcContext, req: ShutdownRequest) -> Result<Empty> {
        if req.now || self.lock().is_empty() {
            // Unlinked before the reply: a shim started for the same id from now on binds
            // its own socket instead of finding this one, which is going.
            if let Some(path) = &self.socket {
                let _ = std::fs::remove_file(path);
            }
            let _ = self.shutdown.lock().unwrap().send(());
        }
        Ok(Empty::new())
    }
}

/// Used by `delete` after a shim died: where the bundle's runtime state lives.
pub fn runtime_for(bundle: &Path, namespace: &str) -> Runtime {
    let opts = RuntimeOptions::load(bundle);
    Runtime::new(
        &opts.binary,
        &opts.root.join(namespace),
        opts.systemd_cgroup,
        bundle,
    )
}
