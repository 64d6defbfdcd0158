//! The drain controller (leader only): for every pod carrying `steward.io/drain`,
//! one reconcile step at a time, GET → decide (pure, in `state`) → PATCH:
//!
//! 1. `requested`: a server-side dry-run eviction asks the PodDisruptionBudgets
//!    first; refused → the request is dropped (Event, back-off). Allowed → the
//!    labels that put the pod behind its Services are removed (remembered in an
//!    annotation), so the EndpointSlice controller drops it and its ReplicaSet,
//!    which no longer selects it, starts a replacement at once.
//! 2. `isolated`: wait (minimum, fixed delay, HTTP probe, maximum).
//! 3. `evicting`: the real eviction through the Eviction API, UID precondition and
//!    the caller's grace period. Refused → labels restored, back-off, Event.
//!
//! A restart at any point resumes from the pod's own record.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams, Preconditions,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use steward_kube::eviction::{self, Outcome};
use tokio::sync::watch;

use crate::config::{Config, PodRef};
use crate::error::{Error, Result, kube as kerr};
use crate::events::{CONTROLLER, Events, Reason};
use crate::messages::Msg;
use crate::metrics::Metrics;
use crate::probe;
use crate::state::{self, EvictReason, Phase, Record, Wait};

/// What every reconcile shares.
#[allow(missing_debug_implementations)] // kube::Client has no Debug
pub struct Ctx {
    /// Client.
    pub client: Client,
    /// The configuration in force.
    pub config: watch::Receiver<Arc<Config>>,
    /// Metrics.
    pub metrics: Metrics,
    /// Events.
    pub events: Events,
    /// HTTP client for probes.
    pub http: reqwest::Client,
    /// Back-off after a refused eviction.
    pub restore_backoff: Duration,
    /// Pods isolated now (the active-drains gauge).
    pub active: Mutex<HashSet<ObjectRef<Pod>>>,
}

/// Runs the controller until `stop` completes.
pub async fn run(ctx: Arc<Ctx>, stop: impl Future<Output = ()> + Send + Sync + 'static) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().labels(state::LABEL_PHASE);
    Controller::new(pods, cfg)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

fn error_policy(pod: Arc<Pod>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(pod = %key(&pod), %error, kind = error.metric_label(), "drain step failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action> {
    let Some(record) = Record::read(pod.labels(), pod.annotations()) else {
        return Ok(Action::await_change());
    };
    let oref = ObjectRef::from_obj(&*pod);
    if pod.metadata.deletion_timestamp.is_some() {
        ctx.set_active(&oref, false);
        return Ok(Action::await_change());
    }
    match record.phase {
        Phase::Requested => ctx.check_and_isolate(&pod, &record).await,
        Phase::Isolated => {
            ctx.set_active(&oref, true);
            ctx.wait(&pod, &record).await
        }
        Phase::Evicting => ctx.evict(&pod, &record, None).await,
    }
}

impl Ctx {
    fn api(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default())
    }

    fn set_active(&self, oref: &ObjectRef<Pod>, on: bool) {
        if let Ok(mut set) = self.active.lock() {
            if on {
                set.insert(oref.clone());
            } else {
                set.remove(oref);
            }
            self.metrics
                .active
                .set(i64::try_from(set.len()).unwrap_or(i64::MAX));
        }
    }

    async fn patch(&self, pod: &Pod, patch: serde_json::Value, what: &str) -> Result<()> {
        self.api(pod)
            .patch_metadata(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(kerr(format!("{what} {}", key(pod))))?;
        Ok(())
    }

    async fn check_and_isolate(&self, pod: &Pod, record: &Record) -> Result<Action> {
        let uid = pod.uid().unwrap_or_default();
        let params = EvictParams {
            delete_options: Some(DeleteParams {
                dry_run: true,
                grace_period_seconds: record.grace,
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            }),
            post_options: PostParams {
                dry_run: true,
                field_manager: None,
            },
        };
        let outcome = eviction::classify(&self.api(pod).evict(&pod.name_any(), &params).await);
        match outcome {
            Outcome::Evicted => {}
            Outcome::Gone => return Ok(Action::await_change()),
            Outcome::Transient(why) => {
                tracing::warn!(pod = %key(pod), %why, "dry-run eviction failed; retrying");
                return Ok(Action::requeue(Duration::from_secs(2)));
            }
            Outcome::Blocked { message, .. } => {
                tracing::info!(pod = %key(pod), %message, "eviction blocked by PodDisruptionBudget; drain not started");
                self.events
                    .publish(
                        pod,
                        Reason::EvictionBlocked,
                        &Msg::BlockedByPdb { message: &message },
                    )
                    .await;
                self.metrics.outcome("blocked_by_pdb");
                self.restore(pod, record, "blocked_by_pdb").await?;
                return Ok(Action::await_change());
            }
            other => {
                let why = format!("{other:?}");
                tracing::warn!(pod = %key(pod), %why, "dry-run eviction refused; drain not started");
                self.events
                    .publish(pod, Reason::Restored, &Msg::Restored { why: &why })
                    .await;
                self.metrics.outcome(other.label());
                self.restore(pod, record, other.label()).await?;
                return Ok(Action::await_change());
            }
        }
        let services: Api<Service> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let selectors: Vec<_> = services
            .list(&ListParams::default())
            .await
            .map_err(kerr("listing Services"))?
            .items
            .into_iter()
            .filter_map(|s| s.spec.and_then(|s| s.selector))
            .collect();
        let labels = state::service_labels(pod.labels(), &selectors);
        let rv = pod.resource_version().unwrap_or_default();
        let patch = state::isolate_patch(&labels, Timestamp::now(), &rv);
        match self.patch(pod, patch, "isolating").await {
            Err(Error::Kube {
                source: kube::Error::Api(s),
                ..
            }) if s.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(100)));
            }
            other => other?,
        }
        let shown = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        tracing::info!(pod = %key(pod), labels = %shown, "taken out of load balancing; waiting until drained");
        self.events
            .publish(
                pod,
                Reason::DrainStarted,
                &Msg::DrainStarted { labels: shown },
            )
            .await;
        self.set_active(&ObjectRef::from_obj(pod), true);
        Ok(Action::requeue(Duration::from_millis(50)))
    }

    async fn wait(&self, pod: &Pod, record: &Record) -> Result<Action> {
        let config = self.config.borrow().clone();
        let (settings, errors) = config.settings(PodRef {
            namespace: &pod.namespace().unwrap_or_default(),
            workload: record.workload.as_deref(),
            annotations: pod.annotations(),
        });
        for error in errors {
            tracing::warn!(pod = %key(pod), %error, "ignoring an invalid drain annotation");
        }
        let isolated_at = record.isolated_at.unwrap_or_else(Timestamp::now);
        let mut decision = state::decide_wait(isolated_at, Timestamp::now(), &settings, None);
        if decision == Wait::Probe {
            let target = settings.probe.as_ref();
            let reading = match target {
                Some(t) => probe::read_pod(&self.client, &self.http, t, pod).await,
                None => state::Reading::Idle,
            };
            if let state::Reading::Failed(why) = &reading {
                tracing::debug!(pod = %key(pod), %why, "drain probe failed");
            }
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

    async fn evict(
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
        let elapsed = record
            .isolated_at
            .and_then(|t| Duration::try_from(Timestamp::now().duration_since(t)).ok())
            .unwrap_or_default();
        match outcome {
            Outcome::Evicted | Outcome::Gone => {
                tracing::info!(pod = %key(pod), reason = label, seconds = elapsed.as_secs_f64(), "drained; evicted");
                self.metrics.drain_duration.observe(elapsed.as_secs_f64());
                self.metrics.outcome(label);
                let ev = if reason == Some(EvictReason::MaxWait) {
                    Reason::DrainTimedOut
                } else {
                    Reason::Drained
                };
                self.events
                    .publish(
                        pod,
                        ev,
                        &Msg::Drained {
                            reason: label,
                            after: elapsed,
                        },
                    )
                    .await;
                self.set_active(&ObjectRef::from_obj(pod), false);
                Ok(Action::await_change())
            }
            Outcome::Transient(why) => {
                tracing::warn!(pod = %key(pod), %why, "eviction failed; retrying");
                Ok(Action::requeue(Duration::from_secs(2)))
            }
            Outcome::Blocked { message, .. } if message.contains(crate::webhook::WEBHOOK) => {
                // Our own webhook, on a replica that has not seen the `evicting` mark yet.
                tracing::debug!(pod = %key(pod), %message, "final eviction refused by a lagging webhook replica; retrying");
                Ok(Action::requeue(Duration::from_millis(200)))
            }
            Outcome::Blocked { message, .. } => {
                tracing::warn!(pod = %key(pod), %message, "final eviction blocked by PodDisruptionBudget; restoring the pod to service");
                self.events
                    .publish(
                        pod,
                        Reason::EvictionBlocked,
                        &Msg::BlockedByPdb { message: &message },
                    )
                    .await;
                self.metrics.outcome("restored");
                self.restore(pod, record, "blocked_by_pdb").await?;
                Ok(Action::await_change())
            }
            other => {
                let why = format!("{other:?}");
                tracing::warn!(pod = %key(pod), %why, "final eviction refused; restoring the pod to service");
                self.metrics.outcome("restored");
                self.restore(pod, record, other.label()).await?;
                Ok(Action::await_change())
            }
        }
    }

    async fn still_there(&self, pod: &Pod) -> Result<bool> {
        let now = self
            .api(pod)
            .get_metadata_opt(&pod.name_any())
            .await
            .map_err(kerr(format!("reading {}", key(pod))))?;
        Ok(now.is_some_and(|p| p.uid() == pod.uid() && p.metadata.deletion_timestamp.is_none()))
    }

    /// Puts the pod back in service with every trace of the drain removed, and
    /// starts the back-off.
    async fn restore(&self, pod: &Pod, record: &Record, why: &str) -> Result<()> {
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
