//! OCI image layouts built by test code from Debian's busybox-static (`/bin/busybox`), and a
//! helper that pushes one to a registry with `skopeo`.
//!
//! ```no_run
//! use berth_integration::{oci_image, registry::Registry};
//! let registry = Registry::start();
//! let image = oci_image::busybox("latest");          // an OCI layout in a temp dir
//! oci_image::push(&image, &registry.host(), "busybox", None);
//! // image.manifests[0].config / .layers are the digests to expect after a pull;
//! // image.blob_path(digest) is the layout's file for a digest.
//! ```
//! Images: [`busybox`] (one gzip layer), [`whiteouts`] (three layers: gzip, gzip with a `.wh.`
//! file and an opaque dir, an uncompressed one), [`zstd_image`] (one zstd layer) and [`two_platform`]
//! (an index of linux/amd64 busybox and a small fake linux/arm64/v8 image).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Media types used here.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Fixed file time, so layers are reproducible.
const MTIME: u64 = 1_700_000_000;

/// One platform image in a layout.
#[derive(Debug, Clone)]
pub struct ManifestInfo {
    pub digest: String,
    pub size: u64,
    pub config: String,
    pub layers: Vec<String>,
    /// Uncompressed layer digests (the config's diff IDs).
    pub diff_ids: Vec<String>,
    /// `os/arch[/variant]`.
    pub platform: String,
}

/// An OCI image layout on disk.
#[derive(Debug)]
pub struct Layout {
    dir: tempfile::TempDir,
    /// The tag `index.json` names it by.
    pub tag: String,
    /// Digest of what the tag points at: the manifest, or the index for [`two_platform`].
    pub top_digest: String,
    /// The platform images (one, or two for the index).
    pub manifests: Vec<ManifestInfo>,
}

impl Layout {
    /// The layout directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The layout's file of a blob.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        blob_path(self.dir.path(), digest)
    }

    /// Every blob digest of the layout (index, manifests, configs, layers).
    pub fn blobs(&self) -> Vec<String> {
        let mut all = vec![self.top_digest.clone()];
        for m in &self.manifests {
            all.push(m.digest.clone());
            all.push(m.config.clone());
            all.extend(m.layers.iter().cloned());
        }
        all.sort();
        all.dedup();
        all
    }
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// `sha256:<hex>` of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256:<hex>` of a file, computed by `sha256sum` (an independent implementation).
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(
        out.status.success(),
        "sha256sum {}: {out:?}",
        path.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    format!(
        "sha256:{}",
        text.split_whitespace().next().unwrap_or_default()
    )
}

/// Files of a layer, as tar entries.
pub enum Entry {
    Dir(&'static str),
    File(&'static str, Vec<u8>),
    Symlink(&'static str, &'static str),
}

/// An uncompressed tar of entries (root-owned, fixed mtime).
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(MTIME);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .expect("tar dir");
            }
            Entry::File(path, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o755);
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, data.as_slice())
                    .expect("tar file");
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, path, target)
                    .expect("tar symlink");
            }
        }
    }
    builder.into_inner().expect("finish tar")
}

/// gzip of bytes.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip finish")
}

/// zstd of bytes.
pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).expect("zstd")
}

/// A busybox root filesystem: `/bin/busybox`, `sh`/`ls`/`cat` links, `/etc`, `/tmp`.
pub fn busybox_rootfs() -> Vec<Entry> {
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox (busybox-static)");
    vec![
        Entry::Dir("bin"),
        Entry::File("bin/busybox", busybox),
        Entry::Symlink("bin/sh", "busybox"),
        Entry::Symlink("bin/ls", "busybox"),
        Entry::Symlink("bin/cat", "busybox"),
        Entry::Dir("etc"),
        Entry::File("etc/hostname", b"berth-test\n".to_vec()),
        Entry::Dir("tmp"),
    ]
}

/// An uncompressed tar of `files` regular files under `data/<name>/dNN/`, with incompressible
/// pseudo-random bodies of 0 to 2 × `mean_size` bytes; the same `seed` gives the same tar.
pub fn random_tar(name: &str, files: usize, mean_size: usize, seed: &mut u64) -> Vec<u8> {
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    let mut builder = tar::Builder::new(Vec::new());
    for i in 0..files {
        let size = (next() as usize) % (2 * mean_size).max(1);
        let body: Vec<u8> = (0..size.div_ceil(8))
            .flat_map(|_| next().to_le_bytes())
            .take(size)
            .collect();
        let mut header = tar::Header::new_gnu();
        header.set_size(size as u64);
        header.set_mode(0o644);
        header.set_mtime(MTIME);
        let path = format!("data/{name}/d{:02}/f{i}", i % 37);
        builder
            .append_data(&mut header, path, body.as_slice())
            .expect("append to an in-memory tar");
    }
    builder.into_inner().expect("finish an in-memory tar")
}

/// A layer: its uncompressed tar and how it is stored.
pub struct Layer {
    pub tar: Vec<u8>,
    pub media_type: &'static str,
}

impl Layer {
    pub fn gzip(entries: &[Entry]) -> Self {
        Layer {
            tar: tar(entries),
            media_type: LAYER_GZIP,
        }
    }
    pub fn zstd(entries: &[Entry]) -> Self {
        Layer {
            tar: tar(entries),
            media_type: LAYER_ZSTD,
        }
    }
    pub fn plain(entries: &[Entry]) -> Self {
        Layer {
            tar: tar(entries),
            media_type: LAYER_TAR,
        }
    }
    fn blob(&self) -> Vec<u8> {
        match self.media_type {
            LAYER_GZIP => gzip(&self.tar),
            LAYER_ZSTD => zstd(&self.tar),
            _ => self.tar.clone(),
        }
    }
}

/// Writes a blob into a layout; returns its descriptor.
fn put_blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let digest = sha256(bytes);
    let path = blob_path(dir, &digest);
    std::fs::create_dir_all(path.parent().unwrap()).expect("blobs dir");
    std::fs::write(&path, bytes).expect("write blob");
    json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() })
}

/// Writes config, layers and manifest of one platform image into `dir`.
fn put_image(dir: &Path, platform: &str, layers: &[Layer]) -> (Value, ManifestInfo) {
    let parts: Vec<&str> = platform.split('/').collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(&l.tar)).collect();
    let mut layer_descriptors = Vec::new();
    for layer in layers {
        layer_descriptors.push(put_blob(dir, layer.media_type, &layer.blob()));
    }
    let mut config = json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": parts[1],
        "os": parts[0],
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": layers.iter().enumerate().map(|(i, _)| json!({
            "created": "2024-01-01T00:00:00Z",
            "created_by": format!("berth test layer {i}"),
        })).collect::<Vec<_>>(),
    });
    if let Some(variant) = parts.get(2) {
        config["variant"] = json!(variant);
    }
    let config = put_blob(dir, OCI_CONFIG, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layer_descriptors,
    });
    let mut descriptor = put_blob(dir, OCI_MANIFEST, &serde_json::to_vec(&manifest).unwrap());
    let mut platform_json = json!({ "architecture": parts[1], "os": parts[0] });
    if let Some(variant) = parts.get(2) {
        platform_json["variant"] = json!(variant);
    }
    descriptor["platform"] = platform_json;
    let info = ManifestInfo {
        digest: descriptor["digest"].as_str().unwrap().to_string(),
        size: descriptor["size"].as_u64().unwrap(),
        config: config["digest"].as_str().unwrap().to_string(),
        layers: layer_descriptors
            .iter()
            .map(|d| d["digest"].as_str().unwrap().to_string())
            .collect(),
        diff_ids,
        platform: platform.to_string(),
    };
    (descriptor, info)
}

/// Writes `oci-layout` and `index.json` naming `top` by `tag`.
fn finish_layout(
    dir: tempfile::TempDir,
    tag: &str,
    top: Value,
    manifests: Vec<ManifestInfo>,
) -> Layout {
    let path = dir.path();
    std::fs::write(
        path.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let mut entry = top.clone();
    if let Some(map) = entry.as_object_mut() {
        map.remove("platform");
    }
    entry["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    let index = json!({ "schemaVersion": 2, "manifests": [entry] });
    std::fs::write(path.join("index.json"), serde_json::to_vec(&index).unwrap())
        .expect("index.json");
    Layout {
        dir,
        tag: tag.to_string(),
        top_digest: top["digest"].as_str().unwrap().to_string(),
        manifests,
    }
}

/// A single-platform image (this host's arch) of the given layers.
pub fn image(tag: &str, layers: &[Layer]) -> Layout {
    let dir = tempfile::tempdir().expect("layout dir");
    let (descriptor, info) = put_image(dir.path(), &host_platform(), layers);
    finish_layout(dir, tag, descriptor, vec![info])
}

/// `linux/<this host's arch>`.
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// busybox in one gzip layer.
pub fn busybox(tag: &str) -> Layout {
    image(tag, &[Layer::gzip(&busybox_rootfs())])
}

/// Three layers: busybox with `/etc/a`, `/etc/b`, `/data/dir/{x,y}` (gzip); then a whiteout of
/// `/etc/a` and an opaque `/data/dir` holding only `z` (gzip); then `/data/new` (plain tar).
pub fn whiteouts(tag: &str) -> Layout {
    let mut base = busybox_rootfs();
    base.extend([
        Entry::File("etc/a", b"a\n".to_vec()),
        Entry::File("etc/b", b"b\n".to_vec()),
        Entry::Dir("data"),
        Entry::Dir("data/dir"),
        Entry::File("data/dir/x", b"x\n".to_vec()),
        Entry::File("data/dir/y", b"y\n".to_vec()),
    ]);
    let upper = [
        Entry::Dir("etc"),
        Entry::File("etc/.wh.a", Vec::new()),
        Entry::Dir("data"),
        Entry::Dir("data/dir"),
        Entry::File("data/dir/.wh..wh..opq", Vec::new()),
        Entry::File("data/dir/z", b"z\n".to_vec()),
    ];
    let top = [
        Entry::Dir("data"),
        Entry::File("data/new", b"new\n".to_vec()),
    ];
    image(
        tag,
        &[Layer::gzip(&base), Layer::gzip(&upper), Layer::plain(&top)],
    )
}

/// busybox in one zstd layer.
pub fn zstd_image(tag: &str) -> Layout {
    image(tag, &[Layer::zstd(&busybox_rootfs())])
}

/// An OCI index of linux/amd64 (busybox) and linux/arm64/v8 (a small fake layer).
pub fn two_platform(tag: &str) -> Layout {
    let dir = tempfile::tempdir().expect("layout dir");
    let (amd64, amd64_info) =
        put_image(dir.path(), "linux/amd64", &[Layer::gzip(&busybox_rootfs())]);
    let fake = [
        Entry::Dir("etc"),
        Entry::File("etc/arch", b"arm64\n".to_vec()),
    ];
    let (arm64, arm64_info) = put_image(dir.path(), "linux/arm64/v8", &[Layer::gzip(&fake)]);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [amd64, arm64],
    });
    let top = put_blob(dir.path(), OCI_INDEX, &serde_json::to_vec(&index).unwrap());
    finish_layout(dir, tag, top, vec![amd64_info, arm64_info])
}

/// Pushes a layout to `host/repo:layout.tag` with
/// `skopeo copy --all --preserve-digests --dest-tls-verify=false`, optionally with basic auth.
pub fn push(layout: &Layout, host: &str, repo: &str, creds: Option<(&str, &str)>) {
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
    ]);
    if let Some((user, password)) = creds {
        cmd.arg(format!("--dest-creds={user}:{password}"));
    }
    cmd.arg(format!("oci:{}:{}", layout.path().display(), layout.tag))
        .arg(format!("docker://{host}/{repo}:{}", layout.tag));
    let out = cmd.output().expect("run skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo copy to {host}/{repo}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies a layout anywhere skopeo writes: `oci-archive:FILE`, `docker-archive:FILE:name:tag`,
/// `dir:DIR`, `docker://…` (add `--dest-tls-verify=false` yourself through [`push`] for
/// registries). Digests are preserved where the format allows.
pub fn copy_to(layout: &Layout, destination: &str) {
    let out = Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:{}", layout.path().display(), layout.tag))
        .arg(destination)
        .output()
        .expect("run skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo copy to {destination}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pushes a single-platform layout converted to a Docker v2 schema 2 manifest
/// (`skopeo copy --format v2s2`): the manifest digest changes, the blobs keep theirs.
/// Returns the digest of the manifest the registry now serves.
pub fn push_docker_v2s2(layout: &Layout, host: &str, repo: &str) -> String {
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--format",
            "v2s2",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{}", layout.path().display(), layout.tag))
        .arg(format!("docker://{host}/{repo}:{}", layout.tag))
        .output()
        .expect("run skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo copy --format v2s2 to {host}/{repo}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sha256(&remote_raw(host, &format!("{repo}:{}", layout.tag)))
}

/// `skopeo inspect --raw` of a remote image: the manifest (or index) bytes it serves.
pub fn remote_raw(host: &str, reference: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/{reference}"))
        .output()
        .expect("run skopeo inspect");
    assert!(
        out.status.success(),
        "skopeo inspect {host}/{reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
