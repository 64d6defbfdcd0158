use super::*;
use crate::core::worker::WorkerLabels;

fn pipeline() -> Pipeline {
    let yaml = "stages:\n  - name: a\n    command: [x]\n  - name: b\n    depends_on: [a]\n    command: [x]\n";
    crate::core::spec::validate(&crate::core::pipeline_file::parse(yaml).unwrap()).unwrap()
}

fn msg(stage: &str, state: StageState, attempt: i32, worker: &str, ts: i64) -> PipelineProgress {
    PipelineProgress {
        stage: stage.into(),
        stage_state: state as i32,
        attempt,
        worker: worker.into(),
        timestamp_unix_ms: ts,
        ..Default::default()
    }
}

fn worker(run: &str, stage: &str, attempt: u32, phase: Phase) -> WorkerObs {
    WorkerObs {
        labels: WorkerLabels {
            group: Group::Run(run.into()),
            stage: stage.into(),
            attempt,
            team: "default".into(),
            class: String::new(),
        },
        ..WorkerObs::fixture(
            &format!("{run}-{stage}-{attempt}"),
            Group::Run(run.into()),
            phase,
        )
    }
}

fn started(ts: i64) -> PipelineProgress {
    PipelineProgress {
        message: "run started".into(),
        timestamp_unix_ms: ts,
        ..Default::default()
    }
}

#[test]
fn where_each_stage_stands() {
    use StageState::{Cancelled, Failed, Queued, Retrying, Running, Starting, Succeeded};
    let adopt = |attempt: u32, running: bool, created_ms: Option<i64>| StageResume::Adopt {
        worker: format!("r-a-{attempt}"),
        attempt,
        running,
        created_ms,
    };
    // (what, stage a's messages, workers of stage a, where a stands)
    let cases: Vec<(&str, Vec<PipelineProgress>, Vec<WorkerObs>, StageResume)> = vec![
        ("never mentioned", vec![], vec![], StageResume::Waiting),
        (
            "created, crash before any message was written",
            vec![],
            vec![worker("r", "a", 1, Phase::Pending)],
            adopt(1, false, None),
        ),
        (
            "succeeded: never again, even with its pod there",
            vec![
                msg("a", Running, 1, "r-a-1", 5),
                msg("a", Succeeded, 1, "r-a-1", 6),
            ],
            vec![worker("r", "a", 1, Phase::Succeeded)],
            StageResume::Done(StageStatus::Succeeded),
        ),
        (
            "failed for good",
            vec![msg("a", Failed, 3, "", 6)],
            vec![],
            StageResume::Done(StageStatus::Failed),
        ),
        (
            "cancelled",
            vec![msg("a", Cancelled, 1, "", 6)],
            vec![],
            StageResume::Done(StageStatus::Cancelled),
        ),
        (
            "running, pod there (and done while we were away)",
            vec![
                msg("a", Starting, 1, "r-a-1", 4),
                msg("a", Running, 1, "r-a-1", 5),
            ],
            vec![worker("r", "a", 1, Phase::Succeeded)],
            adopt(1, true, Some(4)),
        ),
        (
            "starting, pod there",
            vec![
                msg("a", Queued, 1, "", 3),
                msg("a", Starting, 1, "r-a-1", 4),
            ],
            vec![worker("r", "a", 1, Phase::Pending)],
            adopt(1, false, Some(4)),
        ),
        (
            "running, pod deleted while the scaler was down",
            vec![
                msg("a", Starting, 2, "r-a-2", 4),
                msg("a", Running, 2, "r-a-2", 5),
            ],
            vec![],
            StageResume::Lost {
                worker: "r-a-2".into(),
                attempt: 2,
            },
        ),
        (
            "queued: queue that attempt again",
            vec![msg("a", Queued, 1, "", 3)],
            vec![],
            StageResume::Begin(1),
        ),
        (
            "queued, crash after its pod was created",
            vec![msg("a", Queued, 1, "", 3)],
            vec![worker("r", "a", 1, Phase::Running)],
            adopt(1, false, None),
        ),
        (
            "waiting for its retry: the next attempt, not the failed one's pod",
            vec![
                msg("a", Running, 1, "r-a-1", 4),
                msg("a", Retrying, 1, "r-a-1", 5),
            ],
            vec![worker("r", "a", 1, Phase::Failed)],
            StageResume::Begin(2),
        ),
        (
            "the retry's pod was created before the crash",
            vec![msg("a", Retrying, 1, "r-a-1", 5)],
            vec![
                worker("r", "a", 1, Phase::Failed),
                worker("r", "a", 2, Phase::Pending),
            ],
            adopt(2, false, None),
        ),
        (
            "an older attempt's pod alone is not the current attempt",
            vec![msg("a", Starting, 2, "r-a-2", 7)],
            vec![worker("r", "a", 1, Phase::Failed)],
            StageResume::Lost {
                worker: "r-a-2".into(),
                attempt: 2,
            },
        ),
        (
            "a pod on its way out is not adopted",
            vec![msg("a", Running, 1, "r-a-1", 5)],
            vec![worker("r", "a", 1, Phase::Terminating)],
            StageResume::Lost {
                worker: "r-a-1".into(),
                attempt: 1,
            },
        ),
        (
            "ended stays ended: a queue position after the cancel does not reopen it",
            vec![msg("a", Cancelled, 1, "", 6), msg("a", Queued, 1, "", 7)],
            vec![],
            StageResume::Done(StageStatus::Cancelled),
        ),
        (
            "another run's pod of the same stage name is not ours",
            vec![],
            vec![worker("other", "a", 1, Phase::Running)],
            StageResume::Waiting,
        ),
    ];
    for (what, msgs, workers, want) in cases {
        let mut history = vec![started(1)];
        history.extend(msgs);
        let got = resume("r", &pipeline(), &history, &workers);
        assert_eq!(got.stages[0], want, "{what}");
        assert_eq!(got.stages[1], StageResume::Waiting, "{what}: b untouched");
        assert_eq!(got.started_ms, Some(1), "{what}");
        let mine: Vec<String> = workers
            .iter()
            .filter(|w| w.labels.group == Group::Run("r".into()) && w.phase != Phase::Terminating)
            .map(|w| w.name.clone())
            .collect();
        assert_eq!(
            got.workers, mine,
            "{what}: every worker of the run is kept for the end"
        );
    }
}

#[test]
fn a_cancel_that_had_begun_goes_on() {
    let history = vec![
        started(1),
        msg("a", StageState::Cancelled, 1, "", 2),
        msg("b", StageState::Skipped, 0, "", 3),
    ];
    let got = resume("r", &pipeline(), &history, &[]);
    assert_eq!(got.stop, Some(Stop::Cancelled));
    // The run-level stopping message is written before any worker is deleted: it
    // alone says the stop had begun, with the stages still recorded as running.
    let stopping = |class: &str| PipelineProgress {
        message: "stopping".into(),
        failure_class: class.into(),
        ..started(2)
    };
    let running = msg("a", StageState::Running, 1, "r-a-1", 2);
    for (class, want) in [("cancelled", Stop::Cancelled), ("timeout", Stop::TimedOut)] {
        let h = vec![started(1), running.clone(), stopping(class)];
        assert_eq!(
            resume("r", &pipeline(), &h, &[]).stop,
            Some(want),
            "{class}"
        );
    }
    // A stage's own timeout is not a stop of the run.
    let stage_timeout = PipelineProgress {
        failure_class: "timeout".into(),
        ..msg("a", StageState::Retrying, 1, "r-a-1", 3)
    };
    let h = vec![started(1), stage_timeout];
    assert_eq!(resume("r", &pipeline(), &h, &[]).stop, None);
    let plain = resume("r", &pipeline(), &[started(1)], &[]);
    assert_eq!(plain.stop, None);
    assert_eq!(resume("r", &pipeline(), &[], &[]).started_ms, None);
}
