//! Signal names and numbers as `kill` accepts them: `KILL`, `SIGKILL`, `9`.
use crate::{Error, Result};
use nix::sys::signal::Signal;
use std::str::FromStr;

pub fn parse(text: &str) -> Result<Signal> {
    let bad = || Error::Other(format!("unknown signal {text:?}"));
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(parse("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse("SIGUSR1").unwrap(), Signal::SIGUSR1);
        assert!(parse("SIGNOPE").is_err());
        assert!(parse("99").is_err());
    }
}
