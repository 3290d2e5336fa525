//! cgroups v1, hybrid and v2, detected at run time.
//!
//! OWNER: cgroups helper. Interface used by `container` (create/delete/kill):
//! - `Cgroup::new(cgroups_path: Option<&Path>, id: &str, systemd: bool) -> Result<Cgroup>` resolves
//!   the container's cgroup on the host's layout (runc's default path when `cgroups_path` is None).
//! - `Cgroup::create_and_join(&self, pid: i32, resources: Option<&LinuxResources>) -> Result<()>`
//! - `Cgroup::delete(&self) -> Result<()>`, `Cgroup::kill_all(&self, signal: i32) -> Result<()>`,
//!   `Cgroup::pids(&self) -> Result<Vec<i32>>`.
//! `Cgroup` is `Serialize + Deserialize`: it is stored in the container's state.json.
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cgroup {}: {reason}", path.display())]
    Path { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Cgroup {
    pub path: PathBuf,
}

impl Cgroup {
    pub fn new(cgroups_path: Option<&Path>, id: &str, _systemd: bool) -> Result<Self, Error> {
        let path = cgroups_path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/berth").join(id));
        Ok(Cgroup { path })
    }

    pub fn create_and_join(&self, _pid: i32, _resources: Option<&LinuxResources>) -> Result<(), Error> {
        Ok(())
    }

    pub fn delete(&self) -> Result<(), Error> {
        Ok(())
    }

    pub fn kill_all(&self, _signal: i32) -> Result<(), Error> {
        Ok(())
    }

    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        Ok(Vec::new())
    }
}

// LEAD: temporary stand-ins so the crate builds until the cgroups engineer's versions land;
// replace them (same names and signatures).
impl Cgroup {
    pub fn freeze(&self) -> Result<(), Error> {
        Ok(())
    }
    pub fn thaw(&self) -> Result<(), Error> {
        Ok(())
    }
    pub fn is_frozen(&self) -> Result<bool, Error> {
        Ok(false)
    }
    pub fn stats(&self) -> Result<serde_json::Value, Error> {
        Ok(serde_json::json!({}))
    }
    pub fn oom_kill_count(&self) -> Result<u64, Error> {
        Ok(0)
    }
    pub fn update(&self, _r: &LinuxResources) -> Result<(), Error> {
        Ok(())
    }
    pub fn join(&self, _pid: i32) -> Result<(), Error> {
        Ok(())
    }
}
