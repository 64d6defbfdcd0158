//! Real nodes on this machine, measured: warm start of a cluster with one real node
//! (3 times), one pod created to Ready (10 times), PODS pause pods on one real node
//! (time to all Ready, the node's memory), and ottoscaler's log latency through the
//! real kubelet's log path (line printed in the container → line received by a
//! StreamBuildLogs client, p50/p99).
//!
//! ```sh
//! cargo build -p steward
//! STEWARD_CONTROLPLANE_BIN=$(hack/setup.sh) STEWARD_BIN=target/debug/steward \
//!   nice cargo run -p steward --example realnode_bench -- 100
//! ```

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use ottoscaler::cli::client::ClientArgs;
use ottoscaler::proto;
use serde_json::json;
use steward_sim::{Cluster, Options};
use testkit::realnode::{
    HTTP_IMAGE, PAUSE_IMAGE, REAL_NODE_LABEL, WORKER_IMAGE, http_pod_spec, pod_spec,
};
use testkit::wait::{self, from_json};

const T: Duration = Duration::from_secs(600);

fn options(i: usize) -> anyhow::Result<Options> {
    let dir =
        std::env::temp_dir().join(format!("steward-realnode-bench-{}-{i}", std::process::id()));
    let mut o = Options::new(dir, testkit::bin_dir()?);
    o.real_nodes = 1;
    o.images = testkit::images()?;
    Ok(o)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn node_memory_mib(cluster: &Cluster) -> u64 {
    let ns = cluster.real_node_netns("real-node-1").unwrap();
    let f = format!("/sys/fs/cgroup/memory/steward-{ns}/memory.usage_in_bytes");
    std::fs::read_to_string(f)
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        / (1 << 20)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "100".into());
    if arg == "logs" {
        let cluster = Cluster::start(&options(8)?).await?;
        let r = log_latency(&cluster).await;
        std::fs::remove_dir_all(cluster.dir())?;
        return r;
    }
    let pods: i32 = arg.parse()?;
    for i in 0..3 {
        let c = Cluster::start(&options(i)?).await?;
        let (cp, nodes) = (c.started_in(), c.real_nodes_ready_in());
        let (t, dir) = (Instant::now(), c.dir().to_path_buf());
        drop(c);
        std::fs::remove_dir_all(dir)?;
        println!(
            "warm start {}: control plane {:.2}s, real node Ready {:.2}s later; torn down in {:.2}s",
            i + 1,
            cp.as_secs_f64(),
            nodes.as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
    }
    let cluster = Cluster::start(&options(9)?).await?;
    println!(
        "warm start: control plane {:.2}s, real node Ready {:.2}s later",
        cluster.started_in().as_secs_f64(),
        cluster.real_nodes_ready_in().as_secs_f64()
    );
    let client = cluster.client().await?;
    let env = testkit::TestEnv {
        client: client.clone(),
        ns: "default".into(),
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), &env.ns);

    let mut one = Vec::new();
    for i in 0..10 {
        let name = format!("one-{i}");
        let pod: Pod = from_json(json!({"metadata": {"name": name}, "spec": http_pod_spec(0, 1)}));
        let t = Instant::now();
        api.create(&PostParams::default(), &pod).await?;
        wait::object(&api, &name, T, "Ready", wait::pod_ready).await?;
        one.push(t.elapsed().as_secs_f64());
        api.delete(&name, &DeleteParams::default()).await?;
    }
    println!(
        "one {HTTP_IMAGE} pod created to Ready: p50 {:.2}s, max {:.2}s (10 runs)",
        pct(&mut one.clone(), 0.5),
        pct(&mut one, 1.0)
    );

    let before = node_memory_mib(&cluster);
    let mut spec = pod_spec(PAUSE_IMAGE, &[]);
    spec["terminationGracePeriodSeconds"] = json!(1);
    spec["containers"][0]["resources"] = json!({"requests": {"cpu": "1m", "memory": "4Mi"}});
    let deploy: Deployment = from_json(json!({
        "metadata": {"name": "density"},
        "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "density"}},
                 "template": {"metadata": {"labels": {"app": "density"}}, "spec": spec}}
    }));
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &env.ns);
    let t = Instant::now();
    deploys.create(&PostParams::default(), &deploy).await?;
    let n = usize::try_from(pods)?;
    wait::list(
        &api,
        &ListParams::default().labels("app=density"),
        T,
        "all Ready",
        |ps| ps.iter().filter(|p| wait::pod_ready(p)).count() == n,
    )
    .await?;
    println!(
        "{pods} pause pods on one real node: created to all Ready {:.1}s; node memory {before} -> {} MiB",
        t.elapsed().as_secs_f64(),
        node_memory_mib(&cluster)
    );
    let t = Instant::now();
    deploys
        .delete("density", &DeleteParams::foreground())
        .await?;
    wait::list(
        &api,
        &ListParams::default().labels("app=density"),
        T,
        "all gone",
        <[Pod]>::is_empty,
    )
    .await?;
    println!(
        "{pods} pods deleted to all gone {:.1}s",
        t.elapsed().as_secs_f64()
    );

    log_latency(&cluster).await?;
    std::fs::remove_dir_all(cluster.dir())?;
    Ok(())
}

/// `steward ottoscaler serve` (Kubernetes backend) runs one worker printing a
/// stamped line every 20 ms; the client's receive time minus the stamp.
async fn log_latency(cluster: &Cluster) -> anyhow::Result<()> {
    let steward = std::env::var("STEWARD_BIN").unwrap_or_else(|_| "target/debug/steward".into());
    let class = json!({"requests": {"cpu": "10m", "memory": "16Mi"}, "max": {"cpu": "2", "memory": "1Gi"},
                       "node_selector": {REAL_NODE_LABEL: "true"}});
    let cfg = std::env::temp_dir().join(format!("realnode-bench-otto-{}.yaml", std::process::id()));
    std::fs::write(
        &cfg,
        serde_saphyr::to_string(&json!({"default_class": "ci", "classes": {"ci": class}}))?,
    )?;
    let port = testkit::free_port();
    let _server = tokio::process::Command::new(&steward)
        .args(["ottoscaler", "serve", "--namespace", "default", "--config"])
        .arg(&cfg)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-addr",
            &format!("127.0.0.1:{}", testkit::free_port()),
        ])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("OTTOSCALER_TOKEN", "bench")
        .kill_on_drop(true)
        .spawn()?;
    let args = ClientArgs {
        server: format!("http://127.0.0.1:{port}"),
        token: Some("bench".into()),
        token_file: None,
        ca_cert: None,
        client_cert: None,
        client_key: None,
    };
    let (mut otto, mut logs) = loop {
        if let Ok(c) = args.connect().await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stage = proto::Stage {
        name: "print".into(),
        worker: Some(proto::WorkerTemplate {
            image: WORKER_IMAGE.into(),
            command: [
                "/test-worker",
                "--lines",
                "300",
                "--interval-ms",
                "20",
                "--stamp",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let req = proto::PipelineRequest {
        run_id: "bench".into(),
        stages: vec![stage],
        timeout_seconds: 300,
        ..Default::default()
    };
    let _progress = otto.execute_pipeline(req).await?.into_inner();
    let mut live = logs
        .stream_build_logs(proto::BuildIdentifier {
            run_id: "bench".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    // Lines printed before the scaler's log follow attached come as a backlog; the
    // steady state is the lines printed after the first one arrived.
    let (mut all, mut steady, mut first) = (Vec::new(), Vec::new(), None);
    while let Some(e) = live.next().await {
        let now = jiff::Timestamp::now().as_millisecond();
        let stamp = e?
            .message
            .rsplit_once(" t=")
            .and_then(|(_, t)| t.parse::<i64>().ok());
        if let Some(t) = stamp {
            let d = (now - t) as f64;
            all.push(d);
            if first.is_some_and(|f| t > f) {
                steady.push(d);
            }
            first.get_or_insert(now);
        }
    }
    for (what, v) in [
        ("every line", &mut all),
        ("printed after the first arrived", &mut steady),
    ] {
        println!(
            "ottoscaler log latency through the kubelet, {what} ({} lines): p50 {:.0} ms, p99 {:.0} ms",
            v.len(),
            pct(&mut v.clone(), 0.5),
            pct(v, 0.99)
        );
    }
    Ok(())
}
