//! Writing resources to cgroup v1 controller directories. (cpuset, pids and rdma files have the
//! same names on v2, so `mod.rs` uses these writers for both.)
use super::validate::{throttles, DeviceProgram};
use super::{fs, invalid, Error, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxRdma};
use std::path::Path;
use std::time::Duration;

/// A new v1 cpuset cgroup starts with empty cpus/mems (no task could join): copy the parent's.
pub fn init_cpuset(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if fs::read(&dir.join(file))?.trim().is_empty() {
            fs::write(&dir.join(file), fs::read(&parent.join(file))?.trim())?;
        }
    }
    Ok(())
}

fn write_opt<T: ToString>(dir: &Path, file: &str, v: Option<T>) -> Result<()> {
    match v {
        Some(v) => fs::write(&dir.join(file), &v.to_string()),
        None => Ok(()),
    }
}

pub fn memory(dir: &Path, m: &LinuxMemory, update: bool) -> Result<()> {
    let limit = m.limit().filter(|l| *l != 0);
    if update && m.check_before_update() == Some(true) {
        if let Some(l) = limit.filter(|l| *l > 0) {
            check_usage(&dir.join("memory.usage_in_bytes"), l)?;
        }
    }
    // Like runc: an unlimited memory limit without a swap value makes memory+swap unlimited.
    let swap = m
        .swap()
        .filter(|s| *s != 0)
        .or((limit == Some(-1)).then_some(-1));
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    match (limit, swap) {
        (_, Some(s)) if !memsw.exists() => {
            if s != -1 && Some(s) != limit {
                return Err(invalid(
                    "memory.swap",
                    s,
                    "swap accounting is off in this kernel (no memory.memsw.limit_in_bytes)",
                ));
            }
            write_opt(dir, "memory.limit_in_bytes", limit)?;
        }
        (Some(l), Some(s)) => {
            // memsw must stay >= limit at every step: order the writes by direction.
            if fs::write(&dir.join("memory.limit_in_bytes"), &l.to_string()).is_err() {
                fs::write(&memsw, &s.to_string())?;
                fs::write(&dir.join("memory.limit_in_bytes"), &l.to_string())?;
            } else {
                fs::write(&memsw, &s.to_string())?;
            }
        }
        (Some(l), None) => fs::write(&dir.join("memory.limit_in_bytes"), &l.to_string())?,
        (None, Some(s)) => fs::write(&memsw, &s.to_string())?,
        (None, None) => {}
    }
    write_opt(
        dir,
        "memory.soft_limit_in_bytes",
        m.reservation().filter(|r| *r != 0),
    )?;
    if let Some(k) = m.kernel_tcp().filter(|k| *k != 0) {
        fs::write(&dir.join("memory.kmem.tcp.limit_in_bytes"), &k.to_string())?;
    }
    #[allow(deprecated)]
    if m.kernel().is_some_and(|k| k != 0) {
        tracing::warn!(
            "linux.resources.memory.kernel is ignored: kernel memory limits are obsolete"
        );
    }
    write_opt(dir, "memory.swappiness", m.swappiness())?;
    if m.disable_oom_killer() == Some(true) {
        fs::write(&dir.join("memory.oom_control"), "1")?;
    }
    if let Some(h) = m.use_hierarchy() {
        fs::write(&dir.join("memory.use_hierarchy"), if h { "1" } else { "0" })?;
    }
    Ok(())
}

/// `checkBeforeUpdate`: refuse a limit below what the cgroup uses now.
pub fn check_usage(usage_file: &Path, limit: i64) -> Result<()> {
    let usage = fs::read_u64(usage_file)?;
    if usage > limit as u64 {
        return Err(invalid(
            "memory.limit",
            limit,
            &format!("below current usage {usage} (checkBeforeUpdate)"),
        ));
    }
    Ok(())
}

pub fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    write_opt(dir, "cpu.shares", c.shares().filter(|s| *s != 0))?;
    let period = c.period().filter(|p| *p != 0);
    let quota = c.quota().filter(|q| *q != 0);
    // The kernel checks quota against the current period: when one write fails, try the other
    // order (like runc).
    if write_opt(dir, "cpu.cfs_period_us", period).is_err() {
        write_opt(dir, "cpu.cfs_quota_us", quota)?;
        write_opt(dir, "cpu.cfs_period_us", period)?;
    } else {
        write_opt(dir, "cpu.cfs_quota_us", quota)?;
    }
    write_opt(dir, "cpu.cfs_burst_us", c.burst())?;
    write_opt(
        dir,
        "cpu.rt_period_us",
        c.realtime_period().filter(|p| *p != 0),
    )?;
    write_opt(
        dir,
        "cpu.rt_runtime_us",
        c.realtime_runtime().filter(|r| *r != 0),
    )?;
    write_opt(dir, "cpu.idle", c.idle())
}

pub fn cpuset(dir: &Path, cpus: Option<&str>, mems: Option<&str>) -> Result<()> {
    write_opt(dir, "cpuset.cpus", cpus)?;
    write_opt(dir, "cpuset.mems", mems)
}

pub fn pids(dir: &Path, limit: i64) -> Result<()> {
    fs::write(&dir.join("pids.max"), &super::convert::max_or(limit))
}

/// The first of `names` that exists in `dir`.
fn first_existing<'a>(
    dir: &Path,
    names: &[&'a str],
    field: &str,
    value: impl ToString,
) -> Result<&'a str> {
    names
        .iter()
        .copied()
        .find(|n| dir.join(n).exists())
        .ok_or_else(|| {
            invalid(
                field,
                value,
                &format!(
                    "not supported by this kernel's I/O scheduler (no {})",
                    names.join(" or ")
                ),
            )
        })
}

pub fn blkio(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let file = first_existing(
            dir,
            &["blkio.weight", "blkio.bfq.weight"],
            "blockIO.weight",
            w,
        )?;
        fs::write(&dir.join(file), &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        let file = first_existing(dir, &["blkio.leaf_weight"], "blockIO.leafWeight", w)?;
        fs::write(&dir.join(file), &w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let value = format!("{}:{} {}", d.major(), d.minor(), w);
            let file = first_existing(
                dir,
                &["blkio.weight_device", "blkio.bfq.weight_device"],
                "blockIO.weightDevice",
                &value,
            )?;
            fs::write(&dir.join(file), &value)?;
        }
        if let Some(w) = d.leaf_weight() {
            let value = format!("{}:{} {}", d.major(), d.minor(), w);
            let file = first_existing(
                dir,
                &["blkio.leaf_weight_device"],
                "blockIO.weightDevice.leafWeight",
                &value,
            )?;
            fs::write(&dir.join(file), &value)?;
        }
    }
    let files = [
        "blkio.throttle.read_bps_device",
        "blkio.throttle.write_bps_device",
        "blkio.throttle.read_iops_device",
        "blkio.throttle.write_iops_device",
    ];
    for ((_, list), file) in throttles(b).into_iter().zip(files) {
        for t in list {
            fs::write(
                &dir.join(file),
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

pub fn hugetlb(dir: &Path, h: &LinuxHugepageLimit) -> Result<()> {
    let file = dir.join(format!("hugetlb.{}.limit_in_bytes", h.page_size()));
    hugetlb_write(&file, h, &h.limit().to_string())
}

pub fn hugetlb_write(file: &Path, h: &LinuxHugepageLimit, value: &str) -> Result<()> {
    if !file.exists() {
        return Err(invalid(
            "hugepageLimits.pageSize",
            h.page_size(),
            "this kernel has no such huge page size",
        ));
    }
    fs::write(file, value)
}

pub fn rdma(dir: &Path, device: &str, limit: &LinuxRdma) -> Result<()> {
    let mut value = device.to_string();
    if let Some(h) = limit.hca_handles() {
        value.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = limit.hca_objects() {
        value.push_str(&format!(" hca_object={o}"));
    }
    fs::write(&dir.join("rdma.max"), &value)
}

/// v1 devices: set the default, then each rule in order.
pub fn devices(dir: &Path, program: &DeviceProgram) -> Result<()> {
    let file = |allow: bool| {
        dir.join(if allow {
            "devices.allow"
        } else {
            "devices.deny"
        })
    };
    fs::write(&file(program.default_allow), "a")?;
    for rule in &program.rules {
        fs::write(&file(rule.allow), &rule.v1_string())?;
    }
    Ok(())
}

/// Freeze or thaw through freezer.state and wait until the kernel reports it done.
pub fn freeze(dir: &Path, frozen: bool) -> Result<()> {
    let state = dir.join("freezer.state");
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let done = fs::wait_for(Duration::from_secs(2), || {
        // Re-writing FROZEN makes the kernel retry tasks that were busy (like runc does).
        fs::write(&state, want)?;
        Ok(fs::read(&state)?.trim() == want)
    })?;
    if !done {
        let _ = fs::write(&state, "THAWED");
        return Err(Error::Path {
            path: state,
            reason: format!("did not become {want} within 2s"),
        });
    }
    Ok(())
}
