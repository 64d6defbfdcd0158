//! Draining nodes: every pod goes through a bounded queue of evictions, problem pods
//! are deleted quickly, and a node is done when none of the pods it held at the start
//! (by UID) is still on it.
//!
//! Concurrency: a global semaphore bounds evictions in flight across the whole run,
//! a per-node one bounds them per node. A pod refused by a PodDisruptionBudget backs
//! off exponentially with jitter (1 s doubling to 30 s, or the server's
//! `retryAfterSeconds` when longer), but is woken as soon as a watch shows its
//! budget allowing disruptions again: one waiter per allowed disruption, so a
//! Deployment with maxUnavailable 1 moves as fast as its replacements become Ready,
//! without a herd of doomed retries. Every wait ends at the node's deadline or on shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use rand::Rng;
use serde::Serialize;
use steward_kube::eviction::{self, Outcome};
use steward_runtime::Shutdown;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::plan::{self, NodeState, STATE_ANNOTATION};

/// Field manager of every write the drain makes.
pub const FIELD_MANAGER: &str = "steward-node-drain";

/// Limits of one run.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Evictions in flight per node.
    pub per_node: usize,
    /// Evictions in flight overall.
    pub overall: usize,
    /// How long one node may take.
    pub node_timeout: Duration,
    /// Grace period for deleting problem pods (at least 1 s).
    pub problem_grace: u32,
    /// With `--wait-for-replacements`: how long a Deployment's pod waits for room
    /// for its replacement before it is evicted anyway.
    pub wait_for_replacements: Option<Duration>,
}

/// What happened, for logs, the live display and Slack.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// A node's drain began with this many pods to move.
    NodeStarted { node: String, pods: usize },
    /// A pod was evicted (or was already gone).
    PodEvicted { node: String, pod: String },
    /// A problem pod was deleted.
    PodDeleted {
        node: String,
        pod: String,
        reason: String,
    },
    /// A budget refused a pod's eviction; it will be retried.
    PodBlocked {
        node: String,
        pod: String,
        pdb: Option<String>,
        message: String,
    },
    /// A pod cannot be evicted at all.
    PodFailed {
        node: String,
        pod: String,
        reason: String,
    },
    /// Pods still on the node.
    Remaining { node: String, pods: usize },
}

/// How one node's drain ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum NodeOutcome {
    /// No workload pod of the start is left.
    Drained { seconds: u64 },
    /// The deadline passed with pods left.
    TimedOut { remaining: Vec<String> },
    /// Shutdown was asked for before the node was done.
    Interrupted { remaining: Vec<String> },
    /// An API call failed.
    Failed { reason: String },
}

/// Runs drains.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // kube::Client has no Debug
pub struct Engine {
    client: Client,
    cfg: EngineConfig,
    overall: Arc<Semaphore>,
    progress: mpsc::UnboundedSender<Progress>,
    shutdown: Shutdown,
    budgets: Arc<Budgets>,
    room: Arc<crate::replacements::Room>,
}

/// PodDisruptionBudgets as a watch sees them, and a wake-up per budget for the pods
/// it blocks.
struct Budgets {
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
    fn start(client: Client) -> Arc<Self> {
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
    fn waker_for(&self, pod: &Pod) -> Option<(String, Arc<Notify>)> {
        let ns = pod.namespace();
        let pdb = self.store.state().into_iter().find(|b| {
            b.namespace() == ns
                && plan::selects(b.spec.as_ref().and_then(|s| s.selector.as_ref()), pod)
        })?;
        let mut wakers = self.wakers.lock().ok()?;
        let key = key_of(&pdb);
        let notify = wakers.entry(key.clone()).or_default().clone();
        Some((key, notify))
    }
}

fn key_of(pdb: &PodDisruptionBudget) -> String {
    format!("{}/{}", pdb.namespace().unwrap_or_default(), pdb.name_any())
}

/// A pod being moved: namespace/name and the UID it had when the drain began.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PodKey {
    ns: String,
    name: String,
    uid: String,
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ns, self.name)
    }
}

impl Engine {
    /// An engine; progress events go to `progress`.
    pub fn new(
        client: Client,
        cfg: EngineConfig,
        progress: mpsc::UnboundedSender<Progress>,
        shutdown: Shutdown,
    ) -> Self {
        let overall = Arc::new(Semaphore::new(cfg.overall.max(1)));
        let budgets = Budgets::start(client.clone());
        Self {
            client,
            cfg,
            overall,
            progress,
            shutdown,
            budgets,
            room: Arc::default(),
        }
    }

    /// Drains one cordoned node.
    pub async fn drain_node(&self, node: &str) -> NodeOutcome {
        let started = Instant::now();
        let nodes: Api<Node> = Api::all(self.client.clone());
        if let Err(e) = record_state(&nodes, node, Some(NodeState::Draining)).await {
            return NodeOutcome::Failed {
                reason: format!("annotating node {node}: {e}"),
            };
        }
        let node_obj = match nodes.get(node).await {
            Ok(n) => n,
            Err(e) => {
                return NodeOutcome::Failed {
                    reason: format!("reading node {node}: {e}"),
                };
            }
        };
        let node_not_ready = !steward_kube::node::is_ready(&node_obj);
        let all: Api<Pod> = Api::all(self.client.clone());
        let on_node = match steward_kube::list::list_all_map(
            &all,
            &ListParams::default().fields(&format!("spec.nodeName={node}")),
            plan::slim,
        )
        .await
        {
            Ok(l) => l,
            Err(e) => {
                return NodeOutcome::Failed {
                    reason: format!("listing pods on {node}: {e}"),
                };
            }
        };
        let targets: Vec<(PodKey, Pod)> = on_node
            .into_iter()
            .filter(plan::is_workload)
            .map(|p| {
                (
                    PodKey {
                        ns: p.namespace().unwrap_or_default(),
                        name: p.name_any(),
                        uid: p.uid().unwrap_or_default(),
                    },
                    p,
                )
            })
            .collect();
        self.emit(Progress::NodeStarted {
            node: node.into(),
            pods: targets.len(),
        });

        let per_node = Arc::new(Semaphore::new(self.cfg.per_node.max(1)));
        let stop = self.shutdown.token().child_token();
        let mut tasks = tokio::task::JoinSet::new();
        // Pods that can never be evicted, so the wait ends without running out the clock.
        let (unevictable, failures) = tokio::sync::mpsc::unbounded_channel();
        for (key, pod) in &targets {
            let (this, key, pod, per_node, stop, node, unevictable) = (
                self.clone(),
                key.clone(),
                pod.clone(),
                per_node.clone(),
                stop.clone(),
                node.to_string(),
                unevictable.clone(),
            );
            tasks.spawn(async move {
                tokio::select! {
                    failed = this.remove_pod(&node, &key, &pod, node_not_ready, &per_node) => {
                        if let Some(reason) = failed {
                            let _ = unevictable.send((key.to_string(), reason));
                        }
                    },
                    () = stop.cancelled() => {},
                }
            });
        }
        let keys: Vec<PodKey> = targets.into_iter().map(|(k, _)| k).collect();
        let deadline = tokio::time::Instant::now() + self.cfg.node_timeout;
        let waited = self.wait_empty(node, &keys, deadline, failures).await;
        if matches!(waited, Wait::Empty) {
            // Every pod is gone, but the watch can see a pod go before its task has
            // read the answer to its deletion: let the tasks report (log, progress)
            // rather than cut them off.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
        }
        stop.cancel();
        while tasks.join_next().await.is_some() {}
        match waited {
            Wait::Empty => {
                if let Err(e) = record_state(&nodes, node, Some(NodeState::Drained)).await {
                    return NodeOutcome::Failed {
                        reason: format!("annotating node {node}: {e}"),
                    };
                }
                NodeOutcome::Drained {
                    seconds: started.elapsed().as_secs(),
                }
            }
            Wait::Deadline(left) => NodeOutcome::TimedOut { remaining: left },
            Wait::Shutdown(left) => NodeOutcome::Interrupted { remaining: left },
            Wait::Error(reason) => NodeOutcome::Failed { reason },
            Wait::Unevictable(pods) => NodeOutcome::Failed {
                reason: pods
                    .iter()
                    .map(|(pod, why)| format!("{pod} cannot be evicted: {why}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        }
    }

    /// Evicts (or, for a problem pod, deletes) one pod until it is on its way out.
    /// Returns why, when the pod can never be evicted (more than one PDB, RBAC).
    async fn remove_pod(
        &self,
        node: &str,
        key: &PodKey,
        pod: &Pod,
        node_not_ready: bool,
        per_node: &Semaphore,
    ) -> Option<String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.ns);
        let statefulset = pod
            .owner_references()
            .iter()
            .any(|o| o.kind == "StatefulSet" && o.controller == Some(true));
        if let Some(reason) = problem(pod, node_not_ready)
            && (!statefulset || node_not_ready)
        {
            let outcome = eviction::delete(&api, &key.name, &key.uid, self.cfg.problem_grace).await;
            tracing::info!(pod = %key, %node, %reason, outcome = outcome.label(), "deleted problem pod");
            self.emit(Progress::PodDeleted {
                node: node.into(),
                pod: key.to_string(),
                reason,
            });
            return None;
        }
        let owned_by_replicaset = pod
            .owner_references()
            .iter()
            .any(|o| o.kind == "ReplicaSet" && o.controller == Some(true));
        if let (Some(limit), true) = (self.cfg.wait_for_replacements, owned_by_replicaset) {
            self.wait_for_room(node, key, pod, limit).await;
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            let outcome = {
                let (Ok(_global), Ok(_local)) =
                    (self.overall.acquire().await, per_node.acquire().await)
                else {
                    return None;
                };
                eviction::evict(&api, &key.name, &key.uid, None).await
            };
            let wait = match outcome {
                Outcome::Evicted | Outcome::Gone => {
                    tracing::info!(pod = %key, %node, "evicted");
                    self.emit(Progress::PodEvicted {
                        node: node.into(),
                        pod: key.to_string(),
                    });
                    return None;
                }
                Outcome::NamespaceTerminating => {
                    let grace = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                        .and_then(|g| u32::try_from(g).ok())
                        .unwrap_or(30);
                    let outcome = eviction::delete(&api, &key.name, &key.uid, grace).await;
                    tracing::info!(pod = %key, %node, outcome = outcome.label(), "namespace terminating; deleted pod directly");
                    self.emit(Progress::PodEvicted {
                        node: node.into(),
                        pod: key.to_string(),
                    });
                    return None;
                }
                Outcome::Blocked {
                    retry_after,
                    message,
                } => {
                    let pdb = self.budgets.waker_for(pod).map(|(k, _)| k);
                    // Routine while budgets do their job: info, not warn.
                    tracing::info!(pod = %key, %node, pdb = pdb.as_deref().unwrap_or("unknown"), %message, "eviction blocked by PodDisruptionBudget");
                    self.emit(Progress::PodBlocked {
                        node: node.into(),
                        pod: key.to_string(),
                        pdb,
                        message,
                    });
                    retry_after.unwrap_or_default().max(jitter(backoff))
                }
                Outcome::Transient(reason) => {
                    tracing::warn!(pod = %key, %node, %reason, "eviction failed; retrying");
                    jitter(backoff)
                }
                Outcome::MultiplePdbs(reason) | Outcome::Fatal(reason) => {
                    tracing::error!(pod = %key, %node, %reason, "pod cannot be evicted");
                    self.emit(Progress::PodFailed {
                        node: node.into(),
                        pod: key.to_string(),
                        reason: reason.clone(),
                    });
                    return Some(reason);
                }
            };
            match self.budgets.waker_for(pod) {
                Some((_, budget)) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {},
                        () = budget.notified() => {},
                    }
                }
                None => tokio::time::sleep(wait).await,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
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

    /// Watches the node's pods until none of `keys` (by UID) is left on it, or all
    /// that are left were reported on `failures` as impossible to evict.
    async fn wait_empty(
        &self,
        node: &str,
        keys: &[PodKey],
        deadline: tokio::time::Instant,
        mut failures: tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    ) -> Wait {
        let mut unevictable = BTreeMap::new();
        // Names and UIDs are all the wait reads: watch metadata only.
        let all: Api<PartialObjectMeta<Pod>> = Api::all(self.client.clone());
        let (reader, writer) = reflector::store();
        let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let events = reflector(writer, watcher(all, cfg));
        let mut events = std::pin::pin!(events);
        let mut last = usize::MAX;
        let mut synced = false;
        loop {
            let present: BTreeMap<(String, String), String> = reader
                .state()
                .iter()
                .map(|p| {
                    (
                        (p.namespace().unwrap_or_default(), p.name_any()),
                        p.uid().unwrap_or_default(),
                    )
                })
                .collect();
            // A same-name pod with another UID (a StatefulSet replacement) is not ours.
            let left: Vec<String> = keys
                .iter()
                .filter(|k| present.get(&(k.ns.clone(), k.name.clone())) == Some(&k.uid))
                .map(ToString::to_string)
                .collect();
            if left.is_empty() && synced {
                return Wait::Empty;
            }
            if synced && left.iter().all(|k| unevictable.contains_key(k)) {
                return Wait::Unevictable(unevictable);
            }
            if left.len() != last && synced {
                last = left.len();
                self.emit(Progress::Remaining {
                    node: node.into(),
                    pods: left.len(),
                });
            }
            tokio::select! {
                ev = events.try_next() => match ev {
                    Ok(Some(watcher::Event::InitDone)) => synced = true,
                    Ok(Some(_)) => {}
                    Ok(None) => return Wait::Error("pod watch ended".into()),
                    Err(e) => tracing::warn!(%node, error = %e, "pod watch error; retrying"),
                },
                Some((pod, why)) = failures.recv() => {
                    unevictable.insert(pod, why);
                }
                () = tokio::time::sleep_until(deadline) => return Wait::Deadline(left),
                () = self.shutdown.signaled() => return Wait::Shutdown(left),
            }
        }
    }

    fn emit(&self, p: Progress) {
        let _ = self.progress.send(p);
    }
}

/// Records the node's drain state on it (`None` removes the record).
pub(crate) async fn record_state(
    nodes: &Api<Node>,
    node: &str,
    state: Option<NodeState>,
) -> kube::Result<Node> {
    steward_kube::node::annotate(
        nodes,
        node,
        &[(STATE_ANNOTATION, state.map(NodeState::as_str))],
        FIELD_MANAGER,
    )
    .await
}

enum Wait {
    Empty,
    Deadline(Vec<String>),
    Shutdown(Vec<String>),
    Error(String),
    /// Every pod left can never be evicted (pod -> why).
    Unevictable(BTreeMap<String, String>),
}

/// Why a pod counts as a problem pod that is deleted instead of evicted, if it is.
pub fn problem(p: &Pod, node_not_ready: bool) -> Option<String> {
    let status = p.status.as_ref()?;
    let phase = status.phase.as_deref().unwrap_or("Unknown");
    if matches!(phase, "Failed" | "Succeeded" | "Unknown" | "Pending") {
        return Some(phase.to_string());
    }
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    for reason in waiting {
        if matches!(
            reason.as_str(),
            "CrashLoopBackOff"
                | "ImagePullBackOff"
                | "ErrImagePull"
                | "CreateContainerConfigError"
                | "InvalidImageName"
        ) {
            return Some(reason);
        }
    }
    node_not_ready.then(|| "NodeNotReady".to_string())
}

/// Full jitter in [d/2, d].
fn jitter(d: Duration) -> Duration {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(2);
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({ "metadata": { "name": "p" }, "status": status }))
            .unwrap()
    }

    #[test]
    fn problem_pods() {
        let waiting = |r: &str| {
            pod(
                serde_json::json!({ "phase": "Running", "containerStatuses": [{ "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 3, "state": { "waiting": { "reason": r } } }] }),
            )
        };
        assert_eq!(
            problem(&pod(serde_json::json!({ "phase": "Running" })), false),
            None
        );
        assert_eq!(
            problem(&pod(serde_json::json!({ "phase": "Running" })), true).as_deref(),
            Some("NodeNotReady")
        );
        for phase in ["Pending", "Failed", "Unknown", "Succeeded"] {
            assert_eq!(
                problem(&pod(serde_json::json!({ "phase": phase })), false).as_deref(),
                Some(phase)
            );
        }
        for reason in ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"] {
            assert_eq!(problem(&waiting(reason), false).as_deref(), Some(reason));
        }
        assert_eq!(problem(&waiting("ContainerCreating"), false), None);
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(4));
            assert!(
                j >= Duration::from_secs(2) && j <= Duration::from_secs(4),
                "{j:?}"
            );
        }
    }
}
