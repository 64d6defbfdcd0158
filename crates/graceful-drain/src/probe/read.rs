//! Asking a pod's drain probe once, over HTTP or through the node agent.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::agent::query::{self, Connections};
use crate::probe::gauge::{self, Selector};
use crate::probe::{ProbeTarget, Reading};

/// How long one probe may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Asks the probe once about `pod`; for `Connections`, finds the agent on the
/// pod's Node first.
pub async fn read_pod(
    client: &kube::Client,
    http: &reqwest::Client,
    target: &ProbeTarget,
    pod: &Pod,
) -> Reading {
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
    let ProbeTarget::Connections { ports } = target else {
        return read(http, target, ip).await;
    };
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
        return Reading::Failed("the pod is not on a node".into());
    };
    match crate::agent::lookup(client, node).await {
        Ok(Some(agent)) => connections(http, &agent, &pod.uid().unwrap_or_default(), ports).await,
        Ok(None) => Reading::Failed(format!(
            "Node {node} advertises no drain agent ({})",
            crate::agent::ANN_AGENT
        )),
        Err(e) => Reading::Failed(e.to_string()),
    }
}

/// Asks the node agent at `agent` (its base URL) once.
pub async fn connections(http: &reqwest::Client, agent: &str, uid: &str, ports: &[u16]) -> Reading {
    let ports = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let url = format!("{}{}", agent.trim_end_matches('/'), query::PATH);
    let resp = http
        .get(&url)
        .query(&[("uid", uid), ("ports", ports.as_str())])
        .timeout(TIMEOUT)
        .send()
        .await;
    match resp {
        Ok(r) => {
            let status = r.status().as_u16();
            match r.text().await {
                Ok(body) => connections_reading(status, &body),
                Err(e) => Reading::Failed(format!("{url}: {e}")),
            }
        }
        Err(e) => Reading::Failed(format!("{url}: {e}")),
    }
}

/// The reading of an agent's answer. Pure.
pub fn connections_reading(status: u16, body: &str) -> Reading {
    if status != 200 {
        let why = serde_json::from_str::<query::Problem>(body)
            .map_or_else(|_| body.chars().take(200).collect(), |p| p.error);
        return Reading::Failed(format!("drain agent: HTTP {status}: {why}"));
    }
    match serde_json::from_str::<Connections>(body) {
        Ok(c) if c.established == 0 => Reading::Idle,
        Ok(c) => Reading::Busy(c.established as f64),
        Err(e) => Reading::Failed(format!("drain agent: unreadable answer: {e}")),
    }
}

/// Asks an HTTP probe once (`Connections` needs the pod: see [`read_pod`]).
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
        ProbeTarget::Connections { .. } => {
            return Reading::Failed("the connections probe needs the pod".into());
        }
    };
    let resp = match http.get(&url).timeout(TIMEOUT).send().await {
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

/// The sum of every sample of the gauge selector `sel` (`name` or
/// `name{label="value"}`) in a Prometheus text exposition; `None` when no sample
/// matches or the selector does not parse (see `gauge`).
pub fn gauge_value(body: &str, sel: &str) -> Option<f64> {
    gauge::sum(body, &Selector::parse(sel).ok()?)
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
            (body, "inflight{handler=\"a\"}", Some(2.0)),
            (body, "inflight{", None),
        ];
        for (b, name, want) in table {
            assert_eq!(gauge_value(b, name), want, "{name} in {b:?}");
        }
    }

    #[test]
    fn agent_answers() {
        let uid = "6f1c0a3e-2b7d-4c41-9a55-0e8b1d2c3f40";
        let ok = |n: usize| {
            format!(
                r#"{{"uid":"{uid}","ports":[8080],"established":{n},"pids":[4],"netns":[9],"hostNetwork":false}}"#
            )
        };
        let table = [
            (200, ok(0), Reading::Idle),
            (200, ok(3), Reading::Busy(3.0)),
            (
                404,
                r#"{"error":"no process of pod x on this node"}"#.to_string(),
                Reading::Failed("drain agent: HTTP 404: no process of pod x on this node".into()),
            ),
            (
                502,
                "bad gateway".to_string(),
                Reading::Failed("drain agent: HTTP 502: bad gateway".into()),
            ),
        ];
        for (status, body, want) in table {
            assert_eq!(connections_reading(status, &body), want, "{status} {body}");
        }
        assert!(
            matches!(connections_reading(200, "{}"), Reading::Failed(e) if e.contains("unreadable"))
        );
    }
}
