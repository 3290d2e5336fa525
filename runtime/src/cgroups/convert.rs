//! v1-style values converted to cgroup v2 the way runc and crun convert them.
use super::{invalid, Result};

/// cpu.shares [2, 262144] → cpu.weight [1, 10000] (runc's linear map; 1024 → 39).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// blkio.weight [10, 1000] → io.weight [1, 10000].
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10) * 9999) / 990
}

/// OCI `memory.swap` is memory+swap (v1 memsw); v2's memory.swap.max is swap alone.
/// Returns None for "leave unset", Some(-1) for "max".
pub fn swap_to_v2(swap: i64, limit: Option<i64>) -> Result<Option<i64>> {
    let limit = limit.unwrap_or(0);
    if swap == -1 {
        return Ok(Some(-1));
    }
    if swap == 0 {
        return Ok(if limit == -1 { Some(-1) } else { None });
    }
    if limit == 0 || limit == -1 {
        return Err(invalid(
            "memory.swap",
            swap,
            "a swap limit needs a memory limit on cgroup v2",
        ));
    }
    if swap < limit {
        return Err(invalid(
            "memory.swap",
            swap,
            "memory+swap must not be below memory.limit",
        ));
    }
    Ok(Some(swap - limit))
}

/// v2 spelling of a limit: -1 → "max".
pub fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}
