//! cgroups v1, hybrid and v2, detected at run time.
//!
//! OWNER: cgroups helper. Interface used by `container` (create/delete/kill):
//! - `Cgroup::new(cgroups_path: Option<&Path>, id: &str, systemd: bool) -> Result<Cgroup>` resolves
//!   the container's cgroup on the host's layout (runc's default path when `cgroups_path` is None);
//!   `Cgroup::new_exclusive` (create) also refuses a root, the runtime's own or a busy cgroup.
//! - `Cgroup::create(&self, resources: Option<&LinuxResources>)`, then `Cgroup::doors` to clone
//!   the init into it (`join.rs`); `create_and_join(pid, resources)` moves a live process in.
//!   The container's `create` uses `create_unlimited`, then `limit` once the init's mounts are done.
//! - `Cgroup::delete(&self) -> Result<()>`, `Cgroup::kill_all(&self, signal: i32) -> Result<()>`,
//!   `Cgroup::pids(&self) -> Result<Vec<i32>>`.
//! - `freeze`, `thaw`, `is_frozen`, `update(&LinuxResources)`, `join(pid)` (exec),
//!   `oom_kill_count`, and `stats() -> serde_json::Value`: the "data" object of runc's
//!   `events --stats` (`{"type":"stats","id":…,"data":<this>}`).
//!
//! `Cgroup` is `Serialize + Deserialize`: it is stored in the container's state.json. It records,
//! per controller, where the container's cgroup lives, because a hybrid host can have some
//! controllers on v1 hierarchies and others on the cgroup2 hierarchy: a controller mounted on a
//! v1 hierarchy is used there, otherwise on cgroup2 if that hierarchy offers it. On hybrid hosts
//! the cgroup2 cgroup is created and joined too. The freezer (when no v1 freezer is mounted) and
//! `cgroup.kill` are core cgroup2 features; devices on cgroup2 are an eBPF program (`bpf.rs`).
//!
//! cgroupsPath: absolute; relative to the runtime's own cgroup (v1) or its parent (v2), like
//! runc; empty → the container id, relative (runc's default); `--systemd-cgroup`
//! `slice:prefix:name` → `/slice…/prefix-name.scope` made through cgroupfs (no systemd is
//! contacted). A `..` climbing out of its base is refused.
//!
//! Files: `layout.rs` (mounts), `path.rs` (cgroupsPath), `owner.rs` (the cgroup is the
//! container's alone: refused at create if shared, only its own processes signalled), `validate.rs` (values, checked before
//! any mkdir), `convert.rs` (v1→v2 values), `v1.rs`/`v2.rs` (writing resources), `bpf.rs`,
//! `stats.rs`, `fs.rs` (file helpers carrying path and value in errors). Tests: `tests.rs`
//! (this host), `vm.rs` (the same tests inside a pure-v2 and a mixed v1/v2 kernel under qemu).
mod bpf;
mod convert;
mod fs;
mod join;
mod layout;
mod owner;
mod path;
mod stats;
mod sub;
#[cfg(test)]
mod tests;
mod v1;
mod v2;
mod validate;
#[cfg(test)]
mod vm;

pub use join::Doors;
pub use layout::{Layout, V1Mount};
pub use owner::PidNs;
pub use sub::SubCgroups;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cgroup {}: {reason}", path.display())]
    Path { path: PathBuf, reason: String },
    #[error("cgroupsPath {path:?}: {reason}")]
    BadCgroupsPath { path: String, reason: String },
    #[error("linux.resources.{field}: invalid value {value}: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
    #[error("linux.resources.{field}: the {controller} controller is not available on this host")]
    NoController { field: String, controller: String },
    #[error("write {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--cgroup {arg}: {reason}")]
    BadSubCgroup { arg: String, reason: String },
    #[error("joining cgroup {}: {reason}", path.display())]
    Join { path: PathBuf, reason: String },
    #[error("device eBPF program: {op} on {}: {source}{log}", path.display())]
    Bpf {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
        log: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Remove cgroup directories made by `create`, the deepest first.
fn remove_dirs(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        if let Err(e) = fs::rmdir_retry(dir, Duration::from_millis(500)) {
            tracing::warn!("cgroup rollback: {e}");
        }
    }
}

pub(crate) fn invalid(field: &str, value: impl ToString, reason: &str) -> Error {
    Error::Invalid {
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Where one controller's files are for this container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place<'a> {
    V1(&'a Path),
    V2(&'a Path),
    Missing,
}

/// The container's cgroup on every hierarchy of the host.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct Cgroup {
    /// The cgroup path as resolved (inside each hierarchy; informative).
    pub path: PathBuf,
    /// v1 controller name (`memory`, `name=systemd`, …) → the container's directory.
    #[serde(default)]
    pub v1: BTreeMap<String, PathBuf>,
    /// The container's directory in the cgroup2 hierarchy, when one is mounted.
    #[serde(default)]
    pub unified: Option<PathBuf>,
    /// Controllers that live on the cgroup2 hierarchy (not bound to a v1 hierarchy).
    #[serde(default)]
    pub v2_controllers: Vec<String>,
    /// The cgroup2 mount point (ancestors whose `cgroup.subtree_control` must enable controllers).
    #[serde(default)]
    pub unified_mount: Option<PathBuf>,
    /// The v1 mount points (to move a process back to a hierarchy's root on rollback).
    #[serde(default)]
    pub v1_mounts: Vec<PathBuf>,
    /// The container's pid namespace: only its processes (and those of namespaces nested in
    /// it) are signalled through this cgroup. None in states written before it was recorded.
    #[serde(default)]
    pub owner_pid_ns: Option<PidNs>,
}

impl Cgroup {
    /// Resolve the container's cgroup on this host's layout (read from /proc/self/mountinfo).
    pub fn new(cgroups_path: Option<&Path>, id: &str, systemd: bool) -> Result<Self> {
        Self::with_layout(&Layout::detect()?, cgroups_path, id, systemd)
    }

    /// `new` for a container being created: the cgroup must be its own (see `owner.rs`).
    pub fn new_exclusive(cgroups_path: Option<&Path>, id: &str, systemd: bool) -> Result<Self> {
        let layout = Layout::detect()?;
        let cg = Self::with_layout(&layout, cgroups_path, id, systemd)?;
        cg.ensure_exclusive(&layout)?;
        Ok(cg)
    }

    /// Same as `new` on a given layout (tests build one on a chosen mount).
    pub fn with_layout(
        layout: &Layout,
        cgroups_path: Option<&Path>,
        id: &str,
        systemd: bool,
    ) -> Result<Self> {
        let spec_path = cgroups_path
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let wanted = path::resolve(&spec_path, id, systemd)?;
        let own = layout::own_cgroups()?;
        let mut v1 = BTreeMap::new();
        for m in &layout.v1 {
            let inner = path::place(&wanted, own.v1_path(&m.controllers), false);
            let dir = m.dir_for(&inner);
            for c in &m.controllers {
                v1.insert(c.clone(), dir.clone());
            }
        }
        let unified = layout
            .unified
            .as_ref()
            .map(|m| m.dir_for(&path::place(&wanted, own.v2.as_deref(), true)));
        Ok(Cgroup {
            path: wanted.display_path(),
            v1,
            unified,
            v2_controllers: layout.v2_controllers.clone(),
            unified_mount: layout.unified.as_ref().map(|m| m.mount_point.clone()),
            v1_mounts: layout.v1.iter().map(|m| m.mount_point.clone()).collect(),
            owner_pid_ns: None,
        })
    }

    /// Where `controller`'s files are: its v1 hierarchy if mounted there, else cgroup2.
    pub(crate) fn place(&self, controller: &str) -> Place<'_> {
        if let Some(d) = self.v1.get(controller) {
            return Place::V1(d);
        }
        match &self.unified {
            Some(d) if self.v2_controllers.iter().any(|c| c == controller) => Place::V2(d),
            _ => Place::Missing,
        }
    }

    /// Every directory of this cgroup, each once: v1 hierarchies then cgroup2.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs = self.v1_dirs();
        dirs.extend(self.unified.clone());
        dirs
    }

    /// mkdir on every hierarchy, apply `resources`, move `pid` in. On error, what was created is
    /// removed again.
    pub fn create_and_join(&self, pid: i32, resources: Option<&LinuxResources>) -> Result<()> {
        let created = self.create(resources)?;
        if let Err(e) = self.join(pid) {
            self.rollback(pid, &created);
            return Err(e);
        }
        Ok(())
    }

    /// mkdir on every hierarchy and apply `resources`, for a process to be born in it
    /// (`doors`). Returns the directories made; on error they are removed again.
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<Vec<PathBuf>> {
        self.create_with(resources, true)
    }

    /// [`Cgroup::create`] without the resource values: checks them and makes the cgroup with
    /// its device rules. `create` (the container's) writes the values with [`Cgroup::limit`]
    /// once the init's mounts are done, as runc does: a sandbox's `cpu.shares` of 2 made the
    /// init's own setup wait seconds for a busy CPU.
    pub fn create_unlimited(&self, resources: Option<&LinuxResources>) -> Result<Vec<PathBuf>> {
        self.create_with(resources, false)
    }

    /// Writes the resource values of a cgroup made by [`Cgroup::create_unlimited`].
    pub fn limit(&self, resources: Option<&LinuxResources>) -> Result<()> {
        match resources {
            Some(r) => self.apply(r, false),
            None => Ok(()),
        }
    }

    fn create_with(
        &self,
        resources: Option<&LinuxResources>,
        limits: bool,
    ) -> Result<Vec<PathBuf>> {
        if let Some(r) = resources {
            validate::resources(r)?;
        }
        self.check_not_frozen()?;
        let mut created = Vec::new();
        // Devices are restricted even when the config has no rules (runc does the same).
        let no_rules = LinuxResources::default();
        let r = resources.unwrap_or(&no_rules);
        let result = self
            .create_dirs(&mut created)
            .and_then(|()| if limits { self.apply(r, false) } else { Ok(()) })
            .and_then(|()| self.apply_devices(r.devices().as_deref().unwrap_or(&[])));
        if let Err(e) = result {
            remove_dirs(&created);
            return Err(e);
        }
        Ok(created)
    }

    /// A pre-existing cgroup that is frozen is refused: the init would hang in it for ever.
    /// (One that holds processes was refused before: `new_exclusive`.)
    fn check_not_frozen(&self) -> Result<()> {
        if self.frozen_anywhere() {
            let dir = self.v1.get("freezer").or(self.unified.as_ref());
            return Err(Error::Path {
                path: dir.cloned().unwrap_or_else(|| self.path.clone()),
                reason: "container's cgroup unexpectedly frozen".into(),
            });
        }
        Ok(())
    }

    /// Whether the v1 freezer or cgroup2's `cgroup.freeze` of an existing cgroup says frozen.
    fn frozen_anywhere(&self) -> bool {
        let v1 = self
            .v1
            .get("freezer")
            .and_then(|d| fs::read(&d.join("freezer.state")).ok())
            .is_some_and(|s| s.trim() != "THAWED");
        let v2 = self
            .unified
            .as_ref()
            .and_then(|d| fs::read(&d.join("cgroup.freeze")).ok())
            .is_some_and(|s| s.trim() == "1");
        v1 || v2
    }

    fn create_dirs(&self, created: &mut Vec<PathBuf>) -> Result<()> {
        for dir in self.v1_dirs() {
            fs::mkdir_chain(&dir, created, |_| Ok(()))?;
            if self.v1.get("cpuset") == Some(&dir) {
                self.fill_cpusets(&dir)?;
            }
        }
        if let (Some(dir), Some(mount)) = (&self.unified, &self.unified_mount) {
            v2::create(mount, dir, &self.v2_controllers, created)?;
        }
        Ok(())
    }

    /// A v1 cpuset cgroup starts with empty cpus/mems, and so does a parent made by someone
    /// else: fill every empty one from the hierarchy's root down to `dir`, as runc does.
    fn fill_cpusets(&self, dir: &Path) -> Result<()> {
        let Some(root) = self.hierarchy_root(dir) else {
            return Ok(());
        };
        let chain: Vec<&Path> = dir.ancestors().take_while(|d| *d != root).collect();
        for d in chain.into_iter().rev() {
            v1::init_cpuset(d)?;
        }
        Ok(())
    }

    /// The v1 directories, each once: co-mounted controllers share a directory. The values are
    /// clones of one `dir_for` per hierarchy, so bytes compare them (`Path`'s `==` walks
    /// components, and create and delete ask this some 150 times).
    fn v1_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for d in self.v1.values() {
            if !dirs.iter().any(|x| x.as_os_str() == d.as_os_str()) {
                dirs.push(d.clone());
            }
        }
        dirs
    }

    fn rollback(&self, pid: i32, created: &[PathBuf]) {
        // The pid may already be in some of them: move it back to each hierarchy's root.
        for dir in self.dirs() {
            if let Some(root) = self.hierarchy_root(&dir) {
                if root != dir {
                    let _ = fs::write(&root.join("cgroup.procs"), &pid.to_string());
                }
            }
        }
        remove_dirs(created);
    }

    /// The mount point of the hierarchy holding `dir` (a prefix of it).
    fn hierarchy_root(&self, dir: &Path) -> Option<PathBuf> {
        if Some(dir) == self.unified.as_deref() {
            return self.unified_mount.clone();
        }
        self.v1_mounts
            .iter()
            .find(|mp| dir.starts_with(mp))
            .cloned()
    }

    /// Write every resource to the container's cgroup (create: `update == false`).
    fn apply(&self, r: &LinuxResources, update: bool) -> Result<()> {
        if let Some(m) = r.memory() {
            match self.place("memory") {
                Place::V1(d) => v1::memory(d, m, update)?,
                Place::V2(d) => v2::memory(d, m, update)?,
                Place::Missing if validate::memory_is_set(m) => {
                    return Err(no_ctrl("memory", "memory"))
                }
                Place::Missing => {}
            }
        }
        if let Some(c) = r.cpu() {
            match self.place("cpu") {
                Place::V1(d) => v1::cpu(d, c)?,
                Place::V2(d) => v2::cpu(d, c)?,
                Place::Missing if validate::cpu_is_set(c) => return Err(no_ctrl("cpu", "cpu")),
                Place::Missing => {}
            }
            let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
            let mems = c.mems().as_deref().filter(|s| !s.is_empty());
            if cpus.is_some() || mems.is_some() {
                match self.place("cpuset") {
                    Place::V1(d) | Place::V2(d) => v1::cpuset(d, cpus, mems)?,
                    Place::Missing => return Err(no_ctrl("cpu.cpus", "cpuset")),
                }
            }
        }
        if let Some(p) = r.pids() {
            if p.limit() != 0 {
                match self.place("pids") {
                    Place::V1(d) | Place::V2(d) => v1::pids(d, p.limit())?,
                    Place::Missing => return Err(no_ctrl("pids", "pids")),
                }
            }
        }
        if let Some(b) = r.block_io() {
            match self.place("blkio") {
                Place::V1(d) => v1::blkio(d, b)?,
                _ => match self.place("io") {
                    Place::V2(d) => v2::io(d, b)?,
                    _ if validate::blkio_is_set(b) => return Err(no_ctrl("blockIO", "blkio/io")),
                    _ => {}
                },
            }
        }
        for h in r.hugepage_limits().iter().flatten() {
            match self.place("hugetlb") {
                Place::V1(d) => v1::hugetlb(d, h)?,
                Place::V2(d) => v2::hugetlb(d, h)?,
                Place::Missing => return Err(no_ctrl("hugepageLimits", "hugetlb")),
            }
        }
        if let Some(n) = r.network() {
            self.apply_network(n)?;
        }
        for (dev, limit) in r.rdma().iter().flatten() {
            match self.place("rdma") {
                Place::V1(d) | Place::V2(d) => v1::rdma(d, dev, limit)?,
                Place::Missing => return Err(no_ctrl("rdma", "rdma")),
            }
        }
        if let (true, Some(rules)) = (update, r.devices()) {
            self.apply_devices(rules)?;
        }
        if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
            self.unified_keys_on_cgroup2(u)?;
            match &self.unified {
                Some(d) => v2::unified(d, u)?,
                None => return Err(no_ctrl("unified", "cgroup2")),
            }
        }
        Ok(())
    }

    fn apply_network(&self, n: &oci_spec::runtime::LinuxNetwork) -> Result<()> {
        if let Some(id) = n.class_id() {
            match self.place("net_cls") {
                Place::V1(d) => fs::write(&d.join("net_cls.classid"), &id.to_string())?,
                _ => return Err(no_ctrl("network.classID", "net_cls (cgroup v1 only)")),
            }
        }
        for p in n.priorities().iter().flatten() {
            match self.place("net_prio") {
                Place::V1(d) => fs::write(
                    &d.join("net_prio.ifpriomap"),
                    &format!("{} {}", p.name(), p.priority()),
                )?,
                _ => return Err(no_ctrl("network.priorities", "net_prio (cgroup v1 only)")),
            }
        }
        Ok(())
    }

    fn apply_devices(&self, rules: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<()> {
        let program = validate::device_rules(rules)?;
        if let Some(d) = self.v1.get("devices") {
            return v1::devices(d, &program);
        }
        match &self.unified {
            Some(d) => bpf::apply(d, &program),
            None if rules.is_empty() => Ok(()),
            None => Err(no_ctrl("devices", "devices")),
        }
    }

    /// Apply new resource values to the existing cgroup (`runc update`).
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        validate::resources(r)?;
        self.apply(r, true)
    }

    /// Move `pid` into the container's cgroup on every hierarchy (create, exec).
    pub fn join(&self, pid: i32) -> Result<()> {
        for dir in self.dirs() {
            fs::write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// On a hybrid host, `unified` keys of a controller that lives on a v1 hierarchy name no
    /// file of the container's cgroup2 directory: refused as runc does on any v1 host.
    fn unified_keys_on_cgroup2(&self, unified: &HashMap<String, String>) -> Result<()> {
        let mut keys: Vec<&String> = unified.keys().collect();
        keys.sort();
        for key in keys {
            let controller = key.split('.').next().unwrap_or_default();
            if matches!(self.place(controller), Place::V1(_)) {
                let reason = format!(
                    "invalid configuration: cannot use unified on cgroup v1 (the {controller} \
                     controller is on a v1 hierarchy of this host)"
                );
                return Err(invalid("unified", key, &reason));
            }
        }
        Ok(())
    }

    /// The directory used to list processes and to freeze: cgroup2 when present (it holds every
    /// process of the container on hybrid hosts too), else a v1 hierarchy.
    fn main_dir(&self) -> Option<&Path> {
        self.unified
            .as_deref()
            .or_else(|| self.v1.get("freezer").map(PathBuf::as_path))
            .or_else(|| self.v1.values().next().map(PathBuf::as_path))
    }

    /// Every process in the container's cgroup and its sub-cgroups.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let Some(dir) = self.main_dir() else {
            return Ok(Vec::new());
        };
        let mut pids = Vec::new();
        fs::collect_pids(dir, &mut pids)?;
        Ok(pids)
    }

    /// Freeze every process (v1 freezer, else cgroup2 `cgroup.freeze`) and wait until frozen.
    pub fn freeze(&self) -> Result<()> {
        match self.v1.get("freezer") {
            Some(d) => v1::freeze(d, true),
            None => v2::freeze(self.unified_dir()?, true),
        }
    }

    pub fn thaw(&self) -> Result<()> {
        match self.v1.get("freezer") {
            Some(d) => v1::freeze(d, false),
            None => v2::freeze(self.unified_dir()?, false),
        }
    }

    pub fn is_frozen(&self) -> Result<bool> {
        match self.v1.get("freezer") {
            Some(d) => Ok(fs::read(&d.join("freezer.state"))?.trim() == "FROZEN"),
            None => Ok(fs::read(&self.unified_dir()?.join("cgroup.freeze"))?.trim() == "1"),
        }
    }

    fn unified_dir(&self) -> Result<&Path> {
        self.unified.as_deref().ok_or_else(|| Error::Path {
            path: self.path.clone(),
            reason: "no freezer: neither a v1 freezer hierarchy nor cgroup2 is mounted".into(),
        })
    }

    /// Signal every process of the container (see `owned_pids`): freeze (so no process forks
    /// in between), signal (SIGKILL through cgroup2's `cgroup.kill` when the kernel has it and
    /// the cgroup holds nothing else), then thaw on every hierarchy that can hold the tasks
    /// frozen: on a hybrid host a paused container is frozen by the v1 freezer, where a SIGKILL
    /// stays pending until it is thawed. Processes not started for the container are spared,
    /// with a warning.
    pub fn kill_all(&self, signal: i32) -> Result<()> {
        // Frozen or not (a freeze can time out), every process gets the signal.
        let _ = self.freeze();
        let result = self.signal_all(signal);
        result.and(self.thaw_everywhere())
    }

    fn signal_all(&self, signal: i32) -> Result<()> {
        let (ours, foreign) = self.owned_pids()?;
        if signal == libc::SIGKILL && foreign.is_empty() {
            if let Some(kill) = self.unified.as_ref().map(|d| d.join("cgroup.kill")) {
                if kill.exists() {
                    fs::write(&kill, "1")?;
                }
            }
        }
        if !foreign.is_empty() {
            tracing::warn!("{}", self.foreign_error(&foreign));
        }
        for pid in ours {
            // SAFETY: kill(2) with a pid of the container read from cgroup.procs; errors
            // (ESRCH) are harmless.
            unsafe { libc::kill(pid, signal) };
        }
        Ok(())
    }

    /// Thaw the v1 freezer and cgroup2's `cgroup.freeze`, wherever they exist.
    fn thaw_everywhere(&self) -> Result<()> {
        let mut first_err = None;
        if let Some(d) = self.v1.get("freezer").filter(|d| d.exists()) {
            if let Err(e) = v1::freeze(d, false) {
                first_err.get_or_insert(e);
            }
        }
        if let Some(d) = self
            .unified
            .as_ref()
            .filter(|d| d.join("cgroup.freeze").exists())
        {
            if let Err(e) = v2::freeze(d, false) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Remove the container's cgroup (and sub-cgroups) on every hierarchy. Waits up to a second
    /// for exiting processes (EBUSY). A cgroup already gone is not an error; one holding
    /// processes not started for the container is left, with an error naming them.
    pub fn delete(&self) -> Result<()> {
        let (_, foreign) = self.owned_pids()?;
        if !foreign.is_empty() {
            return Err(self.foreign_error(&foreign));
        }
        let mut first_err = None;
        for dir in self.dirs() {
            if let Err(e) = fs::remove_tree(&dir, Instant::now() + Duration::from_secs(1)) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Statistics in the shape of runc's `events --stats` "data" object.
    pub fn stats(&self) -> Result<serde_json::Value> {
        stats::collect(self)
    }

    /// How many times the kernel's OOM killer killed a process in this cgroup.
    pub fn oom_kill_count(&self) -> Result<u64> {
        let (file, key) = match self.place("memory") {
            Place::V1(d) => (d.join("memory.oom_control"), "oom_kill"),
            Place::V2(d) => (d.join("memory.events"), "oom_kill"),
            Place::Missing => return Ok(0),
        };
        Ok(fs::keyed(&fs::read(&file)?).get(key).copied().unwrap_or(0))
    }
}

fn no_ctrl(field: &str, controller: &str) -> Error {
    Error::NoController {
        field: field.to_string(),
        controller: controller.to_string(),
    }
}
