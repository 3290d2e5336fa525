//! Driving the daemon for a project through the Engine API (the CLI's client), with docker's
//! labels and names: the planner of `up` (desired containers per service against the
//! labelled ones: create, recreate on a config-hash or image change, keep, scale down),
//! dependency conditions, and `down`. Progress goes to a callback; nothing here prints.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};

use super::model::{Mount, Project, Service};
use super::{graph, hash, names};
use crate::cli::client::{self, Body, Client};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Client(#[from] client::Error),
    #[error("{0}")]
    Load(#[from] super::Error),
    #[error("{0}")]
    Failed(String),
}

type Result<T> = std::result::Result<T, Error>;

/// A container of the project, as listed by its labels.
#[derive(Debug, Clone)]
pub struct Existing {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub oneoff: bool,
    pub state: String,
    pub hash: String,
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub summary: Value,
}

/// `up`'s flags that the planner sees.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub force_recreate: bool,
    pub no_recreate: bool,
    pub no_start: bool,
    pub scale: BTreeMap<String, u32>,
    /// Services given on the command line start without waiting on conditions of others.
    pub no_deps: bool,
}

/// Progress: object kind, name, what happened (`Container`, `p-web-1`, `Started`).
pub type Report<'a> = &'a (dyn Fn(&str, &str, &str) + Sync);

pub struct Engine<'a> {
    pub client: &'a Client,
    pub project: &'a Project,
    pub report: Report<'a>,
}

fn encode(s: &str) -> String {
    crate::cli::commands::encode(s)
}

fn daemon(e: client::Error) -> Error {
    Error::Client(e)
}

impl<'a> Engine<'a> {
    fn filter_path(&self, extra: &[String]) -> String {
        let mut labels = vec![format!("{}={}", names::PROJECT, self.project.name)];
        labels.extend(extra.iter().cloned());
        let filters = json!({ "label": labels });
        encode(&filters.to_string())
    }

    /// The project's containers (one-off ones too), by number within each service.
    pub fn containers(&self, all: bool) -> Result<Vec<Existing>> {
        let path = format!(
            "/containers/json?all={}&filters={}",
            u8::from(all),
            self.filter_path(&[])
        );
        let list = self.client.get(&path)?.json()?;
        let mut out: Vec<Existing> = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| self.existing(c))
            .collect();
        out.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
        Ok(out)
    }

    fn existing(&self, c: &Value) -> Existing {
        let labels: BTreeMap<String, String> = c["Labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let name = c["Names"][0]
            .as_str()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string();
        let service = labels.get(names::SERVICE).cloned().unwrap_or_default();
        let number = labels
            .get(names::NUMBER)
            .and_then(|n| n.parse().ok())
            .or_else(|| names::number_from_name(&self.project.name, &service, &name))
            .unwrap_or(0);
        Existing {
            id: c["Id"].as_str().unwrap_or("").to_string(),
            name,
            number,
            oneoff: labels
                .get(names::ONEOFF)
                .is_some_and(|o| o.eq_ignore_ascii_case("true")),
            state: c["State"].as_str().unwrap_or("").to_string(),
            hash: labels.get(names::CONFIG_HASH).cloned().unwrap_or_default(),
            image_id: c["ImageID"].as_str().unwrap_or("").to_string(),
            service,
            labels,
            summary: c.clone(),
        }
    }

    /// The image a service runs: its `image`, or `P-S` for a built one.
    pub fn image_ref(&self, s: &Service) -> String {
        s.image
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.project.name, s.name))
    }

    /// The image's id, or `None` when the daemon does not have it.
    pub fn image_id(&self, reference: &str) -> Result<Option<String>> {
        match self
            .client
            .get(&format!("/images/{}/json", encode(reference)))
        {
            Ok(r) => Ok(r.json()?["Id"].as_str().map(String::from)),
            Err(client::Error::Daemon { status: 404, .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the networks the services use (external ones must exist).
    pub fn ensure_networks(&self, services: &BTreeSet<String>) -> Result<()> {
        let used: BTreeSet<&String> = services
            .iter()
            .filter_map(|s| self.project.services.get(s))
            .flat_map(|s| s.networks.keys())
            .collect();
        for key in used {
            let n = &self.project.networks[key];
            match self.client.get(&format!("/networks/{}", encode(&n.name))) {
                Ok(_) => continue,
                Err(client::Error::Daemon { status: 404, .. }) if n.external => {
                    return Err(Error::Failed(format!(
                        "network {} declared as external, but could not be found",
                        n.name
                    )))
                }
                Err(client::Error::Daemon { status: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let mut labels: serde_json::Map<String, Value> = n
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            labels.insert(names::PROJECT.into(), json!(self.project.name));
            labels.insert(names::NETWORK.into(), json!(key));
            labels.insert(names::VERSION.into(), json!(names::COMPOSE_VERSION));
            let mut body = json!({
                "Name": n.name,
                "CheckDuplicate": true,
                "Driver": n.driver.clone().unwrap_or_else(|| "bridge".into()),
                "Options": n.driver_opts,
                "Labels": labels,
                "Internal": n.internal,
                "Attachable": n.attachable,
            });
            if !n.ipam.is_empty() || n.ipam_driver.is_some() {
                let config: Vec<Value> = n
                    .ipam
                    .iter()
                    .map(|c| {
                        json!({"Subnet": c.subnet, "Gateway": c.gateway, "IPRange": c.ip_range,
                               "AuxiliaryAddresses": c.aux_addresses})
                    })
                    .collect();
                body["IPAM"] = json!({
                    "Driver": n.ipam_driver.clone().unwrap_or_else(|| "default".into()),
                    "Config": config,
                });
            }
            self.client
                .request(
                    "POST",
                    "/networks/create",
                    &[],
                    Body::Json(body.to_string().into_bytes()),
                )?
                .ok()?;
            (self.report)("Network", &n.name, "Created");
        }
        Ok(())
    }

    /// Creates the named volumes the services mount (external ones must exist).
    pub fn ensure_volumes(&self, services: &BTreeSet<String>) -> Result<()> {
        let used: BTreeSet<&String> = services
            .iter()
            .filter_map(|s| self.project.services.get(s))
            .flat_map(|s| s.volumes.iter())
            .filter(|m| m.kind == "volume")
            .filter_map(|m| m.source.as_ref())
            .collect();
        for key in used {
            let v = &self.project.volumes[key];
            match self.client.get(&format!("/volumes/{}", encode(&v.name))) {
                Ok(_) => continue,
                Err(client::Error::Daemon { status: 404, .. }) if v.external => {
                    return Err(Error::Failed(format!(
                        "external volume \"{}\" not found",
                        v.name
                    )))
                }
                Err(client::Error::Daemon { status: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let mut labels: serde_json::Map<String, Value> = v
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            labels.insert(names::PROJECT.into(), json!(self.project.name));
            labels.insert(names::VOLUME.into(), json!(key));
            labels.insert(names::VERSION.into(), json!(names::COMPOSE_VERSION));
            let body = json!({
                "Name": v.name,
                "Driver": v.driver.clone().unwrap_or_else(|| "local".into()),
                "DriverOpts": v.driver_opts,
                "Labels": labels,
            });
            self.client
                .request(
                    "POST",
                    "/volumes/create",
                    &[],
                    Body::Json(body.to_string().into_bytes()),
                )?
                .ok()?;
            (self.report)("Volume", &v.name, "Created");
        }
        Ok(())
    }

    fn labels(&self, s: &Service, number: u32, oneoff: bool) -> serde_json::Map<String, Value> {
        let mut labels: serde_json::Map<String, Value> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let files: Vec<String> = self
            .project
            .config_files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        let deps: Vec<String> = s
            .depends_on
            .iter()
            .map(|(n, d)| format!("{n}:{}:false", d.condition))
            .collect();
        for (k, v) in [
            (names::PROJECT, self.project.name.clone()),
            (names::SERVICE, s.name.clone()),
            (names::NUMBER, number.to_string()),
            (
                names::ONEOFF,
                if oneoff { "True" } else { "False" }.to_string(),
            ),
            (names::CONFIG_HASH, hash::config_hash(s)),
            (
                names::WORKING_DIR,
                self.project.working_dir.display().to_string(),
            ),
            (names::CONFIG_FILES, files.join(",")),
            (names::VERSION, names::COMPOSE_VERSION.to_string()),
            (names::IMAGE, self.image_ref(s)),
            (names::DEPENDS_ON, deps.join(",")),
        ] {
            labels.insert(k.into(), json!(v));
        }
        labels
    }

    /// Docker's create body for a container of `s`; `keep` are anonymous volumes of the
    /// container it replaces (target → volume name).
    pub fn create_body(
        &self,
        s: &Service,
        number: u32,
        oneoff: bool,
        keep: &BTreeMap<String, String>,
    ) -> Result<Value> {
        let env: Vec<String> = s
            .environment
            .iter()
            .filter_map(|(k, v)| {
                v.clone()
                    .or_else(|| std::env::var(k).ok())
                    .map(|v| format!("{k}={v}"))
            })
            .collect();
        let mut exposed = serde_json::Map::new();
        let mut bindings = serde_json::Map::new();
        for p in &s.ports {
            let key = format!("{}/{}", p.target, p.protocol);
            exposed.insert(key.clone(), json!({}));
            let list = bindings.entry(key).or_insert_with(|| json!([]));
            if let Some(a) = list.as_array_mut() {
                a.push(json!({"HostIp": p.host_ip.clone().unwrap_or_default(),
                              "HostPort": p.published.clone().unwrap_or_default()}));
            }
        }
        for e in &s.expose {
            let key = match e.contains('/') {
                true => e.clone(),
                false => format!("{e}/tcp"),
            };
            exposed.insert(key, json!({}));
        }
        let mut mounts: Vec<Value> = s.volumes.iter().map(|m| self.mount(m, keep)).collect();
        mounts.extend(self.file_mounts(s));
        let tmpfs: serde_json::Map<String, Value> = s
            .tmpfs
            .iter()
            .map(|t| match t.split_once(':') {
                Some((p, o)) => (p.to_string(), json!(o)),
                None => (t.clone(), json!("")),
            })
            .collect();
        let mut host = json!({
            "Mounts": mounts,
            "PortBindings": bindings,
            "NetworkMode": self.network_mode(s)?,
            "CapAdd": s.cap_add,
            "CapDrop": s.cap_drop,
            "Privileged": s.privileged,
            "ReadonlyRootfs": s.read_only,
            "Dns": s.dns,
            "DnsSearch": s.dns_search,
            "ExtraHosts": s.extra_hosts,
            "SecurityOpt": s.security_opt,
        });
        if !tmpfs.is_empty() {
            host["Tmpfs"] = Value::Object(tmpfs);
        }
        if !s.sysctls.is_empty() {
            host["Sysctls"] = json!(s.sysctls);
        }
        if let Some(init) = s.init {
            host["Init"] = json!(init);
        }
        if let Some(r) = &s.restart {
            let (name, count) = r.split_once(':').unwrap_or((r, "0"));
            host["RestartPolicy"] =
                json!({"Name": name, "MaximumRetryCount": count.parse::<i64>().unwrap_or(0)});
        }
        if let Some(l) = &s.logging {
            host["LogConfig"] =
                json!({"Type": l.driver.clone().unwrap_or_default(), "Config": l.options});
        }
        if !s.ulimits.is_empty() {
            let u: Vec<Value> = s
                .ulimits
                .iter()
                .map(|(n, (soft, hard))| json!({"Name": n, "Soft": soft, "Hard": hard}))
                .collect();
            host["Ulimits"] = json!(u);
        }
        if let Some(size) = s.shm_size {
            host["ShmSize"] = json!(size);
        }
        if !s.devices.is_empty() {
            let d: Vec<Value> = s
                .devices
                .iter()
                .map(|d| {
                    let parts: Vec<&str> = d.split(':').collect();
                    json!({"PathOnHost": parts[0],
                           "PathInContainer": parts.get(1).unwrap_or(&parts[0]),
                           "CgroupPermissions": parts.get(2).unwrap_or(&"rwm")})
                })
                .collect();
            host["Devices"] = json!(d);
        }
        if let Some(m) = s.memory {
            host["Memory"] = json!(m);
        }
        if let Some(c) = s.nano_cpus {
            host["NanoCpus"] = json!(c);
        }
        if let Some(p) = s.pids_limit {
            host["PidsLimit"] = json!(p);
        }
        let mut body = json!({
            "Image": self.image_ref(s),
            "Env": env,
            "Labels": self.labels(s, number, oneoff),
            "User": s.user.clone().unwrap_or_default(),
            "WorkingDir": s.working_dir.clone().unwrap_or_default(),
            "Hostname": s.hostname.clone().unwrap_or_default(),
            "Domainname": s.domainname.clone().unwrap_or_default(),
            "Tty": s.tty,
            "OpenStdin": s.stdin_open,
            "AttachStdout": true,
            "AttachStderr": true,
            "ExposedPorts": exposed,
            "HostConfig": host,
        });
        if let Some(c) = &s.command {
            body["Cmd"] = json!(c);
        }
        if let Some(e) = &s.entrypoint {
            body["Entrypoint"] = json!(e);
        }
        if let Some(sig) = &s.stop_signal {
            body["StopSignal"] = json!(sig);
        }
        if let Some(g) = s.stop_grace_period {
            body["StopTimeout"] = json!(g / 1_000_000_000);
        }
        if let Some(h) = &s.healthcheck {
            body["Healthcheck"] = match h.disable {
                true => json!({"Test": ["NONE"]}),
                false => json!({
                    "Test": h.test, "Interval": h.interval.unwrap_or(0),
                    "Timeout": h.timeout.unwrap_or(0), "Retries": h.retries.unwrap_or(0),
                    "StartPeriod": h.start_period.unwrap_or(0),
                }),
            };
        }
        if let Some((key, endpoint)) = s
            .networks
            .iter()
            .next()
            .filter(|_| s.network_mode.is_none())
        {
            let net = &self.project.networks[key].name;
            body["NetworkingConfig"] =
                json!({"EndpointsConfig": {net: self.endpoint(s, endpoint)}});
        }
        Ok(body)
    }

    fn endpoint(&self, s: &Service, e: &super::model::Endpoint) -> Value {
        let mut aliases = vec![s.name.clone()];
        aliases.extend(e.aliases.iter().cloned());
        let mut v = json!({ "Aliases": aliases });
        if let Some(ip) = &e.ipv4_address {
            v["IPAMConfig"] = json!({ "IPv4Address": ip });
        }
        v
    }

    fn network_mode(&self, s: &Service) -> Result<String> {
        match s.network_mode.as_deref() {
            Some(m) => match m.strip_prefix("service:") {
                Some(other) => {
                    let c = self
                        .containers(false)?
                        .into_iter()
                        .find(|c| c.service == other && !c.oneoff)
                        .ok_or_else(|| {
                            Error::Failed(format!(
                                "service {:?}: network_mode service:{other}: no running container of {other:?}",
                                s.name
                            ))
                        })?;
                    Ok(format!("container:{}", c.id))
                }
                None => Ok(m.to_string()),
            },
            None => {
                let key = s
                    .networks
                    .keys()
                    .next()
                    .map(String::as_str)
                    .unwrap_or("default");
                Ok(self.project.networks[key].name.clone())
            }
        }
    }

    fn mount(&self, m: &Mount, keep: &BTreeMap<String, String>) -> Value {
        let source = match (m.kind.as_str(), &m.source) {
            ("volume", Some(key)) => self
                .project
                .volumes
                .get(key)
                .map(|v| v.name.clone())
                .unwrap_or_else(|| key.clone()),
            ("volume", None) => keep.get(&m.target).cloned().unwrap_or_default(),
            (_, Some(s)) => s.clone(),
            (_, None) => String::new(),
        };
        let mut v = json!({"Type": m.kind, "Target": m.target, "ReadOnly": m.read_only});
        if !source.is_empty() {
            v["Source"] = json!(source);
        }
        if m.nocopy {
            v["VolumeOptions"] = json!({"NoCopy": true});
        }
        if let Some(size) = m.tmpfs_size {
            v["TmpfsOptions"] = json!({"SizeBytes": size});
        }
        if m.kind == "bind" {
            v["BindOptions"] = json!({"CreateMountpoint": true});
        }
        v
    }

    /// Secrets and configs: their files bound read-only at their targets (the loader
    /// refused references to anything but a `file:` source).
    fn file_mounts(&self, s: &Service) -> Vec<Value> {
        let secrets = s.secrets.iter().map(|r| (r, &self.project.secrets));
        let configs = s.configs.iter().map(|r| (r, &self.project.configs));
        secrets
            .chain(configs)
            .filter_map(|(r, objects)| {
                let file = objects.get(&r.source)?.file.as_ref()?;
                Some(json!({"Type": "bind", "Source": file, "Target": r.target, "ReadOnly": true}))
            })
            .collect()
    }

    /// Creates one container, connecting it to its further networks.
    pub fn create(
        &self,
        s: &Service,
        number: u32,
        name: &str,
        keep: &BTreeMap<String, String>,
    ) -> Result<String> {
        let body = self.create_body(s, number, false, keep)?;
        self.create_named(s, name, body)
    }

    pub fn create_named(&self, s: &Service, name: &str, body: Value) -> Result<String> {
        let created = self
            .client
            .request(
                "POST",
                &format!("/containers/create?name={}", encode(name)),
                &[],
                Body::Json(body.to_string().into_bytes()),
            )?
            .ok()
            .map_err(daemon)?
            .json()?;
        let id = created["Id"].as_str().unwrap_or("").to_string();
        if s.network_mode.is_none() {
            for (key, endpoint) in s.networks.iter().skip(1) {
                let net = &self.project.networks[key].name;
                let body = json!({"Container": id, "EndpointConfig": self.endpoint(s, endpoint)});
                self.client
                    .request(
                        "POST",
                        &format!("/networks/{}/connect", encode(net)),
                        &[],
                        Body::Json(body.to_string().into_bytes()),
                    )?
                    .ok()?;
            }
        }
        Ok(id)
    }

    pub fn start(&self, c: &str, name: &str) -> Result<()> {
        (self.report)("Container", name, "Starting");
        self.client.post(&format!("/containers/{c}/start"))?;
        (self.report)("Container", name, "Started");
        Ok(())
    }

    pub fn stop(&self, c: &Existing, timeout: Option<i64>) -> Result<()> {
        let t = timeout.or_else(|| {
            self.project
                .services
                .get(&c.service)
                .and_then(|s| s.stop_grace_period)
                .map(|g| g / 1_000_000_000)
        });
        (self.report)("Container", &c.name, "Stopping");
        let path = match t {
            Some(t) => format!("/containers/{}/stop?t={t}", c.id),
            None => format!("/containers/{}/stop", c.id),
        };
        match self.client.post(&path) {
            Ok(_) | Err(client::Error::Daemon { status: 304, .. }) => {}
            Err(e) => return Err(e.into()),
        }
        (self.report)("Container", &c.name, "Stopped");
        Ok(())
    }

    /// Sends `signal` to a running container (a stopped one is left as it is).
    pub fn kill(&self, c: &Existing, signal: &str) -> Result<()> {
        (self.report)("Container", &c.name, "Killing");
        let path = format!("/containers/{}/kill?signal={}", c.id, encode(signal));
        match self.client.post(&path) {
            Ok(_) | Err(client::Error::Daemon { status: 409, .. }) => {}
            Err(e) => return Err(e.into()),
        }
        (self.report)("Container", &c.name, "Killed");
        Ok(())
    }

    pub fn remove(&self, c: &Existing, volumes: bool) -> Result<()> {
        (self.report)("Container", &c.name, "Removing");
        self.client
            .request(
                "DELETE",
                &format!("/containers/{}?force=1&v={}", c.id, u8::from(volumes)),
                &[],
                Body::None,
            )?
            .ok()?;
        (self.report)("Container", &c.name, "Removed");
        Ok(())
    }

    /// Waits for the conditions `s` puts on its dependencies.
    pub fn wait_dependencies(&self, s: &Service) -> Result<()> {
        for (dep, d) in &s.depends_on {
            if d.condition == "service_started" || !self.project.services.contains_key(dep) {
                continue;
            }
            let containers: Vec<Existing> = self
                .containers(true)?
                .into_iter()
                .filter(|c| c.service == *dep && !c.oneoff)
                .collect();
            for c in containers {
                match d.condition.as_str() {
                    "service_healthy" => self.wait_healthy(&c)?,
                    _ => self.wait_completed(&c)?,
                }
            }
        }
        Ok(())
    }

    fn inspect(&self, id: &str) -> Result<Value> {
        Ok(self.client.get(&format!("/containers/{id}/json"))?.json()?)
    }

    pub fn wait_healthy(&self, c: &Existing) -> Result<()> {
        (self.report)("Container", &c.name, "Waiting");
        loop {
            let v = self.inspect(&c.id)?;
            let health = &v["State"]["Health"]["Status"];
            let test = &v["Config"]["Healthcheck"]["Test"];
            if !test.is_array() || test[0] == "NONE" {
                return Err(Error::Failed(format!(
                    "container {} has no healthcheck configured",
                    c.name
                )));
            }
            if health.is_null() && v["State"]["Running"] == true {
                return Err(Error::Failed(format!(
                    "container {} has a healthcheck, but the daemon reports no health status",
                    c.name
                )));
            }
            match health.as_str() {
                Some("healthy") => break,
                Some("unhealthy") => {
                    return Err(Error::Failed(format!(
                        "dependency failed to start: container {} is unhealthy",
                        c.name
                    )))
                }
                _ => {}
            }
            if v["State"]["Running"] == false {
                return Err(Error::Failed(format!(
                    "dependency failed to start: container {} exited ({})",
                    c.name, v["State"]["ExitCode"]
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        (self.report)("Container", &c.name, "Healthy");
        Ok(())
    }

    pub fn wait_completed(&self, c: &Existing) -> Result<()> {
        (self.report)("Container", &c.name, "Waiting");
        let v = self
            .client
            .post(&format!("/containers/{}/wait?condition=not-running", c.id))?
            .json()?;
        let code = v["StatusCode"].as_i64().unwrap_or(0);
        if code != 0 {
            return Err(Error::Failed(format!(
                "service {:?} didn't complete successfully: exit {code}",
                c.service
            )));
        }
        (self.report)("Container", &c.name, "Exited");
        Ok(())
    }

    /// Anonymous volumes of a container (target → volume name), to carry over on recreate.
    fn anonymous_volumes(&self, s: &Service, id: &str) -> Result<BTreeMap<String, String>> {
        let v = self.inspect(id)?;
        let anonymous: BTreeSet<&str> = s
            .volumes
            .iter()
            .filter(|m| m.kind == "volume" && m.source.is_none())
            .map(|m| m.target.as_str())
            .collect();
        Ok(v["Mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["Type"] == "volume")
            .filter_map(|m| {
                let target = m["Destination"].as_str()?;
                let name = m["Name"].as_str()?;
                anonymous
                    .contains(target)
                    .then(|| (target.to_string(), name.to_string()))
            })
            .collect())
    }

    /// Brings one service to its desired containers; returns those to start.
    pub fn converge(&self, s: &Service, opts: &UpOptions) -> Result<Vec<Existing>> {
        let desired = opts.scale.get(&s.name).copied().or(s.scale).unwrap_or(1);
        if s.container_name.is_some() && desired > 1 {
            return Err(Error::Failed(format!(
                "service {:?} has container_name {:?} and cannot be scaled to {desired}",
                s.name,
                s.container_name.as_deref().unwrap_or("")
            )));
        }
        let image_id = self.image_id(&self.image_ref(s))?.unwrap_or_default();
        let want_hash = hash::config_hash(s);
        let mut existing: Vec<Existing> = self
            .containers(true)?
            .into_iter()
            .filter(|c| c.service == s.name && !c.oneoff)
            .collect();
        existing.sort_by_key(|c| c.number);
        let mut out = Vec::new();
        while existing.len() > desired as usize {
            let c = existing.pop().expect("non-empty");
            self.stop(&c, None)?;
            self.remove(&c, false)?;
        }
        for c in existing.iter() {
            let changed = c.hash != want_hash || (!image_id.is_empty() && c.image_id != image_id);
            let recreate = !opts.no_recreate && (opts.force_recreate || changed);
            if !recreate {
                if c.state != "running" {
                    out.push(c.clone());
                } else {
                    (self.report)("Container", &c.name, "Running");
                }
                continue;
            }
            out.push(self.recreate(s, c)?);
        }
        let used: BTreeSet<u32> = existing.iter().map(|c| c.number).collect();
        let mut next = 1;
        for _ in existing.len()..desired as usize {
            while used.contains(&next) || out.iter().any(|c| c.number == next) {
                next += 1;
            }
            let name = s
                .container_name
                .clone()
                .unwrap_or_else(|| names::container(&self.project.name, &s.name, next));
            (self.report)("Container", &name, "Creating");
            let id = self.create(s, next, &name, &BTreeMap::new())?;
            (self.report)("Container", &name, "Created");
            out.push(Existing {
                id,
                name,
                service: s.name.clone(),
                number: next,
                oneoff: false,
                state: "created".into(),
                hash: want_hash.clone(),
                image_id: image_id.clone(),
                labels: BTreeMap::new(),
                summary: Value::Null,
            });
            next += 1;
        }
        Ok(out)
    }

    /// A new container for `c` under a temporary name, then the old one stopped and
    /// removed and the new one renamed; anonymous volumes carry over.
    fn recreate(&self, s: &Service, c: &Existing) -> Result<Existing> {
        (self.report)("Container", &c.name, "Recreate");
        let keep = self.anonymous_volumes(s, &c.id)?;
        let short = &c.id[..c.id.len().min(12)];
        let temp = format!("{short}_{}", c.name);
        let id = self.create(s, c.number, &temp, &keep)?;
        self.stop(c, None)?;
        self.client
            .request(
                "DELETE",
                &format!("/containers/{}?force=1", c.id),
                &[],
                Body::None,
            )?
            .ok()?;
        let name = s
            .container_name
            .clone()
            .unwrap_or_else(|| names::container(&self.project.name, &s.name, c.number));
        self.client
            .post(&format!("/containers/{id}/rename?name={}", encode(&name)))?;
        (self.report)("Container", &name, "Recreated");
        Ok(Existing {
            id,
            name,
            state: "created".into(),
            ..c.clone()
        })
    }

    /// `up` after images are in place: networks, volumes, then each service in dependency
    /// order, waiting for the conditions on its dependencies before starting it.
    pub fn up(&self, selected: &BTreeSet<String>, opts: &UpOptions) -> Result<()> {
        self.ensure_networks(selected)?;
        self.ensure_volumes(selected)?;
        for name in graph::start_order(&self.project.services)? {
            if !selected.contains(&name) {
                continue;
            }
            let s = &self.project.services[&name];
            // Conditions first: a failed dependency leaves this service's containers unmade.
            if !opts.no_deps && !opts.no_start {
                self.wait_dependencies(s)?;
            }
            let to_start = self.converge(s, opts)?;
            if opts.no_start {
                continue;
            }
            for c in to_start {
                self.start(&c.id, &c.name)?;
            }
        }
        Ok(())
    }

    /// Containers of services no longer in the project.
    pub fn orphans(&self) -> Result<Vec<Existing>> {
        Ok(self
            .containers(true)?
            .into_iter()
            .filter(|c| {
                !self.project.services.contains_key(&c.service)
                    && !self.project.disabled.contains_key(&c.service)
            })
            .collect())
    }

    /// Stops and removes the project's containers (reverse dependency order), then its
    /// networks, and with `volumes` its named volumes.
    pub fn down(&self, volumes: bool, remove_orphans: bool, timeout: Option<i64>) -> Result<()> {
        let order = graph::start_order(&self.project.services)?;
        let all = self.containers(true)?;
        let mut ordered: Vec<&Existing> = Vec::new();
        for name in order.iter().rev() {
            ordered.extend(all.iter().filter(|c| &c.service == name));
        }
        let known = |c: &Existing| {
            self.project.services.contains_key(&c.service)
                || self.project.disabled.contains_key(&c.service)
        };
        ordered.extend(
            all.iter()
                .filter(|c| !self.project.services.contains_key(&c.service))
                .filter(|c| remove_orphans || known(c)),
        );
        let running: Vec<&Existing> = ordered
            .iter()
            .copied()
            .filter(|c| c.state == "running" || c.state == "paused")
            .collect();
        self.parallel(&running, |c| self.stop(c, timeout))?;
        let anonymous = match volumes {
            true => self.anonymous_of(&ordered)?,
            false => BTreeSet::new(),
        };
        self.parallel(&ordered, |c| self.remove(c, volumes))?;
        // Anonymous volumes a recreated container took over from its predecessor are
        // mounted by name, so `rm -v` keeps them: they go here.
        for name in anonymous {
            match self
                .client
                .request(
                    "DELETE",
                    &format!("/volumes/{}", encode(&name)),
                    &[],
                    Body::None,
                )?
                .ok()
            {
                Ok(_) | Err(client::Error::Daemon { status: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.remove_networks()?;
        if volumes {
            self.remove_volumes()?;
        }
        Ok(())
    }

    /// The anonymous volumes (labelled so by the daemon) the containers mount.
    fn anonymous_of(&self, containers: &[&Existing]) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for c in containers {
            let v = self.inspect(&c.id)?;
            for m in v["Mounts"].as_array().into_iter().flatten() {
                let Some(name) = m["Name"].as_str().filter(|_| m["Type"] == "volume") else {
                    continue;
                };
                let Ok(vol) = self.client.get(&format!("/volumes/{}", encode(name))) else {
                    continue;
                };
                let labels = &vol.json()?["Labels"];
                if labels.get(crate::volumes::ANONYMOUS_LABEL).is_some() {
                    out.insert(name.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Runs `f` on each container at once (stopping takes up to a grace period each);
    /// the first error wins.
    pub fn parallel(
        &self,
        items: &[&Existing],
        f: impl Fn(&Existing) -> Result<()> + Sync,
    ) -> Result<()> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = items.iter().map(|c| scope.spawn(|| f(c))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Failed("a worker thread panicked".into())))
                })
                .collect::<Result<Vec<()>>>()
        })?;
        Ok(())
    }

    fn remove_networks(&self) -> Result<()> {
        for n in self.project.networks.values().filter(|n| !n.external) {
            match self
                .client
                .request(
                    "DELETE",
                    &format!("/networks/{}", encode(&n.name)),
                    &[],
                    Body::None,
                )?
                .ok()
            {
                Ok(_) => (self.report)("Network", &n.name, "Removed"),
                Err(client::Error::Daemon { status: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn remove_volumes(&self) -> Result<()> {
        for v in self.project.volumes.values().filter(|v| !v.external) {
            match self
                .client
                .request(
                    "DELETE",
                    &format!("/volumes/{}", encode(&v.name)),
                    &[],
                    Body::None,
                )?
                .ok()
            {
                Ok(_) => (self.report)("Volume", &v.name, "Removed"),
                Err(client::Error::Daemon { status: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
