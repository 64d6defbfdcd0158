//! Cordon and node annotations, written by merge patch so nothing else on the node
//! is touched.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// Marks the node (un)schedulable.
pub async fn set_unschedulable(
    api: &Api<Node>,
    name: &str,
    unschedulable: bool,
    field_manager: &str,
) -> kube::Result<Node> {
    merge(
        api,
        name,
        json!({ "spec": { "unschedulable": unschedulable } }),
        field_manager,
    )
    .await
}

/// Sets (or with `None`, removes) annotations.
pub async fn annotate(
    api: &Api<Node>,
    name: &str,
    entries: &[(&str, Option<&str>)],
    field_manager: &str,
) -> kube::Result<Node> {
    let map: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_string(),
                v.map_or(serde_json::Value::Null, |v| json!(v)),
            )
        })
        .collect();
    merge(
        api,
        name,
        json!({ "metadata": { "annotations": map } }),
        field_manager,
    )
    .await
}

/// A JSON merge patch under `field_manager` (merge patches take no `force`).
async fn merge(
    api: &Api<Node>,
    name: &str,
    patch: serde_json::Value,
    field_manager: &str,
) -> kube::Result<Node> {
    let params = PatchParams {
        field_manager: Some(field_manager.to_string()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch)).await
}

/// Whether the node's Ready condition is True.
pub fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
