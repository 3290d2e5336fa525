//! Checks on `linux.resources` values, done before any cgroup is made, so a bad config.json
//! leaves nothing behind. Each error names the field and the value.
use super::{invalid, Result};
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxResources,
};
use std::path::Path;

pub fn resources(r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        memory(m)?;
    }
    if let Some(c) = r.cpu() {
        cpu(c)?;
    }
    if let Some(p) = r.pids() {
        if p.limit() < -1 {
            return Err(invalid(
                "pids.limit",
                p.limit(),
                "must be -1 (unlimited), 0 (unset) or positive",
            ));
        }
    }
    if let Some(b) = r.block_io() {
        blkio(b)?;
    }
    for h in r.hugepage_limits().iter().flatten() {
        if h.limit() < 0 {
            return Err(invalid(
                "hugepageLimits.limit",
                h.limit(),
                "must not be negative",
            ));
        }
        if page_size_bytes(h.page_size()).is_none() {
            return Err(invalid(
                "hugepageLimits.pageSize",
                h.page_size(),
                "expected a size like \"2MB\" or \"1GB\"",
            ));
        }
    }
    if let Some(rules) = r.devices() {
        device_rules(rules)?;
    }
    for key in r.unified().iter().flat_map(|u| u.keys()) {
        if key.contains('/') || key.starts_with('.') || !key.contains('.') {
            return Err(invalid("unified", key, "not a cgroup2 interface file name"));
        }
    }
    Ok(())
}

fn memory(m: &LinuxMemory) -> Result<()> {
    #[allow(deprecated)]
    let fields = [
        ("memory.limit", m.limit()),
        ("memory.reservation", m.reservation()),
        ("memory.swap", m.swap()),
        ("memory.kernel", m.kernel()),
        ("memory.kernelTCP", m.kernel_tcp()),
    ];
    for (field, v) in fields {
        if let Some(v) = v.filter(|v| *v < -1) {
            return Err(invalid(
                field,
                v,
                "must be -1 (unlimited) or a number of bytes",
            ));
        }
    }
    if let Some(s) = m.swappiness().filter(|s| *s > 100) {
        return Err(invalid("memory.swappiness", s, "must be between 0 and 100"));
    }
    if let (Some(limit), Some(swap)) = (m.limit(), m.swap()) {
        if limit > 0 && swap > 0 && swap < limit {
            return Err(invalid(
                "memory.swap",
                swap,
                &format!("memory+swap must not be below memory.limit ({limit})"),
            ));
        }
    }
    Ok(())
}

fn cpu(c: &LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares().filter(|s| *s != 0 && !(2..=262_144).contains(s)) {
        return Err(invalid("cpu.shares", s, "must be between 2 and 262144"));
    }
    if let Some(q) = c.quota().filter(|q| *q < -1 || (*q > 0 && *q < 1000)) {
        return Err(invalid(
            "cpu.quota",
            q,
            "must be -1 (unlimited) or at least 1000 (µs)",
        ));
    }
    if let Some(p) = c
        .period()
        .filter(|p| *p != 0 && !(1000..=1_000_000).contains(p))
    {
        return Err(invalid(
            "cpu.period",
            p,
            "must be between 1000 and 1000000 (µs)",
        ));
    }
    if let Some(i) = c.idle().filter(|i| *i != 0 && *i != 1) {
        return Err(invalid("cpu.idle", i, "must be 0 or 1"));
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r < -1) {
        return Err(invalid(
            "cpu.realtimeRuntime",
            r,
            "must be -1 or a number of µs",
        ));
    }
    for (field, v) in [("cpu.cpus", c.cpus()), ("cpu.mems", c.mems())] {
        if let Some(v) = v.as_deref().filter(|v| !is_cpu_list(v)) {
            return Err(invalid(
                field,
                format!("{v:?}"),
                "expected a list like \"0-3,5\"",
            ));
        }
    }
    Ok(())
}

fn is_cpu_list(s: &str) -> bool {
    s.is_empty()
        || s.split(',').all(|part| {
            let mut ends = part.splitn(2, '-');
            ends.all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

fn blkio(b: &LinuxBlockIo) -> Result<()> {
    let weight_ok = |w: &u16| *w == 0 || (10..=1000).contains(w);
    if let Some(w) = b.weight().filter(|w| !weight_ok(w)) {
        return Err(invalid("blockIO.weight", w, "must be between 10 and 1000"));
    }
    if let Some(w) = b.leaf_weight().filter(|w| !weight_ok(w)) {
        return Err(invalid(
            "blockIO.leafWeight",
            w,
            "must be between 10 and 1000",
        ));
    }
    for d in b.weight_device().iter().flatten() {
        block_device("blockIO.weightDevice", d.major(), d.minor())?;
        if let Some(w) = d.weight().filter(|w| !weight_ok(w)) {
            return Err(invalid(
                "blockIO.weightDevice.weight",
                w,
                "must be between 10 and 1000",
            ));
        }
    }
    for (field, list) in throttles(b) {
        for t in list {
            block_device(field, t.major(), t.minor())?;
        }
    }
    Ok(())
}

fn list<T>(v: &Option<Vec<T>>) -> &[T] {
    v.as_deref().unwrap_or(&[])
}

pub fn throttles(
    b: &LinuxBlockIo,
) -> [(&'static str, &[oci_spec::runtime::LinuxThrottleDevice]); 4] {
    [
        (
            "blockIO.throttleReadBpsDevice",
            list(b.throttle_read_bps_device()),
        ),
        (
            "blockIO.throttleWriteBpsDevice",
            list(b.throttle_write_bps_device()),
        ),
        (
            "blockIO.throttleReadIOPSDevice",
            list(b.throttle_read_iops_device()),
        ),
        (
            "blockIO.throttleWriteIOPSDevice",
            list(b.throttle_write_iops_device()),
        ),
    ]
}

/// The block device must exist (the kernel's own error would be a bare EINVAL/ENODEV).
fn block_device(field: &str, major: i64, minor: i64) -> Result<()> {
    if major < 0 || minor < 0 || !Path::new(&format!("/sys/dev/block/{major}:{minor}")).exists() {
        return Err(invalid(
            field,
            format!("{major}:{minor}"),
            "no such block device",
        ));
    }
    Ok(())
}

/// "2MB" → 2 MiB, "1GB", "64KB".
pub fn page_size_bytes(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    Some(n * mult)
}

/// One device rule, normalised: type 'a', 'b' or 'c'; None = any number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Bits: 1 = mknod, 2 = read, 4 = write (the kernel's BPF_DEVCG_ACC_*).
    pub access: u32,
}

impl DeviceRule {
    /// v1 devices.allow/deny syntax: `c 1:3 rwm`.
    pub fn v1_string(&self) -> String {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let mut acc = String::new();
        for (bit, ch) in [(2, 'r'), (4, 'w'), (1, 'm')] {
            if self.access & bit != 0 {
                acc.push(ch);
            }
        }
        format!(
            "{} {}:{} {}",
            self.kind,
            num(self.major),
            num(self.minor),
            acc
        )
    }

    fn is_wildcard(&self) -> bool {
        self.kind == 'a' && self.major.is_none() && self.minor.is_none() && self.access == 7
    }
}

/// The rules to enforce: what is allowed when no rule matches, then rules (last match wins).
/// Built from the config's rules followed by the default devices, on a deny-all start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProgram {
    pub default_allow: bool,
    pub rules: Vec<DeviceRule>,
}

/// Devices every container gets, as runc adds them after the config's rules: mknod of any
/// char/block device, null, zero, full, tty, random, urandom, ptmx, pts, tun — never the host
/// console (5:1), which runc dropped from its list too.
const DEFAULT_ALLOWED: &[(char, Option<u32>, Option<u32>, u32)] = &[
    ('c', None, None, 1),
    ('b', None, None, 1),
    ('c', Some(1), Some(3), 7),
    ('c', Some(1), Some(5), 7),
    ('c', Some(1), Some(7), 7),
    ('c', Some(5), Some(0), 7),
    ('c', Some(1), Some(8), 7),
    ('c', Some(1), Some(9), 7),
    ('c', Some(5), Some(2), 7),
    ('c', Some(136), None, 7),
    ('c', Some(10), Some(200), 7),
];

pub fn device_rules(rules: &[LinuxDeviceCgroup]) -> Result<DeviceProgram> {
    // Like runc: deny what no rule allows (an "a *:* rwm" allow rule switches to allow-all).
    let mut program = DeviceProgram {
        default_allow: false,
        rules: Vec::new(),
    };
    for (i, r) in rules.iter().enumerate() {
        let rule = device_rule(i, r)?;
        if rule.is_wildcard() {
            program.default_allow = rule.allow;
            program.rules.clear();
        } else {
            program.rules.push(rule);
        }
    }
    for &(kind, major, minor, access) in DEFAULT_ALLOWED {
        program.rules.push(DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access,
        });
    }
    Ok(program)
}

fn device_rule(i: usize, r: &LinuxDeviceCgroup) -> Result<DeviceRule> {
    let field = format!("devices[{i}]");
    let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => {
            return Err(invalid(&format!("{field}.type"), "p", "must be a, b or c"))
        }
    };
    let number = |name: &str, v: Option<i64>| -> Result<Option<u32>> {
        match v {
            None | Some(-1) => Ok(None),
            Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(Some(n as u32)),
            Some(n) => Err(invalid(
                &format!("{field}.{name}"),
                n,
                "must be -1 (any) or a device number",
            )),
        }
    };
    let access_str = r.access().as_deref().unwrap_or("rwm");
    let mut access = 0;
    for ch in access_str.chars() {
        access |= match ch {
            'r' => 2,
            'w' => 4,
            'm' => 1,
            _ => {
                return Err(invalid(
                    &format!("{field}.access"),
                    format!("{access_str:?}"),
                    "only r, w and m are allowed",
                ))
            }
        };
    }
    if access == 0 {
        access = 7;
    }
    Ok(DeviceRule {
        allow: r.allow(),
        kind,
        major: number("major", r.major())?,
        minor: number("minor", r.minor())?,
        access,
    })
}

#[allow(deprecated)]
pub fn memory_is_set(m: &LinuxMemory) -> bool {
    let set = |v: Option<i64>| v.is_some_and(|v| v != 0);
    set(m.limit())
        || set(m.reservation())
        || set(m.swap())
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true)
}

pub fn cpu_is_set(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|v| v != 0)
        || c.quota().is_some_and(|v| v != 0)
        || c.period().is_some_and(|v| v != 0)
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_runtime().is_some_and(|v| v != 0)
        || c.realtime_period().is_some_and(|v| v != 0)
}

pub fn blkio_is_set(b: &LinuxBlockIo) -> bool {
    b.weight().is_some_and(|w| w != 0)
        || b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || throttles(b).iter().any(|(_, l)| !l.is_empty())
}
