//! Running a Dockerfile, step by step, as docker's classic builder does: each step's result
//! is an image (found again by the cache), RUN steps are containers, COPY/ADD write into a
//! fresh snapshot of the parent; the client sees docker's JSON stream.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::checksum::Checksum;
use super::commit::{self, Layer, Step};
use super::context::{self, Context, Source};
use super::instructions as ins;
use super::lex::{self, Vars};
use super::parser::{self, Args, Instruction};
use super::{cache, mountpoints, run_mount, sweep, BuildError};
use crate::containers::config::Config;
use crate::containers::service::{random_hex, ContainerService};
use crate::images::layer::{self, at};
use crate::images::reference::Reference;
use crate::images::registry::Credentials;
use crate::images::service::{short_image_id, Image, ImageService};
use crate::images::snapshot::{self, chain_ids};

/// What the client asked for (`POST /build`'s query).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub dockerfile: String,
    pub tags: Vec<String>,
    /// `--build-arg`: a value, or None for one the client had no value for.
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub quiet: bool,
    /// Remove intermediate containers after a successful step (docker's default).
    pub remove: bool,
    /// Remove them after a failed step too.
    pub force_remove: bool,
    pub target: String,
    /// `--pull`: base images are pulled even when they are here.
    pub pull: bool,
    /// `--platform`: the platform base images are pulled for (empty: this host's).
    pub platform: String,
    /// docker's `HostConfig` keys for the RUN steps' containers (`--network`,
    /// `--add-host`, `--memory`, `--shm-size`, `--ulimit`, …).
    pub host_config: Value,
    /// `X-Registry-Config`: credentials per registry, for base image pulls.
    pub registry_auth: BTreeMap<String, Credentials>,
}

/// Proxy arguments usable without an ARG, as docker's.
const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Builds the image from the context tar `input`; docker's stream lines go to `out`
/// (`{"stream": …}`, `{"aux": {"ID": …}}`). Returns the image ID; tags are set.
pub async fn build(
    containers: Arc<ContainerService>,
    input: impl Read + Send + 'static,
    options: BuildOptions,
    out: mpsc::UnboundedSender<Value>,
) -> Result<String, BuildError> {
    let tags = options
        .tags
        .iter()
        .map(|t| {
            Reference::parse(t)
                .map_err(|_| BuildError::Invalid(format!("invalid reference format: {t}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let images = containers.images.clone();
    let work = images
        .options
        .data_root
        .join("tmp")
        .join(format!("build-{}", &random_hex()[..16]));
    let dir = work.join("context");
    let context = blocking(move || Context::extract(input, &dir)).await?;
    let mut builder = Builder {
        containers,
        images,
        options,
        out,
        work: work.clone(),
        context: Arc::new(context),
        escape: '\\',
        global: BTreeMap::new(),
        used: BTreeSet::new(),
        stages: Vec::new(),
        step: 0,
        total: 0,
    };
    let result = builder.run(&tags).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BuildError> + Send + 'static,
) -> Result<T, BuildError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(BuildError::Invalid(format!("build task panicked: {e}"))))
}

struct Builder {
    containers: Arc<ContainerService>,
    images: Arc<ImageService>,
    options: BuildOptions,
    out: mpsc::UnboundedSender<Value>,
    work: PathBuf,
    context: Arc<Context>,
    escape: char,
    /// ARGs before the first FROM, with their values.
    global: BTreeMap<String, Option<String>>,
    /// Build args some ARG consumed.
    used: BTreeSet<String>,
    /// Finished stages: name and image.
    stages: Vec<(Option<String>, Option<Image>)>,
    step: usize,
    total: usize,
}

/// The stage being built.
struct Stage {
    name: Option<String>,
    image: Option<Image>,
    meta: ins::Meta,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, Option<String>>,
}

impl Stage {
    fn parent_id(&self) -> String {
        self.image
            .as_ref()
            .map_or_else(|| "scratch".to_string(), |i| i.id.clone())
    }

    fn diff_ids(&self) -> Vec<String> {
        self.image.as_ref().map(Image::diff_ids).unwrap_or_default()
    }

    fn shell(&self) -> Vec<String> {
        self.meta.shell()
    }

    /// ENV over ARG, for substitution.
    fn vars(&self) -> Vars {
        let mut vars: Vars = self
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        vars.extend(ins::env_vars(&self.meta.config));
        vars
    }

    /// Build args a RUN sees (and records): declared, valued, not shadowed by ENV; sorted.
    fn run_args(&self) -> Vec<String> {
        let env = ins::env_vars(&self.meta.config);
        self.args
            .iter()
            .filter(|(k, _)| !env.contains_key(*k))
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect()
    }

    fn workdir(&self) -> &str {
        if self.meta.config.working_dir.is_empty() {
            "/"
        } else {
            &self.meta.config.working_dir
        }
    }
}

impl Builder {
    /// The secrets berth's CLI sent, taken out of the context.
    fn secrets(&self) -> PathBuf {
        self.work.join("secrets")
    }

    fn say(&self, text: impl Into<String>) {
        if !self.options.quiet {
            let _ = self.out.send(json!({ "stream": text.into() }));
        }
    }

    async fn run(&mut self, tags: &[Reference]) -> Result<String, BuildError> {
        let name = match self.options.dockerfile.as_str() {
            "" => "Dockerfile",
            other => other,
        }
        .to_string();
        let ctx = self.context.clone();
        let secrets = self.secrets();
        let text = blocking(move || {
            ctx.take_secrets(&secrets)?;
            let text = ctx.read_file(&name)?;
            ctx.drop_build_files(&name)?;
            Ok(text)
        })
        .await?;
        let dockerfile = parser::parse(&String::from_utf8_lossy(&text))?;
        self.escape = dockerfile.escape;
        let (globals, stages) = split_stages(&dockerfile.instructions)?;
        let stages = self.wanted(stages)?;
        self.total =
            globals.len() + stages.iter().map(Vec::len).sum::<usize>() + self.options.labels.len();
        for arg in &globals {
            self.begin(arg)?;
            let vars = self.global_vars();
            for (k, default) in ins::pairs(arg, &vars, self.escape)? {
                let value = self.arg_value(&k, default);
                self.global.insert(k, value);
            }
        }
        let count = stages.len();
        let mut last = None;
        for (i, instructions) in stages.into_iter().enumerate() {
            let mut stage = self.from(&instructions[0]).await?;
            self.triggers(&mut stage).await?;
            for instruction in &instructions[1..] {
                self.begin(instruction)?;
                self.dispatch(&mut stage, instruction).await?;
            }
            if i + 1 == count {
                let labels: Vec<(String, String)> = self
                    .options
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for (k, v) in labels {
                    self.step += 1;
                    self.say(format!(
                        "Step {}/{} : LABEL {k}={v}\n",
                        self.step, self.total
                    ));
                    stage
                        .meta
                        .config
                        .labels
                        .get_or_insert_with(Default::default)
                        .insert(k.clone(), v.clone());
                    self.nop(&mut stage, format!("LABEL {k}={v}")).await?;
                }
            }
            self.stages.push((stage.name.clone(), stage.image.clone()));
            last = stage.image;
        }
        let unused: Vec<&String> = self
            .options
            .build_args
            .keys()
            .filter(|k| !self.used.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.say(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                names.join(" ")
            ));
        }
        let image = last.ok_or_else(|| {
            BuildError::Invalid("No image was generated. Is your Dockerfile empty?".into())
        })?;
        let _ = self.out.send(json!({ "aux": { "ID": image.id } }));
        self.say(format!(
            "Successfully built {}\n",
            short_image_id(&image.id)
        ));
        for tag in tags {
            self.images
                .set_name(commit::record_for(&image, &tag.to_string()))?;
            self.say(format!("Successfully tagged {}\n", tag.familiar()));
        }
        if self.options.quiet {
            let _ = self
                .out
                .send(json!({ "stream": format!("{}\n", image.id) }));
        }
        Ok(image.id)
    }

    /// The stages up to `--target` (all without one).
    fn wanted(&self, stages: Vec<Vec<Instruction>>) -> Result<Vec<Vec<Instruction>>, BuildError> {
        if self.options.target.is_empty() {
            return Ok(stages);
        }
        let target = self.options.target.to_ascii_lowercase();
        let at = stages
            .iter()
            .position(|s| stage_name(&s[0]).is_some_and(|n| n == target))
            .ok_or_else(|| {
                BuildError::Invalid(format!(
                    "failed to reach build target {} in Dockerfile",
                    self.options.target
                ))
            })?;
        Ok(stages.into_iter().take(at + 1).collect())
    }

    fn begin(&mut self, instruction: &Instruction) -> Result<(), BuildError> {
        if self.out.is_closed() {
            return Err(BuildError::Cancelled);
        }
        self.step += 1;
        self.say(format!(
            "Step {}/{} : {}\n",
            self.step, self.total, instruction.original
        ));
        Ok(())
    }

    fn global_vars(&self) -> Vars {
        self.global
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect()
    }

    /// An ARG's value: the build arg if given (marked used), else its default.
    fn arg_value(&mut self, name: &str, default: Option<String>) -> Option<String> {
        match self.options.build_args.get(name) {
            Some(Some(v)) => {
                self.used.insert(name.to_string());
                Some(v.clone())
            }
            Some(None) => {
                self.used.insert(name.to_string());
                default
            }
            None => default,
        }
    }

    async fn from(&mut self, instruction: &Instruction) -> Result<Stage, BuildError> {
        self.begin(instruction)?;
        instruction.check_flags(&["platform"])?;
        let vars = self.global_vars();
        let words: Vec<String> = lex::split_words(&instruction.text(), self.escape)
            .iter()
            .map(|w| lex::expand(w, &vars, self.escape))
            .collect::<Result<_, _>>()?;
        let name = match words.as_slice() {
            [_] => None,
            [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_ascii_lowercase()),
            _ => {
                return Err(BuildError::Invalid(
                    "FROM requires either one or three arguments".into(),
                ))
            }
        };
        let base = &words[0];
        let platform = match instruction.flag("platform") {
            Some(p) => lex::expand(p, &vars, self.escape)?,
            None => self.options.platform.clone(),
        };
        let image = if base == "scratch" {
            None
        } else if let Some((_, image)) = self
            .stages
            .iter()
            .find(|(n, _)| n.as_deref() == Some(base.to_ascii_lowercase().as_str()))
        {
            image.clone()
        } else {
            Some(self.base_image(base, &platform).await?)
        };
        if let Some(i) = &image {
            self.say(format!(" ---> {}\n", short_image_id(&i.id)));
        }
        let config = image.as_ref().map(image_config).unwrap_or_default();
        Ok(Stage {
            name,
            image,
            meta: ins::Meta {
                config,
                ..Default::default()
            },
            args: BTreeMap::new(),
        })
    }

    /// The base image's ONBUILD triggers, run as dockerd runs them: right after FROM, each
    /// as the instruction it holds (no step of its own), the new image without them.
    async fn triggers(&mut self, stage: &mut Stage) -> Result<(), BuildError> {
        let triggers = stage.meta.config.on_build.take().unwrap_or_default();
        if triggers.is_empty() {
            return Ok(());
        }
        let plural = if triggers.len() > 1 { "s" } else { "" };
        self.say(format!(
            "# Executing {} build trigger{plural}\n",
            triggers.len()
        ));
        for trigger in triggers {
            let parsed = parser::parse(&format!("FROM scratch\n{trigger}\n"))?;
            let [_, instruction] = parsed.instructions.as_slice() else {
                return Err(BuildError::Invalid(
                    "onbuild trigger should be a single expression".into(),
                ));
            };
            if matches!(
                instruction.keyword.as_str(),
                "ONBUILD" | "FROM" | "MAINTAINER"
            ) {
                return Err(BuildError::Invalid(format!(
                    "{} isn't allowed as an ONBUILD trigger",
                    instruction.keyword
                )));
            }
            self.dispatch(stage, instruction).await?;
        }
        Ok(())
    }

    /// Credentials `X-Registry-Config` holds for `name`'s registry.
    fn credentials_for(&self, name: &str) -> Option<Credentials> {
        let registry = Reference::parse(name).ok()?.registry;
        self.options
            .registry_auth
            .iter()
            .find(|(key, _)| {
                let host = key
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .split('/')
                    .next()
                    .unwrap_or("");
                host == registry || (registry == "docker.io" && host == "index.docker.io")
            })
            .map(|(_, c)| c.clone())
    }

    /// A base image: local, else pulled (for `platform`); with `--pull`, pulled always.
    async fn base_image(&self, name: &str, platform: &str) -> Result<Image, BuildError> {
        if !self.options.pull {
            match self.images.resolve(name) {
                Ok(image) => return Ok(image),
                Err(crate::images::service::Error::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let out = self.out.clone();
        let quiet = self.options.quiet;
        let relay = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if !quiet {
                    let _ = out.send(serde_json::to_value(&m).unwrap_or(Value::Null));
                }
            }
        });
        // The registry client's future is not `Send`: it runs on a blocking thread.
        let handle = tokio::runtime::Handle::current();
        let (images, wanted) = (self.images.clone(), name.to_string());
        let platform = (!platform.is_empty()).then(|| platform.to_string());
        let auth = self.credentials_for(name);
        let pulled = tokio::task::spawn_blocking(move || {
            handle
                .block_on(async move { images.pull(&wanted, platform.as_deref(), auth, &tx).await })
        })
        .await
        .map_err(|e| BuildError::Invalid(format!("pull task: {e}")))?;
        let _ = relay.await;
        pulled?;
        Ok(self.images.resolve(name)?)
    }

    async fn dispatch(&mut self, stage: &mut Stage, i: &Instruction) -> Result<(), BuildError> {
        let escape = self.escape;
        let vars = stage.vars();
        let record = match i.keyword.as_str() {
            "RUN" => return self.run_step(stage, i).await,
            "COPY" | "ADD" => return self.copy_step(stage, i).await,
            "FROM" => unreachable!("stages start with FROM"),
            "ARG" => {
                let (k, default) = ins::pairs(i, &vars, escape)?.remove(0);
                let shown = match &default {
                    Some(d) => format!("ARG {k}={d}"),
                    None => format!("ARG {k}"),
                };
                let global = self.global.get(&k).cloned().flatten();
                let value = self.arg_value(&k, default.or(global));
                stage.args.insert(k, value);
                shown
            }
            "WORKDIR" => {
                let record = ins::apply(&mut stage.meta, i, &vars, escape)?;
                return self.workdir_step(stage, record).await;
            }
            _ => ins::apply(&mut stage.meta, i, &vars, escape)?,
        };
        self.nop(stage, record).await
    }

    /// Commits a metadata step: a new image without a layer.
    async fn nop(&mut self, stage: &mut Stage, what: String) -> Result<(), BuildError> {
        let mut comment = stage.shell();
        comment.push("#(nop) ".into());
        comment.push(what);
        let created_by = comment.join(" ");
        let key = cache::key(&stage.parent_id(), &format!("nop\n{created_by}"));
        if self.cached(stage, &key)? {
            return Ok(());
        }
        let mut container_config = stage.meta.config.clone();
        container_config.cmd = Some(comment);
        let step = Step {
            config: stage.meta.config.clone(),
            container_config,
            created_by,
            author: stage.meta.author.clone(),
            ..Default::default()
        };
        self.commit(stage, &key, step, None, true).await
    }

    /// WORKDIR, as dockerd does it: the directory is made (root's, 0755) in a step of its
    /// own, a layer when it was missing, an empty one when it was there.
    async fn workdir_step(&mut self, stage: &mut Stage, what: String) -> Result<(), BuildError> {
        // dockerd words it `#(nop) WORKDIR /x`, one word (the other nops: two).
        let mut comment = stage.shell();
        comment.push(format!("#(nop) {what}"));
        let created_by = comment.join(" ");
        let key = cache::key(&stage.parent_id(), &format!("nop\n{created_by}"));
        if self.cached(stage, &key)? {
            return Ok(());
        }
        let id = random_hex();
        self.say(format!(" ---> Running in {}\n", &id[..12]));
        let dir = PathBuf::from(stage.workdir().trim_start_matches('/'));
        let (images, parent) = (self.images.clone(), stage.image.clone());
        let diff_ids = stage.diff_ids();
        let work = self.work.join(format!("workdir-{}", &id[..12]));
        let snapshot_key = format!("{}{}", sweep::SNAPSHOT_PREFIX, &id[..24]);
        let shared = self.images.gc_lock.read().await;
        let layer = blocking(move || {
            let layer = snapshot_layer(
                &images,
                parent.as_ref(),
                &diff_ids,
                &snapshot_key,
                &work,
                |rootfs| {
                    let root = std::fs::File::open(rootfs)
                        .map_err(|e| BuildError::Invalid(format!("{}: {e}", rootfs.display())))?;
                    use std::os::fd::AsFd;
                    if at::open_dir_in(root.as_fd(), &dir).is_ok() {
                        return Ok(false);
                    }
                    at::make_dir_in(root.as_fd(), &dir).map_err(|e| {
                        BuildError::Invalid(format!("mkdir /{}: {e}", dir.display()))
                    })?;
                    Ok(true)
                },
            );
            let _ = std::fs::remove_dir_all(&work);
            layer
        })
        .await;
        drop(shared);
        let layer = layer?;
        let mut container_config = stage.meta.config.clone();
        container_config.cmd = Some(comment);
        let step = Step {
            config: stage.meta.config.clone(),
            container_config,
            container: id.clone(),
            created_by,
            author: stage.meta.author.clone(),
            ..Default::default()
        };
        let committed = self.commit(stage, &key, step, layer, false).await;
        if self.options.remove {
            self.say(format!("Removing intermediate container {}\n", &id[..12]));
        }
        committed?;
        self.say(format!(" ---> {}\n", short_image_id(&stage.parent_id())));
        Ok(())
    }

    /// A cache hit for `key` becomes the stage's image.
    fn cached(&self, stage: &mut Stage, key: &str) -> Result<bool, BuildError> {
        if self.options.no_cache {
            return Ok(false);
        }
        let Some(image) = cache::lookup(&self.images, key)? else {
            return Ok(false);
        };
        self.say(" ---> Using cache\n");
        self.say(format!(" ---> {}\n", short_image_id(&image.id)));
        stage.meta.config = image_config(&image);
        stage.image = Some(image);
        Ok(true)
    }

    /// Writes the step's image on the stage's, remembers it under `key`, makes it the
    /// stage's image.
    async fn commit(
        &self,
        stage: &mut Stage,
        key: &str,
        mut step: Step,
        layer: Option<Layer>,
        announce: bool,
    ) -> Result<(), BuildError> {
        step.config.image = stage.parent_id();
        step.container_config.image = stage.parent_id();
        if stage.image.is_none() {
            step.config.image.clear();
            step.container_config.image.clear();
        }
        let images = self.images.clone();
        let parent = stage.image.clone();
        let key = key.to_string();
        let _shared = self.images.gc_lock.read().await;
        let image = blocking(move || {
            let image = commit::write_image(&images, parent.as_ref(), &step, layer.as_ref())?;
            cache::remember(&images, &key, &image)?;
            Ok(images.resolve(&image.id)?)
        })
        .await?;
        if announce {
            self.say(format!(" ---> {}\n", short_image_id(&image.id)));
        }
        stage.meta.config = image_config(&image);
        stage.image = Some(image);
        Ok(())
    }

    async fn run_step(&mut self, stage: &mut Stage, i: &Instruction) -> Result<(), BuildError> {
        i.check_flags(&["mount"])?;
        let cmd = run_command(i, &stage.shell());
        let args = stage.run_args();
        let mut recorded = Vec::new();
        if !args.is_empty() {
            recorded.push(format!("|{}", args.len()));
            recorded.extend(args.iter().cloned());
        }
        recorded.extend(cmd.iter().cloned());
        let created_by = recorded.join(" ");
        // The `from=` views stay mounted until the step is done.
        let (mounts, _views) = self.run_mounts(stage, i).await?;
        let mut step_key = format!("run\n{created_by}");
        for m in &mounts {
            step_key.push_str(&format!("\nmount {}", m.key));
        }
        let key = cache::key(&stage.parent_id(), &step_key);
        if self.cached(stage, &key)? {
            return Ok(());
        }
        let Some(parent) = stage.image.clone() else {
            return Err(BuildError::Invalid(format!(
                "The command '{}' cannot run: the image has no files yet (FROM scratch)",
                cmd.join(" ")
            )));
        };
        let mut env = stage.meta.config.env.clone().unwrap_or_default();
        env.extend(args.iter().cloned());
        let mut host_config = match &self.options.host_config {
            Value::Object(m) => m.clone(),
            _ => Default::default(),
        };
        host_config.insert(
            "Mounts".into(),
            mounts.iter().map(|m| m.api.clone()).collect(),
        );
        let body = json!({
            "Image": parent.id,
            "Cmd": cmd,
            "Entrypoint": [""],
            "Env": env,
            "WorkingDir": stage.meta.config.working_dir,
            "User": stage.meta.config.user,
            "HostConfig": host_config,
        });
        let c = self.containers.create(body, None).await?;
        sweep::mark(&self.images, &c.id);
        self.say(format!(" ---> Running in {}\n", &c.id[..12]));
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let out = self.out.clone();
        let quiet = self.options.quiet;
        let relay = tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if !quiet {
                    let _ = out.send(json!({ "stream": text }));
                }
            }
        });
        // A client gone (docker build interrupted) ends the build and its container.
        let ran = tokio::select! {
            ran = self.containers.run_step(&c.id, tx) => ran,
            () = self.out.closed() => {
                drop(relay);
                tracing::info!(id = c.id, "build client gone: stopping its RUN step");
                self.remove_container(&c.id).await;
                return Err(BuildError::Cancelled);
            }
        };
        let _ = relay.await;
        let code = match ran {
            Ok(code) => code,
            Err(e) => {
                self.remove_container(&c.id).await;
                return Err(e.into());
            }
        };
        if code != 0 {
            if self.options.remove || self.options.force_remove {
                self.remove_container(&c.id).await;
            }
            return Err(BuildError::Run {
                command: cmd.join(" "),
                code,
            });
        }
        let layer = {
            let images = self.images.clone();
            let key = format!("container-{}", c.id);
            let diff_ids = parent.diff_ids();
            let tmp = self.work.clone();
            // The targets, and the directories made to hold them, when empty and new.
            let mut targets: Vec<String> = Vec::new();
            for m in &mounts {
                for dir in Path::new(&m.target).ancestors() {
                    if dir != Path::new("/") {
                        targets.push(dir.to_string_lossy().into_owned());
                    }
                }
            }
            let _shared = self.images.gc_lock.read().await;
            blocking(move || {
                mountpoints::drop_added(&images.snapshots, &key, &targets)
                    .map_err(crate::images::service::Error::from)?;
                Ok(commit::commit_layer(&images, &key, &diff_ids, true, &tmp)?)
            })
            .await
        };
        let layer = match layer {
            Ok(l) => l,
            Err(e) => {
                self.remove_container(&c.id).await;
                return Err(e);
            }
        };
        let mut container_config = stage.meta.config.clone();
        container_config.cmd = Some(recorded);
        let step = Step {
            config: stage.meta.config.clone(),
            container_config,
            container: c.id.clone(),
            created_by,
            author: stage.meta.author.clone(),
            ..Default::default()
        };
        let committed = self.commit(stage, &key, step, Some(layer), false).await;
        if self.options.remove {
            self.say(format!("Removing intermediate container {}\n", &c.id[..12]));
            self.remove_container(&c.id).await;
        } else {
            // Kept as asked (`--rm=false`): no leftover of a dead build.
            sweep::unmark(&self.images, &c.id);
        }
        committed?;
        self.say(format!(" ---> {}\n", short_image_id(&stage.parent_id())));
        Ok(())
    }

    /// The `--mount`s of a RUN (variables expanded), checked and resolved, and the views of
    /// the stages or images their `from=` names.
    async fn run_mounts(
        &self,
        stage: &Stage,
        i: &Instruction,
    ) -> Result<(Vec<run_mount::RunMount>, Vec<View>), BuildError> {
        let vars = stage.vars();
        let specs: Vec<String> = i
            .flags
            .iter()
            .filter(|(n, _)| n == "mount")
            .map(|(_, v)| lex::expand_raw(v, &vars, self.escape))
            .collect::<Result<_, _>>()?;
        let (mut mounts, mut views) = (Vec::new(), Vec::new());
        for spec in specs {
            let view = match run_mount::from_of(&spec) {
                Some(from) => {
                    let image = self.copy_from(&from).await?;
                    let (images, dir) = (
                        self.images.clone(),
                        self.work.join(format!("mount-{}", &random_hex()[..12])),
                    );
                    Some(blocking(move || view(&images, &image, dir)).await?)
                }
                None => None,
            };
            let workdir = stage.workdir().to_string();
            let context = match &view {
                Some(v) => Arc::new(Context::at(&v.dir)?),
                None => self.context.clone(),
            };
            let cache_root = run_mount::cache_root(&self.images.options.data_root);
            let secrets = self.secrets();
            let mount = blocking(move || {
                let sources = run_mount::Sources {
                    context: &context,
                    cache_root: &cache_root,
                    secrets: &secrets,
                };
                run_mount::parse(&spec, &workdir, &sources)
            })
            .await?;
            mounts.extend(mount);
            views.extend(view);
        }
        Ok((mounts, views))
    }

    /// Removes a step's container with its anonymous volumes (a VOLUME of the stage), as
    /// dockerd does.
    async fn remove_container(&self, id: &str) {
        match self.containers.remove_with_volumes(id, true, true).await {
            Ok(()) => sweep::unmark(&self.images, id),
            Err(e) => tracing::warn!(id, error = %e, "removing a build step's container"),
        }
    }

    async fn copy_step(&mut self, stage: &mut Stage, i: &Instruction) -> Result<(), BuildError> {
        let kw = i.keyword.clone();
        let failed = |e: BuildError| match e {
            BuildError::Copy(m) => BuildError::Copy(format!("{kw} failed: {m}")),
            other => other,
        };
        if kw == "COPY" {
            if i.flag("checksum").is_some() {
                return Err(BuildError::Invalid(
                    "checksum can't be specified for COPY".into(),
                ));
            }
            i.check_flags(&["from", "chown", "chmod"])?;
        } else {
            i.check_flags(&["chown", "chmod", "checksum"])?;
        }
        let vars = stage.vars();
        let list = match &i.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => lex::split_words(s, self.escape),
        };
        // Here-documents name files of their own, written to a directory of this step.
        let inline = self.heredoc_files(i, &list, &vars)?;
        let mut words: Vec<String> = list
            .iter()
            .map(|w| match i.heredocs.iter().find(|h| &h.marker == w) {
                Some(h) => Ok(h.name.clone()),
                None => lex::expand(w, &vars, self.escape),
            })
            .collect::<Result<_, _>>()?;
        if words.len() < 2 {
            return Err(BuildError::Invalid(format!(
                "{kw} requires at least two arguments, but only one was provided. Destination could not be determined."
            )));
        }
        let dest = words.pop().unwrap_or_default();
        let urls = words.iter().filter(|w| is_url(w)).count();
        if urls > 0 && kw == "COPY" {
            return Err(BuildError::Invalid("source can't be a URL for COPY".into()));
        }
        let checksum = match i.flag("checksum") {
            Some(c) => Some(self.checksum_of(c, &words, &vars)?),
            None => None,
        };
        if urls > 0 && urls != words.len() {
            return Err(BuildError::Invalid(
                "ADD: URLs and files of the context cannot be mixed in one instruction by this builder".into(),
            ));
        }
        let chown = match i.flag("chown") {
            Some(c) => Some(lex::expand(c, &vars, self.escape)?),
            None => None,
        };
        let chmod = i.flag("chmod").map(str::to_string);
        if let Some(m) = &chmod {
            u32::from_str_radix(m, 8)
                .map_err(|_| BuildError::Invalid(format!("invalid chmod parameter: {m}")))?;
        }
        if inline.is_some() && i.flag("from").is_some() {
            return Err(BuildError::Invalid(format!(
                "{kw} --from cannot copy here-documents"
            )));
        }
        let from = match i.flag("from") {
            Some(f) => Some(self.copy_from(&lex::expand(f, &vars, self.escape)?).await?),
            None => None,
        };
        let into_dir = dest.ends_with('/') || dest.ends_with("/.") || dest == ".";
        if words.len() > 1 && !into_dir {
            return Err(BuildError::Invalid(format!(
                "When using {kw} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        let abs = ins::clean_abs(&Path::new(stage.workdir()).join(&dest));
        // Remote sources: downloaded (each build, as dockerd does) into a directory that is
        // then the step's context; their names are the URLs' last path segments.
        let downloaded = if urls > 0 {
            let dir = self.work.join(format!("download-{}", &random_hex()[..12]));
            let mut names = Vec::new();
            for url in &words {
                let name = self.download(url, &dir, checksum.as_ref()).await;
                names.push(name.map_err(failed)?);
            }
            words = names;
            Some(dir)
        } else {
            None
        };
        let job = CopyJob {
            images: self.images.clone(),
            context: match (inline.as_ref(), downloaded.as_ref()) {
                (Some(dir), _) | (None, Some(dir)) => Arc::new(Context::at(dir)?),
                (None, None) => self.context.clone(),
            },
            downloaded: downloaded.is_some(),
            from,
            sources: words,
            dest: PathBuf::from(abs.trim_start_matches('/')),
            into_dir,
            chown,
            chmod,
            add: kw == "ADD",
            parent: stage.image.clone(),
            parent_diff_ids: stage.diff_ids(),
            work: self.work.join(format!("copy-{}", &random_hex()[..12])),
        };
        let (job, hash) = blocking(move || {
            let hash = job.hash()?;
            Ok((job, hash))
        })
        .await
        .map_err(failed)?;
        // dockerd's words, its missing space after the --chown included.
        let chown_comment = job
            .chown
            .as_ref()
            .map(|c| format!("--chown={c}"))
            .unwrap_or_default();
        let copied = format!("{kw} {chown_comment}{hash} in {dest} ");
        let created_by = format!("{} #(nop) {copied}", stage.shell().join(" "));
        let key = cache::key(
            &stage.parent_id(),
            &format!(
                "copy\n{created_by}\n{:?}\n{:?}\n{}",
                job.chown,
                job.chmod,
                job.from.as_ref().map_or("", |f| f.id.as_str())
            ),
        );
        if self.cached(stage, &key)? {
            return Ok(());
        }
        let _shared = self.images.gc_lock.read().await;
        let layer = blocking(move || job.run()).await.map_err(failed)?;
        drop(_shared);
        let mut container_config = stage.meta.config.clone();
        let mut comment = stage.shell();
        comment.push(format!("#(nop) {copied}"));
        container_config.cmd = Some(comment);
        let step = Step {
            config: stage.meta.config.clone(),
            container_config,
            created_by,
            author: stage.meta.author.clone(),
            ..Default::default()
        };
        self.commit(stage, &key, step, Some(layer), true).await
    }

    /// The here-documents a COPY/ADD names, as files in a directory of their own (variables
    /// expanded in unquoted ones); None when it names none. Every source must be one then.
    fn heredoc_files(
        &self,
        i: &Instruction,
        words: &[String],
        vars: &Vars,
    ) -> Result<Option<PathBuf>, BuildError> {
        if i.heredocs.is_empty() {
            return Ok(None);
        }
        let sources = &words[..words.len().saturating_sub(1)];
        if sources
            .iter()
            .any(|w| !i.heredocs.iter().any(|h| &h.marker == w))
        {
            return Err(BuildError::Invalid(format!(
                "{}: here-documents and files of the context cannot be mixed in one instruction",
                i.keyword
            )));
        }
        let dir = self.work.join(format!("heredoc-{}", &random_hex()[..12]));
        let err = |p: &Path, e: std::io::Error| BuildError::Copy(format!("{}: {e}", p.display()));
        std::fs::create_dir_all(&dir).map_err(|e| err(&dir, e))?;
        for h in &i.heredocs {
            let name = Path::new(&h.name);
            let Some(base) = name.file_name().filter(|_| name.components().count() == 1) else {
                return Err(BuildError::Invalid(format!(
                    "{}: a here-document's name is a file name: {}",
                    i.keyword, h.name
                )));
            };
            let body = if h.expand {
                lex::expand_raw(&h.body, vars, self.escape)?
            } else {
                h.body.clone()
            };
            let path = dir.join(base);
            std::fs::write(&path, body).map_err(|e| err(&path, e))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                .map_err(|e| err(&path, e))?;
        }
        Ok(Some(dir))
    }

    /// Downloads `url` into `dir` as dockerd's ADD does: named by the URL path's last
    /// segment, mode 0600, its mtime the response's Last-Modified (else the epoch). The name.
    /// ADD's `--checksum` for the sources `words`: one URL only, as BuildKit has it.
    fn checksum_of(
        &self,
        flag: &str,
        words: &[String],
        vars: &Vars,
    ) -> Result<Checksum, BuildError> {
        if words.len() != 1 {
            return Err(BuildError::Invalid(
                "checksum can't be specified for multiple sources".into(),
            ));
        }
        if !is_url(&words[0]) {
            return Err(BuildError::Invalid(
                "checksum can't be specified for non-HTTP(S) sources".into(),
            ));
        }
        Checksum::parse(&lex::expand(flag, vars, self.escape)?).map_err(BuildError::Invalid)
    }

    /// Downloads `url` into `dir`, named by its last path segment, with the Last-Modified
    /// time; a download whose content has not the `checksum` asked for is not kept.
    async fn download(
        &self,
        url: &str,
        dir: &Path,
        checksum: Option<&Checksum>,
    ) -> Result<String, BuildError> {
        let copy = |m: String| BuildError::Copy(m);
        let parsed = reqwest::Url::parse(url).map_err(|e| copy(format!("{url}: {e}")))?;
        let name = parsed
            .path_segments()
            .and_then(|mut s| s.next_back())
            .map(|n| {
                percent_encoding::percent_decode_str(n)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .filter(|n| context::is_plain_name(n))
            .ok_or_else(|| copy(format!("cannot determine filename from url: {url}")))?;
        let response = reqwest::get(parsed.clone())
            .await
            .map_err(|e| copy(format!("{url}: {e}")))?;
        let status = response.status();
        let modified = response
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .and_then(|t| u64::try_from(t.timestamp()).ok())
            .unwrap_or(0);
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(copy(format!(
                "failed to GET {url} with status {status}: {}",
                body.trim_end()
            )));
        }
        let path = dir.join(&name);
        let err = |e: std::io::Error| copy(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(dir).map_err(|e| copy(format!("{}: {e}", dir.display())))?;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(err)?;
        let mut response = response;
        let mut verifier = checksum.map(Checksum::verifier);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| copy(format!("{url}: {e}")))?
        {
            if let Some(v) = &mut verifier {
                v.update(&chunk);
            }
            std::io::Write::write_all(&mut file, &chunk).map_err(err)?;
        }
        if let Some(v) = verifier {
            // The download directory goes with the build, whatever happens.
            v.check().map_err(|m| copy(format!("{url}: {m}")))?;
        }
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(modified);
        file.set_times(
            std::fs::FileTimes::new()
                .set_accessed(when)
                .set_modified(when),
        )
        .map_err(err)?;
        self.say("\n");
        Ok(name)
    }

    /// `COPY --from=`: a finished stage (by name or index) or an image.
    async fn copy_from(&self, from: &str) -> Result<Image, BuildError> {
        let lower = from.to_ascii_lowercase();
        if let Some((_, image)) = self
            .stages
            .iter()
            .find(|(n, _)| n.as_deref() == Some(&lower))
        {
            return image.clone().ok_or_else(|| {
                BuildError::Invalid(format!("stage {from} has no files (FROM scratch)"))
            });
        }
        if let Ok(index) = from.parse::<usize>() {
            return match self.stages.get(index) {
                Some((_, Some(image))) => Ok(image.clone()),
                _ => Err(BuildError::Invalid(format!(
                    "invalid from flag value {from}: no such stage"
                ))),
            };
        }
        self.base_image(from, &self.options.platform).await
    }
}

/// An ADD source fetched by the daemon (`http://`, `https://`), as docker tells them.
fn is_url(word: &str) -> bool {
    word.starts_with("http://") || word.starts_with("https://")
}

/// RUN's command: a here-document alone (`RUN <<EOF`) is the script the shell runs; with
/// other words, the shell gets them and the here-documents as a script would hold them.
fn run_command(i: &Instruction, shell: &[String]) -> Vec<String> {
    let (Args::Shell(text), false) = (&i.args, i.heredocs.is_empty()) else {
        return ins::command(&i.args, shell);
    };
    let script = match i.heredocs.as_slice() {
        [only] if text.trim() == only.marker => only.body.clone(),
        docs => {
            let mut script = format!("{text}\n");
            for h in docs {
                script.push_str(&h.body);
                script.push_str(&h.name);
                script.push('\n');
            }
            script
        }
    };
    let mut cmd = shell.to_vec();
    cmd.push(script);
    cmd
}

/// The stage's config as docker's `Config`.
fn image_config(image: &Image) -> Config {
    serde_json::from_value(image.config["config"].clone()).unwrap_or_default()
}

fn stage_name(from: &Instruction) -> Option<String> {
    let text = from.text();
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_ascii_lowercase()),
        _ => None,
    }
}

/// The ARGs before the first FROM, and the stages (each starting with its FROM).
fn split_stages(
    list: &[Instruction],
) -> Result<(Vec<Instruction>, Vec<Vec<Instruction>>), BuildError> {
    let mut globals = Vec::new();
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for i in list {
        match (i.keyword.as_str(), stages.last_mut()) {
            ("FROM", _) => stages.push(vec![i.clone()]),
            (_, Some(stage)) => stage.push(i.clone()),
            ("ARG", None) => globals.push(i.clone()),
            (_, None) => {
                return Err(BuildError::Parse(parser::ParseError::Invalid {
                    line: i.line,
                    message: "no build stage in current context".into(),
                }))
            }
        }
    }
    if stages.is_empty() {
        return Err(BuildError::Parse(parser::ParseError::Empty));
    }
    Ok((globals, stages))
}

/// A COPY/ADD, run on blocking threads.
struct CopyJob {
    images: Arc<ImageService>,
    context: Arc<Context>,
    /// `--from`: the image whose files are the sources.
    from: Option<Image>,
    /// The sources are ADD's downloads (never unpacked, summed as dockerd sums them).
    downloaded: bool,
    sources: Vec<String>,
    /// Relative to the image root.
    dest: PathBuf,
    into_dir: bool,
    chown: Option<String>,
    chmod: Option<String>,
    add: bool,
    /// The stage's image (None: scratch).
    parent: Option<Image>,
    parent_diff_ids: Vec<String>,
    work: PathBuf,
}

/// A mounted read-only view of an image's files, unmounted when dropped.
struct View {
    dir: PathBuf,
}

/// Mounts a read-only view of `image`'s files at the new directory `dir`. Blocking.
fn view(images: &ImageService, image: &Image, dir: PathBuf) -> Result<View, BuildError> {
    let chain = chain_ids(&image.diff_ids())
        .last()
        .cloned()
        .ok_or_else(|| BuildError::Copy(format!("image {} has no files", image.id)))?;
    images.unpack(image, None)?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| BuildError::Copy(format!("{}: {e}", dir.display())))?;
    let mounts = images
        .snapshots
        .view(&chain)
        .map_err(crate::images::service::Error::from)?;
    let view = View { dir };
    snapshot::mount_all(&mounts, &view.dir).map_err(crate::images::service::Error::from)?;
    Ok(view)
}

impl Drop for View {
    fn drop(&mut self) {
        let _ = snapshot::unmount(&self.dir);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl CopyJob {
    /// Runs `f` on the source root: the context, or a view of the `--from` image.
    fn with_sources<T>(
        &self,
        f: impl FnOnce(&Context) -> Result<T, BuildError>,
    ) -> Result<T, BuildError> {
        let Some(image) = &self.from else {
            return f(&self.context);
        };
        let view = view(&self.images, image, self.work.join("from"))?;
        let context = Context::at(&view.dir)?;
        f(&context)
    }

    fn open_sources(&self, context: &Context) -> Result<Vec<Source>, BuildError> {
        let mut out = Vec::new();
        for s in &self.sources {
            let found = context.sources(s)?;
            if found.is_empty() {
                return Err(BuildError::Copy("no source files were specified".into()));
            }
            out.extend(found);
        }
        Ok(out)
    }

    /// The sources' content hash in docker's words (`file:…`, `dir:…`, `multi:…`).
    fn hash(&self) -> Result<String, BuildError> {
        self.with_sources(|context| {
            let sources = self.open_sources(context)?;
            // dockerd sums files on its disk (downloads, images') with owner names.
            let names = self.from.is_some() || self.downloaded;
            let mut each = context::source_sums(context, &sources, names)?;
            if self.downloaded {
                for sum in &mut each {
                    *sum = sum.trim_start_matches("file:").to_string();
                }
            }
            Ok(context::combined_sum(&each))
        })
    }

    /// Writes the sources into a fresh snapshot of the parent and commits it as a layer.
    fn run(self) -> Result<Layer, BuildError> {
        let key = format!("{}{}", sweep::SNAPSHOT_PREFIX, &random_hex()[..24]);
        let layer = snapshot_layer(
            &self.images,
            self.parent.as_ref(),
            &self.parent_diff_ids,
            &key,
            &self.work,
            |rootfs| self.write_into(rootfs).map(|()| true),
        );
        let _ = std::fs::remove_dir_all(&self.work);
        layer?.ok_or_else(|| BuildError::Copy("the copy changed nothing".into()))
    }

    fn write_into(&self, rootfs: &Path) -> Result<(), BuildError> {
        let root = std::fs::File::open(rootfs)
            .map_err(|e| BuildError::Copy(format!("{}: {e}", rootfs.display())))?;
        use std::os::fd::AsFd;
        let into_dir = self.into_dir || at::open_dir_in(root.as_fd(), &self.dest).is_ok();
        let owner = match &self.chown {
            Some(c) => owner(root.as_fd(), c)?,
            None => (0, 0),
        };
        self.with_sources(|context| {
            let sources = self.open_sources(context)?;
            let (archives, files): (Vec<Source>, Vec<Source>) =
                sources.into_iter().partition(|s| {
                    self.add && !self.downloaded && !s.is_dir() && context::is_archive(&s.file)
                });
            if !files.is_empty() {
                let tar = tempfile::NamedTempFile::new_in(&self.work)
                    .map_err(|e| BuildError::Copy(format!("{}: {e}", self.work.display())))?;
                context::write_tar(
                    &files,
                    &self.dest,
                    into_dir,
                    owner,
                    self.chmod
                        .as_deref()
                        .and_then(|m| u32::from_str_radix(m, 8).ok()),
                    std::io::BufWriter::new(tar.as_file()),
                )?;
                let file = tar
                    .reopen()
                    .map_err(|e| BuildError::Copy(format!("{}: {e}", tar.path().display())))?;
                layer::apply(file, rootfs, &Default::default())
                    .map_err(|e| BuildError::Copy(e.to_string()))?;
            }
            for archive in archives {
                let dir = at::make_dir_in(root.as_fd(), &self.dest)
                    .map_err(|e| BuildError::Copy(format!("{}: {e}", self.dest.display())))?;
                use std::os::fd::AsRawFd;
                let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
                layer::apply(&archive.file, &path, &Default::default())
                    .map_err(|e| BuildError::Copy(format!("{}: {e}", archive.rel.display())))?;
            }
            Ok(())
        })
    }
}

/// Writes into a fresh snapshot (`key`) of the parent, mounted at `work/rootfs`, with
/// `write`, and commits its changes as a layer; None (nothing committed) when `write` says
/// it changed nothing. The snapshot is gone after, whatever happened. Blocking.
fn snapshot_layer(
    images: &ImageService,
    parent: Option<&Image>,
    parent_diff_ids: &[String],
    key: &str,
    work: &Path,
    write: impl FnOnce(&Path) -> Result<bool, BuildError>,
) -> Result<Option<Layer>, BuildError> {
    if let Some(parent) = parent {
        images.unpack(parent, None)?;
    }
    let parent = chain_ids(parent_diff_ids).last().cloned();
    let snapshots = &images.snapshots;
    let mounts = snapshots
        .prepare(key, parent.as_deref())
        .map_err(crate::images::service::Error::from)?;
    let rootfs = work.join("rootfs");
    let result = (|| {
        std::fs::create_dir_all(&rootfs)
            .map_err(|e| BuildError::Copy(format!("{}: {e}", rootfs.display())))?;
        snapshot::mount_all(&mounts, &rootfs).map_err(crate::images::service::Error::from)?;
        let written = write(&rootfs);
        let unmounted = snapshot::unmount(&rootfs);
        let changed = written?;
        unmounted.map_err(crate::images::service::Error::from)?;
        if !changed {
            return Ok(None);
        }
        Ok(Some(commit::commit_layer(
            images,
            key,
            parent_diff_ids,
            true,
            work,
        )?))
    })();
    if result.is_err() {
        let _ = snapshot::unmount(&rootfs);
    }
    let _ = std::fs::remove_dir(&rootfs);
    // Committed, the active snapshot is gone; otherwise (or if the layer existed) it goes.
    if snapshots.stat(key).is_ok() {
        if let Err(e) = snapshots.remove(key) {
            tracing::warn!(key, error = %e, "removing a build step's snapshot");
        }
    }
    result
}

/// `--chown=user[:group]`: numbers, or names looked up in the image's passwd and group.
fn owner(root: std::os::fd::BorrowedFd<'_>, spec: &str) -> Result<(u32, u32), BuildError> {
    let (user, group) = spec.split_once(':').unwrap_or((spec, ""));
    let read = |name: &str| -> String {
        let how = nix::fcntl::OpenHow::new()
            .flags(nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC)
            .resolve(nix::fcntl::ResolveFlag::RESOLVE_IN_ROOT);
        nix::fcntl::openat2(root, name, how)
            .ok()
            .and_then(|fd| {
                let mut s = String::new();
                std::fs::File::from(fd)
                    .read_to_string(&mut s)
                    .ok()
                    .map(|_| s)
            })
            .unwrap_or_default()
    };
    // Fields 2 and 3 of the line naming `name` (passwd: uid, gid; group: gid, members).
    let lookup = |file: &str, name: &str| -> Option<(u32, Option<u32>)> {
        read(file).lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || f[0] != name {
                return None;
            }
            Some((f[2].parse().ok()?, f.get(3).and_then(|g| g.parse().ok())))
        })
    };
    let bad = || {
        BuildError::Invalid(format!(
            "unable to convert uid/gid chown string to host mapping: {spec}"
        ))
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => match lookup("etc/passwd", user) {
            Some((uid, Some(gid))) => (uid, gid),
            _ => return Err(bad()),
        },
    };
    let gid = match group {
        "" => primary,
        g => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup("etc/group", g).map(|(gid, _)| gid).ok_or_else(bad)?,
        },
    };
    Ok((uid, gid))
}
