//! PodDisruptionBudgets as a watch sees them, and a wake-up per budget for the
//! pods it blocks: when a budget's status allows disruptions again, as many
//! waiters as it allows are woken at once instead of waiting out their back-off.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::Notify;

use crate::core::pods::selects;

/// PodDisruptionBudgets as a watch sees them, and a wake-up per budget for the pods
/// it blocks.
pub(super) struct Budgets {
    store: reflector::Store<PodDisruptionBudget>,
    wakers: std::sync::Mutex<BTreeMap<String, Arc<Notify>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Budgets {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Budgets {
    pub(super) fn start(client: Client) -> Arc<Self> {
        let (store, writer) = reflector::store();
        let api: Api<PodDisruptionBudget> = Api::all(client);
        Arc::new_cyclic(|weak: &std::sync::Weak<Self>| {
            let weak = weak.clone();
            let task = tokio::spawn(async move {
                let stream =
                    reflector(writer, watcher(api, watcher::Config::default())).applied_objects();
                let mut stream = std::pin::pin!(stream);
                loop {
                    match stream.try_next().await {
                        Ok(Some(pdb)) => {
                            let allowed = pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed);
                            let Some(this) = weak.upgrade() else { return };
                            if let Some(n) = this.existing_waker(&key_of(&pdb)) {
                                for _ in 0..allowed.clamp(0, 1000) {
                                    n.notify_one();
                                }
                            }
                        }
                        Ok(None) => return,
                        Err(e) => {
                            tracing::debug!(error = %e, "PodDisruptionBudget watch error; retrying")
                        }
                    }
                }
            });
            Self {
                store,
                wakers: std::sync::Mutex::new(BTreeMap::new()),
                task,
            }
        })
    }

    fn existing_waker(&self, key: &str) -> Option<Arc<Notify>> {
        self.wakers.lock().ok()?.get(key).cloned()
    }

    /// The first budget selecting this pod (`namespace/name`) and its wake-up, if the
    /// watch knows one.
    pub(super) fn waker_for(&self, pod: &Pod) -> Option<(String, Arc<Notify>)> {
        let pdb = self.budget_for(pod)?;
        let mut wakers = self.wakers.lock().ok()?;
        let key = key_of(&pdb);
        let notify = wakers.entry(key.clone()).or_default().clone();
        Some((key, notify))
    }
}

impl Budgets {
    /// `status.disruptionsAllowed` of the first budget selecting this pod, if the
    /// watch knows one.
    pub(super) fn allowed_for(&self, pod: &Pod) -> Option<i32> {
        self.budget_for(pod)
            .map(|b| b.status.as_ref().map_or(0, |s| s.disruptions_allowed))
    }

    /// The first budget selecting this pod, as the watch knows it.
    fn budget_for(&self, pod: &Pod) -> Option<Arc<PodDisruptionBudget>> {
        let ns = pod.namespace();
        self.store.state().into_iter().find(|b| {
            b.namespace() == ns && selects(b.spec.as_ref().and_then(|s| s.selector.as_ref()), pod)
        })
    }
}

fn key_of(pdb: &PodDisruptionBudget) -> String {
    format!("{}/{}", pdb.namespace().unwrap_or_default(), pdb.name_any())
}
