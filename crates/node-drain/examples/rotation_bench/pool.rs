//! The run's NodePool of 4 Karpenter nodes and its workload; torn down after.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use serde_json::json;
use testkit::wait::{self, from_json, pod_ready};

use super::{PODS, READY_AFTER, T};

pub fn api(client: &kube::Client, group: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(
        group,
        if kind == "KWOKNodeClass" {
            "v1alpha1"
        } else {
            "v1"
        },
        kind,
    );
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// The run's NodePool, Deployment and PDB; once 8 pods are Ready on 4 nodes, the
/// nodes and their NodeClaims (in the same order).
pub async fn setup_pool(
    client: &kube::Client,
    ns: &str,
    pool: &str,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let class = json!({ "apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass", "metadata": { "name": pool } });
    api(
        client,
        "karpenter.kwok.sh",
        "KWOKNodeClass",
        "kwoknodeclasses",
    )
    .create(&PostParams::default(), &from_json(class))
    .await?;
    let nodepool = json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": { "name": pool },
        "spec": {
            "template": { "spec": {
                "requirements": [
                    { "key": "kubernetes.io/os", "operator": "In", "values": ["linux"] },
                    { "key": "karpenter.kwok.sh/instance-cpu", "operator": "In", "values": ["4"] }
                ],
                "nodeClassRef": { "group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": pool }
            } },
            "disruption": { "consolidationPolicy": "WhenEmpty", "consolidateAfter": "1h", "budgets": [
                { "nodes": "0", "reasons": ["Empty", "Underutilized"] },
                { "nodes": "50%", "reasons": ["Drifted"] }
            ] }
        }
    });
    api(client, "karpenter.sh", "NodePool", "nodepools")
        .create(&PostParams::default(), &from_json(nodepool))
        .await?;
    let deploy: Deployment = from_json(json!({
        "metadata": { "name": pool },
        "spec": { "replicas": PODS, "selector": { "matchLabels": { "app": pool } },
            "template": { "metadata": { "labels": { "app": pool },
                                        "annotations": { "steward.io/sim-ready-after": READY_AFTER } },
                "spec": { "terminationGracePeriodSeconds": 1, "nodeSelector": { "karpenter.sh/nodepool": pool },
                    "containers": [{ "name": "c", "image": "registry.invalid/c:1",
                        "resources": { "requests": { "cpu": "1500m", "memory": "1Gi" } } }] } } }
    }));
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await?;
    let pdb: PodDisruptionBudget = from_json(
        json!({ "metadata": { "name": pool }, "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "app": pool } } } }),
    );
    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pdb)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait::list(
        &pods,
        &ListParams::default().labels(&format!("app={pool}")),
        T,
        "8 pods Ready",
        |ps| ps.iter().filter(|p| pod_ready(p)).count() == PODS,
    )
    .await?;
    let claims = api(client, "karpenter.sh", "NodeClaim", "nodeclaims")
        .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
        .await?
        .items;
    let mut pairs: Vec<(String, String)> = claims
        .iter()
        .filter_map(|c| {
            Some((
                c.data["status"]["nodeName"].as_str()?.to_string(),
                c.name_any(),
            ))
        })
        .collect();
    pairs.sort();
    anyhow::ensure!(pairs.len() == 4, "Karpenter provisioned {pairs:?}");
    Ok(pairs.into_iter().unzip())
}

/// Deletes the run's objects and waits until its nodes are gone (not timed).
pub async fn teardown(client: &kube::Client, ns: &str, pool: &str) -> anyhow::Result<()> {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .delete(pool, &DeleteParams::foreground())
        .await?;
    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .delete(pool, &DeleteParams::default())
        .await?;
    api(client, "karpenter.sh", "NodePool", "nodepools")
        .delete(pool, &DeleteParams::default())
        .await?;
    let nodes: Api<Node> = Api::all(client.clone());
    wait::list(
        &nodes,
        &ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")),
        T,
        "the pool's nodes gone",
        |ns| ns.is_empty(),
    )
    .await?;
    Ok(())
}
