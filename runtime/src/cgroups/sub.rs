//! `exec --cgroup [controller[,controller…]:]path`: an exec'd process joins a sub-cgroup of the
//! container's cgroup, on every hierarchy (a bare path) or on the named controllers' ones.
use super::{Cgroup, Error, Result};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The parsed `--cgroup` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubCgroups {
    /// For every hierarchy without an entry of its own.
    all: Option<PathBuf>,
    /// Controller name → sub path.
    by_controller: BTreeMap<String, PathBuf>,
}

impl SubCgroups {
    /// Parse every `--cgroup` value; a path leaving the container's cgroup is refused.
    pub fn parse(args: &[String]) -> Result<SubCgroups> {
        let mut subs = SubCgroups::default();
        for arg in args {
            let (controllers, path) = match arg.split_once(':') {
                Some((c, p)) => (Some(c), p),
                None => (None, arg.as_str()),
            };
            let clean = relative(path).ok_or_else(|| Error::BadSubCgroup {
                arg: arg.clone(),
                reason: format!("{path} is not a sub cgroup path"),
            })?;
            match controllers {
                None => subs.all = Some(clean),
                Some(list) => {
                    for c in list.split(',') {
                        subs.by_controller.insert(c.to_string(), clean.clone());
                    }
                }
            }
        }
        Ok(subs)
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.by_controller.is_empty()
    }
}

/// `path` inside its base (`/` is the base itself), without `.`; `None` if it climbs out.
fn relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

impl Cgroup {
    /// Every controller `subs` names is one of the container's.
    pub(super) fn check_subs(&self, subs: &SubCgroups) -> Result<()> {
        for c in subs.by_controller.keys() {
            if !self.v1.contains_key(c) && !self.v2_controllers.contains(c) {
                return Err(Error::BadSubCgroup {
                    arg: c.clone(),
                    reason: format!("unknown controller {c:?}"),
                });
            }
        }
        Ok(())
    }

    /// The sub path for one hierarchy: an entry for one of its controllers, else the bare one.
    pub(super) fn sub_for<'a>(&self, dir: &Path, subs: &'a SubCgroups) -> &'a Path {
        let on_dir = |c: &&String| {
            if Some(dir) == self.unified.as_deref() {
                self.v2_controllers.contains(c) && !self.v1.contains_key(*c)
            } else {
                self.v1.get(*c).map(PathBuf::as_path) == Some(dir)
            }
        };
        subs.by_controller
            .iter()
            .find(|(c, _)| on_dir(c))
            .map(|(_, p)| p.as_path())
            .or(subs.all.as_deref())
            .unwrap_or(Path::new(""))
    }
}

/// The cgroup `path` (a `tasks` file or a cgroup2 directory) could not be opened to join it.
pub(super) fn join_error(path: &Path, e: &std::io::Error) -> Error {
    let reason = lower_first(&match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    });
    Error::Join {
        path: path.to_path_buf(),
        reason,
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bare_and_per_controller_paths() {
        let subs = SubCgroups::parse(&["a/b".into(), "cpu,cpuacct:/c".into()]).unwrap();
        assert_eq!(subs.all.as_deref(), Some(Path::new("a/b")));
        assert_eq!(subs.by_controller["cpu"], Path::new("c"));
        assert_eq!(subs.by_controller["cpuacct"], Path::new("c"));
        assert_eq!(
            SubCgroups::parse(&["/".into()]).unwrap().all.as_deref(),
            Some(Path::new(""))
        );
        for bad in ["..", "a/../../b", "memory:.."] {
            let e = SubCgroups::parse(&[bad.into()]).unwrap_err().to_string();
            assert!(e.contains("is not a sub cgroup path"), "{e}");
        }
    }
}
