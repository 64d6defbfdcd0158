//! A run continued by a new scaler: the stages' states rebuilt by
//! [`crate::core::resume`] applied to the driver. Ended stages stay ended, existing
//! workers are adopted (with a slot each, as they hold one), queued and retrying
//! attempts are queued again, and an attempt whose worker vanished fails with that
//! reason (its retry policy decides what follows).

use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use super::{Attempt, Driver};
use crate::core::clock::now_ms;
use crate::core::resume::{Resumed, StageResume};
use crate::core::retry::FailureClass;
use crate::core::schedule::StageStatus;
use crate::core::teams::Cost;
use crate::proto::{PipelineProgress, RunState};

/// The monotonic instant of the wall-clock time `ms` (ms since the epoch).
fn instant_at(ms: i64) -> Instant {
    let now = Instant::now();
    let delta = ms - now_ms();
    let d = Duration::from_millis(delta.unsigned_abs());
    if delta >= 0 {
        now + d
    } else {
        now.checked_sub(d).unwrap_or(now)
    }
}

impl Driver {
    /// Applies `r` instead of starting the run afresh.
    pub(super) async fn resume(&mut self, r: Resumed) {
        self.created = r.workers;
        self.stop = r.stop;
        if let (Some(t), Some(started)) = (self.setup.pipeline.timeout, r.started_ms) {
            let t = i64::try_from(t.as_millis()).unwrap_or(i64::MAX);
            self.run_deadline = Some(instant_at(started.saturating_add(t)));
        }
        let ended = r
            .stages
            .iter()
            .filter(|s| matches!(s, StageResume::Done(_)))
            .count();
        let adopted: Vec<&str> = r
            .stages
            .iter()
            .filter_map(|s| match s {
                StageResume::Adopt { worker, .. } => Some(worker.as_str()),
                _ => None,
            })
            .collect();
        let n = r.stages.len();
        let message = if adopted.is_empty() {
            format!("run resumed after a scaler restart: {ended} of {n} stages ended")
        } else {
            format!(
                "run resumed after a scaler restart: {ended} of {n} stages ended; adopted worker {}",
                adopted.join(", ")
            )
        };
        info!(run = %self.setup.id, ended, adopted = adopted.len(), "run resumed");
        self.emit(PipelineProgress {
            run_state: RunState::Running as i32,
            message,
            ..Default::default()
        });
        for (i, s) in r.stages.into_iter().enumerate() {
            match s {
                StageResume::Waiting => {}
                StageResume::Done(status) => self.status[i] = status,
                StageResume::Begin(attempt) => self.begin(i, attempt),
                StageResume::Adopt {
                    worker,
                    attempt,
                    running,
                    created_ms,
                } => {
                    self.status[i] = StageStatus::Active;
                    let timeout = self.setup.pipeline.stages[i].timeout;
                    let rt = &mut self.rt[i];
                    rt.attempt = attempt;
                    rt.now = if running {
                        Attempt::Running(worker)
                    } else {
                        Attempt::Starting(worker)
                    };
                    rt.permit = Some(
                        self.deps
                            .slots
                            .adopt(&self.setup.team, Cost::of(&self.setup.workers[i].requests)),
                    );
                    let created = created_ms.map_or_else(Instant::now, instant_at);
                    rt.created = Some(created);
                    rt.deadline = timeout.map(|t| created + t);
                }
                StageResume::Lost { worker, attempt } => {
                    self.status[i] = StageStatus::Active;
                    self.rt[i].attempt = attempt;
                    let msg = format!(
                        "attempt {attempt} failed: worker {worker} was deleted while the scaler was down"
                    );
                    self.attempt_failed(i, FailureClass::NodeLost, None, msg)
                        .await;
                }
            }
        }
        // A stop that had begun goes on: what it had not reached yet ends now.
        if let Some(why) = self.stop {
            self.stop_run(why).await;
        }
    }
}
