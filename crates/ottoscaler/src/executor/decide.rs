//! The driver's decisions that need no I/O: what an observation of the current
//! attempt's worker means, the words of a failed attempt, and what a stop or the
//! end of a run does to states. Table-tested; the driver only applies them.

use super::RunEnd;
use crate::core::retry::FailureClass;
use crate::core::schedule::{Outcome, StageStatus, Stop};
use crate::core::worker::{Phase, WorkerObs};
use crate::proto::{RunState, StageState};

/// What an observation of the current attempt's worker means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// The attempt succeeded.
    Succeeded,
    /// The attempt failed with `class`; `delete` when its worker is still there
    /// (a Pending pod that can never start).
    Failed {
        /// Why.
        class: FailureClass,
        /// Delete the worker first.
        delete: bool,
    },
    /// Still Pending, and the scheduler says why: it waits for capacity.
    Waiting(String),
    /// The worker started running.
    Running,
    /// The worker went away before it finished.
    Lost,
    /// Nothing the driver acts on (a repeat, or a state it already knows).
    Nothing,
}

/// Reacts to `obs` (`gone`: the worker was deleted) of an attempt that is
/// `starting` (created, not yet seen running) or running.
pub fn react(obs: &WorkerObs, gone: bool, starting: bool) -> Reaction {
    match (gone, obs.phase, obs.failure) {
        (true, _, _) => Reaction::Lost,
        (false, Phase::Succeeded, _) => Reaction::Succeeded,
        (false, Phase::Failed, f) | (false, Phase::Pending, f @ Some(_)) => Reaction::Failed {
            class: f.unwrap_or(FailureClass::ExitCode(obs.exit_code.unwrap_or(1))),
            delete: obs.phase == Phase::Pending,
        },
        (false, Phase::Pending, None) if starting => obs
            .unschedulable
            .clone()
            .map_or(Reaction::Nothing, Reaction::Waiting),
        (false, Phase::Running, _) if starting => Reaction::Running,
        _ => Reaction::Nothing,
    }
}

/// The progress text of a failed attempt.
pub fn failure_text(attempt: u32, class: FailureClass) -> String {
    match class {
        FailureClass::ExitCode(c) => format!("attempt {attempt} failed: exit code {c}"),
        c => format!("attempt {attempt} failed: {}", c.label()),
    }
}

/// How a run whose stages ended in `outcome` (having stopped for `stop`) ends.
pub fn end(outcome: Outcome, stop: Option<Stop>) -> RunEnd {
    let (state, text) = match outcome {
        Outcome::Succeeded => (RunState::Succeeded, "succeeded"),
        Outcome::Failed if stop == Some(Stop::TimedOut) => {
            (RunState::Failed, "failed: the run timed out")
        }
        Outcome::Failed => (RunState::Failed, "failed"),
        Outcome::Cancelled => (RunState::Cancelled, "cancelled"),
    };
    RunEnd { state, text }
}

/// The word for a run's end state in records, metrics and webhooks.
pub fn state_word(state: RunState) -> &'static str {
    match state {
        RunState::Succeeded => "succeeded",
        RunState::Cancelled => "cancelled",
        _ => "failed",
    }
}

/// What a stop does to an active (non-finally) stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// The stage's progress state.
    pub state: StageState,
    /// Its status for the scheduler.
    pub status: StageStatus,
    /// The progress text.
    pub text: &'static str,
    /// The failure class reported.
    pub class: &'static str,
}

/// What stopping the run for `why` does to a stage that was active.
pub fn stopped(why: Stop) -> Stopped {
    match why {
        Stop::Cancelled => Stopped {
            state: StageState::Cancelled,
            status: StageStatus::Cancelled,
            text: "cancelled",
            class: "cancelled",
        },
        Stop::TimedOut => Stopped {
            state: StageState::Failed,
            status: StageStatus::Failed,
            text: "run timed out",
            class: "timeout",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::worker::Group;

    fn obs(phase: Phase, failure: Option<FailureClass>, exit: Option<i32>) -> WorkerObs {
        WorkerObs {
            failure,
            exit_code: exit,
            ..WorkerObs::fixture("w", Group::Run("r".into()), phase)
        }
    }

    #[test]
    fn reactions() {
        use FailureClass::{ExitCode, ImagePull, OomKilled};
        use Phase::{Failed, Pending, Running, Succeeded, Terminating};
        let failed = |class, delete| Reaction::Failed { class, delete };
        let mut waiting = obs(Pending, None, None);
        waiting.unschedulable = Some("0/3 nodes are available".into());
        // (observation, gone, starting, reaction)
        let cases = [
            (
                obs(Succeeded, None, Some(0)),
                false,
                false,
                Reaction::Succeeded,
            ),
            (
                obs(Succeeded, None, Some(0)),
                false,
                true,
                Reaction::Succeeded,
            ),
            (
                obs(Failed, None, Some(2)),
                false,
                false,
                failed(ExitCode(2), false),
            ),
            (
                obs(Failed, None, None),
                false,
                false,
                failed(ExitCode(1), false),
            ),
            (
                obs(Failed, Some(OomKilled), Some(137)),
                false,
                false,
                failed(OomKilled, false),
            ),
            (
                obs(Pending, Some(ImagePull), None),
                false,
                true,
                failed(ImagePull, true),
            ),
            (obs(Pending, None, None), false, true, Reaction::Nothing),
            (
                waiting.clone(),
                false,
                true,
                Reaction::Waiting("0/3 nodes are available".into()),
            ),
            (waiting.clone(), false, false, Reaction::Nothing),
            (obs(Running, None, None), false, true, Reaction::Running),
            (obs(Running, None, None), false, false, Reaction::Nothing),
            (
                obs(Terminating, None, None),
                false,
                false,
                Reaction::Nothing,
            ),
            (obs(Running, None, None), true, false, Reaction::Lost),
            (obs(Succeeded, None, Some(0)), true, false, Reaction::Lost),
        ];
        for (o, gone, starting, want) in cases {
            assert_eq!(
                react(&o, gone, starting),
                want,
                "{o:?} gone={gone} starting={starting}"
            );
        }
    }

    #[test]
    fn texts_and_ends() {
        assert_eq!(
            failure_text(2, FailureClass::ExitCode(3)),
            "attempt 2 failed: exit code 3"
        );
        assert_eq!(
            failure_text(1, FailureClass::Evicted),
            "attempt 1 failed: evicted"
        );
        let cases = [
            (Outcome::Succeeded, None, RunState::Succeeded, "succeeded"),
            (Outcome::Failed, None, RunState::Failed, "failed"),
            (
                Outcome::Failed,
                Some(Stop::Cancelled),
                RunState::Failed,
                "failed",
            ),
            (
                Outcome::Failed,
                Some(Stop::TimedOut),
                RunState::Failed,
                "failed: the run timed out",
            ),
            (
                Outcome::Cancelled,
                Some(Stop::Cancelled),
                RunState::Cancelled,
                "cancelled",
            ),
        ];
        for (outcome, stop, state, text) in cases {
            assert_eq!(
                end(outcome, stop),
                RunEnd { state, text },
                "{outcome:?} {stop:?}"
            );
        }
        assert_eq!(stopped(Stop::Cancelled).status, StageStatus::Cancelled);
        assert_eq!(stopped(Stop::TimedOut).status, StageStatus::Failed);
        assert_eq!(stopped(Stop::TimedOut).class, "timeout");
        assert_eq!(stopped(Stop::Cancelled).state, StageState::Cancelled);
    }
}
