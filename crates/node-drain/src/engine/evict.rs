//! One pod leaving its node: deleted when it is a problem pod, else evicted
//! through the Eviction API with a UID precondition, under the run's and the
//! node's limits on evictions in flight, retried with back-off (woken early when
//! its budget allows again), after waiting for room for its replacement when asked.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use steward_kube::eviction;
use tokio::sync::Semaphore;

use super::{Engine, Gone};
use crate::core::removal::{Next, PodKey, Removal, after_eviction, eviction_backoff, removal};
use crate::core::report::Progress;

/// The back-off never ends (no maximum of tries); this only stands in for its last value.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Engine {
    /// Evicts (or, for a problem pod, deletes) one pod until it is on its way out.
    /// Says how it went: [`Gone::Never`] with why when the pod can never be evicted
    /// (more than one PDB, RBAC). `node` is its name and UID (for its Events).
    pub(super) async fn remove_pod(
        &self,
        (node, uid): (&str, Option<&str>),
        key: &PodKey,
        pod: &Pod,
        node_not_ready: bool,
        per_node: &Semaphore,
    ) -> Gone {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.ns);
        let wait_for_room = match removal(
            pod,
            node_not_ready,
            self.cfg.wait_for_replacements.is_some(),
        ) {
            Removal::Delete(reason) => {
                let outcome =
                    eviction::delete(&api, &key.name, &key.uid, self.cfg.problem_grace).await;
                tracing::info!(pod = %key, %node, %reason, outcome = outcome.label(), "deleted problem pod");
                self.emit(Progress::PodDeleted {
                    node: node.into(),
                    pod: key.to_string(),
                    reason,
                });
                return Gone::Deleted;
            }
            Removal::Evict { wait_for_room } => wait_for_room,
        };
        if self.cfg.surge {
            self.make_before_break((node, uid), key, pod).await;
        }
        if let (Some(limit), true) = (self.cfg.wait_for_replacements, wait_for_room) {
            self.wait_for_room(node, key, pod, limit).await;
        }
        let mut backoff = eviction_backoff();
        // One DrainBlocked Event per pod, not one per retry.
        let mut blocked_recorded = false;
        loop {
            let outcome = {
                let (Ok(_global), Ok(_local)) =
                    (self.overall.acquire().await, per_node.acquire().await)
                else {
                    return Gone::Stopped;
                };
                eviction::evict(&api, &key.name, &key.uid, None).await
            };
            let delay = backoff.next().unwrap_or(MAX_BACKOFF);
            // Gone before the eviction (a rollout removed it): no Evicted Event.
            let was_there = !matches!(outcome, eviction::Outcome::Gone);
            let wait = match after_eviction(outcome, pod, delay) {
                Next::Evicted => {
                    tracing::info!(pod = %key, %node, "evicted");
                    if was_there {
                        self.events.evicted(node, uid, key).await;
                    }
                    self.evicted(node, key);
                    return Gone::Evicted;
                }
                Next::Delete { grace } => {
                    let outcome = eviction::delete(&api, &key.name, &key.uid, grace).await;
                    tracing::info!(pod = %key, %node, outcome = outcome.label(), "namespace terminating; deleted pod directly");
                    self.evicted(node, key);
                    return Gone::Deleted;
                }
                Next::Blocked { delay, message } => {
                    let pdb = self.budgets.waker_for(pod).map(|(k, _)| k);
                    // The Event first, then the log line: whoever reads the log
                    // finds the Event already on the node.
                    if !blocked_recorded {
                        blocked_recorded = true;
                        let pod_name = key.to_string();
                        self.events
                            .blocked(node, uid, &pod_name, pdb.as_deref(), &message)
                            .await;
                    }
                    // Routine while budgets do their job: info, not warn.
                    tracing::info!(pod = %key, %node, pdb = pdb.as_deref().unwrap_or("unknown"), %message, "eviction blocked by PodDisruptionBudget");
                    self.emit(Progress::PodBlocked {
                        node: node.into(),
                        pod: key.to_string(),
                        pdb,
                        message,
                    });
                    delay
                }
                Next::Retry { delay, reason } => {
                    tracing::warn!(pod = %key, %node, %reason, "eviction failed; retrying");
                    delay
                }
                Next::Fail(reason) => {
                    tracing::error!(pod = %key, %node, %reason, "pod cannot be evicted");
                    self.emit(Progress::PodFailed {
                        node: node.into(),
                        pod: key.to_string(),
                        reason: reason.clone(),
                    });
                    return Gone::Never(reason);
                }
            };
            self.back_off(pod, wait).await;
        }
    }

    fn evicted(&self, node: &str, key: &PodKey) {
        self.emit(Progress::PodEvicted {
            node: node.into(),
            pod: key.to_string(),
        });
    }

    /// Sleeps `wait`, or less when the pod's budget allows disruptions again.
    async fn back_off(&self, pod: &Pod, wait: Duration) {
        match self.budgets.waker_for(pod) {
            Some((_, budget)) => {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {},
                    () = budget.notified() => {},
                }
            }
            None => tokio::time::sleep(wait).await,
        }
    }

    /// Waits until another node has room for the pod's replacement, or `limit` passes.
    async fn wait_for_room(&self, node: &str, key: &PodKey, pod: &Pod, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut logged = false;
        loop {
            match self.room.claim(&self.client, pod).await {
                Ok(Some(target)) => {
                    tracing::debug!(pod = %key, %node, %target, "room for the replacement");
                    return;
                }
                Ok(None) if !logged => {
                    tracing::info!(pod = %key, %node, "waiting for replacement capacity before evicting");
                    logged = true;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(pod = %key, error = %e, "checking replacement capacity failed")
                }
            }
            if Instant::now() > deadline {
                tracing::warn!(pod = %key, %node, "no room for a replacement within --replacement-timeout; evicting anyway");
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
