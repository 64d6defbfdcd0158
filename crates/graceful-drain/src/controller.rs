//! The drain controller (leader only): for every pod carrying `steward.io/drain`,
//! one reconcile step at a time, GET → decide (pure, in `state`) → PATCH:
//!
//! 1. `requested`: a StatefulSet pod first waits its turn (one at a time, highest
//!    ordinal first). A server-side dry-run eviction asks the PodDisruptionBudgets;
//!    refused → the request is dropped (Event, back-off). Allowed → the labels that
//!    put the pod behind its Services are removed (remembered in an annotation), so
//!    the EndpointSlice controller drops it and its ReplicaSet, which no longer
//!    selects it, starts a replacement at once. StatefulSet and DaemonSet pods keep
//!    the labels their owner selects on; Job pods keep every label (see `workload`).
//! 2. `isolated`: wait (minimum, fixed delay, HTTP probe, maximum; a Job pod until
//!    it has finished or `jobMaxWait`).
//! 3. `evicting`: the real eviction through the Eviction API, UID precondition and
//!    the caller's grace period. Refused → labels restored, back-off, Event.
//!
//! A restart at any point resumes from the pod's own record.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams, Preconditions,
};
use kube::core::Selector;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use steward_kube::eviction::{self, Outcome};
use tokio::sync::watch;

use crate::budget::{self, Hold};
use crate::config::{Config, PodRef};
use crate::error::{Error, Result, kube as kerr};
use crate::events::{CONTROLLER, Events, Reason};
use crate::messages::Msg;
use crate::metrics::Metrics;
use crate::probe;
use crate::state::{self, EvictReason, Phase, Record, Wait};
use crate::workload::{self, Handling};

mod budgets;

/// How often a queued pod looks at its budgets again when nothing wakes it sooner.
const QUEUE_RECHECK: Duration = Duration::from_secs(1);

/// What isolation needs to know of a StatefulSet or DaemonSet owner.
struct Owner {
    kind: &'static str,
    name: String,
    /// Label keys its selector uses (these stay on the pod).
    selector_keys: Vec<String>,
    selector: Option<Selector>,
    /// Wanted replicas (StatefulSet).
    replicas: i32,
}

fn selector_keys(sel: &LabelSelector) -> Vec<String> {
    let labels = sel.match_labels.iter().flat_map(|m| m.keys().cloned());
    let exprs = sel
        .match_expressions
        .iter()
        .flat_map(|e| e.iter().map(|x| x.key.clone()));
    labels.chain(exprs).collect()
}

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
    /// Drains whose failing probe has been reported (one Event per drain).
    pub probe_warned: Mutex<HashSet<ObjectRef<Pod>>>,
    /// Per-namespace isolation locks (see `isolation_lock`).
    pub isolating: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Runs the controller until `stop` completes, on `namespace` only or on all.
pub async fn run(
    ctx: Arc<Ctx>,
    namespace: Option<String>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let pods: Api<Pod> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let pdbs: Api<PodDisruptionBudget> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let cfg = watcher::Config::default().labels(state::LABEL_PHASE);
    let controller = Controller::new(pods, cfg);
    // A budget's status changes when a replacement becomes Ready: wake the pods
    // queued in its namespace at once instead of at their next recheck.
    let store = controller.store();
    controller
        .watches(pdbs, watcher::Config::default(), move |pdb| {
            let ns = pdb.namespace();
            store
                .state()
                .into_iter()
                .filter(|p| p.namespace() == ns)
                .filter(|p| {
                    p.labels().get(state::LABEL_PHASE).map(String::as_str)
                        == Some(state::Phase::Requested.as_str())
                })
                .map(|p| ObjectRef::from_obj(&*p))
                .collect::<Vec<_>>()
        })
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
        if !on && let Ok(mut w) = self.probe_warned.lock() {
            w.remove(oref);
        }
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

    /// The namespace's isolation lock: budget decisions and the isolation they
    /// allow happen one at a time per namespace (budgets are namespaced), so two
    /// concurrent requests under one budget never both see it unspent.
    fn isolation_lock(&self, namespace: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.isolating.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(namespace.to_string()).or_default().clone()
    }

    async fn check_and_isolate(&self, pod: &Pod, record: &Record) -> Result<Action> {
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
                return self.blocked(pod, record, &message, "blocked_by_pdb").await;
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

    fn settings(&self, pod: &Pod, workload: Option<&str>) -> (crate::config::Settings, Vec<Error>) {
        let config = self.config.borrow().clone();
        let workload = workload.or_else(|| {
            pod.annotations()
                .get(state::ANN_WORKLOAD)
                .map(String::as_str)
        });
        config.settings(PodRef {
            namespace: &pod.namespace().unwrap_or_default(),
            workload,
            annotations: pod.annotations(),
        })
    }

    async fn wait(&self, pod: &Pod, record: &Record) -> Result<Action> {
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
            let target = settings.probe.as_ref();
            let reading = match target {
                Some(t) => probe::read_pod(&self.client, &self.http, t, pod).await,
                None => state::Reading::Idle,
            };
            if let state::Reading::Failed(why) = &reading {
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
                self.blocked(pod, record, &message, "restored").await
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

    /// A PodDisruptionBudget refused the eviction (dry run or final): Event, the
    /// outcome counted as `outcome`, the pod put back in service with a back-off.
    async fn blocked(
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
