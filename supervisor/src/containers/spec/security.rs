//! `--security-opt`: `seccomp=unconfined|<profile json>`, `no-new-privileges[=true|false]`,
//! `systempaths=unconfined`; `label` and `apparmor` are accepted and have no effect (this
//! host has neither SELinux nor AppArmor).
use super::seccomp::{self, Profile};
use super::SpecError;

#[derive(Debug, Clone, PartialEq)]
pub enum Seccomp {
    Default,
    Unconfined,
    Custom(Profile),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecurityOpts {
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
    /// `systempaths=unconfined`: no masked or read-only paths.
    pub unconfined_paths: bool,
}

/// Parses docker's `SecurityOpt` list (`key=value`, or the old `key:value`).
pub fn parse(opts: &[String]) -> Result<SecurityOpts, SpecError> {
    let mut out = SecurityOpts {
        seccomp: Seccomp::Default,
        no_new_privileges: false,
        unconfined_paths: false,
    };
    for opt in opts {
        let (key, value) = match opt.split_once('=') {
            Some(kv) => kv,
            None => opt.split_once(':').unwrap_or((opt.as_str(), "")),
        };
        match (key, value) {
            ("no-new-privileges", "" | "true") => out.no_new_privileges = true,
            ("no-new-privileges", "false") => out.no_new_privileges = false,
            ("seccomp", "unconfined") => out.seccomp = Seccomp::Unconfined,
            ("seccomp", v) if v.trim_start().starts_with('{') => {
                out.seccomp = Seccomp::Custom(seccomp::parse(v)?)
            }
            ("systempaths", "unconfined") => out.unconfined_paths = true,
            ("label" | "apparmor", v) if !v.is_empty() => {}
            _ => return Err(SpecError::SecurityOpt(opt.clone())),
        }
    }
    Ok(out)
}
