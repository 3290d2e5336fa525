//! Docker decodes request bodies into Go structs, so a field of the wrong JSON type is
//! refused before anything is done, in Go's words:
//! `json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type
//! string`. The tables name the fields of docker's structs and their Go types; a field not
//! named here is left to the service.
use serde_json::{Map, Value};

use super::ApiError;

/// How a Go type takes JSON.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int,
    /// `[]string`.
    StrList,
    /// `strslice.StrSlice`: a string or a list of strings.
    StrSlice,
    /// `map[string]string`.
    StrMap,
    /// Any object (a struct or a map of structs).
    Object,
    /// Any list.
    List,
}

use Kind::*;

/// `container.Config`, embedded in `ContainerConfigWrapper`.
const CONFIG: &[(&str, &str, Kind)] = &[
    ("Hostname", "string", Str),
    ("Domainname", "string", Str),
    ("User", "string", Str),
    ("AttachStdin", "bool", Bool),
    ("AttachStdout", "bool", Bool),
    ("AttachStderr", "bool", Bool),
    ("ExposedPorts", "nat.PortSet", Object),
    ("Tty", "bool", Bool),
    ("OpenStdin", "bool", Bool),
    ("StdinOnce", "bool", Bool),
    ("Env", "[]string", StrList),
    ("Cmd", "string", StrSlice),
    ("Healthcheck", "container.HealthConfig", Object),
    ("ArgsEscaped", "bool", Bool),
    ("Image", "string", Str),
    ("Volumes", "map[string]struct {}", Object),
    ("WorkingDir", "string", Str),
    ("Entrypoint", "string", StrSlice),
    ("NetworkDisabled", "bool", Bool),
    ("MacAddress", "string", Str),
    ("OnBuild", "[]string", StrList),
    ("Labels", "map[string]string", StrMap),
    ("StopSignal", "string", Str),
    ("StopTimeout", "int", Int),
    ("Shell", "string", StrSlice),
    ("HostConfig", "container.HostConfig", Object),
    ("NetworkingConfig", "network.NetworkingConfig", Object),
];

/// `container.HostConfig` (with its embedded `Resources`).
const HOST_CONFIG: &[(&str, &str, Kind)] = &[
    ("Binds", "[]string", StrList),
    ("ContainerIDFile", "string", Str),
    ("LogConfig", "container.LogConfig", Object),
    ("NetworkMode", "container.NetworkMode", Str),
    ("PortBindings", "nat.PortMap", Object),
    ("RestartPolicy", "container.RestartPolicy", Object),
    ("AutoRemove", "bool", Bool),
    ("VolumeDriver", "string", Str),
    ("VolumesFrom", "[]string", StrList),
    ("CapAdd", "string", StrSlice),
    ("CapDrop", "string", StrSlice),
    ("CgroupnsMode", "container.CgroupnsMode", Str),
    ("Dns", "[]string", StrList),
    ("DnsOptions", "[]string", StrList),
    ("DnsSearch", "[]string", StrList),
    ("ExtraHosts", "[]string", StrList),
    ("GroupAdd", "[]string", StrList),
    ("IpcMode", "container.IpcMode", Str),
    ("Cgroup", "container.CgroupSpec", Str),
    ("Links", "[]string", StrList),
    ("OomScoreAdj", "int", Int),
    ("PidMode", "container.PidMode", Str),
    ("Privileged", "bool", Bool),
    ("PublishAllPorts", "bool", Bool),
    ("ReadonlyRootfs", "bool", Bool),
    ("SecurityOpt", "[]string", StrList),
    ("StorageOpt", "map[string]string", StrMap),
    ("Tmpfs", "map[string]string", StrMap),
    ("UTSMode", "container.UTSMode", Str),
    ("UsernsMode", "container.UsernsMode", Str),
    ("ShmSize", "int64", Int),
    ("Sysctls", "map[string]string", StrMap),
    ("Runtime", "string", Str),
    ("Isolation", "container.Isolation", Str),
    ("CpuShares", "int64", Int),
    ("Memory", "int64", Int),
    ("NanoCpus", "int64", Int),
    ("CgroupParent", "string", Str),
    ("BlkioWeight", "uint16", Int),
    ("CpuPeriod", "int64", Int),
    ("CpuQuota", "int64", Int),
    ("CpuRealtimePeriod", "int64", Int),
    ("CpuRealtimeRuntime", "int64", Int),
    ("CpusetCpus", "string", Str),
    ("CpusetMems", "string", Str),
    ("Devices", "[]container.DeviceMapping", List),
    ("DeviceCgroupRules", "[]string", StrList),
    ("KernelMemory", "int64", Int),
    ("MemoryReservation", "int64", Int),
    ("MemorySwap", "int64", Int),
    ("MemorySwappiness", "int64", Int),
    ("OomKillDisable", "bool", Bool),
    ("PidsLimit", "int64", Int),
    ("Ulimits", "[]*units.Ulimit", List),
    ("Init", "bool", Bool),
    ("Mounts", "[]mount.Mount", List),
    ("MaskedPaths", "[]string", StrList),
    ("ReadonlyPaths", "[]string", StrList),
];

/// `types.ExecConfig`.
const EXEC_CONFIG: &[(&str, &str, Kind)] = &[
    ("User", "string", Str),
    ("Privileged", "bool", Bool),
    ("Tty", "bool", Bool),
    ("AttachStdin", "bool", Bool),
    ("AttachStderr", "bool", Bool),
    ("AttachStdout", "bool", Bool),
    ("Detach", "bool", Bool),
    ("DetachKeys", "string", Str),
    ("Env", "[]string", StrList),
    ("WorkingDir", "string", Str),
    ("Cmd", "[]string", StrList),
];

/// Checks a `POST /containers/create` body.
pub fn check_create(body: &Value) -> Result<(), ApiError> {
    check_struct(body, "ContainerConfigWrapper", "", CONFIG)?;
    if let Some(host) = body.get("HostConfig").filter(|h| h.is_object()) {
        check_struct(host, "HostConfig", "HostConfig.", HOST_CONFIG)?;
    }
    Ok(())
}

/// Checks a `POST /containers/{id}/exec` body.
pub fn check_exec(body: &Value) -> Result<(), ApiError> {
    check_struct(body, "ExecConfig", "", EXEC_CONFIG)
}

fn check_struct(
    value: &Value,
    go_struct: &str,
    prefix: &str,
    fields: &[(&str, &str, Kind)],
) -> Result<(), ApiError> {
    let Some(object) = value.as_object() else {
        if value.is_null() {
            return Ok(());
        }
        return Err(unmarshal(value, &format!("Go value of type {go_struct}")));
    };
    for (name, go_type, kind) in fields {
        // Go matches field names case-insensitively.
        if let Some(v) = field(object, name) {
            if let Some((wrong, go_type)) = mismatch(v, *kind, go_type) {
                let place = format!("Go struct field {go_struct}.{prefix}{name} of type {go_type}");
                return Err(unmarshal(wrong, &place));
            }
        }
    }
    Ok(())
}

fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .get(name)
        .or_else(|| {
            object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// The value Go chokes on and the type it names, if `v` does not fit.
fn mismatch<'a>(v: &'a Value, kind: Kind, go_type: &'a str) -> Option<(&'a Value, &'a str)> {
    let strings = |list: &'a Vec<Value>| list.iter().find(|e| !e.is_string() && !e.is_null());
    match (kind, v) {
        (Str, Value::String(_)) | (Bool, Value::Bool(_)) => None,
        (Int, Value::Number(n)) if n.is_i64() || n.is_u64() => None,
        (StrList, Value::Array(list)) => strings(list).map(|e| (e, "string")),
        (StrSlice, Value::String(_)) => None,
        (StrSlice, Value::Array(list)) => strings(list).map(|e| (e, "string")),
        (StrMap, Value::Object(map)) => map
            .values()
            .find(|e| !e.is_string() && !e.is_null())
            .map(|e| (e, "string")),
        (Object, Value::Object(_)) | (List, Value::Array(_)) => None,
        _ => Some((v, go_type)),
    }
}

/// `json: cannot unmarshal <kind> into <place>`, a 400.
fn unmarshal(v: &Value, place: &str) -> ApiError {
    let kind = match v {
        Value::String(_) => "string".to_string(),
        Value::Bool(_) => "bool".to_string(),
        Value::Array(_) => "array".to_string(),
        Value::Object(_) => "object".to_string(),
        Value::Number(n) if n.is_f64() => format!("number {n}"),
        _ => "number".to_string(),
    };
    ApiError::bad_request(format!("json: cannot unmarshal {kind} into {place}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(body: Value) -> String {
        check_create(&body).unwrap_err().message
    }

    #[test]
    fn wrong_types_get_gos_words() {
        // Each compared with dockerd 20.10's answer to the same body.
        assert_eq!(
            create(json!({"Image": 5})),
            "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string"
        );
        assert_eq!(
            create(json!({"Image": "busybox", "Env": "x"})),
            "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Env of type []string"
        );
        assert_eq!(
            create(json!({"Image": "busybox", "HostConfig": {"Memory": "x"}})),
            "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64"
        );
        assert_eq!(
            create(json!({"Image": "busybox", "Cmd": 5})),
            "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Cmd of type string"
        );
        assert_eq!(
            check_exec(&json!({"Cmd": 5})).unwrap_err().message,
            "json: cannot unmarshal number into Go struct field ExecConfig.Cmd of type []string"
        );
    }

    #[test]
    fn right_types_pass() {
        check_create(&json!({
            "Image": "busybox", "Cmd": "true", "Entrypoint": ["sh", "-c"], "Env": ["A=1"],
            "Labels": {"a": "b"}, "StopTimeout": 3, "Tty": false, "Healthcheck": null,
            "HostConfig": {"Memory": 1024, "Binds": ["/a:/b"], "NetworkMode": "none"},
        }))
        .unwrap();
        check_exec(&json!({"Cmd": ["ls"], "Tty": true})).unwrap();
    }
}
