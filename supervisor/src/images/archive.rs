//! `docker save` tarballs and OCI image layouts in and out. (Owner: the archive engineer.)
//!
//! Reading: [`Spool::read`] copies every regular member of a (plain, gzip or zstd) tarball into
//! a private directory, one numbered file per member, so no member path ever reaches the
//! filesystem. Symlinks and hardlinks are only recorded and resolved lexically inside the
//! archive; a link that points outside it, an absolute or `..` member path and device nodes
//! are refused. [`plan`] then reads `manifest.json` (docker-archive, old and new layout) or
//! `index.json` (OCI layout) and verifies every digest, size and diff ID before anything is
//! imported.
//!
//! Names of OCI layouts: `io.containerd.image.name` when present, else
//! `org.opencontainers.image.ref.name` when it contains a `/` or a `:` (a full reference, as
//! podman and docker read it). A bare tag such as `v1` names no repository, so such an image
//! is loaded unnamed (docker's `Loaded image ID: sha256:…`) and the tag is logged.
//!
//! Writing: [`DockerArchiveWriter`] streams a docker-archive (`manifest.json`, `repositories`,
//! `<config-hex>.json`, one `<id>/{VERSION,json,layer.tar}` per layer, layers uncompressed).
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::content::{self, UNSIZED_LIMIT};
use super::snapshot::chain_ids;

/// Docker's image manifest (schema 2) and its media types.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// OCI media types.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Links followed before a member is declared a loop.
const MAX_HOPS: usize = 16;

/// Errors reading or writing an archive; each names the member, path or digest it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("archive member {member:?}: {reason}")]
    Member { member: String, reason: String },
    #[error("archive member {member:?}: {source}")]
    MemberIo { member: String, source: io::Error },
    #[error("archive member {member:?}: content has digest {actual}, expected {expected}")]
    Digest {
        member: String,
        expected: String,
        actual: String,
    },
    #[error("archive member {member:?}: {actual} bytes, the manifest says {expected}")]
    Size {
        member: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "archive member {member:?}: layer has diff ID {actual}, the image config says {expected}"
    )]
    DiffId {
        member: String,
        expected: String,
        actual: String,
    },
    #[error("archive member {member:?}: invalid JSON: {source}")]
    Json {
        member: String,
        source: serde_json::Error,
    },
    #[error("archive: {0}")]
    Format(String),
    #[error("reading the archive: {0}")]
    Read(io::Error),
    #[error("writing the archive: {0}")]
    Write(io::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("blob {digest}: layer has diff ID {actual}, the image config says {expected}")]
    BlobDiffId {
        digest: String,
        expected: String,
        actual: String,
    },
}

fn member_err(member: &str, reason: impl Into<String>) -> Error {
    Error::Member {
        member: member.to_string(),
        reason: reason.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Compression and hashing

use super::layer::bound::{self, SizeBound};
pub use super::layer::stream::Compression;
use super::layer::stream::{self, decompressed, ExtensionTooLarge, Hashing};

/// What a layer blob hashes to, stored and uncompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSums {
    pub digest: String,
    pub size: u64,
    pub diff_id: String,
    pub diff_size: u64,
    pub compression: Compression,
}

/// Reads a whole layer blob once, hashing it as stored and as decompressed.
pub fn layer_sums(input: impl Read, bound: SizeBound) -> io::Result<LayerSums> {
    let mut raw = Hashing::new(input);
    let mut plain = Hashing::new(io::sink());
    let (compression, mut decoder) = bound::decompress(&mut raw, bound)?;
    io::copy(&mut decoder, &mut plain)?;
    drop(decoder);
    io::copy(&mut raw, &mut io::sink())?;
    let (digest, size) = raw.finish();
    let (diff_id, diff_size) = plain.finish();
    Ok(LayerSums {
        digest,
        size,
        diff_id,
        diff_size,
        compression,
    })
}

// ---------------------------------------------------------------------------------------------
// Spooling a tarball

#[derive(Debug, Clone)]
enum Entry {
    File {
        path: PathBuf,
        size: u64,
    },
    /// A symlink or hardlink, its target already resolved to a member path.
    Link(String),
}

/// The members of a tarball, spooled into a private directory that is removed on drop.
#[derive(Debug)]
pub struct Spool {
    dir: tempfile::TempDir,
    entries: HashMap<String, Entry>,
    /// Files written so far, which names the next one.
    files: u64,
    /// How far the archive, and each layer in it, may expand.
    bound: SizeBound,
}

/// Splits a member path into components, refusing absolute paths and `..`.
pub fn member_path(name: &str) -> Result<String, Error> {
    if name.starts_with('/') {
        return Err(member_err(name, "absolute path refused"));
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(member_err(name, "path with \"..\" refused")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Resolves a link target lexically against `base` (a member directory); refuses targets
/// that leave the archive.
pub fn link_target(member: &str, base: &str, target: &str) -> Result<String, Error> {
    if target.starts_with('/') {
        return Err(member_err(
            member,
            format!("link to absolute path {target:?} refused"),
        ));
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(member_err(
                        member,
                        format!("link to {target:?} points outside the archive"),
                    ));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Spool directories are `load-<pid>-<random>`.
const SPOOL_PREFIX: &str = "load-";

/// Removes spool directories left by processes that died (kill -9, crash) under `under`.
fn remove_stale(under: &Path) {
    let Ok(entries) = std::fs::read_dir(under) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(SPOOL_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                tracing::info!(dir = %entry.path().display(), "removing a stale load spool");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// A read error of the archive stream; an oversized extension header is named as the member.
fn read_error(e: io::Error) -> Error {
    match ExtensionTooLarge::of(&e) {
        Some(refused) => member_err(&refused.header, refused.reason()),
        None => Error::Read(e),
    }
}

fn parent_of(member: &str) -> &str {
    member.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

impl Spool {
    /// Reads a tarball (plain, gzip or zstd) into a new directory under `under`.
    pub fn read(input: &mut dyn Read, under: &Path, bound: SizeBound) -> Result<Spool, Error> {
        crate::perms::make_dir(under, 0o700)
            .map_err(|e| io_err(under)(io::Error::other(e.to_string())))?;
        remove_stale(under);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{SPOOL_PREFIX}{}-", std::process::id()))
            .tempdir_in(under)
            .map_err(io_err(under))?;
        let mut spool = Spool {
            dir,
            entries: HashMap::new(),
            files: 0,
            bound,
        };
        let (_, plain) = bound::decompress(input, bound).map_err(Error::Read)?;
        let (guarded, arm) = stream::guarded(plain);
        let mut tar = tar::Archive::new(guarded);
        stream::for_each_entry(&mut tar, &arm, read_error, |entry| spool.add(entry))?;
        tracing::debug!(members = spool.entries.len(), dir = %spool.dir.path().display(), "spooled archive");
        Ok(spool)
    }

    fn add(&mut self, entry: &mut tar::Entry<'_, impl Read>) -> Result<(), Error> {
        let raw = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|e| member_err(&String::from_utf8_lossy(e.as_bytes()), "not UTF-8"))?;
        let member = member_path(&raw)?;
        let kind = entry.header().entry_type();
        let link = || -> Result<String, Error> {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| member_err(&raw, "link without a target"))?;
            Ok(target)
        };
        use tar::EntryType as T;
        match kind {
            T::Directory | T::XGlobalHeader => Ok(()),
            T::Symlink => {
                let target = link_target(&raw, parent_of(&member), &link()?)?;
                self.entries.insert(member, Entry::Link(target));
                Ok(())
            }
            T::Link => {
                let target = link_target(&raw, "", &link()?)?;
                self.entries.insert(member, Entry::Link(target));
                Ok(())
            }
            T::Regular | T::Continuous => {
                if member.is_empty() {
                    return Err(member_err(&raw, "file without a name"));
                }
                let path = self.dir.path().join(self.files.to_string());
                self.files += 1;
                let mut file = File::create(&path).map_err(io_err(&path))?;
                let size = io::copy(entry, &mut file).map_err(|source| Error::MemberIo {
                    member: raw.clone(),
                    source,
                })?;
                self.entries.insert(member, Entry::File { path, size });
                Ok(())
            }
            other => Err(member_err(&raw, format!("entry type {other:?} refused"))),
        }
    }

    /// The regular file a member path names, links inside the archive followed lexically.
    fn resolve(&self, member: &str) -> Result<(PathBuf, u64), Error> {
        let mut path = member_path(member)?;
        for _ in 0..MAX_HOPS {
            match self.redirect(&path) {
                Some(next) => path = next,
                None => {
                    return match self.entries.get(&path) {
                        Some(Entry::File { path, size }) => Ok((path.clone(), *size)),
                        _ => Err(member_err(member, "not in the archive")),
                    }
                }
            }
        }
        Err(member_err(member, "too many levels of links"))
    }

    /// If a prefix of `path` (or `path` itself) is a link, the path with it replaced.
    fn redirect(&self, path: &str) -> Option<String> {
        let parts: Vec<&str> = path.split('/').collect();
        for i in 1..=parts.len() {
            if let Some(Entry::Link(target)) = self.entries.get(&parts[..i].join("/")) {
                let rest = &parts[i..];
                return Some(if rest.is_empty() {
                    target.clone()
                } else if target.is_empty() {
                    rest.join("/")
                } else {
                    format!("{target}/{}", rest.join("/"))
                });
            }
        }
        None
    }

    /// Whether the archive has this member.
    pub fn contains(&self, member: &str) -> bool {
        self.resolve(member).is_ok()
    }

    /// Opens a member, with its size.
    pub fn open(&self, member: &str) -> Result<(File, u64), Error> {
        let (path, size) = self.resolve(member)?;
        let file = File::open(&path).map_err(io_err(&path))?;
        Ok((file, size))
    }

    /// Reads a small member (a manifest, an index, a config), at most `limit` bytes.
    pub fn read_small(&self, member: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let (mut file, size) = self.open(member)?;
        if size > limit {
            return Err(member_err(
                member,
                format!("{size} bytes, more than the {limit} allowed"),
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes)
            .map_err(|source| Error::MemberIo {
                member: member.to_string(),
                source,
            })?;
        Ok(bytes)
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, member: &str) -> Result<T, Error> {
        let bytes = self.read_small(member, UNSIZED_LIMIT)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            member: member.to_string(),
            source,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// What a spooled archive holds, verified

/// A blob to import: its digest, size and the member holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub member: String,
}

/// One image of an archive, every digest verified.
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    /// Full references (`docker.io/library/busybox:latest`).
    pub names: Vec<String>,
    /// Its config; the digest is the image ID.
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// The manifest bytes (as found in an OCI layout, or built for a docker-archive).
    pub manifest: Vec<u8>,
    pub manifest_media_type: String,
}

impl ArchiveImage {
    /// The manifest's digest.
    pub fn manifest_digest(&self) -> String {
        content::digest_of(&self.manifest)
    }
}

/// One entry of docker's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestEntry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// Reads and verifies the images of a spooled docker-archive or OCI layout.
pub fn plan(spool: &Spool) -> Result<Vec<ArchiveImage>, Error> {
    let mut checked = HashMap::new();
    if spool.contains("manifest.json") {
        let entries: Vec<ManifestEntry> = spool.read_json("manifest.json")?;
        entries
            .iter()
            .map(|e| docker_image(spool, e, &mut checked))
            .collect()
    } else if spool.contains("index.json") {
        oci_images(spool, &mut checked)
    } else {
        Err(Error::Format(
            "neither manifest.json (docker-archive) nor index.json (OCI layout) found".into(),
        ))
    }
}

/// Layer sums already computed, by member.
type Checked = HashMap<String, LayerSums>;

fn sums_of(spool: &Spool, member: &str, checked: &mut Checked) -> Result<LayerSums, Error> {
    if let Some(s) = checked.get(member) {
        return Ok(s.clone());
    }
    let (file, _) = spool.open(member)?;
    let sums = layer_sums(file, spool.bound).map_err(|source| Error::MemberIo {
        member: member.to_string(),
        source,
    })?;
    checked.insert(member.to_string(), sums.clone());
    Ok(sums)
}

/// The digest a member's name claims: `blobs/sha256/<hex>` or `<hex>.json`.
fn named_digest(member: &str) -> Option<String> {
    let base = member.rsplit('/').next().unwrap_or(member);
    let hex = base.strip_suffix(".json").unwrap_or(base);
    let digest = format!("sha256:{hex}");
    content::hex_of(&digest).is_ok().then_some(digest)
}

fn check_named(member: &str, actual: &str) -> Result<(), Error> {
    match named_digest(member) {
        Some(expected) if expected != actual => Err(Error::Digest {
            member: member.to_string(),
            expected,
            actual: actual.to_string(),
        }),
        _ => Ok(()),
    }
}

fn diff_ids_of(member: &str, config: &[u8]) -> Result<Vec<String>, Error> {
    let value: Value = serde_json::from_slice(config).map_err(|source| Error::Json {
        member: member.to_string(),
        source,
    })?;
    let ids = value["rootfs"]["diff_ids"]
        .as_array()
        .ok_or_else(|| member_err(member, "image config without rootfs.diff_ids"))?;
    Ok(ids
        .iter()
        .map(|d| d.as_str().unwrap_or_default().to_string())
        .collect())
}

fn check_diff_ids(
    config_member: &str,
    diff_ids: &[String],
    layers: &[(String, LayerSums)],
) -> Result<(), Error> {
    if diff_ids.len() != layers.len() {
        return Err(member_err(
            config_member,
            format!("{} diff IDs for {} layers", diff_ids.len(), layers.len()),
        ));
    }
    for (expected, (member, sums)) in diff_ids.iter().zip(layers) {
        if *expected != sums.diff_id {
            return Err(Error::DiffId {
                member: member.clone(),
                expected: expected.clone(),
                actual: sums.diff_id.clone(),
            });
        }
    }
    Ok(())
}

/// An image name an archive gives: a tag, never a digest reference (a digest names content,
/// which only the content itself may claim), as dockerd's "invalid tag".
fn parse_name(name: &str, member: &str) -> Result<String, Error> {
    let r = super::reference::Reference::parse(name)
        .map_err(|e| member_err(member, format!("image name {name:?}: {e}")))?;
    if r.digest.is_some() {
        return Err(member_err(
            member,
            format!("invalid tag {name:?}: a digest reference is not a name an archive may give"),
        ));
    }
    Ok(r.to_string())
}

fn docker_image(
    spool: &Spool,
    entry: &ManifestEntry,
    checked: &mut Checked,
) -> Result<ArchiveImage, Error> {
    let config_bytes = spool.read_small(&entry.config, UNSIZED_LIMIT)?;
    let config_digest = content::digest_of(&config_bytes);
    check_named(&entry.config, &config_digest)?;
    let diff_ids = diff_ids_of(&entry.config, &config_bytes)?;
    let mut layers = Vec::new();
    for member in &entry.layers {
        let sums = sums_of(spool, member, checked)?;
        if member_path(member)?.starts_with("blobs/") {
            check_named(member, &sums.digest)?;
        }
        layers.push((member.clone(), sums));
    }
    check_diff_ids(&entry.config, &diff_ids, &layers)?;
    let names = entry
        .repo_tags
        .iter()
        .flatten()
        .map(|t| parse_name(t, "manifest.json"))
        .collect::<Result<Vec<_>, _>>()?;
    let config = Blob {
        digest: config_digest,
        size: config_bytes.len() as u64,
        member: entry.config.clone(),
    };
    let (manifest, manifest_media_type) = docker_manifest(&config, &layers);
    Ok(ArchiveImage {
        names,
        config,
        layers: layers
            .into_iter()
            .map(|(member, s)| Blob {
                digest: s.digest,
                size: s.size,
                member,
            })
            .collect(),
        manifest,
        manifest_media_type,
    })
}

/// A docker schema 2 manifest for the layers as found (an OCI one if a layer is zstd, which
/// docker's media types cannot say). The config is unchanged, so the image ID is kept.
fn docker_manifest(config: &Blob, layers: &[(String, LayerSums)]) -> (Vec<u8>, String) {
    let zstd = layers
        .iter()
        .any(|(_, s)| s.compression == Compression::Zstd);
    let layer_type = |c: Compression| match (zstd, c) {
        (false, Compression::Gzip) => DOCKER_LAYER_GZIP,
        (false, _) => DOCKER_LAYER,
        (true, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
        (true, Compression::Zstd) => OCI_LAYER_ZSTD,
        (true, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
    };
    let (media_type, config_type) = if zstd {
        (OCI_MANIFEST, OCI_CONFIG)
    } else {
        (DOCKER_MANIFEST, DOCKER_CONFIG)
    };
    let layers: Vec<Value> = layers
        .iter()
        .map(|(_, s)| json!({"mediaType": layer_type(s.compression), "size": s.size, "digest": s.digest}))
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "size": config.size, "digest": config.digest},
        "layers": layers,
    });
    (
        serde_json::to_vec(&manifest).unwrap_or_default(),
        media_type.to_string(),
    )
}

/// `blobs/sha256/<hex>` of a digest, checked.
fn blob_member(digest: &str) -> Result<String, Error> {
    let hex =
        content::hex_of(digest).map_err(|e| Error::Format(format!("descriptor digest: {e}")))?;
    Ok(format!("blobs/sha256/{hex}"))
}

/// A descriptor's blob read whole (small: an index, a manifest, a config), size and digest
/// verified.
fn small_blob(spool: &Spool, descriptor: &Value) -> Result<(Blob, Vec<u8>), Error> {
    let digest = descriptor["digest"].as_str().unwrap_or_default();
    let member = blob_member(digest)?;
    let size = descriptor["size"]
        .as_u64()
        .ok_or_else(|| member_err(&member, "descriptor without a size"))?;
    // The size is the archive's word: never read more than any manifest or config needs.
    if size > UNSIZED_LIMIT {
        return Err(member_err(
            &member,
            format!("descriptor declares {size} bytes, more than the {UNSIZED_LIMIT} allowed"),
        ));
    }
    let bytes = spool.read_small(&member, size)?;
    let blob = Blob {
        digest: digest.to_string(),
        size,
        member: member.clone(),
    };
    verify(&blob, &content::digest_of(&bytes), bytes.len() as u64)?;
    Ok((blob, bytes))
}

fn verify(blob: &Blob, digest: &str, size: u64) -> Result<(), Error> {
    if size != blob.size {
        return Err(Error::Size {
            member: blob.member.clone(),
            expected: blob.size,
            actual: size,
        });
    }
    if digest != blob.digest {
        return Err(Error::Digest {
            member: blob.member.clone(),
            expected: blob.digest.clone(),
            actual: digest.to_string(),
        });
    }
    Ok(())
}

fn parse_json(member: &str, bytes: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        member: member.to_string(),
        source,
    })
}

fn oci_images(spool: &Spool, checked: &mut Checked) -> Result<Vec<ArchiveImage>, Error> {
    let index: Value = spool.read_json("index.json")?;
    let descriptors = index["manifests"]
        .as_array()
        .ok_or_else(|| member_err("index.json", "no manifests"))?;
    let mut images: Vec<ArchiveImage> = Vec::new();
    for descriptor in descriptors {
        let image = oci_image(spool, descriptor, checked)?;
        match images
            .iter_mut()
            .find(|i| i.manifest_digest() == image.manifest_digest())
        {
            Some(same) => same.names.extend(image.names),
            None => images.push(image),
        }
    }
    Ok(images)
}

/// The name an OCI layout gives a manifest, if any (see the module docs).
fn oci_name(descriptor: &Value) -> Result<Option<String>, Error> {
    let annotations = &descriptor["annotations"];
    if let Some(name) = annotations[CONTAINERD_NAME].as_str() {
        return parse_name(name, "index.json").map(Some);
    }
    match annotations[REF_NAME].as_str() {
        Some(name) if name.contains(['/', ':']) => parse_name(name, "index.json").map(Some),
        Some(tag) => {
            tracing::info!(
                tag,
                "OCI layout ref name is a bare tag; image loaded unnamed"
            );
            Ok(None)
        }
        None => Ok(None),
    }
}

fn oci_image(
    spool: &Spool,
    descriptor: &Value,
    checked: &mut Checked,
) -> Result<ArchiveImage, Error> {
    let names: Vec<String> = oci_name(descriptor)?.into_iter().collect();
    let (mut blob, mut bytes) = small_blob(spool, descriptor)?;
    let mut manifest = parse_json(&blob.member, &bytes)?;
    let mut media_type = descriptor["mediaType"]
        .as_str()
        .or(manifest["mediaType"].as_str())
        .unwrap_or(OCI_MANIFEST)
        .to_string();
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        let child = platform_child(spool, &blob.member, &manifest)?;
        (blob, bytes) = small_blob(spool, &child)?;
        manifest = parse_json(&blob.member, &bytes)?;
        media_type = child["mediaType"]
            .as_str()
            .or(manifest["mediaType"].as_str())
            .unwrap_or(OCI_MANIFEST)
            .to_string();
    }
    let (config, config_bytes) = small_blob(spool, &manifest["config"])?;
    let diff_ids = diff_ids_of(&config.member, &config_bytes)?;
    let mut layers = Vec::new();
    let mut sums = Vec::new();
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        let (layer_blob, layer_sums) = oci_layer(spool, layer, checked)?;
        sums.push((layer_blob.member.clone(), layer_sums));
        layers.push(layer_blob);
    }
    check_diff_ids(&config.member, &diff_ids, &sums)?;
    Ok(ArchiveImage {
        names,
        config,
        layers,
        manifest: bytes,
        manifest_media_type: media_type,
    })
}

fn oci_layer(
    spool: &Spool,
    descriptor: &Value,
    checked: &mut Checked,
) -> Result<(Blob, LayerSums), Error> {
    let digest = descriptor["digest"].as_str().unwrap_or_default();
    let member = blob_member(digest)?;
    let size = descriptor["size"]
        .as_u64()
        .ok_or_else(|| member_err(&member, "layer descriptor without a size"))?;
    let blob = Blob {
        digest: digest.to_string(),
        size,
        member: member.clone(),
    };
    let (_, stored) = spool.open(&member)?;
    if stored != size {
        return Err(Error::Size {
            member,
            expected: size,
            actual: stored,
        });
    }
    let sums = sums_of(spool, &member, checked)?;
    verify(&blob, &sums.digest, sums.size)?;
    Ok((blob, sums))
}

/// The host's platform in OCI terms.
/// The manifest of an index for this host's platform that the archive holds.
fn platform_child(spool: &Spool, member: &str, index: &Value) -> Result<Value, Error> {
    let arch = super::registry::Platform::host().architecture;
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| {
            m["platform"]["os"] == "linux"
                && m["platform"]["architecture"] == arch
                && blob_member(m["digest"].as_str().unwrap_or_default())
                    .map(|b| spool.contains(&b))
                    .unwrap_or(false)
        })
        .cloned()
        .ok_or_else(|| member_err(member, format!("no linux/{arch} manifest in the archive")))
}

// ---------------------------------------------------------------------------------------------
// Writing a docker-archive

/// One layer to write: its diff ID and the path of its (possibly compressed) blob.
#[derive(Debug, Clone)]
pub struct LayerFile {
    pub digest: String,
    pub diff_id: String,
    pub path: PathBuf,
}

/// Streams a docker-archive: layers as they come, `manifest.json` and `repositories` last.
pub struct DockerArchiveWriter<W: Write> {
    tar: tar::Builder<W>,
    /// Layer member already written, by diff ID.
    written: HashMap<String, String>,
    configs: HashMap<String, usize>,
    manifest: Vec<ManifestEntry>,
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

fn header(size: u64, mode: u32, mtime: u64, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl<W: Write> DockerArchiveWriter<W> {
    pub fn new(out: W) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        DockerArchiveWriter {
            tar,
            written: HashMap::new(),
            configs: HashMap::new(),
            manifest: Vec::new(),
            repositories: BTreeMap::new(),
        }
    }

    fn file(&mut self, member: &str, mtime: u64, data: impl Read, size: u64) -> Result<(), Error> {
        let mut h = header(size, 0o644, mtime, tar::EntryType::Regular);
        self.tar
            .append_data(&mut h, member, data)
            .map_err(Error::Write)
    }

    fn dir(&mut self, member: &str, mtime: u64) -> Result<(), Error> {
        let mut h = header(0, 0o755, mtime, tar::EntryType::Directory);
        self.tar
            .append_data(&mut h, format!("{member}/"), io::empty())
            .map_err(Error::Write)
    }

    /// Adds one image: its config bytes, its names (`busybox:latest`, familiar form) and its
    /// layers, each written once per archive, uncompressed.
    pub fn add_image(
        &mut self,
        config: &[u8],
        tags: &[String],
        layers: &[LayerFile],
    ) -> Result<(), Error> {
        let id = content::digest_of(config);
        let hex = id.trim_start_matches("sha256:").to_string();
        if let Some(&i) = self.configs.get(&id) {
            let entry = &mut self.manifest[i];
            let repo_tags = entry.repo_tags.get_or_insert_with(Vec::new);
            repo_tags.extend(tags.iter().cloned());
            repo_tags.sort();
            repo_tags.dedup();
            let top = entry.layers.last().cloned();
            return self.add_repositories(tags, top);
        }
        let mtime = created_of(config);
        self.file(&format!("{hex}.json"), mtime, config, config.len() as u64)?;
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = chain_ids(&diff_ids);
        let mut members = Vec::new();
        let mut parent: Option<String> = None;
        for (layer, chain) in layers.iter().zip(&chains) {
            let layer_id = chain.trim_start_matches("sha256:").to_string();
            let member = match self.written.get(&layer.diff_id) {
                Some(m) => m.clone(),
                None => self.add_layer(&layer_id, parent.as_deref(), layer, mtime)?,
            };
            parent = Some(layer_id);
            members.push(member);
        }
        self.configs.insert(id, self.manifest.len());
        self.manifest.push(ManifestEntry {
            config: format!("{hex}.json"),
            repo_tags: (!tags.is_empty()).then(|| tags.to_vec()),
            layers: members.clone(),
        });
        self.add_repositories(tags, members.last().cloned())
    }

    fn add_repositories(&mut self, tags: &[String], top: Option<String>) -> Result<(), Error> {
        let Some(top) = top else { return Ok(()) };
        let top = top.trim_end_matches("/layer.tar").to_string();
        for tag in tags {
            if let Some((repo, t)) = tag.rsplit_once(':') {
                self.repositories
                    .entry(repo.to_string())
                    .or_default()
                    .insert(t.to_string(), top.clone());
            }
        }
        Ok(())
    }

    fn add_layer(
        &mut self,
        layer_id: &str,
        parent: Option<&str>,
        layer: &LayerFile,
        mtime: u64,
    ) -> Result<String, Error> {
        let open = || File::open(&layer.path).map_err(io_err(&layer.path));
        // A stored layer was bounded when it came in.
        let sums = layer_sums(open()?, SizeBound::fixed(u64::MAX)).map_err(io_err(&layer.path))?;
        if sums.diff_id != layer.diff_id {
            return Err(Error::BlobDiffId {
                digest: layer.digest.clone(),
                expected: layer.diff_id.clone(),
                actual: sums.diff_id,
            });
        }
        self.dir(layer_id, mtime)?;
        self.file(&format!("{layer_id}/VERSION"), mtime, &b"1.0"[..], 3)?;
        let mut v1 = json!({
            "id": layer_id,
            "created": "1970-01-01T00:00:00Z",
            "container_config": {},
            "os": "linux",
        });
        if let Some(p) = parent {
            v1["parent"] = json!(p);
        }
        let v1 = serde_json::to_vec(&v1).unwrap_or_default();
        self.file(
            &format!("{layer_id}/json"),
            mtime,
            v1.as_slice(),
            v1.len() as u64,
        )?;
        let member = format!("{layer_id}/layer.tar");
        let plain = decompressed(open()?).map_err(io_err(&layer.path))?;
        self.file(&member, mtime, plain.take(sums.diff_size), sums.diff_size)?;
        tracing::debug!(layer = %layer.digest, member, bytes = sums.diff_size, "saved layer");
        self.written.insert(layer.diff_id.clone(), member.clone());
        Ok(member)
    }

    /// Writes `manifest.json` and `repositories` and ends the tarball; returns the output.
    pub fn finish(mut self) -> Result<W, Error> {
        let manifest = serde_json::to_vec(&self.manifest).unwrap_or_default();
        self.file(
            "manifest.json",
            0,
            manifest.as_slice(),
            manifest.len() as u64,
        )?;
        if !self.repositories.is_empty() {
            let repos = serde_json::to_vec(&self.repositories).unwrap_or_default();
            self.file("repositories", 0, repos.as_slice(), repos.len() as u64)?;
        }
        self.tar.into_inner().map_err(Error::Write)
    }
}

/// The config's `created` time in unix seconds (0 when absent).
fn created_of(config: &[u8]) -> u64 {
    serde_json::from_slice::<Value>(config)
        .ok()
        .and_then(|v| v["created"].as_str().map(str::to_string))
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.timestamp().max(0) as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn add_file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }

    /// A raw header whose name the tar crate would refuse to write (`..`, absolute).
    fn add_raw(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, link: &str) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(if kind == tar::EntryType::Regular {
            1
        } else {
            0
        });
        h.set_mode(0o644);
        h.set_cksum();
        let data: &[u8] = if kind == tar::EntryType::Regular {
            b"x"
        } else {
            b""
        };
        b.append(&h, data).unwrap();
    }

    fn spool(bytes: &[u8]) -> Result<(tempfile::TempDir, Spool), Error> {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::read(&mut &bytes[..], dir.path(), SizeBound::default())?;
        Ok((dir, s))
    }

    #[test]
    fn member_paths_are_normalised_and_escapes_refused() {
        assert_eq!(member_path("./a//b/./c").unwrap(), "a/b/c");
        assert!(member_path("../a").is_err());
        assert!(member_path("a/../../b").is_err());
        assert!(member_path("/etc/passwd").is_err());
        assert_eq!(
            link_target("m", "abc", "../def/layer.tar").unwrap(),
            "def/layer.tar"
        );
        assert!(link_target("m", "abc", "../../x").is_err());
        assert!(link_target("m", "", "/etc").is_err());
    }

    #[test]
    fn compression_is_detected_and_layers_hashed_both_ways() {
        let plain = b"hello layer".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&plain[..], 3).unwrap();
        for (bytes, kind) in [
            (&plain, Compression::None),
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
        ] {
            let sums = layer_sums(&bytes[..], SizeBound::default()).unwrap();
            assert_eq!(sums.compression, kind);
            assert_eq!(sums.digest, content::digest_of(bytes));
            assert_eq!(sums.size, bytes.len() as u64);
            assert_eq!(sums.diff_id, content::digest_of(&plain));
            assert_eq!(sums.diff_size, plain.len() as u64);
        }
    }

    #[test]
    fn links_resolve_inside_the_archive_only() {
        let bytes = tarball(|b| {
            add_file(b, "a/layer.tar", b"data");
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "b/layer.tar", "../a/layer.tar")
                .unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "c", "a").unwrap();
        });
        let (_d, s) = spool(&bytes).unwrap();
        assert_eq!(s.read_small("b/layer.tar", 10).unwrap(), b"data");
        assert_eq!(s.read_small("c/layer.tar", 10).unwrap(), b"data");
        assert!(s.read_small("a/layer.tar", 2).is_err());
        assert!(!s.contains("nothing"));
    }

    #[test]
    fn escaping_members_are_refused() {
        for (name, kind, link) in [
            ("../evil", tar::EntryType::Regular, ""),
            ("/abs", tar::EntryType::Regular, ""),
            ("l", tar::EntryType::Symlink, "../../etc"),
            ("l", tar::EntryType::Symlink, "/etc"),
            ("h", tar::EntryType::Link, "../x"),
            ("dev", tar::EntryType::Char, ""),
        ] {
            let bytes = tarball(|b| add_raw(b, name, kind, link));
            let err = spool(&bytes)
                .err()
                .unwrap_or_else(|| panic!("{name} accepted"));
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn duplicate_members_keep_their_own_contents() {
        let bytes = tarball(|b| {
            add_file(b, "a", b"1");
            add_file(b, "a", b"2");
            add_file(b, "b", b"3");
        });
        let (_d, s) = spool(&bytes).unwrap();
        assert_eq!(s.read_small("a", 10).unwrap(), b"2");
        assert_eq!(s.read_small("b", 10).unwrap(), b"3");
    }

    #[test]
    fn spools_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(format!("{SPOOL_PREFIX}{}-x", u32::MAX - 1));
        std::fs::create_dir(&stale).unwrap();
        let bytes = tarball(|b| add_file(b, "x", b"1"));
        let _s = Spool::read(&mut &bytes[..], dir.path(), SizeBound::default()).unwrap();
        assert!(!stale.exists());
    }

    #[test]
    fn spool_dir_is_removed_on_drop() {
        let bytes = tarball(|b| add_file(b, "x", b"1"));
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::read(&mut &bytes[..], dir.path(), SizeBound::default()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(s);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_long_name_bomb_is_refused_without_reading_it() {
        // 8 GiB declared, 4 GiB of zeros present in about 4 MB of gzip.
        let bomb = crate::images::layer::stream::tests::long_name_bomb(8 << 30, 4096);
        let started = std::time::Instant::now();
        let error = spool(&bomb).expect_err("bomb accepted").to_string();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            error.contains("././@LongLink") && error.contains("8589934592 bytes"),
            "{error}"
        );
    }

    #[test]
    fn an_index_declaring_a_huge_manifest_is_refused_unread() {
        let manifest = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        let digest = content::digest_of(manifest);
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": 1_000_000_000_000u64}],
        }))
        .unwrap();
        let bytes = tarball(|b| {
            add_file(b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
            add_file(b, "index.json", &index);
            add_file(b, &blob_member(&digest).unwrap(), manifest);
        });
        let (_d, s) = spool(&bytes).unwrap();
        let error = plan(&s).expect_err("huge manifest accepted").to_string();
        assert!(
            error.contains(&format!("more than the {UNSIZED_LIMIT} allowed"))
                && error.contains("1000000000000"),
            "{error}"
        );
    }
}
