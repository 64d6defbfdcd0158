//! steward monitoring steward (embedded mode). Pure.
//!
//! The stack's Prometheus finds every steward component in the cluster through
//! Kubernetes pod discovery: the chart's pods by their labels
//! (`app.kubernetes.io/part-of: steward` and a container port named `admin`, the one
//! `/metrics` is served on), and any other pod by the usual `prometheus.io/scrape`
//! annotations (steward run from a manifest of one's own, or anything else the
//! cluster's owner annotates). The rules are the chart's PrometheusRule
//! (`charts/steward/templates/self-monitoring/prometheusrule.yaml`) with the same
//! alert names, selected by `job="steward"` and the pod's `component` label instead
//! of the chart's Service names; a test keeps the two in step. The dashboards are
//! the chart's own files.

use serde_json::{Value, json};

use crate::core::rules::Rule;

/// Scrape job of steward's own components.
pub const STEWARD_JOB: &str = "steward";

/// steward's components as the chart labels them.
pub fn steward_job() -> Value {
    json!({
        "job_name": STEWARD_JOB,
        "kubernetes_sd_configs": [{ "role": "pod" }],
        "relabel_configs": [
            { "action": "keep", "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_part_of"], "regex": "steward" },
            { "action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "admin" },
            { "action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Succeeded|Failed" },
            { "source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace" },
            { "source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod" },
            { "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"], "target_label": "component" },
        ],
    })
}

/// Pods annotated `prometheus.io/scrape: "true"` (with `prometheus.io/port`,
/// `prometheus.io/path`, `prometheus.io/scheme`), except those the steward job
/// scrapes already.
pub fn annotated_pods_job() -> Value {
    json!({
        "job_name": "kubernetes-pods",
        "kubernetes_sd_configs": [{ "role": "pod" }],
        "relabel_configs": [
            { "action": "keep", "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "regex": "true" },
            { "action": "drop", "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_part_of", "__meta_kubernetes_pod_container_port_name"], "regex": "steward;admin" },
            { "action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Pending|Succeeded|Failed" },
            { "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scheme"], "regex": "(https?)", "target_label": "__scheme__" },
            { "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "regex": "(.+)", "target_label": "__metrics_path__" },
            { "source_labels": ["__meta_kubernetes_pod_ip", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
              "regex": "(.+);(\\d+)", "replacement": "$1:$2", "target_label": "__address__" },
            { "source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace" },
            { "source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod" },
            { "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"], "target_label": "component" },
        ],
    })
}

fn rule(alert: &'static str, expr: String, for_: &str, summary: &str, summary_ko: &str) -> Rule {
    Rule {
        alert,
        expr,
        for_: for_.into(),
        severity: "warning",
        summary: summary.into(),
        summary_ko: summary_ko.into(),
    }
}

/// The alerts on steward's own failure modes.
pub fn rules() -> Vec<Rule> {
    let j = format!("job=\"{STEWARD_JOB}\"");
    let c = |component: &str| format!("{j},component=\"{component}\"");
    let down = |alert, component: &str, what: &str, ko: &str| {
        rule(
            alert,
            format!("up{{{}}} == 0", c(component)),
            "5m",
            &format!(
                "steward {what} {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}} is not answering scrapes"
            ),
            &format!(
                "steward {ko} {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}}가 수집에 응답하지 않습니다"
            ),
        )
    };
    let no_leader = |alert, component: &str, what: &str| {
        rule(
            alert,
            format!(
                "max by (namespace) (steward_leader{{{}}}) < 1",
                c(component)
            ),
            "2m",
            &format!("No {what} replica holds the Lease in {{{{ $labels.namespace }}}}"),
            &format!("{{{{ $labels.namespace }}}}에서 Lease를 가진 {what} 복제본이 없습니다"),
        )
    };
    let gd_requests = |decision: &str, window: &str| {
        format!(
            "sum by (namespace) (increase(steward_graceful_drain_webhook_requests_total{{{j},decision=\"{decision}\"}}[{window}])) > 0"
        )
    };
    vec![
        rule(
            "StewardDrainStuck",
            format!("time() - 60 > steward_drain_node_deadline_timestamp_seconds{{{j}}}"),
            "0s",
            "A NodePool drain is stuck past its deadline on {{ $labels.node }}",
            "{{ $labels.node }}의 NodePool drain이 기한을 넘겨 멈췄습니다",
        ),
        rule(
            "StewardDrainNodesFailed",
            format!(
                "sum by (namespace) (steward_drain_nodes{{{j},state=~\"failed|timed_out\"}}) > 0"
            ),
            "0s",
            "A NodePool drain left nodes undrained",
            "NodePool drain이 비우지 못한 노드를 남겼습니다",
        ),
        down(
            "StewardGracefulDrainDown",
            "graceful-drain",
            "graceful-drain",
            "graceful-drain",
        ),
        no_leader(
            "StewardGracefulDrainNoLeader",
            "graceful-drain",
            "graceful-drain",
        ),
        rule(
            "StewardGracefulDrainOverdue",
            gd_requests("allow_overdue", "15m"),
            "0s",
            "A graceful drain was stuck past its deadline",
            "graceful drain이 기한을 넘겨 멈췄습니다",
        ),
        rule(
            "StewardGracefulDrainWebhookFailing",
            gd_requests("allow_error", "10m"),
            "0s",
            "The graceful-drain webhook fails and lets evictions through",
            "graceful-drain 웹훅이 실패해 eviction을 그냥 통과시킵니다",
        ),
        rule(
            "StewardGracefulDrainConfigRejected",
            format!(
                "sum by (namespace) (increase(steward_graceful_drain_config_reloads_total{{{j},result=\"error\"}}[10m])) > 0"
            ),
            "0s",
            "A graceful-drain configuration was rejected",
            "graceful-drain 설정이 거부되었습니다",
        ),
        down("StewardMonitorDown", "monitor", "monitor", "monitor"),
        no_leader("StewardMonitorNoLeader", "monitor", "monitor"),
        rule(
            "StewardMonitorReconcileErrors",
            format!(
                "sum by (namespace, kind) (increase(steward_monitor_reconcile_errors_total{{{j}}}[10m])) > 0"
            ),
            "10m",
            "steward monitor keeps failing to reconcile ({{ $labels.kind }} errors)",
            "steward monitor의 reconcile이 계속 실패합니다 ({{ $labels.kind }} 오류)",
        ),
        rule(
            "StewardNodesNotOnboarded",
            format!(
                "sum by (namespace) (steward_monitor_nodes{{{j},step=~\"WaitingForExporter|WaitingForScrape\"}}) > 0"
            ),
            "10m",
            "Ready nodes are not monitored ({{ $value }})",
            "Ready 노드가 모니터링되지 않습니다 ({{ $value }})",
        ),
        down(
            "StewardOttoscalerDown",
            "ottoscaler",
            "ottoscaler",
            "ottoscaler",
        ),
        rule(
            "StewardPipelinesQueuedTooLong",
            format!("min_over_time(steward_ottoscaler_queued_stages{{{j}}}[15m]) > 0"),
            "0s",
            "Pipeline stages have waited for a worker slot for 15m",
            "파이프라인 단계가 15분 동안 워커 자리를 기다렸습니다",
        ),
    ]
}

/// steward's own dashboards: the files the chart ships, byte for byte.
pub const DASHBOARDS: [(&str, &str); 4] = [
    (
        "steward-graceful-drains",
        include_str!("../../../../charts/steward/dashboards/steward-graceful-drains.json"),
    ),
    (
        "steward-node-rotations",
        include_str!("../../../../charts/steward/dashboards/steward-node-rotations.json"),
    ),
    (
        "steward-onboarding",
        include_str!("../../../../charts/steward/dashboards/steward-onboarding.json"),
    ),
    (
        "steward-pipelines",
        include_str!("../../../../charts/steward/dashboards/steward-pipelines.json"),
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The chart's PrometheusRule template, read as text.
    fn chart_rules() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../charts/steward/templates/self-monitoring/prometheusrule.yaml"
        ))
        .unwrap_or_default()
    }

    /// Every alert of the chart exists here (except the one only the API server's
    /// own metrics can tell), on the same steward metric.
    #[test]
    fn the_same_alerts_as_the_chart() {
        let text = chart_rules();
        let mut chart = Vec::new();
        let mut lines = text.lines();
        while let Some(l) = lines.next() {
            if let Some(name) = l.trim().strip_prefix("- alert: ") {
                let expr = lines.next().unwrap_or_default().trim().to_string();
                chart.push((name.to_string(), expr));
            }
        }
        assert!(chart.len() >= 14, "the template was not read: {chart:?}");
        let ours = rules();
        let names: BTreeSet<&str> = ours.iter().map(|r| r.alert).collect();
        assert_eq!(names.len(), ours.len(), "an alert twice");
        for (name, expr) in &chart {
            if name == "StewardGracefulDrainWebhookBypassed" {
                continue; // apiserver_admission_webhook_fail_open_count: the API server's
            }
            let r = ours
                .iter()
                .find(|r| r.alert == name)
                .unwrap_or_else(|| panic!("{name} is in the chart, not in the stack"));
            let metric = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .find(|w| w.starts_with("steward_") && *w != "steward_build_info");
            match metric {
                Some(m) => assert!(r.expr.contains(m), "{name}: {m} not in {}", r.expr),
                // Down: the chart's absent(steward_build_info), here `up == 0`.
                None => assert!(r.expr.starts_with("up{"), "{name}: {}", r.expr),
            }
            assert!(r.expr.contains("job=\"steward\""), "{name}");
        }
    }

    #[test]
    fn jobs_find_the_chart_labels_and_the_annotations() {
        let s = steward_job().to_string();
        assert!(
            s.contains("app_kubernetes_io_part_of") && s.contains("\"admin\""),
            "{s}"
        );
        let a = annotated_pods_job().to_string();
        assert!(
            a.contains("prometheus_io_scrape") && a.contains("steward;admin"),
            "{a}"
        );
    }

    #[test]
    fn dashboards_are_the_charts_files() {
        for (uid, text) in DASHBOARDS {
            let v: Value = serde_json::from_str(text).unwrap_or_default();
            assert_eq!(v["uid"], uid, "{uid}");
        }
    }
}
