//! `steward ottoscaler` end to end: the `steward` binary serving gRPC on loopback,
//! real tonic clients, and the real control plane where kwok runs the worker pods
//! (a pod exits with the code in its `steward.io/sim-exit-code` annotation). The
//! local backend proves the log path end to end, since kwok serves no container logs.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use ottoscaler::client::{ClientArgs, Logs, Otto};
use ottoscaler::proto::{self, RunState, StageState};
use serde_json::json;
use testkit::TestEnv;
use testkit::wait::{self, from_json};
use tokio::process::{Child, Command};

const T: Duration = Duration::from_secs(60);
const TOKEN: &str = "test-token-3f9a";

/// One `steward ottoscaler serve` process.
struct Server {
    child: Child,
    url: String,
    args: Vec<String>,
    port: u16,
    admin: String,
}

fn free_port() -> u16 {
    testkit::free_port()
}

/// Worker classes placing pods on this test's kwok nodes.
fn config_file(env: Option<&TestEnv>) -> tempfile::TempPath {
    let mut class = json!({
        "requests": { "cpu": "100m", "memory": "64Mi" },
        "limits": { "cpu": "500m", "memory": "256Mi" },
        "max": { "cpu": "2", "memory": "1Gi" },
    });
    if let Some(env) = env {
        class["node_selector"] = json!(env.node_selector());
        class["tolerations"] = json!([env.toleration()]);
    }
    let cfg = json!({ "default_class": "ci", "classes": { "ci": class } });
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), serde_yaml::to_string(&cfg).unwrap()).unwrap();
    f.into_temp_path()
}

impl Server {
    async fn start(extra: &[&str]) -> Self {
        let port = free_port();
        let admin = format!("127.0.0.1:{}", free_port());
        let mut args: Vec<String> = [
            "ottoscaler",
            "serve",
            "--admin-addr",
            &admin,
            "--grace-period",
            "1s",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_string()));
        let s = Self {
            child: spawn(&args, port),
            url: format!("http://127.0.0.1:{port}"),
            args,
            port,
            admin,
        };
        s.wait_serving().await;
        s
    }

    /// Kills the process without any chance to clean up, and starts it again.
    async fn crash_and_restart(&mut self) {
        self.child.kill().await.unwrap();
        self.child = spawn(&self.args, self.port);
        self.wait_serving().await;
    }

    /// Polls the health service: no watch can tell when a process starts listening.
    async fn wait_serving(&self) {
        let url = self.url.clone();
        wait::until(T, "ottoscaler health SERVING", || {
            let url = url.clone();
            async move {
                let Ok(ch) = tonic::transport::Endpoint::from_shared(url)?
                    .connect()
                    .await
                else {
                    return Ok(false);
                };
                let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
                let r = h
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: "ottoscaler.v1.OttoscalerService".into(),
                    })
                    .await;
                Ok(r.is_ok_and(|r| {
                    r.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                }))
            }
        })
        .await
        .unwrap();
    }

    /// The admin server's /metrics text.
    async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.admin);
        testkit::http()
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn client_args(&self, token: &str) -> ClientArgs {
        ClientArgs {
            server: self.url.clone(),
            token: Some(token.into()),
            token_file: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
        }
    }

    async fn clients(&self) -> (Otto, Logs) {
        self.client_args(TOKEN).connect().await.unwrap()
    }
}

fn spawn(args: &[String], port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", testkit::cluster().kubeconfig())
        .env("OTTOSCALER_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A namespace, two kwok nodes, and a scaler serving it.
async fn kube_setup(prefix: &str, extra: &[&str]) -> (TestEnv, Server, tempfile::TempPath) {
    let env = testkit::env(prefix).await.unwrap();
    env.add_nodes("n", 2, |s| s).await.unwrap();
    let cfg = config_file(Some(&env));
    let mut args = vec![
        "--namespace",
        &env.ns,
        "--config",
        cfg.to_str().unwrap(),
        "--orphan-interval",
        "2s",
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args).await;
    (env, server, cfg)
}

fn stage(name: &str, deps: &[&str], annotations: &[(&str, &str)]) -> proto::Stage {
    proto::Stage {
        name: name.into(),
        depends_on: deps.iter().map(|d| (*d).to_string()).collect(),
        worker: Some(proto::WorkerTemplate {
            image: "registry.invalid/ci:1".into(),
            command: vec!["make".into(), name.into()],
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

const EXIT: &str = "steward.io/sim-exit-code";

/// Collects progress until the final message.
async fn collect(mut s: tonic::Streaming<proto::PipelineProgress>) -> Vec<proto::PipelineProgress> {
    let mut out = Vec::new();
    while let Some(p) = tokio::time::timeout(T, s.next())
        .await
        .expect("progress within the deadline")
    {
        let p = p.unwrap();
        let end = p.r#final;
        out.push(p);
        if end {
            break;
        }
    }
    out
}

fn states_of(ps: &[proto::PipelineProgress], stage: &str) -> Vec<(i32, StageState)> {
    ps.iter()
        .filter(|p| p.stage == stage)
        .map(|p| (p.attempt, p.stage_state()))
        .collect()
}

async fn pods(env: &TestEnv, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
}

/// Waits until a pod matching `selector` is Running, returns its name.
async fn running_pod(env: &TestEnv, selector: &str) -> String {
    let api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let found = wait::list(
        &api,
        &ListParams::default().labels(selector),
        T,
        selector,
        |ps: &[Pod]| {
            ps.iter()
                .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        },
    )
    .await
    .unwrap();
    found
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .unwrap()
        .name_any()
}

async fn annotate(env: &TestEnv, pod: &str, key: &str, value: &str) {
    let api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    api.patch(
        pod,
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": { key: value } } })),
    )
    .await
    .unwrap();
}

async fn no_pods(env: &TestEnv, selector: &str) {
    let api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    wait::list(
        &api,
        &ListParams::default().labels(selector),
        T,
        &format!("no pods {selector}"),
        <[Pod]>::is_empty,
    )
    .await
    .unwrap();
}

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
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
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

#[tokio::test]
async fn auth_health_reflection_and_malformed_requests() {
    let (env, server, _cfg) = kube_setup("otto-auth", &["--reflection"]).await;
    for token in ["", "wrong"] {
        let (mut otto, _) = server.client_args(token).connect().await.unwrap();
        let e = otto
            .get_worker_status(proto::WorkerStatusRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "token {token:?}");
        let e = otto
            .execute_pipeline(proto::PipelineRequest {
                stages: vec![stage("a", &[], &[])],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }
    // Health needs no token.
    let ch = tonic::transport::Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    for svc in ["", "ottoscaler.v1.LogStreamingService"] {
        let r = h
            .check(tonic_health::pb::HealthCheckRequest {
                service: svc.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }
    // Reflection (enabled by the flag) lists the services.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_request::MessageRequest,
        server_reflection_response::MessageResponse,
    };
    let mut refl = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        resp.next().await.unwrap().unwrap().message_response
    else {
        panic!("no list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"ottoscaler.v1.OttoscalerService".to_string()),
        "{names:?}"
    );

    // Malformed pipelines are refused with the field named; nothing is created.
    let (mut otto, _) = server.clients().await;
    let cases = [
        (
            vec![stage("a", &["b"], &[]), stage("b", &["a"], &[])],
            "stages: dependency cycle: a -> b -> a",
        ),
        (
            vec![stage("a", &["ghost"], &[])],
            "stages[0].depends_on[0]: unknown stage \"ghost\"",
        ),
        (
            vec![stage("a", &[], &[]), stage("a", &[], &[])],
            "stages[1].name: duplicate stage name \"a\" (also stages[0])",
        ),
    ];
    for (stages, want) in cases {
        let e = otto
            .execute_pipeline(proto::PipelineRequest {
                run_id: "bad".into(),
                stages,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (tonic::Code::InvalidArgument, want)
        );
    }
    let e = otto
        .watch_pipeline(proto::WatchPipelineRequest {
            run_id: "bad".into(),
            from_seq: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default().labels("steward.io/ottoscaler"))
        .await
        .unwrap();
    assert!(cms.items.is_empty());
    assert!(pods(&env, "steward.io/ottoscaler").await.is_empty());
}

#[tokio::test]
async fn restart_ends_runs_in_flight_and_deletes_orphans() {
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
    let stream = otto
        .execute_pipeline(proto::PipelineRequest {
            run_id: "inflight".into(),
            stages: vec![stage("forever", &[], &[])],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    running_pod(&env, "steward.io/pipeline-run=inflight").await;
    drop(stream);
    // A worker pod of a run this scaler never heard of (a crash long ago).
    let pods_api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let ghost: Pod = from_json(json!({
        "metadata": { "name": "ghost-a-1", "labels": { "steward.io/ottoscaler": "worker", "steward.io/pipeline-run": "ghost", "steward.io/stage": "a", "steward.io/attempt": "1" } },
        "spec": { "nodeSelector": env.node_selector(), "tolerations": [env.toleration()], "containers": [{ "name": "worker", "image": "registry.invalid/w:1" }] }
    }));
    pods_api
        .create(&PostParams::default(), &ghost)
        .await
        .unwrap();

    server.crash_and_restart().await;

    no_pods(&env, "steward.io/pipeline-run=inflight").await;
    no_pods(&env, "steward.io/pipeline-run=ghost").await;
    let (mut otto, _) = server.clients().await;
    let ps = collect(
        otto.watch_pipeline(proto::WatchPipelineRequest {
            run_id: "inflight".into(),
            from_seq: 0,
        })
        .await
        .unwrap()
        .into_inner(),
    )
    .await;
    let last = ps.last().unwrap();
    assert_eq!(last.run_state(), RunState::Failed);
    assert!(
        last.message.contains("interrupted: the scaler restarted"),
        "{}",
        last.message
    );
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .get("ottoscaler-run-inflight")
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

async fn local_server(extra: &[&str]) -> (Server, tempfile::TempPath) {
    let cfg = config_file(None);
    let mut args = vec!["--backend", "local", "--config", cfg.to_str().unwrap()];
    args.extend_from_slice(extra);
    (Server::start(&args).await, cfg)
}

fn sh(name: &str, deps: &[&str], script: &str) -> proto::Stage {
    proto::Stage {
        name: name.into(),
        depends_on: deps.iter().map(|d| (*d).to_string()).collect(),
        worker: Some(proto::WorkerTemplate {
            command: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

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
}

#[tokio::test]
async fn local_backend_stage_timeout_and_run_listing_by_cli() {
    let (server, _cfg) = local_server(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "name: cli\nstages:\n  - name: slow\n    command: [sleep, \"30\"]\n    timeout: 1s\n    retry: { attempts: 2, backoff: 100ms, on: [timeout] }\n  - name: always\n    depends_on: [slow]\n    when: always\n    command: [echo, tidy]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args([
            "ottoscaler",
            "run",
            file.to_str().unwrap(),
            "--run-id",
            "cli-1",
            "--server",
            &server.url,
        ])
        .env("OTTOSCALER_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a failed run exits non-zero:\n{stdout}"
    );
    assert!(
        stdout.contains("stage slow (attempt 1) retrying: attempt 1 timed out after 1s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("stage slow (attempt 2) failed: attempt 2 timed out after 1s"),
        "{stdout}"
    );
    assert!(stdout.contains("[always#1 stdout] tidy"), "{stdout}");
    assert!(stdout.contains("run cli-1 failed"), "{stdout}");
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
    let server = Server::start(&[
        "--namespace",
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
        p.stage_state() == StageState::Pending && p.capacity_wait.contains("nodes are available")
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
                && s.workers[0].capacity_wait.contains("nodes are available"))
        }
    })
    .await
    .unwrap();
    let (ok, out) = cli(&server, &["--lang", "ko", "status", "--task", "grow"]).await;
    assert!(ok && out.contains("용량 대기 중: 0/"), "{out}");

    env.add_nodes("late", 1, |s| s).await.unwrap();
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

/// Runs `steward ottoscaler <args>` against `server` with the token; (success, stdout).
async fn cli(server: &Server, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .arg("ottoscaler")
        .args(args)
        .env("OTTOSCALER_SERVER", &server.url)
        .env("OTTOSCALER_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn cli_client_subcommands_on_the_local_backend() {
    let (server, _cfg) = local_server(&[]).await;
    let (ok, out) = cli(
        &server,
        &[
            "scale-up",
            "--task",
            "cli",
            "--workers",
            "2",
            "--",
            "sleep",
            "30",
        ],
    )
    .await;
    assert!(ok && out.contains("task cli: created 2 workers"), "{out}");
    let (ok, out) = cli(&server, &["status", "--task", "cli"]).await;
    assert!(
        ok && out.contains("workers in use 2/100, queued 0"),
        "{out}"
    );
    assert_eq!(out.matches(" Running ").count(), 2, "{out}");
    let (ok, out) = cli(&server, &["--lang", "ko", "scale-down", "--task", "cli"]).await;
    assert!(ok && out.contains("태스크 cli: 워커 2개 삭제"), "{out}");

    let (mut otto, _) = server.clients().await;
    let req = proto::PipelineRequest {
        run_id: "cli-logs".into(),
        stages: vec![sh("say", &[], "echo hello from say")],
        ..Default::default()
    };
    collect(otto.execute_pipeline(req).await.unwrap().into_inner()).await;
    let (ok, out) = cli(&server, &["logs", "cli-logs"]).await;
    assert!(ok && out.contains("[say#1 stdout] hello from say"), "{out}");
    let (ok, out) = cli(&server, &["logs", "cli-logs-say-1"]).await;
    assert!(
        ok && out.contains("[cli-logs-say-1 stdout] hello from say"),
        "{out}"
    );
    let (ok, out) = cli(&server, &["cancel", "cli-logs"]).await;
    assert!(
        ok && out.contains("run cli-logs had already ended"),
        "{out}"
    );
    let (ok, _) = cli(&server, &["cancel", "no-such-run"]).await;
    assert!(!ok);
}
