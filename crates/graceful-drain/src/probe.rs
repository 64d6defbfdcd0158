//! The HTTP drain probe: asks the pod whether it still has work in flight, either
//! by a Prometheus gauge in its metrics (for example `http_requests_in_flight`
//! reaching 0) or, without a gauge, by the status of a "drained" endpoint (2xx).

use std::time::Duration;

use crate::config::ProbeTarget;
use crate::state::Reading;

/// Asks the probe once.
pub async fn read(http: &reqwest::Client, target: &ProbeTarget, pod_ip: Option<&str>) -> Reading {
    let (url, gauge) = match target {
        ProbeTarget::Url { url, gauge } => (url.clone(), gauge.as_deref()),
        ProbeTarget::PodPort(p) => {
            let Some(ip) = pod_ip else {
                return Reading::Failed("the pod has no IP".into());
            };
            let host = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            (
                format!("http://{host}:{}{}", p.port, p.path),
                p.gauge.as_deref(),
            )
        }
    };
    let resp = match http.get(&url).timeout(Duration::from_secs(2)).send().await {
        Ok(r) => r,
        Err(e) => return Reading::Failed(format!("{url}: {e}")),
    };
    let status = resp.status();
    let Some(gauge) = gauge else {
        return if status.is_success() {
            Reading::Idle
        } else {
            Reading::Busy(f64::from(status.as_u16()))
        };
    };
    if !status.is_success() {
        return Reading::Failed(format!("{url}: HTTP {status}"));
    }
    match resp.text().await {
        Ok(body) => match gauge_value(&body, gauge) {
            Some(v) if v <= 0.0 => Reading::Idle,
            Some(v) => Reading::Busy(v),
            None => Reading::Failed(format!("{url}: no sample of {gauge}")),
        },
        Err(e) => Reading::Failed(format!("{url}: {e}")),
    }
}

/// The sum of every sample of `name` in a Prometheus text exposition (all label
/// sets: in-flight requests per handler add up). `None` when there is no sample.
/// Hand-written: the exposition parsers on crates.io are either unmaintained or
/// pull a whole client; one metric's samples need a line scan.
pub fn gauge_value(body: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in body.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = match rest.chars().next() {
            Some('{') => match rest.find('}') {
                Some(end) => &rest[end + 1..],
                None => continue,
            },
            Some(' ' | '\t') => rest,
            _ => continue, // a longer name with this prefix, or a comment
        };
        if let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges() {
        let body = "# HELP inflight requests in flight\n# TYPE inflight gauge\ninflight{handler=\"a\"} 2\ninflight{handler=\"b\"} 1 1700000000\ninflight_total 9\nother 4\n";
        let table = [
            (body, "inflight", Some(3.0)),
            (body, "other", Some(4.0)),
            (body, "missing", None),
            ("inflight 0\n", "inflight", Some(0.0)),
            ("inflight NaN-ish\n", "inflight", None),
            ("inflight{broken 1\n", "inflight", None),
        ];
        for (b, name, want) in table {
            assert_eq!(gauge_value(b, name), want, "{name} in {b:?}");
        }
    }
}
