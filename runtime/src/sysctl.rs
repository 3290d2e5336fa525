//! `linux.sysctl`: only namespaced sysctls (runc's rules), written through a verified procfs
//! handle so that no mount or symlink in the rootfs can redirect a write to the host.
use crate::namespaces::{name, Plan};
use crate::procfs::Procfs;
use crate::{Error, Result};
use oci_spec::runtime::LinuxNamespaceType;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

/// The ipc namespace's sysctls besides `fs.mqueue.*`.
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The namespace a sysctl belongs to, or None when it is not namespaced (it is the host's).
fn namespace_of(key: &str) -> Option<LinuxNamespaceType> {
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// Refuse any sysctl that is not in a namespace of the container's own.
pub fn validate(sysctls: &HashMap<String, String>, plan: &Plan) -> Result<()> {
    let mut keys: Vec<&String> = sysctls.keys().collect();
    keys.sort();
    for key in keys {
        let refuse = |why: String| Err(Error::Spec(format!("linux.sysctl: {key:?}: {why}")));
        if key.is_empty() || key.split(['.', '/']).any(|c| c.is_empty() || c == "..") {
            return refuse("not a sysctl name".into());
        }
        let Some(kind) = namespace_of(key) else {
            return refuse("not in a separate kernel namespace (it would change the host)".into());
        };
        if !plan.has(kind) || joins_host(plan, kind) {
            return refuse(format!(
                "is not allowed in the host's {} namespace",
                name(kind)
            ));
        }
    }
    Ok(())
}

/// The config joins (by path) the namespace the runtime itself is in.
fn joins_host(plan: &Plan, kind: LinuxNamespaceType) -> bool {
    let Some((_, path)) = plan.join.iter().find(|(k, _)| *k == kind) else {
        return false;
    };
    let ours = format!("/proc/self/ns/{}", name(kind));
    match (std::fs::metadata(path), std::fs::metadata(ours)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// The file under /proc of `key` (`net.ipv4.ip_forward` → `sys/net/ipv4/ip_forward`).
fn proc_path(key: &str) -> String {
    format!("sys/{}", key.replace('.', "/"))
}

/// Write every sysctl (already validated) through `proc`.
pub fn apply(sysctls: &HashMap<String, String>, proc: &Procfs) -> Result<()> {
    for (key, value) in sysctls {
        proc.write(&proc_path(key), value.as_bytes())
            .map_err(|e| Error::Other(format!("linux.sysctl: {key:?}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxNamespace;

    fn plan(kinds: &[LinuxNamespaceType]) -> Plan {
        let list: Vec<LinuxNamespace> = kinds
            .iter()
            .map(|k| {
                let mut n = LinuxNamespace::default();
                n.set_typ(*k);
                n
            })
            .collect();
        Plan::new(&list).unwrap()
    }

    fn check(key: &str, kinds: &[LinuxNamespaceType]) -> std::result::Result<(), String> {
        let map = HashMap::from([(key.to_string(), "1".to_string())]);
        validate(&map, &plan(kinds)).map_err(|e| e.to_string())
    }

    #[test]
    fn runc_rules() {
        use LinuxNamespaceType::*;
        assert!(check("kernel.shmmax", &[Ipc]).is_ok());
        assert!(check("fs.mqueue.msg_max", &[Ipc]).is_ok());
        assert!(check("net.ipv4.ip_forward", &[Network]).is_ok());
        assert!(check("kernel.domainname", &[Uts]).is_ok());
        let err = check("kernel.shmmax", &[Network]).unwrap_err();
        assert!(
            err.contains("\"kernel.shmmax\"") && err.contains("ipc"),
            "{err}"
        );
        let err = check("net.core.somaxconn", &[Ipc]).unwrap_err();
        assert!(err.contains("net namespace"), "{err}");
        assert!(check("kernel.hostname", &[Ipc]).is_err());
        let err = check("kernel.core_pattern", &[Ipc, Network, Uts]).unwrap_err();
        assert!(err.contains("kernel.core_pattern"), "{err}");
        assert!(check("net..ipv4", &[Network]).is_err());
        assert!(check("net.ipv4/../../kernel/core_pattern", &[Network]).is_err());
    }

    #[test]
    fn joining_the_hosts_namespace_is_not_private() {
        let mut n = LinuxNamespace::default();
        n.set_typ(LinuxNamespaceType::Network);
        n.set_path(Some("/proc/self/ns/net".into()));
        let p = Plan::new(&[n]).unwrap();
        let map = HashMap::from([("net.ipv4.ip_forward".to_string(), "1".to_string())]);
        assert!(validate(&map, &p).is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(proc_path("net.ipv4.ip_forward"), "sys/net/ipv4/ip_forward");
    }
}
