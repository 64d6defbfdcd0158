//! The scaler against the in-memory backend: scale-up and scale-down under the
//! cap and the capacity check, a run from submission to its recorded end, and
//! start-up recovery with the orphan sweep. The real backends run the same
//! scaler end to end (tests/grpc.rs, crates/steward/tests/ottoscaler/).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Options, Scaler};
use crate::backend::WorkerEvent;
use crate::backend::fake::{Call, Fake, obs};
use crate::core::config::Config;
use crate::core::room::{CapacityCheck, Shortfall};
use crate::core::teams::{Caller, DEFAULT_TEAM};
use crate::core::worker::{Group, GroupRecord, Phase, WorkerObs};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::proto::{self, RunState};

mod recovery;
mod teams;

struct Setup {
    fake: Arc<Fake>,
    calls: mpsc::UnboundedReceiver<Call>,
    scaler: Arc<Scaler>,
    _stop: tokio_util::sync::DropGuard,
}

async fn started(opts: Options, prepare: impl FnOnce(&Fake)) -> Setup {
    let (fake, calls) = Fake::new();
    prepare(&fake);
    let scaler = Scaler::new(fake.clone(), Config::default(), opts, Metrics::default());
    let stop = CancellationToken::new();
    scaler.start(stop.clone()).await.unwrap();
    Setup {
        fake,
        calls,
        scaler,
        _stop: stop.drop_guard(),
    }
}

impl Setup {
    async fn next(&mut self) -> Call {
        tokio::time::timeout(Duration::from_secs(10), self.calls.recv())
            .await
            .expect("another backend call")
            .expect("the call channel is open")
    }

    /// Waits (with a deadline) until the worker index shows `n` workers of `task`.
    async fn indexed(&self, task: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.scaler.workers(task, "").len() != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the index never showed {n} workers of {task}: {:?}",
                self.scaler.workers(task, "")
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The caller of the single `--token`: the admin team "default".
fn admin() -> Caller {
    Caller {
        team: DEFAULT_TEAM.into(),
        admin: true,
    }
}

fn scale(task: &str, count: i32) -> proto::ScaleRequest {
    proto::ScaleRequest {
        task_id: task.into(),
        worker_count: count,
        worker: Some(proto::WorkerTemplate {
            image: "img".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A run `id` of one stage `a`.
fn one_stage(id: &str) -> proto::PipelineRequest {
    proto::PipelineRequest {
        run_id: id.into(),
        stages: vec![proto::Stage {
            name: "a".into(),
            worker: Some(proto::WorkerTemplate {
                image: "img".into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn worker(name: &str, group: Group) -> WorkerObs {
    WorkerObs::fixture(name, group, Phase::Running)
}

#[tokio::test]
async fn scale_up_fills_the_cap_and_scale_down_removes_the_task_with_its_last_worker() {
    let opts = Options {
        max_workers: 2,
        ..Options::default()
    };
    let mut s = started(opts, |_| {}).await;
    let (created, waiting) = s.scaler.scale_up(&admin(), &scale("t", 2)).await.unwrap();
    assert_eq!((created.len(), waiting), (2, None));
    let Call::PutGroup(record) = s.next().await else {
        panic!("the task's record comes first")
    };
    assert_eq!(
        (record.group, record.state.as_str()),
        (Group::Task("t".into()), "active")
    );
    for name in &created {
        let Call::Create(plan) = s.next().await else {
            panic!("a worker is created")
        };
        assert_eq!(&plan.name, name);
        assert!(name.starts_with("t-") && name.len() == 8, "{name}");
        assert_eq!(plan.labels.group, Group::Task("t".into()));
        assert_eq!(plan.env["OTTOSCALER_TASK_ID"], "t");
        assert_eq!(plan.requests["cpu"], "100m", "the default class");
    }
    s.indexed("t", 2).await;
    assert_eq!(s.scaler.usage(), (2, 2, 0));
    let e = s
        .scaler
        .scale_up(&admin(), &scale("u", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::OverCapacity {
                requested: 1,
                in_use: 2,
                cap: 2
            }
        ),
        "{e}"
    );
    let e = s
        .scaler
        .scale_up(&admin(), &scale("u", 3))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "worker_count: 3 is outside 1..=2 (the concurrency cap)"
    );
    let e = s
        .scaler
        .scale_down(&admin(), &scale("nope", 0))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "task \"nope\" not found");

    let mut one = scale("t", 1);
    one.grace_period_seconds = 3;
    let (removed, left) = s.scaler.scale_down(&admin(), &one).await.unwrap();
    assert_eq!((removed.len(), left), (1, 1));
    assert_eq!(
        s.next().await,
        Call::Delete(removed[0].clone(), Duration::from_secs(3))
    );
    s.indexed("t", 1).await;
    let (removed, left) = s.scaler.scale_down(&admin(), &scale("t", 0)).await.unwrap();
    assert_eq!((removed.len(), left), (1, 0));
    assert_eq!(
        s.next().await,
        Call::Delete(removed[0].clone(), Duration::from_secs(10))
    );
    assert_eq!(s.next().await, Call::DeleteGroup(Group::Task("t".into())));
    s.indexed("t", 0).await;
    assert_eq!(s.scaler.usage(), (2, 0, 0), "the permits came back");
}

#[tokio::test]
async fn the_capacity_check_waits_or_refuses_creating_nothing() {
    let short = Shortfall {
        placed: 0,
        count: 1,
        reason: "only 0 of 1 fit".into(),
    };
    let strict = Options {
        capacity: CapacityCheck::Strict,
        ..Options::default()
    };
    let mut s = started(strict, |f| f.with(|st| st.shortfall = Some(short.clone()))).await;
    let e = s
        .scaler
        .scale_up(&admin(), &scale("t", 1))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "worker_count: only 0 of 1 fit");
    assert_eq!(e.to_status().code(), tonic::Code::ResourceExhausted);
    assert!(s.calls.try_recv().is_err(), "nothing was written");

    let mut s = started(Options::default(), |f| {
        f.with(|st| st.shortfall = Some(short.clone()))
    })
    .await;
    let (created, waiting) = s.scaler.scale_up(&admin(), &scale("t", 1)).await.unwrap();
    assert_eq!(created.len(), 1);
    assert_eq!(waiting.as_deref(), Some("only 0 of 1 fit"));
    assert!(matches!(s.next().await, Call::PutGroup(_)));
    assert!(matches!(s.next().await, Call::Create(_)));
}

#[tokio::test]
async fn a_run_is_recorded_from_submission_to_its_end() {
    let mut s = started(Options::default(), |_| {}).await;
    let req = one_stage("r");
    let (id, progress) = s.scaler.submit(&admin(), &req).await.unwrap();
    assert_eq!(id, "r");
    let Call::PutGroup(running) = s.next().await else {
        panic!("the run's record comes first")
    };
    assert_eq!(
        (running.state.as_str(), running.finished_ms),
        ("running", None)
    );
    assert!(matches!(
        s.scaler.submit(&admin(), &req).await.unwrap_err(),
        Error::AlreadyExists(id) if id == "r"
    ));
    let Call::Create(plan) = s.next().await else {
        panic!("the stage's worker")
    };
    assert_eq!(plan.name, "r-a-1");
    // The backend's watch reports the end; the pump routes it to the driver.
    s.fake
        .report(WorkerEvent::Applied(obs(&plan, Phase::Succeeded)));
    assert_eq!(s.next().await, Call::Delete("r-a-1".into(), Duration::ZERO));
    let Call::PutGroup(ended) = s.next().await else {
        panic!("the run's end is recorded")
    };
    assert_eq!(
        (ended.state.as_str(), ended.reason.as_str()),
        ("succeeded", "succeeded")
    );
    assert!(ended.finished_ms.is_some());
    let last = progress.since(0).pop().unwrap();
    assert!(last.r#final);
    assert_eq!(
        (last.run_state(), last.message.as_str()),
        (RunState::Succeeded, "run succeeded")
    );
    assert!(
        !s.scaler.cancel(&admin(), "r", "").unwrap(),
        "it had already ended"
    );
    assert!(matches!(
        s.scaler.cancel(&admin(), "x", ""),
        Err(Error::NotFound { kind: "run", .. })
    ));
    let e = s
        .scaler
        .submit(&admin(), &proto::PipelineRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "stages: a pipeline needs at least one stage");
}
