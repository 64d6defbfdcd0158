//! Reads the disruption budgets that cover a pod, and the pods each covers, for
//! the pure decision in `crate::core::budget`. A budget covers the pods its selector
//! matches with their labels *before* isolation (current labels plus those steward
//! removed), so a pod steward took out of its Services still counts against the
//! budget it left.
//!
//! A pod that some Service selects counts as healthy only once it is a ready
//! endpoint in that Service's EndpointSlices, not merely Ready: the EndpointSlice
//! controller adds a new Ready pod a moment later, and isolating the next pod in
//! that moment would drop the Service's ready endpoints below the budget (a test
//! watching the EndpointSlices caught it).

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::core::{Selector, SelectorExt};

use super::Ctx;
use super::isolate::Owner;
use crate::core::budget::{Budget, Member, Source, desired_healthy, rollout_desired_healthy};
use crate::core::state::{self, Record};
use crate::core::workload::{self, Handling};
use crate::error::{Result, kube as kerr};

/// A pod's labels before steward isolated it.
fn original_labels(pod: &Pod) -> BTreeMap<String, String> {
    let mut labels = pod.labels().clone();
    if let Some(r) = Record::read(pod.labels(), pod.annotations()) {
        for (k, v) in r.removed_labels {
            labels.entry(k).or_insert(v);
        }
    }
    labels
}

/// What decides whether a covered pod serves: the namespace's Service selectors
/// and the pods that are ready endpoints of some Service.
struct Serving<'a> {
    selectors: &'a [BTreeMap<String, String>],
    ready_endpoints: HashSet<String>,
}

impl Serving<'_> {
    /// Ready, and a ready endpoint if any Service selects it.
    fn ready(&self, pod: &Pod) -> bool {
        if !steward_kube::pod::is_ready(pod) {
            return false;
        }
        let selected = !state::service_labels(pod.labels(), self.selectors).is_empty();
        !selected || self.ready_endpoints.contains(&pod.name_any())
    }
}

fn member(pod: &Pod, serving: &Serving<'_>) -> Member {
    let record = Record::read(pod.labels(), pod.annotations());
    let job = record.as_ref().is_some_and(|r| {
        workload::handling_of_workload(r.workload.as_deref()) == Some(Handling::AwaitCompletion)
    });
    let phase = record.map(|r| r.phase);
    Member {
        name: pod.name_any(),
        health: Member::health(
            serving.ready(pod),
            pod.metadata.deletion_timestamp.is_some(),
            phase,
            job,
        ),
        requested: phase == Some(state::Phase::Requested),
    }
}

/// Pods named as ready endpoints by any EndpointSlice of the namespace.
fn ready_endpoints(slices: &[EndpointSlice]) -> HashSet<String> {
    slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .filter_map(|e| e.target_ref.as_ref())
        .filter(|r| r.kind.as_deref() == Some("Pod"))
        .filter_map(|r| r.name.clone())
        .collect()
}

/// The implicit budget of a Deployment or ReplicaSet no PDB covers, before its members.
struct Rollout {
    source: Source,
    desired_healthy: std::result::Result<i32, String>,
    selector: Selector,
}

impl Ctx {
    /// The rollout limit of the Deployment or bare ReplicaSet a pod's drain record
    /// names (`None`: another owner, or the owner is gone).
    async fn rollout(&self, pod: &Pod) -> Result<Option<Rollout>> {
        let workload = Record::read(pod.labels(), pod.annotations()).and_then(|r| r.workload);
        let Some((kind, name)) = workload.as_deref().and_then(workload::split) else {
            return Ok(None);
        };
        let ns = pod.namespace().unwrap_or_default();
        let what = format!("reading {kind} {ns}/{name}");
        let (selector, desired) = match kind {
            "Deployment" => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
                let Some(d) = api.get_opt(name).await.map_err(kerr(what))? else {
                    return Ok(None);
                };
                let spec = d.spec.unwrap_or_default();
                let strategy = spec.strategy.unwrap_or_default();
                let one = IntOrString::Int(1);
                let max = match strategy.type_.as_deref() {
                    Some("Recreate") => Some(one),
                    _ => strategy.rolling_update.and_then(|r| r.max_unavailable),
                };
                let desired = rollout_desired_healthy(spec.replicas.unwrap_or(1), max.as_ref());
                (spec.selector, desired)
            }
            "ReplicaSet" => {
                let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
                let Some(r) = api.get_opt(name).await.map_err(kerr(what))? else {
                    return Ok(None);
                };
                let spec = r.spec.unwrap_or_default();
                let one = IntOrString::Int(1);
                let desired = rollout_desired_healthy(spec.replicas.unwrap_or(1), Some(&one));
                (spec.selector, desired)
            }
            _ => return Ok(None),
        };
        let Ok(selector) = Selector::try_from(selector) else {
            return Ok(None);
        };
        Ok(Some(Rollout {
            source: Source::Rollout(format!("{kind} {name}")),
            desired_healthy: desired,
            selector,
        }))
    }

    /// Pods matching `selector` now, plus draining pods that matched it before
    /// isolation (`draining`: the namespace's pods carrying a drain record).
    async fn covered(
        &self,
        api: &Api<Pod>,
        selector: &Selector,
        draining: &[Pod],
        serving: &Serving<'_>,
    ) -> Result<Vec<Member>> {
        let now = api
            .list(&ListParams::default().labels_from(selector))
            .await
            .map_err(kerr(format!("listing the pods of selector {selector}")))?
            .items;
        let mut by_uid: HashMap<String, Member> = HashMap::new();
        for p in now.iter().chain(
            draining
                .iter()
                .filter(|p| selector.matches(&original_labels(p))),
        ) {
            by_uid
                .entry(p.uid().unwrap_or_default())
                .or_insert_with(|| member(p, serving));
        }
        Ok(by_uid.into_values().collect())
    }

    /// The budgets covering `pod`: every PodDisruptionBudget whose selector matches
    /// it, its StatefulSet's one-at-a-time rule, and, when no PodDisruptionBudget
    /// covers it, its Deployment's or ReplicaSet's rollout limit.
    pub(super) async fn budgets(
        &self,
        pod: &Pod,
        owner: Option<&Owner>,
        selectors: &[BTreeMap<String, String>],
    ) -> Result<Vec<Budget>> {
        let ns = pod.namespace().unwrap_or_default();
        let labels = original_labels(pod);
        let pdbs: Vec<PodDisruptionBudget> = Api::namespaced(self.client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .map_err(kerr("listing PodDisruptionBudgets"))?
            .items;
        // A PDB without a selector covers nothing; an empty one covers every pod.
        let covering: Vec<(PodDisruptionBudget, Selector)> = pdbs
            .into_iter()
            .filter_map(|p| {
                let sel = Selector::try_from(p.spec.as_ref()?.selector.clone()?).ok()?;
                sel.matches(&labels).then_some((p, sel))
            })
            .collect();
        let sts = owner.filter(|o| o.kind == "StatefulSet");
        let rollout = match covering.is_empty() && sts.is_none() {
            true => self.rollout(pod).await?,
            false => None,
        };
        if covering.is_empty() && sts.is_none() && rollout.is_none() {
            return Ok(Vec::new());
        }
        let api = self.api(pod);
        let draining = api
            .list(&ListParams::default().labels(state::LABEL_PHASE))
            .await
            .map_err(kerr("listing draining pods"))?
            .items;
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &ns);
        let serving = Serving {
            selectors,
            ready_endpoints: ready_endpoints(
                &slices
                    .list(&ListParams::default())
                    .await
                    .map_err(kerr("listing EndpointSlices"))?
                    .items,
            ),
        };
        let mut budgets = Vec::new();
        for (pdb, selector) in covering {
            let spec = pdb.spec.clone().unwrap_or_default();
            let status = pdb.status.clone().unwrap_or_default();
            let processed =
                status.observed_generation.unwrap_or(-1) >= pdb.metadata.generation.unwrap_or(0);
            let desired = if processed {
                desired_healthy(
                    spec.min_available.as_ref(),
                    spec.max_unavailable.as_ref(),
                    status.expected_pods,
                )
            } else {
                Err("not yet processed by the disruption controller".into())
            };
            budgets.push(Budget {
                source: Source::Pdb(pdb.name_any()),
                desired_healthy: desired,
                unhealthy_always_allowed: spec.unhealthy_pod_eviction_policy.as_deref()
                    == Some("AlwaysAllow"),
                ordinal_order: false,
                members: self.covered(&api, &selector, &draining, &serving).await?,
            });
        }
        if let Some(o) = sts
            && let Some(selector) = &o.selector
        {
            budgets.push(Budget {
                source: Source::StatefulSet(o.name.clone()),
                desired_healthy: Ok(o.replicas - 1),
                unhealthy_always_allowed: false,
                ordinal_order: true,
                members: self.covered(&api, selector, &draining, &serving).await?,
            });
        }
        if let Some(r) = rollout {
            budgets.push(Budget {
                source: r.source,
                desired_healthy: r.desired_healthy,
                unhealthy_always_allowed: false,
                ordinal_order: false,
                members: self.covered(&api, &r.selector, &draining, &serving).await?,
            });
        }
        Ok(budgets)
    }
}
