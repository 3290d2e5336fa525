//! Go's duration syntax, as runc's flags take it: `100ms`, `5s`, `1.5h`, `1m30s`; units ns, us
//! (or µs), ms, s, m, h. A bare `0` is zero, as in Go.
use std::time::Duration;

/// Parse `text`; the error says what is wrong with it.
pub fn parse(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if text.starts_with('-') {
        return Err("a negative duration".into());
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("no number before {tail:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        nanos += value * unit_nanos(unit)?;
        rest = next;
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

fn unit_nanos(unit: &str) -> Result<f64, String> {
    Ok(match unit {
        "ns" => 1.0,
        "us" | "µs" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        "" => return Err("a number without a unit (ns, us, ms, s, m, h)".into()),
        other => return Err(format!("unknown unit {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse("2h3m4s5ms").unwrap(),
            Duration::from_millis(7_384_005)
        );
        assert_eq!(parse("10us").unwrap(), Duration::from_micros(10));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "5x", "-1s", "ms", "1.2.3s", "s5"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
