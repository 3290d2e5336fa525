//! `RUN --mount=…` (BuildKit's syntax, which the classic builder refuses): what a RUN step
//! mounts besides its image, none of it in the layer it makes.
//!
//! - `type=cache,target=…[,id=…][,mode=…][,uid=…][,gid=…][,sharing=…]`: a directory kept by
//!   the daemon across builds (under the data root's `build-cache-mounts/`, by id, the
//!   target when none), mounted read-write;
//! - `type=bind,target=…[,source=…]`: a path of the build context (its root by default),
//!   resolved inside it, mounted read-only; its content is part of the step's cache key;
//! - `type=tmpfs,target=…[,size=…]`: an empty tmpfs.
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::context::{self, Context};
use super::BuildError;

/// One `--mount` of a RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    /// The container's `HostConfig.Mounts` entry.
    pub api: Value,
    /// Where it is mounted, absolute.
    pub target: String,
    /// What of it the cache key depends on.
    pub key: String,
}

fn invalid(message: impl Into<String>) -> BuildError {
    BuildError::Invalid(message.into())
}

/// `type=cache,target=/x,…` as pairs; `ro`/`rw`-style words alone are `(word, "true")`.
fn fields(spec: &str) -> Vec<(String, String)> {
    spec.split(',')
        .filter(|f| !f.is_empty())
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
            None => (f.trim().to_ascii_lowercase(), "true".into()),
        })
        .collect()
}

fn number(name: &str, v: &str, radix: u32) -> Result<u32, BuildError> {
    u32::from_str_radix(v, radix).map_err(|_| invalid(format!("invalid value for {name}: {v}")))
}

/// Parses one `--mount` value; `workdir` makes a relative target absolute.
pub fn parse(
    spec: &str,
    workdir: &str,
    context: &Context,
    cache_root: &Path,
) -> Result<RunMount, BuildError> {
    let mut kind = "bind".to_string();
    let (mut target, mut source, mut id) = (None, None, None);
    let (mut mode, mut uid, mut gid, mut size) = (0o755, 0, 0, 0i64);
    let mut read_write = false;
    for (k, v) in fields(spec) {
        match k.as_str() {
            "type" => kind = v,
            "target" | "dst" | "destination" => target = Some(v),
            "source" | "src" => source = Some(v),
            "id" => id = Some(v),
            "mode" => mode = number("mode", &v, 8)?,
            "uid" => uid = number("uid", &v, 10)?,
            "gid" => gid = number("gid", &v, 10)?,
            "size" => {
                size = v
                    .parse()
                    .map_err(|_| invalid(format!("invalid value for size: {v}")))?
            }
            "rw" | "readwrite" => read_write = v != "false",
            "ro" | "readonly" => read_write = v == "false",
            "sharing" if matches!(v.as_str(), "shared" | "private" | "locked") => {}
            "from" => {
                return Err(invalid(
                    "RUN --mount: from= (a stage or image as the source) is not supported by this builder",
                ))
            }
            other => return Err(invalid(format!("RUN --mount: unexpected key '{other}'"))),
        }
    }
    let target = target.ok_or_else(|| invalid("RUN --mount: the target is missing"))?;
    let target = super::instructions::clean_abs(&Path::new(workdir).join(&target));
    match kind.as_str() {
        "cache" => {
            let name = id.unwrap_or_else(|| target.clone());
            let dir = cache_root.join(hex::encode(Sha256::digest(name.as_bytes())));
            if !dir.exists() {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| BuildError::Context(format!("{}: {e}", dir.display())))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
                    .and_then(|()| std::os::unix::fs::chown(&dir, Some(uid), Some(gid)))
                    .map_err(|e| BuildError::Context(format!("{}: {e}", dir.display())))?;
            }
            Ok(RunMount {
                api: json!({ "Type": "bind", "Source": dir, "Target": target }),
                key: format!("cache {name} {target} {mode:o} {uid}:{gid}"),
                target,
            })
        }
        "bind" => {
            if read_write {
                return Err(invalid(
                    "RUN --mount=type=bind: rw is not supported by this builder (the source is mounted read-only)",
                ));
            }
            let source = source.unwrap_or_else(|| ".".into());
            let found = context.sources(&source).map_err(|e| match e {
                BuildError::Copy(m) => invalid(format!("RUN --mount: {m}")),
                other => other,
            })?;
            let [one] = found.as_slice() else {
                return Err(invalid(format!(
                    "RUN --mount: the source {source} names no single path"
                )));
            };
            // The path the kernel resolved inside the context, not the name as written.
            let resolved = std::fs::read_link(format!("/proc/self/fd/{}", one.file.as_raw_fd()))
                .map_err(|e| BuildError::Context(format!("{source}: {e}")))?;
            let root = context
                .dir
                .canonicalize()
                .unwrap_or_else(|_| context.dir.clone());
            if !resolved.starts_with(&root) {
                return Err(invalid(format!(
                    "RUN --mount: {source} resolves outside the build context"
                )));
            }
            let hash = context::hash_sources(&found)?;
            Ok(RunMount {
                api: json!({
                    "Type": "bind", "Source": resolved, "Target": target, "ReadOnly": true,
                }),
                key: format!("bind {source} {target} {hash}"),
                target,
            })
        }
        "tmpfs" => {
            let mut api = json!({ "Type": "tmpfs", "Target": target });
            if size > 0 {
                api["TmpfsOptions"] = json!({ "SizeBytes": size });
            }
            Ok(RunMount {
                api,
                key: format!("tmpfs {target} {size}"),
                target,
            })
        }
        other => Err(invalid(format!(
            "RUN --mount: type={other} is not supported by this builder (cache, bind, tmpfs)"
        ))),
    }
}

/// The directory the cache mounts of a daemon live in.
pub fn cache_root(data_root: &Path) -> PathBuf {
    data_root.join("build-cache-mounts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_errors() {
        assert_eq!(
            fields("type=cache,target=/x,ro"),
            [
                ("type".into(), "cache".into()),
                ("target".into(), "/x".into()),
                ("ro".into(), "true".into())
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "f").unwrap();
        let ctx = Context::at(dir.path()).unwrap();
        let cache = dir.path().join("cache");
        let m = parse("type=tmpfs,target=t,size=1024", "/w", &ctx, &cache).unwrap();
        assert_eq!(m.target, "/w/t");
        assert_eq!(m.api["TmpfsOptions"]["SizeBytes"], 1024);
        let m = parse("type=cache,id=c,target=/c,uid=7", "/", &ctx, &cache).unwrap();
        assert_eq!(m.api["Type"], "bind");
        let m = parse("type=bind,source=f,target=/f", "/", &ctx, &cache).unwrap();
        assert_eq!(m.api["ReadOnly"], true);
        assert!(parse("type=secret,target=/s", "/", &ctx, &cache).is_err());
        assert!(parse("type=bind,source=../x,target=/x", "/", &ctx, &cache).is_err());
        assert!(parse("type=cache", "/", &ctx, &cache).is_err());
    }
}
