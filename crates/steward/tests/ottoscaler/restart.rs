//! A run that survives a SIGKILL of the scaler on the Kubernetes backend, and the
//! orphans a new scaler still cleans up.

use super::*;

/// Waits until `seen` holds stage `name`'s success.
async fn seen_success(seen: &std::sync::Mutex<Vec<proto::PipelineProgress>>, name: &str) {
    wait::until(T, &format!("stage {name} succeeded in the stream"), || {
        let ok = seen
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.stage == name && p.stage_state() == StageState::Succeeded);
        async move { Ok(ok) }
    })
    .await
    .unwrap();
}

/// SIGKILL of the scaler in the middle of a 6-stage pipeline (one stage running,
/// whose container finishes while no scaler runs), then a new scaler: the run goes on
/// and ends Succeeded, no stage runs twice, and a client that re-attaches from where
/// it was sees every message exactly once. Orphans (a run nobody recorded, a record of
/// an older version without its request) are still cleaned up; tasks stay.
#[tokio::test]
async fn a_run_survives_a_scaler_crash_and_orphans_are_deleted() {
    let (env, mut server, _cfg) = kube_setup("otto-restart", &[]).await;
    let (mut otto, _) = server.clients().await;
    otto.scale_up(proto::ScaleRequest {
        task_id: "keep".into(),
        worker_count: 2,
        worker: Some(proto::WorkerTemplate {
            image: "registry.invalid/w:1".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut cleanup = stage("cleanup", &[], &[]);
    cleanup.finally = true;
    let req = proto::PipelineRequest {
        pipeline_name: "six".into(),
        run_id: "six".into(),
        stages: vec![
            stage("checkout", &[], &[]),
            stage("build", &["checkout"], &[]),
            stage("lint", &["checkout"], &[]),
            stage("test", &["build"], &[]),
            stage("package", &["test", "lint"], &[]),
            cleanup,
        ],
        timeout_seconds: 600,
    };
    let stream = otto.execute_pipeline(req).await.unwrap().into_inner();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut s = stream;
            while let Ok(Some(p)) = s.next().await.transpose() {
                seen.lock().unwrap().push(p);
            }
        })
    };
    let sel = |stage: &str| format!("steward.io/pipeline-run=six,steward.io/stage={stage}");
    let checkout = running_pod(&env, &sel("checkout")).await;
    annotate(&env, &checkout, EXIT, "0").await;
    let lint = running_pod(&env, &sel("lint")).await;
    let build = running_pod(&env, &sel("build")).await;
    annotate(&env, &lint, EXIT, "0").await;
    seen_success(&seen, "lint").await;

    // A worker pod of a run this scaler never heard of (a crash long ago), and a run
    // recorded by an older version (no request in its record) with a worker.
    let pods_api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    for run in ["ghost", "legacy"] {
        let pod: Pod = from_json(json!({
            "metadata": { "name": format!("{run}-a-1"), "labels": { "steward.io/ottoscaler": "worker", "steward.io/pipeline-run": run, "steward.io/stage": "a", "steward.io/attempt": "1" } },
            "spec": { "nodeSelector": env.node_selector(), "tolerations": [env.toleration()], "containers": [{ "name": "worker", "image": "registry.invalid/w:1" }] }
        }));
        pods_api.create(&PostParams::default(), &pod).await.unwrap();
    }
    let legacy: ConfigMap = from_json(json!({
        "metadata": { "name": "ottoscaler-run-legacy", "labels": { "steward.io/ottoscaler": "record", "steward.io/ottoscaler-kind": "run", "steward.io/ottoscaler-id": "legacy" } },
        "data": { "state": "running", "reason": "" }
    }));
    Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &legacy)
        .await
        .unwrap();

    // SIGKILL; build's container finishes while no scaler runs; a new scaler.
    server.child.kill().await.unwrap();
    reader.await.unwrap();
    annotate(&env, &build, EXIT, "0").await;
    server.child = spawn(&server.args, server.port);
    server.wait_serving().await;

    let before: Vec<proto::PipelineProgress> = seen.lock().unwrap().clone();
    let last = before.last().map_or(0, |p| p.seq);
    let (mut otto, _) = server.clients().await;
    let again = otto
        .watch_pipeline(proto::WatchPipelineRequest {
            run_id: "six".into(),
            from_seq: last + 1,
        })
        .await
        .unwrap()
        .into_inner();
    let after = tokio::spawn(collect(again));
    // The run goes on: build's success is seen, test and package run, then cleanup.
    for name in ["test", "package", "cleanup"] {
        let pod = running_pod(&env, &sel(name)).await;
        assert_eq!(pod, format!("six-{name}-1"));
        annotate(&env, &pod, EXIT, "0").await;
    }
    let after = after.await.unwrap();
    let end = after.last().unwrap();
    assert_eq!(end.run_state(), RunState::Succeeded, "{after:#?}");
    assert!(
        after
            .iter()
            .any(|p| p.message.contains("run resumed after a scaler restart")),
        "{after:#?}"
    );

    // Exactly once: what the client saw before and after is 1..=N without a gap or a
    // repeat, and the same messages a fresh watch replays.
    let mut both = before.clone();
    both.extend(after.iter().cloned());
    let seqs: Vec<u64> = both.iter().map(|p| p.seq).collect();
    assert_eq!(
        seqs,
        (1..=both.len() as u64).collect::<Vec<_>>(),
        "{both:#?}"
    );
    let replay = history(&mut otto, "six").await;
    assert_eq!(
        replay, both,
        "the history after the restart is the one clients saw"
    );
    // No stage ran twice: one attempt each, one success each, one worker each.
    for name in ["checkout", "build", "lint", "test", "package", "cleanup"] {
        let states = states_of(&both, name);
        assert!(states.iter().all(|(a, _)| *a <= 1), "{name}: {states:?}");
        let ok = states
            .iter()
            .filter(|(_, s)| *s == StageState::Succeeded)
            .count();
        assert_eq!(ok, 1, "{name}: {states:?}");
        let workers: std::collections::BTreeSet<&str> = both
            .iter()
            .filter(|p| p.stage == name && !p.worker.is_empty())
            .map(|p| p.worker.as_str())
            .collect();
        assert_eq!(
            workers.into_iter().collect::<Vec<_>>(),
            vec![format!("six-{name}-1").as_str()]
        );
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("steward_ottoscaler_runs_resumed_total 1"),
        "{metrics}"
    );
    no_pods(&env, "steward.io/pipeline-run=six").await;
    no_pods(&env, "steward.io/pipeline-run=ghost").await;
    no_pods(&env, "steward.io/pipeline-run=legacy").await;

    let ps = history(&mut otto, "legacy").await;
    let last = ps.last().unwrap();
    assert_eq!(last.run_state(), RunState::Failed);
    assert!(
        last.message.contains("interrupted: the scaler restarted"),
        "{}",
        last.message
    );
    // A client that re-attaches from past the end of that history learns the end at
    // once instead of waiting (`collect` fails the test past its deadline).
    let late = collect(
        otto.watch_pipeline(proto::WatchPipelineRequest {
            run_id: "legacy".into(),
            from_seq: 7,
        })
        .await
        .unwrap()
        .into_inner(),
    )
    .await;
    assert_eq!(late.len(), 1, "{late:?}");
    assert!(
        late[0].r#final && late[0].run_state() == RunState::Failed,
        "{late:?}"
    );
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .get("ottoscaler-run-legacy")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["state"], "failed");
    // The task's workers are live state: kept, and known again to the new process.
    let keep = pods(&env, "steward.io/task=keep").await;
    assert_eq!(keep.len(), 2);
    wait::until(T, "task workers rebuilt from pods", || {
        let mut o = otto.clone();
        async move {
            Ok(o.get_worker_status(proto::WorkerStatusRequest {
                task_id: "keep".into(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .workers
            .len()
                == 2)
        }
    })
    .await
    .unwrap();
    let down = otto
        .scale_down(proto::ScaleRequest {
            task_id: "keep".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(down.workers.len(), 2);
    no_pods(&env, "steward.io/ottoscaler=worker").await;
}
