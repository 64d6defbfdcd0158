//! Reads the disruption budgets that cover a pod, and the pods each covers, for
//! the pure decision in `crate::budget`. A budget covers the pods its selector
//! matches with their labels *before* isolation (current labels plus those steward
//! removed), so a pod steward took out of its Services still counts against the
//! budget it left.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::core::{Selector, SelectorExt};

use super::{Ctx, Owner};
use crate::budget::{Budget, Member, Source, desired_healthy};
use crate::error::{Result, kube as kerr};
use crate::state::{self, Record};
use crate::workload::{self, Handling};

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

fn member(pod: &Pod) -> Member {
    let record = Record::read(pod.labels(), pod.annotations());
    let job = record.as_ref().is_some_and(|r| {
        workload::handling_of_workload(r.workload.as_deref()) == Some(Handling::AwaitCompletion)
    });
    let phase = record.map(|r| r.phase);
    Member {
        name: pod.name_any(),
        health: Member::health(
            steward_kube::pod::is_ready(pod),
            pod.metadata.deletion_timestamp.is_some(),
            phase,
            job,
        ),
        requested: phase == Some(state::Phase::Requested),
    }
}

impl Ctx {
    /// Pods matching `selector` now, plus draining pods that matched it before
    /// isolation (`draining`: the namespace's pods carrying a drain record).
    async fn covered(
        &self,
        api: &Api<Pod>,
        selector: &Selector,
        draining: &[Pod],
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
                .or_insert_with(|| member(p));
        }
        Ok(by_uid.into_values().collect())
    }

    /// The budgets covering `pod`: every PodDisruptionBudget whose selector matches
    /// it, and its StatefulSet's one-at-a-time rule.
    pub(super) async fn budgets(&self, pod: &Pod, owner: Option<&Owner>) -> Result<Vec<Budget>> {
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
        if covering.is_empty() && sts.is_none() {
            return Ok(Vec::new());
        }
        let api = self.api(pod);
        let draining = api
            .list(&ListParams::default().labels(state::LABEL_PHASE))
            .await
            .map_err(kerr("listing draining pods"))?
            .items;
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
                members: self.covered(&api, &selector, &draining).await?,
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
                members: self.covered(&api, selector, &draining).await?,
            });
        }
        Ok(budgets)
    }
}
