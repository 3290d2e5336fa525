//! Resources and limits: `-m`, `--memory-swap`, `--memory-reservation`, `--cpus`,
//! `--cpu-shares`, `--cpuset-cpus`, `--pids-limit`, `--oom-kill-disable`, `--oom-score-adj`,
//! `--ulimit`, `--sysctl`, with docker's checks and messages.
use std::collections::HashMap;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources, LinuxThrottleDevice,
    LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder, PosixRlimit, PosixRlimitBuilder,
    PosixRlimitType,
};

use super::SpecError;
use crate::containers::config::{self, HostConfig, ThrottleDevice, Ulimit};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// docker's smallest memory limit and reservation.
const MIN_MEMORY: i64 = 6 << 20;
/// CFS period used for `--cpus`.
const CPU_PERIOD: u64 = 100_000;

fn bad(field: &'static str, value: impl ToString, reason: &str) -> SpecError {
    SpecError::invalid(field, value.to_string(), reason)
}

/// Checks the values as docker does at create.
pub fn check(h: &HostConfig, ncpu: usize) -> Result<(), SpecError> {
    if h.memory != 0 && h.memory < MIN_MEMORY {
        return Err(bad(
            "Memory",
            h.memory,
            "Minimum memory limit allowed is 6MB",
        ));
    }
    if h.memory_swap > 0 && h.memory == 0 {
        return Err(bad(
            "MemorySwap",
            h.memory_swap,
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if h.memory > 0 && h.memory_swap > 0 && h.memory_swap < h.memory {
        return Err(bad(
            "MemorySwap",
            h.memory_swap,
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if h.memory_swap < -1 {
        return Err(bad(
            "MemorySwap",
            h.memory_swap,
            "must be -1 (unlimited) or a size",
        ));
    }
    if h.memory_reservation != 0 && h.memory_reservation < MIN_MEMORY {
        return Err(bad(
            "MemoryReservation",
            h.memory_reservation,
            "Minimum memory reservation allowed is 6MB",
        ));
    }
    if h.memory > 0 && h.memory_reservation > 0 && h.memory < h.memory_reservation {
        return Err(bad(
            "MemoryReservation",
            h.memory_reservation,
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    if let Some(s) = h.memory_swappiness {
        if !(-1..=100).contains(&s) {
            return Err(bad(
                "MemorySwappiness",
                s,
                "Invalid value, valid memory swappiness range is 0-100",
            ));
        }
    }
    if h.nano_cpus != 0 && (h.cpu_period != 0 || h.cpu_quota != 0) {
        return Err(bad(
            "NanoCpus",
            h.nano_cpus,
            "Conflicting options: Nano CPUs and CPU Period (or Quota) cannot both be set",
        ));
    }
    let max = ncpu as i64 * 1_000_000_000;
    if h.nano_cpus < 0 || h.nano_cpus > max {
        return Err(bad(
            "NanoCpus",
            h.nano_cpus,
            &format!(
                "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            ),
        ));
    }
    if h.nano_cpus > 0 && h.nano_cpus < 10_000_000 {
        return Err(bad(
            "NanoCpus",
            h.nano_cpus,
            &format!(
                "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            ),
        ));
    }
    if h.cpu_shares < 0 {
        return Err(bad("CpuShares", h.cpu_shares, "must not be negative"));
    }
    if h.cpu_period != 0 && !(1000..=1_000_000).contains(&h.cpu_period) {
        return Err(bad(
            "CpuPeriod",
            h.cpu_period,
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if h.cpu_quota != 0 && h.cpu_quota < 1000 && h.cpu_quota != -1 {
        return Err(bad(
            "CpuQuota",
            h.cpu_quota,
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    check_cpuset("CpusetCpus", &h.cpuset_cpus)?;
    check_cpuset("CpusetMems", &h.cpuset_mems)?;
    if !(-1000..=1000).contains(&h.oom_score_adj) {
        return Err(bad(
            "OomScoreAdj",
            h.oom_score_adj,
            "Invalid value, range for oom score adj is [-1000, 1000]",
        ));
    }
    rlimits(config::list(&h.ulimits))?;
    Ok(())
}

/// `0-3,5`: ranges and numbers separated by commas.
fn check_cpuset(field: &'static str, set: &str) -> Result<(), SpecError> {
    if set.is_empty() {
        return Ok(());
    }
    let ok = set.split(',').all(|part| {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a <= b)
    });
    if ok {
        Ok(())
    } else {
        Err(bad(field, set, "invalid cpuset (e.g. 0-3,5)"))
    }
}

/// `linux.resources` without devices (docker's: memory, cpu, pids, block I/O weight).
pub fn resources(h: &HostConfig) -> LinuxResources {
    let mut memory = LinuxMemory::default();
    memory.set_limit(Some(h.memory).filter(|m| *m > 0));
    memory.set_reservation(Some(h.memory_reservation).filter(|m| *m > 0));
    memory.set_swap(Some(h.memory_swap).filter(|m| *m != 0));
    memory.set_swappiness(h.memory_swappiness.filter(|s| *s >= 0).map(|s| s as u64));
    memory.set_disable_oom_killer(Some(h.oom_kill_disable.unwrap_or(false)));

    let mut cpu = LinuxCpu::default();
    cpu.set_shares(Some(h.cpu_shares as u64));
    if h.nano_cpus > 0 {
        cpu.set_period(Some(CPU_PERIOD));
        cpu.set_quota(Some(h.nano_cpus * CPU_PERIOD as i64 / 1_000_000_000));
    } else {
        cpu.set_period(Some(h.cpu_period as u64).filter(|p| *p > 0));
        cpu.set_quota(Some(h.cpu_quota).filter(|q| *q != 0));
    }
    cpu.set_realtime_period(Some(h.cpu_realtime_period as u64).filter(|p| *p > 0));
    cpu.set_realtime_runtime(Some(h.cpu_realtime_runtime).filter(|r| *r > 0));
    cpu.set_cpus(Some(h.cpuset_cpus.clone()).filter(|c| !c.is_empty()));
    cpu.set_mems(Some(h.cpuset_mems.clone()).filter(|c| !c.is_empty()));

    let mut r = LinuxResources::default();
    r.set_memory(Some(memory));
    r.set_cpu(Some(cpu));
    if let Some(limit) = h.pids_limit.filter(|p| *p > 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        r.set_pids(Some(pids));
    }
    r
}

/// `linux.resources.blockIO`: the weight, and docker's per-device weights and throttles
/// (`--blkio-weight-device`, `--device-read-bps`, …) with each path resolved to its device
/// numbers on the host, as dockerd does.
pub fn block_io(h: &HostConfig) -> Result<LinuxBlockIo, SpecError> {
    let mut block = LinuxBlockIo::default();
    block.set_weight(Some(h.blkio_weight));
    let weights = config::list(&h.blkio_weight_device)
        .iter()
        .map(|d| {
            let (major, minor) = block_device("BlkioWeightDevice", &d.path)?;
            LinuxWeightDeviceBuilder::default()
                .major(major)
                .minor(minor)
                .weight(d.weight)
                .build()
                .map_err(|e| bad("BlkioWeightDevice", &d.path, &e.to_string()))
        })
        .collect::<Result<Vec<_>, SpecError>>()?;
    block.set_weight_device(Some(weights).filter(|w| !w.is_empty()));
    block.set_throttle_read_bps_device(throttles("BlkioDeviceReadBps", &h.blkio_device_read_bps)?);
    block.set_throttle_write_bps_device(throttles(
        "BlkioDeviceWriteBps",
        &h.blkio_device_write_bps,
    )?);
    block.set_throttle_read_iops_device(throttles(
        "BlkioDeviceReadIOps",
        &h.blkio_device_read_iops,
    )?);
    block.set_throttle_write_iops_device(throttles(
        "BlkioDeviceWriteIOps",
        &h.blkio_device_write_iops,
    )?);
    Ok(block)
}

fn throttles(
    field: &'static str,
    devices: &Option<Vec<ThrottleDevice>>,
) -> Result<Option<Vec<LinuxThrottleDevice>>, SpecError> {
    let list = config::list(devices)
        .iter()
        .map(|d| {
            let (major, minor) = block_device(field, &d.path)?;
            LinuxThrottleDeviceBuilder::default()
                .major(major)
                .minor(minor)
                .rate(d.rate)
                .build()
                .map_err(|e| bad(field, &d.path, &e.to_string()))
        })
        .collect::<Result<Vec<_>, SpecError>>()?;
    Ok(Some(list).filter(|l| !l.is_empty()))
}

/// The device numbers of the block device at `path` on the host.
fn block_device(field: &'static str, path: &str) -> Result<(i64, i64), SpecError> {
    let meta = std::fs::metadata(path).map_err(|e| bad(field, path, &e.to_string()))?;
    if !meta.file_type().is_block_device() {
        return Err(bad(field, path, "not a block device"));
    }
    let rdev = meta.rdev();
    Ok((
        nix::sys::stat::major(rdev) as i64,
        nix::sys::stat::minor(rdev) as i64,
    ))
}

/// `--ulimit name=soft[:hard]` entries as rlimits, in the order given.
pub fn rlimits(ulimits: &[Ulimit]) -> Result<Vec<PosixRlimit>, SpecError> {
    ulimits
        .iter()
        .map(|u| {
            let text = format!("{}={}:{}", u.name, u.soft, u.hard);
            let kind: PosixRlimitType = serde_json::from_value(serde_json::Value::String(format!(
                "RLIMIT_{}",
                u.name.to_ascii_uppercase()
            )))
            .map_err(|_| bad("Ulimits", &text, "invalid ulimit type"))?;
            if u.soft > u.hard {
                return Err(bad(
                    "Ulimits",
                    &text,
                    "ulimit soft limit must be less than or equal to hard limit",
                ));
            }
            if u.soft < 0 || u.hard < 0 {
                return Err(bad("Ulimits", &text, "negative ulimit"));
            }
            Ok(PosixRlimitBuilder::default()
                .typ(kind)
                .soft(u.soft as u64)
                .hard(u.hard as u64)
                .build()?)
        })
        .collect()
}

/// Which namespaces the container has of its own (sysctls of a shared one are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnNamespaces {
    pub network: bool,
    pub ipc: bool,
    pub uts: bool,
}

/// docker's allowed sysctls: IPC ones (`kernel.msg*`, `kernel.sem`, `kernel.shm*`,
/// `fs.mqueue.*`), `net.*`, and `kernel.domainname`/`kernel.hostname`, each only with a
/// namespace of the container's own.
pub fn check_sysctl(key: &str, own: OwnNamespaces) -> Result<(), SpecError> {
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let (allowed, ns) = if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        (own.ipc, "IPC")
    } else if key.starts_with("net.") {
        (own.network, "network")
    } else if key == "kernel.domainname" || key == "kernel.hostname" {
        (own.uts, "UTS")
    } else {
        return Err(bad(
            "Sysctls",
            key,
            "sysctl is not allowed (not namespaced)",
        ));
    };
    if !allowed {
        return Err(bad(
            "Sysctls",
            key,
            &format!("sysctl is not allowed in the host {ns} namespace"),
        ));
    }
    Ok(())
}

/// docker's sysctls: unprivileged ports and ping for a network namespace of the container's
/// own, `kernel.domainname` from `--domainname`, then `--sysctl` (which wins).
pub fn sysctls(
    h: &HostConfig,
    domainname: &str,
    own: OwnNamespaces,
) -> Result<HashMap<String, String>, SpecError> {
    let mut out = HashMap::new();
    if own.network {
        out.insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
        out.insert("net.ipv4.ping_group_range".into(), "0 2147483647".into());
    }
    if !domainname.is_empty() && own.uts {
        out.insert("kernel.domainname".into(), domainname.to_string());
    }
    for (k, v) in h.sysctls.iter().flatten() {
        check_sysctl(k, own)?;
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}
