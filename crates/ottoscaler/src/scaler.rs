//! The scaler's shared state: the worker index (fed by the backend's events), live
//! tasks and runs, and the operations behind the gRPC methods. Restart safety lives
//! here too: [`Scaler::recover`] at start-up and [`Scaler::sweep`] on a timer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backend::{
    Backend, Group, GroupRecord, Phase, WorkerEvent, WorkerLabels, WorkerObs, WorkerPlan,
};
use crate::config::{Config, resolve};
use crate::error::{Error, Result};
use crate::executor::{self, RunMsg, RunSetup};
use crate::hub::{LogHub, now_ms};
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::proto::{self, PipelineProgress, RunState};
use crate::room::CapacityCheck;
use crate::slots::{Permit, Slots};
use crate::spec::{self, SpecError, bad, check_name};
pub use crate::workers::{orphans, pick_scale_down};

mod capacity;
mod recovery;

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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_workers: 100,
            grace: Duration::from_secs(10),
            retention: Duration::from_secs(3600),
            log_lines: 10_000,
            capacity: CapacityCheck::Wait,
        }
    }
}

#[derive(Debug)]
struct RunEntry {
    progress: Arc<Progress>,
    cancel: CancellationToken,
    tx: Option<mpsc::UnboundedSender<RunMsg>>,
}

/// The scaler.
#[derive(Debug)]
pub struct Scaler {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) slots: Slots,
    pub(crate) logs: LogHub,
    pub(crate) config: Config,
    pub(crate) opts: Options,
    pub(crate) metrics: Metrics,
    runs: Mutex<HashMap<String, RunEntry>>,
    tasks: Mutex<HashSet<String>>,
    workers: Mutex<BTreeMap<String, WorkerObs>>,
    task_permits: Mutex<HashMap<String, Permit>>,
    healthy: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
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
            backend,
            slots: Slots::new(opts.max_workers),
            logs: LogHub::new(opts.log_lines),
            config,
            metrics,
            opts,
            runs: Mutex::default(),
            tasks: Mutex::default(),
            workers: Mutex::default(),
            task_permits: Mutex::default(),
            healthy: watch::channel(false).0,
        })
    }

    /// Whether the backend's watch works (for health).
    pub fn health(&self) -> watch::Receiver<bool> {
        self.healthy.subscribe()
    }

    /// Recovers from a previous process, starts the backend's watch and the event pump.
    pub async fn start(self: &Arc<Self>, shutdown: CancellationToken) -> Result<()> {
        self.recover().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.backend.start(tx, self.logs.clone(), shutdown.clone());
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
            self.metrics.workers(lock(&self.workers).len());
        }
    }

    fn route(&self, obs: &WorkerObs, gone: bool) {
        if let Group::Run(id) = &obs.labels.group
            && let Some(tx) = lock(&self.runs).get(id).and_then(|r| r.tx.clone())
        {
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
                        permits.insert(obs.name.clone(), self.slots.adopt());
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

    fn worker_plan(&self, field: &str, w: &spec::WorkerTemplate) -> Result<WorkerPlan, SpecError> {
        let (class_name, class) = self
            .config
            .class(&format!("{field}.worker_class"), &w.class)?;
        let r = resolve(
            class_name,
            class,
            &w.resources,
            &format!("{field}.resources"),
        )?;
        Ok(WorkerPlan {
            name: String::new(),
            labels: WorkerLabels {
                group: Group::Task(String::new()),
                stage: String::new(),
                attempt: 1,
            },
            image: w.image.clone(),
            command: w.command.clone(),
            env: w.env.clone(),
            requests: r.requests,
            limits: r.limits,
            annotations: w.annotations.clone(),
            node_selector: class.node_selector.clone(),
            tolerations: class.tolerations.clone(),
            grace: self.opts.grace,
        })
    }

    /// Validates and starts a run; returns its id and progress.
    pub async fn submit(
        self: &Arc<Self>,
        req: &proto::PipelineRequest,
    ) -> Result<(String, Arc<Progress>)> {
        let pipeline = spec::validate(req)?;
        let workers = pipeline
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| self.worker_plan(&format!("stages[{i}].worker"), &s.worker))
            .collect::<Result<Vec<_>, _>>()?;
        let mut capacity = Vec::with_capacity(workers.len());
        for (i, w) in workers.iter().enumerate() {
            let field = format!("stages[{i}].worker.resources");
            capacity.push(self.admit(w, 1, false, &field).await?);
        }
        let id = if req.run_id.is_empty() {
            format!("r-{}", random_suffix(8))
        } else {
            req.run_id.clone()
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let progress = Progress::new(&id);
        let cancel = CancellationToken::new();
        {
            let mut runs = lock(&self.runs);
            if runs.contains_key(&id) {
                return Err(Error::AlreadyExists(id));
            }
            runs.insert(
                id.clone(),
                RunEntry {
                    progress: progress.clone(),
                    cancel: cancel.clone(),
                    tx: Some(tx.clone()),
                },
            );
        }
        let record = GroupRecord {
            group: Group::Run(id.clone()),
            state: "running".into(),
            reason: String::new(),
            finished_ms: None,
        };
        if let Err(e) = self.backend.put_group(&record).await {
            lock(&self.runs).remove(&id);
            return Err(e);
        }
        self.logs.buffer(&Group::Run(id.clone()));
        info!(run = %id, pipeline = %pipeline.name, stages = pipeline.stages.len(), "run submitted");
        let setup = RunSetup {
            id: id.clone(),
            pipeline,
            workers,
            capacity,
            progress: progress.clone(),
            cancel,
        };
        tokio::spawn(executor::drive(self.clone(), setup, tx, rx));
        Ok((id, progress))
    }

    /// Called by the driver when a run has ended.
    pub(crate) async fn run_ended(self: &Arc<Self>, id: &str, state: RunState, text: &str) {
        let (label, record_state) = match state {
            RunState::Succeeded => ("succeeded", "succeeded"),
            RunState::Cancelled => ("cancelled", "cancelled"),
            _ => ("failed", "failed"),
        };
        self.metrics.run(label);
        let progress = {
            let mut runs = lock(&self.runs);
            runs.get_mut(id).map(|r| {
                r.tx = None;
                r.progress.clone()
            })
        };
        let record = GroupRecord {
            group: Group::Run(id.into()),
            state: record_state.into(),
            reason: text.into(),
            finished_ms: Some(now_ms()),
        };
        if let Err(e) = self.backend.put_group(&record).await {
            warn!(run = %id, error = %e, "recording the end of the run failed");
        }
        if let Some(b) = self.logs.get(&Group::Run(id.into())) {
            b.close();
        }
        if let Some(p) = progress {
            p.emit(PipelineProgress {
                run_state: state as i32,
                message: format!("run {text}"),
                r#final: true,
                ..Default::default()
            });
        }
        self.forget_after(Group::Run(id.into()), self.opts.retention);
    }

    /// The progress of a run.
    pub fn progress(&self, run_id: &str) -> Result<Arc<Progress>> {
        lock(&self.runs)
            .get(run_id)
            .map(|r| r.progress.clone())
            .ok_or_else(|| Error::NotFound {
                kind: "run",
                id: run_id.into(),
            })
    }

    /// Cancels a run; false if it had already ended.
    pub fn cancel(&self, run_id: &str) -> Result<bool> {
        let runs = lock(&self.runs);
        let r = runs.get(run_id).ok_or_else(|| Error::NotFound {
            kind: "run",
            id: run_id.into(),
        })?;
        if r.tx.is_none() {
            return Ok(false);
        }
        r.cancel.cancel();
        Ok(true)
    }

    /// Workers, optionally of one task or run.
    pub fn workers(&self, task: &str, run: &str) -> Vec<WorkerObs> {
        lock(&self.workers)
            .values()
            .filter(|w| match &w.labels.group {
                Group::Task(t) => run.is_empty() && (task.is_empty() || t == task),
                Group::Run(r) => task.is_empty() && (run.is_empty() || r == run),
            })
            .cloned()
            .collect()
    }

    /// ScaleUp: creates `worker_count` workers for the task; with them, why some
    /// wait for capacity, if they do.
    pub async fn scale_up(
        &self,
        req: &proto::ScaleRequest,
    ) -> Result<(Vec<String>, Option<String>)> {
        check_name("task_id", &req.task_id, spec::MAX_ID)?;
        let cap = self.opts.max_workers;
        let n = u32::try_from(req.worker_count)
            .ok()
            .filter(|n| (1..=cap).contains(n))
            .ok_or_else(|| {
                bad(
                    "worker_count",
                    format!(
                        "{} is outside 1..={cap} (the concurrency cap)",
                        req.worker_count
                    ),
                )
            })?;
        let w = req.worker.clone().unwrap_or_default();
        if w.image.is_empty() && w.command.is_empty() {
            return Err(bad("worker", "needs an image or a command").into());
        }
        let template = spec::WorkerTemplate {
            image: w.image,
            command: w.command,
            env: w.env.into_iter().collect(),
            class: w.worker_class,
            resources: w.resources.unwrap_or_default(),
            annotations: w.annotations.into_iter().collect(),
        };
        let mut plan = self.worker_plan("worker", &template)?;
        let waiting = self.admit(&plan, n, true, "worker_count").await?;
        let permits = self
            .slots
            .try_acquire(n)
            .map_err(|in_use| Error::OverCapacity {
                requested: n,
                in_use,
                cap,
            })?;
        let group = Group::Task(req.task_id.clone());
        if lock(&self.tasks).insert(req.task_id.clone()) {
            let r = GroupRecord {
                group: group.clone(),
                state: "active".into(),
                reason: String::new(),
                finished_ms: None,
            };
            if let Err(e) = self.backend.put_group(&r).await {
                lock(&self.tasks).remove(&req.task_id);
                return Err(e);
            }
        }
        plan.labels = WorkerLabels {
            group,
            stage: String::new(),
            attempt: 1,
        };
        plan.env
            .insert("OTTOSCALER_TASK_ID".into(), req.task_id.clone());
        let mut created = Vec::new();
        for permit in permits {
            plan.name = format!("{}-{}", req.task_id, random_suffix(6));
            lock(&self.task_permits).insert(plan.name.clone(), permit);
            if let Err(e) = self.backend.create_worker(&plan).await {
                lock(&self.task_permits).remove(&plan.name);
                return Err(e);
            }
            created.push(plan.name.clone());
        }
        info!(task = %req.task_id, workers = created.len(), "scaled up");
        Ok((created, waiting))
    }

    /// ScaleDown: deletes up to `worker_count` (0 = all) workers of the task.
    pub async fn scale_down(&self, req: &proto::ScaleRequest) -> Result<(Vec<String>, usize)> {
        check_name("task_id", &req.task_id, spec::MAX_ID)?;
        if !lock(&self.tasks).contains(&req.task_id) {
            return Err(Error::NotFound {
                kind: "task",
                id: req.task_id.clone(),
            });
        }
        let count = usize::try_from(req.worker_count)
            .map_err(|_| bad("worker_count", format!("{} is negative", req.worker_count)))?;
        let grace = u64::try_from(req.grace_period_seconds)
            .map_err(|_| bad("grace_period_seconds", "is negative"))?;
        let grace = if grace == 0 {
            self.opts.grace
        } else {
            Duration::from_secs(grace)
        };
        let workers = self.workers(&req.task_id, "");
        let picked = pick_scale_down(&workers, count, req.force);
        for w in &picked {
            self.backend.delete_worker(w, grace).await?;
        }
        // Workers already on their way out (an earlier scale-down's grace period)
        // are not left: counting them kept the task record after its last worker.
        let left = workers
            .iter()
            .filter(|w| w.phase != Phase::Terminating && !picked.contains(&w.name))
            .count();
        if left == 0 && count == 0 {
            lock(&self.tasks).remove(&req.task_id);
            self.backend
                .delete_group(&Group::Task(req.task_id.clone()))
                .await?;
        }
        info!(task = %req.task_id, removed = picked.len(), left, "scaled down");
        Ok((picked, left))
    }
}
