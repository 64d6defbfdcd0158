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
    let patch = json!({ "spec": { "unschedulable": unschedulable } });
    api.patch(
        name,
        &PatchParams::apply(field_manager).force().clone_with_merge(),
        &Patch::Merge(&patch),
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
    let patch = json!({ "metadata": { "annotations": map } });
    api.patch(
        name,
        &PatchParams::apply(field_manager).force().clone_with_merge(),
        &Patch::Merge(&patch),
    )
    .await
}

trait MergeParams {
    fn clone_with_merge(&self) -> PatchParams;
}

impl MergeParams for PatchParams {
    /// Merge patches take a field manager but not `force`.
    fn clone_with_merge(&self) -> PatchParams {
        PatchParams {
            force: false,
            ..self.clone()
        }
    }
}

/// Whether the node's Ready condition is anything but True.
pub fn not_ready(n: &Node) -> bool {
    !n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
