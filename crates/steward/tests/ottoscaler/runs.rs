//! Pipeline runs on the Kubernetes backend: the DAG with a retried stage, cancel
//! after a client disconnect (a scaler crash is in restart.rs).

use super::*;

#[tokio::test]
async fn dag_pipeline_with_a_failing_then_retried_stage() {
    let (env, server, _cfg) = kube_setup("otto-dag", &[]).await;
    let (mut otto, _) = server.clients().await;
    let mut build = stage("build", &["checkout"], &[]);
    build.retry = Some(proto::RetryPolicy {
        max_attempts: 3,
        initial_backoff_ms: 200,
        max_backoff_ms: 1000,
        retry_on: vec!["exit-code".into()],
    });
    let mut notify = stage("notify", &["build"], &[(EXIT, "0")]);
    notify.when = proto::When::OnFailure as i32;
    let mut cleanup = stage("cleanup", &[], &[(EXIT, "0")]);
    cleanup.finally = true;
    let req = proto::PipelineRequest {
        pipeline_name: "ci".into(),
        run_id: "dag-1".into(),
        stages: vec![
            stage("checkout", &[], &[(EXIT, "0")]),
            build,
            stage("lint", &["checkout"], &[(EXIT, "0")]),
            stage("report", &["build", "lint"], &[(EXIT, "0")]),
            notify,
            cleanup,
        ],
        timeout_seconds: 300,
    };
    let stream = otto.execute_pipeline(req).await.unwrap().into_inner();
    let progress = tokio::spawn(collect(stream));

    // The simulated container of build's first attempt exits 1, the second exits 0.
    let first = running_pod(
        &env,
        "steward.io/pipeline-run=dag-1,steward.io/stage=build,steward.io/attempt=1",
    )
    .await;
    annotate(&env, &first, EXIT, "1").await;
    let second = running_pod(
        &env,
        "steward.io/pipeline-run=dag-1,steward.io/stage=build,steward.io/attempt=2",
    )
    .await;
    annotate(&env, &second, EXIT, "0").await;

    let ps = progress.await.unwrap();
    let last = ps.last().unwrap();
    assert_eq!(last.run_state(), RunState::Succeeded, "{ps:#?}");
    // Sequence numbers are dense and timestamps never go back.
    for (i, p) in ps.iter().enumerate() {
        assert_eq!(p.seq, i as u64 + 1);
        assert!(i == 0 || p.timestamp_unix_ms >= ps[i - 1].timestamp_unix_ms);
    }
    let build = states_of(&ps, "build");
    assert!(
        build.contains(&(1, StageState::Retrying)) && build.contains(&(2, StageState::Succeeded)),
        "{build:?}"
    );
    let retry = ps
        .iter()
        .find(|p| p.stage == "build" && p.stage_state() == StageState::Retrying)
        .unwrap();
    assert_eq!(
        (retry.failure_class.as_str(), retry.exit_code),
        ("exit-code", 1)
    );
    assert_eq!(states_of(&ps, "notify"), vec![(0, StageState::Skipped)]);
    assert!(states_of(&ps, "cleanup").contains(&(1, StageState::Succeeded)));
    // report started only after both build and lint succeeded.
    let seq = |stage: &str, st: StageState| {
        ps.iter()
            .find(|p| p.stage == stage && p.stage_state() == st)
            .unwrap()
            .seq
    };
    assert!(seq("report", StageState::Starting) > seq("build", StageState::Succeeded));
    assert!(seq("report", StageState::Starting) > seq("lint", StageState::Succeeded));
    // lint and build ran in parallel: lint started before build's retry finished.
    assert!(seq("lint", StageState::Starting) < seq("build", StageState::Succeeded));
    // Nothing is left behind; the record says how it ended.
    no_pods(&env, "steward.io/pipeline-run=dag-1").await;
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .get("ottoscaler-run-dag-1")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["state"], "succeeded");
    let metrics = server.metrics().await;
    for line in [
        "steward_ottoscaler_runs_total{outcome=\"succeeded\"} 1",
        "steward_ottoscaler_stage_attempts_total{outcome=\"exit-code\"} 1",
        "steward_ottoscaler_stage_attempts_total{outcome=\"succeeded\"} 5",
        "steward_ottoscaler_run_duration_seconds_count{outcome=\"succeeded\"} 1",
        "steward_ottoscaler_stage_duration_seconds_count{outcome=\"succeeded\"} 5",
        "steward_ottoscaler_stage_duration_seconds_count{outcome=\"exit-code\"} 1",
        // checkout, build twice, lint, report, cleanup (notify was skipped).
        "steward_ottoscaler_stage_queue_seconds_count 6",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    // The run took as long as its stages at least: more than zero.
    let sum: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("steward_ottoscaler_run_duration_seconds_sum{outcome=\"succeeded\"} ")
        })
        .unwrap()
        .parse()
        .unwrap();
    assert!(sum > 0.0, "{metrics}");
}

#[tokio::test]
async fn cancel_after_disconnect_and_reattach() {
    let (env, server, _cfg) = kube_setup("otto-cancel", &[]).await;
    let (mut otto, _) = server.clients().await;
    let mut cleanup = stage("cleanup", &[], &[(EXIT, "0")]);
    cleanup.finally = true;
    let req = proto::PipelineRequest {
        run_id: "long-1".into(),
        // `forever` has no exit annotation: its simulated container never ends.
        stages: vec![
            stage("forever", &[], &[]),
            stage("after", &["forever"], &[(EXIT, "0")]),
            cleanup,
        ],
        ..Default::default()
    };
    let mut stream = otto.execute_pipeline(req).await.unwrap().into_inner();
    let mut last_seq = 0;
    while let Some(p) = stream.next().await {
        let p = p.unwrap();
        last_seq = p.seq;
        if p.stage == "forever" && p.stage_state() == StageState::Running {
            break;
        }
    }
    // The client goes away; the run goes on.
    drop(stream);
    drop(otto);
    let (mut otto, _) = server.clients().await;
    let status = otto
        .get_worker_status(proto::WorkerStatusRequest {
            run_id: "long-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.workers.len(), 1);
    assert_eq!(status.workers[0].phase, "Running");

    let watch = otto
        .watch_pipeline(proto::WatchPipelineRequest {
            run_id: "long-1".into(),
            from_seq: last_seq + 1,
        })
        .await
        .unwrap()
        .into_inner();
    let rest = tokio::spawn(collect(watch));
    let c = otto
        .cancel_pipeline(proto::CancelPipelineRequest {
            run_id: "long-1".into(),
            reason: "test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(c.cancelled);
    let ps = rest.await.unwrap();
    assert_eq!(
        ps[0].seq,
        last_seq + 1,
        "re-attach resumes exactly after the last seen message"
    );
    assert_eq!(
        ps.last().unwrap().run_state(),
        RunState::Cancelled,
        "{ps:#?}"
    );
    assert!(states_of(&ps, "forever").contains(&(1, StageState::Cancelled)));
    assert_eq!(states_of(&ps, "after"), vec![(0, StageState::Skipped)]);
    assert!(
        states_of(&ps, "cleanup").contains(&(1, StageState::Succeeded)),
        "finally runs after a cancel"
    );
    no_pods(&env, "steward.io/pipeline-run=long-1").await;
    // A second cancel reports that the run had already ended; unknown runs are NotFound.
    let c = otto
        .cancel_pipeline(proto::CancelPipelineRequest {
            run_id: "long-1".into(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!c.cancelled);
    let e = otto
        .cancel_pipeline(proto::CancelPipelineRequest {
            run_id: "nope".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}
