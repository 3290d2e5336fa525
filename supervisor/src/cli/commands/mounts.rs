//! `run`/`create`'s `-v/--volume`, `--mount` and `--volumes-from`, turned into docker's
//! `HostConfig.Binds`/`Mounts`/`VolumesFrom` and `Config.Volumes` as docker's CLI does (a
//! `-v` with only a container path is an anonymous volume in `Config.Volumes`).
use clap::Args;
use serde_json::{json, Map, Value};

#[derive(Debug, Args, Clone, Default)]
pub struct MountArgs {
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long)]
    pub volumes_from: Vec<String>,
}

fn bool_value(flag: &str, key: &str, v: Option<&str>) -> anyhow::Result<bool> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        Some(other) => anyhow::bail!(
            "invalid argument {flag:?} for \"--mount\" flag: invalid value for {key}: {other}"
        ),
    }
}

/// One `--mount type=…,source=…,target=…[,readonly][,…]` as docker's `mount.Mount`.
pub fn parse_mount(spec: &str) -> anyhow::Result<Value> {
    let mut m = Map::new();
    let mut kind = "volume".to_string();
    let (mut bind, mut volume, mut tmpfs) = (Map::new(), Map::new(), Map::new());
    let mut driver_opts = Map::new();
    let mut labels = Map::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = || {
            value.ok_or_else(|| {
                anyhow::anyhow!(
                    "invalid argument {spec:?} for \"--mount\" flag: invalid field '{field}' must be a key=value pair"
                )
            })
        };
        match key.as_str() {
            "type" => kind = need()?.to_string(),
            "source" | "src" => {
                m.insert("Source".into(), json!(need()?));
            }
            "target" | "dst" | "destination" => {
                m.insert("Target".into(), json!(need()?));
            }
            "readonly" | "ro" => {
                m.insert("ReadOnly".into(), json!(bool_value(spec, &key, value)?));
            }
            "consistency" => {
                m.insert("Consistency".into(), json!(need()?));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), json!(need()?));
            }
            "bind-nonrecursive" => {
                bind.insert("NonRecursive".into(), json!(bool_value(spec, &key, value)?));
            }
            "volume-nocopy" => {
                volume.insert("NoCopy".into(), json!(bool_value(spec, &key, value)?));
            }
            "volume-driver" => {
                volume.insert("DriverConfig".into(), json!({"Name": need()?}));
            }
            "volume-opt" => {
                let (k, v) = need()?.split_once('=').unwrap_or((need()?, ""));
                driver_opts.insert(k.into(), json!(v));
            }
            "volume-label" => {
                let (k, v) = need()?.split_once('=').unwrap_or((need()?, ""));
                labels.insert(k.into(), json!(v));
            }
            "tmpfs-size" => {
                let size = super::containers::ram_in_bytes(need()?).map_err(|_| {
                    anyhow::anyhow!(
                        "invalid argument {spec:?} for \"--mount\" flag: invalid value for tmpfs-size: {}",
                        need().unwrap_or("")
                    )
                })?;
                tmpfs.insert("SizeBytes".into(), json!(size));
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(need()?, 8).map_err(|_| {
                    anyhow::anyhow!(
                        "invalid argument {spec:?} for \"--mount\" flag: invalid value for tmpfs-mode: {}",
                        need().unwrap_or("")
                    )
                })?;
                tmpfs.insert("Mode".into(), json!(mode));
            }
            _ => anyhow::bail!(
                "invalid argument {spec:?} for \"--mount\" flag: unexpected key '{key}' in '{field}'"
            ),
        }
    }
    if !driver_opts.is_empty() {
        let config = volume
            .entry("DriverConfig")
            .or_insert_with(|| json!({"Name": ""}));
        config["Options"] = Value::Object(driver_opts);
    }
    if !labels.is_empty() {
        volume.insert("Labels".into(), Value::Object(labels));
    }
    m.insert("Type".into(), json!(kind));
    for (key, options) in [
        ("BindOptions", bind),
        ("VolumeOptions", volume),
        ("TmpfsOptions", tmpfs),
    ] {
        if !options.is_empty() {
            m.insert(key.into(), Value::Object(options));
        }
    }
    Ok(Value::Object(m))
}

impl MountArgs {
    /// Fills the create request's `HostConfig.Binds`/`Mounts`/`VolumesFrom` and
    /// `Config.Volumes`.
    pub fn apply(&self, body: &mut Value) -> anyhow::Result<()> {
        let mut binds = Vec::new();
        let mut anonymous = Map::new();
        for v in &self.volume {
            if v.is_empty() {
                anyhow::bail!(
                    "invalid argument \"\" for \"-v, --volume\" flag: invalid empty volume spec"
                );
            }
            // Only a container path: an anonymous volume, as docker's CLI sends it.
            if v.starts_with('/') && !v.contains(':') {
                anonymous.insert(v.clone(), json!({}));
            } else {
                binds.push(json!(v));
            }
        }
        if !binds.is_empty() {
            body["HostConfig"]["Binds"] = json!(binds);
        }
        if !anonymous.is_empty() {
            body["Volumes"] = Value::Object(anonymous);
        }
        if !self.mount.is_empty() {
            let mounts = self
                .mount
                .iter()
                .map(|m| parse_mount(m))
                .collect::<anyhow::Result<Vec<_>>>()?;
            body["HostConfig"]["Mounts"] = json!(mounts);
        }
        if !self.volumes_from.is_empty() {
            body["HostConfig"]["VolumesFrom"] = json!(self.volumes_from);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_specs_as_docker_s_cli_sends_them() {
        assert_eq!(
            parse_mount("type=bind,source=/src,target=/dst,readonly,bind-propagation=rshared")
                .unwrap(),
            json!({"Type": "bind", "Source": "/src", "Target": "/dst", "ReadOnly": true,
                   "BindOptions": {"Propagation": "rshared"}})
        );
        assert_eq!(
            parse_mount("src=data,dst=/d,volume-nocopy,volume-opt=type=tmpfs").unwrap(),
            json!({"Type": "volume", "Source": "data", "Target": "/d",
                   "VolumeOptions": {"NoCopy": true, "DriverConfig": {"Name": "", "Options": {"type": "tmpfs"}}}})
        );
        assert_eq!(
            parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770").unwrap(),
            json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 1016}})
        );
        assert_eq!(
            parse_mount("type=bind,foo=bar").unwrap_err().to_string(),
            "invalid argument \"type=bind,foo=bar\" for \"--mount\" flag: unexpected key 'foo' in 'foo=bar'"
        );
        assert!(parse_mount("type")
            .unwrap_err()
            .to_string()
            .contains("must be a key=value pair"));
    }

    #[test]
    fn volumes_split_into_binds_and_anonymous_ones() {
        let a = MountArgs {
            volume: vec!["/data".into(), "named:/n:ro".into(), "/h:/c".into()],
            volumes_from: vec!["other:ro".into()],
            ..Default::default()
        };
        let mut body = json!({"HostConfig": {}});
        a.apply(&mut body).unwrap();
        assert_eq!(body["Volumes"], json!({"/data": {}}));
        assert_eq!(body["HostConfig"]["Binds"], json!(["named:/n:ro", "/h:/c"]));
        assert_eq!(body["HostConfig"]["VolumesFrom"], json!(["other:ro"]));
    }
}
