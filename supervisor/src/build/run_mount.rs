//! `RUN --mount=…` (BuildKit's syntax, which the classic builder refuses): what a RUN step
//! mounts besides its image, none of it in the layer it makes.
//!
//! - `type=cache,target=…[,id=…][,mode=…][,uid=…][,gid=…][,sharing=…]`: a directory kept by
//!   the daemon across builds (under the data root's `build-cache-mounts/`, by id, the
//!   target when none), mounted read-write;
//! - `type=bind,target=…[,source=…]`: a path of the build context (its root by default),
//!   resolved inside it, mounted read-only; its content is part of the step's cache key;
//!   with `from=` a stage or image instead of the context (the caller gives its files);
//! - `type=tmpfs,target=…[,size=…]`: an empty tmpfs;
//! - `type=secret,id=…[,target=…][,required][,mode=…][,uid=…][,gid=…]`: a file `berth build
//!   --secret` sent (target `/run/secrets/<id>` by default), read-only, never in the cache
//!   key or a layer; a missing one is skipped unless `required`.
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

/// The `from=` of a `--mount` value: the stage or image whose files a bind mounts.
pub fn from_of(spec: &str) -> Option<String> {
    fields(spec)
        .into_iter()
        .find_map(|(k, v)| (k == "from").then_some(v))
}

/// Where a RUN's mounts come from.
pub struct Sources<'a> {
    /// The build context, or the `from=` stage's or image's files.
    pub context: &'a Context,
    /// [`cache_root`].
    pub cache_root: &'a Path,
    /// The secrets `berth build --secret` sent, a file per id.
    pub secrets: &'a Path,
}

/// Parses one `--mount` value; `workdir` makes a relative target absolute. None: an
/// optional secret that was not sent.
pub fn parse(
    spec: &str,
    workdir: &str,
    sources: &Sources<'_>,
) -> Result<Option<RunMount>, BuildError> {
    let (context, cache_root) = (sources.context, sources.cache_root);
    let mut kind = "bind".to_string();
    let (mut target, mut source, mut id, mut from) = (None, None, None, None);
    let (mut mode, mut uid, mut gid, mut size) = (None, 0, 0, 0i64);
    let (mut read_write, mut required) = (false, false);
    for (k, v) in fields(spec) {
        match k.as_str() {
            "type" => kind = v,
            "target" | "dst" | "destination" => target = Some(v),
            "source" | "src" => source = Some(v),
            "id" => id = Some(v),
            "mode" => mode = Some(number("mode", &v, 8)?),
            "required" => required = v != "false",
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
            "from" => from = Some(v),
            other => return Err(invalid(format!("RUN --mount: unexpected key '{other}'"))),
        }
    }
    if from.is_some() && kind != "bind" {
        return Err(invalid(format!(
            "RUN --mount=type={kind}: from= is supported for type=bind only"
        )));
    }
    if kind == "ssh" {
        return Err(invalid(
            "RUN --mount=type=ssh is not supported by this builder: berth forwards no SSH agent",
        ));
    }
    if kind == "secret" {
        let id = id
            .or_else(|| {
                target
                    .as_deref()
                    .and_then(|t| Path::new(t).file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .ok_or_else(|| invalid("RUN --mount=type=secret: the id is missing"))?;
        if !context::is_plain_name(&id) {
            return Err(invalid(format!(
                "RUN --mount=type=secret: invalid id {id:?}"
            )));
        }
        let target = target.unwrap_or_else(|| format!("/run/secrets/{id}"));
        let target = super::instructions::clean_abs(&Path::new(workdir).join(&target));
        let file = sources.secrets.join(&id);
        if !file.is_file() {
            if required {
                return Err(invalid(format!(
                    "RUN --mount=type=secret: secret {id}: not found (berth build --secret id={id},src=FILE)"
                )));
            }
            return Ok(None);
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            &file,
            std::fs::Permissions::from_mode(mode.unwrap_or(0o400)),
        )
        .and_then(|()| std::os::unix::fs::chown(&file, Some(uid), Some(gid)))
        .map_err(|e| BuildError::Context(format!("{}: {e}", file.display())))?;
        return Ok(Some(RunMount {
            api: json!({ "Type": "bind", "Source": file, "Target": target, "ReadOnly": true }),
            key: format!("secret {id} {target}"),
            target,
        }));
    }
    let target = target.ok_or_else(|| invalid("RUN --mount: the target is missing"))?;
    let target = super::instructions::clean_abs(&Path::new(workdir).join(&target));
    let mode = mode.unwrap_or(0o755);
    let mounted = match kind.as_str() {
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
            let resolved = context.resolved(&one.file)?;
            if !resolved.starts_with(context.root_path()) {
                return Err(invalid(format!(
                    "RUN --mount: {source} resolves outside the build context"
                )));
            }
            let hash = context::hash_sources(context, &found, false)?;
            Ok(RunMount {
                api: json!({
                    "Type": "bind", "Source": resolved, "Target": target, "ReadOnly": true,
                }),
                key: format!("bind {} {source} {target} {hash}", from.unwrap_or_default()),
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
            "RUN --mount: type={other} is not supported by this builder (cache, bind, tmpfs, secret)"
        ))),
    };
    mounted.map(Some)
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
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        std::fs::write(secrets.join("tok"), "t").unwrap();
        let sources = Sources {
            context: &ctx,
            cache_root: &cache,
            secrets: &secrets,
        };
        let p = |spec: &str, wd: &str| parse(spec, wd, &sources);
        let m = p("type=tmpfs,target=t,size=1024", "/w").unwrap().unwrap();
        assert_eq!(m.target, "/w/t");
        assert_eq!(m.api["TmpfsOptions"]["SizeBytes"], 1024);
        let m = p("type=cache,id=c,target=/c,uid=7", "/").unwrap().unwrap();
        assert_eq!(m.api["Type"], "bind");
        let m = p("type=bind,source=f,target=/f", "/").unwrap().unwrap();
        assert_eq!(m.api["ReadOnly"], true);
        let m = p("type=secret,id=tok", "/").unwrap().unwrap();
        assert_eq!(
            (m.target.as_str(), &m.api["ReadOnly"]),
            ("/run/secrets/tok", &json!(true))
        );
        assert_eq!(
            m.key, "secret tok /run/secrets/tok",
            "no content in the key"
        );
        assert!(p("type=secret,id=other", "/").unwrap().is_none());
        assert!(p("type=secret,id=other,required", "/").is_err());
        assert!(p("type=secret,id=..", "/").is_err());
        assert!(p("type=ssh", "/").is_err());
        assert!(p("type=cache,from=x,target=/x", "/").is_err());
        assert!(p("type=bind,source=../x,target=/x", "/").is_err());
        assert!(p("type=cache", "/").is_err());
        assert_eq!(
            from_of("type=bind,from=build,target=/b").as_deref(),
            Some("build")
        );
    }
}
