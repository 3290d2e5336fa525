//! Linux namespaces: which to create, which to join by path.
use crate::{Error, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub fn flag(kind: LinuxNamespaceType) -> CloneFlags {
    match kind {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

pub fn name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The namespaces of a config, split into those to create and those to join.
#[derive(Debug)]
pub struct Plan {
    /// Created by clone(2) itself (everything new except cgroup and time, which the init
    /// unshares once it sits in its cgroup).
    pub clone_flags: CloneFlags,
    /// Unshared by the init after its parent finished (cgroup, time).
    pub late_flags: CloneFlags,
    /// Joined by the init right after clone, user namespace first.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// The pid namespace to join, entered by the parent before clone.
    pub join_pid: Option<PathBuf>,
    pub new_user: bool,
    pub new_pid: bool,
    pub new_mount: bool,
    pub new_uts: bool,
    pub new_net: bool,
}

impl Plan {
    pub fn new(namespaces: &[LinuxNamespace]) -> Result<Self> {
        let mut plan = Plan {
            clone_flags: CloneFlags::empty(),
            late_flags: CloneFlags::empty(),
            join: Vec::new(),
            join_pid: None,
            new_user: false,
            new_pid: false,
            new_mount: false,
            new_uts: false,
            new_net: false,
        };
        let mut seen = CloneFlags::empty();
        for ns in namespaces {
            let kind = ns.typ();
            if seen.contains(flag(kind)) {
                return Err(Error::Spec(format!(
                    "linux.namespaces: {} listed twice",
                    name(kind)
                )));
            }
            seen |= flag(kind);
            match ns.path() {
                Some(path) if kind == LinuxNamespaceType::Pid => plan.join_pid = Some(path.clone()),
                Some(path) => plan.join.push((kind, path.clone())),
                None => match kind {
                    LinuxNamespaceType::Cgroup | LinuxNamespaceType::Time => {
                        plan.late_flags |= flag(kind)
                    }
                    _ => plan.clone_flags |= flag(kind),
                },
            }
        }
        // Join the user namespace first, so the others are entered with its privileges.
        plan.join
            .sort_by_key(|(kind, _)| *kind != LinuxNamespaceType::User);
        plan.new_user = plan.clone_flags.contains(CloneFlags::CLONE_NEWUSER);
        plan.new_pid = plan.clone_flags.contains(CloneFlags::CLONE_NEWPID);
        plan.new_mount = plan.clone_flags.contains(CloneFlags::CLONE_NEWNS);
        plan.new_uts = plan.clone_flags.contains(CloneFlags::CLONE_NEWUTS);
        plan.new_net = plan.clone_flags.contains(CloneFlags::CLONE_NEWNET);
        // A joined user namespace must own the new ones: create them after joining.
        if plan
            .join
            .iter()
            .any(|(k, _)| *k == LinuxNamespaceType::User)
        {
            plan.late_flags |= plan.clone_flags - CloneFlags::CLONE_NEWPID;
            plan.clone_flags &= CloneFlags::CLONE_NEWPID;
        }
        Ok(plan)
    }

    pub fn has(&self, kind: LinuxNamespaceType) -> bool {
        self.clone_flags.contains(flag(kind))
            || self.late_flags.contains(flag(kind))
            || self.join.iter().any(|(k, _)| *k == kind)
            || (kind == LinuxNamespaceType::Pid && self.join_pid.is_some())
    }

    /// Every path to join must be a namespace of its kind: checked before anything is made,
    /// so that the error names the field and the path.
    pub fn check_paths(&self) -> Result<()> {
        let pid = self.join_pid.iter().map(|p| (LinuxNamespaceType::Pid, p));
        for (kind, path) in self.join.iter().map(|(k, p)| (*k, p)).chain(pid) {
            let bad = |why: String| {
                Error::Spec(format!(
                    "linux.namespaces: {} path {}: {why}",
                    name(kind),
                    path.display()
                ))
            };
            let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
            // NS_GET_NSTYPE: the CLONE_NEW* flag of the namespace the file is.
            let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&file), 0xb703) };
            if r < 0 || r != flag(kind).bits() {
                return Err(bad(format!("not a {} namespace", name(kind))));
            }
        }
        Ok(())
    }

    /// Open every namespace to join, before any of them changes what paths mean.
    pub fn open_joins(&self) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
        self.join
            .iter()
            .map(|(kind, path)| open_ns(path).map(|fd| (*kind, fd)))
            .collect()
    }
}

pub fn open_ns(path: &std::path::Path) -> Result<OwnedFd> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| Error::io("open namespace", path, e))
}

pub fn enter(kind: LinuxNamespaceType, fd: &OwnedFd) -> Result<()> {
    nix::sched::setns(fd, flag(kind)).map_err(|e| Error::sys("setns", name(kind), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(kind: LinuxNamespaceType, path: Option<&str>) -> LinuxNamespace {
        let mut n = LinuxNamespace::default();
        n.set_typ(kind);
        n.set_path(path.map(PathBuf::from));
        n
    }

    #[test]
    fn new_namespaces_go_to_clone_and_late_ones_wait() {
        let plan = Plan::new(&[
            ns(LinuxNamespaceType::Mount, None),
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Cgroup, None),
            ns(LinuxNamespaceType::Network, Some("/proc/1/ns/net")),
        ])
        .unwrap();
        assert_eq!(
            plan.clone_flags,
            CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID
        );
        assert_eq!(plan.late_flags, CloneFlags::CLONE_NEWCGROUP);
        assert_eq!(plan.join.len(), 1);
        assert!(plan.has(LinuxNamespaceType::Network));
    }

    #[test]
    fn joined_user_namespace_owns_the_new_ones() {
        let plan = Plan::new(&[
            ns(LinuxNamespaceType::Mount, None),
            ns(LinuxNamespaceType::Uts, None),
            ns(LinuxNamespaceType::Ipc, Some("/proc/1/ns/ipc")),
            ns(LinuxNamespaceType::User, Some("/proc/1/ns/user")),
        ])
        .unwrap();
        assert_eq!(
            plan.join[0].0,
            LinuxNamespaceType::User,
            "user namespace is joined first"
        );
        assert!(plan.clone_flags.is_empty());
        assert_eq!(
            plan.late_flags,
            CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS
        );
    }

    #[test]
    fn refuses_duplicates() {
        let dup = Plan::new(&[
            ns(LinuxNamespaceType::Mount, None),
            ns(LinuxNamespaceType::Mount, None),
        ]);
        assert!(dup.unwrap_err().to_string().contains("mnt listed twice"));
    }
}
