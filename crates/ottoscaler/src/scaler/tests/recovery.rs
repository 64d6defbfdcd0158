//! Start-up recovery against the in-memory backend: interrupted legacy records,
//! runs continued with the workers found, and a stop that had begun.

use super::*;

#[tokio::test]
async fn recovery_fails_interrupted_runs_keeps_tasks_and_deletes_orphans() {
    let record = |group: Group, state: &str| GroupRecord {
        group,
        team: "default".into(),
        state: state.into(),
        reason: String::new(),
        finished_ms: None,
        request: Vec::new(),
        history: Vec::new(),
    };
    let mut s = started(Options::default(), |f| {
        f.with(|st| {
            for r in [
                record(Group::Run("cut".into()), "running"),
                record(Group::Run("done".into()), "succeeded"),
                record(Group::Task("t".into()), "active"),
            ] {
                st.groups.insert(r.group.clone(), r);
            }
            for w in [
                worker("cut-s-1", Group::Run("cut".into())),
                worker("t-keep", Group::Task("t".into())),
                worker("gone-x", Group::Task("gone".into())),
            ] {
                st.workers.insert(w.name.clone(), w);
            }
        });
    })
    .await;
    let Call::PutGroup(cut) = s.next().await else {
        panic!("the interrupted run is recorded as failed")
    };
    assert_eq!(
        (cut.group, cut.state.as_str()),
        (Group::Run("cut".into()), "failed")
    );
    assert!(
        cut.reason.starts_with("interrupted: the scaler restarted"),
        "{}",
        cut.reason
    );
    let mut deleted = vec![];
    for _ in 0..2 {
        let Call::Delete(name, grace) = s.next().await else {
            panic!("an orphan is deleted")
        };
        assert_eq!(grace, Duration::ZERO);
        deleted.push(name);
    }
    deleted.sort();
    assert_eq!(deleted, ["cut-s-1", "gone-x"]);
    let final_state = |id: &str| {
        s.scaler
            .progress(&admin(), id)
            .unwrap()
            .since(0)
            .pop()
            .unwrap()
    };
    assert_eq!(final_state("cut").run_state(), RunState::Failed);
    assert_eq!(final_state("done").run_state(), RunState::Succeeded);
    s.indexed("t", 1).await;
    let (removed, left) = s.scaler.scale_down(&admin(), &scale("t", 0)).await.unwrap();
    assert_eq!((removed, left), (vec!["t-keep".to_string()], 0));
}

#[tokio::test]
async fn recovery_continues_a_recorded_run_with_the_worker_it_finds() {
    let stage = |name: &str, deps: &[&str]| proto::Stage {
        name: name.into(),
        depends_on: deps.iter().map(|d| (*d).to_string()).collect(),
        worker: Some(proto::WorkerTemplate {
            image: "img".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let req = proto::PipelineRequest {
        run_id: "go".into(),
        stages: vec![stage("a", &[]), stage("b", &["a"])],
        ..Default::default()
    };
    let msg =
        |seq: u64, stage: &str, state: proto::StageState, worker: &str| proto::PipelineProgress {
            seq,
            run_id: "go".into(),
            stage: stage.into(),
            stage_state: state as i32,
            attempt: i32::from(!stage.is_empty()),
            worker: worker.into(),
            timestamp_unix_ms: crate::core::clock::now_ms(),
            ..Default::default()
        };
    let history = vec![
        msg(1, "", proto::StageState::Unspecified, ""),
        msg(2, "a", proto::StageState::Starting, "go-a-1"),
        msg(3, "a", proto::StageState::Running, "go-a-1"),
    ];
    let mut a = worker("go-a-1", Group::Run("go".into()));
    a.labels.stage = "a".into();
    let mut s = started(Options::default(), |f| {
        f.with(|st| {
            let r = GroupRecord {
                group: Group::Run("go".into()),
                team: "default".into(),
                state: "running".into(),
                reason: String::new(),
                finished_ms: None,
                request: crate::core::history::encode_request(&req),
                history: history.clone(),
            };
            st.groups.insert(r.group.clone(), r);
            st.workers.insert(a.name.clone(), a.clone());
        });
    })
    .await;
    // The adopted worker finishes; the next stage's worker is the next call (no
    // deletion of the adopted one as an orphan came before it).
    a.phase = Phase::Succeeded;
    a.exit_code = Some(0);
    s.fake.report(WorkerEvent::Applied(a));
    let Call::Create(b) = s.next().await else {
        panic!("stage b starts once the adopted worker of a succeeded")
    };
    assert_eq!(b.name, "go-b-1");
    let progress = s.scaler.progress(&admin(), "go").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while progress.since(0).len() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            progress.since(0)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = progress.since(0);
    assert_eq!(
        got[..3],
        history[..],
        "the written history keeps its numbers"
    );
    assert!(
        got[3].message.starts_with(
            "run resumed after a scaler restart: 0 of 2 stages ended; adopted worker go-a-1"
        ),
        "{got:?}"
    );
    assert_eq!(
        (got[4].stage.as_str(), got[4].stage_state()),
        ("a", proto::StageState::Succeeded)
    );
    // What clients were shown is what the record holds.
    let written = s
        .fake
        .with(|st| st.groups[&Group::Run("go".into())].history.clone());
    assert!(
        written.len() >= 5 && written[..5] == got[..5],
        "{written:?}"
    );
}

#[tokio::test]
async fn a_cancel_written_before_a_crash_goes_on_after_it() {
    let req = one_stage("stop");
    let now = crate::core::clock::now_ms();
    let history = vec![
        proto::PipelineProgress {
            seq: 1,
            timestamp_unix_ms: now,
            ..Default::default()
        },
        proto::PipelineProgress {
            seq: 2,
            stage: "a".into(),
            stage_state: proto::StageState::Running as i32,
            attempt: 1,
            worker: "stop-a-1".into(),
            timestamp_unix_ms: now,
            ..Default::default()
        },
        // Written before the old scaler deleted anything; it crashed right after.
        proto::PipelineProgress {
            seq: 3,
            message: "stopping: cancelled".into(),
            failure_class: "cancelled".into(),
            timestamp_unix_ms: now,
            ..Default::default()
        },
    ];
    let mut a = worker("stop-a-1", Group::Run("stop".into()));
    a.labels.stage = "a".into();
    let mut s = started(Options::default(), |f| {
        f.with(|st| {
            let r = GroupRecord {
                group: Group::Run("stop".into()),
                team: "default".into(),
                state: "running".into(),
                reason: String::new(),
                finished_ms: None,
                request: crate::core::history::encode_request(&req),
                history,
            };
            st.groups.insert(r.group.clone(), r);
            st.workers.insert(a.name.clone(), a.clone());
        });
    })
    .await;
    // The adopted worker is stopped, not retried; the run ends cancelled.
    let Call::Delete(name, _) = s.next().await else {
        panic!("the stop goes on: the adopted worker is deleted")
    };
    assert_eq!(name, "stop-a-1");
    let progress = s.scaler.progress(&admin(), "stop").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while progress.final_message().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            progress.since(0)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        progress.final_message().unwrap().run_state(),
        RunState::Cancelled
    );
    let creates = s.fake.with(|st| st.workers.len());
    assert_eq!(creates, 0, "no worker was created for the cancelled run");
}
