//! Everything a drain reads before it changes anything: the allocation from
//! Prometheus, the NodePool's nodes (every `--nodes` must be one of them) and its
//! disruption budgets, every pod of the cluster (slim), the PodDisruptionBudgets
//! and every node. Any failure here stops the run with nothing changed.

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};

use super::Settings;
use crate::core::alloc::Allocation;
use crate::core::batch::NODEPOOL_LABEL;
use crate::core::budget::{self, Budget};
use crate::core::handoff::Claim;
use crate::core::pods::slim;
use crate::error::{Error, Result, kube as kerr};

/// What the plan is made from.
pub(super) struct Gathered {
    pub allocation: Allocation,
    /// The NodePool's nodes.
    pub pool: Vec<Node>,
    /// Its disruption budgets (`None`: no NodePool object, as on a cluster whose
    /// nodes carry the label without Karpenter).
    pub budgets: Option<Vec<Budget>>,
    /// The pool's NodeClaims (none without Karpenter).
    pub claims: Vec<Claim>,
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
    let budgets = budgets(client, &s.nodepool).await?;
    let claims = super::handoff::claims(client, &s.nodepool).await?;
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
        budgets,
        claims,
        pods,
        pdbs,
        all_nodes,
    })
}

/// The budgets of NodePool `name`, from `karpenter.sh/v1` or, on a Karpenter
/// before 1.0, `v1beta1`; `None` when neither serves it.
async fn budgets(client: &Client, name: &str) -> Result<Option<Vec<Budget>>> {
    for version in ["v1", "v1beta1"] {
        let gvk = GroupVersionKind::gvk("karpenter.sh", version, "NodePool");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "nodepools");
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        // A 404 is the same whether the object or its API is missing: try the older.
        // (kube's get_opt takes the 404 of a missing API, whose body is no Status,
        // for an error.)
        let found = steward_kube::error::ok_if_not_found(api.get(name).await).map_err(kerr(
            format!("reading NodePool {name} (karpenter.sh/{version})"),
        ))?;
        if let Some(pool) = found {
            let spec = pool.data.get("spec").cloned().unwrap_or_default();
            return budget::read(&spec)
                .map(Some)
                .map_err(|source| Error::Budget {
                    nodepool: name.into(),
                    source,
                });
        }
    }
    Ok(None)
}
