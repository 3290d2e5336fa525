//! The shim's record of a container and its processes.
use std::collections::HashMap;
use std::path::PathBuf;

use berth_proto::protobuf::well_known_types::timestamp::Timestamp;
use berth_proto::types::task::Status;

use crate::runtime::Runtime;
use crate::stdio::{Io, StdioPaths};

/// The init process or one exec.
pub struct Process {
    /// Empty for the init process.
    pub exec_id: String,
    pub pid: i32,
    pub status: Status,
    pub exit_status: u32,
    pub exited_at: Option<Timestamp>,
    pub stdio: StdioPaths,
    pub io: Io,
    /// The OCI process (JSON) of an exec, until it is started.
    pub spec: Vec<u8>,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioPaths) -> Process {
        Process {
            exec_id: exec_id.to_owned(),
            pid: 0,
            status: Status::CREATED,
            exit_status: 0,
            exited_at: None,
            stdio,
            io: Io::default(),
            spec: Vec::new(),
        }
    }

    pub fn exited(&self) -> bool {
        self.status == Status::STOPPED
    }
}

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: Runtime,
    pub init: Process,
    pub execs: HashMap<String, Process>,
    /// The rootfs the shim mounted (from the Create request), unmounted on Delete.
    pub rootfs_mounted: bool,
    /// The init's exit, held back until every exec's exit was published.
    pub pending_init_exit: bool,
    /// No pid namespace of its own (the host's or a pod's): when the init exits, the
    /// processes it leaves are killed (`kill --all`), as the kernel does in a namespace of
    /// its own and runc-v2 does otherwise.
    pub kill_all_on_exit: bool,
    /// The init's `/proc/<pid>/cgroup`, read at create: stats outlive the init.
    pub cgroups: String,
    /// The OOM watch of the init's memory cgroup, made at create and started at start.
    pub oom: Option<crate::oom::Watch>,
}

impl Container {
    pub fn process(&self, exec_id: &str) -> Option<&Process> {
        if exec_id.is_empty() {
            Some(&self.init)
        } else {
            self.execs.get(exec_id)
        }
    }

    pub fn process_mut(&mut self, exec_id: &str) -> Option<&mut Process> {
        if exec_id.is_empty() {
            Some(&mut self.init)
        } else {
            self.execs.get_mut(exec_id)
        }
    }

    pub fn running_execs(&self) -> usize {
        self.execs
            .values()
            .filter(|p| p.pid != 0 && !p.exited())
            .count()
    }
}
