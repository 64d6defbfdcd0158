//! Time and endings: the next timer (back-off, stage timeout, run timeout), a stop
//! (cancel or run timeout) and the end of the run, which deletes every worker the
//! run created.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::decide;
use super::{Attempt, Driver, RunEnd, stage_msg};
use crate::core::retry::FailureClass;
use crate::core::schedule::{Outcome, StageStatus, Stop};
use crate::core::worker::Group;
use crate::proto::{PipelineProgress, RunState};

/// How long the end of a run waits for its workers' logs to be read to the end.
pub(super) const LOG_DRAIN: Duration = Duration::from_secs(10);

impl Driver {
    /// The earliest back-off end or deadline (the run's only while not stopping).
    pub(super) fn next_timer(&self) -> Option<Instant> {
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

    /// Acts on every timer that is due.
    pub(super) async fn on_timer(&mut self) {
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

    /// Stops the run: active non-finally stages end (their workers are deleted);
    /// finally stages still run.
    pub(super) async fn stop_run(&mut self, why: Stop) {
        self.stop = Some(why);
        let effect = decide::stopped(why);
        info!(run = %self.setup.id, reason = effect.text, "stopping run");
        // Written before any worker is deleted, so a scaler that crashes in between
        // continues the stop instead of retrying the deleted workers as lost.
        let seq = self.setup.progress.emit(PipelineProgress {
            run_state: RunState::Running as i32,
            message: format!("stopping: {}", effect.text),
            failure_class: effect.class.into(),
            ..Default::default()
        });
        self.setup.progress.written(seq).await;
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
            self.status[i] = effect.status;
            let mut m = stage_msg(
                self.name(i),
                effect.state,
                self.rt[i].attempt,
                effect.text.into(),
            );
            m.failure_class = effect.class.into();
            self.emit(m);
        }
    }

    /// Deletes a worker with the default grace period; a failure is left to the
    /// orphan sweep.
    pub(super) async fn delete(&self, worker: &str) {
        if let Err(e) = self
            .deps
            .backend
            .delete_worker(worker, self.deps.grace)
            .await
        {
            warn!(run = %self.setup.id, worker, error = %e, "deleting worker failed; the orphan sweep retries");
        }
    }

    /// The run is over: deletes every worker it created, says how it ended.
    ///
    /// A finished worker's log lives only as long as its pod, so workers still
    /// running (a stop) go first, then the run waits up to [`LOG_DRAIN`] for
    /// every log follower to reach the end of its container's output, and only
    /// then deletes the finished ones: the last lines of a failing attempt are the
    /// ones its author needs.
    pub(super) async fn finish(&mut self, outcome: Outcome) -> RunEnd {
        let end = decide::end(outcome, self.stop);
        info!(run = %self.setup.id, outcome = end.text, "run ended");
        self.deps.notify.run_ended(
            &self.setup.id,
            &self.setup.pipeline.name,
            decide::state_word(end.state),
            &format!("run {}", end.text),
        );
        let (live, done): (Vec<String>, Vec<String>) = std::mem::take(&mut self.created)
            .into_iter()
            .partition(|w| self.rt.iter().any(|r| r.now.worker() == Some(w.as_str())));
        self.delete_now(live).await;
        if let Some(buf) = self.deps.logs.get(&Group::Run(self.setup.id.clone()))
            && !buf.writers_done(LOG_DRAIN).await
        {
            warn!(run = %self.setup.id, limit_s = LOG_DRAIN.as_secs(), "worker logs still streaming at the end of the run; deleting the workers anyway");
        }
        self.delete_now(done).await;
        end
    }

    async fn delete_now(&self, workers: Vec<String>) {
        for w in workers {
            if let Err(e) = self.deps.backend.delete_worker(&w, Duration::ZERO).await {
                warn!(run = %self.setup.id, worker = %w, error = %e, "deleting finished worker failed; the orphan sweep retries");
            }
        }
    }
}
