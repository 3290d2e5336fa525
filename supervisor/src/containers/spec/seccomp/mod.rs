//! Seccomp: profiles in docker's format (`--security-opt seccomp=<json>`, conditions on
//! capabilities, architecture and kernel), berth's built-in default with docker's allow-list
//! ([`default`]), and their rendering into the OCI `linux.seccomp` for one container.
mod default;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompOperator,
    LinuxSyscall,
};
use serde::Deserialize;

use super::{HostFacts, SpecError};
use crate::containers::config::null_default;
pub use default::profile as default_profile;

/// A profile as docker reads it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default, deserialize_with = "null_default")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "null_default")]
    pub architectures: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "null_default")]
    pub syscalls: Vec<Rule>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default, deserialize_with = "null_default")]
    pub sub_architectures: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default, deserialize_with = "null_default")]
    pub names: Vec<String>,
    /// The old single-name form.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    pub action: String,
    #[serde(default, deserialize_with = "null_default")]
    pub errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "null_default")]
    pub args: Vec<Arg>,
    #[serde(default, deserialize_with = "null_default")]
    pub includes: Filter,
    #[serde(default, deserialize_with = "null_default")]
    pub excludes: Filter,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub value_two: u64,
    pub op: String,
}

/// When a rule applies: all of `caps`, one of `arches`, a kernel of at least `min_kernel`
/// (includes); none of `caps`, none of `arches` (excludes).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, deserialize_with = "null_default")]
    pub caps: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub arches: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub min_kernel: Option<String>,
}

/// Parses a profile sent as `seccomp=<json>` (the docker CLI reads the file and sends it).
pub fn parse(json: &str) -> Result<Profile, SpecError> {
    serde_json::from_str(json).map_err(|e| SpecError::SeccompProfile(e.to_string()))
}

/// What the docker CLI sends for `--security-opt seccomp=FILE`: the file's JSON, compacted.
pub fn cli_option(value: &str) -> Result<String, SpecError> {
    if value == "unconfined" {
        return Ok("seccomp=unconfined".into());
    }
    let text = std::fs::read_to_string(value)
        .map_err(|e| SpecError::io("read seccomp profile", value, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| SpecError::SeccompProfile(format!("{value}: {e}")))?;
    Ok(format!("seccomp={json}"))
}

/// The OCI seccomp of a container with capabilities `caps` on `host`.
pub fn render(
    profile: &Profile,
    caps: &[&str],
    host: &HostFacts,
) -> Result<LinuxSeccomp, SpecError> {
    let mut syscalls = Vec::new();
    for rule in &profile.syscalls {
        if applies(rule, caps, host)? {
            syscalls.push(syscall(rule)?);
        }
    }
    let mut out = LinuxSeccomp::default();
    out.set_default_action(enum_of("defaultAction", &profile.default_action)?);
    out.set_default_errno_ret(profile.default_errno_ret);
    out.set_architectures(Some(architectures(profile, host.arch)?));
    out.set_syscalls(Some(syscalls));
    Ok(out)
}

/// The profile's architectures; with an `archMap`, only the host's native one and its subs.
fn architectures(profile: &Profile, arch: &str) -> Result<Vec<Arch>, SpecError> {
    let names: Vec<&String> = if profile.arch_map.is_empty() {
        profile.architectures.iter().collect()
    } else {
        let native = native_scmp_arch(arch);
        profile
            .arch_map
            .iter()
            .filter(|m| Some(m.architecture.as_str()) == native)
            .flat_map(|m| std::iter::once(&m.architecture).chain(&m.sub_architectures))
            .collect()
    };
    names
        .into_iter()
        .map(|a| enum_of("architectures", a))
        .collect()
}

/// Go architecture name → libseccomp's name of the native architecture.
fn native_scmp_arch(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "SCMP_ARCH_X86_64",
        "386" => "SCMP_ARCH_X86",
        "arm64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "loong64" => "SCMP_ARCH_LOONGARCH64",
        _ => return None,
    })
}

fn applies(rule: &Rule, caps: &[&str], host: &HostFacts) -> Result<bool, SpecError> {
    let inc = &rule.includes;
    let exc = &rule.excludes;
    if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == host.arch) {
        return Ok(false);
    }
    if !inc.caps.iter().all(|c| caps.contains(&c.as_str())) {
        return Ok(false);
    }
    if let Some(min) = &inc.min_kernel {
        let want = super::host::kernel_version(min);
        if want == (0, 0) {
            return Err(SpecError::SeccompProfile(format!("minKernel {min:?}")));
        }
        if host.kernel < want {
            return Ok(false);
        }
    }
    if exc.arches.iter().any(|a| a == host.arch)
        || exc.caps.iter().any(|c| caps.contains(&c.as_str()))
    {
        return Ok(false);
    }
    Ok(true)
}

fn syscall(rule: &Rule) -> Result<LinuxSyscall, SpecError> {
    let mut names = rule.names.clone();
    if !rule.name.is_empty() {
        names.push(rule.name.clone());
    }
    if names.is_empty() {
        return Err(SpecError::SeccompProfile(
            "a syscall rule has no names".into(),
        ));
    }
    let args = rule
        .args
        .iter()
        .map(|a| {
            let mut arg = LinuxSeccompArgBuilder::default()
                .index(a.index as usize)
                .value(a.value)
                .op(enum_of::<LinuxSeccompOperator>("op", &a.op)?);
            if a.value_two != 0 {
                arg = arg.value_two(a.value_two);
            }
            Ok(arg.build()?)
        })
        .collect::<Result<Vec<_>, SpecError>>()?;
    let mut out = LinuxSyscall::default();
    out.set_names(names);
    out.set_action(enum_of::<LinuxSeccompAction>("action", &rule.action)?);
    out.set_errno_ret(rule.errno_ret);
    out.set_args(Some(args).filter(|a| !a.is_empty()));
    Ok(out)
}

/// An OCI enum from its JSON spelling, or an error naming the field and value.
fn enum_of<T: serde::de::DeserializeOwned>(field: &str, value: &str) -> Result<T, SpecError> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| SpecError::SeccompProfile(format!("{field} {value:?} is not known")))
}

#[cfg(test)]
mod tests;
