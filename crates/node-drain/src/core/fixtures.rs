//! Nodes and pods for the core's table tests.

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

use super::batch::STATE_ANNOTATION;

/// A node with 4 cpu and 16Gi allocatable, created at `created`, in drain `state`.
pub fn node(name: &str, created: &str, state: Option<&str>) -> Node {
    let mut annotations = serde_json::Map::new();
    if let Some(s) = state {
        annotations.insert(STATE_ANNOTATION.into(), json!(s));
    }
    serde_json::from_value(json!({
        "metadata": { "name": name, "creationTimestamp": created, "annotations": annotations },
        "status": { "allocatable": { "cpu": "4", "memory": "16Gi" },
                    "conditions": [{ "type": "Ready", "status": "True" }] }
    }))
    .unwrap()
}

/// A running pod of a ReplicaSet on `node` requesting 1 cpu and 1Gi, with
/// `extra` merged over it.
pub fn pod(name: &str, node: &str, labels: serde_json::Value, extra: serde_json::Value) -> Pod {
    let mut v = json!({
        "metadata": { "name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": labels,
                      "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs", "controller": true }] },
        "spec": { "nodeName": node, "containers": [{ "name": "c", "resources": { "requests": { "cpu": "1", "memory": "1Gi" } } }] },
        "status": { "phase": "Running" }
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

/// Merges `b` into `a`, objects key by key.
pub fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// Eight nodes, n0 the newest and n7 the oldest.
pub fn nodes8() -> Vec<Node> {
    (0..8)
        .map(|i| {
            node(
                &format!("n{i}"),
                &format!("2026-01-0{}T00:00:00Z", 8 - i),
                None,
            )
        })
        .collect()
}
