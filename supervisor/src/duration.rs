//! Go's `time.Duration` text, as docker's flags and messages use it: parsing (`30s`,
//! `1m30s`, `500ms`, `1h`) and printing (`Duration.String`).

/// Nanoseconds of a Go duration; `None` when `text` is not one.
pub fn parse(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[u..];
    }
    let n = total.round() as i64;
    Some(if negative { -n } else { n })
}

/// `value` with its fraction of `unit`, trailing zeros dropped (`1.5`, `30`).
fn fraction(value: i64, unit: i64) -> String {
    let whole = value / unit;
    let part = value % unit;
    if part == 0 {
        return whole.to_string();
    }
    let digits = unit.to_string().len() - 1;
    let text = format!("{part:0digits$}");
    format!("{whole}.{}", text.trim_end_matches('0'))
}

/// Go's `Duration.String()`: `0s`, `500ms`, `1.5s`, `1m30s`, `1h0m0s`.
pub fn format(nanos: i64) -> String {
    if nanos < 0 {
        return format!("-{}", format(-nanos));
    }
    match nanos {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", fraction(n, 1_000)),
        n if n < 1_000_000_000 => format!("{}ms", fraction(n, 1_000_000)),
        n => {
            let (h, m) = (n / 3_600_000_000_000, (n / 60_000_000_000) % 60);
            let s = fraction(n % 60_000_000_000, 1_000_000_000);
            match (h, m) {
                (0, 0) => format!("{s}s"),
                (0, m) => format!("{m}m{s}s"),
                (h, m) => format!("{h}h{m}m{s}s"),
            }
        }
    }
}

/// Docker's `timetypes.GetTimestamp` (the `until`/`since` of filters and flags): unix
/// seconds with an optional fraction, RFC 3339 (a zone or UTC), a bare date or date-time
/// (UTC), or a Go duration before `now`. Nanoseconds since the epoch.
pub fn timestamp(value: &str, now_nanos: i64) -> Option<i64> {
    let value = value.trim();
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
        let secs: i64 = secs.parse().ok()?;
        let frac = format!("{frac:0<9}");
        let nanos: i64 = frac.get(..9)?.parse().ok()?;
        return Some(secs * 1_000_000_000 + nanos);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return t.timestamp_nanos_opt();
    }
    for layout in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(value, layout) {
            return t.and_utc().timestamp_nanos_opt();
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_nanos_opt();
    }
    parse(value).map(|d| now_nanos - d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_s_timestamps() {
        let now = 1_700_000_000_000_000_000;
        assert_eq!(timestamp("1700000000", now), Some(now));
        assert_eq!(timestamp("1700000000.5", now), Some(now + 500_000_000));
        assert_eq!(timestamp("10m", now), Some(now - 600_000_000_000));
        assert_eq!(timestamp("1h30m", now), Some(now - 5_400_000_000_000));
        assert_eq!(timestamp("2023-11-14T22:13:20Z", now), Some(now));
        assert_eq!(timestamp("2023-11-14T23:13:20+01:00", now), Some(now));
        assert_eq!(timestamp("2023-11-14T22:13:20", now), Some(now));
        assert_eq!(
            timestamp("2023-11-14", now),
            Some(now - (22 * 3600 + 13 * 60 + 20) * 1_000_000_000)
        );
        assert_eq!(timestamp("soon", now), None);
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse("30s"), Some(30_000_000_000));
        assert_eq!(parse("1m30s"), Some(90_000_000_000));
        assert_eq!(parse("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse("500ms"), Some(500_000_000));
        assert_eq!(parse("1.5s"), Some(1_500_000_000));
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("-2s"), Some(-2_000_000_000));
        for bad in ["", "10", "1x", "s", "1.2.3s"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_durations_print() {
        assert_eq!(format(0), "0s");
        assert_eq!(format(30_000_000_000), "30s");
        assert_eq!(format(1_500_000_000), "1.5s");
        assert_eq!(format(90_000_000_000), "1m30s");
        assert_eq!(format(3_600_000_000_000), "1h0m0s");
        assert_eq!(format(500_000_000), "500ms");
        assert_eq!(format(1_500), "1.5µs");
    }
}
