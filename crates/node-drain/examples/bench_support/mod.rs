//! What the drain benchmarks share: peak RSS from GNU time's `-f maxrss_kb=%M`, and
//! the API requests of one tool from the API server's audit log, medians.

#![allow(dead_code)] // each example uses some

use std::path::Path;

/// GNU time's format that [`max_rss_kb`] reads back.
pub const TIME_FORMAT: &str = "maxrss_kb=%M";

/// The peak RSS (KiB) GNU time printed last on `stderr`.
pub fn max_rss_kb(stderr: &str) -> anyhow::Result<u64> {
    Ok(stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .unwrap_or("0")
        .trim()
        .parse()?)
}

/// Lines in the audit log so far.
pub fn audit_lines(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |s| s.lines().count())
}

/// Completed requests after line `since` whose user agent starts with `agent`.
pub fn count_requests(log: &Path, since: usize, agent: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .skip(since)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["stage"] == "ResponseComplete"
                && e["userAgent"]
                    .as_str()
                    .is_some_and(|a| a.starts_with(agent))
        })
        .count()
}

/// The median (NaN for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
