//! The async driver of one pipeline run.
//!
//! It owns the run's stage states and reacts to three things: worker observations
//! (routed to it from the backend's watch), slot grants from the fair queue, and its
//! own timers (retry back-off, stage and run timeouts). After each, it asks the pure
//! scheduler ([`crate::core::schedule`]) what starts or is skipped next, and the pure
//! [`decide`] module what an observation means. No polling: a stage's successor is
//! created in the same task turn that sees its pod finish.
//!
//! The driver sees only [`RunDeps`] (backend, slots, logs, metrics), never the
//! scaler: [`drive`] returns how the run ended and the scaler records it.
//!
//! - this file: the run's state and its event loop;
//! - [`attempt`](self::attempt): starting an attempt and what its worker reports;
//! - [`stop`](self::stop): timers, cancel and timeout, the end of the run;
//! - [`capacity`](self::capacity): "waiting for capacity" while a worker is Pending;
//! - [`resume`](self::resume): a run continued by a new scaler after a restart.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::resume::Resumed;
use crate::core::schedule::{self, Decision, SkipReason, StageStatus, Stop};
use crate::core::spec::Pipeline;
use crate::core::worker::{WorkerObs, WorkerPlan};
use crate::deps::RunDeps;
use crate::progress::Progress;
use crate::proto::{PipelineProgress, RunState, StageState};
use crate::slots::Permit;

mod attempt;
mod capacity;
pub mod decide;
mod resume;
mod stop;
#[cfg(test)]
mod tests;

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
    /// The team that owns the run: its workers count against the team's quota.
    pub team: String,
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
    /// Where the stages stand when a new scaler continues the run; `None`: a new run.
    pub resume: Option<Resumed>,
}

/// How a run ended, for the scaler to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEnd {
    /// Succeeded, failed or cancelled.
    pub state: RunState,
    /// Why, for people ("succeeded", "failed: the run timed out", ...).
    pub text: &'static str,
}

#[derive(Debug)]
enum Attempt {
    Idle,
    Queued(JoinHandle<()>),
    Starting(String),
    Running(String),
    Backoff { until: Instant, next: u32 },
}

impl Attempt {
    /// The worker of a starting or running attempt.
    fn worker(&self) -> Option<&str> {
        match self {
            Self::Starting(w) | Self::Running(w) => Some(w),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct StageRt {
    attempt: u32,
    now: Attempt,
    permit: Option<Permit>,
    deadline: Option<Instant>,
    /// The last "waiting for capacity" reason reported for this attempt.
    waiting: Option<String>,
    /// When this attempt's worker was created (for its duration).
    created: Option<Instant>,
}

struct Driver {
    deps: RunDeps,
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

/// Runs the pipeline to its end: every worker it created is deleted, and how it
/// ended is returned (the caller records it).
pub async fn drive(
    deps: RunDeps,
    setup: RunSetup,
    tx: mpsc::UnboundedSender<RunMsg>,
    mut rx: mpsc::UnboundedReceiver<RunMsg>,
) -> RunEnd {
    let n = setup.pipeline.stages.len();
    let run_deadline = setup.pipeline.timeout.map(|t| Instant::now() + t);
    let mut d = Driver {
        deps,
        status: vec![StageStatus::Waiting; n],
        rt: (0..n)
            .map(|_| StageRt {
                attempt: 0,
                now: Attempt::Idle,
                permit: None,
                deadline: None,
                waiting: None,
                created: None,
            })
            .collect(),
        stop: None,
        run_deadline,
        tx,
        created: Vec::new(),
        setup,
    };
    if let Some(r) = d.setup.resume.take() {
        d.resume(r).await;
    } else {
        d.emit(PipelineProgress {
            run_state: RunState::Running as i32,
            message: format!(
                "run started: pipeline \"{}\", {n} stages",
                d.setup.pipeline.name
            ),
            ..Default::default()
        });
    }
    loop {
        for dec in schedule::decide(&d.setup.pipeline, &d.status, d.stop) {
            match dec {
                Decision::Start(i) => d.begin(i, 1),
                Decision::Skip(i, why) => d.skip(i, why),
            }
        }
        if let Some(outcome) = schedule::outcome(&d.status, d.stop) {
            return d.finish(outcome).await;
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
}
