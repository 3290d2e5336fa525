//! The mount resolver: which volumes a container mounts, and where — from `-v NAME:/path`,
//! `Config.Volumes` (`-v /path` and the image's `VOLUME`s: anonymous unless something else is
//! mounted there), `--mount type=volume` and `--volumes-from`; and the HostConfig the spec
//! is built from, with each volume as a bind of its `_data`.
//!
//! [`plan`] is pure (names checked, anonymous names drawn, nothing made); the container
//! service then creates the volumes ([`super::VolumeService::create`]) once the rest of the
//! request is known to be good.
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::names;
use crate::containers::config::{self, Config, HostConfig};
use crate::containers::spec::mounts::check_mounts;

/// docker's `types.MountPoint` (inspect's `Mounts`), plus what berth needs to remember.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// `volume` or `bind`.
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub source: String,
    pub destination: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
    /// Fill an empty volume with the image's directory on first mount (not with `nocopy`).
    #[serde(rename = "BerthCopyUp", default)]
    pub copy_up: bool,
    /// Made for this container (anonymous): removed with it by `rm -v` / `--rm`.
    #[serde(rename = "BerthAnonymous", default)]
    pub anonymous: bool,
    /// Came with `--volumes-from` (a bind of the other container's source).
    #[serde(rename = "BerthInherited", default)]
    pub inherited: bool,
    /// Labels and driver options for a volume to create (`--mount` volume options).
    #[serde(skip)]
    pub create_labels: Option<BTreeMap<String, String>>,
    #[serde(skip)]
    pub create_options: Option<BTreeMap<String, String>>,
}

impl MountPoint {
    fn volume(name: String, destination: &str, mountpoint: &Path) -> MountPoint {
        MountPoint {
            kind: "volume".into(),
            source: mountpoint.display().to_string(),
            name,
            destination: destination.to_string(),
            driver: super::local::DRIVER.into(),
            mode: String::new(),
            rw: true,
            propagation: String::new(),
            copy_up: true,
            anonymous: false,
            inherited: false,
            create_labels: None,
            create_options: None,
        }
    }

    /// The `Binds` entry that mounts it (`SOURCE:DEST[:ro][,propagation]`).
    fn as_bind(&self) -> String {
        let mut opts = Vec::new();
        if !self.rw {
            opts.push("ro");
        }
        if !self.propagation.is_empty() {
            opts.push(&self.propagation);
        }
        if opts.is_empty() {
            format!("{}:{}", self.source, self.destination)
        } else {
            format!("{}:{}:{}", self.source, self.destination, opts.join(","))
        }
    }
}

/// A request's mounts docker refuses, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Invalid(String),
    #[error("No such container: {0}")]
    NoContainer(String),
    /// docker's 404 for a volume driver it does not have.
    #[error("{0}")]
    NoDriver(String),
}

/// `/a/b/` → `/a/b` (docker compares destinations cleaned).
fn clean(dest: &str) -> String {
    crate::containers::spec::mounts::clean(dest)
}

fn check_name(name: &str) -> Result<(), PlanError> {
    if names::valid(name) {
        Ok(())
    } else {
        Err(PlanError::Invalid(format!(
            "create {name}: {}",
            names::invalid_message(name)
        )))
    }
}

/// The mount points of a container-to-be. `mountpoint(name)` is where a volume's data is;
/// `from(container)` gives another container's mount points (for `--volumes-from`).
pub fn plan(
    config: &Config,
    host: &HostConfig,
    mountpoint: &dyn Fn(&str) -> std::path::PathBuf,
    from: &dyn Fn(&str) -> Result<Vec<MountPoint>, PlanError>,
) -> Result<Vec<MountPoint>, PlanError> {
    // docker checks every --mount before it resolves any volume.
    check_mounts(host).map_err(|e| PlanError::Invalid(e.to_string()))?;
    let mut out: Vec<MountPoint> = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    // Host binds (`-v /a:/b`, `--mount type=bind`, `--tmpfs`) hold their destination.
    for spec in config::list(&host.binds) {
        let parts: Vec<&str> = spec.split(':').collect();
        if let [source, dest, rest @ ..] = parts.as_slice() {
            if source.starts_with('/') {
                taken.push(clean(dest));
                continue;
            }
            if rest.len() > 1 {
                return Err(PlanError::Invalid(format!(
                    "invalid volume specification: '{spec}'"
                )));
            }
            check_name(source)?;
            if !dest.starts_with('/') {
                return Err(PlanError::Invalid(format!(
                    "invalid volume specification: '{spec}': invalid mount config for type \"volume\": invalid mount path: '{dest}' mount path must be absolute"
                )));
            }
            let mut mp = MountPoint::volume(source.to_string(), &clean(dest), &mountpoint(source));
            mp.mode = rest.first().copied().unwrap_or("z").to_string();
            for opt in rest.first().copied().unwrap_or("").split(',') {
                match opt {
                    "ro" => mp.rw = false,
                    "nocopy" => mp.copy_up = false,
                    "" | "rw" | "z" | "Z" => {}
                    other => return Err(PlanError::Invalid(format!("invalid mode: {other}"))),
                }
            }
            taken.push(mp.destination.clone());
            out.push(mp);
        }
    }
    for m in config::list(&host.mounts) {
        if m.r#type != "volume" {
            taken.push(clean(&m.target));
            continue;
        }
        let anonymous = m.source.is_empty();
        let name = if anonymous {
            names::anonymous()
        } else {
            check_name(&m.source)?;
            m.source.clone()
        };
        let mut mp = MountPoint::volume(name.clone(), &clean(&m.target), &mountpoint(&name));
        mp.rw = !m.read_only;
        mp.mode = "z".into();
        mp.anonymous = anonymous;
        if let Some(o) = &m.volume_options {
            mp.copy_up = !o.no_copy;
            mp.create_labels = o.labels.clone();
            if let Some(d) = &o.driver_config {
                if !d.name.is_empty() && d.name != super::local::DRIVER {
                    return Err(PlanError::NoDriver(format!(
                        "create {name}: error looking up volume plugin {0}: plugin \"{0}\" not found",
                        d.name
                    )));
                }
                mp.create_options = d.options.clone();
            }
        }
        if taken.contains(&mp.destination) {
            return Err(PlanError::Invalid(format!(
                "Duplicate mount point: {}",
                mp.destination
            )));
        }
        taken.push(mp.destination.clone());
        out.push(mp);
    }
    if let Some(t) = &host.tmpfs {
        taken.extend(t.keys().map(|d| clean(d)));
    }
    for spec in config::list(&host.volumes_from) {
        let (container, mode) = match spec.split_once(':') {
            Some((c, m)) => (c, m),
            None => (spec.as_str(), ""),
        };
        let rw = match mode {
            "" | "rw" => None,
            "ro" => Some(false),
            other => {
                return Err(PlanError::Invalid(format!(
                    "invalid mode for volumes-from: {other}"
                )))
            }
        };
        for mut mp in from(container)? {
            if taken.contains(&mp.destination) {
                continue;
            }
            if let Some(rw) = rw {
                mp.rw = rw;
            }
            mp.anonymous = false;
            mp.inherited = true;
            mp.copy_up = false;
            taken.push(mp.destination.clone());
            out.push(mp);
        }
    }
    if let Some(volumes) = &config.volumes {
        for dest in volumes.keys() {
            let dest = clean(dest);
            if taken.contains(&dest) {
                continue;
            }
            let name = names::anonymous();
            let mut mp = MountPoint::volume(name.clone(), &dest, &mountpoint(&name));
            mp.anonymous = true;
            taken.push(dest);
            out.push(mp);
        }
    }
    Ok(out)
}

/// The HostConfig the spec is built from: named `-v` entries and `--mount type=volume`
/// replaced by binds of the volumes' data; host binds and other mounts as given.
pub fn effective(host: &HostConfig, points: &[MountPoint]) -> HostConfig {
    let mut h = host.clone();
    let mut binds: Vec<String> = config::list(&host.binds)
        .iter()
        .filter(|b| b.starts_with('/'))
        .cloned()
        .collect();
    binds.extend(
        points
            .iter()
            .filter(|p| p.kind == "volume" || p.inherited)
            .map(MountPoint::as_bind),
    );
    h.binds = Some(binds);
    h.mounts = host.mounts.as_ref().map(|ms| {
        ms.iter()
            .filter(|m| m.r#type != "volume")
            .cloned()
            .collect()
    });
    h
}

/// The bind mount points of the request (for inspect's `Mounts` and `--volumes-from`).
pub fn binds(host: &HostConfig) -> Vec<MountPoint> {
    let mut out = Vec::new();
    for spec in config::list(&host.binds) {
        let parts: Vec<&str> = spec.split(':').collect();
        if let [source, dest, rest @ ..] = parts.as_slice() {
            if !source.starts_with('/') {
                continue;
            }
            let mode = rest.first().copied().unwrap_or("");
            let opts: Vec<&str> = mode.split(',').collect();
            let propagation = opts
                .iter()
                .find(|o| o.contains("private") || o.contains("shared") || o.contains("slave"))
                .copied()
                .unwrap_or("rprivate");
            out.push(bind_point(
                source,
                dest,
                mode,
                !opts.contains(&"ro"),
                propagation,
            ));
        }
    }
    for m in config::list(&host.mounts) {
        if m.r#type == "bind" {
            let propagation = m
                .bind_options
                .as_ref()
                .map(|o| o.propagation.clone())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "rprivate".into());
            out.push(bind_point(
                &m.source,
                &m.target,
                "",
                !m.read_only,
                &propagation,
            ));
        }
    }
    out
}

fn bind_point(source: &str, dest: &str, mode: &str, rw: bool, propagation: &str) -> MountPoint {
    MountPoint {
        kind: "bind".into(),
        name: String::new(),
        source: source.to_string(),
        destination: clean(dest),
        driver: String::new(),
        mode: mode.to_string(),
        rw,
        propagation: propagation.to_string(),
        copy_up: false,
        anonymous: false,
        inherited: false,
        create_labels: None,
        create_options: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> (Config, HostConfig) {
        let req: config::CreateRequest = serde_json::from_value(v).unwrap();
        (req.config, req.host_config)
    }

    fn mp(name: &str) -> std::path::PathBuf {
        Path::new("/vols").join(name).join("_data")
    }

    fn none(c: &str) -> Result<Vec<MountPoint>, PlanError> {
        Err(PlanError::NoContainer(c.into()))
    }

    #[test]
    fn named_anonymous_and_image_volumes() {
        let (c, h) = parse(json!({
            "Image": "x",
            "Volumes": {"/anon": {}, "/data": {}, "/host": {}},
            "HostConfig": {
                "Binds": ["data:/data:ro,nocopy", "/h:/host"],
                "Mounts": [{"Type": "volume", "Target": "/m", "VolumeOptions": {"NoCopy": true}}]
            }
        }));
        let points = plan(&c, &h, &mp, &none).unwrap();
        let data = &points[0];
        assert_eq!(
            (data.name.as_str(), data.rw, data.copy_up),
            ("data", false, false)
        );
        assert_eq!(data.source, "/vols/data/_data");
        assert!(points[1].anonymous && points[1].destination == "/m" && !points[1].copy_up);
        let anon = &points[2];
        assert_eq!(anon.destination, "/anon");
        assert!(anon.anonymous && anon.copy_up && anon.name.len() == 64);
        assert_eq!(points.len(), 3, "/data and /host are taken: {points:?}");
        let eff = effective(&h, &points);
        let binds = eff.binds.unwrap();
        assert_eq!(binds[0], "/h:/host");
        assert_eq!(binds[1], "/vols/data/_data:/data:ro");
        assert!(eff.mounts.unwrap().is_empty());
    }

    #[test]
    fn bad_names_and_specs_are_refused() {
        let (c, h) = parse(json!({"Image": "x", "HostConfig": {"Binds": ["bad/name:/x"]}}));
        let e = plan(&c, &h, &mp, &none).unwrap_err().to_string();
        assert!(
            e.starts_with("create bad/name: \"bad/name\" includes invalid characters"),
            "{e}"
        );
        let (c, h) = parse(
            json!({"Image": "x", "HostConfig": {"Mounts": [{"Type": "volume", "Source": "v", "Target": "rel"}]}}),
        );
        let e = plan(&c, &h, &mp, &none).unwrap_err().to_string();
        assert_eq!(e, "invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute");
        let (c, h) = parse(json!({"Image": "x", "HostConfig": {"VolumesFrom": ["ghost"]}}));
        assert_eq!(
            plan(&c, &h, &mp, &none).unwrap_err().to_string(),
            "No such container: ghost"
        );
    }

    #[test]
    fn volumes_from_inherits_with_mode() {
        let (c, h) = parse(json!({"Image": "x", "HostConfig": {"VolumesFrom": ["other:ro"]}}));
        let theirs = |_: &str| Ok(vec![MountPoint::volume("v1".into(), "/d", &mp("v1"))]);
        let points = plan(&c, &h, &mp, &theirs).unwrap();
        assert_eq!(points.len(), 1);
        assert!(!points[0].rw && points[0].inherited && !points[0].anonymous);
        assert_eq!(
            effective(&h, &points).binds.unwrap(),
            vec!["/vols/v1/_data:/d:ro"]
        );
    }
}
