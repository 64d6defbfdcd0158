//! The run's NodePool of 4 Karpenter nodes and its workload; torn down after.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;
use testkit::karpenter::{api, node_pool, quiet, workload};
use testkit::wait;

use super::{PODS, READY_AFTER, T};

/// The run's NodePool (Drifted budget 50 %), Deployment and PDB; once 8 pods are
/// Ready on 4 nodes, the nodes and their NodeClaims (in the same order).
pub async fn setup_pool(
    client: &kube::Client,
    ns: &str,
    pool: &str,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let half = json!({ "nodes": "50%", "reasons": ["Drifted"] });
    node_pool(client, pool, json!([quiet(), half])).await?;
    let ready_after = json!({ "steward.io/sim-ready-after": READY_AFTER });
    workload(client, ns, pool, pool, (PODS, "1500m"), ready_after).await?;
    let claims = api(client, "NodeClaim")
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
    api(client, "NodePool")
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
