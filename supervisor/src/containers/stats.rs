//! `stats` and `top`: a running container's cgroup metrics from its shim (containerd's
//! cgroups v1 or v2 `Metrics`) in docker's stats JSON, and `ps` output filtered to the
//! container's processes (the shim's pids), as dockerd does both.
use std::time::Duration;

use berth_proto::cgroups::metrics as v1;
use berth_proto::cgroups_v2::metrics as v2;
use berth_proto::protobuf::well_known_types::any::Any;
use berth_proto::protobuf::Message;
use serde_json::{json, Value};

use super::record::{self, Container};
use super::service::{ContainerService, Error};
use super::shim::Shim;

/// How often docker's stats collector samples.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// One sample: docker's stats JSON without `precpu_stats`/`preread`.
pub struct Sample(pub Value);

impl ContainerService {
    /// A sample of the container's metrics (zeros when it is not running, as dockerd's).
    pub async fn stats_sample(&self, name_or_id: &str) -> Result<Sample, Error> {
        let c = self.inspect(name_or_id).await?;
        let (address, id) = match (&c.shim_address, c.state.status.is_live()) {
            (Some(a), true) => (a.clone(), c.id.clone()),
            _ => return Ok(Sample(stopped(&c))),
        };
        let any = tokio::task::spawn_blocking(move || Shim::connect(&address)?.stats(&id))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(|e| Error::Task(e.to_string()))?;
        let mut v = docker_stats(&c, &any, &host_now());
        if c.host_config["NetworkMode"] != "host" {
            if let Some(networks) = networks(c.state.pid) {
                v["networks"] = networks;
            }
        }
        Ok(Sample(v))
    }

    /// `top`: `ps ps_args` on the host, the rows of the container's processes.
    pub async fn top(&self, name_or_id: &str, ps_args: &str) -> Result<Value, Error> {
        let (address, c) = self.task(name_or_id).await?;
        let id = c.id.clone();
        let pids = tokio::task::spawn_blocking(move || Shim::connect(&address)?.pids(&id))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(|e| Error::Task(e.to_string()))?;
        let args: Vec<&str> = ps_args.split_whitespace().collect();
        let args = if args.is_empty() { vec!["-ef"] } else { args };
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(|e| Error::Task(format!("ps: {e}")))?;
        if !out.status.success() {
            return Err(Error::Task(format!(
                "Error running ps: exit status {}: {}",
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids).map_err(Error::Task)
    }
}

/// Adds docker's `precpu_stats` and `preread` from the previous sample.
pub fn with_previous(mut now: Sample, previous: Option<&Sample>) -> Value {
    let (pre, preread) = match previous {
        Some(p) => (p.0["cpu_stats"].clone(), p.0["read"].clone()),
        None => (
            json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}),
            json!(record::NEVER),
        ),
    };
    now.0["precpu_stats"] = pre;
    now.0["preread"] = preread;
    now.0
}

/// What the host's clock says for docker's `system_cpu_usage` (ns) and `online_cpus`.
struct HostCpu {
    system_ns: u64,
    online: u64,
}

fn host_now() -> HostCpu {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut system = 0u64;
    let mut online = 0u64;
    for line in stat.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("cpu") => system = words.take(7).filter_map(|w| w.parse::<u64>().ok()).sum(),
            Some(w) if w.starts_with("cpu") => online += 1,
            _ => {}
        }
    }
    // USER_HZ is 100 on Linux: jiffies to nanoseconds.
    HostCpu {
        system_ns: system * 10_000_000,
        online,
    }
}

fn machine_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn base(c: &Container) -> Value {
    json!({
        "read": record::now(),
        "name": format!("/{}", c.name),
        "id": c.id,
        "num_procs": 0,
        "storage_stats": {},
        "pids_stats": {},
        "blkio_stats": {
            "io_service_bytes_recursive": null, "io_serviced_recursive": null,
            "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null,
            "io_time_recursive": null, "sectors_recursive": null
        },
        "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "memory_stats": {},
    })
}

/// dockerd's answer for a container that does not run: zero times, empty sections.
fn stopped(c: &Container) -> Value {
    let mut v = base(c);
    v["read"] = json!(record::NEVER);
    v
}

/// Docker's stats JSON from the shim's metrics.
fn docker_stats(c: &Container, any: &Any, host: &HostCpu) -> Value {
    let mut v = base(c);
    let limit_of = |limit: u64| {
        let machine = machine_memory();
        if machine > 0 && limit > machine {
            machine
        } else {
            limit
        }
    };
    if any.type_url.ends_with("cgroups.v2.Metrics") {
        let Ok(m) = v2::Metrics::parse_from_bytes(&any.value) else {
            return v;
        };
        if let Some(p) = m.pids.as_ref() {
            v["pids_stats"] = pids(p.current, p.limit);
        }
        if let Some(cpu) = m.cpu.as_ref() {
            v["cpu_stats"] = cpu_stats(
                cpu.usage_usec * 1000,
                cpu.system_usec * 1000,
                cpu.user_usec * 1000,
                host,
                (cpu.nr_periods, cpu.nr_throttled, cpu.throttled_usec * 1000),
            );
        }
        if let Some(mem) = m.memory.as_ref() {
            v["memory_stats"] = json!({
                "usage": mem.usage,
                "limit": limit_of(mem.usage_limit),
                "stats": {
                    "anon": mem.anon, "file": mem.file, "kernel_stack": mem.kernel_stack,
                    "pgfault": mem.pgfault, "pgmajfault": mem.pgmajfault,
                    "inactive_file": mem.inactive_file, "active_file": mem.active_file,
                },
            });
        }
        if let Some(io) = m.io.as_ref() {
            // dockerd's reading of io.stat: a read and a write entry per device.
            let bytes: Vec<Value> = io
                .usage
                .iter()
                .flat_map(|e| {
                    [
                        blkio_entry(e.major, e.minor, "read", e.rbytes),
                        blkio_entry(e.major, e.minor, "write", e.wbytes),
                    ]
                })
                .collect();
            v["blkio_stats"]["io_service_bytes_recursive"] = json!(bytes);
        }
        return v;
    }
    let Ok(m) = v1::Metrics::parse_from_bytes(&any.value) else {
        return v;
    };
    if let Some(p) = m.pids.as_ref() {
        v["pids_stats"] = pids(p.current, p.limit);
    }
    if let Some(u) = m.cpu.as_ref().and_then(|c| c.usage.as_ref()) {
        v["cpu_stats"] = cpu_stats(u.total, u.kernel, u.user, host, (0, 0, 0));
    }
    if let Some(mem) = m.memory.as_ref() {
        let usage = mem.usage.as_ref().cloned().unwrap_or_default();
        v["memory_stats"] = json!({
            "usage": usage.usage,
            "max_usage": usage.max,
            "failcnt": usage.failcnt,
            "limit": limit_of(usage.limit),
            "stats": {
                "cache": mem.cache, "rss": mem.rss, "mapped_file": mem.mapped_file,
                "pgfault": mem.pg_fault, "pgmajfault": mem.pg_maj_fault,
                "total_cache": mem.total_cache, "total_rss": mem.total_rss,
                "total_inactive_file": mem.total_inactive_file,
                "hierarchical_memory_limit": mem.hierarchical_memory_limit,
            },
        });
    }
    if let Some(b) = m.blkio.as_ref() {
        let entries = |list: &[v1::BlkIOEntry]| -> Value {
            list.iter()
                .map(|e| blkio_entry(e.major, e.minor, &e.op, e.value))
                .collect()
        };
        v["blkio_stats"]["io_service_bytes_recursive"] = entries(&b.io_service_bytes_recursive);
        v["blkio_stats"]["io_serviced_recursive"] = entries(&b.io_serviced_recursive);
    }
    v
}

/// Docker's `networks` section: the counters of every interface but `lo` in the network
/// namespace of process `pid` (its `/proc/PID/net/dev`); none when it has no other.
fn networks(pid: u32) -> Option<Value> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let map = parse_net_dev(&text);
    (!map.is_empty()).then_some(Value::Object(map))
}

fn parse_net_dev(text: &str) -> serde_json::Map<String, Value> {
    const FIELDS: [(usize, &str); 8] = [
        (0, "rx_bytes"),
        (1, "rx_packets"),
        (2, "rx_errors"),
        (3, "rx_dropped"),
        (8, "tx_bytes"),
        (9, "tx_packets"),
        (10, "tx_errors"),
        (11, "tx_dropped"),
    ];
    let mut map = serde_json::Map::new();
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let counters: Vec<u64> = counters
            .split_whitespace()
            .map(|w| w.parse().unwrap_or(0))
            .collect();
        let mut entry = serde_json::Map::new();
        for (index, key) in FIELDS {
            entry.insert(key.into(), json!(counters.get(index).copied().unwrap_or(0)));
        }
        map.insert(name.to_string(), Value::Object(entry));
    }
    map
}

/// Docker's blkio entry.
fn blkio_entry(major: u64, minor: u64, op: &str, value: u64) -> Value {
    json!({ "major": major, "minor": minor, "op": op, "value": value })
}

fn pids(current: u64, limit: u64) -> Value {
    if limit == 0 || limit == u64::MAX {
        json!({ "current": current })
    } else {
        json!({ "current": current, "limit": limit })
    }
}

fn cpu_stats(
    total: u64,
    kernel: u64,
    user: u64,
    host: &HostCpu,
    throttle: (u64, u64, u64),
) -> Value {
    json!({
        "cpu_usage": {
            "total_usage": total,
            "usage_in_kernelmode": kernel,
            "usage_in_usermode": user,
        },
        "system_cpu_usage": host.system_ns,
        "online_cpus": host.online,
        "throttling_data": {
            "periods": throttle.0,
            "throttled_periods": throttle.1,
            "throttled_time": throttle.2,
        },
    })
}

/// Docker's `top` JSON: `ps`'s header as Titles, and the rows whose PID column is one of
/// `pids`.
pub fn parse_ps(output: &str, pids: &[u32]) -> Result<Value, String> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or("");
    let titles: Vec<&str> = header.split_whitespace().collect();
    let pid_col = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or_else(|| format!("Couldn't find PID field in ps output: {header:?}"))?;
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        // The last column (the command) keeps its spaces.
        let mut row: Vec<String> = fields
            .iter()
            .take(titles.len() - 1)
            .map(|s| s.to_string())
            .collect();
        row.push(fields.get(titles.len() - 1..).unwrap_or_default().join(" "));
        processes.push(row);
    }
    Ok(json!({ "Titles": titles, "Processes": processes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_of_the_container_only() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                   root           1       0  0 18:00 ?        00:00:01 /sbin/init\n\
                   root        4242       1  0 18:01 ?        00:00:00 sh -c while :; do x; done\n";
        let v = parse_ps(out, &[4242]).unwrap();
        assert_eq!(v["Titles"][1], "PID");
        assert_eq!(v["Processes"].as_array().unwrap().len(), 1);
        assert_eq!(v["Processes"][0][7], "sh -c while :; do x; done");
        assert!(parse_ps("USER COMMAND\nroot x\n", &[1])
            .unwrap_err()
            .contains("Couldn't find PID field"));
    }

    #[test]
    fn net_dev_counters_without_lo() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
                    face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0\n  \
                    eth0:    5000      10    1    2    0     0          0         0     7000      20    3    4    0     0       0          0\n";
        let map = parse_net_dev(text);
        assert_eq!(map.len(), 1);
        assert_eq!(
            map["eth0"],
            json!({"rx_bytes": 5000, "rx_packets": 10, "rx_errors": 1, "rx_dropped": 2,
                   "tx_bytes": 7000, "tx_packets": 20, "tx_errors": 3, "tx_dropped": 4})
        );
    }

    #[test]
    fn v1_metrics_in_docker_s_shape() {
        let mut m = v1::Metrics::new();
        let mut p = v1::PidsStat::new();
        p.current = 3;
        p.limit = 100;
        m.pids = Some(p).into();
        let mut u = v1::CPUUsage::new();
        u.total = 5_000;
        let mut cpu = v1::CPUStat::new();
        cpu.usage = Some(u).into();
        m.cpu = Some(cpu).into();
        let mut mem = v1::MemoryStat::new();
        let mut e = v1::MemoryEntry::new();
        e.usage = 1 << 20;
        e.limit = 64 << 20;
        mem.usage = Some(e).into();
        m.memory = Some(mem).into();
        let mut written = v1::BlkIOEntry::new();
        (written.major, written.minor, written.op, written.value) = (254, 0, "Write".into(), 4096);
        let mut blkio = v1::BlkIOStat::new();
        blkio.io_service_bytes_recursive = vec![written];
        m.blkio = Some(blkio).into();
        let any = Any {
            type_url: "io.containerd.cgroups.v1.Metrics".into(),
            value: m.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let c: Container = serde_json::from_value(json!({
            "id": "abc", "name": "web", "created": "", "image": "", "image_id": "",
            "config": {}, "host_config": {}, "path": "", "args": [], "state": {
                "status": "running", "pid": 1, "exit_code": 0, "error": "", "oom_killed": false,
                "started_at": "", "finished_at": ""},
            "restart_count": 0, "log_path": ""
        }))
        .unwrap();
        let host = HostCpu {
            system_ns: 9,
            online: 2,
        };
        let v = docker_stats(&c, &any, &host);
        assert_eq!(v["pids_stats"], json!({"current": 3, "limit": 100}));
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 5_000);
        assert_eq!(v["cpu_stats"]["online_cpus"], 2);
        assert_eq!(v["memory_stats"]["usage"], 1 << 20);
        assert_eq!(v["memory_stats"]["limit"], 64 << 20);
        assert_eq!(v["name"], "/web");
        assert_eq!(
            v["blkio_stats"]["io_service_bytes_recursive"],
            json!([{"major": 254, "minor": 0, "op": "Write", "value": 4096}])
        );
        let with = with_previous(Sample(v), None);
        assert_eq!(with["precpu_stats"]["cpu_usage"]["total_usage"], 0);
    }
}
