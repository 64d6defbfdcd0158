//! The pre-flight snapshot from what was listed: each node's free room and
//! whether the stack may run there, who else holds port 9100 or runs a
//! node-exporter, the default StorageClass, the CRDs. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use steward_kube::quantity::{parse_bytes, parse_cpu, pod_request};
use steward_kube::scheduling::{selector_matches, untolerated};

use super::{Cluster, NodeRoom};
use crate::core::manifests::workloads::NODE_EXPORTER_PORT;
use crate::core::stack::{STACK_LABEL, Stack};

/// What `install::gather` lists for the snapshot.
#[derive(Debug, Clone, Default)]
pub struct Listed {
    /// Every node.
    pub nodes: Vec<Node>,
    /// Every pod.
    pub pods: Vec<Pod>,
    /// Every DaemonSet.
    pub daemonsets: Vec<DaemonSet>,
    /// Every StorageClass.
    pub storage_classes: Vec<StorageClass>,
    /// Every CRD.
    pub crds: Vec<CustomResourceDefinition>,
    /// With `spec.prometheus: external`: every operator Prometheus.
    pub prometheuses: Vec<crate::core::external::OperatorPrometheus>,
    /// With `spec.prometheus: external`: the labels of the stack's namespace.
    pub namespace_labels: BTreeMap<String, String>,
}

/// The snapshot [`super::check`] reads.
pub fn snapshot(stack: &Stack, listed: &Listed) -> Cluster {
    let mine =
        |labels: &BTreeMap<String, String>| labels.get(STACK_LABEL) == Some(&stack.stack_label());
    let mut cluster = Cluster {
        nodes: listed
            .nodes
            .iter()
            .map(|n| room(stack, n, &listed.pods))
            .collect(),
        port_9100: listed
            .pods
            .iter()
            .filter(|p| !mine(p.labels()) && holds_exporter_port(p))
            .map(|p| {
                let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
                format!(
                    "{}/{} on {}",
                    p.namespace().unwrap_or_default(),
                    p.name_any(),
                    node.unwrap_or_default()
                )
            })
            .collect(),
        other_node_exporters: listed
            .daemonsets
            .iter()
            .filter(|d| d.name_any().contains("node-exporter") && !mine(d.labels()))
            .map(|d| format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any()))
            .collect(),
        default_storage_class: listed
            .storage_classes
            .iter()
            .find(|c| {
                c.annotations()
                    .get("storageclass.kubernetes.io/is-default-class")
                    .map(String::as_str)
                    == Some("true")
            })
            .map(|c| c.name_any()),
        ..Cluster::default()
    };
    crds(&mut cluster, &listed.crds);
    if stack.settings.external_prometheus {
        use crate::core::manifests::operator::{monitor_labels, rule_labels};
        let (ml, rl) = (monitor_labels(stack), rule_labels(stack));
        let written = crate::core::external::Written {
            namespace: &stack.namespace,
            namespace_labels: &listed.namespace_labels,
            monitor_labels: &ml,
            rule_labels: &rl,
        };
        cluster.external = Some(crate::core::external::choose(
            &listed.prometheuses,
            &written,
        ));
    }
    cluster
}

/// Whether a pod holds host port 9100 (node-exporter's).
pub fn holds_exporter_port(p: &Pod) -> bool {
    p.spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .any(|port| port.host_port == Some(NODE_EXPORTER_PORT))
}

/// A node's allocatable minus the requests of its pods that have not finished.
fn room(stack: &Stack, n: &Node, pods: &[Pod]) -> NodeRoom {
    let name = n.name_any();
    let on_node: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
        .filter(|p| !steward_kube::pod::is_finished(p))
        .collect();
    let alloc = n
        .status
        .as_ref()
        .and_then(|s| s.allocatable.clone())
        .unwrap_or_default();
    let used_cpu: f64 = on_node.iter().map(|p| pod_request(p, "cpu")).sum();
    let used_mem: f64 = on_node.iter().map(|p| pod_request(p, "memory")).sum();
    NodeRoom {
        name,
        free_cpu: alloc.get("cpu").map_or(0.0, parse_cpu) - used_cpu,
        free_memory: alloc.get("memory").map_or(0.0, parse_bytes) - used_mem,
        eligible: eligible(stack, n),
    }
}

/// Whether the stack's Deployments may run on the node: not cordoned, its
/// nodeSelector matching, every NoSchedule and NoExecute taint tolerated (the
/// scheduler's rule, `steward_kube::scheduling`); readiness is not asked.
fn eligible(stack: &Stack, n: &Node) -> bool {
    let p = &stack.settings.placement;
    let selector = p.node_selector.clone().unwrap_or_default();
    let spec = n.spec.as_ref();
    let taints = spec.and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let tolerations = p.tolerations.as_deref().unwrap_or_default();
    !spec.and_then(|s| s.unschedulable).unwrap_or(false)
        && selector_matches(n.labels(), &selector)
        && untolerated(taints, tolerations).is_empty()
}

/// The Prometheus Operator's CRDs (and their served versions), and ours.
fn crds(cluster: &mut Cluster, crds: &[CustomResourceDefinition]) {
    for c in crds {
        let versions: Vec<String> = c
            .spec
            .versions
            .iter()
            .filter(|v| v.served)
            .map(|v| v.name.clone())
            .collect();
        if c.spec.group == "monitoring.coreos.com" {
            cluster.operator_crd_names.push(c.name_any());
            cluster
                .operator_crds
                .push(format!("{} ({})", c.name_any(), versions.join(", ")));
        } else if c.name_any() == format!("monitoringstacks.{}", crate::crd::GROUP) {
            cluster.own_crd_versions = versions;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::core::validate::{Profile, validate};
    use crate::crd::MonitoringStackSpec;

    fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn stack(placement: Value) -> Stack {
        let spec: MonitoringStackSpec = from(json!({ "placement": placement }));
        Stack::new(
            "mon",
            "monitoring",
            validate(&spec).unwrap(),
            Profile::Generic,
        )
    }

    fn node(name: &str, pool: &str, taints: Value, unschedulable: bool) -> Node {
        from(json!({
            "metadata": { "name": name, "labels": { "pool": pool } },
            "spec": { "taints": taints, "unschedulable": unschedulable },
            "status": { "allocatable": { "cpu": "2", "memory": "4Gi" } }
        }))
    }

    fn pod(name: &str, host_port: Option<i32>, labels: Value) -> Pod {
        let mut port = json!({ "containerPort": 9100 });
        if let Some(h) = host_port {
            port["hostPort"] = json!(h);
        }
        from(json!({
            "metadata": { "name": name, "namespace": "legacy", "labels": labels },
            "spec": { "nodeName": "n1", "containers": [{ "name": "c", "ports": [port],
                "resources": { "requests": { "cpu": "500m", "memory": "1Gi" } } }] },
            "status": { "phase": "Running" }
        }))
    }

    #[test]
    fn rooms_and_eligibility() {
        let gpu = json!([{ "key": "gpu", "value": "true", "effect": "NoSchedule" }]);
        let soft = json!([{ "key": "spot", "effect": "PreferNoSchedule" }]);
        let listed = Listed {
            nodes: vec![
                node("n1", "a", json!([]), false),
                node("gpu", "a", gpu, false),
                node("soft", "a", soft, false),
                node("cordoned", "a", json!([]), true),
                node("other-pool", "b", json!([]), false),
            ],
            pods: vec![pod("web", None, json!({}))],
            ..Listed::default()
        };
        let pool_a = json!({ "pool": "a" });
        let table = [
            (
                json!({ "nodeSelector": pool_a }),
                [true, false, true, false, false],
            ),
            (
                json!({ "nodeSelector": pool_a, "tolerations": [{ "key": "gpu", "operator": "Exists" }] }),
                [true, true, true, false, false],
            ),
            (json!({}), [true, false, true, false, true]),
        ];
        for (placement, want) in table {
            let c = snapshot(&stack(placement.clone()), &listed);
            let eligible: Vec<bool> = c.nodes.iter().map(|n| n.eligible).collect();
            assert_eq!(eligible, want, "{placement}");
            assert_eq!(c.nodes[0].free_cpu, 1.5);
            assert_eq!(c.nodes[0].free_memory, 3.0 * 1024.0 * 1024.0 * 1024.0);
            assert_eq!(c.nodes[1].free_cpu, 2.0);
        }
    }

    #[test]
    fn port_holders_other_exporters_storage_and_crds() {
        let ours = json!({ STACK_LABEL: "monitoring.mon" });
        let listed = Listed {
            pods: vec![
                pod("mon-node-exporter-a", Some(9100), ours.clone()),
                pod("exporter", Some(9100), json!({})),
                pod("web", None, json!({})),
            ],
            daemonsets: vec![
                from(
                    json!({ "metadata": { "name": "mon-node-exporter", "namespace": "monitoring", "labels": ours } }),
                ),
                from(json!({ "metadata": { "name": "node-exporter", "namespace": "legacy" } })),
            ],
            storage_classes: vec![
                from(json!({ "metadata": { "name": "slow" }, "provisioner": "x" })),
                from(json!({ "metadata": { "name": "fast", "annotations": {
                    "storageclass.kubernetes.io/is-default-class": "true" } }, "provisioner": "x" })),
            ],
            crds: vec![from(json!({
                "metadata": { "name": "servicemonitors.monitoring.coreos.com" },
                "spec": { "group": "monitoring.coreos.com", "scope": "Namespaced",
                    "names": { "plural": "servicemonitors", "kind": "ServiceMonitor" },
                    "versions": [{ "name": "v1", "served": true, "storage": true }] }
            }))],
            ..Listed::default()
        };
        let c = snapshot(&stack(json!({})), &listed);
        assert_eq!(c.port_9100, vec!["legacy/exporter on n1".to_string()]);
        assert_eq!(
            c.other_node_exporters,
            vec!["legacy/node-exporter".to_string()]
        );
        assert_eq!(c.default_storage_class.as_deref(), Some("fast"));
        assert_eq!(
            c.operator_crds,
            vec!["servicemonitors.monitoring.coreos.com (v1)".to_string()]
        );
        assert!(c.own_crd_versions.is_empty());
    }
}
