//! Which cgroup hierarchies the host has mounted, and where: pure v2 (cgroup2 at
//! /sys/fs/cgroup), hybrid (v1 controllers plus cgroup2, e.g. at /sys/fs/cgroup/unified) or
//! legacy v1. Read from /proc/self/mountinfo; built by hand in tests.
use super::{fs, Error, Result};
use crate::mounts::unescape_mountinfo;
use std::path::{Path, PathBuf};

/// One mounted v1 hierarchy (one or more controllers, or a named one like `name=systemd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    pub mount_point: PathBuf,
    /// The mount's root inside the hierarchy (mountinfo field 4; "/" outside cgroup namespaces).
    pub root: PathBuf,
    pub controllers: Vec<String>,
}

/// The cgroup2 mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedMount {
    pub mount_point: PathBuf,
    pub root: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    pub v1: Vec<V1Mount>,
    pub unified: Option<UnifiedMount>,
    /// Controllers offered by the cgroup2 hierarchy (its root's `cgroup.controllers`).
    pub v2_controllers: Vec<String>,
}

/// Mount options of a v1 cgroup mount that are not controllers.
const NOT_CONTROLLERS: &[&str] = &[
    "rw",
    "ro",
    "clone_children",
    "noprefix",
    "xattr",
    "cpuset_v2_mode",
    "favordynmods",
];

impl Layout {
    /// The host's layout, as this process sees it.
    pub fn detect() -> Result<Layout> {
        let path = Path::new("/proc/self/mountinfo");
        let mut layout = Self::from_mountinfo(&fs::read(path)?);
        if let Some(u) = &layout.unified {
            let file = u.mount_point.join("cgroup.controllers");
            layout.v2_controllers = fs::read(&file)?
                .split_whitespace()
                .map(str::to_string)
                .collect();
        }
        if layout.v1.is_empty() && layout.unified.is_none() {
            return Err(Error::Path {
                path: path.to_path_buf(),
                reason: "no cgroup or cgroup2 filesystem is mounted".into(),
            });
        }
        Ok(layout)
    }

    /// A pure cgroup v2 layout on the cgroup2 mount at `mount_point` (tests use
    /// /sys/fs/cgroup/unified on a hybrid host to exercise the v2 code for real).
    pub fn v2_at(mount_point: &Path) -> Result<Layout> {
        let file = mount_point.join("cgroup.controllers");
        Ok(Layout {
            v1: Vec::new(),
            unified: Some(UnifiedMount {
                mount_point: mount_point.to_path_buf(),
                root: PathBuf::from("/"),
            }),
            v2_controllers: fs::read(&file)?
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        })
    }

    /// Parse /proc/self/mountinfo (`v2_controllers` is left empty: it needs the mount).
    pub fn from_mountinfo(text: &str) -> Layout {
        let mut layout = Layout::default();
        // A later mount on the same mount point hides an earlier one (e.g. a tmpfs over
        // /sys/fs/cgroup/unified): only the top mount at each point counts.
        let mut top = std::collections::HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if let Some(mp) = line.split_whitespace().nth(4) {
                top.insert(mp.to_string(), i);
            }
        }
        for (i, line) in text.lines().enumerate() {
            if line.split_whitespace().nth(4).and_then(|mp| top.get(mp)) != Some(&i) {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(sep) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let (Some(fstype), Some(opts)) = (fields.get(sep + 1), fields.get(sep + 3)) else {
                continue;
            };
            let (Some(root), Some(mp)) = (fields.get(3), fields.get(4)) else {
                continue;
            };
            let mount_point = PathBuf::from(unescape_mountinfo(mp));
            let root = PathBuf::from(unescape_mountinfo(root));
            match *fstype {
                "cgroup2" if layout.unified.is_none() => {
                    layout.unified = Some(UnifiedMount { mount_point, root })
                }
                "cgroup" => {
                    let controllers: Vec<String> = opts
                        .split(',')
                        .filter(|o| {
                            !NOT_CONTROLLERS.contains(o) && !o.starts_with("release_agent=")
                        })
                        .map(str::to_string)
                        .collect();
                    // The same hierarchy can be mounted twice: keep the first.
                    if !layout.v1.iter().any(|m| m.controllers == controllers) {
                        layout.v1.push(V1Mount {
                            mount_point,
                            root,
                            controllers,
                        });
                    }
                }
                _ => {}
            }
        }
        layout
    }
}

/// Map a cgroup path (as in /proc/self/cgroup) to a directory under a mount.
fn dir_for(mount_point: &Path, root: &Path, cgroup: &Path) -> PathBuf {
    let rel = cgroup
        .strip_prefix(root)
        .unwrap_or_else(|_| cgroup.strip_prefix("/").unwrap_or(cgroup));
    mount_point.join(rel)
}

impl V1Mount {
    pub fn dir_for(&self, cgroup: &Path) -> PathBuf {
        dir_for(&self.mount_point, &self.root, cgroup)
    }
}

impl UnifiedMount {
    pub fn dir_for(&self, cgroup: &Path) -> PathBuf {
        dir_for(&self.mount_point, &self.root, cgroup)
    }
}

/// This process's own cgroups (/proc/self/cgroup), to resolve relative cgroupsPaths.
#[derive(Debug, Default)]
pub struct OwnCgroups {
    /// (controllers, path) per v1 hierarchy.
    pub v1: Vec<(Vec<String>, PathBuf)>,
    pub v2: Option<PathBuf>,
}

impl OwnCgroups {
    pub fn parse(text: &str) -> OwnCgroups {
        let mut own = OwnCgroups::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if ctrls.is_empty() {
                own.v2 = Some(PathBuf::from(path));
            } else {
                own.v1.push((
                    ctrls.split(',').map(str::to_string).collect(),
                    PathBuf::from(path),
                ));
            }
        }
        own
    }

    /// Our cgroup in the v1 hierarchy holding `controllers`.
    pub fn v1_path(&self, controllers: &[String]) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|x| controllers.contains(x)))
            .map(|(_, p)| p.as_path())
    }
}

pub fn own_cgroups() -> Result<OwnCgroups> {
    Ok(OwnCgroups::parse(&fs::read(Path::new(
        "/proc/self/cgroup",
    ))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn a_mount_on_top_hides_the_hierarchy_below() {
        let text = format!("{HYBRID}40 31 0:40 / /sys/fs/cgroup/unified rw - tmpfs tmpfs rw\n");
        let l = Layout::from_mountinfo(&text);
        assert!(l.unified.is_none(), "the tmpfs over unified hides cgroup2");
        assert_eq!(l.v1.len(), 2);
    }
}
