//! Draining one node: every pod goes through a bounded queue of evictions, problem pods
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
//!
//! - this file: one node from start to outcome;
//! - [`evict`](self::evict): one pod (delete, or evict with back-off);
//! - [`budgets`](self::budgets): the PodDisruptionBudget watch that wakes blocked pods;
//! - [`wait`](self::wait): the watch that says when the node is empty;
//! - [`room`]: room for replacements (`--wait-for-replacements`);
//! - [`surge`](self::surge): make-before-break through the Deployment's rollout.
//!
//! The decisions are pure, in [`crate::core::removal`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams};
use steward_runtime::Shutdown;
use tokio::sync::{Semaphore, mpsc};

use self::budgets::Budgets;
use self::wait::Wait;
use crate::core::batch::{NodeState, STATE_ANNOTATION};
use crate::core::pods::{is_workload, slim};
use crate::core::removal::PodKey;
use crate::core::report::{NodeOutcome, Progress};
use crate::events::Events;

mod budgets;
mod evict;
pub mod room;
mod surge;
mod wait;

/// Field manager of every write the drain makes.
pub const FIELD_MANAGER: &str = crate::events::CONTROLLER;

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
    /// Make-before-break for a Deployment an eviction would leave with no ready
    /// pod (off with `--no-surge`).
    pub surge: bool,
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
    room: Arc<room::Room>,
    events: Events,
    /// Deployments this run restarted (`namespace/name`): once each.
    restarted: Arc<tokio::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl Engine {
    /// An engine; progress events go to `progress`, Kubernetes Events on the
    /// nodes through `events`.
    pub fn new(
        client: Client,
        cfg: EngineConfig,
        progress: mpsc::UnboundedSender<Progress>,
        shutdown: Shutdown,
        events: Events,
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
            events,
            restarted: Arc::default(),
        }
    }

    /// Drains one cordoned node, recording its start and end as Events on it.
    pub async fn drain_node(&self, node: &str) -> NodeOutcome {
        let (outcome, uid, removed) = self.drain_node_inner(node).await;
        let uid = uid.as_deref();
        self.events
            .ended(node, uid, &outcome, removed.evicted, removed.deleted)
            .await;
        outcome
    }

    /// [`Self::drain_node`] without its end's Event: the outcome, the node's UID
    /// when it was read, and the pods removed.
    async fn drain_node_inner(&self, node: &str) -> (NodeOutcome, Option<String>, Counts) {
        let started = Instant::now();
        let nodes: Api<Node> = Api::all(self.client.clone());
        let (node_obj, targets) = match self.begin(&nodes, node).await {
            Ok(t) => t,
            Err(reason) => return (NodeOutcome::Failed { reason }, None, Counts::default()),
        };
        // Started first: the node is marked draining, so a shutdown from here on
        // leaves it for the next run, never rolls it back.
        self.emit(Progress::NodeStarted {
            node: node.into(),
            pods: targets.len(),
        });
        let uid = node_obj.metadata.uid.clone();
        self.events
            .started(node, uid.as_deref(), targets.len())
            .await;
        let ready = steward_kube::node::is_ready(&node_obj);
        let (waited, removed) = self.remove_all(node, uid.as_deref(), targets, !ready).await;
        let outcome = match waited {
            Wait::Empty => match record_state(&nodes, node, Some(NodeState::Drained)).await {
                Err(e) => NodeOutcome::Failed {
                    reason: format!("annotating node {node}: {e}"),
                },
                Ok(_) => NodeOutcome::Drained {
                    seconds: started.elapsed().as_secs(),
                },
            },
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
        };
        (outcome, uid, removed.get())
    }

    /// Marks the node draining and reads it and its workload pods: the node, and
    /// the pods to move by their UID at the start.
    async fn begin(
        &self,
        nodes: &Api<Node>,
        node: &str,
    ) -> Result<(Node, Vec<(PodKey, Pod)>), String> {
        record_state(nodes, node, Some(NodeState::Draining))
            .await
            .map_err(|e| format!("annotating node {node}: {e}"))?;
        let node_obj = nodes
            .get(node)
            .await
            .map_err(|e| format!("reading node {node}: {e}"))?;
        let all: Api<Pod> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let on_node = steward_kube::list::list_all_map(&all, &lp, slim)
            .await
            .map_err(|e| format!("listing pods on {node}: {e}"))?;
        let targets = on_node
            .into_iter()
            .filter(is_workload)
            .map(|p| (PodKey::of(&p), p))
            .collect();
        Ok((node_obj, targets))
    }

    /// Removes every pod (one task each, all ended by the node's deadline or on
    /// shutdown) and waits until the node is empty.
    async fn remove_all(
        &self,
        node: &str,
        uid: Option<&str>,
        targets: Vec<(PodKey, Pod)>,
        node_not_ready: bool,
    ) -> (Wait, Arc<Removed>) {
        let removed = Arc::new(Removed::default());
        let per_node = Arc::new(Semaphore::new(self.cfg.per_node.max(1)));
        let stop = self.shutdown.token().child_token();
        let mut tasks = tokio::task::JoinSet::new();
        // Pods that can never be evicted, so the wait ends without running out the clock.
        let (unevictable, failures) = mpsc::unbounded_channel();
        for (key, pod) in &targets {
            let uid = uid.map(str::to_string);
            let (this, key, pod, per_node, stop, node, unevictable, removed) = (
                self.clone(),
                key.clone(),
                pod.clone(),
                per_node.clone(),
                stop.clone(),
                node.to_string(),
                unevictable.clone(),
                removed.clone(),
            );
            tasks.spawn(async move {
                tokio::select! {
                    gone = this.remove_pod((&node, uid.as_deref()), &key, &pod, node_not_ready, &per_node) => {
                        if let Some(reason) = removed.count(gone) {
                            // The wait is over (and the receiver gone) only once it
                            // no longer needs to know.
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
        (waited, removed)
    }

    fn emit(&self, p: Progress) {
        let _ = self.progress.send(p);
    }
}

/// How one pod's removal ended ([`Engine::remove_pod`]).
#[derive(Debug)]
pub(crate) enum Gone {
    /// Evicted through the Eviction API (or already gone).
    Evicted,
    /// Deleted: a problem pod, or one of a terminating namespace.
    Deleted,
    /// The run stopped first.
    Stopped,
    /// It can never be evicted, and why.
    Never(String),
}

/// The pods one node's drain removed, counted by its pods' tasks.
#[derive(Debug, Default)]
struct Removed {
    evicted: AtomicUsize,
    deleted: AtomicUsize,
}

/// [`Removed`] read once the tasks are done.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    evicted: usize,
    deleted: usize,
}

impl Removed {
    /// Counts `gone`; why, when the pod can never be evicted.
    fn count(&self, gone: Gone) -> Option<String> {
        match gone {
            Gone::Evicted => self.evicted.fetch_add(1, Ordering::Relaxed),
            Gone::Deleted => self.deleted.fetch_add(1, Ordering::Relaxed),
            Gone::Stopped => return None,
            Gone::Never(reason) => return Some(reason),
        };
        None
    }

    fn get(&self) -> Counts {
        Counts {
            evicted: self.evicted.load(Ordering::Relaxed),
            deleted: self.deleted.load(Ordering::Relaxed),
        }
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
