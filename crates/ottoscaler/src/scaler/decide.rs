//! The scaler's decisions that need no I/O: which workers a status query shows,
//! the checks of a scale request's numbers, what is left after a scale-down, and
//! what recovery makes of a record. Table-tested.

use std::time::Duration;

use crate::core::spec::{SpecError, bad};
use crate::core::worker::{Group, GroupRecord, Phase, WorkerObs};
use crate::proto::RunState;

/// Whether `w` belongs to `task` or `run` (empty: any; a task filter excludes
/// runs' workers and the other way round).
pub fn of(w: &WorkerObs, task: &str, run: &str) -> bool {
    match &w.labels.group {
        Group::Task(t) => run.is_empty() && (task.is_empty() || t == task),
        Group::Run(r) => task.is_empty() && (run.is_empty() || r == run),
    }
}

/// ScaleUp's `worker_count`: 1 up to the concurrency cap.
pub fn scale_up_count(requested: i32, cap: u32) -> Result<u32, SpecError> {
    u32::try_from(requested)
        .ok()
        .filter(|n| (1..=cap).contains(n))
        .ok_or_else(|| {
            bad(
                "worker_count",
                format!("{requested} is outside 1..={cap} (the concurrency cap)"),
            )
        })
}

/// ScaleDown's `worker_count` (0 = all) and grace period (0 = `default`).
pub fn scale_down_args(
    count: i32,
    grace_secs: i32,
    default: Duration,
) -> Result<(usize, Duration), SpecError> {
    let count =
        usize::try_from(count).map_err(|_| bad("worker_count", format!("{count} is negative")))?;
    let grace =
        u64::try_from(grace_secs).map_err(|_| bad("grace_period_seconds", "is negative"))?;
    let grace = if grace == 0 {
        default
    } else {
        Duration::from_secs(grace)
    };
    Ok((count, grace))
}

/// Workers of a task still there after removing `picked`. Workers already on
/// their way out (an earlier scale-down's grace period) are not left: counting
/// them kept the task record after its last worker.
pub fn left_after(workers: &[WorkerObs], picked: &[String]) -> usize {
    workers
        .iter()
        .filter(|w| w.phase != Phase::Terminating && !picked.contains(&w.name))
        .count()
}

/// The record state (and metric label) of a run that ended in `state`.
pub fn ended(state: RunState) -> &'static str {
    crate::executor::decide::state_word(state)
}

/// Workers by (class, state, team), for the workers gauge. A worker of an older
/// version, with no class label, counts as class "unknown".
pub fn worker_counts<'a>(
    workers: impl Iterator<Item = &'a WorkerObs>,
) -> std::collections::BTreeMap<(String, String, String), i64> {
    let mut m = std::collections::BTreeMap::new();
    for w in workers {
        let class = if w.labels.class.is_empty() {
            "unknown".to_string()
        } else {
            w.labels.class.clone()
        };
        let state = w.phase.as_str().to_ascii_lowercase();
        *m.entry((class, state, w.labels.team.clone())).or_insert(0) += 1;
    }
    m
}

/// The Event a run's end is published as: reason, and whether it is a Warning.
pub fn end_event(state: RunState) -> (&'static str, bool) {
    match state {
        RunState::Succeeded => ("PipelineSucceeded", false),
        RunState::Cancelled => ("PipelineCancelled", false),
        _ => ("PipelineFailed", true),
    }
}

/// The final state a recorded run is shown with.
pub fn recorded_state(record: &GroupRecord) -> RunState {
    match record.state.as_str() {
        "succeeded" => RunState::Succeeded,
        "cancelled" => RunState::Cancelled,
        _ => RunState::Failed,
    }
}

/// At start-up: a run recorded as still running was cut off by the restart; it
/// ends as failed, saying why, at `now_ms`. Other records stay as they are.
pub fn after_restart(mut r: GroupRecord, now_ms: i64) -> (GroupRecord, bool) {
    let interrupted = matches!(r.group, Group::Run(_)) && r.state == "running";
    if interrupted {
        r.state = "failed".into();
        r.reason = "interrupted: the scaler restarted while this run was in flight; its workers were deleted".into();
        r.request.clear();
        r.finished_ms = Some(now_ms);
    }
    (r, interrupted)
}

/// How much of `retention` is left for a run that finished at `finished_ms`
/// (unknown: now).
pub fn retention_left(retention: Duration, finished_ms: Option<i64>, now_ms: i64) -> Duration {
    let age = u64::try_from(now_ms - finished_ms.unwrap_or(now_ms)).unwrap_or(0);
    retention.saturating_sub(Duration::from_millis(age))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(name: &str, group: Group, phase: Phase) -> WorkerObs {
        WorkerObs::fixture(name, group, phase)
    }

    #[test]
    fn status_filter() {
        let t = worker("t", Group::Task("a".into()), Phase::Running);
        let r = worker("r", Group::Run("x".into()), Phase::Running);
        // (worker, task, run, shown)
        let cases = [
            (&t, "", "", true),
            (&t, "a", "", true),
            (&t, "b", "", false),
            (&t, "", "x", false),
            (&r, "", "", true),
            (&r, "", "x", true),
            (&r, "", "y", false),
            (&r, "a", "", false),
        ];
        for (w, task, run, want) in cases {
            assert_eq!(of(w, task, run), want, "{} task={task} run={run}", w.name);
        }
    }

    #[test]
    fn scale_numbers() {
        assert_eq!(scale_up_count(3, 10), Ok(3));
        assert_eq!(scale_up_count(10, 10), Ok(10));
        for bad_count in [0, -1, 11] {
            let e = scale_up_count(bad_count, 10).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("worker_count: {bad_count} is outside 1..=10 (the concurrency cap)")
            );
        }
        let d = Duration::from_secs(10);
        assert_eq!(scale_down_args(0, 0, d), Ok((0, d)));
        assert_eq!(scale_down_args(2, 5, d), Ok((2, Duration::from_secs(5))));
        assert_eq!(
            scale_down_args(-1, 0, d).unwrap_err().to_string(),
            "worker_count: -1 is negative"
        );
        assert_eq!(
            scale_down_args(1, -3, d).unwrap_err().to_string(),
            "grace_period_seconds: is negative"
        );
    }

    #[test]
    fn what_is_left() {
        let g = || Group::Task("a".into());
        let ws = [
            worker("a", g(), Phase::Running),
            worker("b", g(), Phase::Pending),
            worker("c", g(), Phase::Terminating),
        ];
        assert_eq!(left_after(&ws, &[]), 2);
        assert_eq!(left_after(&ws, &["a".into()]), 1);
        assert_eq!(left_after(&ws, &["a".into(), "b".into()]), 0);
    }

    #[test]
    fn records() {
        let cases = [
            (RunState::Succeeded, "succeeded"),
            (RunState::Cancelled, "cancelled"),
            (RunState::Failed, "failed"),
            (RunState::Running, "failed"),
        ];
        for (state, want) in cases {
            assert_eq!(ended(state), want);
        }
        assert_eq!(end_event(RunState::Succeeded), ("PipelineSucceeded", false));
        assert_eq!(end_event(RunState::Cancelled), ("PipelineCancelled", false));
        assert_eq!(end_event(RunState::Failed), ("PipelineFailed", true));
        let record = |group: Group, state: &str| GroupRecord {
            group,
            team: "default".into(),
            state: state.into(),
            reason: "why".into(),
            finished_ms: Some(5),
            request: Vec::new(),
            history: Vec::new(),
        };
        let (r, cut) = after_restart(record(Group::Run("x".into()), "running"), 99);
        assert!(cut);
        assert_eq!((r.state.as_str(), r.finished_ms), ("failed", Some(99)));
        assert!(r.reason.starts_with("interrupted: the scaler restarted"));
        assert_eq!(recorded_state(&r), RunState::Failed);
        for (group, state) in [
            (Group::Run("x".into()), "succeeded"),
            (Group::Run("x".into()), "cancelled"),
            (Group::Task("t".into()), "active"),
        ] {
            let before = record(group, state);
            assert_eq!(after_restart(before.clone(), 99), (before, false));
        }
        assert_eq!(
            recorded_state(&record(Group::Run("x".into()), "cancelled")),
            RunState::Cancelled
        );
        let hour = Duration::from_secs(3600);
        assert_eq!(
            retention_left(hour, Some(0), 60_000),
            hour - Duration::from_secs(60)
        );
        assert_eq!(retention_left(hour, None, 60_000), hour);
        assert_eq!(retention_left(hour, Some(0), 7_200_000), Duration::ZERO);
        assert_eq!(
            retention_left(hour, Some(10), 0),
            hour,
            "a clock that went back"
        );
    }

    #[test]
    fn workers_are_counted_by_class_state_and_team() {
        let mut a = WorkerObs::fixture("a", Group::Run("r".into()), Phase::Running);
        a.labels.class = "ci".into();
        let mut b = a.clone();
        b.name = "b".into();
        let mut c = WorkerObs::fixture("c", Group::Task("t".into()), Phase::Pending);
        c.labels.team = "web".into();
        let counts = worker_counts([a, b, c].iter());
        let key = |c: &str, s: &str, t: &str| (c.to_string(), s.to_string(), t.to_string());
        assert_eq!(
            counts,
            std::collections::BTreeMap::from([
                (key("ci", "running", "default"), 2),
                (key("unknown", "pending", "web"), 1),
            ])
        );
    }
}
