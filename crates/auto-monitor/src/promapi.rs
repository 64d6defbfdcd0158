//! What Prometheus says about each node's target: three instant queries over the
//! node-exporter job, grouped by the `node` label (one round trip each, whatever the
//! number of nodes).

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::core::onboarding::ScrapeView;
use crate::core::rules::NODE_JOB;
use crate::error::{Error, Result};

/// A Prometheus HTTP API client.
#[derive(Debug, Clone)]
pub struct PromApi {
    url: String,
    http: reqwest::Client,
}

impl PromApi {
    /// A client for the base URL.
    pub fn new(url: &str) -> Result<Self> {
        let http =
            steward_runtime::http::client(std::time::Duration::from_secs(5)).map_err(|e| {
                Error::Prometheus {
                    url: url.into(),
                    reason: e.to_string(),
                }
            })?;
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// Base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Instant query; the result vector.
    pub async fn query(&self, query: &str) -> Result<Vec<Value>> {
        let err = |reason: String| Error::Prometheus {
            url: self.url.clone(),
            reason: format!("query {query}: {reason}"),
        };
        let v: Value = self
            .http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await
            .map_err(|e| err(e.to_string()))?
            .json()
            .await
            .map_err(|e| err(e.to_string()))?;
        if v["status"] != "success" {
            return Err(err(v["error"].as_str().unwrap_or("failed").to_string()));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// Per node: `up`, newest successful sample, availability over the last hour.
    pub async fn scrape_views(&self) -> Result<BTreeMap<String, ScrapeView>> {
        let sel = format!("{{job=\"{NODE_JOB}\"}}");
        let up = self.query(&format!("max by (node) (up{sel})")).await?;
        let last = self
            .query(&format!("max by (node) (timestamp(up{sel} == 1))"))
            .await?;
        let avail = self
            .query(&format!("avg by (node) (avg_over_time(up{sel}[1h]))"))
            .await?;
        Ok(merge(&up, &last, &avail))
    }
}

/// The `(node, value)` pairs of a result vector.
fn by_node(result: &[Value]) -> impl Iterator<Item = (String, f64)> + '_ {
    result.iter().filter_map(|s| {
        let node = s["metric"]["node"].as_str()?.to_string();
        let v = s["value"][1].as_str()?.parse::<f64>().ok()?;
        Some((node, v))
    })
}

/// Combines the three queries. Pure.
pub fn merge(up: &[Value], last: &[Value], avail: &[Value]) -> BTreeMap<String, ScrapeView> {
    let mut out: BTreeMap<String, ScrapeView> = BTreeMap::new();
    for (node, v) in by_node(up) {
        out.entry(node).or_default().up = Some(v >= 1.0);
    }
    for (node, v) in by_node(last) {
        let ts = Timestamp::from_millisecond((v * 1000.0).round() as i64).ok();
        out.entry(node).or_default().last_sample = ts;
    }
    for (node, v) in by_node(avail) {
        out.entry(node).or_default().availability = Some(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_by_node() {
        let up = [
            json!({"metric": {"node": "a"}, "value": [1.0, "1"]}),
            json!({"metric": {"node": "b"}, "value": [1.0, "0"]}),
            json!({"metric": {}, "value": [1.0, "1"]}),
        ];
        let last = [json!({"metric": {"node": "a"}, "value": [1.0, "1800000000.5"]})];
        let avail = [json!({"metric": {"node": "b"}, "value": [1.0, "0.25"]})];
        let m = merge(&up, &last, &avail);
        assert_eq!(m.len(), 2);
        assert_eq!(m["a"].up, Some(true));
        assert_eq!(
            m["a"].last_sample.map(|t| t.as_millisecond()),
            Some(1_800_000_000_500)
        );
        assert_eq!(m["b"].up, Some(false));
        assert_eq!(m["b"].availability, Some(0.25));
    }
}
