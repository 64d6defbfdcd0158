//! Ottoscaler benchmark: numbers for the issue's goals, on this machine.
//!
//! ```text
//! cargo run --release -p ottoscaler --example ottoscaler_bench
//! ```
//!
//! - unary RPC latency (GetWorkerStatus with auth) on loopback, p50/p99;
//! - stage transition overhead on the real control plane with kwok pods: from the
//!   moment a watch sees stage a's pod Succeeded to the moment it sees stage b's pod
//!   created, at 1 and at 50 concurrent runs;
//! - log latency, local backend: each line carries its write time; latency is the
//!   client's receive time minus it;
//! - peak RSS (VmHWM of this process: server and clients) with 100 local workers and
//!   10 log streams following busy runs.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use ottoscaler::backend::Backend;
use ottoscaler::backend::kubernetes::KubeBackend;
use ottoscaler::backend::local::LocalBackend;
use ottoscaler::cli::client::{ClientArgs, Logs, Otto};
use ottoscaler::core::config::Config;
use ottoscaler::metrics::Metrics;
use ottoscaler::proto;
use ottoscaler::scaler::{Options, Scaler};
use ottoscaler::server::{ServeOptions, serve};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench";

async fn start(
    backend: Arc<dyn Backend>,
    config: Config,
    opts: Options,
) -> (Otto, Logs, CancellationToken) {
    let stop = CancellationToken::new();
    let scaler = Scaler::new(backend, config, opts, Metrics::default());
    scaler.start(stop.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        scaler,
        listener,
        ServeOptions {
            teams: ottoscaler::core::teams::Teams::single(TOKEN),
            audit: ottoscaler::audit::Audit::default(),
            reflection: false,
            tls: None,
        },
        stop.clone(),
    ));
    let args = ClientArgs {
        server: url,
        token: Some(TOKEN.into()),
        token_file: None,
        ca_cert: None,
        client_cert: None,
        client_key: None,
    };
    let (otto, logs) = args.connect().await.unwrap();
    (otto, logs, stop)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn report(name: &str, v: &mut [f64], goal: &str) {
    println!(
        "{name:<48} n={:<5} p50={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms  (goal: {goal})",
        v.len(),
        pct(v, 0.5),
        pct(v, 0.99),
        pct(v, 1.0)
    );
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

async fn unary(otto: &mut Otto) {
    for _ in 0..200 {
        otto.get_worker_status(proto::WorkerStatusRequest::default())
            .await
            .unwrap();
    }
    let mut v = Vec::new();
    for _ in 0..5000 {
        let t = Instant::now();
        otto.get_worker_status(proto::WorkerStatusRequest::default())
            .await
            .unwrap();
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    report(
        "unary GetWorkerStatus (loopback, auth)",
        &mut v,
        "p99 < 2 ms",
    );
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

async fn log_latency(otto: &mut Otto, logs: &mut Logs) {
    // `date +%s%N` per line: the line carries the time it was written.
    let script = "i=0; while [ $i -lt 300 ]; do date +%s%N; sleep 0.01; i=$((i+1)); done";
    let req = proto::PipelineRequest {
        run_id: "loglat".into(),
        stages: vec![sh("emit", &[], script)],
        ..Default::default()
    };
    let mut progress = otto.execute_pipeline(req).await.unwrap().into_inner();
    progress.next().await;
    let mut s = logs
        .stream_build_logs(proto::BuildIdentifier {
            run_id: "loglat".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut v = Vec::new();
    while let Some(e) = s.next().await {
        let e = e.unwrap();
        if let Ok(written) = e.message.trim().parse::<i128>() {
            v.push((now_ns() - written) as f64 / 1e6);
        }
    }
    report(
        "log line written -> client received (local)",
        &mut v,
        "p99 < 100 ms",
    );
}

fn vm_hwm_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn rss(otto: &mut Otto, logs: &Logs) {
    let before = vm_hwm_mib();
    let r = otto
        .scale_up(proto::ScaleRequest {
            task_id: "rss".into(),
            worker_count: 90,
            worker: Some(proto::WorkerTemplate {
                command: vec!["sleep".into(), "20".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.workers.len(), 90);
    let mut followers = Vec::new();
    for i in 0..10 {
        let id = format!("rss-{i}");
        let script = "i=0; while [ $i -lt 2000 ]; do echo \"line $i of a busy build log, padded to look like compiler output\"; i=$((i+1)); done";
        let req = proto::PipelineRequest {
            run_id: id.clone(),
            stages: vec![sh("spam", &[], script)],
            ..Default::default()
        };
        let mut p = otto.execute_pipeline(req).await.unwrap().into_inner();
        p.next().await;
        let mut l = logs.clone();
        followers.push(tokio::spawn(async move {
            let s = l
                .stream_build_logs(proto::BuildIdentifier {
                    run_id: id,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            s.count().await
        }));
    }
    let mut lines = 0;
    for f in followers {
        lines += f.await.unwrap();
    }
    println!(
        "{:<48} peak RSS {:.1} MiB (before workers {:.1} MiB); {lines} log lines streamed  (goal: < 50 MB)",
        "100 local workers + 10 log streams",
        vm_hwm_mib(),
        before
    );
    otto.scale_down(proto::ScaleRequest {
        task_id: "rss".into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn transitions(
    runs: usize,
    round: usize,
    otto: &mut Otto,
    env: &testkit::TestEnv,
) -> (Vec<f64>, Vec<f64>) {
    let api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    /// Per pod: first seen, first seen Succeeded.
    type Seen = HashMap<String, (Option<Instant>, Option<Instant>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s2 = seen.clone();
    let stop = CancellationToken::new();
    let stop2 = stop.clone();
    let watch = tokio::spawn(async move {
        let mut w = std::pin::pin!(
            watcher(
                api,
                watcher::Config::default().labels("steward.io/ottoscaler=worker")
            )
            .applied_objects()
        );
        loop {
            let p = tokio::select! { p = w.try_next() => p, () = stop2.cancelled() => return };
            let Ok(Some(p)) = p else { return };
            let now = Instant::now();
            let done = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
            let mut m = s2.lock().unwrap();
            let e = m.entry(p.name_any()).or_insert((None, None));
            e.0.get_or_insert(now);
            if done {
                e.1.get_or_insert(now);
            }
        }
    });
    let stage = |name: &str, deps: &[&str]| proto::Stage {
        name: name.into(),
        depends_on: deps.iter().map(|d| (*d).to_string()).collect(),
        worker: Some(proto::WorkerTemplate {
            image: "registry.invalid/ci:1".into(),
            annotations: [
                ("steward.io/sim-exit-code".to_string(), "0".to_string()),
                (
                    "steward.io/sim-run-duration".to_string(),
                    "500ms".to_string(),
                ),
            ]
            .into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let internal: Arc<Mutex<Vec<f64>>> = Arc::default();
    let mut handles = Vec::new();
    for i in 0..runs {
        let internal = internal.clone();
        let mut o = otto.clone();
        let id = format!("t{runs}-{round}-{i}");
        handles.push(tokio::spawn(async move {
            let req = proto::PipelineRequest {
                run_id: id,
                stages: vec![stage("a", &[]), stage("b", &["a"]), stage("c", &["b"])],
                ..Default::default()
            };
            let s = o.execute_pipeline(req).await.unwrap().into_inner();
            let ps = s
                .filter_map(|p| async move { p.ok() })
                .collect::<Vec<_>>()
                .await;
            assert_eq!(ps.last().unwrap().run_state(), proto::RunState::Succeeded);
            let ts = |stage: &str, st: proto::StageState| {
                ps.iter()
                    .find(|p| p.stage == stage && p.stage_state() == st)
                    .map(|p| p.timestamp_unix_ms)
            };
            for (from, to) in [("a", "b"), ("b", "c")] {
                let done = ts(from, proto::StageState::Succeeded);
                let created = ts(to, proto::StageState::Starting);
                if let (Some(d), Some(c)) = (done, created) {
                    internal.lock().unwrap().push((c - d) as f64);
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    stop.cancel();
    let _ = watch.await;
    let m = seen.lock().unwrap();
    let mut v = Vec::new();
    for i in 0..runs {
        for (from, to) in [("a", "b"), ("b", "c")] {
            let done = m
                .get(&format!("t{runs}-{round}-{i}-{from}-1"))
                .and_then(|e| e.1);
            let created = m
                .get(&format!("t{runs}-{round}-{i}-{to}-1"))
                .and_then(|e| e.0);
            if let (Some(d), Some(c)) = (done, created) {
                v.push(c.saturating_duration_since(d).as_secs_f64() * 1000.0);
            }
        }
    }
    let internal = internal.lock().unwrap().clone();
    (v, internal)
}

#[tokio::main]
async fn main() {
    let config = Config::default();
    let opts = Options {
        max_workers: 200,
        ..Options::default()
    };
    let (mut otto, mut logs, stop) =
        start(Arc::new(LocalBackend::new()), config.clone(), opts.clone()).await;
    unary(&mut otto).await;
    log_latency(&mut otto, &mut logs).await;
    rss(&mut otto, &logs).await;
    stop.cancel();

    let env = testkit::env("otto-bench").await.unwrap();
    env.add_nodes("n", 4, |s| s.capacity("64", "256Gi"))
        .await
        .unwrap();
    let mut cfg = Config::default();
    let class = cfg.classes.get_mut("default").unwrap();
    class.node_selector = env.node_selector();
    class.tolerations = vec![env.toleration()];
    let backend = Arc::new(KubeBackend::new(env.client.clone(), &env.ns));
    let (mut otto, _, stop) = start(backend, cfg, opts).await;
    // One run at a time, ten times; then 50 at once.
    for (runs, rounds) in [(1, 10), (50, 1)] {
        let (mut watch, mut internal) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let (w, i) = transitions(runs, round, &mut otto, &env).await;
            watch.extend(w);
            internal.extend(i);
        }
        report(
            &format!("stage transition, {runs} concurrent runs (kwok)"),
            &mut watch,
            "p99 < 100 ms",
        );
        report(
            "  of which in the scaler (done seen -> created)",
            &mut internal,
            "server clock, ms resolution",
        );
    }
    stop.cancel();
}
