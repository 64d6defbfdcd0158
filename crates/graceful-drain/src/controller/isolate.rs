//! `requested` → `isolated`: a StatefulSet pod waits its turn, the disruption
//! budgets are asked (steward's own count, then a server-side dry-run eviction),
//! and the labels that put the pod behind its Services are taken away.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::core::Selector;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use steward_kube::error::is_conflict;
use steward_kube::eviction;

use super::{Ctx, key};
use crate::core::budget::{self, Hold};
use crate::core::next::{self, Next};
use crate::core::state::{self, Record};
use crate::core::workload::{self, Handling};
use crate::error::{Error, Result, kube as kerr};
use crate::events::Reason;
use crate::messages::Msg;

/// How often a queued pod looks at its budgets again when nothing wakes it sooner.
const QUEUE_RECHECK: Duration = Duration::from_secs(1);

/// What isolation needs to know of a StatefulSet or DaemonSet owner.
pub(super) struct Owner {
    pub(super) kind: &'static str,
    pub(super) name: String,
    /// Label keys its selector uses (these stay on the pod).
    selector_keys: Vec<String>,
    pub(super) selector: Option<Selector>,
    /// Wanted replicas (StatefulSet).
    pub(super) replicas: i32,
}

fn selector_keys(sel: &LabelSelector) -> Vec<String> {
    let labels = sel.match_labels.iter().flat_map(|m| m.keys().cloned());
    let exprs = sel
        .match_expressions
        .iter()
        .flat_map(|e| e.iter().map(|x| x.key.clone()));
    labels.chain(exprs).collect()
}

impl Ctx {
    /// The StatefulSet or DaemonSet that owns the pod (`None`: another handling, or
    /// the owner is gone, in which case no selector has to be kept).
    async fn owner(&self, pod: &Pod, record: &Record) -> Result<Option<Owner>> {
        let Some((kind, name)) = record.workload.as_deref().and_then(workload::split) else {
            return Ok(None);
        };
        let ns = pod.namespace().unwrap_or_default();
        let (kind, selector, replicas) = match kind {
            "StatefulSet" => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &ns);
                let Some(s) = api
                    .get_opt(name)
                    .await
                    .map_err(kerr(format!("reading StatefulSet {ns}/{name}")))?
                else {
                    return Ok(None);
                };
                let spec = s.spec.unwrap_or_default();
                ("StatefulSet", spec.selector, spec.replicas.unwrap_or(1))
            }
            "DaemonSet" => {
                let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &ns);
                let Some(d) = api
                    .get_opt(name)
                    .await
                    .map_err(kerr(format!("reading DaemonSet {ns}/{name}")))?
                else {
                    return Ok(None);
                };
                ("DaemonSet", d.spec.unwrap_or_default().selector, 0)
            }
            _ => return Ok(None),
        };
        Ok(Some(Owner {
            kind,
            name: name.to_string(),
            selector_keys: selector_keys(&selector),
            selector: Selector::try_from(selector).ok(),
            replicas,
        }))
    }

    /// The pod waits before leaving load balancing (`hold` says why): its queue
    /// heartbeat is renewed so the webhook does not count it overdue, and the first
    /// time a `DrainQueued` Event names what it waits for.
    async fn queue(&self, pod: &Pod, record: &Record, hold: &Hold) -> Result<Action> {
        let now = Timestamp::now();
        let stale = record.last_seen().is_none_or(|t| {
            Duration::try_from(now.duration_since(t)).is_ok_and(|d| d >= workload::QUEUE_HEARTBEAT)
        });
        if record.queued_at.is_none() || stale {
            self.patch(
                pod,
                state::queued_patch(now),
                "renewing the queue heartbeat",
            )
            .await?;
        }
        if record.queued_at.is_none() {
            tracing::info!(pod = %key(pod), budget = %hold.source(), why = %hold, "eviction queued behind its disruption budget");
            self.events
                .publish(pod, Reason::DrainQueued, &Msg::Queued { hold })
                .await;
            let kind = match hold.source() {
                budget::Source::Pdb(_) => "PodDisruptionBudget",
                budget::Source::StatefulSet(_) => "StatefulSet",
                budget::Source::Rollout(_) => "Rollout",
            };
            self.metrics
                .queued
                .get_or_create(&crate::metrics::BudgetLabel {
                    budget: kind.into(),
                })
                .inc();
        }
        // A PodDisruptionBudget's status change also wakes the pod (see `run`).
        Ok(Action::requeue(QUEUE_RECHECK))
    }

    pub(super) async fn check_and_isolate(&self, pod: &Pod, record: &Record) -> Result<Action> {
        let Some(handling) = workload::handling_of_workload(record.workload.as_deref()) else {
            self.restore(pod, record, "unsupported_owner").await?;
            return Ok(Action::await_change());
        };
        if handling == Handling::AwaitCompletion {
            // A Job pod is not isolated; the PodDisruptionBudget answers at the final eviction.
            return self.isolate(pod, handling, BTreeMap::new(), None).await;
        }
        let owner = match handling {
            Handling::KeepOwner { .. } => self.owner(pod, record).await?,
            _ => None,
        };
        if matches!(
            handling,
            Handling::KeepOwner {
                one_at_a_time: true
            }
        ) {
            // Requests sent together (an evicter's loop, a node drain) are ordered by
            // ordinal, not by arrival.
            let age = record
                .requested_at
                .and_then(|t| Duration::try_from(Timestamp::now().duration_since(t)).ok())
                .unwrap_or(workload::STS_SETTLE);
            if age < workload::STS_SETTLE {
                return Ok(Action::requeue(workload::STS_SETTLE - age));
            }
        }
        let services: Api<Service> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let lock = self.isolation_lock(&pod.namespace().unwrap_or_default());
        let _one_at_a_time = lock.lock().await;
        let selectors: Vec<_> = services
            .list(&ListParams::default())
            .await
            .map_err(kerr("listing Services"))?
            .items
            .into_iter()
            .filter_map(|s| s.spec.and_then(|s| s.selector))
            .collect();
        let budgets = self.budgets(pod, owner.as_ref(), &selectors).await?;
        if let Err(hold) = budget::decide(&pod.name_any(), &budgets) {
            return self.queue(pod, record, &hold).await;
        }
        let pdb = budgets
            .iter()
            .map(|b| &b.source)
            .find(|s| matches!(s, budget::Source::Pdb(_)));
        if let Some(stop) = self.dry_run(pod, record, pdb).await? {
            return Ok(stop);
        }
        let keys = owner
            .as_ref()
            .map(|o| o.selector_keys.as_slice())
            .unwrap_or_default();
        let labels = workload::isolation_labels(
            state::service_labels(pod.labels(), &selectors),
            keys,
            handling,
        );
        self.isolate(pod, handling, labels, owner.as_ref().map(|o| o.kind))
            .await
    }

    /// Asks the API server's PodDisruptionBudget check with a dry-run eviction;
    /// `Some` ends the step with that action (the drain does not begin now). A
    /// refusal keeps the pod queued in service, as steward's own count would: the
    /// budget's status trails (or leads) the EndpointSlices steward counts by a
    /// moment, and dropping the request there (a back-off) made a queued drain
    /// wait 40-50 s on real nodes. `pdb` is the budget steward read for the pod.
    async fn dry_run(
        &self,
        pod: &Pod,
        record: &Record,
        pdb: Option<&budget::Source>,
    ) -> Result<Option<Action>> {
        let uid = pod.uid().unwrap_or_default();
        let outcome = eviction::dry_run(&self.api(pod), &pod.name_any(), &uid, record.grace).await;
        match next::after_dry_run(outcome) {
            Next::Isolate => Ok(None),
            Next::Retry(why) => {
                tracing::warn!(pod = %key(pod), %why, "dry-run eviction failed; retrying");
                Ok(Some(Action::requeue(next::RETRY)))
            }
            Next::Blocked { message, .. } => {
                let source = pdb
                    .cloned()
                    .unwrap_or_else(|| budget::Source::Pdb("(named by the API server)".into()));
                let hold = Hold::Refused { source, message };
                self.queue(pod, record, &hold).await.map(Some)
            }
            Next::Refused {
                why,
                label,
                outcome,
            } => {
                tracing::warn!(pod = %key(pod), %why, "dry-run eviction refused; drain not started");
                self.events
                    .publish(pod, Reason::Restored, &Msg::Restored { why: &why })
                    .await;
                self.metrics.outcome(outcome);
                self.restore(pod, record, label).await?;
                Ok(Some(Action::await_change()))
            }
            // Gone, or an answer only the final eviction gives.
            Next::Gone | Next::Drained | Next::WebhookLagging(_) => {
                Ok(Some(Action::await_change()))
            }
        }
    }

    async fn isolate(
        &self,
        pod: &Pod,
        handling: Handling,
        labels: BTreeMap<String, String>,
        owner_kind: Option<&str>,
    ) -> Result<Action> {
        let rv = pod.resource_version().unwrap_or_default();
        let patch = state::isolate_patch(&labels, Timestamp::now(), &rv);
        match self.patch(pod, patch, "isolating").await {
            // The pod changed since the decision (the patch carries its
            // resourceVersion): decide again on the next reconcile.
            Err(Error::Kube { source, .. }) if is_conflict(&source) => {
                return Ok(Action::requeue(Duration::from_millis(100)));
            }
            other => other?,
        }
        let shown = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let msg = match (handling, owner_kind) {
            (Handling::AwaitCompletion, _) => {
                let (settings, _) = self.settings(pod, None);
                tracing::info!(pod = %key(pod), "Job pod: eviction waits until it has finished");
                Msg::AwaitingJob {
                    max_wait: settings.job_max_wait,
                }
            }
            (_, Some(kind)) if labels.is_empty() => {
                tracing::info!(pod = %key(pod), owner = kind, "no Service label outside the owner's selector; not isolated, waiting before evicting");
                Msg::NotIsolated { kind }
            }
            _ => {
                tracing::info!(pod = %key(pod), labels = %shown, "taken out of load balancing; waiting until drained");
                Msg::DrainStarted { labels: shown }
            }
        };
        self.events.publish(pod, Reason::DrainStarted, &msg).await;
        self.set_active(&ObjectRef::from_obj(pod), true);
        Ok(Action::requeue(Duration::from_millis(50)))
    }
}
