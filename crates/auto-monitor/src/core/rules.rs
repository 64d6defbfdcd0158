//! The default alert rules, with thresholds from the spec. Pure; the rules file is
//! loaded by Prometheus (embedded mode) or shipped as a PrometheusRule (helm mode).
//!
//! Every series is selected by `job="node-exporter"` and grouped by the `node` label
//! that the scrape configuration copies from the pod's node name, so an alert names
//! the Kubernetes node, not an IP:port.

use serde_json::{Value, json};

use crate::core::validate::Thresholds;

/// Scrape job of the node exporters; rules and dashboards select it.
pub const NODE_JOB: &str = "node-exporter";

/// One alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Alert name.
    pub alert: &'static str,
    /// PromQL expression.
    pub expr: String,
    /// `for` duration.
    pub for_: String,
    /// Severity label.
    pub severity: &'static str,
    /// Summary annotation.
    pub summary: String,
    /// The same in Korean (`summary_ko`, which the Korean message templates read).
    pub summary_ko: String,
}

/// Filesystems that say nothing about a node's disks.
const PSEUDO_FS: &str = "tmpfs|ramfs|overlay|squashfs|nsfs|fuse.lxcfs";

/// The rules for the given thresholds.
pub fn rules(t: &Thresholds) -> Vec<Rule> {
    let j = NODE_JOB;
    vec![
        Rule {
            alert: "NodeDown",
            expr: format!("up{{job=\"{j}\"}} == 0"),
            for_: t.node_down_for.clone(),
            severity: "critical",
            summary: "node-exporter on {{ $labels.node }} is not answering scrapes".into(),
            summary_ko: "{{ $labels.node }}의 node-exporter가 수집에 응답하지 않습니다".into(),
        },
        Rule {
            alert: "HighCPUUsage",
            expr: format!(
                "100 * (1 - avg by (node) (rate(node_cpu_seconds_total{{job=\"{j}\",mode=\"idle\"}}[2m]))) > {}",
                t.cpu_percent
            ),
            for_: t.usage_for.clone(),
            severity: "warning",
            summary: format!(
                "CPU usage on {{{{ $labels.node }}}} is above {}%",
                t.cpu_percent
            ),
            summary_ko: format!(
                "{{{{ $labels.node }}}}의 CPU 사용률이 {}%를 넘었습니다",
                t.cpu_percent
            ),
        },
        Rule {
            alert: "HighMemoryUsage",
            expr: format!(
                "100 * (1 - node_memory_MemAvailable_bytes{{job=\"{j}\"}} / node_memory_MemTotal_bytes{{job=\"{j}\"}}) > {}",
                t.memory_percent
            ),
            for_: t.usage_for.clone(),
            severity: "warning",
            summary: format!(
                "memory usage on {{{{ $labels.node }}}} is above {}%",
                t.memory_percent
            ),
            summary_ko: format!(
                "{{{{ $labels.node }}}}의 메모리 사용률이 {}%를 넘었습니다",
                t.memory_percent
            ),
        },
        Rule {
            alert: "DiskSpaceLow",
            expr: format!(
                "100 * node_filesystem_avail_bytes{{job=\"{j}\",fstype!~\"{PSEUDO_FS}\"}} / node_filesystem_size_bytes{{job=\"{j}\",fstype!~\"{PSEUDO_FS}\"}} < {}",
                t.disk_free_percent
            ),
            for_: t.disk_for.clone(),
            severity: "warning",
            summary: format!(
                "{{{{ $labels.mountpoint }}}} on {{{{ $labels.node }}}} has less than {}% free",
                t.disk_free_percent
            ),
            summary_ko: format!(
                "{{{{ $labels.node }}}}의 {{{{ $labels.mountpoint }}}} 여유 공간이 {}% 미만입니다",
                t.disk_free_percent
            ),
        },
        Rule {
            alert: "NodeNotMonitored",
            expr: format!(
                "kube_node_status_condition{{condition=\"Ready\",status=\"true\"}} == 1 unless on (node) up{{job=\"{j}\"}} == 1"
            ),
            for_: t.not_monitored_for.clone(),
            severity: "warning",
            summary: "node {{ $labels.node }} is Ready but has no healthy node-exporter".into(),
            summary_ko: "노드 {{ $labels.node }}는 Ready이지만 정상인 node-exporter가 없습니다"
                .into(),
        },
    ]
}

/// The Prometheus rules file (`groups:` document) as a JSON value.
pub fn rules_document(rules: &[Rule]) -> Value {
    groups_document(&[("steward-node", rules)])
}

/// A rules document of named groups.
pub fn groups_document(groups: &[(&str, &[Rule])]) -> Value {
    let groups: Vec<Value> = groups
        .iter()
        .map(|(name, rules)| {
            let list: Vec<Value> = rules
                .iter()
                .map(|r| {
                    json!({
                        "alert": r.alert,
                        "expr": r.expr,
                        "for": r.for_,
                        "labels": { "severity": r.severity },
                        "annotations": { "summary": r.summary, "summary_ko": r.summary_ko },
                    })
                })
                .collect();
            json!({ "name": name, "rules": list })
        })
        .collect();
    json!({ "groups": groups })
}

/// The rules file as YAML.
pub fn rules_yaml(rules: &[Rule]) -> String {
    yaml_of(&rules_document(rules))
}

/// The embedded stack's rules file: the node rules and steward's own
/// (`core::selfmon`).
pub fn embedded_rules_yaml(rules: &[Rule]) -> String {
    let own = crate::core::selfmon::rules();
    yaml_of(&groups_document(&[
        ("steward-node", rules),
        ("steward-self", &own),
    ]))
}

fn yaml_of(v: &Value) -> String {
    // A JSON value always serialises (strings, numbers, bools, maps, lists).
    serde_saphyr::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::MonitoringStackSpec;

    #[test]
    fn thresholds_reach_the_expressions() {
        let spec = MonitoringStackSpec {
            thresholds: Some(crate::crd::Thresholds {
                cpu_percent: Some(90.0),
                node_down_for: Some("30s".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = crate::core::validate::validate(&spec).unwrap_or_else(|e| panic!("{e:?}"));
        let r = rules(&s.thresholds);
        let by = |a: &str| r.iter().find(|r| r.alert == a).cloned();
        assert!(by("HighCPUUsage").is_some_and(|r| r.expr.ends_with("> 90")));
        assert!(by("NodeDown").is_some_and(|r| r.for_ == "30s"));
        assert!(by("DiskSpaceLow").is_some_and(|r| r.expr.ends_with("< 20")));
        assert_eq!(r.len(), 5);
        let yaml = rules_yaml(&r);
        assert!(yaml.contains("alert: NodeNotMonitored"), "{yaml}");
    }
}
