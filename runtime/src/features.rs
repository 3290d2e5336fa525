//! `features`: what this runtime supports, as the runtime-spec Features document.
use serde_json::{json, Value};

pub fn document() -> Value {
    let caps: Vec<String> = caps::all()
        .iter()
        .map(|c| c.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut mount_options: Vec<&str> = crate::mounts::known_options().collect();
    mount_options.sort_unstable();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": oci_spec::runtime::VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": mount_options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": crate::seccomp::supported_actions(),
                "operators": crate::seccomp::supported_operators(),
                "archs": crate::seccomp::supported_archs(),
                "knownFlags": crate::seccomp::supported_flags(),
                "supportedFlags": crate::seccomp::supported_flags(),
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}},
        },
        "annotations": {
            "io.github.berth.runtime.version": env!("CARGO_PKG_VERSION"),
            "org.opencontainers.runc.checkpoint.enabled": "false",
        },
    })
}
