//! Statistics in the shape of the "data" object of runc's `events --stats`
//! (`cpu`, `memory`, `pids`, `blkio`, `hugetlb`), from v1 or v2 files.
use super::{fs, Cgroup, Place, Result};
use serde_json::{json, Map, Value};
use std::path::Path;

pub fn collect(cg: &Cgroup) -> Result<Value> {
    let mut data = Map::new();
    data.insert("cpu".into(), cpu(cg)?);
    data.insert("memory".into(), memory(cg)?);
    data.insert("pids".into(), pids(cg)?);
    data.insert("blkio".into(), blkio(cg)?);
    data.insert("hugetlb".into(), hugetlb(cg)?);
    Ok(Value::Object(data))
}

/// A file's number, 0 when the file is absent (controller without that feature).
fn num(path: &Path) -> Result<u64> {
    if !path.exists() {
        return Ok(0);
    }
    fs::read_u64(path)
}

fn cpu(cg: &Cgroup) -> Result<Value> {
    let mut usage = Map::new();
    let mut throttling = json!({});
    match cg.place("cpuacct") {
        Place::V1(d) => {
            usage.insert("total".into(), json!(num(&d.join("cpuacct.usage"))?));
            let percpu: Vec<u64> = fs::read(&d.join("cpuacct.usage_percpu"))?
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            usage.insert("percpu".into(), json!(percpu));
            let stat = fs::read(&d.join("cpuacct.stat"))?;
            let stat = fs::keyed(&stat);
            // USER_HZ ticks → ns.
            let tick = 1_000_000_000 / 100;
            usage.insert(
                "kernel".into(),
                json!(stat.get("system").copied().unwrap_or(0) * tick),
            );
            usage.insert(
                "user".into(),
                json!(stat.get("user").copied().unwrap_or(0) * tick),
            );
        }
        _ => {
            if let Some(d) = &cg.unified {
                // cpu.stat's usage lines exist even without the cpu controller.
                let stat = fs::read(&d.join("cpu.stat"))?;
                let stat = fs::keyed(&stat);
                let us = |k: &str| stat.get(k).copied().unwrap_or(0) * 1000;
                usage.insert("total".into(), json!(us("usage_usec")));
                usage.insert("kernel".into(), json!(us("system_usec")));
                usage.insert("user".into(), json!(us("user_usec")));
                if stat.contains_key("nr_periods") {
                    throttling = json!({
                        "periods": stat["nr_periods"],
                        "throttled_periods": stat.get("nr_throttled").copied().unwrap_or(0),
                        "throttled_time": us("throttled_usec"),
                    });
                }
            }
        }
    }
    if let Place::V1(d) = cg.place("cpu") {
        let stat = fs::read(&d.join("cpu.stat"))?;
        let stat = fs::keyed(&stat);
        throttling = json!({
            "periods": stat.get("nr_periods").copied().unwrap_or(0),
            "throttled_periods": stat.get("nr_throttled").copied().unwrap_or(0),
            "throttled_time": stat.get("throttled_time").copied().unwrap_or(0),
        });
    }
    Ok(json!({ "usage": usage, "throttling": throttling }))
}

fn memory(cg: &Cgroup) -> Result<Value> {
    match cg.place("memory") {
        Place::V1(d) => {
            let raw = fs::read(&d.join("memory.stat"))?;
            let raw = fs::keyed(&raw);
            let entry = |prefix: &str| -> Result<Value> {
                Ok(json!({
                    "limit": num(&d.join(format!("{prefix}limit_in_bytes")))?,
                    "usage": num(&d.join(format!("{prefix}usage_in_bytes")))?,
                    "max": num(&d.join(format!("{prefix}max_usage_in_bytes")))?,
                    "failcnt": num(&d.join(format!("{prefix}failcnt")))?,
                }))
            };
            Ok(json!({
                "cache": raw.get("total_cache").or(raw.get("cache")).copied().unwrap_or(0),
                "usage": entry("memory.")?,
                "swap": entry("memory.memsw.")?,
                "kernel": entry("memory.kmem.")?,
                "kernelTCP": entry("memory.kmem.tcp.")?,
                "raw": raw,
            }))
        }
        Place::V2(d) => {
            let raw = fs::read(&d.join("memory.stat"))?;
            let raw = fs::keyed(&raw);
            let usage = num(&d.join("memory.current"))?;
            let events = fs::read(&d.join("memory.events"))?;
            let failcnt = fs::keyed(&events).get("max").copied().unwrap_or(0);
            // Like runc: v2 "swap" is reported as memory+swap, as v1 did.
            let swap = num(&d.join("memory.swap.current"))?;
            Ok(json!({
                "cache": raw.get("file").copied().unwrap_or(0),
                "usage": {
                    "limit": num(&d.join("memory.max"))?,
                    "usage": usage,
                    "max": num(&d.join("memory.peak"))?,
                    "failcnt": failcnt,
                },
                "swap": { "limit": num(&d.join("memory.swap.max"))?, "usage": usage + swap, "failcnt": 0 },
                "raw": raw,
            }))
        }
        Place::Missing => Ok(json!({})),
    }
}

fn pids(cg: &Cgroup) -> Result<Value> {
    match cg.place("pids") {
        Place::V1(d) | Place::V2(d) => {
            let limit = num(&d.join("pids.max"))?;
            Ok(json!({
                "current": num(&d.join("pids.current"))?,
                "limit": if limit == u64::MAX { 0 } else { limit },
            }))
        }
        Place::Missing => Ok(json!({})),
    }
}

fn blkio(cg: &Cgroup) -> Result<Value> {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    if let Place::V1(d) = cg.place("blkio") {
        for (file, out) in [
            ("blkio.throttle.io_service_bytes_recursive", &mut bytes),
            ("blkio.throttle.io_serviced_recursive", &mut ios),
        ] {
            for line in fs::read(&d.join(file))?.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                let [dev, op, value] = f[..] else { continue };
                let Some((major, minor)) = dev.split_once(':') else {
                    continue;
                };
                out.push(json!({
                    "major": major.parse::<u64>().unwrap_or(0),
                    "minor": minor.parse::<u64>().unwrap_or(0),
                    "op": op,
                    "value": value.parse::<u64>().unwrap_or(0),
                }));
            }
        }
    } else if let Place::V2(d) = cg.place("io") {
        for line in fs::read(&d.join("io.stat"))?.lines() {
            let mut f = line.split_whitespace();
            let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
                continue;
            };
            let (major, minor) = (
                major.parse::<u64>().unwrap_or(0),
                minor.parse::<u64>().unwrap_or(0),
            );
            for kv in f {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let v: u64 = v.parse().unwrap_or(0);
                let (out, op) = match k {
                    "rbytes" => (&mut bytes, "Read"),
                    "wbytes" => (&mut bytes, "Write"),
                    "rios" => (&mut ios, "Read"),
                    "wios" => (&mut ios, "Write"),
                    _ => continue,
                };
                out.push(json!({"major": major, "minor": minor, "op": op, "value": v}));
            }
        }
    }
    Ok(json!({ "ioServiceBytesRecursive": bytes, "ioServicedRecursive": ios }))
}

fn hugetlb(cg: &Cgroup) -> Result<Value> {
    let mut out = Map::new();
    let (d, v2) = match cg.place("hugetlb") {
        Place::V1(d) => (d, false),
        Place::V2(d) => (d, true),
        Place::Missing => return Ok(Value::Object(out)),
    };
    let Ok(entries) = std::fs::read_dir(d) else {
        return Ok(Value::Object(out));
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let size = if v2 {
            name.strip_prefix("hugetlb.")
                .and_then(|n| n.strip_suffix(".current"))
        } else {
            name.strip_prefix("hugetlb.")
                .and_then(|n| n.strip_suffix(".usage_in_bytes"))
        };
        let Some(size) = size.filter(|s| !s.contains('.')) else {
            continue;
        };
        let (max, fail) = if v2 {
            let events = fs::read(&d.join(format!("hugetlb.{size}.events")))?;
            (0, fs::keyed(&events).get("max").copied().unwrap_or(0))
        } else {
            (
                num(&d.join(format!("hugetlb.{size}.max_usage_in_bytes")))?,
                num(&d.join(format!("hugetlb.{size}.failcnt")))?,
            )
        };
        out.insert(
            size.to_string(),
            json!({"usage": num(&e.path())?, "max": max, "failcnt": fail}),
        );
    }
    Ok(Value::Object(out))
}
