//! `berth events` and `berth container prune`: docker's output over `/events` and
//! `/containers/prune`.
use std::io::BufRead;

use clap::Args;
use serde_json::Value;

use super::images::{confirm, filters_json};
use super::{encode, Context};
use crate::cli::format::Template;

/// `berth events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format the output using the given Go template
    #[arg(long)]
    pub format: Option<String>,
}

/// Docker's `--since`/`--until`: unix seconds (with a fraction), RFC 3339, or a duration
/// before now (`10m`, `1h30m`, `45s`).
pub fn timestamp(value: &str) -> anyhow::Result<String> {
    if value.chars().all(|c| c.is_ascii_digit() || c == '.') && !value.is_empty() {
        return Ok(value.to_string());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        ));
    }
    let mut seconds = 0f64;
    let mut number = String::new();
    for c in value.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let n: f64 = number
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid timestamp or duration: {value:?}"))?;
        number.clear();
        seconds += n * match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => anyhow::bail!("invalid timestamp or duration: {value:?}"),
        };
    }
    if !number.is_empty() {
        anyhow::bail!("invalid timestamp or duration: {value:?}");
    }
    let at = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) - (seconds * 1e9) as i64;
    Ok(format!("{}.{:09}", at / 1_000_000_000, at % 1_000_000_000))
}

pub fn events(ctx: &Context, a: &EventsArgs) -> anyhow::Result<()> {
    let mut query = vec![format!(
        "filters={}",
        encode(&filters_json(&a.filter, None)?)
    )];
    if let Some(s) = &a.since {
        query.push(format!("since={}", timestamp(s)?));
    }
    if let Some(u) = &a.until {
        query.push(format!("until={}", timestamp(u)?));
    }
    let template = a.format.as_deref().map(Template::parse).transpose()?;
    let response = ctx
        .client
        .get(&format!("/events?{}", query.join("&")))
        .map_err(|e| {
            eprintln!("{e}");
            super::Exit(1)
        })?;
    for line in response.body.lines() {
        let line = line?;
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        match &template {
            Some(t) => println!("{}", t.render(&v)),
            None => println!("{}", plain(&v)),
        }
    }
    Ok(())
}

/// `2024-01-02T03:04:05.000000001Z container start ID (image=…, name=…)`.
pub fn plain(v: &Value) -> String {
    let nanos = v["timeNano"].as_i64().unwrap_or(0);
    let time =
        chrono::DateTime::from_timestamp(nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
            .unwrap_or_default();
    let attributes: Vec<String> = v["Actor"]["Attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let mut out = format!(
        "{time} {} {} {}",
        v["Type"].as_str().unwrap_or(""),
        v["Action"].as_str().unwrap_or(""),
        v["Actor"]["ID"].as_str().unwrap_or("")
    );
    if !attributes.is_empty() {
        out.push_str(&format!(" ({})", attributes.join(", ")));
    }
    out
}

/// `berth container prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. 'until=<timestamp>')
    #[arg(long)]
    pub filter: Vec<String>,
}

pub fn prune(ctx: &Context, a: &PruneArgs) -> anyhow::Result<()> {
    if !a.force && !confirm("WARNING! This will remove all stopped containers.") {
        return Ok(());
    }
    let filters = filters_json(&a.filter, None)?;
    let report = ctx
        .client
        .post(&format!("/containers/prune?filters={}", encode(&filters)))
        .map_err(|e| {
            eprintln!("{e}");
            super::Exit(1)
        })?
        .json()?;
    if let Some(ids) = report["ContainersDeleted"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        println!("Deleted Containers:");
        for id in ids {
            println!("{}", id.as_str().unwrap_or(""));
        }
        println!();
    }
    let reclaimed = report["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    println!(
        "Total reclaimed space: {}",
        crate::images::progress::human_size(reclaimed, 4)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docker_s_plain_event_line() {
        let v = json!({"Type": "container", "Action": "start", "timeNano": 1_700_000_000_000_000_001i64,
            "Actor": {"ID": "abc", "Attributes": {"image": "busybox", "name": "web"}}});
        assert_eq!(
            plain(&v),
            "2023-11-14T22:13:20.000000001Z container start abc (image=busybox, name=web)"
        );
    }

    #[test]
    fn timestamps_and_durations() {
        assert_eq!(timestamp("1700000000").unwrap(), "1700000000");
        assert_eq!(
            timestamp("2023-11-14T22:13:20Z").unwrap(),
            "1700000000.000000000"
        );
        let ten_min_ago: i64 = timestamp("10m")
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((chrono::Utc::now().timestamp() - ten_min_ago - 600).abs() <= 1);
        assert!(timestamp("10x").is_err());
    }
}
