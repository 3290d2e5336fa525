//! Stats: the cgroup metrics of a container's init, as containerd's cgroups v1 or v2 Metrics.
use std::path::{Path, PathBuf};

use berth_proto::cgroups::metrics as v1;
use berth_proto::cgroups_v2::metrics as v2;
use berth_proto::protobuf::well_known_types::any::Any;
use berth_proto::protobuf::{Message, MessageField};

pub(crate) const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Metrics of the cgroup(s) named by `table` (a process's `/proc/<pid>/cgroup`), packed as
/// containerd expects; a cgroup already gone reads as zeros.
pub fn metrics(table: &str) -> Any {
    let mut any = Any::new();
    if Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
        let path = table
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("/");
        any.type_url = "io.containerd.cgroups.v2.Metrics".into();
        any.value = metrics_v2(&Path::new(CGROUP_ROOT).join(path.trim_start_matches('/')))
            .write_to_bytes()
            .unwrap_or_default();
    } else {
        any.type_url = "io.containerd.cgroups.v1.Metrics".into();
        any.value = metrics_v1(table).write_to_bytes().unwrap_or_default();
    }
    any
}

/// The `cgroup.procs` of the cgroup named by `table` (v2, else the v1 `pids` or `memory`
/// hierarchy).
pub fn procs_file(table: &str) -> Option<PathBuf> {
    if Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
        let path = table.lines().find_map(|l| l.strip_prefix("0::"))?;
        return Some(
            Path::new(CGROUP_ROOT)
                .join(path.trim_start_matches('/'))
                .join("cgroup.procs"),
        );
    }
    v1_dir(table, "pids")
        .or_else(|| v1_dir(table, "memory"))
        .map(|d| d.join("cgroup.procs"))
}

/// Waits (up to `limit`) until the cgroup named by `table` holds no live process: the ones a
/// `kill --all` just signalled have then closed their files (the container's stdout fifo).
pub fn wait_emptied(table: &str, limit: std::time::Duration) {
    let Some(procs) = procs_file(table) else {
        return;
    };
    let deadline = std::time::Instant::now() + limit;
    while std::fs::read_to_string(&procs).is_ok_and(|s| !s.trim().is_empty())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn read_u64(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `key value` lines of a cgroup stat file.
fn read_keyed(path: &Path, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

/// The v1 directory of `controller` for the process whose `/proc/pid/cgroup` is `table`.
pub(crate) fn v1_dir(table: &str, controller: &str) -> Option<PathBuf> {
    table.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls.split(',').any(|c| c == controller).then(|| {
            // The hierarchy's own name (`cpuacct` alone on some hosts), else the usual
            // co-mount `cpu,cpuacct`.
            let own = Path::new(CGROUP_ROOT).join(ctrls);
            let mount = if !own.exists() && ctrls.contains("cpuacct") {
                Path::new(CGROUP_ROOT).join("cpu,cpuacct")
            } else {
                own
            };
            mount.join(path.trim_start_matches('/'))
        })
    })
}

fn metrics_v1(table: &str) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(dir) = v1_dir(table, "pids") {
        let mut p = v1::PidsStat::new();
        p.current = read_u64(&dir.join("pids.current"));
        p.limit = read_u64(&dir.join("pids.max"));
        m.pids = MessageField::some(p);
    }
    if let Some(dir) = v1_dir(table, "cpuacct") {
        let mut u = v1::CPUUsage::new();
        u.total = read_u64(&dir.join("cpuacct.usage"));
        let tick_ns = 1_000_000_000 / 100;
        u.user = read_keyed(&dir.join("cpuacct.stat"), "user") * tick_ns;
        u.kernel = read_keyed(&dir.join("cpuacct.stat"), "system") * tick_ns;
        let mut c = v1::CPUStat::new();
        c.usage = MessageField::some(u);
        m.cpu = MessageField::some(c);
    }
    if let Some(dir) = v1_dir(table, "memory") {
        let stat = dir.join("memory.stat");
        let mut mem = v1::MemoryStat::new();
        mem.cache = read_keyed(&stat, "cache");
        mem.rss = read_keyed(&stat, "rss");
        mem.mapped_file = read_keyed(&stat, "mapped_file");
        mem.pg_fault = read_keyed(&stat, "pgfault");
        mem.pg_maj_fault = read_keyed(&stat, "pgmajfault");
        mem.total_cache = read_keyed(&stat, "total_cache");
        mem.total_rss = read_keyed(&stat, "total_rss");
        mem.hierarchical_memory_limit = read_keyed(&stat, "hierarchical_memory_limit");
        let mut usage = v1::MemoryEntry::new();
        usage.usage = read_u64(&dir.join("memory.usage_in_bytes"));
        usage.limit = read_u64(&dir.join("memory.limit_in_bytes"));
        usage.max = read_u64(&dir.join("memory.max_usage_in_bytes"));
        usage.failcnt = read_u64(&dir.join("memory.failcnt"));
        mem.usage = MessageField::some(usage);
        m.memory = MessageField::some(mem);
    }
    m
}

fn metrics_v2(dir: &Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let mut p = v2::PidsStat::new();
    p.current = read_u64(&dir.join("pids.current"));
    p.limit = read_u64(&dir.join("pids.max"));
    m.pids = MessageField::some(p);
    let cpu_stat = dir.join("cpu.stat");
    let mut c = v2::CPUStat::new();
    c.usage_usec = read_keyed(&cpu_stat, "usage_usec");
    c.user_usec = read_keyed(&cpu_stat, "user_usec");
    c.system_usec = read_keyed(&cpu_stat, "system_usec");
    c.nr_periods = read_keyed(&cpu_stat, "nr_periods");
    c.nr_throttled = read_keyed(&cpu_stat, "nr_throttled");
    c.throttled_usec = read_keyed(&cpu_stat, "throttled_usec");
    m.cpu = MessageField::some(c);
    let stat = dir.join("memory.stat");
    let mut mem = v2::MemoryStat::new();
    mem.anon = read_keyed(&stat, "anon");
    mem.file = read_keyed(&stat, "file");
    mem.kernel_stack = read_keyed(&stat, "kernel_stack");
    mem.pgfault = read_keyed(&stat, "pgfault");
    mem.pgmajfault = read_keyed(&stat, "pgmajfault");
    mem.usage = read_u64(&dir.join("memory.current"));
    mem.usage_limit = read_u64(&dir.join("memory.max"));
    mem.swap_usage = read_u64(&dir.join("memory.swap.current"));
    mem.swap_limit = read_u64(&dir.join("memory.swap.max"));
    m.memory = MessageField::some(mem);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_dir_maps_combined_controllers() {
        let table = "4:cpu,cpuacct:/ns/c1\n7:memory:/ns/c1\n3:pids:/ns/c1\n0::/ns/c1\n";
        assert_eq!(
            v1_dir(table, "memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/ns/c1")
        );
        assert_eq!(
            v1_dir(table, "cpuacct").unwrap(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/ns/c1")
        );
        assert!(v1_dir(table, "blkio").is_none());
    }
}
