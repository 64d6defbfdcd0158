//! The async driver of one pipeline run.
//!
//! It owns the run's stage states and reacts to three things: worker observations
//! (routed to it from the backend's watch), slot grants from the fair queue, and its
//! own timers (retry back-off, stage and run timeouts). After each, it asks the pure
//! scheduler ([`crate::schedule`]) what starts or is skipped next. No polling: a
//! stage's successor is created in the same task turn that sees its pod finish.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backend::{Group, Phase, WorkerLabels, WorkerObs, WorkerPlan};
use crate::logs::Stream;
use crate::progress::Progress;
use crate::proto::{PipelineProgress, RunState, StageState};
use crate::retry::{AfterFailure, FailureClass};
use crate::scaler::Scaler;
use crate::schedule::{self, Decision, Outcome, SkipReason, StageStatus, Stop};
use crate::slots::Permit;
use crate::spec::Pipeline;

mod capacity;

/// What reaches a run's driver.
#[derive(Debug)]
pub enum RunMsg {
    /// A worker of the run changed.
    Obs(WorkerObs),
    /// A worker of the run is gone.
    Gone(WorkerObs),
    /// A slot for an attempt.
    Granted {
        /// Stage index.
        stage: usize,
        /// Attempt.
        attempt: u32,
        /// The slot.
        permit: Permit,
    },
}

/// Everything a run needs to start.
#[derive(Debug)]
pub struct RunSetup {
    /// Run id.
    pub id: String,
    /// The validated pipeline.
    pub pipeline: Pipeline,
    /// Per stage: its worker with resources resolved (name and labels left empty).
    pub workers: Vec<WorkerPlan>,
    /// Per stage: why its worker did not fit when the run was submitted (it is
    /// checked again when the stage starts), `None` when it did.
    pub capacity: Vec<Option<String>>,
    /// Progress history.
    pub progress: Arc<Progress>,
    /// Cancelled by CancelPipeline.
    pub cancel: CancellationToken,
}

#[derive(Debug)]
enum Attempt {
    Idle,
    Queued(JoinHandle<()>),
    Starting(String),
    Running(String),
    Backoff { until: Instant, next: u32 },
}

#[derive(Debug)]
struct StageRt {
    attempt: u32,
    now: Attempt,
    permit: Option<Permit>,
    deadline: Option<Instant>,
    /// The last "waiting for capacity" reason reported for this attempt.
    waiting: Option<String>,
}

struct Driver {
    scaler: Arc<Scaler>,
    setup: RunSetup,
    status: Vec<StageStatus>,
    rt: Vec<StageRt>,
    stop: Option<Stop>,
    run_deadline: Option<Instant>,
    tx: mpsc::UnboundedSender<RunMsg>,
    created: Vec<String>,
}

fn stage_msg(stage: &str, state: StageState, attempt: u32, message: String) -> PipelineProgress {
    PipelineProgress {
        stage: stage.to_string(),
        stage_state: state as i32,
        run_state: RunState::Running as i32,
        attempt: i32::try_from(attempt).unwrap_or(i32::MAX),
        message,
        ..Default::default()
    }
}

/// Runs the pipeline to its end.
pub async fn drive(
    scaler: Arc<Scaler>,
    setup: RunSetup,
    tx: mpsc::UnboundedSender<RunMsg>,
    mut rx: mpsc::UnboundedReceiver<RunMsg>,
) -> Outcome {
    let n = setup.pipeline.stages.len();
    let run_deadline = setup.pipeline.timeout.map(|t| Instant::now() + t);
    let mut d = Driver {
        scaler,
        status: vec![StageStatus::Waiting; n],
        rt: (0..n)
            .map(|_| StageRt {
                attempt: 0,
                now: Attempt::Idle,
                permit: None,
                deadline: None,
                waiting: None,
            })
            .collect(),
        stop: None,
        run_deadline,
        tx,
        created: Vec::new(),
        setup,
    };
    d.setup.progress.emit(PipelineProgress {
        run_state: RunState::Running as i32,
        message: format!(
            "run started: pipeline \"{}\", {n} stages",
            d.setup.pipeline.name
        ),
        ..Default::default()
    });
    loop {
        for dec in schedule::decide(&d.setup.pipeline, &d.status, d.stop) {
            match dec {
                Decision::Start(i) => d.begin(i, 1),
                Decision::Skip(i, why) => d.skip(i, why),
            }
        }
        if let Some(outcome) = schedule::outcome(&d.status, d.stop) {
            d.finish(outcome).await;
            return outcome;
        }
        let timer = d.next_timer();
        let cancel = d.setup.cancel.clone();
        tokio::select! {
            msg = rx.recv() => if let Some(m) = msg { d.handle(m).await },
            () = cancel.cancelled(), if d.stop.is_none() => d.stop_run(Stop::Cancelled).await,
            () = sleep_until(timer) => d.on_timer().await,
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn name(&self, i: usize) -> &str {
        &self.setup.pipeline.stages[i].name
    }

    fn emit(&self, p: PipelineProgress) {
        self.setup.progress.emit(p);
    }

    fn begin(&mut self, i: usize, attempt: u32) {
        self.status[i] = StageStatus::Active;
        let rt = &mut self.rt[i];
        rt.attempt = attempt;
        rt.deadline = None;
        rt.waiting = None;
        let slots = self.scaler.slots.clone();
        let tx = self.tx.clone();
        let progress = self.setup.progress.clone();
        let stage = self.setup.pipeline.stages[i].name.clone();
        let handle = tokio::spawn(async move {
            let permit = slots
                .acquire(|pos| {
                    let mut m = stage_msg(
                        &stage,
                        StageState::Queued,
                        attempt,
                        format!("queued, position {pos}"),
                    );
                    m.queue_position = i32::try_from(pos).unwrap_or(i32::MAX);
                    progress.emit(m);
                })
                .await;
            let _ = tx.send(RunMsg::Granted {
                stage: i,
                attempt,
                permit,
            });
        });
        self.rt[i].now = Attempt::Queued(handle);
    }

    fn skip(&mut self, i: usize, why: SkipReason) {
        self.status[i] = StageStatus::Skipped;
        let msg = match why {
            SkipReason::Condition => {
                "skipped: its when condition is false for its dependencies' outcomes"
            }
            SkipReason::Stopped => "skipped: the run stopped before this stage started",
        };
        self.emit(stage_msg(self.name(i), StageState::Skipped, 0, msg.into()));
    }

    async fn handle(&mut self, m: RunMsg) {
        match m {
            RunMsg::Granted {
                stage,
                attempt,
                permit,
            } => self.granted(stage, attempt, permit).await,
            RunMsg::Obs(obs) => self.observed(obs, false).await,
            RunMsg::Gone(obs) => self.observed(obs, true).await,
        }
    }

    async fn granted(&mut self, i: usize, attempt: u32, permit: Permit) {
        if self.rt[i].attempt != attempt || !matches!(self.rt[i].now, Attempt::Queued(_)) {
            return;
        }
        let mut plan = self.setup.workers[i].clone();
        plan.name = format!("{}-{}-{attempt}", self.setup.id, self.name(i));
        plan.labels = WorkerLabels {
            group: Group::Run(self.setup.id.clone()),
            stage: self.name(i).to_string(),
            attempt,
        };
        plan.env
            .insert("OTTOSCALER_RUN_ID".into(), self.setup.id.clone());
        plan.env
            .insert("OTTOSCALER_STAGE".into(), self.name(i).to_string());
        plan.env
            .insert("OTTOSCALER_ATTEMPT".into(), attempt.to_string());
        // The worker must be known before its first event can arrive.
        self.rt[i].now = Attempt::Starting(plan.name.clone());
        self.rt[i].permit = Some(permit);
        self.rt[i].deadline = self.setup.pipeline.stages[i]
            .timeout
            .map(|t| Instant::now() + t);
        self.created.push(plan.name.clone());
        self.scaler.logs.push(
            &plan.name,
            &plan.labels,
            Stream::System,
            crate::hub::now_ms(),
            format!(
                "attempt {attempt} of stage {} on worker {}",
                self.name(i),
                plan.name
            ),
        );
        match self.scaler.backend.create_worker(&plan).await {
            Ok(()) => {
                let mut m = stage_msg(
                    self.name(i),
                    StageState::Starting,
                    attempt,
                    format!("worker {} created", plan.name),
                );
                m.worker = plan.name.clone();
                self.emit(m);
                self.recheck_capacity(i, &plan).await;
            }
            Err(e) => {
                warn!(run = %self.setup.id, stage = self.name(i), error = %e, "creating worker failed");
                self.attempt_failed(i, FailureClass::CreateFailed, None, e.to_string())
                    .await;
            }
        }
    }

    fn current(&self, obs: &WorkerObs) -> Option<usize> {
        let i = self
            .setup
            .pipeline
            .stages
            .iter()
            .position(|s| s.name == obs.labels.stage)?;
        let rt = &self.rt[i];
        let same = match &rt.now {
            Attempt::Starting(w) | Attempt::Running(w) => *w == obs.name,
            _ => false,
        };
        (same && rt.attempt == obs.labels.attempt).then_some(i)
    }

    async fn observed(&mut self, obs: WorkerObs, gone: bool) {
        let Some(i) = self.current(&obs) else { return };
        let attempt = self.rt[i].attempt;
        match (gone, obs.phase, obs.failure) {
            (false, Phase::Succeeded, _) => {
                self.rt[i].now = Attempt::Idle;
                self.rt[i].permit = None;
                self.status[i] = StageStatus::Succeeded;
                let mut m = stage_msg(
                    self.name(i),
                    StageState::Succeeded,
                    attempt,
                    "succeeded".into(),
                );
                m.worker = obs.name.clone();
                self.emit(m);
                self.scaler.metrics.attempt("succeeded");
            }
            (false, Phase::Failed, f) | (false, Phase::Pending, f @ Some(_)) => {
                let class = f.unwrap_or(FailureClass::ExitCode(obs.exit_code.unwrap_or(1)));
                if obs.phase == Phase::Pending {
                    self.delete(&obs.name).await;
                }
                let msg = match class {
                    FailureClass::ExitCode(c) => format!("attempt {attempt} failed: exit code {c}"),
                    c => format!("attempt {attempt} failed: {}", c.label()),
                };
                self.attempt_failed(i, class, obs.exit_code, msg).await;
            }
            (false, Phase::Pending, None) if matches!(self.rt[i].now, Attempt::Starting(_)) => {
                if let Some(reason) = obs.unschedulable {
                    self.waiting(i, &obs.name, reason);
                }
            }
            (false, Phase::Running, _) if matches!(self.rt[i].now, Attempt::Starting(_)) => {
                self.rt[i].now = Attempt::Running(obs.name.clone());
                let mut m = stage_msg(
                    self.name(i),
                    StageState::Running,
                    attempt,
                    format!(
                        "running on {}",
                        if obs.node.is_empty() { "?" } else { &obs.node }
                    ),
                );
                m.worker = obs.name.clone();
                self.emit(m);
            }
            (true, _, _) => {
                self.attempt_failed(
                    i,
                    FailureClass::NodeLost,
                    None,
                    format!(
                        "attempt {attempt} failed: worker {} went away before it finished",
                        obs.name
                    ),
                )
                .await;
            }
            _ => {}
        }
    }

    async fn attempt_failed(
        &mut self,
        i: usize,
        class: FailureClass,
        code: Option<i32>,
        message: String,
    ) {
        let attempt = self.rt[i].attempt;
        self.rt[i].permit = None;
        self.rt[i].deadline = None;
        self.rt[i].now = Attempt::Idle;
        self.scaler.metrics.attempt(class.label());
        let stage = &self.setup.pipeline.stages[i];
        let stopping = self.stop.is_some() && !stage.finally;
        let next = if stopping {
            AfterFailure::GiveUp
        } else {
            stage.retry.after_failure(attempt, class, rand::random())
        };
        let mut m = match next {
            AfterFailure::Retry { next, delay } => {
                self.rt[i].now = Attempt::Backoff {
                    until: Instant::now() + delay,
                    next,
                };
                stage_msg(
                    &stage.name,
                    StageState::Retrying,
                    attempt,
                    format!(
                        "{message}; attempt {next} of {} in {:.1}s",
                        stage.retry.max_attempts,
                        delay.as_secs_f64()
                    ),
                )
            }
            AfterFailure::GiveUp => {
                self.status[i] = StageStatus::Failed;
                stage_msg(&stage.name, StageState::Failed, attempt, message)
            }
        };
        m.failure_class = class.label().into();
        m.exit_code = code.unwrap_or_default();
        self.emit(m);
    }

    fn next_timer(&self) -> Option<Instant> {
        let stage_timers = self.rt.iter().filter_map(|r| match r.now {
            Attempt::Backoff { until, .. } => Some(until),
            _ => r.deadline,
        });
        let run = if self.stop.is_none() {
            self.run_deadline
        } else {
            None
        };
        stage_timers.chain(run).min()
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.stop.is_none() && self.run_deadline.is_some_and(|d| d <= now) {
            self.stop_run(Stop::TimedOut).await;
        }
        for i in 0..self.rt.len() {
            match self.rt[i].now {
                Attempt::Backoff { until, next } if until <= now => self.begin(i, next),
                Attempt::Starting(ref w) | Attempt::Running(ref w)
                    if self.rt[i].deadline.is_some_and(|d| d <= now) =>
                {
                    let w = w.clone();
                    self.delete(&w).await;
                    let t = self.setup.pipeline.stages[i].timeout.unwrap_or_default();
                    let msg = format!(
                        "attempt {} timed out after {}s",
                        self.rt[i].attempt,
                        t.as_secs()
                    );
                    self.attempt_failed(i, FailureClass::Timeout, None, msg)
                        .await;
                }
                _ => {}
            }
        }
    }

    async fn stop_run(&mut self, why: Stop) {
        self.stop = Some(why);
        let (state, text) = match why {
            Stop::Cancelled => (StageState::Cancelled, "cancelled"),
            Stop::TimedOut => (StageState::Failed, "run timed out"),
        };
        info!(run = %self.setup.id, reason = text, "stopping run");
        for i in 0..self.rt.len() {
            if self.setup.pipeline.stages[i].finally || self.status[i] != StageStatus::Active {
                continue;
            }
            match std::mem::replace(&mut self.rt[i].now, Attempt::Idle) {
                Attempt::Queued(h) => h.abort(),
                Attempt::Starting(w) | Attempt::Running(w) => self.delete(&w).await,
                Attempt::Backoff { .. } | Attempt::Idle => {}
            }
            self.rt[i].permit = None;
            self.rt[i].deadline = None;
            self.status[i] = if why == Stop::Cancelled {
                StageStatus::Cancelled
            } else {
                StageStatus::Failed
            };
            let mut m = stage_msg(self.name(i), state, self.rt[i].attempt, text.into());
            m.failure_class = if why == Stop::Cancelled {
                "cancelled"
            } else {
                "timeout"
            }
            .into();
            self.emit(m);
        }
    }

    async fn delete(&self, worker: &str) {
        if let Err(e) = self
            .scaler
            .backend
            .delete_worker(worker, self.scaler.opts.grace)
            .await
        {
            warn!(run = %self.setup.id, worker, error = %e, "deleting worker failed; the orphan sweep retries");
        }
    }

    async fn finish(&mut self, outcome: Outcome) {
        let (state, text) = match outcome {
            Outcome::Succeeded => (RunState::Succeeded, "succeeded"),
            Outcome::Failed => (
                RunState::Failed,
                if self.stop == Some(Stop::TimedOut) {
                    "failed: the run timed out"
                } else {
                    "failed"
                },
            ),
            Outcome::Cancelled => (RunState::Cancelled, "cancelled"),
        };
        info!(run = %self.setup.id, outcome = text, "run ended");
        for w in std::mem::take(&mut self.created) {
            if let Err(e) = self.scaler.backend.delete_worker(&w, Duration::ZERO).await {
                warn!(run = %self.setup.id, worker = %w, error = %e, "deleting finished worker failed; the orphan sweep retries");
            }
        }
        self.scaler.run_ended(&self.setup.id, state, text).await;
    }
}
