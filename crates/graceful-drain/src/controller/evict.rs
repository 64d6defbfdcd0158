//! `isolated` → `evicting` → gone: wait (minimum, fixed delay, probe, maximum; a
//! Job pod until it has finished), then the real eviction; a refusal puts the pod
//! back in service.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use steward_kube::eviction::{self, Outcome};

use super::{Ctx, key};
use crate::core::config::Settings;
use crate::core::next::{self, Next};
use crate::core::state::{self, EvictReason, Record, Wait};
use crate::core::workload::{self, Handling};
use crate::error::{Result, kube as kerr};
use crate::events::{CONTROLLER, Reason};
use crate::messages::Msg;
use crate::probe::{self, Reading};

impl Ctx {
    pub(super) async fn wait(&self, pod: &Pod, record: &Record) -> Result<Action> {
        let (settings, errors) = self.settings(pod, record.workload.as_deref());
        for error in errors {
            tracing::warn!(pod = %key(pod), %error, "ignoring an invalid drain annotation");
        }
        let isolated_at = record.isolated_at.unwrap_or_else(Timestamp::now);
        let mut decision = state::decide_wait(isolated_at, Timestamp::now(), &settings, None);
        if workload::handling_of_workload(record.workload.as_deref())
            == Some(Handling::AwaitCompletion)
        {
            let finished = workload::finished(pod.status.as_ref().and_then(|s| s.phase.as_deref()));
            let since = record.requested_at.unwrap_or(isolated_at);
            decision =
                workload::decide_job(since, Timestamp::now(), settings.job_max_wait, finished);
        }
        if decision == Wait::Probe {
            let reading = self.probe(pod, &settings).await;
            decision = state::decide_wait(isolated_at, Timestamp::now(), &settings, Some(&reading));
        }
        match decision {
            Wait::For(d) => Ok(Action::requeue(d)),
            Wait::Probe => Ok(Action::requeue(state::PROBE_INTERVAL)),
            Wait::Evict(reason) => {
                self.patch(pod, state::evicting_patch(), "marking for eviction")
                    .await?;
                self.evict(pod, record, Some(reason)).await
            }
        }
    }

    /// Asks the pod's probe once; the first failure of a drain is reported (log
    /// and Event), the next ones only at debug level.
    async fn probe(&self, pod: &Pod, settings: &Settings) -> Reading {
        let reading = match &settings.probe {
            Some(t) => probe::read::read_pod(&self.client, &self.http, t, pod).await,
            None => Reading::Idle,
        };
        if let Reading::Failed(why) = &reading {
            tracing::debug!(pod = %key(pod), %why, "drain probe failed");
            let first = self
                .probe_warned
                .lock()
                .is_ok_and(|mut w| w.insert(ObjectRef::from_obj(pod)));
            if first {
                tracing::warn!(pod = %key(pod), %why, "drain probe failing; waiting until the maximum wait");
                self.events
                    .publish(
                        pod,
                        Reason::ProbeFailing,
                        &Msg::ProbeFailing {
                            why,
                            max_wait: settings.max_wait,
                        },
                    )
                    .await;
            }
        }
        reading
    }

    pub(super) async fn evict(
        &self,
        pod: &Pod,
        record: &Record,
        reason: Option<EvictReason>,
    ) -> Result<Action> {
        let uid = pod.uid().unwrap_or_default();
        let api = self.api(pod);
        let mut outcome = eviction::evict(&api, &pod.name_any(), &uid, record.grace).await;
        if outcome == Outcome::NamespaceTerminating {
            outcome =
                eviction::delete(&api, &pod.name_any(), &uid, record.grace.unwrap_or(30)).await;
        }
        if outcome == Outcome::Gone && self.still_there(pod).await? {
            // 409 also answers a conflict inside the eviction handler; only a pod that
            // is really gone (or replaced, or terminating) ends the drain.
            outcome = Outcome::Transient("conflict; the pod is still there".into());
        }
        let label = reason.map_or("resumed", EvictReason::label);
        match next::after_eviction(outcome, crate::webhook::WEBHOOK) {
            Next::Drained => {
                self.drained(pod, label, reason, record).await;
                Ok(Action::await_change())
            }
            Next::Retry(why) => {
                tracing::warn!(pod = %key(pod), %why, "eviction failed; retrying");
                Ok(Action::requeue(next::RETRY))
            }
            Next::WebhookLagging(message) => {
                // Our own webhook, on a replica that has not seen the `evicting` mark yet.
                tracing::debug!(pod = %key(pod), %message, "final eviction refused by a lagging webhook replica; retrying");
                Ok(Action::requeue(next::LAGGING_RETRY))
            }
            Next::Blocked { message, outcome } => {
                tracing::warn!(pod = %key(pod), %message, "final eviction blocked by PodDisruptionBudget; restoring the pod to service");
                self.blocked(pod, record, &message, outcome).await
            }
            Next::Refused {
                why,
                label,
                outcome,
            } => {
                tracing::warn!(pod = %key(pod), %why, "final eviction refused; restoring the pod to service");
                self.metrics.outcome(outcome);
                self.restore(pod, record, label).await?;
                Ok(Action::await_change())
            }
            // Answers only the dry run gives.
            Next::Isolate | Next::Gone => Ok(Action::await_change()),
        }
    }

    /// The pod is evicted (or gone): the drain's duration and outcome counted,
    /// a `Drained` (or, at the maximum wait, `DrainTimedOut`) Event.
    async fn drained(&self, pod: &Pod, label: &str, reason: Option<EvictReason>, record: &Record) {
        let elapsed = record
            .isolated_at
            .and_then(|t| Duration::try_from(Timestamp::now().duration_since(t)).ok())
            .unwrap_or_default();
        tracing::info!(pod = %key(pod), reason = label, seconds = elapsed.as_secs_f64(), "drained; evicted");
        self.metrics.drain_duration.observe(elapsed.as_secs_f64());
        self.metrics.outcome(label);
        let ev = if reason == Some(EvictReason::MaxWait) {
            Reason::DrainTimedOut
        } else {
            Reason::Drained
        };
        let msg = Msg::Drained {
            reason: label,
            after: elapsed,
        };
        self.events.publish(pod, ev, &msg).await;
        self.set_active(&ObjectRef::from_obj(pod), false);
    }

    async fn still_there(&self, pod: &Pod) -> Result<bool> {
        let now = self
            .api(pod)
            .get_metadata_opt(&pod.name_any())
            .await
            .map_err(kerr(format!("reading {}", key(pod))))?;
        Ok(now.is_some_and(|p| p.uid() == pod.uid() && p.metadata.deletion_timestamp.is_none()))
    }

    /// A PodDisruptionBudget refused the eviction (dry run or final): Event, the
    /// outcome counted as `outcome`, the pod put back in service with a back-off.
    pub(super) async fn blocked(
        &self,
        pod: &Pod,
        record: &Record,
        message: &str,
        outcome: &str,
    ) -> Result<Action> {
        self.events
            .publish(pod, Reason::EvictionBlocked, &Msg::BlockedByPdb { message })
            .await;
        self.metrics.outcome(outcome);
        self.restore(pod, record, "blocked_by_pdb").await?;
        Ok(Action::await_change())
    }

    /// Puts the pod back in service with every trace of the drain removed, and
    /// starts the back-off.
    pub(super) async fn restore(&self, pod: &Pod, record: &Record, why: &str) -> Result<()> {
        let not_before = Timestamp::now().checked_add(self.restore_backoff).ok();
        self.patch(
            pod,
            state::restore_patch(&record.removed_labels, not_before),
            "restoring",
        )
        .await?;
        self.set_active(&ObjectRef::from_obj(pod), false);
        if !record.removed_labels.is_empty() {
            self.events
                .publish(pod, Reason::Restored, &Msg::Restored { why })
                .await;
        }
        tracing::info!(pod = %key(pod), %why, field_manager = CONTROLLER, "restored to service");
        Ok(())
    }
}
