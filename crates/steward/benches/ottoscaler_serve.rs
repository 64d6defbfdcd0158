//! The real `steward ottoscaler serve` process, measured from outside:
//!
//! ```text
//! STEWARD_CONTROLPLANE_BIN=$(hack/setup.sh) cargo bench -p steward --bench ottoscaler_serve
//! ```
//!
//! - **restart recovery**, on the simulated control plane: 20 runs of 3 stages, each
//!   with a worker pod running; the process is killed with SIGKILL and a new one
//!   started; measured from the new process's spawn to its health answering SERVING,
//!   and to every one of the 20 runs answering `WatchPipeline` (re-attached), 3
//!   times, median;
//! - **peak RSS** of the serve process alone (`VmHWM` of `/proc/<pid>/status`), local
//!   backend, 100 workers (90 scale-up workers and 10 runs) with 10 clients
//!   streaming the runs' logs (2,000 lines each), 3 times, median; printed in MiB
//!   and MB.
//!
//! The in-process `ottoscaler_bench` example measures latencies (RPC, stage
//! transition, log delivery), where a second process only adds loopback hops.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ottoscaler::cli::client::{ClientArgs, Otto};
use ottoscaler::proto;
use tokio::process::{Child, Command};

const TOKEN: &str = "bench-token";
const RUNS: usize = 20;

struct Serve {
    child: Child,
    url: String,
    args: Vec<String>,
    port: u16,
}

fn spawn(args: &[String], port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", testkit::cluster().kubeconfig())
        .env("OTTOSCALER_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

impl Serve {
    async fn start(extra: &[&str]) -> Self {
        let port = testkit::free_port();
        let admin = format!("127.0.0.1:{}", testkit::free_port());
        let mut args: Vec<String> = ["ottoscaler", "serve", "--admin-addr", &admin]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
        args.extend(extra.iter().map(|s| (*s).to_string()));
        let s = Self {
            child: spawn(&args, port),
            url: format!("http://127.0.0.1:{port}"),
            args,
            port,
        };
        s.serving().await;
        s
    }

    /// Polls health until SERVING (no watch can tell when a process listens).
    async fn serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "the server never served");
            if let Ok(ch) = tonic::transport::Endpoint::from_shared(self.url.clone())
                .unwrap()
                .connect()
                .await
            {
                let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
                let r = h
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: "ottoscaler.v1.OttoscalerService".into(),
                    })
                    .await;
                if r.is_ok_and(|r| {
                    r.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                }) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn client(&self) -> (Otto, ottoscaler::cli::client::Logs) {
        ClientArgs {
            server: self.url.clone(),
            token: Some(TOKEN.into()),
            token_file: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
        }
        .connect()
        .await
        .unwrap()
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }
}

fn vm_hwm_kib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn stage(name: &str, deps: &[&str]) -> proto::Stage {
    proto::Stage {
        name: name.into(),
        depends_on: deps.iter().map(|d| (*d).to_string()).collect(),
        worker: Some(proto::WorkerTemplate {
            image: "registry.invalid/ci:1".into(),
            command: vec!["make".into(), name.into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Spawn of a new process after a SIGKILL -> SERVING, and -> every run re-attached.
async fn recovery(round: usize) -> (f64, f64) {
    let env = testkit::env(&format!("otto-rec-{round}")).await.unwrap();
    env.add_nodes("n", 2, |s| s.capacity("64", "256Gi"))
        .await
        .unwrap();
    let cfg = tempfile::NamedTempFile::new().unwrap();
    let class = serde_json::json!({
        "default_class": "ci",
        "classes": { "ci": {
            "requests": { "cpu": "100m", "memory": "64Mi" },
            "node_selector": env.node_selector(),
            "tolerations": [env.toleration()],
        } }
    });
    std::fs::write(cfg.path(), serde_json::to_string(&class).unwrap()).unwrap();
    let mut s = Serve::start(&[
        "--namespace",
        &env.ns,
        "--config",
        cfg.path().to_str().unwrap(),
    ])
    .await;
    let (mut otto, _) = s.client().await;
    let ids: Vec<String> = (0..RUNS).map(|i| format!("rec-{round}-{i}")).collect();
    for id in &ids {
        let req = proto::PipelineRequest {
            run_id: id.clone(),
            stages: vec![stage("a", &[]), stage("b", &["a"]), stage("c", &["b"])],
            ..Default::default()
        };
        let mut p = otto.execute_pipeline(req).await.unwrap().into_inner();
        // Until stage a runs (kwok runs a pod without an exit annotation forever).
        while let Some(m) = p.next().await {
            let m = m.unwrap();
            if m.stage == "a" && m.stage_state() == proto::StageState::Running {
                break;
            }
        }
    }
    s.child.kill().await.unwrap();
    let t0 = Instant::now();
    s.child = spawn(&s.args, s.port);
    s.serving().await;
    let serving = t0.elapsed().as_secs_f64() * 1000.0;
    let (mut otto, _) = s.client().await;
    for id in &ids {
        loop {
            let r = otto
                .watch_pipeline(proto::WatchPipelineRequest {
                    run_id: id.clone(),
                    from_seq: 0,
                })
                .await;
            if r.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let reattached = t0.elapsed().as_secs_f64() * 1000.0;
    for id in &ids {
        otto.cancel_pipeline(proto::CancelPipelineRequest {
            run_id: id.clone(),
            reason: "bench done".into(),
        })
        .await
        .unwrap();
    }
    (serving, reattached)
}

/// Peak RSS (KiB) of the serve process with 100 local workers and 10 log streams.
async fn rss() -> (f64, usize) {
    let s = Serve::start(&["--backend", "local", "--max-workers", "200"]).await;
    let (mut otto, logs) = s.client().await;
    let up = otto
        .scale_up(proto::ScaleRequest {
            task_id: "rss".into(),
            worker_count: 90,
            worker: Some(proto::WorkerTemplate {
                command: vec!["sleep".into(), "30".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up.workers.len(), 90);
    let script = "i=0; while [ $i -lt 2000 ]; do echo \"line $i of a busy build log, padded to look like compiler output\"; i=$((i+1)); done; sleep 2";
    let mut followers = Vec::new();
    for i in 0..10 {
        let id = format!("rss-{i}");
        let req = proto::PipelineRequest {
            run_id: id.clone(),
            stages: vec![proto::Stage {
                name: "spam".into(),
                worker: Some(proto::WorkerTemplate {
                    command: vec!["sh".into(), "-c".into(), script.into()],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut p = otto.execute_pipeline(req).await.unwrap().into_inner();
        p.next().await;
        let mut l = logs.clone();
        followers.push(tokio::spawn(async move {
            l.stream_build_logs(proto::BuildIdentifier {
                run_id: id,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .count()
            .await
        }));
    }
    let mut lines = 0;
    for f in followers {
        lines += f.await.unwrap();
    }
    let peak = vm_hwm_kib(s.pid());
    otto.scale_down(proto::ScaleRequest {
        task_id: "rss".into(),
        force: true,
        ..Default::default()
    })
    .await
    .unwrap();
    (peak, lines)
}

#[tokio::main]
async fn main() {
    let (mut serving, mut reattached, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        let (s, r) = recovery(round).await;
        println!(
            "round {round}: restart of {RUNS} runs: SERVING after {s:.0} ms, all re-attached after {r:.0} ms"
        );
        serving.push(s);
        reattached.push(r);
        let (kib, lines) = rss().await;
        println!(
            "round {round}: serve peak RSS {:.1} MiB ({:.1} MB), {lines} log lines streamed",
            kib / 1024.0,
            kib * 1024.0 / 1e6
        );
        peaks.push(kib);
    }
    let kib = median(peaks);
    println!(
        "median of 3: restart -> SERVING {:.0} ms, -> {RUNS} runs re-attached {:.0} ms; serve peak RSS {:.1} MiB = {:.1} MB (goal < 40 MB)",
        median(serving),
        median(reattached),
        kib / 1024.0,
        kib * 1024.0 / 1e6
    );
}
