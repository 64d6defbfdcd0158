//! Everything a drain reads before it changes anything: the allocation from
//! Prometheus, the NodePool's nodes (every `--nodes` must be one of them), every
//! pod of the cluster (slim), the PodDisruptionBudgets and every node. Any
//! failure here stops the run with nothing changed.

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::Settings;
use crate::core::alloc::Allocation;
use crate::core::batch::NODEPOOL_LABEL;
use crate::core::pods::slim;
use crate::error::{Error, Result, kube as kerr};

/// What the plan is made from.
pub(super) struct Gathered {
    pub allocation: Allocation,
    /// The NodePool's nodes.
    pub pool: Vec<Node>,
    /// Every pod, slim.
    pub pods: Vec<Pod>,
    pub pdbs: Vec<PodDisruptionBudget>,
    /// Every node of the cluster.
    pub all_nodes: Vec<Node>,
}

/// Reads it all, in the order a person would check it: metrics, the pool, the
/// named nodes, then the cluster's pods, budgets and nodes.
pub(super) async fn gather(client: &Client, s: &Settings) -> Result<Gathered> {
    let allocation = s.prometheus.allocation(&s.nodepool).await?;
    let nodes_api: Api<Node> = Api::all(client.clone());
    let pool = nodes_api
        .list(&ListParams::default().labels(&format!("{NODEPOOL_LABEL}={}", s.nodepool)))
        .await
        .map_err(kerr("listing NodePool nodes"))?
        .items;
    for n in &s.batch.nodes {
        if !pool.iter().any(|p| &p.name_any() == n) {
            return Err(Error::UnknownNode(n.clone(), s.nodepool.clone()));
        }
    }
    // Every pod of the cluster, kept only as far as planning reads them.
    let pods = steward_kube::list::list_all_map(
        &Api::<Pod>::all(client.clone()),
        &ListParams::default(),
        slim,
    )
    .await
    .map_err(kerr("listing pods"))?;
    let pdbs = Api::<PodDisruptionBudget>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kerr("listing PodDisruptionBudgets"))?
        .items;
    let all_nodes = nodes_api
        .list(&ListParams::default())
        .await
        .map_err(kerr("listing nodes"))?
        .items;
    Ok(Gathered {
        allocation,
        pool,
        pods,
        pdbs,
        all_nodes,
    })
}
