//! Commands on a running container's cgroup: pause, resume, ps, events, update.
use crate::state::Container;
use crate::{Error, Result};
use oci_spec::runtime::{ContainerState, LinuxResources};
use std::path::Path;
use std::time::Duration;

fn running(root: &Path, id: &str) -> Result<Container> {
    let c = Container::load(root, id)?;
    match c.status(root) {
        ContainerState::Running | ContainerState::Created => Ok(c),
        s => Err(Error::State(format!("container {id} is not running: {s}"))),
    }
}

pub fn pause(root: &Path, id: &str) -> Result<()> {
    let c = running(root, id)?;
    Ok(c.cgroup.freeze()?)
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    if c.status_word(root) != "paused" {
        return Err(Error::State(format!("container {id} is not paused")));
    }
    Ok(c.cgroup.thaw()?)
}

/// Pids of every process in the container's cgroup.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let c = Container::load(root, id)?;
    Ok(c.cgroup.pids()?)
}

/// `ps` output limited to the container's processes (header kept).
pub fn ps_table(root: &Path, id: &str, ps_args: &[String]) -> Result<String> {
    let pids = pids(root, id)?;
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::io("run", "ps", e))?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::Other("ps: no PID column".into()))?;
    let mut result = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            result.push_str(line);
            result.push('\n');
        }
    }
    Ok(result)
}

/// One event of `events`, its keys in runc's order: `{"type":…,"id":…,"data":…}`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

/// One runc-shaped stats event: `{"type":"stats","id":…,"data":{…}}`.
pub fn stats_event(c: &Container) -> Result<Event> {
    Ok(Event {
        kind: "stats",
        id: c.id.clone(),
        data: Some(c.cgroup.stats()?),
    })
}

/// `events`: stats every `interval` and OOM events as they happen, until the container stops.
pub fn events(
    root: &Path,
    id: &str,
    interval: Duration,
    mut emit: impl FnMut(&Event),
) -> Result<()> {
    let c = running(root, id)?;
    let tick = Duration::from_millis(100);
    let mut since_stats = interval;
    let mut ooms = c.cgroup.oom_kill_count().unwrap_or(0);
    while c.status(root) != ContainerState::Stopped {
        if since_stats >= interval {
            if let Ok(ev) = stats_event(&c) {
                emit(&ev);
            }
            since_stats = Duration::ZERO;
        }
        let now = c.cgroup.oom_kill_count().unwrap_or(ooms);
        if now > ooms {
            emit(&Event {
                kind: "oom",
                id: c.id.clone(),
                data: None,
            });
            ooms = now;
        }
        std::thread::sleep(tick);
        since_stats += tick;
    }
    Ok(())
}

pub fn update(root: &Path, id: &str, resources: &LinuxResources) -> Result<()> {
    let c = running(root, id)?;
    Ok(c.cgroup.update(resources)?)
}

/// Sizes as runc's flags take them: `1024`, `512k`, `256m`, `1g` (binary units); -1 is unlimited.
pub fn parse_size(text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| Error::Spec(format!("invalid size {text:?}")))?;
    if n < 0.0 {
        return Err(Error::Spec(format!("invalid size {text:?}: negative")));
    }
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-5m").is_err());
    }
}
