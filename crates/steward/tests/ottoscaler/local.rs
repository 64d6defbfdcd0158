//! The local backend, which proves the log path end to end (kwok serves no
//! container logs): live logs with backlog and resume, and dropped-line markers.

use super::*;

#[tokio::test]
async fn local_backend_streams_logs_live_with_backlog_and_resume() {
    let (server, _cfg) = local_server(&[]).await;
    let (mut otto, mut logs) = server.clients().await;
    let req = proto::PipelineRequest {
        run_id: "logs-1".into(),
        stages: vec![
            sh(
                "hello",
                &[],
                "for i in 1 2 3; do echo line $i; done; echo oops >&2",
            ),
            sh("second", &["hello"], "echo from second; exit 3"),
        ],
        ..Default::default()
    };
    let progress = tokio::spawn(collect(
        otto.execute_pipeline(req).await.unwrap().into_inner(),
    ));
    // A live follower attached while the run goes.
    let mut live = logs
        .stream_build_logs(proto::BuildIdentifier {
            run_id: "logs-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(e) = tokio::time::timeout(T, live.next()).await.unwrap() {
        let e = e.unwrap();
        seen.push((e.seq, e.stage.clone(), e.stream.clone(), e.message.clone()));
    }
    let ps = progress.await.unwrap();
    assert_eq!(ps.last().unwrap().run_state(), RunState::Failed);
    let second = ps
        .iter()
        .find(|p| p.stage == "second" && p.stage_state() == StageState::Failed)
        .unwrap();
    assert_eq!(second.exit_code, 3);
    let texts: Vec<&str> = seen.iter().map(|s| s.3.as_str()).collect();
    for want in [
        "attempt 1 of stage hello on worker logs-1-hello-1",
        "line 1",
        "line 2",
        "line 3",
        "oops",
        "from second",
    ] {
        assert!(texts.contains(&want), "missing {want:?} in {texts:?}");
    }
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "seqs increase");
    assert!(seen.iter().any(|s| s.3 == "oops" && s.2 == "stderr"));
    // A late client gets the backlog; from_seq resumes after a given line.
    let backlog: Vec<_> = logs
        .stream_build_logs(proto::BuildIdentifier {
            run_id: "logs-1".into(),
            snapshot: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .map(|e| e.unwrap().seq)
        .collect()
        .await;
    assert_eq!(backlog, seen.iter().map(|s| s.0).collect::<Vec<_>>());
    let line2 = seen.iter().find(|s| s.3 == "line 2").unwrap().0;
    let resumed: Vec<_> = logs
        .stream_build_logs(proto::BuildIdentifier {
            run_id: "logs-1".into(),
            from_seq: line2 + 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .map(|e| e.unwrap().message)
        .collect()
        .await;
    // stdout and stderr are two pipes read side by side, so "oops" may land
    // before or after "line 3"; the resume must give exactly what followed.
    let after: Vec<_> = seen
        .iter()
        .filter(|s| s.0 > line2)
        .map(|s| s.3.clone())
        .collect();
    assert_eq!(resumed, after);
    assert!(resumed.iter().any(|m| m == "line 3"));
    assert!(!resumed.iter().any(|m| m == "line 2" || m == "line 1"));
    // One worker's lines only.
    let worker: Vec<_> = logs
        .stream_worker_logs(proto::WorkerIdentifier {
            worker_id: "logs-1-second-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .map(|e| e.unwrap().message)
        .collect()
        .await;
    assert_eq!(
        worker,
        vec![
            "attempt 1 of stage second on worker logs-1-second-1",
            "from second"
        ]
    );
}

#[tokio::test]
async fn local_backend_marks_dropped_lines_for_a_client_that_fell_behind() {
    let (server, _cfg) = local_server(&["--log-lines", "10"]).await;
    let (mut otto, mut logs) = server.clients().await;
    let req = proto::PipelineRequest {
        run_id: "flood".into(),
        stages: vec![sh(
            "spam",
            &[],
            "i=0; while [ $i -lt 50 ]; do echo n$i; i=$((i+1)); done",
        )],
        ..Default::default()
    };
    let ps = collect(otto.execute_pipeline(req).await.unwrap().into_inner()).await;
    assert_eq!(ps.last().unwrap().run_state(), RunState::Succeeded);
    let got: Vec<proto::BuildLogEntry> = logs
        .stream_build_logs(proto::BuildIdentifier {
            run_id: "flood".into(),
            from_seq: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(got[0].dropped, 41, "{:?}", got[0]);
    assert!(got[0].message.starts_with("dropped 41 lines"));
    let rest: Vec<&str> = got[1..].iter().map(|e| e.message.as_str()).collect();
    assert_eq!(rest, (40..50).map(|i| format!("n{i}")).collect::<Vec<_>>());
    // Every line received is counted, and the 41 this client never got.
    let m = server.metrics().await;
    let received = metric(&m, "steward_ottoscaler_log_lines_received_total").unwrap();
    assert!(received >= 50.0, "{received}\n{m}");
    assert_eq!(
        metric(&m, "steward_ottoscaler_log_lines_dropped_total"),
        Some(41.0),
        "{m}"
    );
}
