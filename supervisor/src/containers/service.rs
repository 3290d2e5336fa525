//! The container service: records, names, the state machine, and tasks through the shim.
//!
//! Every container has one [`Entry`]: its record behind an async lock (held across a state
//! change, so an exit that arrives during `start` is applied after it) and a watch channel
//! that tells waiters about exits and removal. Shim calls are synchronous and run on
//! blocking threads.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::events::{EventServer, Exit};
use super::journal::{Event, Journal};
use super::record::{self, Container, Status};
use super::restart;
use super::shim::{self, Paths, Shim, ShimError, TaskIo};
use super::store::{Store, StoreError};
use super::{bundle, config, logs, names, spec};
use crate::images::service::{self as images, ImageService};
use crate::images::snapshot::chain_ids;
use crate::volumes::VolumeService;

/// Errors of the container service, each with docker's status code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
    /// Nothing to do (docker's 304: start of a running container, stop of a stopped one).
    #[error("not modified")]
    NotModified,
    #[error(transparent)]
    Image(#[from] images::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Task(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::Invalid(_) => 400,
            Error::Forbidden(_) => 403,
            Error::Unavailable(_) => 503,
            Error::NotModified => 304,
            Error::Image(e) => e.status(),
            Error::Store(_) | Error::Task(_) | Error::Io { .. } => 500,
        }
    }
}

pub fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How long an exit waits for the logging binary to write what the container wrote last
/// (docker reports an exit once its log copier is done: `logs` right after `wait` is whole).
const LOG_DRAIN: Duration = Duration::from_secs(5);

/// How long a SIGKILL `kill` waits for the exit before it reports the container stuck.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// What waiters learn about a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Exits so far (of this daemon's life).
    pub exits: u64,
    pub exit_code: i32,
    pub running: bool,
    pub removed: bool,
}

/// How many containers are in each of `/info`'s states.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.running + self.paused + self.stopped
    }
}

pub struct Entry {
    pub record: tokio::sync::Mutex<Container>,
    pub progress: watch::Sender<Progress>,
    /// The restart policy's back-off (this daemon's life).
    pub backoff: Mutex<restart::Backoff>,
}

impl Entry {
    fn backoff(&self) -> std::sync::MutexGuard<'_, restart::Backoff> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `wait?condition=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: &str) -> Result<WaitCondition, Error> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(Error::Invalid(format!("invalid condition: {other:?}"))),
        }
    }
}

/// Where the service keeps things.
#[derive(Debug, Clone)]
pub struct Options {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub volumes: Arc<VolumeService>,
    pub networks: Arc<crate::network::NetworkService>,
}

pub struct ContainerService {
    pub images: Arc<ImageService>,
    pub networks: Arc<crate::network::NetworkService>,
    pub(super) store: Store,
    pub paths: Paths,
    /// `<data-root>/containers`: per-container files (logs, hosts, resolv.conf).
    pub(super) files_root: PathBuf,
    /// The logging binary the shims run (`berth-logger`, else this executable).
    berth: PathBuf,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// Serialises name checks and inserts.
    naming: tokio::sync::Mutex<()>,
    names: names::Names,
    pub execs: super::exec::Execs,
    /// What the host offers (capabilities, architecture, kernel), probed once.
    host: Arc<spec::HostFacts>,
    /// Docker's event stream.
    pub journal: Journal,
    volumes: Arc<VolumeService>,
    /// The embedded DNS responders of running containers on user-defined networks.
    pub dns: Arc<crate::network::dns::Dns>,
    _events: EventServer,
}

pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    hex::encode(bytes)
}

/// Docker's rule for names.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Task(format!("task panicked: {e}"))))
}

impl ContainerService {
    /// Opens the records, listens for shim events, and re-adopts the containers whose shims
    /// still run (see [`ContainerService::restore`]). Restart policies wait for
    /// [`ContainerService::restart_at_daemon_start`].
    pub async fn open(
        options: Options,
        images: Arc<ImageService>,
    ) -> Result<Arc<ContainerService>, Error> {
        let files_root = options.data_root.join("containers");
        std::fs::create_dir_all(&files_root).map_err(io_at(&files_root))?;
        let paths = Paths {
            exec_root: options.exec_root.clone(),
        };
        for dir in [
            paths.exec_root.join("s"),
            paths.exec_root.join("containers"),
        ] {
            std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        }
        let store = super::store::open(&options.data_root)?;
        let host = Arc::new(spec::HostFacts::probe().map_err(|e| Error::Task(e.to_string()))?);
        let (tx, rx) = mpsc::unbounded_channel();
        let socket = paths.events_socket();
        let events = EventServer::listen(&socket, tx)
            .map_err(|e| Error::Task(format!("events socket {}: {e}", socket.display())))?;
        let service = Arc::new(ContainerService {
            images,
            networks: options.networks.clone(),
            store,
            paths,
            files_root,
            berth: logger_binary(),
            entries: Mutex::new(HashMap::new()),
            naming: tokio::sync::Mutex::new(()),
            names: Default::default(),
            execs: Default::default(),
            host,
            journal: Journal::default(),
            volumes: options.volumes.clone(),
            dns: Arc::new(crate::network::dns::Dns::new(options.networks.clone())),
            _events: events,
        });
        let records = service.store.list()?;
        service.sweep(&records);
        for c in records {
            super::volumes::restore(&service.volumes, &c);
            service.names.reserve(&c.name, &c.id);
            service.insert(c);
        }
        tokio::spawn(service.clone().handle_exits(rx));
        service.restore().await;
        service.release_stale_ports().await;
        Ok(service)
    }

    fn insert(&self, c: Container) -> Arc<Entry> {
        let progress = Progress {
            running: c.state.status.is_live(),
            exit_code: c.state.exit_code,
            ..Default::default()
        };
        let id = c.id.clone();
        let entry = Arc::new(Entry {
            record: tokio::sync::Mutex::new(c),
            progress: watch::Sender::new(progress),
            backoff: Default::default(),
        });
        self.entries_lock().insert(id, entry.clone());
        entry
    }

    fn entries_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn files_dir(&self, id: &str) -> PathBuf {
        self.files_root.join(id)
    }

    fn bundle_dir(&self, id: &str) -> PathBuf {
        self.paths.exec_root.join("containers").join(id)
    }

    /// The containers made from image `image_id` (what `rmi` must not pull from under them).
    pub async fn image_users(&self, image_id: &str) -> Vec<crate::images::service::in_use::User> {
        self.list()
            .await
            .into_iter()
            .filter(|c| c.image_id == image_id)
            .map(|c| crate::images::service::in_use::User {
                running: c.state.status.is_live(),
                id: c.id,
            })
            .collect()
    }

    /// `container prune`: removes every stopped container whose labels match `labels`
    /// (`key` or `key=value`, all of them) and that was created before `until` (unix s).
    pub async fn prune(
        self: &Arc<Self>,
        labels: &[String],
        until: Option<i64>,
    ) -> Result<Vec<String>, Error> {
        let mut removed = Vec::new();
        for c in self.list().await {
            let stopped = matches!(
                c.state.status,
                Status::Created | Status::Exited | Status::Dead
            );
            let labelled = labels.iter().all(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                match &c.config["Labels"][k] {
                    Value::String(have) => !l.contains('=') || have == v,
                    _ => false,
                }
            });
            let created = chrono::DateTime::parse_from_rfc3339(&c.created)
                .map(|t| t.timestamp())
                .unwrap_or(0);
            if stopped && labelled && until.is_none_or(|u| created < u) {
                match self.remove(&c.id, false).await {
                    Ok(()) => removed.push(c.id),
                    Err(e) => tracing::warn!(id = %c.id, error = %e, "prune"),
                }
            }
        }
        Ok(removed)
    }

    /// `/info`'s container counts, as dockerd counts them (restarting is running).
    pub async fn counts(&self) -> Counts {
        let mut n = Counts::default();
        for c in self.list().await {
            match c.state.status {
                Status::Paused => n.paused += 1,
                Status::Running | Status::Restarting => n.running += 1,
                _ => n.stopped += 1,
            }
        }
        n
    }

    /// Every container, newest first.
    pub async fn list(&self) -> Vec<Container> {
        let entries: Vec<Arc<Entry>> = self.entries_lock().values().cloned().collect();
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.push(e.record.lock().await.clone());
        }
        out.sort_by(|a, b| b.created.cmp(&a.created));
        out
    }

    /// A container by full id, name (with or without `/`) or unique id prefix.
    pub fn find(&self, name_or_id: &str) -> Result<Arc<Entry>, Error> {
        let entries = self.entries_lock();
        if let Some(e) = entries.get(name_or_id) {
            return Ok(e.clone());
        }
        let name = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        // Names are read without the async lock: `names` mirrors them.
        if let Some(id) = self.names.lookup(name) {
            if let Some(e) = entries.get(&id) {
                return Ok(e.clone());
            }
        }
        let matches: Vec<&String> = if name_or_id.is_empty() {
            Vec::new()
        } else {
            entries
                .keys()
                .filter(|id| id.starts_with(name_or_id))
                .collect()
        };
        match matches.as_slice() {
            [id] => Ok(entries[*id].clone()),
            [] => Err(Error::NotFound(format!("No such container: {name_or_id}"))),
            _ => Err(Error::NotFound(format!(
                "Multiple IDs found with provided prefix: {name_or_id}"
            ))),
        }
    }

    pub async fn inspect(&self, name_or_id: &str) -> Result<Container, Error> {
        let entry = self.find(name_or_id)?;
        let c = entry.record.lock().await.clone();
        Ok(c)
    }

    /// `POST /containers/create`: the record, the writable snapshot, the per-container files.
    pub async fn create(&self, body: Value, name: Option<&str>) -> Result<Container, Error> {
        let image_name = body["Image"].as_str().unwrap_or("").to_string();
        if image_name.is_empty() {
            return Err(Error::Invalid("config.Image: no image given".into()));
        }
        self.check_names(&body)?;
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            let bare = n.strip_prefix('/').unwrap_or(n);
            if !valid_name(bare) {
                return Err(Error::Invalid(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
        }
        let images = self.images.clone();
        let wanted = image_name.clone();
        let image = blocking(move || {
            let image = images.resolve(&wanted)?;
            images.unpack(&image, None)?;
            Ok(image)
        })
        .await?;
        let id = random_hex();
        let others = self.volumes_from(&body).await?;
        let mut c = merged(&id, &body, &image, &self.host, &self.volumes, &others)?;
        logs::Rotation::of(&c.host_config).map_err(Error::Invalid)?;
        crate::network::ports::check(&c.host_config["PortBindings"], &c.config["ExposedPorts"])
            .map_err(|e| Error::Invalid(e.to_string()))?;
        c.log_path = self
            .files_dir(&id)
            .join(format!("{id}-json.log"))
            .to_string_lossy()
            .into_owned();
        let _naming = self.naming.lock().await;
        c.name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let bare = n.strip_prefix('/').unwrap_or(n).to_string();
                if let Some(other) = self.names.lookup(&bare) {
                    return Err(Error::Conflict(format!(
                        "Conflict. The container name \"/{bare}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                bare
            }
            None => self.names.generate(),
        };
        let volumes = self.volumes.clone();
        let planned = c.clone();
        blocking(move || super::volumes::realize(&volumes, &planned)).await?;
        let networking: config::NetworkingConfig =
            serde_json::from_value(body["NetworkingConfig"].clone()).unwrap_or_default();
        if let Err(e) = self.reserve_networks(&mut c, &networking) {
            super::volumes::release(&self.volumes, &c, true);
            return Err(e);
        }
        let files = self.files_dir(&id);
        let names = self.name_files(&c);
        if let Err(e) =
            bundle::write_files(&files, c.config["Hostname"].as_str().unwrap_or(""), &names)
        {
            let _ = self.networks.release_all(&c.id);
            super::volumes::release(&self.volumes, &c, true);
            return Err(e);
        }
        let images = self.images.clone();
        let key = c.snapshot_key();
        let parent = chain_ids(&image.diff_ids()).last().cloned();
        let prepared = blocking(move || {
            images
                .snapshots
                .prepare(&key, parent.as_deref())
                .map_err(|e| Error::Image(e.into()))
        })
        .await;
        if let Err(e) = prepared {
            let _ = std::fs::remove_dir_all(&files);
            super::volumes::release(&self.volumes, &c, true);
            let _ = self.networks.release_all(&c.id);
            return Err(e);
        }
        if let Err(e) = self.store.put(&c) {
            let _ = self.networks.release_all(&c.id);
            self.discard_snapshot(&c).await;
            let _ = std::fs::remove_dir_all(&files);
            super::volumes::release(&self.volumes, &c, true);
            return Err(e.into());
        }
        self.names.reserve(&c.name, &c.id);
        self.insert(c.clone());
        tracing::info!(id = %c.id, name = %c.name, image = %c.image, "container created");
        self.journal.publish(Event::container(&c, "create", &[]));
        Ok(c)
    }

    /// The mount points of the `--volumes-from` containers of a create request, by the name
    /// the request gives them.
    async fn volumes_from(
        &self,
        body: &Value,
    ) -> Result<HashMap<String, Vec<crate::volumes::mounts::MountPoint>>, Error> {
        let mut out = HashMap::new();
        for spec in body["HostConfig"]["VolumesFrom"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let spec = spec.as_str().unwrap_or("");
            let name = spec.split(':').next().unwrap_or(spec);
            let entry = self.find(name)?;
            let points = entry.record.lock().await.mount_points.clone();
            out.insert(name.to_string(), points);
        }
        Ok(out)
    }

    async fn discard_snapshot(&self, c: &Container) {
        let images = self.images.clone();
        let key = c.snapshot_key();
        let _ = blocking(move || {
            images
                .snapshots
                .remove(&key)
                .map_err(|e| Error::Image(e.into()))
        })
        .await;
    }

    /// `POST /containers/{id}/start`: a manual start, which resets the restart policy.
    pub async fn start(self: &Arc<Self>, name_or_id: &str) -> Result<(), Error> {
        let entry = self.find(name_or_id)?;
        entry.backoff().reset();
        self.start_entry(&entry, true).await
    }

    /// Starts the container's task; `by_hand` clears a manual stop.
    async fn start_entry(self: &Arc<Self>, entry: &Arc<Entry>, by_hand: bool) -> Result<(), Error> {
        let mut c = entry.record.lock().await;
        if c.state.status.is_live() {
            return Err(Error::NotModified);
        }
        if by_hand {
            c.manually_stopped = false;
        } else if c.manually_stopped || entry.progress.borrow().removed {
            // A pending restart that a stop or removal overtook.
            return Ok(());
        }
        self.join_pending_networks(&mut c)?;
        self.publish_ports(&c)?;
        let snapshot = c.clone();
        let paths = self.paths.clone();
        let bundle = self.bundle_dir(&c.id);
        let files = self.files_dir(&c.id);
        let images = self.images.clone();
        let berth = self.berth.clone();
        let host = self.host.clone();
        let netns = self.netns_path(&c.id);
        let attachments = self.attachments(&c.id);
        let volumes = self.volumes.clone();
        let names = self.name_files(&c);
        let dns = self.dns.clone();
        let started = blocking(move || {
            let joined =
                super::networking::plumb(&netns, &attachments, &files, &names, &dns, &snapshot.id)?;
            let r = start_task(
                &host,
                &paths,
                &images,
                &berth,
                &volumes,
                &snapshot,
                (&bundle, &files),
                joined.as_deref(),
            );
            if r.is_err() {
                dns.stop(&snapshot.id);
                crate::network::link::remove_netns(&netns);
                super::volumes::detach(&volumes, &snapshot);
            }
            r
        })
        .await;
        match started {
            Ok((pid, address)) => {
                c.state.status = Status::Running;
                c.state.pid = pid;
                c.state.started_at = record::now();
                c.state.error.clear();
                c.state.exit_code = 0;
                c.shim_address = Some(address);
                super::health::on_start(&mut c);
                self.store.put(&c)?;
                entry.progress.send_modify(|p| p.running = true);
                tracing::info!(id = %c.id, pid, "container started");
                self.journal.publish(Event::container(&c, "start", &[]));
                super::health::watch(self, entry, &c);
                Ok(())
            }
            Err(e) => {
                self.unpublish_ports(&c.id);
                let message = e.to_string();
                c.state.error = message.clone();
                c.state.exit_code = exit_code_of_failure(&message);
                if c.state.status == Status::Restarting {
                    c.state.status = Status::Exited;
                    c.state.finished_at = record::now();
                    // A restart that failed to start counts as an exit: the policy decides.
                    self.apply_policy(entry, &mut c);
                }
                self.store.put(&c)?;
                let (auto_remove, id) = (c.auto_remove(), c.id.clone());
                drop(c);
                if auto_remove {
                    if let Err(e) = self.remove(&id, true).await {
                        tracing::warn!(id, error = %e, "auto-remove after a failed start");
                    }
                }
                Err(e)
            }
        }
    }

    /// Applies shim exit events: the init's ends the task; an exec's is the exec's.
    async fn handle_exits(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Exit>) {
        while let Some(exit) = rx.recv().await {
            if exit.id != exit.container_id {
                self.execs.exited(&exit.id, exit.status as i32);
                continue;
            }
            let service = self.clone();
            tokio::spawn(async move {
                if let Ok(entry) = service.find(&exit.container_id) {
                    let ended = Ended::Exited {
                        pid: exit.pid,
                        status: exit.status,
                    };
                    service.finish_task(&entry, ended).await;
                }
            });
        }
    }

    /// The init ended (or its shim is gone): delete the task, record the exit, wake waiters,
    /// and remove an `--rm` container.
    async fn finish_task(self: &Arc<Self>, entry: &Arc<Entry>, ended: Ended) {
        let mut c = entry.record.lock().await;
        if !c.state.status.is_live() {
            return;
        }
        let status = match ended {
            Ended::Exited { pid, .. } if pid != c.state.pid => {
                tracing::debug!(id = %c.id, pid, "exit of an earlier task");
                return;
            }
            Ended::Exited { status, .. } => Some(status),
            Ended::ShimGone => None,
        };
        let address = c.shim_address.clone();
        let id = c.id.clone();
        let bundle = self.bundle_dir(&id);
        let netns = self.netns_path(&id);
        self.dns.stop(&id);
        let log = PathBuf::from(&c.log_path);
        let code = blocking(move || {
            let code = end_task(address.as_deref(), &id, &bundle, status);
            crate::network::link::remove_netns(&netns);
            logs::wait_for_writer(&log, LOG_DRAIN);
            Ok(code)
        })
        .await
        .unwrap_or(255);
        super::volumes::detach(&self.volumes, &c);
        self.unpublish_ports(&c.id);
        c.state.status = Status::Exited;
        c.state.exit_code = code;
        c.state.pid = 0;
        c.state.finished_at = record::now();
        c.shim_address = None;
        super::health::on_stop(&mut c);
        if let Err(e) = self.store.put(&c) {
            tracing::error!(id = %c.id, error = %e, "recording exit");
        }
        tracing::info!(id = %c.id, code, "container exited");
        self.journal.publish(Event::container(
            &c,
            "die",
            &[("exitCode", code.to_string())],
        ));
        if !c.auto_remove() {
            self.apply_policy(entry, &mut c);
        }
        entry.progress.send_modify(|p| {
            p.exits += 1;
            p.exit_code = code;
            p.running = false;
        });
        let auto_remove = c.auto_remove();
        let id = c.id.clone();
        drop(c);
        if auto_remove {
            if let Err(e) = Box::pin(self.remove(&id, false)).await {
                tracing::warn!(id, error = %e, "auto-remove");
            }
        }
    }

    /// After an exit: when the restart policy asks for it, marks the container restarting
    /// and starts it again after the back-off delay (unless a manual start, stop or removal
    /// overtakes it).
    fn apply_policy(self: &Arc<Self>, entry: &Arc<Entry>, c: &mut Container) {
        let policy = restart::Policy::of(&c.host_config);
        if !policy.wants(c.state.exit_code, c.manually_stopped, c.restart_count) {
            return;
        }
        let ran = restart::ran(&c.state.started_at, &c.state.finished_at);
        let (delay, token) = {
            let mut b = entry.backoff();
            (b.next(ran), b.token)
        };
        c.restart_count += 1;
        c.state.status = Status::Restarting;
        if let Err(e) = self.store.put(c) {
            tracing::error!(id = %c.id, error = %e, "recording a restart");
        }
        tracing::info!(id = %c.id, ?delay, count = c.restart_count, "restarting");
        let (service, entry) = (self.clone(), entry.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if entry.backoff().token != token {
                return;
            }
            if let Err(e) = Box::pin(service.start_entry(&entry, false)).await {
                tracing::warn!(error = %e, "restart");
            }
        });
    }

    /// The daemon's start applies restart policies again to the stopped containers; the
    /// daemon calls it once networking is ready (after [`ContainerService::open`]).
    pub async fn restart_at_daemon_start(self: &Arc<Self>) {
        let entries: Vec<Arc<Entry>> = self.entries_lock().values().cloned().collect();
        for entry in entries {
            let wanted = {
                let c = entry.record.lock().await;
                matches!(c.state.status, Status::Exited | Status::Restarting)
                    && restart::Policy::of(&c.host_config).at_daemon_start(
                        c.state.exit_code,
                        c.manually_stopped,
                        c.restart_count,
                    )
            };
            if wanted {
                if let Err(e) = self.start_entry(&entry, true).await {
                    tracing::warn!(error = %e, "restart at daemon start");
                }
            }
        }
    }

    /// Re-adopts live containers after a daemon start: a shim that answers keeps its task
    /// (or reports the exit it had meanwhile); a gone shim means the container died.
    async fn restore(self: &Arc<Self>) {
        let entries: Vec<Arc<Entry>> = self.entries_lock().values().cloned().collect();
        for entry in entries {
            let (live, address, id) = {
                let c = entry.record.lock().await;
                (
                    c.state.status.is_live(),
                    c.shim_address.clone(),
                    c.id.clone(),
                )
            };
            if !live {
                continue;
            }
            let state = blocking(move || {
                let address = address.ok_or_else(|| Error::Task("no shim address".into()))?;
                let shim = Shim::connect(&address).map_err(|e| Error::Task(e.to_string()))?;
                shim.state(&id, "").map_err(|e| Error::Task(e.to_string()))
            })
            .await;
            match state {
                Ok(s) if s.status.value() == berth_proto::types::task::Status::STOPPED as i32 => {
                    let ended = Ended::Exited {
                        pid: s.pid,
                        status: s.exit_status,
                    };
                    self.finish_task(&entry, ended).await;
                }
                Ok(_) => {
                    tracing::info!("re-adopted a running container");
                    let c = entry.record.lock().await.clone();
                    super::health::watch(self, &entry, &c);
                    self.restore_dns(&c);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "shim gone: container dead");
                    self.finish_task(&entry, Ended::ShimGone).await;
                }
            }
        }
    }

    /// `kill`, as dockerd's: sends `signal` to the init; for SIGKILL, returns once the
    /// container has exited (its record says so), so an inspect right after shows it exited.
    /// The wait is bounded: a task that outlives SIGKILL (a frozen cgroup) is not waited for
    /// for ever, and the error says so.
    pub async fn kill(self: &Arc<Self>, name_or_id: &str, signal: i32) -> Result<(), Error> {
        let entry = self.find(name_or_id)?;
        let mut rx = entry.progress.subscribe();
        let exits = rx.borrow_and_update().exits;
        let paused = entry.record.lock().await.state.status == Status::Paused;
        self.signal(name_or_id, signal).await?;
        if signal != libc::SIGKILL {
            return Ok(());
        }
        if paused {
            // As dockerd: a frozen task gets its SIGKILL once thawed.
            if let Err(e) = self.pause(name_or_id, false).await {
                tracing::warn!(error = %e, "thawing a killed container");
            }
        }
        let exited = async { rx.wait_for(|p| p.exits > exits || p.removed).await.is_ok() };
        if tokio::time::timeout(KILL_WAIT, exited).await.is_err() {
            return Err(Error::Task(format!(
                "container {name_or_id} has not exited {}s after SIGKILL",
                KILL_WAIT.as_secs()
            )));
        }
        Ok(())
    }

    /// Sends `signal` to the init, without waiting for its effect.
    async fn signal(self: &Arc<Self>, name_or_id: &str, signal: i32) -> Result<(), Error> {
        let entry = self.find(name_or_id)?;
        let mut c = entry.record.lock().await;
        if !c.state.status.is_live() {
            return Err(Error::Conflict(format!(
                "Cannot kill container: {name_or_id}: Container {} is not running",
                c.id
            )));
        }
        entry.backoff().cancel();
        if !c.manually_stopped {
            c.manually_stopped = true;
            self.store.put(&c)?;
        }
        self.journal.publish(Event::container(
            &c,
            "kill",
            &[("signal", signal.to_string())],
        ));
        let (address, id) = (c.shim_address.clone().unwrap_or_default(), c.id.clone());
        drop(c);
        let sent = blocking(move || {
            Ok(Shim::connect(&address).and_then(|s| s.kill(&id, "", signal as u32, false)))
        })
        .await?;
        match sent {
            Ok(()) => Ok(()),
            Err(gone) if gone.is_gone() => {
                // The shim died (kill -9, OOM): its container is deleted through the
                // runtime, which also ends the logging binary its output kept alive.
                tracing::warn!(error = %gone, "shim gone: container dead");
                self.finish_task(&entry, Ended::ShimGone).await;
                Ok(())
            }
            Err(e) => Err(Error::Task(e.to_string())),
        }
    }

    /// `stop`: the stop signal, then SIGKILL after `timeout` seconds (negative: wait for ever).
    pub async fn stop(
        self: &Arc<Self>,
        name_or_id: &str,
        timeout: Option<i64>,
    ) -> Result<(), Error> {
        self.stop_task(name_or_id, timeout).await?;
        self.publish(name_or_id, "stop").await;
        Ok(())
    }

    /// `restart`: stop (if running), then a manual start.
    pub async fn restart(
        self: &Arc<Self>,
        name_or_id: &str,
        timeout: Option<i64>,
    ) -> Result<(), Error> {
        match self.stop(name_or_id, timeout).await {
            Ok(()) | Err(Error::NotModified) => {}
            Err(e) => return Err(e),
        }
        self.start(name_or_id).await?;
        self.publish(name_or_id, "restart").await;
        Ok(())
    }

    /// Publishes a plain event of the container.
    async fn publish(&self, name_or_id: &str, action: &str) {
        if let Ok(entry) = self.find(name_or_id) {
            let c = entry.record.lock().await;
            self.journal.publish(Event::container(&c, action, &[]));
        }
    }

    async fn stop_task(
        self: &Arc<Self>,
        name_or_id: &str,
        timeout: Option<i64>,
    ) -> Result<(), Error> {
        let entry = self.find(name_or_id)?;
        let (signal, default_timeout) = {
            let mut c = entry.record.lock().await;
            if c.state.status == Status::Restarting {
                // Between two runs: the pending restart is cancelled.
                entry.backoff().cancel();
                c.manually_stopped = true;
                c.state.status = Status::Exited;
                self.store.put(&c)?;
                return Ok(());
            }
            if !c.state.status.is_live() {
                return Err(Error::NotModified);
            }
            (c.stop_signal(), c.stop_timeout())
        };
        let mut rx = entry.progress.subscribe();
        let exits = rx.borrow_and_update().exits;
        let timeout = timeout.unwrap_or(default_timeout);
        match self.signal(name_or_id, signal).await {
            Ok(()) | Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        let exited = async { rx.wait_for(|p| p.exits > exits || p.removed).await.is_ok() };
        if timeout >= 0 {
            if tokio::time::timeout(Duration::from_secs(timeout as u64), exited)
                .await
                .is_ok()
            {
                return Ok(());
            }
        } else {
            exited.await;
            return Ok(());
        }
        match self.signal(name_or_id, libc::SIGKILL).await {
            Ok(()) | Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        let _ = rx.wait_for(|p| p.exits > exits || p.removed).await;
        Ok(())
    }

    /// `rm [-f]`: the task (with -f), the snapshot, the files and the record.
    pub async fn remove(self: &Arc<Self>, name_or_id: &str, force: bool) -> Result<(), Error> {
        self.remove_with_volumes(name_or_id, force, false).await
    }

    /// `rm [-f] [-v]`: [`ContainerService::remove`], and with `volumes` (or `--rm`) the
    /// container's anonymous volumes.
    pub async fn remove_with_volumes(
        self: &Arc<Self>,
        name_or_id: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), Error> {
        let entry = self.find(name_or_id)?;
        {
            let c = entry.record.lock().await;
            if c.state.status == Status::Restarting {
                if !force {
                    return Err(Error::Conflict(format!(
                        "You cannot remove a restarting container {}. Stop the container before attempting removal or force remove",
                        c.id
                    )));
                }
                entry.backoff().cancel();
            }
            if c.state.status.is_live() {
                if !force {
                    return Err(Error::Conflict(format!(
                        "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                        c.id
                    )));
                }
                drop(c);
                let mut rx = entry.progress.subscribe();
                let exits = rx.borrow_and_update().exits;
                match self.signal(name_or_id, libc::SIGKILL).await {
                    Ok(()) | Err(Error::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
                let _ = rx.wait_for(|p| p.exits > exits || p.removed).await;
            }
        }
        let c = entry.record.lock().await;
        if entry.progress.borrow().removed {
            return Ok(());
        }
        // The record first: a crash after it leaves only what the next open sweeps.
        self.store.remove(&c.id)?;
        self.discard_snapshot(&c).await;
        let _ = std::fs::remove_dir_all(self.bundle_dir(&c.id));
        let _ = std::fs::remove_dir_all(self.files_dir(&c.id));
        super::volumes::release(&self.volumes, &c, volumes || c.auto_remove());
        if let Err(e) = self.networks.release_all(&c.id) {
            tracing::error!(id = %c.id, error = %e, "releasing endpoints");
        }
        self.names.release(&c.name);
        self.entries_lock().remove(&c.id);
        entry.progress.send_modify(|p| p.removed = true);
        tracing::info!(id = %c.id, "container removed");
        self.journal.publish(Event::container(&c, "destroy", &[]));
        Ok(())
    }

    /// A future that resolves to the exit code once `condition` holds; registered now.
    pub async fn wait(
        &self,
        name_or_id: &str,
        condition: WaitCondition,
    ) -> Result<impl std::future::Future<Output = i32> + Send + 'static, Error> {
        let entry = self.find(name_or_id)?;
        let mut rx = entry.progress.subscribe();
        let now = *rx.borrow_and_update();
        Ok(async move {
            let done = |p: &Progress| match condition {
                WaitCondition::NotRunning => !p.running || p.exits > now.exits || p.removed,
                WaitCondition::NextExit => p.exits > now.exits || p.removed,
                WaitCondition::Removed => p.removed,
            };
            match rx.wait_for(done).await {
                Ok(p) => p.exit_code,
                // The sender went with the entry: removed.
                Err(_) => now.exit_code,
            }
        })
    }

    /// `pause`/`unpause`.
    pub async fn pause(&self, name_or_id: &str, pause: bool) -> Result<(), Error> {
        let entry = self.find(name_or_id)?;
        let mut c = entry.record.lock().await;
        let want = if pause {
            Status::Running
        } else {
            Status::Paused
        };
        if c.state.status != want {
            return Err(Error::Conflict(if pause {
                format!("Container {} is not running", c.id)
            } else {
                format!("Container {} is not paused", c.id)
            }));
        }
        let (address, id) = (c.shim_address.clone().unwrap_or_default(), c.id.clone());
        blocking(move || {
            let shim = Shim::connect(&address).map_err(|e| Error::Task(e.to_string()))?;
            if pause {
                shim.pause(&id)
            } else {
                shim.resume(&id)
            }
            .map_err(|e| Error::Task(e.to_string()))
        })
        .await?;
        c.state.status = if pause {
            Status::Paused
        } else {
            Status::Running
        };
        self.store.put(&c)?;
        let action = if pause { "pause" } else { "unpause" };
        self.journal.publish(Event::container(&c, action, &[]));
        Ok(())
    }

    /// `rename`.
    pub async fn rename(&self, name_or_id: &str, new_name: &str) -> Result<(), Error> {
        let bare = new_name.strip_prefix('/').unwrap_or(new_name);
        if !valid_name(bare) {
            return Err(Error::Invalid(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let entry = self.find(name_or_id)?;
        let _naming = self.naming.lock().await;
        let mut c = entry.record.lock().await;
        if let Some(other) = self.names.lookup(bare) {
            return Err(Error::Conflict(format!(
                "Conflict. The container name \"/{bare}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        self.names.release(&c.name);
        let old = format!("/{}", c.name);
        c.name = bare.to_string();
        self.names.reserve(&c.name, &c.id);
        self.store.put(&c)?;
        self.networks.rename(&c.id, &c.name)?;
        self.journal
            .publish(Event::container(&c, "rename", &[("oldName", old)]));
        Ok(())
    }

    /// The log file, tty flag and progress of a container, for `logs` and `attach`.
    pub async fn output(&self, name_or_id: &str) -> Result<Output, Error> {
        let entry = self.find(name_or_id)?;
        let c = entry.record.lock().await;
        let stdin = match c.open_stdin() {
            true => Some(PathBuf::from(bundle::ensure_fifo(
                &self.bundle_dir(&c.id).join("stdin"),
            )?)),
            false => None,
        };
        Ok(Output {
            log_path: PathBuf::from(&c.log_path),
            tty: c.tty(),
            stdin,
            progress: entry.progress.subscribe(),
        })
    }

    /// The task's shim address and id, for exec and resize.
    pub async fn task(&self, name_or_id: &str) -> Result<(String, Container), Error> {
        let entry = self.find(name_or_id)?;
        let c = entry.record.lock().await;
        match (&c.shim_address, c.state.status) {
            (Some(a), Status::Running) => Ok((a.clone(), c.clone())),
            (_, Status::Paused) => Err(Error::Conflict(format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            ))),
            _ => Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            ))),
        }
    }

    /// What [`super::fs`] needs of a container: its record, the running task's rootfs, the
    /// image service, and where to mount a stopped one's snapshot for a moment.
    pub async fn fs_parts(
        &self,
        name_or_id: &str,
    ) -> Result<(Container, PathBuf, Arc<ImageService>, PathBuf), Error> {
        let c = self.inspect(name_or_id).await?;
        let rootfs = self.bundle_dir(&c.id).join("rootfs");
        let scratch = self.paths.exec_root.join("fs");
        Ok((c, rootfs, self.images.clone(), scratch))
    }

    pub fn bundle_of(&self, id: &str) -> PathBuf {
        self.bundle_dir(id)
    }
}

/// What `logs` and `attach` read.
pub struct Output {
    pub log_path: PathBuf,
    pub tty: bool,
    pub stdin: Option<PathBuf>,
    pub progress: watch::Receiver<Progress>,
}

/// Docker's exit codes for a process that could not start: 127 not found, 126 not runnable.
fn exit_code_of_failure(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        128
    }
}

/// The create request merged with the image's config (docker's rules, `spec::merge`),
/// checked before anything is made, and the process to run.
fn merged(
    id: &str,
    body: &Value,
    image: &images::Image,
    host: &spec::HostFacts,
    volumes: &VolumeService,
    others: &HashMap<String, Vec<crate::volumes::mounts::MountPoint>>,
) -> Result<Container, Error> {
    let invalid = |e: spec::SpecError| Error::Invalid(e.to_string());
    let req: config::CreateRequest = serde_json::from_value(body.clone())
        .map_err(|e| Error::Invalid(format!("create request: {e}")))?;
    let image_config: oci_spec::image::ImageConfiguration =
        serde_json::from_value(image.config.clone())
            .map_err(|e| Error::Invalid(format!("image {} config: {e}", image.id)))?;
    let mut config = req.config;
    let mut host_config = req.host_config;
    let mut from_image = spec::merge::image_config(&image_config);
    spec::merge::docker_fields(&image.config, &mut from_image);
    spec::merge::merge(&mut config, &from_image).map_err(invalid)?;
    spec::merge::fill_hostname(&mut config, &host_config, id, &host_name());
    if host_config.network_mode.is_empty() {
        host_config.network_mode = "default".into();
    }
    let mount_points = super::volumes::plan(volumes, &config, &host_config, others)?;
    let effective = crate::volumes::mounts::effective(&host_config, &mount_points);
    spec::check(&config, &effective, host).map_err(invalid)?;
    spec::mounts::create_bind_sources(&host_config).map_err(invalid)?;
    let mut argv = spec::merge::args(&config).map_err(invalid)?;
    if argv.is_empty() {
        return Err(Error::Invalid("No command specified".into()));
    }
    let path = argv.remove(0);
    Ok(Container {
        id: id.to_string(),
        name: String::new(),
        created: record::now(),
        image: config.image.clone(),
        image_id: image.id.clone(),
        config: serde_json::to_value(&config).unwrap_or_default(),
        host_config: serde_json::to_value(&host_config).unwrap_or_default(),
        path,
        args: argv,
        state: record::State {
            started_at: record::NEVER.into(),
            finished_at: record::NEVER.into(),
            ..Default::default()
        },
        restart_count: 0,
        log_path: String::new(),
        shim_address: None,
        manually_stopped: false,
        mount_points,
        pending_networks: None,
    })
}

/// `berth-logger` beside this executable (a small binary: one runs per container), or this
/// executable itself (its `log-driver` command) where it is not installed.
fn logger_binary() -> PathBuf {
    let logger = shim::sibling_binary("berth-logger");
    if logger.is_file() {
        logger
    } else {
        shim::sibling_binary("berth")
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// The OCI spec of `c` (docker's defaults, `spec::build`) on the rootfs at `rootfs`.
fn build_spec(
    c: &Container,
    rootfs: &Path,
    files: &Path,
    host: &spec::HostFacts,
    netns: Option<&Path>,
) -> Result<Value, Error> {
    let invalid = |what: &str, e: serde_json::Error| Error::Invalid(format!("{what}: {e}"));
    let config: config::Config =
        serde_json::from_value(c.config.clone()).map_err(|e| invalid("Config", e))?;
    let host_config: config::HostConfig =
        serde_json::from_value(c.host_config.clone()).map_err(|e| invalid("HostConfig", e))?;
    let host_config = super::volumes::effective(c, &host_config);
    let etc = spec::EtcFiles {
        hosts: files.join("hosts"),
        hostname: files.join("hostname"),
        resolv_conf: files.join("resolv.conf"),
    };
    let input = spec::SpecInput {
        id: &c.id,
        name: &c.name,
        config: &config,
        host_config: &host_config,
        rootfs,
        etc: &etc,
        joins: spec::Joins {
            network: netns,
            ..Default::default()
        },
        host,
    };
    let built = spec::build(&input).map_err(|e| Error::Invalid(e.to_string()))?;
    serde_json::to_value(&built).map_err(|e| invalid("spec", e))
}

/// Mounts the rootfs and the volumes, writes the bundle, starts the shim and the task:
/// (pid, shim address).
#[allow(clippy::too_many_arguments)]
fn start_task(
    host: &spec::HostFacts,
    paths: &Paths,
    images: &ImageService,
    berth: &Path,
    volumes: &VolumeService,
    c: &Container,
    (bundle, files): (&Path, &Path),
    netns: Option<&Path>,
) -> Result<(u32, String), Error> {
    let rootfs = bundle.join("rootfs");
    bundle::prepare(bundle, &rootfs, images, &c.snapshot_key(), c.auto_remove())?;
    let result = (|| {
        super::volumes::attach(volumes, c, &rootfs)?;
        let spec = build_spec(c, &rootfs, files, host, netns)?;
        bundle::write_spec(bundle, &spec)?;
        let rotation = logs::Rotation::of(&c.host_config).map_err(Error::Invalid)?;
        let log = logs::log_uri(berth, Path::new(&c.log_path), rotation);
        let io = TaskIo {
            stdin: if c.open_stdin() {
                bundle::ensure_fifo(&bundle.join("stdin"))?
            } else {
                String::new()
            },
            stdout: log.clone(),
            stderr: if c.tty() { String::new() } else { log },
            terminal: c.tty(),
        };
        let address = shim::start(paths, &c.id, bundle).map_err(|e| Error::Task(e.to_string()))?;
        let started = Shim::connect(&address).and_then(|s| {
            let r = s
                .create(paths, &c.id, bundle, &io)
                .and_then(|_| s.start(&c.id, ""));
            if r.is_err() {
                let _ = s.delete(&c.id, "");
                s.shutdown();
            }
            r
        });
        match started {
            Ok(pid) => Ok((pid, address)),
            Err(e) => Err(Error::Task(task_error(&e))),
        }
    })();
    if result.is_err() {
        bundle::release(bundle, &rootfs);
    }
    result
}

/// How a task's end became known.
enum Ended {
    /// Its shim reported that the init `pid` exited: applies only to the task whose init that
    /// was (a re-adopted shim can deliver an exit after a restart began a new one).
    Exited { pid: u32, status: u32 },
    /// Its shim is gone: the container died with it.
    ShimGone,
}

/// Docker's wording for a task that failed to start.
fn task_error(e: &ShimError) -> String {
    let text = e.to_string();
    // The shim words the runtime's failure as runc-v2 does ("OCI runtime create failed: …").
    let text = text
        .strip_prefix("OCI runtime create failed: ")
        .unwrap_or(&text);
    format!("failed to create shim task: OCI runtime create failed: {text}: unknown")
}

/// Deletes the task in its shim (if it answers), stops the shim, unmounts: the exit code.
fn end_task(address: Option<&str>, id: &str, bundle: &Path, status: Option<u32>) -> i32 {
    let mut code = status.map(|s| s as i32);
    let shim = address.and_then(|a| Shim::connect(a).ok());
    let deleted = shim.as_ref().map(|shim| shim.delete(id, ""));
    if let Some(shim) = &shim {
        shim.shutdown();
    }
    match deleted {
        Some(Ok(s)) => code = code.or(Some(s as i32)),
        Some(Err(e)) if !e.is_gone() => tracing::warn!(id, error = %e, "task delete"),
        Some(Err(ShimError::Task(_))) => {}
        // The shim died: what it would have cleaned up.
        _ => bundle::force_delete(bundle, id),
    }
    bundle::release(bundle, &bundle.join("rootfs"));
    code.unwrap_or(128 + libc::SIGKILL)
}
