//! The scaler's shared state: the worker index (fed by the backend's events), live
//! tasks and runs, and the operations behind the gRPC methods. Restart safety lives
//! here too: [`Scaler::recover`] at start-up and [`Scaler::sweep`] on a timer.
//!
//! - this file: the state and the event pump that keeps the worker index;
//! - [`runs`](self::runs): `ExecutePipeline`, `WatchPipeline`, `CancelPipeline`;
//! - [`tasks`](self::tasks): `ScaleUp` and `ScaleDown`;
//! - [`recovery`](self::recovery): start-up recovery, the orphan sweep, retention;
//! - [`decide`]: the pure parts of those, table-tested.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, WorkerEvent};
use crate::core::config::Config;
use crate::core::room::CapacityCheck;
use crate::core::teams::{Caller, Quota};
use crate::core::worker::{Group, Phase, WorkerObs};
use crate::deps::RunDeps;
use crate::error::{Error, Result};
use crate::executor::RunMsg;
use crate::logs::LogHub;
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::slots::{Permit, Slots};

pub mod decide;
mod history;
mod recovery;
mod runs;
mod tasks;
#[cfg(test)]
mod tests;

/// Knobs of the scaler.
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrency cap on workers.
    pub max_workers: u32,
    /// Default termination grace period of a deleted worker.
    pub grace: Duration,
    /// How long a finished run's progress, logs and record are kept.
    pub retention: Duration,
    /// Lines kept per run or task log buffer.
    pub log_lines: usize,
    /// Workers no node has room for now: wait for capacity or refuse the request.
    pub capacity: CapacityCheck,
    /// Webhooks on run end and stage failure.
    pub notify: crate::notify::Notifier,
    /// Each team's quota (teams not named have none).
    pub quotas: BTreeMap<String, Quota>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_workers: 100,
            grace: Duration::from_secs(10),
            retention: Duration::from_secs(3600),
            log_lines: 10_000,
            capacity: CapacityCheck::Wait,
            notify: crate::notify::Notifier::default(),
            quotas: BTreeMap::new(),
        }
    }
}

#[derive(Debug)]
struct RunEntry {
    /// The owning team.
    team: String,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    /// The live driver's inbox; `None` once the run has ended.
    tx: Option<mpsc::UnboundedSender<RunMsg>>,
}

/// The scaler.
#[derive(Debug)]
pub struct Scaler {
    deps: RunDeps,
    config: Config,
    opts: Options,
    runs: Mutex<HashMap<String, RunEntry>>,
    /// Live tasks and their teams.
    tasks: Mutex<HashMap<String, String>>,
    workers: Mutex<BTreeMap<String, WorkerObs>>,
    task_permits: Mutex<HashMap<String, Permit>>,
    healthy: watch::Sender<bool>,
    /// Stops every run's driver and history writer where they are (see [`Scaler::halt`]).
    halted: CancellationToken,
}

/// `PERMISSION_DENIED` when `owner` (the team holding `kind` `id`, if anyone does)
/// is not one `caller` may act for.
pub(crate) fn refuse(
    caller: &Caller,
    kind: &'static str,
    id: &str,
    owner: Option<&str>,
) -> Result<()> {
    match owner {
        Some(team) if !caller.may(team) => Err(Error::PermissionDenied {
            kind,
            id: id.into(),
            team: caller.team.clone(),
        }),
        _ => Ok(()),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Scaler {
    /// A scaler on `backend`; call [`start`](Self::start) next.
    pub fn new(
        backend: Arc<dyn Backend>,
        config: Config,
        opts: Options,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            deps: RunDeps {
                backend,
                slots: Slots::with_gauge(
                    opts.max_workers,
                    opts.quotas.clone(),
                    metrics.queued.clone(),
                    metrics.queue_depth.clone(),
                ),
                logs: LogHub::counted(opts.log_lines, metrics.log_lines.clone()),
                metrics,
                grace: opts.grace,
                capacity: opts.capacity,
                notify: opts.notify.clone(),
            },
            config,
            opts,
            runs: Mutex::default(),
            tasks: Mutex::default(),
            workers: Mutex::default(),
            task_permits: Mutex::default(),
            healthy: watch::channel(false).0,
            halted: CancellationToken::new(),
        })
    }

    /// Whether the backend's watch works (for health).
    pub fn health(&self) -> watch::Receiver<bool> {
        self.healthy.subscribe()
    }

    /// The cap, slots in use, and stages queued for one.
    pub fn usage(&self) -> (u32, u32, u32) {
        self.deps.slots.usage()
    }

    /// Workers each team holds now.
    pub fn team_workers(&self) -> BTreeMap<String, u32> {
        self.deps.slots.team_workers()
    }

    /// Stops acting on the cluster: every run's driver and history writer stops
    /// where it is, deleting nothing and recording no end, as a crash would leave
    /// it; the next leader continues the runs. Called before the Lease is released.
    pub fn halt(&self) {
        self.halted.cancel();
    }

    /// The metrics (the gRPC server times its calls into them).
    pub fn metrics(&self) -> &Metrics {
        &self.deps.metrics
    }

    /// Every run's and task's log buffer.
    pub fn logs(&self) -> &LogHub {
        &self.deps.logs
    }

    /// Recovers from a previous process, starts the backend's watch and the event pump.
    pub async fn start(self: &Arc<Self>, shutdown: CancellationToken) -> Result<()> {
        self.recover().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.deps
            .backend
            .start(tx, self.deps.logs.clone(), shutdown.clone());
        tokio::spawn(self.clone().pump(rx, shutdown));
        Ok(())
    }

    async fn pump(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<WorkerEvent>,
        shutdown: CancellationToken,
    ) {
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                () = shutdown.cancelled() => None,
            };
            let Some(ev) = ev else { return };
            self.index(ev);
            self.deps
                .metrics
                .workers(&decide::worker_counts(lock(&self.workers).values()));
        }
    }

    /// Applies one backend event to the worker index.
    fn index(&self, ev: WorkerEvent) {
        match ev {
            WorkerEvent::Healthy(h) => {
                self.healthy.send_replace(h);
            }
            WorkerEvent::Applied(obs) => self.applied(obs),
            WorkerEvent::Deleted(obs) => self.deleted(obs),
            WorkerEvent::Resync(all) => {
                let names: HashSet<String> = all.iter().map(|w| w.name.clone()).collect();
                let gone: Vec<WorkerObs> = lock(&self.workers)
                    .values()
                    .filter(|w| !names.contains(&w.name))
                    .cloned()
                    .collect();
                for w in gone {
                    self.deleted(w);
                }
                for w in all {
                    self.applied(w);
                }
            }
        }
    }

    /// Hands an observation to the driver of the worker's run, if it is live.
    fn route(&self, obs: &WorkerObs, gone: bool) {
        if let Group::Run(id) = &obs.labels.group
            && let Some(tx) = lock(&self.runs).get(id).and_then(|r| r.tx.clone())
        {
            // A driver that just ended has dropped its inbox: nothing to tell it.
            let _ = tx.send(if gone {
                RunMsg::Gone(obs.clone())
            } else {
                RunMsg::Obs(obs.clone())
            });
        }
    }

    fn applied(&self, obs: WorkerObs) {
        if let Group::Task(_) = obs.labels.group {
            let mut permits = lock(&self.task_permits);
            match obs.phase {
                Phase::Pending | Phase::Running => {
                    if !permits.contains_key(&obs.name) {
                        let permit = self.deps.slots.adopt(&obs.labels.team, obs.cost);
                        permits.insert(obs.name.clone(), permit);
                    }
                }
                _ => {
                    permits.remove(&obs.name);
                }
            }
        }
        let changed = lock(&self.workers)
            .insert(obs.name.clone(), obs.clone())
            .as_ref()
            != Some(&obs);
        if changed {
            self.route(&obs, false);
        }
    }

    fn deleted(&self, obs: WorkerObs) {
        lock(&self.task_permits).remove(&obs.name);
        lock(&self.workers).remove(&obs.name);
        self.route(&obs, true);
    }

    /// Publishes an Event about `g` without holding up the caller.
    pub(crate) fn note(&self, g: Group, note: crate::backend::Note) {
        let backend = self.deps.backend.clone();
        tokio::spawn(async move { backend.event(&g, &note).await });
    }

    /// Workers, optionally of one task or run.
    pub fn workers(&self, task: &str, run: &str) -> Vec<WorkerObs> {
        lock(&self.workers)
            .values()
            .filter(|w| decide::of(w, task, run))
            .cloned()
            .collect()
    }

    /// The workers `caller` may see, optionally of one task or run; naming a task
    /// or run of another team is refused.
    pub fn workers_for(&self, caller: &Caller, task: &str, run: &str) -> Result<Vec<WorkerObs>> {
        if !task.is_empty() {
            self.task_owner(caller, task)?;
        }
        if !run.is_empty() {
            self.run_owner(caller, run)?;
        }
        Ok(self
            .workers(task, run)
            .into_iter()
            .filter(|w| caller.may(&w.labels.team))
            .collect())
    }

    /// Refuses `caller` a task of another team; a task nobody has is free.
    pub(crate) fn task_owner(&self, caller: &Caller, task: &str) -> Result<()> {
        refuse(
            caller,
            "task",
            task,
            lock(&self.tasks).get(task).map(String::as_str),
        )
    }

    /// Refuses `caller` a run of another team (an unknown run is not refused here).
    pub(crate) fn run_owner(&self, caller: &Caller, run: &str) -> Result<()> {
        refuse(
            caller,
            "run",
            run,
            lock(&self.runs).get(run).map(|r| r.team.as_str()),
        )
    }

    /// Refuses `caller` what a group of another team holds.
    pub(crate) fn group_owner(&self, caller: &Caller, g: &Group) -> Result<()> {
        match g {
            Group::Run(id) => self.run_owner(caller, id),
            Group::Task(id) => self.task_owner(caller, id),
        }
    }

    /// Refuses `caller` a worker of another team.
    pub(crate) fn worker_owner(&self, caller: &Caller, worker: &str) -> Result<()> {
        let workers = lock(&self.workers);
        let owner = workers.get(worker).map(|w| w.labels.team.as_str());
        refuse(caller, "worker", worker, owner)
    }
}
