//! One attempt of a stage: queued for a slot, its worker created, what the worker
//! reports, and what follows a failure (a retry after back-off, or the stage fails).

use tokio::time::Instant;
use tracing::warn;

use super::decide::{self, Reaction};
use super::{Attempt, Driver, RunMsg, stage_msg};
use crate::core::clock::now_ms;
use crate::core::retry::{AfterFailure, FailureClass};
use crate::core::schedule::StageStatus;
use crate::core::teams::Cost;
use crate::core::worker::{Group, WorkerLabels, WorkerObs, WorkerPlan};
use crate::logs::Stream;
use crate::proto::StageState;
use crate::slots::Permit;

impl Driver {
    /// Queues attempt `attempt` of stage `i` for a slot under the cap.
    pub(super) fn begin(&mut self, i: usize, attempt: u32) {
        self.status[i] = StageStatus::Active;
        let rt = &mut self.rt[i];
        rt.attempt = attempt;
        rt.deadline = None;
        rt.waiting = None;
        rt.created = None;
        let slots = self.deps.slots.clone();
        let metrics = self.deps.metrics.clone();
        let tx = self.tx.clone();
        let progress = self.setup.progress.clone();
        let stage = self.setup.pipeline.stages[i].name.clone();
        let team = self.setup.team.clone();
        let cost = Cost::of(&self.setup.workers[i].requests);
        let class = self.setup.workers[i].labels.class.clone();
        let handle = tokio::spawn(async move {
            let asked = Instant::now();
            let permit = slots
                .acquire(&team, &class, cost, |pos| {
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
            metrics.queued_for(asked.elapsed().as_secs_f64());
            // The driver is gone only when the run ended; the permit returns on drop.
            let _ = tx.send(RunMsg::Granted {
                stage: i,
                attempt,
                permit,
            });
        });
        self.rt[i].now = Attempt::Queued(handle);
    }

    /// The worker of stage `i`'s attempt, named and labelled.
    fn plan(&self, i: usize, attempt: u32) -> WorkerPlan {
        let mut plan = self.setup.workers[i].clone();
        plan.name = format!("{}-{}-{attempt}", self.setup.id, self.name(i));
        plan.labels = WorkerLabels {
            group: Group::Run(self.setup.id.clone()),
            stage: self.name(i).to_string(),
            attempt,
            team: self.setup.team.clone(),
            class: std::mem::take(&mut plan.labels.class),
        };
        plan.env
            .insert("OTTOSCALER_RUN_ID".into(), self.setup.id.clone());
        plan.env
            .insert("OTTOSCALER_STAGE".into(), self.name(i).to_string());
        plan.env
            .insert("OTTOSCALER_ATTEMPT".into(), attempt.to_string());
        plan
    }

    /// A slot came: creates the attempt's worker.
    pub(super) async fn granted(&mut self, i: usize, attempt: u32, permit: Permit) {
        if self.rt[i].attempt != attempt || !matches!(self.rt[i].now, Attempt::Queued(_)) {
            return;
        }
        let plan = self.plan(i, attempt);
        // The worker must be known before its first event can arrive.
        self.rt[i].now = Attempt::Starting(plan.name.clone());
        self.rt[i].permit = Some(permit);
        self.rt[i].deadline = self.setup.pipeline.stages[i]
            .timeout
            .map(|t| Instant::now() + t);
        self.created.push(plan.name.clone());
        self.deps.logs.push(
            &plan.name,
            &plan.labels,
            Stream::System,
            now_ms(),
            format!(
                "attempt {attempt} of stage {} on worker {}",
                self.name(i),
                plan.name
            ),
        );
        match self.deps.backend.create_worker(&plan).await {
            Ok(()) => {
                self.rt[i].created = Some(Instant::now());
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

    /// The stage whose current attempt runs on `obs`'s worker.
    fn current(&self, obs: &WorkerObs) -> Option<usize> {
        let i = self
            .setup
            .pipeline
            .stages
            .iter()
            .position(|s| s.name == obs.labels.stage)?;
        let rt = &self.rt[i];
        let same = rt.now.worker() == Some(obs.name.as_str());
        (same && rt.attempt == obs.labels.attempt).then_some(i)
    }

    /// Applies what an observation of the current attempt's worker means.
    pub(super) async fn observed(&mut self, obs: WorkerObs, gone: bool) {
        let Some(i) = self.current(&obs) else { return };
        let attempt = self.rt[i].attempt;
        let starting = matches!(self.rt[i].now, Attempt::Starting(_));
        match decide::react(&obs, gone, starting) {
            Reaction::Succeeded => {
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
                let took = self.took(i);
                self.deps.metrics.attempt("succeeded", took);
            }
            Reaction::Failed { class, delete } => {
                if delete {
                    self.delete(&obs.name).await;
                }
                let msg = decide::failure_text(attempt, class);
                self.attempt_failed(i, class, obs.exit_code, msg).await;
            }
            Reaction::Waiting(reason) => self.waiting(i, &obs.name, reason),
            Reaction::Running => {
                self.rt[i].now = Attempt::Running(obs.name.clone());
                let node = if obs.node.is_empty() { "?" } else { &obs.node };
                let mut m = stage_msg(
                    self.name(i),
                    StageState::Running,
                    attempt,
                    format!("running on {node}"),
                );
                m.worker = obs.name.clone();
                self.emit(m);
            }
            Reaction::Lost => {
                let msg = format!(
                    "attempt {attempt} failed: worker {} went away before it finished",
                    obs.name
                );
                self.attempt_failed(i, FailureClass::NodeLost, None, msg)
                    .await;
            }
            Reaction::Nothing => {}
        }
    }

    /// Seconds since stage `i`'s current worker was created (once per attempt).
    fn took(&mut self, i: usize) -> Option<f64> {
        self.rt[i].created.take().map(|t| t.elapsed().as_secs_f64())
    }

    /// Attempt of stage `i` failed: retries after back-off, or the stage fails.
    pub(super) async fn attempt_failed(
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
        let took = self.took(i);
        self.deps.metrics.attempt(class.label(), took);
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
                self.deps.notify.stage_failed(
                    &self.setup.id,
                    &self.setup.pipeline.name,
                    &stage.name,
                    attempt,
                    &message,
                );
                stage_msg(&stage.name, StageState::Failed, attempt, message)
            }
        };
        m.failure_class = class.label().into();
        m.exit_code = code.unwrap_or_default();
        self.emit(m);
    }
}
