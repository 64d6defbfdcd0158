//! Ottoscaler, really: the Kubernetes backend runs a pipeline whose workers are real
//! containers of the test worker image on the real nodes; their logs come through the
//! real kubelet's log path.

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use ottoscaler::cli::client::{ClientArgs, Logs, Otto};
use ottoscaler::proto::{self, RunState, StageState};
use serde_json::json;
use testkit::realnode::{REAL_NODE_LABEL, WORKER_IMAGE};
use testkit::wait;
use tokio::process::{Child, Command};

const T: Duration = Duration::from_secs(120);
const TOKEN: &str = "real-node-token-51c2";

/// `steward ottoscaler serve` for namespace `ns`, its workers on real nodes.
async fn serve(ns: &str) -> (Child, String, tempfile::TempPath) {
    let class = json!({
        "requests": {"cpu": "10m", "memory": "16Mi"},
        "limits": {"cpu": "500m", "memory": "64Mi"},
        "max": {"cpu": "2", "memory": "1Gi"},
        "node_selector": {REAL_NODE_LABEL: "true"},
    });
    let cfg = json!({"default_class": "ci", "classes": {"ci": class}});
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), serde_saphyr::to_string(&cfg).unwrap()).unwrap();
    let cfg = f.into_temp_path();
    let port = testkit::free_port();
    let admin = format!("127.0.0.1:{}", testkit::free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args([
            "ottoscaler",
            "serve",
            "--namespace",
            ns,
            "--admin-addr",
            &admin,
        ])
        .args(["--grace-period", "1s", "--config", cfg.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", super::cluster().kubeconfig())
        .env("OTTOSCALER_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"), cfg)
}

async fn clients(url: &str) -> (Otto, Logs) {
    let args = ClientArgs {
        server: url.into(),
        token: Some(TOKEN.into()),
        token_file: None,
        ca_cert: None,
        client_cert: None,
        client_key: None,
    };
    let mut last = None;
    let deadline = tokio::time::Instant::now() + T;
    while tokio::time::Instant::now() < deadline {
        match args.connect().await {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ottoscaler never answered: {last:?}");
}

fn worker_stage(name: &str, deps: &[&str], args: &[&str]) -> proto::Stage {
    let mut command = vec!["/test-worker".to_string()];
    command.extend(args.iter().map(|s| (*s).to_string()));
    proto::Stage {
        name: name.into(),
        depends_on: deps.iter().map(|d| (*d).to_string()).collect(),
        worker: Some(proto::WorkerTemplate {
            image: WORKER_IMAGE.into(),
            command,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn pipeline_workers_are_real_containers_whose_every_line_streams_in_order() {
    let _shared = super::shared().await;
    let env = super::env("rn-otto").await;
    let (_server, url, _cfg) = serve(&env.ns).await;
    let (mut otto, mut logs) = clients(&url).await;
    let mut fails = worker_stage(
        "fails",
        &["build"],
        &["--lines", "2", "--text", "failing", "--exit-code", "3"],
    );
    fails.retry = Some(proto::RetryPolicy {
        max_attempts: 2,
        initial_backoff_ms: 100,
        max_backoff_ms: 500,
        retry_on: vec!["exit-code".into()],
    });
    let req = proto::PipelineRequest {
        pipeline_name: "real".into(),
        run_id: "real-1".into(),
        stages: vec![
            worker_stage(
                "build",
                &[],
                &["--lines", "40", "--interval-ms", "50", "--text", "build"],
            ),
            fails,
        ],
        timeout_seconds: 300,
    };
    let mut progress = otto.execute_pipeline(req).await.unwrap().into_inner();
    let mut live = logs
        .stream_build_logs(proto::BuildIdentifier {
            run_id: "real-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(e) = tokio::time::timeout(T, live.next()).await.unwrap() {
        let e = e.unwrap();
        seen.push((e.seq, e.stage, e.stream, e.message));
    }
    let mut ps = Vec::new();
    while let Some(p) = tokio::time::timeout(T, progress.next()).await.unwrap() {
        let p = p.unwrap();
        let end = p.r#final;
        ps.push(p);
        if end {
            break;
        }
    }
    // Every line the build container printed, in order, from the kubelet's log.
    let build: Vec<&str> = seen
        .iter()
        .filter(|s| s.1 == "build" && s.2 == "stdout")
        .map(|s| s.3.as_str())
        .collect();
    let want: Vec<String> = (1..=40).map(|i| format!("build {i}")).collect();
    assert_eq!(build, want, "live build lines");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "seqs increase");
    // The stage that exits 3: retried by its policy, the code in the progress.
    let fails: Vec<(i32, StageState, i32)> = ps
        .iter()
        .filter(|p| {
            p.stage == "fails"
                && matches!(p.stage_state(), StageState::Retrying | StageState::Failed)
        })
        .map(|p| (p.attempt, p.stage_state(), p.exit_code))
        .collect();
    assert_eq!(
        fails,
        vec![(1, StageState::Retrying, 3), (2, StageState::Failed, 3)],
        "{ps:#?}"
    );
    assert_eq!(ps.last().unwrap().run_state(), RunState::Failed);
    let failing = seen
        .iter()
        .filter(|s| s.1 == "fails" && s.3.starts_with("failing "))
        .count();
    assert_eq!(
        failing, 4,
        "two lines from each of the two attempts: {seen:?}"
    );
    // Re-attached after line 10: exactly what followed it in the live stream.
    let line10 = seen.iter().find(|s| s.3 == "build 10").unwrap().0;
    let resumed: Vec<String> = logs
        .stream_build_logs(proto::BuildIdentifier {
            run_id: "real-1".into(),
            from_seq: line10 + 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .map(|e| e.unwrap().message)
        .collect()
        .await;
    let after: Vec<String> = seen
        .iter()
        .filter(|s| s.0 > line10)
        .map(|s| s.3.clone())
        .collect();
    assert_eq!(resumed, after);
    assert_eq!(
        resumed.iter().filter(|m| m.starts_with("build ")).count(),
        30
    );
    // The workers ran as pods on real nodes and are gone.
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(env.client.clone(), &env.ns);
    wait::list(
        &pods,
        &kube::api::ListParams::default().labels("steward.io/pipeline-run=real-1"),
        T,
        "no worker pods left",
        <[_]>::is_empty,
    )
    .await
    .unwrap();
}
