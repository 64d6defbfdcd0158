//! What planning reads of a pod: where it runs, whether a drain moves it, whether
//! a budget selects it, and a slim copy with only those fields (a cluster-wide
//! pod list shrinks several-fold). Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

/// Annotation Karpenter uses to protect a pod (and so its node) from voluntary disruption.
pub const DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";

/// Whether `o` (a pod, Node or NodeClaim) carries `karpenter.sh/do-not-disrupt: "true"`.
pub fn do_not_disrupt(o: &impl ResourceExt) -> bool {
    o.annotations()
        .get(DO_NOT_DISRUPT)
        .is_some_and(|v| v == "true")
}

/// The name of the controller of kind `kind` among `owners`, if there is one.
pub fn controller<'a>(
    owners: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    kind: &str,
) -> Option<&'a str> {
    owners
        .iter()
        .find(|o| o.kind == kind && o.controller == Some(true))
        .map(|o| o.name.as_str())
}

pub use steward_kube::pod::is_finished;
pub use steward_kube::quantity::{parse_bytes, parse_cpu, pod_request};

/// Whether a label selector selects the pod (matchLabels and matchExpressions).
pub fn selects(selector: Option<&LabelSelector>, pod: &Pod) -> bool {
    let Some(sel) = selector else { return false };
    let labels = pod.labels();
    let labels_ok = sel
        .match_labels
        .as_ref()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let exprs_ok = sel.match_expressions.as_ref().is_none_or(|es| {
        es.iter().all(|e| {
            let values = e.values.clone().unwrap_or_default();
            let have = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => have.is_some_and(|v| values.contains(v)),
                "NotIn" => have.is_none_or(|v| !values.contains(v)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
    });
    let empty = sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty);
    // An empty selector in a policy/v1 PDB selects every pod of the namespace.
    empty || (labels_ok && exprs_ok)
}

/// The pod with only what planning reads: identity, labels, the annotations that
/// matter, owners, node, selector, tolerations, container, init-container and overhead
/// requests, phase and
/// container waiting reasons. A cluster-wide pod list shrinks several-fold.
pub fn slim(p: Pod) -> Pod {
    use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec, PodStatus};
    let keep = [DO_NOT_DISRUPT, "kubernetes.io/config.mirror"];
    let annotations = p.metadata.annotations.map(|a| {
        a.into_iter()
            .filter(|(k, _)| keep.contains(&k.as_str()))
            .collect()
    });
    let metadata = kube::api::ObjectMeta {
        name: p.metadata.name,
        namespace: p.metadata.namespace,
        uid: p.metadata.uid,
        labels: p.metadata.labels,
        annotations,
        owner_references: p.metadata.owner_references.map(exact),
        deletion_timestamp: p.metadata.deletion_timestamp,
        ..Default::default()
    };
    let spec = p.spec.map(|s| PodSpec {
        node_name: s.node_name,
        node_selector: s.node_selector,
        tolerations: s.tolerations.map(exact),
        termination_grace_period_seconds: s.termination_grace_period_seconds,
        containers: exact(s.containers.into_iter().map(requests_only).collect()),
        init_containers: s
            .init_containers
            .map(|cs| exact(cs.into_iter().map(requests_only).collect())),
        overhead: s.overhead,
        ..Default::default()
    });
    let status = p.status.map(|s| PodStatus {
        phase: s.phase,
        container_statuses: s.container_statuses.map(|cs| {
            exact(
                cs.into_iter()
                    .map(|c| ContainerStatus {
                        name: c.name,
                        state: c.state,
                        ..Default::default()
                    })
                    .collect(),
            )
        }),
        ..Default::default()
    });
    Pod {
        metadata,
        spec,
        status,
    }
}

/// The vector at its length. Deserialized vectors grow by doubling, and mapping one
/// into another of the same type reuses its buffer, so without this a slim pod would
/// keep the capacity of the full one (kilobytes per pod).
fn exact<T>(mut v: Vec<T>) -> Vec<T> {
    v.shrink_to_fit();
    v
}

/// A container with what [`pod_request`] reads: name, requests, restart policy.
fn requests_only(
    c: k8s_openapi::api::core::v1::Container,
) -> k8s_openapi::api::core::v1::Container {
    k8s_openapi::api::core::v1::Container {
        name: c.name,
        restart_policy: c.restart_policy,
        resources: c
            .resources
            .map(|r| k8s_openapi::api::core::v1::ResourceRequirements {
                requests: r.requests,
                ..Default::default()
            }),
        ..Default::default()
    }
}

/// The node a pod is bound to ("" when unscheduled).
pub fn node_of(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// Whether the pod is bound to `node`.
pub fn on_node(p: &Pod, node: &str) -> bool {
    node_of(p) == node
}

/// Pods a drain moves: not DaemonSet pods, not mirror (static) pods.
pub fn is_workload(p: &Pod) -> bool {
    let daemon = controller(p.owner_references(), "DaemonSet").is_some();
    let mirror = p.annotations().contains_key("kubernetes.io/config.mirror");
    !daemon && !mirror
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use serde_json::json;

    use super::*;
    use crate::core::batch::{BatchOptions, batch};
    use crate::core::fixtures::{node, pod};
    use crate::core::preflight::preflight;

    #[test]
    fn selectors_and_quantities() {
        let p = pod("p", "a", json!({ "app": "web", "tier": "fe" }), json!({}));
        let sel = |v: serde_json::Value| -> LabelSelector { serde_json::from_value(v).unwrap() };
        assert!(selects(
            Some(&sel(json!({ "matchLabels": { "app": "web" } }))),
            &p
        ));
        assert!(!selects(
            Some(&sel(json!({ "matchLabels": { "app": "db" } }))),
            &p
        ));
        assert!(selects(
            Some(&sel(
                json!({ "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["fe", "be"] }] })
            )),
            &p
        ));
        assert!(!selects(
            Some(&sel(
                json!({ "matchExpressions": [{ "key": "tier", "operator": "DoesNotExist" }] })
            )),
            &p
        ));
        assert!(
            selects(Some(&sel(json!({}))), &p),
            "an empty selector selects all"
        );
        assert!(!selects(None, &p));
        assert_eq!(parse_cpu(&Quantity("250m".into())), 0.25);
        assert_eq!(parse_bytes(&Quantity("1Gi".into())), 1024f64.powi(3));
        assert_eq!(parse_bytes(&Quantity("500M".into())), 5e8);
    }

    #[test]
    fn slim_pods_plan_like_full_pods() {
        let heavy = json!({
            "metadata": { "annotations": { DO_NOT_DISRUPT: "true", "big": "x".repeat(4096) } },
            "spec": {
                "initContainers": [
                    { "name": "sidecar", "restartPolicy": "Always", "resources": { "requests": { "cpu": "500m" } } },
                    { "name": "init", "resources": { "requests": { "cpu": "3", "memory": "2Gi" } } }
                ],
                "overhead": { "cpu": "250m", "memory": "64Mi" },
                "volumes": [{ "name": "v", "emptyDir": {} }],
                "tolerations": [{ "key": "k", "operator": "Exists" }]
            },
            "status": { "phase": "Running", "containerStatuses": [{ "name": "c", "image": "i", "imageID": "x", "ready": false, "restartCount": 9,
                "state": { "waiting": { "reason": "CrashLoopBackOff" } } }] }
        });
        let full = vec![
            pod("a", "n1", json!({ "app": "web" }), heavy),
            pod("b", "n1", json!({ "app": "web" }), json!({})),
            pod("c", "n2", json!({ "app": "db" }), json!({})),
        ];
        let slim_pods: Vec<Pod> = full.iter().cloned().map(slim).collect();
        for (f, s) in full.iter().zip(&slim_pods) {
            for r in ["cpu", "memory"] {
                assert_eq!(
                    pod_request(f, r),
                    pod_request(s, r),
                    "{r} of {}",
                    f.name_any()
                );
            }
            assert_eq!(is_workload(f), is_workload(s));
        }
        assert!(
            serde_json::to_vec(&slim_pods[0]).unwrap().len() * 4
                < serde_json::to_vec(&full[0]).unwrap().len(),
            "slim drops what planning does not read"
        );
        let nodes = [
            node("n1", "2026-01-01T00:00:00Z", None),
            node("n2", "2026-01-02T00:00:00Z", None),
        ];
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": "ns" },
            "spec": { "minAvailable": 2, "selector": { "matchLabels": { "app": "web" } } },
            "status": { "disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2 }
        }))
        .unwrap();
        let targets = vec!["n1".to_string()];
        let from_full = preflight(&targets, &nodes, &full, std::slice::from_ref(&pdb));
        assert!(!from_full.is_empty(), "the fixture has findings to compare");
        assert_eq!(from_full, preflight(&targets, &nodes, &slim_pods, &[pdb]));
        let opts = BatchOptions::default();
        assert_eq!(
            batch(&nodes, &full, &[], 50.0, &opts, None),
            batch(&nodes, &slim_pods, &[], 50.0, &opts, None)
        );
    }
}
