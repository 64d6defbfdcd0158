//! Numbers for `steward graceful-drain` on the simulated cluster.
//!
//! 1. Peak RSS of the steward process watching 2000 pods (every replica keeps pod
//!    metadata for the webhook), from /proc/<pid>/status VmHWM.
//! 2. Webhook latency p50/p99: AdmissionReviews posted over TLS at 50/s, the way
//!    the API server sends them: non-targeted pods (allow, no write) and targeted
//!    pods (first eviction: the drain request is written to the pod).
//! 3. Time from an eviction request to the pod leaving the Service's ready
//!    endpoints (the EndpointSlice as kube-proxy reads it).
//! 4. Failed requests under steady load while the same eviction calls the VPA
//!    updater makes hit three pods, without steward and with steward.
//!
//! cargo build --release -p steward && cargo run --release -p graceful-drain --example gd_bench

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testkit::TestEnv;
use testkit::traffic::{Backends, LoadGen};
use testkit::wait::{self, from_json, pod_ready};

const BULK: i32 = 1900;
const TARGETED: i32 = 100;
const RATE: u64 = 50;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let steward = testkit::release_steward()?;

    let env = testkit::env("gdbench").await?;
    env.add_nodes("n", 20, |s| s.max_pods(200)).await?;
    println!("creating {} pods ...", BULK + TARGETED);
    let t = Instant::now();
    deployment(&env, "bulk", BULK, false).await;
    deployment(&env, "web", TARGETED, true).await;
    ready(&env, "bulk", BULK).await;
    ready(&env, "web", TARGETED).await;
    println!("  ready in {:.1}s", t.elapsed().as_secs_f64());

    let sys = testkit::env("gdbench-sys").await?;
    config(
        &sys,
        "version: 1\ndefaults:\n  minWait: 2s\n  delay: 2s\n  maxWait: 30s\n",
    )
    .await;
    let (mut child, admin, port) = start(&steward, &sys, &env).await;
    let pid = child.id().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await; // steady state after the initial list
    let rss_synced = vm_hwm(pid);

    // 2. Webhook latency at 50/s.
    let ca = Api::<Secret>::namespaced(sys.client.clone(), &sys.ns)
        .get("steward-graceful-drain-tls")
        .await?;
    let ca_pem = ca.data.unwrap()["ca.crt"].0.clone();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem)?)
        .build()?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let all = pods.list(&ListParams::default()).await?.items;
    let (web, bulk): (Vec<&Pod>, Vec<&Pod>) = all
        .iter()
        .partition(|p| p.labels().get("app").map(String::as_str) == Some("web"));
    let mut allow = Vec::new();
    let mut deny = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
    let url = format!("https://localhost:{port}/validate-eviction");
    for i in 0..(10 * RATE as usize) {
        tick.tick().await;
        let (pod, targeted) = if i % 5 == 4 {
            (web[i / 5 % web.len()], true)
        } else {
            (bulk[i % bulk.len()], false)
        };
        let t = Instant::now();
        let resp: Value = http
            .post(&url)
            .json(&review(&env.ns, &pod.name_any()))
            .send()
            .await?
            .json()
            .await?;
        let took = t.elapsed();
        let allowed = resp["response"]["allowed"].as_bool().unwrap_or(true);
        if targeted && !allowed {
            deny.push(took)
        } else {
            allow.push(took)
        }
    }
    println!(
        "webhook latency at {RATE}/s over TLS ({} allow, {} deny+record):",
        allow.len(),
        deny.len()
    );
    println!(
        "  allow (no write):             p50 {:6.2} ms  p99 {:6.2} ms",
        pct(&mut allow, 50.0),
        pct(&mut allow, 99.0)
    );
    println!(
        "  targeted (drain request write) p50 {:6.2} ms  p99 {:6.2} ms",
        pct(&mut deny, 50.0),
        pct(&mut deny, 99.0)
    );
    let _ = admin;

    // 3. Eviction request -> pod out of the ready endpoints.
    let fresh: Vec<Pod> = pods
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .into_iter()
        .filter(|p| pod_ready(p) && !p.labels().contains_key("steward.io/drain"))
        .take(10)
        .collect();
    let mut out = Vec::new();
    for p in &fresh {
        let name = p.name_any();
        let t = Instant::now();
        let _ = pods.evict(&name, &EvictParams::default()).await;
        let slices: Api<EndpointSlice> = Api::namespaced(env.client.clone(), &env.ns);
        wait::list(
            &slices,
            &ListParams::default().labels("kubernetes.io/service-name=web"),
            Duration::from_secs(30),
            "pod out of endpoints",
            |ss| {
                !ss.iter().flat_map(|s| &s.endpoints).any(|e| {
                    e.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(&name)
                        && e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
                })
            },
        )
        .await?;
        out.push(t.elapsed());
    }
    println!(
        "eviction request -> out of ready endpoints ({} pods): p50 {:.0} ms, max {:.0} ms",
        out.len(),
        pct(&mut out, 50.0),
        pct(&mut out, 100.0)
    );
    let rss_peak = vm_hwm(pid);
    println!(
        "steward peak RSS watching {} pods: {:.1} MiB after the initial sync, {:.1} MiB after the runs above",
        BULK + TARGETED,
        rss_synced as f64 / 1024.0,
        rss_peak as f64 / 1024.0
    );
    println!(
        "  resident now: {:.1} MiB anonymous (heap, stacks), {:.1} MiB file-backed (the binary's code)",
        status_kib(pid, "RssAnon:") as f64 / 1024.0,
        status_kib(pid, "RssFile:") as f64 / 1024.0
    );
    child.kill().await?;

    // 4. Failed requests, without and with steward.
    for with in [false, true] {
        let (ok, failed) = traffic_run(&steward, with).await?;
        println!(
            "3 evictions under load {} steward: {ok} requests ok, {failed} failed",
            if with { "with" } else { "without" }
        );
    }
    Ok(())
}

async fn traffic_run(steward: &PathBuf, with: bool) -> anyhow::Result<(u64, u64)> {
    let env = testkit::env("gdbench-traffic").await?;
    env.add_nodes("n", 2, |s| s).await?;
    let sys = testkit::env("gdbench-sys").await?;
    let child = if with {
        config(&sys, "version: 1\ndefaults:\n  minWait: 3s\n  maxWait: 30s\n  probe: { port: 8080, gauge: inflight }\n").await;
        Some(start(steward, &sys, &env).await.0)
    } else {
        None
    };
    let backends = Backends::start(env.client.clone(), &env.ns);
    deployment(&env, "web", 3, true).await;
    let original = ready(&env, "web", 3).await;
    wait::until(Duration::from_secs(60), "servers", || async {
        Ok(original
            .iter()
            .all(|p| backends.addr(&p.name_any()).is_some()))
    })
    .await?;
    let load = LoadGen::start(env.client.clone(), &env.ns, "web", backends.clone(), 6);
    let ok = load.counts.ok.clone();
    wait::until(Duration::from_secs(60), "load", || async {
        Ok(ok.load(Ordering::SeqCst) > 30)
    })
    .await?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    for p in &original {
        // The VPA updater's call: an Eviction with no DeleteOptions, retried on 429.
        let name = p.name_any();
        wait::until(Duration::from_secs(60), "evicted", || {
            let pods = pods.clone();
            let name = name.clone();
            let backends = backends.clone();
            async move {
                let _ = pods.evict(&name, &EvictParams::default()).await;
                Ok(backends.deleted.lock().unwrap().contains(&name))
            }
        })
        .await?;
    }
    let (ok, failed, _) = load.finish().await;
    if let Some(mut c) = child {
        c.kill().await?;
    }
    Ok((ok, failed))
}

async fn deployment(env: &TestEnv, name: &str, replicas: i32, targeted: bool) {
    let annotations = if targeted {
        json!({ "vpa-managed": "true" })
    } else {
        json!({})
    };
    let d: Deployment = from_json(json!({
        "metadata": { "name": name },
        "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": name } },
          "template": { "metadata": { "labels": { "app": name }, "annotations": annotations },
            "spec": { "terminationGracePeriodSeconds": 2, "nodeSelector": env.node_selector(), "tolerations": [env.toleration()],
              "containers": [{ "name": "c", "image": "registry.invalid/web:1", "resources": { "requests": { "cpu": "1m", "memory": "1Mi" } } }] } } }
    }));
    Api::<Deployment>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let svc: Service = from_json(
        json!({ "metadata": { "name": name }, "spec": { "selector": { "app": name }, "ports": [{ "port": 80, "targetPort": 8080 }] } }),
    );
    Api::<Service>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
}

async fn ready(env: &TestEnv, app: &str, n: i32) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let n = usize::try_from(n).unwrap();
    wait::list(
        &pods,
        &ListParams::default().labels(&format!("app={app}")),
        Duration::from_secs(600),
        "pods ready",
        |ps| ps.iter().filter(|p| pod_ready(p)).count() >= n,
    )
    .await
    .unwrap()
}

async fn config(sys: &TestEnv, yaml: &str) {
    let cm = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "steward-graceful-drain" }, "data": { "config.yaml": yaml } });
    Api::<ConfigMap>::namespaced(sys.client.clone(), &sys.ns)
        .patch(
            "steward-graceful-drain",
            &PatchParams::apply("bench").force(),
            &Patch::Apply(cm),
        )
        .await
        .unwrap();
}

fn free_port() -> u16 {
    testkit::free_port()
}

async fn start(
    steward: &PathBuf,
    sys: &TestEnv,
    app: &TestEnv,
) -> (tokio::process::Child, String, u16) {
    let admin = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let child = tokio::process::Command::new(steward)
        .args([
            "graceful-drain",
            "run",
            "--kubeconfig",
            &kubeconfig,
            "--namespace",
            &sys.ns,
            "--admin-addr",
            &admin,
        ])
        .args([
            "--webhook-addr",
            &format!("127.0.0.1:{port}"),
            "--webhook-url",
            &format!("https://127.0.0.1:{port}"),
        ])
        .args([
            "--webhook-name",
            &format!("steward-gd-{}", app.ns),
            "--webhook-namespace-label",
            &format!("kubernetes.io/metadata.name={}", app.ns),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://{admin}/readyz");
    wait::until(Duration::from_secs(120), "steward ready", || async {
        Ok(http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()))
    })
    .await
    .unwrap();
    (child, admin, port)
}

fn review(ns: &str, pod: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000000",
            "kind": { "group": "policy", "version": "v1", "kind": "Eviction" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "subResource": "eviction",
            "requestKind": { "group": "policy", "version": "v1", "kind": "Eviction" },
            "requestResource": { "group": "", "version": "v1", "resource": "pods" },
            "requestSubResource": "eviction",
            "name": pod, "namespace": ns, "operation": "CREATE",
            "userInfo": { "username": "gd-bench" },
            "object": { "apiVersion": "policy/v1", "kind": "Eviction", "metadata": { "name": pod, "namespace": ns } },
            "oldObject": null, "dryRun": false,
            "options": { "apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions" }
        }
    })
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let i = (((p / 100.0) * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1000.0
}

fn vm_hwm(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// A `/proc/<pid>/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
