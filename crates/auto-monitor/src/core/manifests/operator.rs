//! Prometheus Operator objects, written next to the embedded stack when the cluster has
//! the `monitoring.coreos.com` CRDs: a ServiceMonitor for node-exporter (through a
//! headless Service, since the DaemonSet has none) and a PrometheusRule with steward's
//! alert rules. An operator-managed Prometheus then scrapes and alerts on the same
//! targets and rules as steward's own Prometheus, which stays as it is.
//!
//! Selection: the objects carry the stack's labels and no `release` label. A
//! Prometheus with `serviceMonitorSelector: {}` and `ruleSelector: {}` selects them; a
//! kube-prometheus-stack Prometheus does only with
//! `*SelectorNilUsesHelmValues: false` (its default selects `release: <release>`).
//! Plain JSON values: typed CRD structs would pin an operator version for two objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use super::workloads::NODE_EXPORTER_PORT;
use super::{Manifest, meta};
use crate::core::rules::{rules, rules_document};
use crate::core::stack::Stack;

/// API group of the Prometheus Operator.
pub const GROUP: &str = "monitoring.coreos.com";
/// The CRDs that must both exist before steward writes operator objects.
pub const REQUIRED_CRDS: [&str; 2] = [
    "servicemonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
];

/// Whether every CRD of [`REQUIRED_CRDS`] is among `present` (CRD names).
pub fn crds_present<'a>(present: impl IntoIterator<Item = &'a str> + Clone) -> bool {
    REQUIRED_CRDS
        .iter()
        .all(|want| present.clone().into_iter().any(|p| p == *want))
}

fn custom(kind: &str, plural: &str, object: serde_json::Value) -> Manifest {
    let gvk = GroupVersionKind::gvk(GROUP, "v1", kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    let mut object = object;
    object["apiVersion"] = resource.api_version.clone().into();
    object["kind"] = kind.into();
    Manifest {
        resource,
        namespaced: true,
        object,
    }
}

/// Name of the node-exporter ServiceMonitor and of its headless Service.
pub fn node_exporter_monitor_name(stack: &Stack) -> String {
    stack.object_name("node-exporter")
}

/// Name of the PrometheusRule.
pub fn rule_name(stack: &Stack) -> String {
    stack.object_name("rules")
}

/// Labels of the node-exporter ServiceMonitor.
pub fn monitor_labels(stack: &Stack) -> BTreeMap<String, String> {
    stack.labels("node-exporter")
}

/// Labels of the PrometheusRule.
pub fn rule_labels(stack: &Stack) -> BTreeMap<String, String> {
    let mut l = stack.labels("prometheus");
    l.insert("app.kubernetes.io/name".into(), "rules".into());
    l
}

/// The operator objects of a stack, in apply order. Empty without node-exporter
/// (nothing to scrape; the rules select only its job).
pub fn objects(stack: &Stack) -> Vec<Manifest> {
    if !stack.settings.has("node-exporter") {
        return Vec::new();
    }
    let name = node_exporter_monitor_name(stack);
    // Headless: endpoints list every exporter pod, no virtual IP is allocated.
    let service = Service {
        metadata: meta(stack, "node-exporter", &name, true),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(stack.selector("node-exporter")),
            ports: Some(vec![ServicePort {
                name: Some("metrics".into()),
                port: NODE_EXPORTER_PORT,
                target_port: Some(IntOrString::String("metrics".into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let labels = monitor_labels(stack);
    let monitor = custom(
        "ServiceMonitor",
        "servicemonitors",
        json!({
            "metadata": { "name": name, "namespace": stack.namespace, "labels": labels },
            "spec": {
                // job = the Service's app.kubernetes.io/name, "node-exporter": the job
                // steward's rules and dashboards select.
                "jobLabel": "app.kubernetes.io/name",
                "selector": { "matchLabels": stack.selector("node-exporter") },
                "namespaceSelector": { "matchNames": [stack.namespace] },
                "endpoints": [{
                    "port": "metrics",
                    "interval": stack.settings.scrape_interval,
                    "relabelings": [{
                        "action": "replace",
                        "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                        "targetLabel": "node",
                    }],
                }],
            },
        }),
    );
    let rule = custom(
        "PrometheusRule",
        "prometheusrules",
        json!({
            "metadata": { "name": rule_name(stack), "namespace": stack.namespace, "labels": rule_labels(stack) },
            "spec": rules_document(&rules(&stack.settings.thresholds)),
        }),
    );
    vec![Manifest::new(&service), monitor, rule]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stack::STACK_LABEL;
    use crate::core::validate::{Profile, validate};
    use crate::crd::{MonitoringStackSpec, Thresholds};

    fn stack(spec: MonitoringStackSpec) -> Stack {
        Stack::new(
            "mon",
            "monitoring",
            validate(&spec).unwrap_or_else(|e| panic!("{e:?}")),
            Profile::Generic,
        )
    }

    fn by_kind<'a>(objs: &'a [Manifest], kind: &str) -> &'a serde_json::Value {
        &objs
            .iter()
            .find(|m| m.resource.kind == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
            .object
    }

    #[test]
    fn crds_present_needs_both() {
        for (present, want) in [
            (vec![], false),
            (vec!["servicemonitors.monitoring.coreos.com"], false),
            (vec!["prometheusrules.monitoring.coreos.com"], false),
            (
                vec![
                    "prometheusrules.monitoring.coreos.com",
                    "podmonitors.monitoring.coreos.com",
                    "servicemonitors.monitoring.coreos.com",
                ],
                true,
            ),
        ] {
            assert_eq!(crds_present(present.iter().copied()), want, "{present:?}");
        }
    }

    #[test]
    fn service_monitor_selects_the_exporters_and_sets_node() {
        let objs = objects(&stack(MonitoringStackSpec::default()));
        let kinds: Vec<&str> = objs.iter().map(|m| m.resource.kind.as_str()).collect();
        assert_eq!(kinds, ["Service", "ServiceMonitor", "PrometheusRule"]);
        let svc = by_kind(&objs, "Service");
        assert_eq!(svc["spec"]["clusterIP"], "None");
        assert_eq!(svc["spec"]["ports"][0]["name"], "metrics");
        assert_eq!(
            svc["spec"]["selector"]["app.kubernetes.io/name"],
            "node-exporter"
        );
        // The Service's labels feed the ServiceMonitor selector and the job label.
        assert_eq!(
            svc["metadata"]["labels"]["app.kubernetes.io/name"],
            "node-exporter"
        );
        let sm = by_kind(&objs, "ServiceMonitor");
        assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(sm["metadata"]["name"], "mon-node-exporter");
        assert_eq!(sm["spec"]["jobLabel"], "app.kubernetes.io/name");
        assert_eq!(
            sm["spec"]["selector"]["matchLabels"],
            svc["spec"]["selector"]
        );
        assert_eq!(
            sm["spec"]["namespaceSelector"]["matchNames"][0],
            "monitoring"
        );
        let ep = &sm["spec"]["endpoints"][0];
        assert_eq!(ep["port"], "metrics");
        assert_eq!(ep["interval"], "15s");
        assert_eq!(
            ep["relabelings"][0]["sourceLabels"][0],
            "__meta_kubernetes_pod_node_name"
        );
        assert_eq!(ep["relabelings"][0]["targetLabel"], "node");
        for o in [svc, sm, by_kind(&objs, "PrometheusRule")] {
            assert_eq!(o["metadata"]["labels"][STACK_LABEL], "monitoring.mon");
            assert!(o["metadata"]["labels"].get("release").is_none());
        }
    }

    #[test]
    fn prometheus_rule_holds_the_generated_rules() {
        let objs = objects(&stack(MonitoringStackSpec {
            thresholds: Some(Thresholds {
                cpu_percent: Some(90.0),
                ..Default::default()
            }),
            ..Default::default()
        }));
        let pr = by_kind(&objs, "PrometheusRule");
        assert_eq!(pr["metadata"]["name"], "mon-rules");
        let group = &pr["spec"]["groups"][0];
        assert_eq!(group["name"], "steward-node");
        let alerts: Vec<&str> = group["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["alert"].as_str())
            .collect();
        assert_eq!(
            alerts,
            [
                "NodeDown",
                "HighCPUUsage",
                "HighMemoryUsage",
                "DiskSpaceLow",
                "NodeNotMonitored"
            ]
        );
        assert!(
            group["rules"][1]["expr"]
                .as_str()
                .is_some_and(|e| e.ends_with("> 90"))
        );
    }

    #[test]
    fn nothing_without_node_exporter() {
        let objs = objects(&stack(MonitoringStackSpec {
            components: Some(vec!["prometheus".into()]),
            ..Default::default()
        }));
        assert!(objs.is_empty());
    }
}
