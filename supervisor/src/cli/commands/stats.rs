//! `berth top` and `berth stats`: docker's tables over `/containers/{id}/top` and
//! `/containers/{id}/stats`.
use std::io::{BufRead, Write};

use clap::Args;
use serde_json::Value;

use super::{encode, Context, Exit};
use crate::cli::format::{human_size, tabulate};

fn daemon_error(e: crate::cli::client::Error) -> anyhow::Error {
    eprintln!("{e}");
    Exit(1).into()
}

/// `berth top CONTAINER [ps OPTIONS]`.
#[derive(Debug, Args)]
pub struct TopArgs {
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn top(ctx: &Context, a: &TopArgs) -> anyhow::Result<()> {
    let path = format!(
        "/containers/{}/top?ps_args={}",
        a.container,
        encode(&a.ps_args.join(" "))
    );
    let v = ctx.client.get(&path).map_err(daemon_error)?.json()?;
    let row = |cells: &[Value]| {
        cells
            .iter()
            .map(|c| c.as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("\t")
    };
    let mut lines = vec![row(v["Titles"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]))];
    for p in v["Processes"].as_array().into_iter().flatten() {
        lines.push(row(p.as_array().map(Vec::as_slice).unwrap_or(&[])));
    }
    print!("{}", top_table(&lines));
    Ok(())
}

/// docker top's table writer: tab-separated cells padded to the widest plus 3, at least 20.
fn top_table(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            let widest = rows
                .iter()
                .filter(|r| c + 1 < r.len())
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0);
            (widest + 3).max(20)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < row.len() {
                out.push_str(&" ".repeat(widths[c].saturating_sub(cell.chars().count())));
            }
        }
        out.push('\n');
    }
    out
}

/// `berth stats [--no-stream] [CONTAINER...]`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    pub containers: Vec<String>,
}

pub fn stats(ctx: &Context, a: &StatsArgs) -> anyhow::Result<()> {
    let names = if a.containers.is_empty() {
        let list = ctx
            .client
            .get(&format!("/containers/json?all={}", u8::from(a.all)))
            .map_err(daemon_error)?
            .json()?;
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Id"].as_str().map(str::to_string))
            .collect()
    } else {
        a.containers.clone()
    };
    if a.no_stream {
        let mut rows = vec![header()];
        for name in &names {
            let path = format!("/containers/{name}/stats?stream=0");
            let v = ctx.client.get(&path).map_err(daemon_error)?.json()?;
            rows.push(row(&v));
        }
        print!("{}", tabulate(&rows));
        return Ok(());
    }
    // Streaming: one reader per container, the table redrawn as samples arrive.
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Value)>();
    for (i, name) in names.iter().enumerate() {
        let response = ctx
            .client
            .get(&format!("/containers/{name}/stats?stream=1"))
            .map_err(daemon_error)?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in response.body.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send((i, v)).is_err() {
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    let mut latest: Vec<Option<Value>> = vec![None; names.len()];
    while let Ok((i, v)) = rx.recv() {
        latest[i] = Some(v);
        let mut rows = vec![header()];
        rows.extend(latest.iter().flatten().map(row));
        let mut out = std::io::stdout();
        let _ = write!(out, "\x1b[2J\x1b[H{}", tabulate(&rows));
        let _ = out.flush();
    }
    Ok(())
}

fn header() -> String {
    "CONTAINER ID\tNAME\tCPU %\tMEM USAGE / LIMIT\tMEM %\tNET I/O\tBLOCK I/O\tPIDS".into()
}

/// docker's `BytesSize`: binary units, 4 significant digits.
fn bytes_size(n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut n = n;
    let mut i = 0;
    while n >= 1024.0 && i + 1 < units.len() {
        n /= 1024.0;
        i += 1;
    }
    format!("{}{}", go_g4(n), units[i])
}

/// Go's `%.4g` for the sizes docker prints.
fn go_g4(n: f64) -> String {
    let s = if n >= 1000.0 {
        format!("{n:.0}")
    } else if n >= 100.0 {
        format!("{n:.1}")
    } else if n >= 10.0 {
        format!("{n:.2}")
    } else {
        format!("{n:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One table row, computed as docker's CLI does.
pub fn row(v: &Value) -> String {
    let u = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0) as f64;
    let cpu_delta =
        u("/cpu_stats/cpu_usage/total_usage") - u("/precpu_stats/cpu_usage/total_usage");
    let system_delta = u("/cpu_stats/system_cpu_usage") - u("/precpu_stats/system_cpu_usage");
    let online = u("/cpu_stats/online_cpus").max(1.0);
    let cpu = if cpu_delta > 0.0 && system_delta > 0.0 {
        cpu_delta / system_delta * online * 100.0
    } else {
        0.0
    };
    let usage = u("/memory_stats/usage");
    let inactive = v
        .pointer("/memory_stats/stats/total_inactive_file")
        .or_else(|| v.pointer("/memory_stats/stats/inactive_file"))
        .and_then(Value::as_u64)
        .unwrap_or(0) as f64;
    let mem = if inactive < usage {
        usage - inactive
    } else {
        usage
    };
    let limit = u("/memory_stats/limit");
    let mem_pct = if limit > 0.0 {
        mem / limit * 100.0
    } else {
        0.0
    };
    let (mut read, mut write) = (0.0, 0.0);
    for e in v["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let value = e["value"].as_u64().unwrap_or(0) as f64;
        match e["op"].as_str().unwrap_or("").chars().next() {
            Some('r' | 'R') => read += value,
            Some('w' | 'W') => write += value,
            _ => {}
        }
    }
    let (mut rx, mut tx) = (0.0, 0.0);
    for n in v["networks"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        rx += n["rx_bytes"].as_u64().unwrap_or(0) as f64;
        tx += n["tx_bytes"].as_u64().unwrap_or(0) as f64;
    }
    let id = v["id"].as_str().unwrap_or("");
    format!(
        "{}\t{}\t{cpu:.2}%\t{} / {}\t{mem_pct:.2}%\t{} / {}\t{} / {}\t{}",
        &id[..12.min(id.len())],
        v["name"].as_str().unwrap_or("").trim_start_matches('/'),
        bytes_size(mem),
        bytes_size(limit),
        human_size(rx),
        human_size(tx),
        human_size(read),
        human_size(write),
        u("/pids_stats/current") as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_as_docker_computes_it() {
        let v = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 2_097_152, "limit": 8_388_608, "stats": {"total_inactive_file": 1_048_576}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"op": "Read", "value": 4096}, {"op": "Write", "value": 1_000_000}]},
            "pids_stats": {"current": 3},
        });
        assert_eq!(
            row(&v),
            "0123456789ab\tweb\t40.00%\t1MiB / 8MiB\t12.50%\t0B / 0B\t4.1kB / 1MB\t3"
        );
        assert_eq!(bytes_size(1_600_000.0), "1.526MiB");
        assert_eq!(bytes_size(364.0 * 1024.0), "364KiB");
    }
}
