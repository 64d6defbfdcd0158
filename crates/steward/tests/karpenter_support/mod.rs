//! A NodePool the real Karpenter (kwok provider) provisions, for the tests that
//! run Karpenter: its KWOKNodeClass and NodePool, and the dynamic APIs of
//! Karpenter's kinds.

#![allow(dead_code, clippy::unwrap_used)]

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use testkit::wait::from_json;

/// The budget that keeps Karpenter's own consolidation away during a test.
pub fn quiet() -> Value {
    json!({ "nodes": "0", "reasons": ["Empty", "Underutilized"] })
}

/// The cluster-scoped API of a Karpenter kind.
pub fn dynamic(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::all_with(client.clone(), &ar)
}

/// `karpenter.sh/v1` NodePools.
pub fn nodepools(client: &kube::Client) -> Api<DynamicObject> {
    dynamic(client, "karpenter.sh", "v1", "NodePool", "nodepools")
}

/// `karpenter.sh/v1` NodeClaims.
pub fn nodeclaims(client: &kube::Client) -> Api<DynamicObject> {
    dynamic(client, "karpenter.sh", "v1", "NodeClaim", "nodeclaims")
}

/// A KWOKNodeClass and a NodePool named `pool` of 4-cpu kwok instances, with
/// `budgets`; Karpenter consolidates only empty nodes, after an hour.
pub async fn node_pool(client: &kube::Client, pool: &str, budgets: Value) {
    let class: DynamicObject = from_json(
        json!({ "apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass", "metadata": { "name": pool } }),
    );
    dynamic(
        client,
        "karpenter.kwok.sh",
        "v1alpha1",
        "KWOKNodeClass",
        "kwoknodeclasses",
    )
    .create(&PostParams::default(), &class)
    .await
    .unwrap();
    let nodepool: DynamicObject = from_json(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": { "name": pool },
        "spec": {
            "template": { "spec": {
                "requirements": [
                    { "key": "kubernetes.io/os", "operator": "In", "values": ["linux"] },
                    { "key": "karpenter.kwok.sh/instance-cpu", "operator": "In", "values": ["4"] }
                ],
                "nodeClassRef": { "group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": pool }
            } },
            "limits": { "cpu": 40 },
            "disruption": { "consolidationPolicy": "WhenEmpty", "consolidateAfter": "1h", "budgets": budgets }
        }
    }));
    nodepools(client)
        .create(&PostParams::default(), &nodepool)
        .await
        .unwrap();
}
