//! What a new scaler makes of a run it finds in flight: from the run's written
//! progress history and the worker pods that exist now, where each stage stands.
//! A stage that ended stays ended (it never runs twice); a worker that exists is
//! adopted, whichever attempt the history had reached (a crash can fall between
//! creating a pod and writing that it was created); a worker the history says was
//! started but that is gone is the one thing that cannot be known, and fails that
//! attempt with that reason.

use crate::core::schedule::{StageStatus, Stop};
use crate::core::spec::Pipeline;
use crate::core::worker::{Group, Phase, WorkerObs};
use crate::proto::{PipelineProgress, StageState};

/// Where one stage stands after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageResume {
    /// Not started: the scheduler starts it when its dependencies allow.
    Waiting,
    /// It ended: kept as it is.
    Done(StageStatus),
    /// Queue this attempt for a slot (it was queued, or waited for a retry).
    Begin(u32),
    /// Its worker exists: the attempt goes on with it.
    Adopt {
        /// The worker.
        worker: String,
        /// Its attempt.
        attempt: u32,
        /// The history already says it runs.
        running: bool,
        /// When the history says the attempt's worker was created (ms), for the
        /// stage timeout; `None`: not written, the timeout starts now.
        created_ms: Option<i64>,
    },
    /// The history says this attempt's worker was started, and it is gone.
    Lost {
        /// The worker.
        worker: String,
        /// Its attempt.
        attempt: u32,
    },
}

/// A run's state rebuilt after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// Per stage, in the pipeline's order.
    pub stages: Vec<StageResume>,
    /// A cancel the history shows had begun.
    pub stop: Option<Stop>,
    /// When the run started (ms; its first message), for the run timeout.
    pub started_ms: Option<i64>,
    /// Every worker of the run that exists (deleted when the run ends).
    pub workers: Vec<String>,
}

fn done(state: StageState) -> Option<StageStatus> {
    match state {
        StageState::Succeeded => Some(StageStatus::Succeeded),
        StageState::Failed => Some(StageStatus::Failed),
        StageState::Skipped => Some(StageStatus::Skipped),
        StageState::Cancelled => Some(StageStatus::Cancelled),
        _ => None,
    }
}

fn attempt_of(p: &PipelineProgress) -> u32 {
    u32::try_from(p.attempt).unwrap_or(0)
}

/// Where each stage of run `run` (`pipeline`) stands, from its `history` and the
/// `workers` that exist now (any group; other groups' are ignored).
pub fn resume(
    run: &str,
    pipeline: &Pipeline,
    history: &[PipelineProgress],
    workers: &[WorkerObs],
) -> Resumed {
    let mine: Vec<&WorkerObs> = workers
        .iter()
        .filter(|w| w.labels.group == Group::Run(run.into()) && w.phase != Phase::Terminating)
        .collect();
    let stages = pipeline
        .stages
        .iter()
        .map(|s| {
            let msgs: Vec<&PipelineProgress> =
                history.iter().filter(|p| p.stage == s.name).collect();
            let newest = mine
                .iter()
                .filter(|w| w.labels.stage == s.name)
                .max_by_key(|w| w.labels.attempt);
            stage(&msgs, newest.copied())
        })
        .collect();
    Resumed {
        stages,
        stop: stop_of(history),
        started_ms: history.first().map(|p| p.timestamp_unix_ms),
        workers: mine.iter().map(|w| w.name.clone()).collect(),
    }
}

/// The stop the history shows had begun: the run-level "stopping" message (written
/// before any worker is deleted), or a stage cancelled.
fn stop_of(history: &[PipelineProgress]) -> Option<Stop> {
    history
        .iter()
        .find_map(|p| match (p.stage.is_empty(), p.failure_class.as_str()) {
            (true, "cancelled") => Some(Stop::Cancelled),
            (true, "timeout") => Some(Stop::TimedOut),
            (false, _) if p.stage_state() == StageState::Cancelled => Some(Stop::Cancelled),
            _ => None,
        })
}

fn stage(msgs: &[&PipelineProgress], newest: Option<&WorkerObs>) -> StageResume {
    // A stage never reopens once ended, whatever came after (a queue position that
    // raced with a cancel).
    if let Some(status) = msgs.iter().rev().find_map(|p| done(p.stage_state())) {
        return StageResume::Done(status);
    }
    let Some(last) = msgs.last() else {
        return newest.map_or(StageResume::Waiting, |w| adopt(msgs, w));
    };
    let recorded = attempt_of(last);
    // The attempt the history is waiting for: after a retry message, the next one.
    let expected = if last.stage_state() == StageState::Retrying {
        recorded + 1
    } else {
        recorded
    };
    if let Some(w) = newest.filter(|w| w.labels.attempt >= expected) {
        return adopt(msgs, w);
    }
    match last.stage_state() {
        StageState::Queued | StageState::Retrying => StageResume::Begin(expected.max(1)),
        _ => {
            let worker = msgs
                .iter()
                .rev()
                .find(|p| attempt_of(p) == recorded && !p.worker.is_empty())
                .map(|p| p.worker.clone());
            match worker {
                Some(worker) => StageResume::Lost {
                    worker,
                    attempt: recorded,
                },
                // Started, yet no message named its worker: begin that attempt again.
                None => StageResume::Begin(recorded.max(1)),
            }
        }
    }
}

fn adopt(msgs: &[&PipelineProgress], w: &WorkerObs) -> StageResume {
    let of_attempt = |p: &&&PipelineProgress| attempt_of(p) == w.labels.attempt;
    StageResume::Adopt {
        worker: w.name.clone(),
        attempt: w.labels.attempt,
        running: msgs
            .iter()
            .filter(of_attempt)
            .any(|p| p.stage_state() == StageState::Running),
        created_ms: msgs
            .iter()
            .filter(of_attempt)
            .find(|p| p.stage_state() == StageState::Starting)
            .map(|p| p.timestamp_unix_ms),
    }
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
