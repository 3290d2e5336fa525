//! `exec`: extra processes in a running container, through the shim's Exec. Their stdio are
//! fifos in the bundle that the daemon reads and writes (exec output is not logged, as with
//! docker); a detached exec gets /dev/null.
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::net::unix::pipe;
use tokio::sync::watch;

use super::journal::Event;
use super::service::{ContainerService, Error};
use super::shim::{Shim, TaskIo};

/// One exec instance.
pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: Value,
    pub state: Mutex<ExecState>,
    pub done: watch::Sender<Option<i32>>,
}

#[derive(Debug, Clone, Default)]
pub struct ExecState {
    pub running: bool,
    pub pid: u32,
    pub exit_code: Option<i32>,
    pub shim_address: String,
}

#[derive(Default)]
pub struct Execs(Mutex<HashMap<String, Arc<Exec>>>);

impl Execs {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Exec>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: &str) -> Result<Arc<Exec>, Error> {
        self.map()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))
    }

    /// Records an exec's exit (from the shim's event or its Wait), once.
    pub fn exited(&self, id: &str, code: i32) {
        if let Some(e) = self.map().get(id) {
            e.record_exit(code);
        }
    }
}

impl Exec {
    fn record_exit(&self, code: i32) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.exit_code.is_none() {
            s.running = false;
            s.exit_code = Some(code);
            self.done.send_replace(Some(code));
        }
    }

    pub fn snapshot(&self) -> ExecState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn tty(&self) -> bool {
        self.config["Tty"].as_bool().unwrap_or(false)
    }

    /// Docker's `GET /exec/{id}/json`.
    pub fn inspect(&self) -> Value {
        let s = self.snapshot();
        let cmd: Vec<Value> = self.config["Cmd"].as_array().cloned().unwrap_or_default();
        json!({
            "ID": self.id,
            "ContainerID": self.container_id,
            "Running": s.running,
            "ExitCode": s.exit_code,
            "Pid": s.pid,
            "OpenStdin": self.config["AttachStdin"].as_bool().unwrap_or(false),
            "OpenStdout": self.config["AttachStdout"].as_bool().unwrap_or(false),
            "OpenStderr": self.config["AttachStderr"].as_bool().unwrap_or(false),
            "CanRemove": false,
            "DetachKeys": "",
            "ProcessConfig": {
                "tty": self.tty(),
                "entrypoint": cmd.first().cloned().unwrap_or(Value::Null),
                "arguments": cmd.get(1..).map(|a| a.to_vec()).unwrap_or_default(),
                "privileged": self.config["Privileged"].as_bool().unwrap_or(false),
                "user": self.config["User"].as_str().unwrap_or(""),
            },
        })
    }
}

/// The daemon's ends of an attached exec's stdio.
pub struct ExecIo {
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

impl ContainerService {
    /// `POST /containers/{id}/exec`.
    pub async fn exec_create(&self, name_or_id: &str, config: Value) -> Result<String, Error> {
        let (_, c) = self.task(name_or_id).await?;
        let cmd = config["Cmd"].as_array().map(|a| a.len()).unwrap_or(0);
        if cmd == 0 {
            return Err(Error::Invalid("No exec command specified".into()));
        }
        let id = super::service::random_hex();
        self.journal.publish(Event::container(
            &c,
            &exec_action("exec_create", &config),
            &[("execID", id.clone())],
        ));
        let exec = Arc::new(Exec {
            id: id.clone(),
            container_id: c.id.clone(),
            config,
            state: Mutex::new(ExecState::default()),
            done: watch::Sender::new(None),
        });
        self.execs
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), exec);
        Ok(id)
    }

    /// What `exec start` refuses before it hijacks the connection (docker's 404/409): an
    /// unknown exec, one that ran already, a container that is not running. Its tty flag.
    pub async fn exec_startable(&self, exec_id: &str) -> Result<bool, Error> {
        let exec = self.execs.get(exec_id)?;
        let s = exec.snapshot();
        if s.running || s.exit_code.is_some() {
            return Err(Error::Conflict(format!(
                "Error: Exec command {exec_id} has already run"
            )));
        }
        self.task(&exec.container_id).await?;
        Ok(exec.tty())
    }

    /// A start that failed after the hijack: docker's exit code 126.
    pub fn exec_failed(&self, exec_id: &str) {
        self.execs.exited(exec_id, 126);
    }

    /// `POST /exec/{id}/start`: starts the process; the stdio ends unless `detach`.
    pub async fn exec_start(&self, exec_id: &str, detach: bool) -> Result<ExecIo, Error> {
        let tty = self.exec_startable(exec_id).await?;
        let exec = self.execs.get(exec_id)?;
        let (address, c) = self.task(&exec.container_id).await?;
        let bundle = self.bundle_of(&c.id);
        let process = process_spec(&bundle, &c, &exec.config)?;
        let attach = |key: &str| !detach && exec.config[key].as_bool().unwrap_or(false);
        let fifo = |name: &str| -> Result<String, Error> {
            super::bundle::fifo(&bundle.join(format!("exec-{exec_id}-{name}")))
        };
        let mut io = TaskIo {
            terminal: tty,
            ..Default::default()
        };
        let mut ends = ExecIo {
            stdin: None,
            stdout: None,
            stderr: None,
        };
        let open_reader = |path: &str| {
            pipe::OpenOptions::new()
                .open_receiver(path)
                .map_err(super::service::io_at(Path::new(path)))
        };
        if attach("AttachStdout") || (tty && attach("AttachStderr")) {
            io.stdout = fifo("stdout")?;
            ends.stdout = Some(open_reader(&io.stdout)?);
        }
        if attach("AttachStderr") && !tty {
            io.stderr = fifo("stderr")?;
            ends.stderr = Some(open_reader(&io.stderr)?);
        }
        if attach("AttachStdin") {
            io.stdin = fifo("stdin")?;
            // Read-write: never blocks on, or fails for, a reader that is not there yet.
            ends.stdin = Some(
                pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(&io.stdin)
                    .map_err(super::service::io_at(Path::new(&io.stdin)))?,
            );
        }
        let (id, eid, addr) = (c.id.clone(), exec_id.to_string(), address.clone());
        let pid = tokio::task::spawn_blocking(move || {
            let shim = Shim::connect(&addr)?;
            shim.exec(&id, &eid, &process, &io)?;
            shim.start(&id, &eid)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(|e| Error::Task(format!("OCI runtime exec failed: {e}: unknown")))?;
        {
            let mut s = exec.state.lock().unwrap_or_else(|e| e.into_inner());
            s.running = true;
            s.pid = pid;
            s.shim_address = address;
        }
        self.journal.publish(Event::container(
            &c,
            &exec_action("exec_start", &exec.config),
            &[("execID", exec_id.to_string())],
        ));
        if detach {
            let exec = exec.clone();
            tokio::spawn(async move { finish(&exec).await });
        }
        Ok(ends)
    }

    /// After the attached output ended: the exit code (waits for the process).
    pub async fn exec_finish(&self, exec_id: &str) -> Result<i32, Error> {
        let exec = self.execs.get(exec_id)?;
        Ok(finish(&exec).await)
    }

    /// Sends `signal` to a running exec's process (a health probe past its timeout).
    pub async fn exec_kill(&self, exec_id: &str, signal: i32) {
        let Ok(exec) = self.execs.get(exec_id) else {
            return;
        };
        let s = exec.snapshot();
        if !s.running {
            return;
        }
        let (cid, eid) = (exec.container_id.clone(), exec.id.clone());
        let _ = tokio::task::spawn_blocking(move || {
            Shim::connect(&s.shim_address)?.kill(&cid, &eid, signal as u32, false)
        })
        .await;
    }

    /// Forgets an exec that ended, with its fifos (health probes, which nobody inspects).
    pub async fn exec_forget(&self, exec_id: &str) {
        let removed = self.execs.map().remove(exec_id);
        if let Some(exec) = removed {
            let bundle = self.bundle_of(&exec.container_id);
            for name in ["stdin", "stdout", "stderr"] {
                let _ = std::fs::remove_file(bundle.join(format!("exec-{exec_id}-{name}")));
            }
        }
    }

    pub async fn exec_resize(&self, exec_id: &str, width: u32, height: u32) -> Result<(), Error> {
        let exec = self.execs.get(exec_id)?;
        let s = exec.snapshot();
        if !s.running {
            return Err(Error::Conflict(format!("Exec {exec_id} is not running")));
        }
        let (cid, eid) = (exec.container_id.clone(), exec.id.clone());
        tokio::task::spawn_blocking(move || {
            Shim::connect(&s.shim_address)?.resize(&cid, &eid, width, height)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(|e| Error::Task(e.to_string()))
    }
}

/// Docker's action text of an exec event: `exec_start: sh -c …` (entrypoint, space, args).
fn exec_action(what: &str, config: &Value) -> String {
    let cmd: Vec<&str> = config["Cmd"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let (entry, args) = cmd.split_first().map(|(e, a)| (*e, a)).unwrap_or(("", &[]));
    format!("{what}: {entry} {}", args.join(" "))
}

/// Waits for the exec's process in its shim, records the exit and deletes it there.
async fn finish(exec: &Arc<Exec>) -> i32 {
    let s = exec.snapshot();
    if let Some(code) = s.exit_code {
        return code;
    }
    let (cid, eid) = (exec.container_id.clone(), exec.id.clone());
    let code = tokio::task::spawn_blocking(move || {
        let shim = Shim::connect(&s.shim_address).ok()?;
        let code = shim.wait(&cid, &eid).ok()? as i32;
        let _ = shim.delete(&cid, &eid);
        Some(code)
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(126);
    exec.record_exit(code);
    code
}

/// The exec's process: the container's process with the exec's args, env, cwd, user, tty.
fn process_spec(
    bundle: &Path,
    c: &super::record::Container,
    config: &Value,
) -> Result<Value, Error> {
    let path = bundle.join("config.json");
    let spec: Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| Error::Task(format!("{}: unreadable spec", path.display())))?;
    let mut process = spec["process"].clone();
    process["args"] = config["Cmd"].clone();
    process["terminal"] = json!(config["Tty"].as_bool().unwrap_or(false));
    let mut env: Vec<Value> = process["env"].as_array().cloned().unwrap_or_default();
    if let Some(extra) = config["Env"].as_array() {
        for kv in extra.iter().filter_map(|v| v.as_str()) {
            let key = kv.split('=').next().unwrap_or("");
            env.retain(|e| e.as_str().and_then(|s| s.split('=').next()) != Some(key));
            env.push(json!(kv));
        }
    }
    process["env"] = json!(env);
    if let Some(w) = config["WorkingDir"].as_str().filter(|w| !w.is_empty()) {
        process["cwd"] = json!(w);
    }
    let user = config["User"].as_str().filter(|u| !u.is_empty());
    if let Some(u) = user {
        let id = super::spec::user::resolve(&bundle.join("rootfs"), u, &[])
            .map_err(|e| Error::Invalid(e.to_string()))?;
        process["user"] =
            json!({"uid": id.uid, "gid": id.gid, "additionalGids": id.additional_gids});
    }
    let _ = c;
    if let Some(o) = process.as_object_mut() {
        o.remove("consoleSize");
    }
    Ok(process)
}
