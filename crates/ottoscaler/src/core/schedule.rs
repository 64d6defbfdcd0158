//! The pure DAG scheduler: given every stage's state and whether the run is
//! stopping, which stages start now and which are skipped, and when the run is over.
//!
//! The driver ([`crate::executor`]) applies the decisions, waits for the next worker
//! event or timer, updates the states and asks again. Nothing here knows about pods,
//! clocks or channels.

use crate::core::spec::{Pipeline, When};

/// Where a stage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageStatus {
    /// Not started; waits for its dependencies (or for the non-finally stages).
    Waiting,
    /// An attempt is queued, starting or running, or waits for its retry back-off.
    Active,
    /// Done, successfully.
    Succeeded,
    /// Done, failed (after its last attempt).
    Failed,
    /// Not run: its condition was false, or the run stopped first.
    Skipped,
    /// Stopped by a cancel while it ran.
    Cancelled,
}

impl StageStatus {
    /// The stage has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Waiting | Self::Active)
    }
}

/// Why the run stops starting new (non-finally) stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// CancelPipeline.
    Cancelled,
    /// The whole-run timeout passed.
    TimedOut,
}

/// Why a stage is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Its `when` condition is false for its dependencies' outcomes.
    Condition,
    /// The run was cancelled or timed out before it started.
    Stopped,
}

/// A decision for one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start the stage's first attempt.
    Start(usize),
    /// Skip the stage.
    Skip(usize, SkipReason),
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every stage succeeded or was skipped by its condition.
    Succeeded,
    /// A stage failed, or the run timed out.
    Failed,
    /// Cancelled.
    Cancelled,
}

/// The stages to start or skip now. Skips are applied to a copy as they are decided,
/// so a skip that makes a downstream stage decidable is followed in the same call.
pub fn decide(p: &Pipeline, states: &[StageStatus], stop: Option<Stop>) -> Vec<Decision> {
    let mut st = states.to_vec();
    let mut out = Vec::new();
    loop {
        let mut changed = false;
        let main_done = p
            .stages
            .iter()
            .zip(&st)
            .all(|(s, x)| s.finally || x.is_terminal());
        for (i, s) in p.stages.iter().enumerate() {
            if st[i] != StageStatus::Waiting {
                continue;
            }
            if !s.finally && stop.is_some() {
                st[i] = StageStatus::Skipped;
                out.push(Decision::Skip(i, SkipReason::Stopped));
                changed = true;
                continue;
            }
            if (s.finally && !main_done) || !s.depends_on.iter().all(|&d| st[d].is_terminal()) {
                continue;
            }
            let deps = s.depends_on.iter().map(|&d| st[d]);
            let run = match s.when {
                When::Always => true,
                When::OnSuccess => deps.clone().all(|d| d == StageStatus::Succeeded),
                When::OnFailure => deps.clone().any(|d| d == StageStatus::Failed),
            };
            if run {
                st[i] = StageStatus::Active;
                out.push(Decision::Start(i));
            } else {
                st[i] = StageStatus::Skipped;
                out.push(Decision::Skip(i, SkipReason::Condition));
                changed = true;
            }
        }
        if !changed {
            return out;
        }
    }
}

/// The run's outcome once every stage has ended; `None` while any is waiting or active.
pub fn outcome(states: &[StageStatus], stop: Option<Stop>) -> Option<Outcome> {
    if !states.iter().all(|s| s.is_terminal()) {
        return None;
    }
    Some(match stop {
        Some(Stop::Cancelled) => Outcome::Cancelled,
        Some(Stop::TimedOut) => Outcome::Failed,
        None if states.contains(&StageStatus::Failed) => Outcome::Failed,
        None => Outcome::Succeeded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::validate;
    use crate::proto;
    use Decision::*;
    use StageStatus::*;

    /// `name:dep,dep:flags` with flags f (finally), F (on failure), A (always).
    fn pipeline(spec: &[&str]) -> Pipeline {
        let stages = spec
            .iter()
            .map(|s| {
                let mut parts = s.split(':');
                let name = parts.next().unwrap_or_default();
                let deps = parts.next().unwrap_or_default();
                let flags = parts.next().unwrap_or_default();
                proto::Stage {
                    name: name.into(),
                    depends_on: deps
                        .split(',')
                        .filter(|d| !d.is_empty())
                        .map(str::to_string)
                        .collect(),
                    worker: Some(proto::WorkerTemplate {
                        command: vec!["true".into()],
                        ..Default::default()
                    }),
                    finally: flags.contains('f'),
                    when: if flags.contains('F') {
                        proto::When::OnFailure as i32
                    } else if flags.contains('A') {
                        proto::When::Always as i32
                    } else {
                        0
                    },
                    ..Default::default()
                }
            })
            .collect();
        validate(&proto::PipelineRequest {
            stages,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn decide_table() {
        let diamond = pipeline(&["a", "b:a", "c:a", "d:b,c"]);
        let handlers = pipeline(&[
            "build",
            "test:build",
            "notify:test:F",
            "report:test:A",
            "clean::f",
            "after:clean:f",
        ]);
        type Case<'a> = (
            &'a str,
            &'a Pipeline,
            Vec<StageStatus>,
            Option<Stop>,
            Vec<Decision>,
        );
        let cases: Vec<Case> = vec![
            (
                "roots start",
                &diamond,
                vec![Waiting; 4],
                None,
                vec![Start(0)],
            ),
            (
                "parallel fan-out",
                &diamond,
                vec![Succeeded, Waiting, Waiting, Waiting],
                None,
                vec![Start(1), Start(2)],
            ),
            (
                "join waits for all",
                &diamond,
                vec![Succeeded, Succeeded, Active, Waiting],
                None,
                vec![],
            ),
            (
                "join starts",
                &diamond,
                vec![Succeeded, Succeeded, Succeeded, Waiting],
                None,
                vec![Start(3)],
            ),
            (
                "failure skips downstream transitively",
                &diamond,
                vec![Failed, Waiting, Waiting, Waiting],
                None,
                vec![
                    Skip(1, SkipReason::Condition),
                    Skip(2, SkipReason::Condition),
                    Skip(3, SkipReason::Condition),
                ],
            ),
            (
                "one branch failed",
                &diamond,
                vec![Succeeded, Failed, Succeeded, Waiting],
                None,
                vec![Skip(3, SkipReason::Condition)],
            ),
            (
                "nothing while active",
                &diamond,
                vec![Active, Waiting, Waiting, Waiting],
                None,
                vec![],
            ),
            (
                "finally waits for main stages",
                &handlers,
                vec![Active, Waiting, Waiting, Waiting, Waiting, Waiting],
                None,
                vec![],
            ),
            (
                "on-failure runs, always runs",
                &handlers,
                vec![Succeeded, Failed, Waiting, Waiting, Waiting, Waiting],
                None,
                vec![Start(2), Start(3)],
            ),
            (
                "on-failure skipped on success, finally then starts",
                &handlers,
                vec![Succeeded, Succeeded, Waiting, Succeeded, Waiting, Waiting],
                None,
                vec![Skip(2, SkipReason::Condition), Start(4)],
            ),
            (
                "finally chain",
                &handlers,
                vec![Succeeded, Succeeded, Skipped, Succeeded, Failed, Waiting],
                None,
                vec![Skip(5, SkipReason::Condition)],
            ),
            (
                "cancel skips waiting main stages and starts finally",
                &handlers,
                vec![Cancelled, Waiting, Waiting, Waiting, Waiting, Waiting],
                Some(Stop::Cancelled),
                vec![
                    Skip(1, SkipReason::Stopped),
                    Skip(2, SkipReason::Stopped),
                    Skip(3, SkipReason::Stopped),
                    Start(4),
                ],
            ),
            (
                "finally waits for active main stage even when stopping",
                &handlers,
                vec![Active, Waiting, Waiting, Waiting, Waiting, Waiting],
                Some(Stop::TimedOut),
                vec![
                    Skip(1, SkipReason::Stopped),
                    Skip(2, SkipReason::Stopped),
                    Skip(3, SkipReason::Stopped),
                ],
            ),
        ];
        for (name, p, states, stop, want) in cases {
            assert_eq!(decide(p, &states, stop), want, "{name}");
        }
    }

    #[test]
    fn outcome_table() {
        let cases = [
            (vec![Succeeded, Active], None, None),
            (vec![Succeeded, Skipped], None, Some(Outcome::Succeeded)),
            (vec![Succeeded, Failed], None, Some(Outcome::Failed)),
            (
                vec![Cancelled, Skipped],
                Some(Stop::Cancelled),
                Some(Outcome::Cancelled),
            ),
            (
                vec![Failed, Succeeded],
                Some(Stop::TimedOut),
                Some(Outcome::Failed),
            ),
            (vec![Waiting], None, None),
        ];
        for (states, stop, want) in cases {
            assert_eq!(outcome(&states, stop), want, "{states:?} {stop:?}");
        }
    }
}
