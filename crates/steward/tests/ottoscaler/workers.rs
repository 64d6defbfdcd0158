//! Workers of scale-up tasks on the Kubernetes backend: caps, labels, owner
//! records, busy workers, and what happens when no node has room.

use super::*;

#[tokio::test]
async fn scale_up_and_down_with_caps_labels_and_owner() {
    let (env, server, _cfg) = kube_setup("otto-scale", &["--max-workers", "5"]).await;
    let (mut otto, _) = server.clients().await;
    let up = |n: i32, cpu: &str| proto::ScaleRequest {
        task_id: "build-42".into(),
        worker_count: n,
        worker: Some(proto::WorkerTemplate {
            image: "registry.invalid/worker:1".into(),
            resources: Some(proto::Resources {
                cpu_request: cpu.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    // A request over the class cap is refused before anything is created.
    let e = otto.scale_up(up(1, "3")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message()
            .contains("worker.resources.cpu_request: \"3\" is above the cap of 2"),
        "{}",
        e.message()
    );
    assert!(pods(&env, "steward.io/task=build-42").await.is_empty());

    let r = otto.scale_up(up(3, "250m")).await.unwrap().into_inner();
    assert_eq!(r.workers.len(), 3);
    // Over the concurrency cap (5): refused, naming the numbers.
    let e = otto.scale_up(up(3, "")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains("3 of the cap of 5 are in use"),
        "{}",
        e.message()
    );

    let api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let ready = wait::list(
        &api,
        &ListParams::default().labels("steward.io/task=build-42"),
        T,
        "3 workers running",
        |ps: &[Pod]| ps.len() == 3 && ps.iter().all(wait::pod_ready),
    )
    .await
    .unwrap();
    let p = &ready[0];
    assert_eq!(p.labels()["steward.io/ottoscaler"], "worker");
    let owner = &p.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("ConfigMap", "ottoscaler-task-build-42")
    );
    let res = p.spec.as_ref().unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(res.requests.unwrap()["cpu"].0, "250m");
    assert_eq!(res.limits.unwrap()["memory"].0, "256Mi");

    let status = otto
        .get_worker_status(proto::WorkerStatusRequest {
            task_id: "build-42".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.workers.len(), status.capacity, status.in_use),
        (3, 5, 3)
    );

    // One worker is busy: a plain ScaleDown keeps it.
    let busy = ready[1].name_any();
    annotate(&env, &busy, "steward.io/busy", "true").await;
    wait::until(T, "busy seen", || {
        let mut o = otto.clone();
        let busy = busy.clone();
        async move {
            let s = o
                .get_worker_status(proto::WorkerStatusRequest::default())
                .await?
                .into_inner();
            Ok(s.workers.iter().any(|w| w.name == busy && w.busy))
        }
    })
    .await
    .unwrap();
    let down = otto
        .scale_down(proto::ScaleRequest {
            task_id: "build-42".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(down.workers.len(), 2, "{down:?}");
    assert!(!down.workers.contains(&busy));
    assert_eq!(down.active_workers, 1);
    assert!(
        down.message.contains("1 busy workers kept"),
        "{}",
        down.message
    );
    wait::list(
        &api,
        &ListParams::default().labels("steward.io/task=build-42"),
        T,
        "only the busy worker left",
        |ps: &[Pod]| ps.len() == 1 && ps[0].name_any() == busy,
    )
    .await
    .unwrap();
    // The scaler's own view has caught up (its watch, not the API, decides).
    wait::until(T, "the scaler sees one worker", || {
        let mut o = otto.clone();
        async move {
            let s = o
                .get_worker_status(proto::WorkerStatusRequest {
                    task_id: "build-42".into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(s.workers.len() == 1)
        }
    })
    .await
    .unwrap();
    // Forced: the busy one goes too, and with the last worker the task record.
    let down = otto
        .scale_down(proto::ScaleRequest {
            task_id: "build-42".into(),
            force: true,
            grace_period_seconds: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(down.workers, vec![busy.clone()]);
    // The requested grace period reaches the pod.
    let api2 = api.clone();
    wait::object(&api2, &busy, T, "terminating with grace 3s", |p: &Pod| {
        p.metadata.deletion_grace_period_seconds == Some(3)
    })
    .await
    .unwrap();
    no_pods(&env, "steward.io/task=build-42").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    wait::gone(&cms, "ottoscaler-task-build-42", T)
        .await
        .unwrap();
    let e = otto
        .scale_down(proto::ScaleRequest {
            task_id: "build-42".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

/// `--capacity-check strict`: what no node has room for now is refused, naming the
/// field, and nothing is created.
#[tokio::test]
async fn workers_no_node_can_hold_are_refused_before_any_pod_exists() {
    let env = testkit::env("otto-room").await.unwrap();
    env.add_nodes("small", 1, |s| s.capacity("1", "4Gi"))
        .await
        .unwrap();
    let cfg = config_file(Some(&env));
    // -n is --namespace, as in kubectl (the other tests spell it out).
    let server = Server::start(&[
        "-n",
        &env.ns,
        "--config",
        cfg.to_str().unwrap(),
        "--capacity-check",
        "strict",
    ])
    .await;
    let (mut otto, _) = server.clients().await;
    let up = |n: i32, cpu: &str| proto::ScaleRequest {
        task_id: "fit".into(),
        worker_count: n,
        worker: Some(proto::WorkerTemplate {
            image: "registry.invalid/w:1".into(),
            resources: Some(proto::Resources {
                cpu_request: cpu.into(),
                cpu_limit: cpu.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Three workers of 400m on one 1-cpu node: two fit, the request is refused whole.
    let e = otto.scale_up(up(3, "400m")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().starts_with("worker_count: only 2 of 3 workers (400m cpu, 64Mi memory each) fit in the free resources of the 1 nodes"), "{}", e.message());
    assert!(pods(&env, "steward.io/ottoscaler").await.is_empty());
    // A stage bigger than any node is refused when the run is submitted.
    let mut big = stage("big", &[], &[(EXIT, "0")]);
    big.worker.as_mut().unwrap().resources = Some(proto::Resources {
        cpu_request: "1500m".into(),
        cpu_limit: "2".into(),
        ..Default::default()
    });
    let e = otto
        .execute_pipeline(proto::PipelineRequest {
            stages: vec![big],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(
        e.message()
            .starts_with("stages[0].worker.resources: only 0 of 1 workers (1500m cpu"),
        "{}",
        e.message()
    );
    // Nothing was created for either refusal: no worker, no task or run record.
    assert!(pods(&env, "steward.io/ottoscaler").await.is_empty());
    let records = Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default().labels("steward.io/ottoscaler"))
        .await
        .unwrap();
    assert!(records.items.is_empty(), "{:?}", records.items);
    // What fits is created.
    let r = otto.scale_up(up(2, "400m")).await.unwrap().into_inner();
    assert_eq!(r.workers.len(), 2);
}

/// Whether a capacity wait is the scheduler's own reason (its PodScheduled
/// message): `0/N nodes are available: ...`, or with no node at all in the
/// cluster (this test alone on a fresh one) `no nodes available to schedule pods`.
fn scheduler_said(wait: &str) -> bool {
    wait.contains("nodes are available") || wait.contains("no nodes available to schedule pods")
}

/// The default, `--capacity-check wait`: a stage and a ScaleUp submitted before any
/// node they may run on exists are created, wait as Pending saying why (the
/// scaler's check, then the scheduler's reason), and run once a node is added.
#[tokio::test]
async fn workers_that_do_not_fit_wait_for_capacity_and_run_once_a_node_is_added() {
    let env = testkit::env("otto-grow").await.unwrap();
    let cfg = config_file(Some(&env));
    let server = Server::start(&["--namespace", &env.ns, "--config", cfg.to_str().unwrap()]).await;
    let (mut otto, _) = server.clients().await;
    let mut stream = otto
        .execute_pipeline(proto::PipelineRequest {
            run_id: "grow-1".into(),
            stages: vec![stage("build", &[], &[(EXIT, "0")])],
            timeout_seconds: 300,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let up = otto
        .scale_up(proto::ScaleRequest {
            task_id: "grow".into(),
            worker_count: 1,
            worker: Some(proto::WorkerTemplate {
                image: "registry.invalid/w:1".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up.workers.len(), 1);
    assert!(
        up.capacity_wait.starts_with("only 0 of 1 workers (100m cpu, 64Mi memory each) fit in the free resources of the 0 nodes"),
        "{up:?}"
    );
    assert!(
        up.message.contains("waiting for capacity: only 0 of 1"),
        "{up:?}"
    );

    // The stage says it waits, first from the scaler's own check, then with the
    // scheduler's reason; the run goes on.
    let mut ps = Vec::new();
    while !ps.iter().any(|p: &proto::PipelineProgress| {
        p.stage_state() == StageState::Pending && scheduler_said(&p.capacity_wait)
    }) {
        let p = tokio::time::timeout(T, stream.next())
            .await
            .expect("progress within the deadline")
            .expect("the stream goes on")
            .unwrap();
        assert!(
            !p.r#final,
            "the run ended while waiting for capacity: {ps:#?}"
        );
        ps.push(p);
    }
    let own = ps
        .iter()
        .find(|p| p.stage_state() == StageState::Pending)
        .unwrap();
    assert!(
        own.capacity_wait
            .starts_with("only 0 of 1 workers (100m cpu, 64Mi memory each) fit in the allocatable resources of the 0 nodes"),
        "{own:?}"
    );
    assert_eq!(
        own.message,
        format!("waiting for capacity: {}", own.capacity_wait)
    );
    assert_eq!(
        pods(&env, "steward.io/pipeline-run=grow-1").await.len(),
        1,
        "the worker exists and waits"
    );
    // Status says the same of the task's worker, in either language.
    wait::until(T, "the task worker waits for capacity", || {
        let mut o = otto.clone();
        async move {
            let s = o
                .get_worker_status(proto::WorkerStatusRequest {
                    task_id: "grow".into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(s.workers.len() == 1
                && s.workers[0].phase == "Pending"
                && scheduler_said(&s.workers[0].capacity_wait))
        }
    })
    .await
    .unwrap();
    let (ok, out) = cli(&server, &["--lang", "ko", "status", "--task", "grow"]).await;
    assert!(ok && out.contains("용량 대기 중: "), "{out}");

    env.add_nodes("late", 1, |s| s).await.unwrap();
    // The scheduler binds the waiting worker to the new node; if it does not, the
    // pod's own conditions say why. Bounded by the scheduler's own guarantee, not
    // by T: a pod whose requeue on the node's events was skipped is retried when
    // the scheduler flushes its unschedulable pods (every 5 minutes); twice in CI
    // the run saw no progress within 60 s of the node being added (cause not
    // found; the binding time is printed to find it).
    let api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let lp = ListParams::default().labels("steward.io/pipeline-run=grow-1");
    let added = std::time::Instant::now();
    let flush = Duration::from_secs(330);
    let bound = wait::list(
        &api,
        &lp,
        flush,
        "the waiting worker bound",
        |ps: &[Pod]| {
            ps.iter()
                .any(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
        },
    )
    .await;
    eprintln!(
        "the waiting worker was bound {:?} after its node was added",
        added.elapsed()
    );
    if let Err(e) = bound {
        let now: Vec<_> = pods(&env, "steward.io/pipeline-run=grow-1")
            .await
            .into_iter()
            .map(|p| p.status)
            .collect();
        panic!("{e}: {now:#?}");
    }
    let rest = collect(stream).await;
    assert_eq!(
        rest.last().unwrap().run_state(),
        RunState::Succeeded,
        "{ps:#?}\n{rest:#?}"
    );
    let states: Vec<StageState> = ps
        .iter()
        .chain(&rest)
        .filter(|p| p.stage == "build")
        .map(proto::PipelineProgress::stage_state)
        .collect();
    let at = |s: StageState| states.iter().position(|x| *x == s).unwrap();
    assert!(
        at(StageState::Starting) < at(StageState::Pending)
            && at(StageState::Pending) < at(StageState::Running)
            && at(StageState::Running) < at(StageState::Succeeded),
        "{states:?}"
    );
    running_pod(&env, "steward.io/task=grow").await;
}
