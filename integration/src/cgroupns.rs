//! A throw-away cgroup tree to run a shell script in, seen through a cgroup namespace of its
//! own: the script runs in a new mount and cgroup namespace whose cgroupfs mounts (same layout
//! as the host's: v1 hierarchies and cgroup2) are rooted at a fresh cgroup below this process's
//! own one on every hierarchy. Inside, `/` of every hierarchy is that throw-away cgroup, so a
//! runtime told to use cgroupsPath `/` or to kill "everything" can only reach the script's own
//! processes, never the host's.
//!
//! Needs root and util-linux's `unshare`. Everything left in the tree is SIGKILLed and the tree
//! removed on drop.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One cgroup hierarchy of the host: where it is mounted and how to mount it again.
#[derive(Debug, Clone)]
struct Hierarchy {
    mount_point: PathBuf,
    /// `-t cgroup -o <opts>` (v1), or None for cgroup2.
    v1_opts: Option<String>,
    /// The throw-away cgroup of this sandbox in the hierarchy (host path).
    dir: PathBuf,
}

pub struct CgroupSandbox {
    hierarchies: Vec<Hierarchy>,
    work: tempfile::TempDir,
}

impl CgroupSandbox {
    /// Make the throw-away cgroup (named after `name`) on every hierarchy of the host.
    pub fn new(name: &str) -> CgroupSandbox {
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
        let mountinfo =
            std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
        let leaf = format!("{name}-{}", crate::runtime::unique_id("cgns"));
        let mut hierarchies = Vec::new();
        for line in mountinfo.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let Some(sep) = f.iter().position(|x| *x == "-") else {
                continue;
            };
            let (fstype, opts) = (f[sep + 1], f[sep + 3]);
            let mount_point = PathBuf::from(f[4]);
            let v1_opts = match fstype {
                "cgroup2" => None,
                "cgroup" => Some(
                    opts.split(',')
                        .filter(|o| *o != "rw" && *o != "ro")
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => continue,
            };
            let own_path = own_path(&own, v1_opts.as_deref()).unwrap_or_else(|| {
                panic!("no line for {} in /proc/self/cgroup", mount_point.display())
            });
            let dir = mount_point
                .join(own_path.trim_start_matches('/'))
                .join(&leaf);
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            inherit_cpuset(&dir);
            hierarchies.push(Hierarchy {
                mount_point,
                v1_opts,
                dir,
            });
        }
        assert!(!hierarchies.is_empty(), "no cgroup hierarchy is mounted");
        let work = tempfile::Builder::new()
            .prefix("berth-test-cgns")
            .tempdir()
            .expect("temp dir");
        CgroupSandbox { hierarchies, work }
    }

    /// A scratch directory (removed on drop) for the script's files and runtime roots.
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// The sandbox's cgroup on the cgroup2 hierarchy, as the host sees it.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.v1_opts.is_none())
            .map(|h| h.dir.as_path())
    }

    /// Run `script` (sh) inside: moved into the throw-away cgroups, then in a new mount and
    /// cgroup namespace with the hierarchies mounted again at their usual places.
    pub fn run(&self, script: &str) -> Output {
        let inner = self.work.path().join("inner.sh");
        let mut setup = String::from("set -e\nmount --make-rprivate /\n");
        // v1 and hybrid: the hierarchies sit in a tmpfs (/sys/fs/cgroup), hidden by a new one;
        // pure v2: cgroup2 is mounted straight over the old one.
        if self.hierarchies.len() > 1 {
            let mut parents: Vec<&Path> = self
                .hierarchies
                .iter()
                .filter_map(|h| h.mount_point.parent())
                .collect();
            parents.dedup();
            for p in parents {
                setup += &format!("mount -t tmpfs -o mode=755 cgns {}\n", p.display());
            }
        }
        for h in &self.hierarchies {
            let mp = h.mount_point.display();
            setup += &format!("mkdir -p {mp}\n");
            setup += &match &h.v1_opts {
                Some(o) => format!("mount -t cgroup -o {o} cgroup {mp}\n"),
                None => format!("mount -t cgroup2 cgroup2 {mp}\n"),
            };
        }
        setup += "set +e\n";
        std::fs::write(&inner, format!("{setup}{script}\n")).expect("write inner.sh");
        let mut outer = String::from("set -e\n");
        for h in &self.hierarchies {
            outer += &format!("echo $$ > {}/cgroup.procs\n", h.dir.display());
        }
        outer += &format!("exec unshare --mount --cgroup sh {}\n", inner.display());
        Command::new("sh")
            .arg("-c")
            .arg(outer)
            .output()
            .expect("sh (with util-linux unshare)")
    }
}

/// A new v1 cpuset cgroup starts with no cpus and mems: no process can join it until it has
/// its parent's.
fn inherit_cpuset(dir: &Path) {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if !dir.join(file).exists() || dir.join("cgroup.controllers").exists() {
            continue;
        }
        let parent = dir.parent().expect("a cgroup has a parent").join(file);
        let value = std::fs::read_to_string(&parent)
            .unwrap_or_else(|e| panic!("read {}: {e}", parent.display()));
        std::fs::write(dir.join(file), value.trim())
            .unwrap_or_else(|e| panic!("write {}: {e}", dir.join(file).display()));
    }
}

/// This process's cgroup in the hierarchy mounted with `v1_opts` (None: cgroup2).
fn own_path(own: &str, v1_opts: Option<&str>) -> Option<String> {
    own.lines().find_map(|l| {
        let mut p = l.splitn(3, ':');
        let (_, ctrls, path) = (p.next()?, p.next()?, p.next()?);
        let matches = match v1_opts {
            None => ctrls.is_empty(),
            Some(o) => !ctrls.is_empty() && ctrls.split(',').all(|c| o.split(',').any(|x| x == c)),
        };
        matches.then(|| path.to_string())
    })
}

impl Drop for CgroupSandbox {
    fn drop(&mut self) {
        for h in &self.hierarchies {
            kill_tree(&h.dir);
        }
        for h in &self.hierarchies {
            remove_tree(&h.dir);
        }
    }
}

/// SIGKILL every process in `dir`'s cgroup and below (they are the sandbox's only).
fn kill_tree(dir: &Path) {
    for _ in 0..200 {
        let mut pids = Vec::new();
        collect(dir, &mut pids);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            // SAFETY: kill(2); the pid is in the sandbox's own throw-away cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn collect(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.parse::<i32>().ok()));
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect(&e.path(), out);
        }
    }
}

fn remove_tree(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path());
        }
    }
    for _ in 0..100 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            _ => return,
        }
    }
}
