//! Committing a snapshot as an image: the snapshot's changes become a layer blob (an
//! uncompressed tar, docker's layer format with `.wh.` whiteouts) in the content store and a
//! committed snapshot keyed by its chain ID; a new image config (docker's `config`,
//! `container_config`, `history`, `rootfs`) and manifest are written on top of the parent's.
//! Used by the builder (RUN, COPY, ADD and metadata steps) and by `docker commit`.
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use crate::containers::config::Config;
use crate::images::metadata::{self, ImageRecord, Target};
use crate::images::service::{Error, Image, ImageService};
use crate::images::snapshot::chain_ids;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// A layer committed from a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// `sha256:` of the tar: its diff ID and, uncompressed, its blob digest.
    pub diff_id: String,
    /// Bytes of the tar.
    pub size: u64,
}

/// Writes the active snapshot `key`'s changes as a layer blob and makes that layer the
/// committed snapshot on top of `parent_diff_ids`' chain: `take` turns the active snapshot
/// itself into it (it must not be used again: a finished build step's), otherwise the layer
/// is unpacked from the blob (a running container's `commit`). Blocking.
pub fn commit_layer(
    images: &ImageService,
    key: &str,
    parent_diff_ids: &[String],
    take: bool,
    tmp: &Path,
) -> Result<Layer, Error> {
    std::fs::create_dir_all(tmp).map_err(|e| io(tmp, e))?;
    let spool = tempfile::NamedTempFile::new_in(tmp).map_err(|e| io(tmp, e))?;
    let mut out = std::io::BufWriter::new(spool.as_file());
    let exported = images.snapshots.diff(key, &mut out)?;
    out.flush().map_err(|e| io(spool.path(), e))?;
    drop(out);
    let layer = Layer {
        diff_id: exported.diff_id.clone(),
        size: exported.tar_size,
    };
    if !images.content.contains(&layer.diff_id) {
        let mut writer = images.content.writer(&layer.diff_id, Some(layer.size))?;
        let mut file = spool.reopen().map_err(|e| io(spool.path(), e))?;
        std::io::copy(&mut file, &mut writer).map_err(|e| io(spool.path(), e))?;
        writer.commit()?;
    }
    let mut diff_ids = parent_diff_ids.to_vec();
    diff_ids.push(layer.diff_id.clone());
    let chains = chain_ids(&diff_ids);
    let chain = chains.last().cloned().unwrap_or_default();
    let parent = chains.len().checked_sub(2).map(|i| chains[i].as_str());
    if images.metadata.snapshot(&chain)?.is_none() {
        let made = if take {
            images.snapshots.commit(&chain, key).map(|_| ())
        } else {
            let file = spool.reopen().map_err(|e| io(spool.path(), e))?;
            images
                .snapshots
                .unpack(&chain, parent, file, &layer.diff_id)
                .map(|_| ())
        };
        // Another build may have committed the same layer meanwhile.
        if let Err(e) = made {
            if images.metadata.snapshot(&chain)?.is_none() {
                return Err(e.into());
            }
        }
        images.snapshots.request_flush();
    }
    Ok(layer)
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Corrupt {
        what: path.display().to_string(),
        message: e.to_string(),
    }
}

/// What a new image records about the step that made it.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// Docker's `Config` of the new image.
    pub config: Config,
    /// Docker's `ContainerConfig`: the config the step ran with (its Cmd says what it did).
    pub container_config: Config,
    /// The container it was committed from (docker's `container`), if any.
    pub container: String,
    /// The history line (`/bin/sh -c #(nop)  ENV A=b`).
    pub created_by: String,
    pub comment: String,
    pub author: String,
}

/// Writes an image: the parent's config (if any) with `step`'s config, one more history
/// entry and, when the step made one, one more layer. Returns it, not yet named. Blocking.
pub fn write_image(
    images: &ImageService,
    parent: Option<&Image>,
    step: &Step,
    layer: Option<&Layer>,
) -> Result<Image, Error> {
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut config = match parent {
        Some(p) => p.config.clone(),
        None => json!({
            "architecture": host_architecture(),
            "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [] },
        }),
    };
    let to_value = |c: &Config| serde_json::to_value(c).unwrap_or(Value::Null);
    config["config"] = to_value(&step.config);
    config["container_config"] = to_value(&step.container_config);
    config["container"] = json!(step.container);
    config["created"] = json!(created);
    if let Some(fields) = config.as_object_mut() {
        fields.remove("author");
        fields.remove("comment");
    }
    if !step.author.is_empty() {
        config["author"] = json!(step.author);
    }
    if !step.comment.is_empty() {
        config["comment"] = json!(step.comment);
    }
    let mut entry = json!({ "created": created, "created_by": step.created_by });
    if !step.comment.is_empty() {
        entry["comment"] = json!(step.comment);
    }
    if !step.author.is_empty() {
        entry["author"] = json!(step.author);
    }
    if layer.is_none() {
        entry["empty_layer"] = json!(true);
    }
    push(&mut config["history"], entry);
    if let Some(l) = layer {
        push(&mut config["rootfs"]["diff_ids"], json!(l.diff_id));
    }
    let config_bytes = serde_json::to_vec(&config).unwrap_or_default();
    let config_digest = images.content.write_blob(&config_bytes)?;
    let manifest = manifest(parent, &config_digest, config_bytes.len(), layer);
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    images.content.write_blob(&manifest_bytes)?;
    Ok(Image {
        id: config_digest,
        records: Vec::new(),
        manifest,
        config,
    })
}

fn push(list: &mut Value, item: Value) {
    match list.as_array_mut() {
        Some(a) => a.push(item),
        None => *list = json!([item]),
    }
}

fn manifest(
    parent: Option<&Image>,
    config: &str,
    config_size: usize,
    layer: Option<&Layer>,
) -> Value {
    let media_type = parent
        .and_then(|p| p.manifest["mediaType"].as_str())
        .unwrap_or(OCI_MANIFEST)
        .to_string();
    let docker = media_type == DOCKER_MANIFEST;
    let config_type = parent
        .and_then(|p| p.manifest["config"]["mediaType"].as_str())
        .unwrap_or(OCI_CONFIG);
    let mut layers = parent
        .and_then(|p| p.manifest["layers"].as_array().cloned())
        .unwrap_or_default();
    if let Some(l) = layer {
        layers.push(json!({
            "mediaType": if docker { DOCKER_LAYER } else { OCI_LAYER },
            "digest": l.diff_id,
            "size": l.size,
        }));
    }
    json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": { "mediaType": config_type, "digest": config, "size": config_size },
        "layers": layers,
    })
}

/// The record naming `image` as `name` (a reference's full form, or a cache key).
pub fn record_for(image: &Image, name: &str) -> ImageRecord {
    let bytes = serde_json::to_vec(&image.manifest).unwrap_or_default();
    ImageRecord {
        name: name.to_string(),
        target: Target {
            media_type: image.manifest["mediaType"]
                .as_str()
                .unwrap_or(OCI_MANIFEST)
                .to_string(),
            digest: crate::images::content::digest_of(&bytes),
            size: bytes.len() as u64,
        },
        config_digest: image.id.clone(),
        repo_digest: None,
        updated: metadata::now(),
    }
}

/// Docker's name for this machine's architecture.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// `docker commit` options.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub repo: String,
    pub tag: String,
    pub comment: String,
    pub author: String,
    /// Pause a running container while its files are read (docker's default).
    pub pause: bool,
    /// Dockerfile instructions applied to the config (`--change 'CMD ["sh"]'`).
    pub changes: Vec<String>,
    /// A config whose set fields replace the container's.
    pub overrides: Value,
}

/// `docker commit`: the container's changes as a new layer on its image, its config (with
/// the overrides and changes) as the new image's; returns the image ID.
pub async fn commit_container(
    containers: &crate::containers::service::ContainerService,
    name_or_id: &str,
    options: CommitOptions,
) -> Result<String, super::BuildError> {
    use super::BuildError;
    let images = containers.images.clone();
    let reference = match (options.repo.as_str(), options.tag.as_str()) {
        ("", "") => None,
        ("", _) => return Err(BuildError::Invalid("tag without a repository".into())),
        (repo, "") => Some(parse_reference(repo)?),
        (repo, tag) => Some(parse_reference(&format!("{repo}:{tag}"))?),
    };
    let c = containers.inspect(name_or_id).await?;
    let parent = images.resolve(&c.image_id)?;
    let mut config: Config = serde_json::from_value(c.config.clone()).unwrap_or_default();
    let container_config = config.clone();
    merge_overrides(&mut config, &options.overrides)?;
    let mut meta = super::instructions::Meta {
        config,
        cmd_set: true,
        author: options.author.clone(),
    };
    for change in &options.changes {
        let parsed = super::parser::parse(change)?;
        for i in &parsed.instructions {
            let vars = super::instructions::env_vars(&meta.config);
            super::instructions::apply(&mut meta, i, &vars, parsed.escape)?;
        }
    }
    let paused = options.pause
        && c.state.status == crate::containers::record::Status::Running
        && containers.pause(&c.id, true).await.is_ok();
    let tmp = images.options.data_root.join("tmp");
    let key = c.snapshot_key();
    let diff_ids = parent.diff_ids();
    let layer = {
        let _shared = images.gc_lock.read().await;
        let images = images.clone();
        tokio::task::spawn_blocking(move || commit_layer(&images, &key, &diff_ids, false, &tmp))
            .await
            .map_err(|e| BuildError::Invalid(format!("commit task: {e}")))?
    };
    if paused {
        if let Err(e) = containers.pause(&c.id, false).await {
            tracing::warn!(id = %c.id, error = %e, "unpause after commit");
        }
    }
    let layer = layer?;
    let step = Step {
        config: Config {
            image: c.image.clone(),
            ..meta.config
        },
        container_config,
        container: c.id.clone(),
        created_by: std::iter::once(c.path.clone())
            .chain(c.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        comment: options.comment,
        author: meta.author,
    };
    let _shared = images.gc_lock.read().await;
    let image = write_image(&images, Some(&parent), &step, Some(&layer))?;
    let name = match &reference {
        Some(r) => r.to_string(),
        None => format!("{}{}", crate::images::service::UNTAGGED, image.id),
    };
    images.set_name(record_for(&image, &name))?;
    tracing::info!(container = %c.id, image = %image.id, "committed");
    Ok(image.id)
}

/// The set fields of docker's config JSON `overrides` replace `config`'s.
fn merge_overrides(config: &mut Config, overrides: &Value) -> Result<(), super::BuildError> {
    let Some(fields) = overrides.as_object() else {
        return Ok(());
    };
    let mut merged = serde_json::to_value(&*config).unwrap_or(Value::Null);
    for (k, v) in fields {
        let empty = v.is_null()
            || v.as_str().is_some_and(str::is_empty)
            || v.as_array().is_some_and(Vec::is_empty)
            || v.as_object().is_some_and(serde_json::Map::is_empty)
            || v.as_bool() == Some(false);
        if !empty {
            merged[k] = v.clone();
        }
    }
    *config = serde_json::from_value(merged)
        .map_err(|e| super::BuildError::Invalid(format!("invalid config: {e}")))?;
    Ok(())
}

fn parse_reference(name: &str) -> Result<crate::images::reference::Reference, super::BuildError> {
    crate::images::reference::Reference::parse(name).map_err(|e| Error::from(e).into())
}
