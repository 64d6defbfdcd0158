//! The two Grafana dashboards steward ships (node overview, cluster overview). Pure.
//! Each becomes a ConfigMap labelled `steward.io/dashboard: <uid>` that the embedded
//! Grafana mounts directly.

use serde_json::{Value, json};

use crate::core::rules::NODE_JOB;

/// One panel: a title and a PromQL query.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Title.
    pub title: &'static str,
    /// Query; may use the `$node` variable.
    pub expr: String,
    /// Grafana unit.
    pub unit: &'static str,
}

/// A dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// File name stem and uid.
    pub uid: &'static str,
    /// Title.
    pub title: &'static str,
    /// Panels.
    pub panels: Vec<Panel>,
    /// Whether the dashboard has the `$node` variable.
    pub node_variable: bool,
}

/// The shipped dashboards.
pub fn dashboards() -> Vec<Dashboard> {
    let j = NODE_JOB;
    let n = format!("job=\"{j}\",node=~\"$node\"");
    vec![
        Dashboard {
            uid: "steward-node-overview",
            title: "steward / Node overview",
            node_variable: true,
            panels: vec![
                Panel {
                    title: "CPU usage",
                    unit: "percent",
                    expr: format!(
                        "100 * (1 - avg by (node) (rate(node_cpu_seconds_total{{{n},mode=\"idle\"}}[$__rate_interval])))"
                    ),
                },
                Panel {
                    title: "Memory usage",
                    unit: "percent",
                    expr: format!(
                        "100 * (1 - node_memory_MemAvailable_bytes{{{n}}} / node_memory_MemTotal_bytes{{{n}}})"
                    ),
                },
                Panel {
                    title: "Disk free",
                    unit: "percent",
                    expr: format!(
                        "100 * node_filesystem_avail_bytes{{{n},fstype!~\"tmpfs|overlay|squashfs\"}} / node_filesystem_size_bytes{{{n},fstype!~\"tmpfs|overlay|squashfs\"}}"
                    ),
                },
                Panel {
                    title: "Load average (1m)",
                    unit: "short",
                    expr: format!("node_load1{{{n}}}"),
                },
                Panel {
                    title: "Network received",
                    unit: "Bps",
                    expr: format!(
                        "sum by (node) (rate(node_network_receive_bytes_total{{{n},device!=\"lo\"}}[$__rate_interval]))"
                    ),
                },
                Panel {
                    title: "Network transmitted",
                    unit: "Bps",
                    expr: format!(
                        "sum by (node) (rate(node_network_transmit_bytes_total{{{n},device!=\"lo\"}}[$__rate_interval]))"
                    ),
                },
                Panel {
                    title: "Scrape up",
                    unit: "short",
                    expr: format!("up{{{n}}}"),
                },
            ],
        },
        Dashboard {
            uid: "steward-cluster-overview",
            title: "steward / Cluster overview",
            node_variable: false,
            panels: vec![
                Panel {
                    title: "Nodes scraped",
                    unit: "short",
                    expr: format!("count(up{{job=\"{j}\"}} == 1)"),
                },
                Panel {
                    title: "Nodes down",
                    unit: "short",
                    expr: format!("count(up{{job=\"{j}\"}} == 0) or vector(0)"),
                },
                Panel {
                    title: "Cluster CPU usage",
                    unit: "percent",
                    expr: format!(
                        "100 * (1 - avg(rate(node_cpu_seconds_total{{job=\"{j}\",mode=\"idle\"}}[$__rate_interval])))"
                    ),
                },
                Panel {
                    title: "Cluster memory usage",
                    unit: "percent",
                    expr: format!(
                        "100 * (1 - sum(node_memory_MemAvailable_bytes{{job=\"{j}\"}}) / sum(node_memory_MemTotal_bytes{{job=\"{j}\"}}))"
                    ),
                },
                Panel {
                    title: "Scrape availability (1h)",
                    unit: "percentunit",
                    expr: format!("avg by (node) (avg_over_time(up{{job=\"{j}\"}}[1h]))"),
                },
                Panel {
                    title: "Firing alerts",
                    unit: "short",
                    expr: "sum by (alertname) (ALERTS{alertstate=\"firing\"})".into(),
                },
            ],
        },
    ]
}

impl Dashboard {
    /// The Grafana dashboard JSON model.
    pub fn json(&self) -> Value {
        let panels: Vec<Value> = self
            .panels
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let id = i + 1;
                json!({
                    "id": id,
                    "type": "timeseries",
                    "title": p.title,
                    "datasource": { "type": "prometheus", "uid": "prometheus" },
                    "gridPos": { "h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8 },
                    "fieldConfig": { "defaults": { "unit": p.unit }, "overrides": [] },
                    "targets": [{ "refId": "A", "expr": p.expr, "legendFormat": "{{node}}" }],
                })
            })
            .collect();
        let templating = if self.node_variable {
            json!({ "list": [{
                "name": "node", "type": "query", "includeAll": true, "multi": true,
                "datasource": { "type": "prometheus", "uid": "prometheus" },
                "query": format!("label_values(up{{job=\"{NODE_JOB}\"}}, node)"),
                "refresh": 2,
            }]})
        } else {
            json!({ "list": [] })
        };
        json!({
            "uid": self.uid,
            "title": self.title,
            "schemaVersion": 39,
            "tags": ["steward"],
            "time": { "from": "now-1h", "to": "now" },
            "refresh": "30s",
            "templating": templating,
            "panels": panels,
        })
    }
}

/// A panel query with Grafana's variables replaced by values Prometheus accepts, for
/// checking that every query parses.
pub fn checkable(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$node", ".*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_panel_has_a_query_and_a_unique_id() {
        for d in dashboards() {
            let v = d.json();
            let panels = v["panels"].as_array().cloned().unwrap_or_default();
            assert_eq!(panels.len(), d.panels.len());
            let ids: std::collections::BTreeSet<_> =
                panels.iter().map(|p| p["id"].as_u64()).collect();
            assert_eq!(ids.len(), panels.len(), "{}", d.uid);
            assert!(panels.iter().all(|p| {
                p["targets"][0]["expr"]
                    .as_str()
                    .is_some_and(|e| !e.is_empty())
            }));
            assert!(d.panels.iter().all(|p| !checkable(&p.expr).contains('$')));
        }
    }
}
