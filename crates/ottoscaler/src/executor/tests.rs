//! The driver against the in-memory backend, in paused time: the order in which
//! workers are created and deleted, retries after back-off, timeouts, cancel with
//! a `finally` stage, the fair queue, and how the run ends. The real backends run
//! the same driver end to end (tests/grpc.rs, crates/steward/tests/ottoscaler/).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{RunEnd, RunMsg, RunSetup, drive};
use crate::backend::fake::{Call, Fake, obs};
use crate::core::retry::FailureClass;
use crate::core::room::CapacityCheck;
use crate::core::worker::{Group, Phase, WorkerLabels, WorkerObs, WorkerPlan};
use crate::deps::RunDeps;
use crate::logs::LogHub;
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::proto::{PipelineProgress, RunState, StageState};
use crate::slots::Slots;

const GRACE: Duration = Duration::from_secs(10);

struct Run {
    fake: Arc<Fake>,
    calls: mpsc::UnboundedReceiver<Call>,
    tx: mpsc::UnboundedSender<RunMsg>,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    end: JoinHandle<RunEnd>,
    logs: LogHub,
}

/// Starts a driver for the pipeline file `yaml` as run `id` under a cap of `cap`.
fn start(id: &str, yaml: &str, cap: u32) -> Run {
    let req = crate::core::pipeline_file::parse(yaml).unwrap();
    let pipeline = crate::core::spec::validate(&req).unwrap();
    let (fake, calls) = Fake::new();
    let logs = LogHub::new(100);
    let deps = RunDeps {
        backend: fake.clone(),
        slots: Slots::new(cap),
        logs: logs.clone(),
        metrics: Metrics::default(),
        grace: GRACE,
        capacity: CapacityCheck::Wait,
        notify: crate::notify::Notifier::default(),
    };
    let workers = pipeline
        .stages
        .iter()
        .map(|s| WorkerPlan {
            name: String::new(),
            labels: WorkerLabels {
                group: Group::Task(String::new()),
                stage: String::new(),
                attempt: 1,
                team: "default".into(),
                class: "default".into(),
            },
            image: "img".into(),
            command: s.worker.command.clone(),
            env: Default::default(),
            requests: Default::default(),
            limits: Default::default(),
            annotations: Default::default(),
            node_selector: Default::default(),
            tolerations: vec![],
            grace: GRACE,
        })
        .collect::<Vec<_>>();
    let progress = Progress::new(id);
    let cancel = CancellationToken::new();
    let setup = RunSetup {
        id: id.into(),
        team: "default".into(),
        capacity: vec![None; workers.len()],
        workers,
        pipeline,
        progress: progress.clone(),
        cancel: cancel.clone(),
        resume: None,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let end = tokio::spawn(drive(deps, setup, tx.clone(), rx));
    Run {
        fake,
        calls,
        tx,
        progress,
        cancel,
        end,
        logs,
    }
}

impl Run {
    /// The next backend call (a missing one fails the test at the virtual deadline).
    async fn next(&mut self) -> Call {
        tokio::time::timeout(Duration::from_secs(3600), self.calls.recv())
            .await
            .expect("the driver makes another backend call")
            .expect("the call channel is open")
    }

    /// The next call is the creation of `name`; its plan.
    async fn created(&mut self, name: &str) -> WorkerPlan {
        match self.next().await {
            Call::Create(p) if p.name == name => p,
            other => panic!("expected the creation of {name}, got {other:?}"),
        }
    }

    async fn deleted(&mut self, name: &str, grace: Duration) {
        assert_eq!(self.next().await, Call::Delete(name.into(), grace));
    }

    fn report(&self, o: WorkerObs) {
        self.tx.send(RunMsg::Obs(o)).unwrap();
    }

    fn gone(&self, o: WorkerObs) {
        self.tx.send(RunMsg::Gone(o)).unwrap();
    }

    /// The stage's progress messages, as (state, attempt, message).
    fn stage(&self, stage: &str) -> Vec<(StageState, i32, String)> {
        self.progress
            .since(0)
            .into_iter()
            .filter(|p| p.stage == stage)
            .map(|p| (p.stage_state(), p.attempt, p.message))
            .collect()
    }

    fn all(&self) -> Vec<PipelineProgress> {
        self.progress.since(0)
    }
}

fn failed(plan: &WorkerPlan, code: i32) -> WorkerObs {
    let mut o = obs(plan, Phase::Failed);
    o.exit_code = Some(code);
    o.failure = Some(FailureClass::ExitCode(code));
    o
}

#[tokio::test(start_paused = true)]
async fn stages_run_in_dependency_order_and_every_worker_is_deleted_at_the_end() {
    let mut r = start(
        "r1",
        "stages:\n  - name: a\n    command: [x]\n  - name: b\n    depends_on: [a]\n    command: [y]\n",
        10,
    );
    let a = r.created("r1-a-1").await;
    assert_eq!(a.labels.group, Group::Run("r1".into()));
    assert_eq!((a.labels.stage.as_str(), a.labels.attempt), ("a", 1));
    assert_eq!(a.env["OTTOSCALER_RUN_ID"], "r1");
    assert_eq!(a.env["OTTOSCALER_STAGE"], "a");
    assert_eq!(a.env["OTTOSCALER_ATTEMPT"], "1");
    r.report(obs(&a, Phase::Running));
    r.report(obs(&a, Phase::Succeeded));
    let b = r.created("r1-b-1").await;
    assert_eq!(b.command, ["y"]);
    // A repeat or a stale worker's report changes nothing.
    r.report(obs(&a, Phase::Succeeded));
    r.report(obs(&b, Phase::Running));
    r.report(obs(&b, Phase::Succeeded));
    r.deleted("r1-a-1", Duration::ZERO).await;
    r.deleted("r1-b-1", Duration::ZERO).await;
    let end = (&mut r.end).await.unwrap();
    assert_eq!(
        end,
        RunEnd {
            state: RunState::Succeeded,
            text: "succeeded"
        }
    );
    let a_states: Vec<StageState> = r.stage("a").into_iter().map(|s| s.0).collect();
    assert_eq!(
        a_states,
        [
            StageState::Starting,
            StageState::Running,
            StageState::Succeeded
        ]
    );
    assert_eq!(r.stage("a")[1].2, "running on n1");
    assert!(r.all()[0].message.starts_with("run started"));
}

#[tokio::test(start_paused = true)]
async fn a_finished_worker_is_deleted_only_once_its_log_is_read_to_the_end() {
    let mut r = start("rl", "stages:\n  - name: a\n    command: [x]\n", 10);
    let a = r.created("rl-a-1").await;
    // A log follower is counted before the scaler hears the pod finished.
    let follower = r.logs.buffer(&Group::Run("rl".into())).writer();
    r.report(failed(&a, 3));
    let early = tokio::time::timeout(Duration::from_secs(5), r.calls.recv()).await;
    assert!(early.is_err(), "deleted while its log was read: {early:?}");
    drop(follower);
    r.deleted("rl-a-1", Duration::ZERO).await;
    assert_eq!((&mut r.end).await.unwrap().state, RunState::Failed);
    // A follower that never ends holds the deletion for the drain limit only.
    let mut r = start("rm", "stages:\n  - name: a\n    command: [x]\n", 10);
    let a = r.created("rm-a-1").await;
    let _stuck = r.logs.buffer(&Group::Run("rm".into())).writer();
    let before = tokio::time::Instant::now();
    r.report(failed(&a, 3));
    r.deleted("rm-a-1", Duration::ZERO).await;
    assert_eq!(before.elapsed(), super::stop::LOG_DRAIN);
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_is_retried_after_its_back_off_then_the_stage_fails() {
    let mut r = start(
        "r2",
        "stages:\n  - name: a\n    command: [x]\n    retry: { attempts: 2, backoff: 1s, on: [exit-code] }\n",
        10,
    );
    let first = r.created("r2-a-1").await;
    let before = tokio::time::Instant::now();
    r.report(failed(&first, 3));
    let second = r.created("r2-a-2").await;
    let waited = before.elapsed();
    // Equal jitter on a 1 s back-off: between half of it and all of it.
    assert!(
        waited >= Duration::from_millis(500) && waited <= Duration::from_secs(1),
        "{waited:?}"
    );
    assert_eq!(second.env["OTTOSCALER_ATTEMPT"], "2");
    r.report(failed(&second, 3));
    r.deleted("r2-a-1", Duration::ZERO).await;
    r.deleted("r2-a-2", Duration::ZERO).await;
    assert_eq!((&mut r.end).await.unwrap().state, RunState::Failed);
    let a = r.stage("a");
    let retrying = a.iter().find(|s| s.0 == StageState::Retrying).unwrap();
    assert!(
        retrying
            .2
            .starts_with("attempt 1 failed: exit code 3; attempt 2 of 2 in "),
        "{retrying:?}"
    );
    assert_eq!(a.last().unwrap().0, StageState::Failed);
    assert_eq!(a.last().unwrap().2, "attempt 2 failed: exit code 3");
    let failed_msg = r.all().into_iter().rfind(|p| p.stage == "a").unwrap();
    assert_eq!(
        (failed_msg.failure_class.as_str(), failed_msg.exit_code),
        ("exit-code", 3)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stage_timeout_deletes_the_worker_and_fails_the_stage() {
    let mut r = start(
        "r3",
        "stages:\n  - name: slow\n    command: [x]\n    timeout: 5s\n",
        10,
    );
    let w = r.created("r3-slow-1").await;
    r.report(obs(&w, Phase::Running));
    let before = tokio::time::Instant::now();
    r.deleted("r3-slow-1", GRACE).await;
    assert_eq!(before.elapsed(), Duration::from_secs(5));
    r.deleted("r3-slow-1", Duration::ZERO).await;
    assert_eq!((&mut r.end).await.unwrap().state, RunState::Failed);
    let last = r.all().into_iter().rfind(|p| p.stage == "slow").unwrap();
    assert_eq!(last.message, "attempt 1 timed out after 5s");
    assert_eq!(last.failure_class, "timeout");
}

#[tokio::test(start_paused = true)]
async fn cancel_deletes_running_workers_and_finally_stages_still_run() {
    let mut r = start(
        "r4",
        "stages:\n  - name: build\n    command: [x]\n  - name: after\n    depends_on: [build]\n    command: [x]\n  - name: tidy\n    finally: true\n    command: [y]\n",
        10,
    );
    let build = r.created("r4-build-1").await;
    r.report(obs(&build, Phase::Running));
    r.cancel.cancel();
    r.deleted("r4-build-1", GRACE).await;
    let tidy = r.created("r4-tidy-1").await;
    r.report(obs(&tidy, Phase::Succeeded));
    r.deleted("r4-build-1", Duration::ZERO).await;
    r.deleted("r4-tidy-1", Duration::ZERO).await;
    assert_eq!(
        (&mut r.end).await.unwrap(),
        RunEnd {
            state: RunState::Cancelled,
            text: "cancelled"
        }
    );
    assert_eq!(r.stage("build").last().unwrap().0, StageState::Cancelled);
    assert_eq!(
        r.stage("after"),
        [(
            StageState::Skipped,
            0,
            "skipped: the run stopped before this stage started".into()
        )]
    );
    assert_eq!(r.stage("tidy").last().unwrap().0, StageState::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn the_run_timeout_stops_the_run_and_says_so() {
    let mut r = start(
        "r5",
        "timeout: 3s\nstages:\n  - name: a\n    command: [x]\n",
        10,
    );
    let a = r.created("r5-a-1").await;
    r.report(obs(&a, Phase::Running));
    r.deleted("r5-a-1", GRACE).await;
    r.deleted("r5-a-1", Duration::ZERO).await;
    assert_eq!(
        (&mut r.end).await.unwrap(),
        RunEnd {
            state: RunState::Failed,
            text: "failed: the run timed out"
        }
    );
    let last = r.all().into_iter().rfind(|p| p.stage == "a").unwrap();
    assert_eq!(
        (last.message.as_str(), last.failure_class.as_str()),
        ("run timed out", "timeout")
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_worker_is_retried_and_a_refused_create_is_not() {
    let mut r = start(
        "r6",
        "stages:\n  - name: a\n    command: [x]\n    retry: { attempts: 3, backoff: 1s, on: [node-lost, exit-code] }\n",
        10,
    );
    let first = r.created("r6-a-1").await;
    r.report(obs(&first, Phase::Running));
    r.fake.with(|s| s.refuse_create = true);
    r.gone(obs(&first, Phase::Terminating));
    r.created("r6-a-2").await;
    r.deleted("r6-a-1", Duration::ZERO).await;
    r.deleted("r6-a-2", Duration::ZERO).await;
    assert_eq!((&mut r.end).await.unwrap().state, RunState::Failed);
    let classes: Vec<String> = r
        .all()
        .into_iter()
        .filter(|p| !p.failure_class.is_empty())
        .map(|p| p.failure_class)
        .collect();
    assert_eq!(classes, ["node-lost", "create-failed"]);
    let a = r.stage("a");
    assert!(
        a.iter().any(|s| s.2.starts_with(
            "attempt 1 failed: worker r6-a-1 went away before it finished; attempt 2 of 3"
        )),
        "{a:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn stages_over_the_cap_wait_in_line_for_a_slot() {
    let mut r = start(
        "r7",
        "stages:\n  - name: a\n    command: [x]\n  - name: b\n    command: [x]\n",
        1,
    );
    let a = r.created("r7-a-1").await;
    // b waits for a's slot and says where it stands.
    assert!(
        r.stage("b")
            .iter()
            .any(|s| s.0 == StageState::Queued && s.2 == "queued, position 1"),
        "{:?}",
        r.stage("b")
    );
    r.report(obs(&a, Phase::Succeeded));
    let b = r.created("r7-b-1").await;
    r.report(obs(&b, Phase::Succeeded));
    r.deleted("r7-a-1", Duration::ZERO).await;
    r.deleted("r7-b-1", Duration::ZERO).await;
    assert_eq!((&mut r.end).await.unwrap().state, RunState::Succeeded);
}
