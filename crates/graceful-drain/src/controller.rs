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
//! A restart at any point resumes from the pod's own record. What each eviction
//! answer leads to is `crate::core::next` (pure); the steps live in `isolate`
//! (requested → isolated) and `evict` (isolated → evicting → gone), the budgets
//! they read in `budgets`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::core::config::{Config, PodRef, Settings};
use crate::core::next;
use crate::core::state::{self, Phase, Record};
use crate::error::{Error, Result, kube as kerr};
use crate::events::Events;
use crate::metrics::Metrics;

mod budgets;
mod evict;
mod isolate;

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

/// A failed step is counted by kind (`steward_graceful_drain_reconcile_errors_total`)
/// and retried.
fn error_policy(pod: Arc<Pod>, error: &Error, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(pod = %key(&pod), %error, kind = error.metric_label(), "drain step failed; retrying");
    ctx.metrics.reconcile_error(error.metric_label());
    Action::requeue(next::RETRY)
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

    /// The namespace's isolation lock: budget decisions and the isolation they
    /// allow happen one at a time per namespace (budgets are namespaced), so two
    /// concurrent requests under one budget never both see it unspent.
    fn isolation_lock(&self, namespace: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.isolating.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(namespace.to_string()).or_default().clone()
    }

    fn settings(&self, pod: &Pod, workload: Option<&str>) -> (Settings, Vec<Error>) {
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
}
