//! Restart policies, as docker's restart manager applies them: `no`, `always`,
//! `on-failure[:N]`, `unless-stopped`. After an exit the container is started again after a
//! delay that starts at 100 ms and doubles up to a minute; a run of 10 s or more resets it.
//! A manual stop (or kill) cancels the policy until the next manual start, except that the
//! daemon's own start applies `always` (and `unless-stopped` when not stopped by hand) again.
use std::time::Duration;

use serde_json::Value;

/// The first delay.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the delay.
pub const RESET_AFTER: Duration = Duration::from_secs(10);

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    No,
    Always,
    UnlessStopped,
    /// At most this many restarts (0: no limit).
    OnFailure(u32),
}

impl Policy {
    pub fn of(host_config: &Value) -> Policy {
        let policy = &host_config["RestartPolicy"];
        match policy["Name"].as_str().unwrap_or("") {
            "always" => Policy::Always,
            "unless-stopped" => Policy::UnlessStopped,
            "on-failure" => {
                Policy::OnFailure(policy["MaximumRetryCount"].as_u64().unwrap_or(0) as u32)
            }
            _ => Policy::No,
        }
    }

    /// Whether an exit with `code` calls for a restart (`restarts` done so far).
    pub fn wants(self, code: i32, manually_stopped: bool, restarts: u32) -> bool {
        match self {
            Policy::No => false,
            Policy::Always => !manually_stopped,
            Policy::UnlessStopped => !manually_stopped,
            Policy::OnFailure(max) => {
                !manually_stopped && code != 0 && (max == 0 || restarts < max)
            }
        }
    }

    /// Whether the daemon starts a stopped container when it starts itself.
    pub fn at_daemon_start(self, code: i32, manually_stopped: bool, restarts: u32) -> bool {
        match self {
            Policy::Always => true,
            other => other.wants(code, manually_stopped, restarts),
        }
    }
}

/// The back-off between restarts of one container; `token` tells a pending restart that a
/// manual start, stop or removal has overtaken it.
#[derive(Debug, Default)]
pub struct Backoff {
    delay: Duration,
    pub token: u64,
}

impl Backoff {
    /// The delay before the next restart, after a run of `ran`.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= RESET_AFTER {
            self.delay = Duration::ZERO;
        }
        self.delay = if self.delay.is_zero() {
            FIRST_DELAY
        } else {
            (self.delay * 2).min(MAX_DELAY)
        };
        self.delay
    }

    /// Forgets the delay and overtakes any pending restart; the new token.
    pub fn reset(&mut self) -> u64 {
        self.delay = Duration::ZERO;
        self.cancel()
    }

    /// Overtakes any pending restart; the new token.
    pub fn cancel(&mut self) -> u64 {
        self.token += 1;
        self.token
    }
}

/// How long a run lasted, from docker's RFC 3339 start and finish times.
pub fn ran(started_at: &str, finished_at: &str) -> Duration {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (parse(started_at), parse(finished_at)) {
        (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policies_from_host_config() {
        let of = |v: Value| Policy::of(&json!({ "RestartPolicy": v }));
        assert_eq!(of(json!(null)), Policy::No);
        assert_eq!(of(json!({"Name": ""})), Policy::No);
        assert_eq!(of(json!({"Name": "no"})), Policy::No);
        assert_eq!(of(json!({"Name": "always"})), Policy::Always);
        assert_eq!(of(json!({"Name": "unless-stopped"})), Policy::UnlessStopped);
        assert_eq!(
            of(json!({"Name": "on-failure", "MaximumRetryCount": 3})),
            Policy::OnFailure(3)
        );
        assert_eq!(of(json!({"Name": "on-failure"})), Policy::OnFailure(0));
    }

    #[test]
    fn docker_s_restart_decisions() {
        assert!(!Policy::No.wants(1, false, 0));
        assert!(Policy::Always.wants(0, false, 99));
        assert!(!Policy::Always.wants(0, true, 0));
        assert!(Policy::UnlessStopped.wants(0, false, 0));
        assert!(!Policy::UnlessStopped.wants(1, true, 0));
        assert!(!Policy::OnFailure(2).wants(0, false, 0));
        assert!(Policy::OnFailure(2).wants(3, false, 1));
        assert!(!Policy::OnFailure(2).wants(3, false, 2));
        assert!(Policy::OnFailure(0).wants(3, false, 1000));
        // The daemon's start: `always` even after a manual stop, `unless-stopped` not.
        assert!(Policy::Always.at_daemon_start(0, true, 0));
        assert!(!Policy::UnlessStopped.at_daemon_start(0, true, 0));
        assert!(Policy::UnlessStopped.at_daemon_start(0, false, 0));
        assert!(!Policy::OnFailure(0).at_daemon_start(0, false, 0));
        assert!(!Policy::No.at_daemon_start(1, false, 0));
    }

    #[test]
    fn delay_doubles_to_a_minute_and_resets_after_ten_seconds() {
        let mut b = Backoff::default();
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..12).map(|_| b.next(short).as_millis() as u64).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
        assert_eq!(b.next(RESET_AFTER), FIRST_DELAY);
        assert_eq!(b.next(short), Duration::from_millis(200));
        b.reset();
        assert_eq!(b.next(short), FIRST_DELAY);
    }

    #[test]
    fn run_length_from_docker_times() {
        assert_eq!(
            ran("2026-01-01T00:00:00.5Z", "2026-01-01T00:00:12Z"),
            Duration::from_millis(11_500)
        );
        assert_eq!(ran("0001-01-01T00:00:00Z", "garbage"), Duration::ZERO);
    }
}
