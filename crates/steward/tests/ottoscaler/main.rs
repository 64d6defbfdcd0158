//! `steward ottoscaler` end to end: the `steward` binary serving gRPC on loopback,
//! real tonic clients, and the real control plane where kwok runs the worker pods
//! (a pod exits with the code in its `steward.io/sim-exit-code` annotation). The
//! local backend proves the log path end to end, since kwok serves no container logs.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod api;
mod cli;
mod local;
mod replicas;
mod restart;
mod runs;
mod samples;
mod teams;
#[path = "../watch_support/mod.rs"]
mod watch_support;
mod webhooks;
mod workers;

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use ottoscaler::cli::client::{ClientArgs, Logs, Otto};
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
    std::fs::write(f.path(), serde_saphyr::to_string(&cfg).unwrap()).unwrap();
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

/// The value of one series (`name{labels}` exactly as exposed) in a /metrics text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

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

/// The history of run `id`, from the start.
async fn history(otto: &mut Otto, id: &str) -> Vec<proto::PipelineProgress> {
    collect(
        otto.watch_pipeline(proto::WatchPipelineRequest {
            run_id: id.into(),
            from_seq: 0,
        })
        .await
        .unwrap()
        .into_inner(),
    )
    .await
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

/// Runs `steward ottoscaler <args>` against `server` with the token; (success, stdout).
async fn cli(server: &Server, args: &[&str]) -> (bool, String) {
    let (code, stdout, _) = cli_exit(&server.url, args).await;
    (code == Some(0), stdout)
}

/// Runs `steward ottoscaler <args>` against the server at `url` with the token;
/// (exit status, stdout, stderr).
async fn cli_exit(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .arg("ottoscaler")
        .args(args)
        .env("OTTOSCALER_SERVER", url)
        .env("OTTOSCALER_TOKEN", TOKEN)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
