//! Signal names and numbers as `kill` accepts them: `KILL`, `SIGKILL`, `9`, `0` (only checks
//! that the process exists), real-time signals by number (`40`) or as `SIGRTMIN+3`/`RTMAX-2`.
use crate::{Error, Result};
use nix::sys::signal::Signal;
use std::str::FromStr;

/// The raw signal number (`0..=SIGRTMAX`).
pub fn parse(text: &str) -> Result<i32> {
    let bad = || Error::Other(format!("unknown signal {text:?}"));
    let max = libc::SIGRTMAX();
    if let Ok(n) = text.parse::<i32>() {
        return (0..=max).contains(&n).then_some(n).ok_or_else(bad);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(n) = real_time(name, libc::SIGRTMIN(), max) {
        return n.ok_or_else(bad);
    }
    Signal::from_str(&format!("SIG{name}"))
        .map(|s| s as i32)
        .map_err(|_| bad())
}

/// `RTMIN`, `RTMIN+n`, `RTMAX`, `RTMAX-n`: `None` if `name` is not of that form, `Some(None)`
/// if it is but falls outside `min..=max`.
fn real_time(name: &str, min: i32, max: i32) -> Option<Option<i32>> {
    let (base, rest, sign) = if let Some(rest) = name.strip_prefix("RTMIN") {
        (min, rest, '+')
    } else {
        (max, name.strip_prefix("RTMAX")?, '-')
    };
    if rest.is_empty() {
        return Some(Some(base));
    }
    let offset: i32 = rest.strip_prefix(sign)?.parse().ok()?;
    let n = if sign == '+' {
        base + offset
    } else {
        base - offset
    };
    Some((min..=max).contains(&n).then_some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(parse("9").unwrap(), libc::SIGKILL);
        assert_eq!(parse("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse("sigterm").unwrap(), libc::SIGTERM);
        assert_eq!(parse("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("0").unwrap(), 0);
        assert_eq!(parse("40").unwrap(), 40);
        assert_eq!(parse("SIGRTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(parse("rtmin").unwrap(), libc::SIGRTMIN());
        assert_eq!(parse("SIGRTMAX-1").unwrap(), libc::SIGRTMAX() - 1);
        for bad in [
            "SIGNOPE",
            "99",
            "-1",
            "SIGRTMIN+99",
            "RTMIN-1",
            "RTMAX+1",
            "RTMINX",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
