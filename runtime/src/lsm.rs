//! AppArmor and SELinux requests (`process.apparmorProfile`, `process.selinuxLabel`,
//! `linux.mountLabel`, `exec --apparmor/--process-label`): applied where the LSM is enabled,
//! refused where it is not — never silently ignored.
use crate::procfs::Procfs;
use crate::{Error, Result};
use oci_spec::runtime::Process;

/// statfs f_type of selinuxfs.
const SELINUX_MAGIC: i64 = 0xf97c_ff8c;

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

pub fn selinux_enabled() -> bool {
    nix::sys::statfs::statfs("/sys/fs/selinux")
        .is_ok_and(|s| s.filesystem_type().0 == SELINUX_MAGIC)
}

/// Names of the fields a request came from: the config's, or `exec`'s flags.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub apparmor: &'static str,
    pub selinux: &'static str,
}

pub const CONFIG_FIELDS: Fields = Fields {
    apparmor: "process.apparmorProfile",
    selinux: "process.selinuxLabel",
};

pub const EXEC_FIELDS: Fields = Fields {
    apparmor: "--apparmor",
    selinux: "--process-label",
};

fn requested(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Refuse what this host's LSMs cannot honour (before anything is created).
pub fn check(process: &Process, mount_label: Option<&str>, fields: Fields) -> Result<()> {
    if let Some(p) = requested(process.apparmor_profile()) {
        if !apparmor_enabled() {
            return Err(Error::Spec(format!(
                "{}: apparmor profile {p:?} is specified, but AppArmor is not enabled on this host",
                fields.apparmor
            )));
        }
    }
    let selinux = [
        (fields.selinux, requested(process.selinux_label())),
        ("linux.mountLabel", mount_label.filter(|s| !s.is_empty())),
    ];
    for (field, label) in selinux {
        if label.is_some() && !selinux_enabled() {
            return Err(Error::Spec(format!(
                "{field}: selinux label is specified, but selinux is disabled or not supported"
            )));
        }
    }
    Ok(())
}

/// What to write, relative to the procfs root, so that the next execve runs under the
/// requested profile and label: (file, contents).
pub fn exec_attrs(process: &Process, thread_self: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let file = format!("{thread_self}/attr/exec");
    if let Some(label) = requested(process.selinux_label()) {
        out.push((file.clone(), label.as_bytes().to_vec()));
    }
    if let Some(profile) = requested(process.apparmor_profile()) {
        let apparmor = format!("{thread_self}/attr/apparmor/exec");
        out.push((apparmor, format!("exec {profile}").into_bytes()));
    }
    out
}

/// Set the profile and label the user process will exec into (checked by `check` before).
pub fn apply(process: &Process) -> Result<()> {
    if requested(process.apparmor_profile()).is_none()
        && requested(process.selinux_label()).is_none()
    {
        return Ok(());
    }
    let proc = Procfs::open()?;
    for (file, value) in exec_attrs(process, &proc.thread_self()?) {
        proc.write(&file, &value)?;
    }
    Ok(())
}

/// The mount option that labels a new filesystem with `linux.mountLabel`.
pub fn mount_context(label: &str) -> String {
    format!("context=\"{label}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_written_for_a_profile_and_a_label() {
        let mut p = Process::default();
        assert!(exec_attrs(&p, "1/task/1").is_empty());
        p.set_apparmor_profile(Some("docker-default".into()));
        p.set_selinux_label(Some("system_u:system_r:container_t:s0".into()));
        let attrs = exec_attrs(&p, "1/task/7");
        assert_eq!(
            attrs,
            vec![
                (
                    "1/task/7/attr/exec".to_string(),
                    b"system_u:system_r:container_t:s0".to_vec()
                ),
                (
                    "1/task/7/attr/apparmor/exec".to_string(),
                    b"exec docker-default".to_vec()
                ),
            ]
        );
        assert_eq!(mount_context("a:b"), "context=\"a:b\"");
    }

    #[test]
    fn requests_are_refused_where_the_lsm_is_off() {
        let mut p = Process::default();
        assert!(check(&p, None, CONFIG_FIELDS).is_ok());
        p.set_apparmor_profile(Some("x".into()));
        if !apparmor_enabled() {
            let err = check(&p, None, CONFIG_FIELDS).unwrap_err().to_string();
            assert!(err.contains("process.apparmorProfile"), "{err}");
        }
        let p = Process::default();
        if !selinux_enabled() {
            let err = check(&p, Some("l"), EXEC_FIELDS).unwrap_err().to_string();
            assert!(err.contains("linux.mountLabel"), "{err}");
        }
    }
}
