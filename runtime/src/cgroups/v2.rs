//! Writing resources to a cgroup v2 directory, converting v1-style values like runc and crun.
use super::convert::{blkio_weight_to_io_weight, max_or, shares_to_weight, swap_to_v2};
use super::validate::throttles;
use super::{fs, invalid, Error, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// mkdir `dir` below `mount`, enabling the hierarchy's controllers in every ancestor's
/// `cgroup.subtree_control` first (a controller not enabled in the parent has no files).
pub fn create(
    mount: &Path,
    dir: &Path,
    controllers: &[String],
    created: &mut Vec<PathBuf>,
) -> Result<()> {
    let rel = dir.strip_prefix(mount).map_err(|_| Error::Path {
        path: dir.to_path_buf(),
        reason: format!("not below the cgroup2 mount {}", mount.display()),
    })?;
    let mut current = mount.to_path_buf();
    for part in rel.components() {
        enable_controllers(&current, controllers);
        current.push(part);
        fs::mkdir_chain(&current, created, |_| Ok(()))?;
    }
    Ok(())
}

/// Best effort, like runc: a controller that cannot be enabled (e.g. the parent holds
/// processes) shows up later as a clear error when its file is written.
fn enable_controllers(dir: &Path, controllers: &[String]) {
    let file = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&file).unwrap_or_default();
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == c.as_str()))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() || fs::write(&file, &missing.join(" ")).is_ok() {
        return;
    }
    for c in missing {
        if let Err(e) = fs::write(&file, &c) {
            tracing::debug!("cgroup2: {e}");
        }
    }
}

pub fn memory(dir: &Path, m: &LinuxMemory, update: bool) -> Result<()> {
    let limit = m.limit().filter(|l| *l != 0);
    if update && m.check_before_update() == Some(true) {
        if let Some(l) = limit.filter(|l| *l > 0) {
            super::v1::check_usage(&dir.join("memory.current"), l)?;
        }
    }
    if let Some(s) = m.swap() {
        // Written before memory.max like runc: both are independent on v2.
        if let Some(v) = swap_to_v2(s, limit)? {
            let file = dir.join("memory.swap.max");
            if !file.exists() {
                if v != -1 {
                    return Err(invalid(
                        "memory.swap",
                        s,
                        "this kernel has no swap accounting (memory.swap.max)",
                    ));
                }
            } else {
                fs::write(&file, &max_or(v))?;
            }
        }
    }
    if let Some(l) = limit {
        fs::write(&dir.join("memory.max"), &max_or(l))?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        fs::write(&dir.join("memory.low"), &max_or(r))?;
    }
    if m.swappiness().is_some() || m.disable_oom_killer() == Some(true) || m.kernel_tcp().is_some()
    {
        tracing::warn!("memory.swappiness, disableOOMKiller and kernelTCP have no cgroup v2 equivalent; ignored");
    }
    Ok(())
}

pub fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        fs::write(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
    }
    let quota = c.quota().filter(|q| *q != 0);
    let period = c.period().filter(|p| *p != 0);
    if quota.is_some() || period.is_some() {
        let file = dir.join("cpu.max");
        let current = fs::read(&file)?;
        let mut cur = current.split_whitespace();
        let (cur_quota, cur_period) = (
            cur.next().unwrap_or("max").to_string(),
            cur.next().unwrap_or("100000").to_string(),
        );
        let q = quota.map_or(cur_quota, max_or);
        let p = period.map_or(cur_period, |p| p.to_string());
        fs::write(&file, &format!("{q} {p}"))?;
    }
    if let Some(b) = c.burst() {
        fs::write(&dir.join("cpu.max.burst"), &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        fs::write(&dir.join("cpu.idle"), &i.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        return Err(invalid(
            "cpu.realtimeRuntime",
            r,
            "real-time scheduling limits do not exist on cgroup v2",
        ));
    }
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        return Err(invalid(
            "cpu.realtimePeriod",
            p,
            "real-time scheduling limits do not exist on cgroup v2",
        ));
    }
    Ok(())
}

pub fn io(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let bfq = dir.join("io.bfq.weight");
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        // BFQ takes the v1 scale directly; io.weight needs the conversion.
        if bfq.exists() {
            fs::write(&bfq, &w.to_string())?;
        } else {
            fs::write(
                &dir.join("io.weight"),
                &format!("default {}", blkio_weight_to_io_weight(w)),
            )?;
        }
    }
    if b.leaf_weight().is_some_and(|w| w != 0) {
        tracing::warn!("blockIO.leafWeight has no cgroup v2 equivalent; ignored");
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let value = format!("{}:{} {}", d.major(), d.minor(), w);
            if !bfq.exists() {
                return Err(invalid(
                    "blockIO.weightDevice",
                    value,
                    "needs the BFQ I/O scheduler on cgroup v2 (no io.bfq.weight)",
                ));
            }
            fs::write(&bfq, &value)?;
        }
    }
    let keys = ["rbps", "wbps", "riops", "wiops"];
    for ((_, list), key) in throttles(b).into_iter().zip(keys) {
        for t in list {
            let value = format!("{}:{} {}={}", t.major(), t.minor(), key, t.rate());
            fs::write(&dir.join("io.max"), &value)?;
        }
    }
    Ok(())
}

pub fn hugetlb(dir: &Path, h: &LinuxHugepageLimit) -> Result<()> {
    let file = dir.join(format!("hugetlb.{}.max", h.page_size()));
    super::v1::hugetlb_write(&file, h, &h.limit().to_string())
}

/// `unified`: cgroup2 interface files written as given.
pub fn unified(dir: &Path, values: &HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<&String> = values.keys().collect();
    keys.sort();
    for key in keys {
        let file = dir.join(key);
        if !file.exists() {
            return Err(invalid(
                "unified",
                key,
                "invalid configuration: no such file in the container's cgroup (controller not enabled?)",
            ));
        }
        fs::write(&file, &values[key])?;
    }
    Ok(())
}

/// Freeze or thaw through cgroup.freeze and wait for cgroup.events to agree.
pub fn freeze(dir: &Path, frozen: bool) -> Result<()> {
    let want = if frozen { "1" } else { "0" };
    fs::write(&dir.join("cgroup.freeze"), want)?;
    let events = dir.join("cgroup.events");
    let done = fs::wait_for(Duration::from_secs(2), || {
        Ok(fs::keyed(&fs::read(&events)?).get("frozen").copied() == Some(u64::from(frozen)))
    })?;
    if !done {
        if frozen {
            let _ = fs::write(&dir.join("cgroup.freeze"), "0");
        }
        return Err(Error::Path {
            path: events,
            reason: format!("\"frozen\" did not become {want} within 2s"),
        });
    }
    Ok(())
}
