//! The one duration syntax of every flag, config field and annotation: jiff's
//! friendly format (`30s`, `500ms`, `1h30m`, `2h 15m`, `1.5s`, `1 minute`), a Go
//! duration where it is the same (`10s`, `1h30m`), or a plain number of seconds.
//! Negative durations are refused.

use std::time::Duration;

use jiff::SignedDuration;

/// Parses a duration; the error says what was expected, for a flag or field
/// error to quote.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("invalid duration \"{s}\": expected for example 30s, 500ms, 5m or 1h30m");
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return if secs.is_finite() && secs >= 0.0 {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(bad())
        };
    }
    let d: SignedDuration = s.parse().map_err(|_| bad())?;
    Duration::try_from(d).map_err(|_| format!("invalid duration \"{s}\": must not be negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        let table = [
            ("30s", Some(ms(30_000))),
            ("500ms", Some(ms(500))),
            ("5m", Some(ms(300_000))),
            ("1h30m", Some(ms(5_400_000))),
            ("1h 30m", Some(ms(5_400_000))),
            ("2160h", Some(Duration::from_secs(2160 * 3600))),
            ("1.5s", Some(ms(1500))),
            ("1 minute", Some(ms(60_000))),
            ("15", Some(ms(15_000))),
            ("0.25", Some(ms(250))),
            ("0s", Some(ms(0))),
            (" 10s ", Some(ms(10_000))),
            ("-5s", None),
            ("-1", None),
            ("", None),
            ("ten seconds", None),
            ("5x", None),
            ("NaN", None),
        ];
        for (s, want) in table {
            assert_eq!(parse(s).ok(), want, "{s:?}");
        }
        assert!(parse("5x").unwrap_err().contains("\"5x\""));
    }
}
