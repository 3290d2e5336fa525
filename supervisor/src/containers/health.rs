//! Healthchecks, as docker runs them: the container's `Healthcheck` (its own or its image's)
//! is probed by an exec in the running container every `Interval` (every `StartInterval`
//! during a `StartPeriod`); a probe that outlives `Timeout` is killed and counts as failed
//! (exit -1). Exit 0 makes the container healthy; `Retries` failures in a row unhealthy
//! (failures inside the start period, while still starting, do not count). Docker's
//! `State.Health` keeps the last five results with the first 4 KiB of their output, lives in
//! the record (so it survives the daemon), and turns `unhealthy` when the container stops
//! (docker's "unhealthy when the monitor has stopped"). A change of status is a
//! `health_status: …` event.
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::config::HealthConfig;
use super::journal::Event;
use super::record::{self, Container};
use super::service::{ContainerService, Entry, Progress};

/// Results kept in `State.Health.Log`.
pub const MAX_LOG: usize = 5;
/// Bytes of a probe's output kept.
pub const MAX_OUTPUT: usize = 4096;
const DEFAULT_INTERVAL: i64 = 30_000_000_000;
const DEFAULT_TIMEOUT: i64 = 30_000_000_000;
const DEFAULT_START_INTERVAL: i64 = 5_000_000_000;
const DEFAULT_RETRIES: u32 = 3;

/// Docker's health status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Starting,
    Healthy,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// One probe's result (docker's `HealthcheckResult`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// Docker's `State.Health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: Status,
    pub failing_streak: u32,
    pub log: Vec<Probe>,
}

impl Health {
    /// `ps`'s words: `health: starting`, `healthy`, `unhealthy`.
    pub fn ps_text(&self) -> String {
        match self.status {
            Status::Starting => "health: starting".into(),
            other => other.as_str().into(),
        }
    }

    /// Applies a result (docker's `handleProbeResult`); the new status when it changed.
    pub fn record(&mut self, probe: Probe, in_start_period: bool, retries: u32) -> Option<Status> {
        let before = self.status;
        if probe.exit_code == 0 {
            self.failing_streak = 0;
            self.status = Status::Healthy;
        } else if !(self.status == Status::Starting && in_start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = Status::Unhealthy;
            }
        }
        self.log.push(probe);
        if self.log.len() > MAX_LOG {
            let extra = self.log.len() - MAX_LOG;
            self.log.drain(..extra);
        }
        (self.status != before).then_some(self.status)
    }
}

/// What the monitor runs and when, from `Config.Healthcheck` with docker's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

fn or_default(nanos: i64, default: i64) -> Duration {
    Duration::from_nanos(if nanos > 0 { nanos } else { default } as u64)
}

impl Settings {
    /// `None` without a healthcheck (none given, `NONE`, or a test docker does not run).
    pub fn of(config: &Value) -> Option<Settings> {
        let hc: HealthConfig = serde_json::from_value(config["Healthcheck"].clone()).ok()?;
        let test = hc.test.unwrap_or_default();
        let argv = match test.split_first() {
            Some((kind, args)) if kind == "CMD" && !args.is_empty() => args.to_vec(),
            Some((kind, [command])) if kind == "CMD-SHELL" => {
                let mut shell: Vec<String> = config["Shell"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                if shell.is_empty() {
                    shell = vec!["/bin/sh".into(), "-c".into()];
                }
                shell.push(command.clone());
                shell
            }
            _ => return None,
        };
        Some(Settings {
            argv,
            interval: or_default(hc.interval, DEFAULT_INTERVAL),
            timeout: or_default(hc.timeout, DEFAULT_TIMEOUT),
            start_period: or_default(hc.start_period, 0),
            start_interval: or_default(hc.start_interval, DEFAULT_START_INTERVAL),
            retries: if hc.retries > 0 {
                hc.retries as u32
            } else {
                DEFAULT_RETRIES
            },
        })
    }

    /// The wait before the next probe: the start interval while starting inside a start period.
    fn next_wait(&self, status: Status, since_start: Duration) -> Duration {
        if status == Status::Starting && since_start < self.start_period {
            self.start_interval
        } else {
            self.interval
        }
    }
}

/// At a start (docker's `initHealthMonitor`): starting again, the failing streak cleared,
/// the log kept.
pub fn on_start(c: &mut Container) {
    if Settings::of(&c.config).is_none() {
        return;
    }
    let h = c.state.health.get_or_insert_with(Health::default);
    h.status = Status::Starting;
    h.failing_streak = 0;
}

/// At an exit: the monitor stopped, so unhealthy (docker's rule).
pub fn on_stop(c: &mut Container) {
    if let Some(h) = &mut c.state.health {
        h.status = Status::Unhealthy;
    }
}

/// `ps --filter health=…`: `starting`, `healthy`, `unhealthy` or `none`.
pub fn filter_value(c: &Container) -> &'static str {
    c.state
        .health
        .as_ref()
        .map_or("none", |h| h.status.as_str())
}

/// Starts the monitor of the run that is live now; it ends with that run (exit or removal).
pub fn watch(service: &Arc<ContainerService>, entry: &Arc<Entry>, c: &Container) {
    let Some(settings) = Settings::of(&c.config) else {
        return;
    };
    let run = entry.progress.borrow().exits;
    let started = chrono::DateTime::parse_from_rfc3339(&c.state.started_at)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    let (service, entry, id) = (service.clone(), entry.clone(), c.id.clone());
    tokio::spawn(async move { monitor(service, entry, id, settings, started, run).await });
}

fn since(t: chrono::DateTime<chrono::Utc>) -> Duration {
    (chrono::Utc::now() - t).to_std().unwrap_or_default()
}

async fn monitor(
    service: Arc<ContainerService>,
    entry: Arc<Entry>,
    id: String,
    settings: Settings,
    started: chrono::DateTime<chrono::Utc>,
    run: u64,
) {
    let mut rx = entry.progress.subscribe();
    let ended = move |p: &Progress| p.exits > run || p.removed || !p.running;
    loop {
        let status = {
            let c = entry.record.lock().await;
            c.state
                .health
                .as_ref()
                .map(|h| h.status)
                .unwrap_or_default()
        };
        let wait = settings.next_wait(status, since(started));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = rx.wait_for(ended) => return,
        }
        let Some(probe) = probe(&service, &id, &settings).await else {
            continue;
        };
        let probe_start = chrono::DateTime::parse_from_rfc3339(&probe.start)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or(started);
        let in_start_period = (probe_start - started)
            .to_std()
            .is_ok_and(|d| d < settings.start_period);
        let mut c = entry.record.lock().await;
        if ended(&entry.progress.borrow()) {
            return;
        }
        let health = c.state.health.get_or_insert_with(Health::default);
        let changed = health.record(probe, in_start_period, settings.retries);
        if let Err(e) = service.store.put(&c) {
            tracing::error!(id = %c.id, error = %e, "recording a health probe");
        }
        if let Some(s) = changed {
            tracing::info!(id = %c.id, status = s.as_str(), "health");
            service.journal.publish(Event::container(
                &c,
                &format!("health_status: {}", s.as_str()),
                &[],
            ));
        }
    }
}

/// Runs one probe as an exec; `None` when the container cannot take one now (not running,
/// paused).
async fn probe(service: &Arc<ContainerService>, id: &str, s: &Settings) -> Option<Probe> {
    let config = json!({"Cmd": s.argv, "AttachStdout": true, "AttachStderr": true});
    let exec_id = service.exec_create(id, config).await.ok()?;
    let start = record::now();
    let failed = |output: String| Probe {
        start: start.clone(),
        end: record::now(),
        exit_code: -1,
        output,
    };
    let result = match service.exec_start(&exec_id, false).await {
        Err(e) => failed(e.to_string()),
        Ok(io) => {
            let pipes = [io.stdout, io.stderr].into_iter().flatten().collect();
            match tokio::time::timeout(s.timeout, read_output(pipes)).await {
                Ok(output) => {
                    let code = service.exec_finish(&exec_id).await.unwrap_or(-1);
                    Probe {
                        start: start.clone(),
                        end: record::now(),
                        exit_code: code,
                        output,
                    }
                }
                Err(_) => {
                    service.exec_kill(&exec_id, libc::SIGKILL).await;
                    let _ = service.exec_finish(&exec_id).await;
                    failed(format!(
                        "Health check exceeded timeout ({})",
                        crate::duration::format(s.timeout.as_nanos() as i64)
                    ))
                }
            }
        }
    };
    service.exec_forget(&exec_id).await;
    Some(result)
}

/// Stdout and stderr together as they come, the first [`MAX_OUTPUT`] bytes kept.
async fn read_output(pipes: Vec<tokio::net::unix::pipe::Receiver>) -> String {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    for mut pipe in pipes {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_OUTPUT];
            while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                if tx.send(buf[..n].to_vec()).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut kept = Vec::new();
    while let Some(chunk) = rx.recv().await {
        let room = MAX_OUTPUT - kept.len();
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(code: i32) -> Probe {
        Probe {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: code.to_string(),
        }
    }

    #[test]
    fn settings_with_docker_defaults() {
        let s = Settings::of(&json!({"Healthcheck": {"Test": ["CMD-SHELL", "true"]}})).unwrap();
        assert_eq!(s.argv, ["/bin/sh", "-c", "true"]);
        assert_eq!(s.interval, Duration::from_secs(30));
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.retries, 3);
        assert_eq!(s.start_period, Duration::ZERO);
        let s = Settings::of(&json!({
            "Shell": ["/bin/ash", "-eo"],
            "Healthcheck": {"Test": ["CMD-SHELL", "x"], "Interval": 1_000_000_000, "Retries": 2}
        }))
        .unwrap();
        assert_eq!(s.argv, ["/bin/ash", "-eo", "x"]);
        assert_eq!((s.interval, s.retries), (Duration::from_secs(1), 2));
        let s = Settings::of(&json!({"Healthcheck": {"Test": ["CMD", "cat", "/f"]}})).unwrap();
        assert_eq!(s.argv, ["cat", "/f"]);
        for none in [
            json!({}),
            json!({"Healthcheck": null}),
            json!({"Healthcheck": {"Test": ["NONE"]}}),
            json!({"Healthcheck": {"Test": []}}),
            json!({"Healthcheck": {"Test": ["CMD"]}}),
        ] {
            assert_eq!(Settings::of(&none), None, "{none}");
        }
    }

    #[test]
    fn docker_s_status_rules() {
        let mut h = Health::default();
        // Failures in the start period do not count while starting.
        assert_eq!(h.record(probe(1), true, 2), None);
        assert_eq!(h.failing_streak, 0);
        assert_eq!(h.record(probe(0), true, 2), Some(Status::Healthy));
        // Once healthy, failures in the start period count.
        assert_eq!(h.record(probe(1), true, 2), None);
        assert_eq!(h.failing_streak, 1);
        assert_eq!(h.record(probe(-1), false, 2), Some(Status::Unhealthy));
        assert_eq!(h.failing_streak, 2);
        assert_eq!(h.record(probe(0), false, 2), Some(Status::Healthy));
        assert_eq!(h.failing_streak, 0);
        for _ in 0..4 {
            h.record(probe(7), false, 9);
        }
        let codes: Vec<i32> = h.log.iter().map(|p| p.exit_code).collect();
        assert_eq!(codes, [0, 7, 7, 7, 7]);
        assert_eq!(h.ps_text(), "healthy");
        assert_eq!(Health::default().ps_text(), "health: starting");
    }

    #[test]
    fn start_interval_only_while_starting_in_the_start_period() {
        let s = Settings {
            argv: vec![],
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(1),
            start_period: Duration::from_secs(10),
            start_interval: Duration::from_secs(2),
            retries: 3,
        };
        let (early, late) = (Duration::from_secs(1), Duration::from_secs(11));
        assert_eq!(s.next_wait(Status::Starting, early), s.start_interval);
        assert_eq!(s.next_wait(Status::Starting, late), s.interval);
        assert_eq!(s.next_wait(Status::Healthy, early), s.interval);
    }
}
