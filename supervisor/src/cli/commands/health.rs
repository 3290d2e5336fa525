//! `run`/`create`'s healthcheck flags, turned into docker's `Config.Healthcheck` as docker's
//! CLI does (`--no-healthcheck` alone, durations in Go's syntax, none negative).
use clap::Args;
use serde_json::{json, Value};

fn duration(flag: &'static str) -> impl Fn(&str) -> Result<i64, String> + Clone {
    move |text: &str| {
        crate::duration::parse(text)
            .ok_or_else(|| format!("time: invalid duration \"{text}\""))
            .and_then(|n| match n < 0 {
                true => Err(format!("{flag} cannot be negative")),
                false => Ok(n),
            })
    }
}

#[derive(Debug, Args, Clone, Default)]
pub struct HealthArgs {
    /// Command to run to check health
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long, value_parser = duration("--health-interval"))]
    pub health_interval: Option<i64>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long, value_parser = duration("--health-timeout"))]
    pub health_timeout: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long, value_parser = duration("--health-start-period"))]
    pub health_start_period: Option<i64>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long, value_parser = duration("--health-start-interval"))]
    pub health_start_interval: Option<i64>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long)]
    pub health_retries: Option<i64>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
}

impl HealthArgs {
    /// `Config.Healthcheck`, or `None` to keep the image's.
    pub fn config(&self) -> anyhow::Result<Option<Value>> {
        let any = self.health_cmd.as_deref().is_some_and(|c| !c.is_empty())
            || [
                self.health_interval,
                self.health_timeout,
                self.health_start_period,
                self.health_start_interval,
                self.health_retries,
            ]
            .iter()
            .any(|v| v.is_some_and(|n| n != 0));
        if self.no_healthcheck {
            if any {
                anyhow::bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(json!({"Test": ["NONE"]})));
        }
        if !any {
            return Ok(None);
        }
        if self.health_retries.is_some_and(|r| r < 0) {
            anyhow::bail!("--health-retries cannot be negative");
        }
        let test = match self.health_cmd.as_deref().filter(|c| !c.is_empty()) {
            Some(cmd) => json!(["CMD-SHELL", cmd]),
            None => Value::Null,
        };
        Ok(Some(json!({
            "Test": test,
            "Interval": self.health_interval.unwrap_or(0),
            "Timeout": self.health_timeout.unwrap_or(0),
            "StartPeriod": self.health_start_period.unwrap_or(0),
            "StartInterval": self.health_start_interval.unwrap_or(0),
            "Retries": self.health_retries.unwrap_or(0),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_to_docker_s_healthcheck() {
        let a = HealthArgs {
            health_cmd: Some("true".into()),
            health_interval: Some(1_000_000_000),
            health_retries: Some(2),
            ..Default::default()
        };
        let v = a.config().unwrap().unwrap();
        assert_eq!(v["Test"], json!(["CMD-SHELL", "true"]));
        assert_eq!(v["Interval"], 1_000_000_000);
        assert_eq!(v["Retries"], 2);
        assert_eq!(HealthArgs::default().config().unwrap(), None);
        let none = HealthArgs {
            no_healthcheck: true,
            ..Default::default()
        };
        assert_eq!(none.config().unwrap().unwrap()["Test"], json!(["NONE"]));
        let both = HealthArgs {
            no_healthcheck: true,
            health_cmd: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(
            both.config().unwrap_err().to_string(),
            "--no-healthcheck conflicts with --health-* options"
        );
        assert_eq!(
            duration("--health-timeout")("-1s").unwrap_err(),
            "--health-timeout cannot be negative"
        );
        assert!(duration("--health-timeout")("5").is_err());
    }
}
