//! Loading and checking a bundle's `config.json`.
use crate::{Error, Result};
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

/// A bundle: its directory, its parsed `config.json`, and the absolute rootfs path.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Read `<dir>/config.json`; every error names the file and the line, column or field.
    pub fn load(dir: &Path) -> Result<Self> {
        let dir = std::fs::canonicalize(dir).map_err(|e| Error::io("bundle", dir, e))?;
        let config = dir.join("config.json");
        let text = std::fs::read(&config).map_err(|e| Error::io("read", &config, e))?;
        let spec = parse(&text).map_err(|e| Error::Spec(format!("{}: {e}", config.display())))?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::Spec(format!("{}: root: missing", config.display())))?;
        let rootfs = dir.join(root.path());
        check(&spec, &config)?;
        let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| Error::io("rootfs", &rootfs, e))?;
        if !rootfs.is_dir() {
            return Err(Error::Spec(format!(
                "rootfs {}: not a directory",
                rootfs.display()
            )));
        }
        Ok(Bundle { dir, spec, rootfs })
    }
}

/// Parse config.json text, naming the JSON path of a field of the wrong type.
pub fn parse(text: &[u8]) -> std::result::Result<Spec, String> {
    let spec: Spec = parse_json(text)?;
    // serde takes a struct from an array too (`"root": []`): refuse every object given as one.
    let given: serde_json::Value = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let read = serde_json::to_value(&spec).map_err(|e| e.to_string())?;
    match array_for_object(&given, &read, "") {
        Some(field) => Err(format!("field {field}: expected an object, got an array")),
        None => Ok(spec),
    }
}

/// The first place where `given` has an array and `read` (the parsed value) an object.
fn array_for_object(
    given: &serde_json::Value,
    read: &serde_json::Value,
    path: &str,
) -> Option<String> {
    use serde_json::Value::{Array, Object};
    match (given, read) {
        (Array(_), Object(_)) => Some(path.to_string()),
        (Object(g), Object(r)) => g.iter().find_map(|(k, v)| {
            let sub = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            r.get(k).and_then(|rv| array_for_object(v, rv, &sub))
        }),
        (Array(g), Array(r)) => g
            .iter()
            .zip(r)
            .enumerate()
            .find_map(|(i, (gv, rv))| array_for_object(gv, rv, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Parse JSON into `T`; a field of the wrong type is named by its path (`process.args`),
/// a syntax error by its line and column.
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &[u8]) -> std::result::Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() || path.is_empty() || path == "." {
            inner.to_string()
        } else {
            format!("field {path}: {inner}")
        }
    })
}

/// Read a JSON document given on the command line (`--process`, `--resources`): a file, or
/// standard input for `-`. Errors name the file.
pub fn read_json_arg<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| Error::io("read", path, e))?;
        buf
    } else {
        std::fs::read(path).map_err(|e| Error::io("read", path, e))?
    };
    parse_json(&text).map_err(|e| Error::Spec(format!("{}: {e}", path.display())))
}

/// What the spec requires of a config before anything is created.
fn check(spec: &Spec, config: &Path) -> Result<()> {
    let bad = |msg: String| Err(Error::Spec(format!("{}: {msg}", config.display())));
    let Some(process) = spec.process() else {
        return bad("process: missing".into());
    };
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return bad("process.args: must not be empty".into());
    }
    for (field, list) in [
        ("process.args", process.args()),
        ("process.env", process.env()),
    ] {
        if let Some(i) = list.iter().flatten().position(|s| s.contains('\0')) {
            return bad(format!("{field}[{i}]: contains a NUL byte"));
        }
    }
    if !process.cwd().is_absolute() {
        return bad(format!("process.cwd: {:?} is not absolute", process.cwd()));
    }
    let Some(linux) = spec.linux() else {
        return bad("linux: missing".into());
    };
    if let Some(rdt) = linux.intel_rdt() {
        return bad(intel_rdt_problem(rdt));
    }
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    if seccomp.is_some_and(|s| crate::seccomp::uses_notify(s) && s.listener_path().is_none()) {
        return bad(
            "linux.seccomp.listenerPath: required when an action is SCMP_ACT_NOTIFY".into(),
        );
    }
    if let Some(problem) = seccomp.and_then(crate::seccomp::notify_problem) {
        return bad(problem);
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return bad(format!(
                "mounts: destination {:?} is not absolute",
                m.destination()
            ));
        }
    }
    Ok(())
}

/// Why `linux.intelRdt` cannot be honoured: a closID that is not a plain name (it names a
/// directory under /sys/fs/resctrl), or no Intel RDT support at all — never ignored.
fn intel_rdt_problem(rdt: &oci_spec::runtime::LinuxIntelRdt) -> String {
    if let Some(id) = rdt.clos_id() {
        if id.is_empty() || id == "." || id == ".." || id.contains('/') {
            return format!("linux.intelRdt.closID: {id:?} is not a valid name");
        }
    }
    "linux.intelRdt: Intel RDT is not supported by this runtime".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_the_field() {
        let err = parse(
            br#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":5,"user":{"uid":0,"gid":0}}}"#,
        )
        .unwrap_err();
        assert!(err.contains("field process.args"), "{err}");
        let err = parse(br#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"bogus"}]}}"#)
            .unwrap_err();
        assert!(err.contains("linux.namespaces"), "{err}");
    }

    #[test]
    fn objects_given_as_arrays_are_refused() {
        let err = parse(br#"{"ociVersion":"1.0.2","root":[]}"#).unwrap_err();
        assert!(err.contains("field root: expected an object"), "{err}");
        let err =
            parse(br#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":[0,0]}}"#).unwrap_err();
        assert!(err.contains("field process.user"), "{err}");
        assert!(parse(br#"{"ociVersion":"1.0.2","root":{"path":"r"}}"#).is_ok());
    }

    #[test]
    fn notify_needs_a_listener_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let mut spec: serde_json::Value = serde_json::to_value(Spec::default()).unwrap();
        spec["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
        std::fs::write(dir.path().join("config.json"), spec.to_string()).unwrap();
        let err = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("listenerPath"), "{err}");
        spec["linux"]["seccomp"]["listenerPath"] = serde_json::json!("/run/agent.sock");
        std::fs::write(dir.path().join("config.json"), spec.to_string()).unwrap();
        assert!(Bundle::load(dir.path()).is_ok());
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = parse(b"{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": {\n").unwrap_err();
        assert!(err.contains("line 4"), "{err}");
        assert!(!err.contains("field"), "{err}");
    }

    #[test]
    fn load_checks_bundle_rootfs_and_process() {
        let dir = tempfile::tempdir().unwrap();
        let err = Bundle::load(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
        let mut spec = Spec::default();
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let err = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("rootfs"), "{err}");
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        assert!(Bundle::load(dir.path()).is_ok());
        spec.set_process(None);
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let err = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("process: missing"), "{err}");
    }
}
