//! Peak memory of `steward drain` on a cluster holding 2000 pods (the goal:
//! under 40 MB).
//!
//! 40 kwok nodes in NodePool `rss` hold 4 Deployments x 500 pods (PDB maxUnavailable 10%);
//! 20 spare nodes take the evicted pods. Runs `steward drain --dry-run` (plans against
//! every pod of the cluster), then a real drain of 5 nodes (250 pods), each under GNU
//! time, and prints the peak RSS of each. `STEWARD_WRAP="heaptrack -o /tmp/h"` runs
//! steward under a profiler instead.
//!
//! cargo build --release -p steward && cargo run --release -p node-drain --example drain_rss

#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use steward_sim::{Cluster, Lifetime, NodeSpec, Options};
use testkit::karpenter::{Generation, karpenter_exporter};
use testkit::prometheus::Prometheus;
use testkit::wait::{self, from_json, pod_ready};

const POOL_NODES: usize = 40;
const SPARE_NODES: usize = 20;
const DEPLOYMENTS: usize = 4;
const REPLICAS: i32 = 500;
const NS: &str = "rss";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let steward = testkit::release_steward()?;
    let dir = std::env::temp_dir().join(format!("steward-drain-rss-{}", std::process::id()));
    let cluster = Cluster::start(&Options {
        dir: dir.clone(),
        bin_dir: testkit::bin_dir()?,
        lifetime: Lifetime::WithParent,
        audit: false,
        real_nodes: 0,
        images: Vec::new(),
    })
    .await?;
    let client = cluster.client().await?;
    let kubeconfig = cluster.kubeconfig().display().to_string();
    let pool = setup(&client).await?;

    let exporter = karpenter_exporter(client.clone(), Generation::V1).await;
    let prom = Prometheus::start("karpenter", &[exporter]).await?;
    prom.wait_for_series(
        &format!("karpenter_nodepools_usage{{nodepool=\"{NS}\"}}"),
        Duration::from_secs(60),
    )
    .await?;

    let wrap = std::env::var("STEWARD_WRAP").ok();
    let common = [
        "drain",
        "--nodepool-name",
        NS,
        "--prometheus-address",
        prom.url(),
        "--timeout",
        "10m",
    ];
    let batch = pool[..5].join(",");
    let runs: [(&str, Vec<&str>); 2] = [
        ("drain --dry-run (plan over 2000 pods)", vec!["--dry-run"]),
        ("drain of 5 nodes (250 pods)", vec!["--nodes", &batch]),
    ];
    println!(
        "\nsteward peak RSS with {} pods in the cluster",
        pods_total()
    );
    for (what, extra) in runs {
        let mut cmd = tokio::process::Command::new(match &wrap {
            Some(w) => w.split_whitespace().next().unwrap().to_string(),
            None => "/usr/bin/time".to_string(),
        });
        match &wrap {
            Some(w) => {
                cmd.args(w.split_whitespace().skip(1));
            }
            None => {
                cmd.args(["-f", bench_support::TIME_FORMAT]);
            }
        }
        cmd.arg(&steward)
            .args(common)
            .args(&extra)
            .env("KUBECONFIG", &kubeconfig);
        let out = cmd.output().await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(out.status.success(), "{what} failed:\n{stderr}");
        let rss_kb: u64 = bench_support::max_rss_kb(&stderr)?;
        println!("{what:<40} {:>6.1} MB", rss_kb as f64 / 1024.0);
    }
    drop(prom);
    drop(cluster);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

fn pods_total() -> usize {
    DEPLOYMENTS * usize::try_from(REPLICAS).unwrap()
}

async fn setup(client: &kube::Client) -> anyhow::Result<Vec<String>> {
    let nsobj: Namespace = from_json(json!({ "metadata": { "name": NS } }));
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &nsobj)
        .await?;
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), NS);
    wait::until(
        Duration::from_secs(30),
        "default ServiceAccount",
        || async { Ok(sas.get_opt("default").await?.is_some()) },
    )
    .await?;
    let pool: Vec<NodeSpec> = (0..POOL_NODES)
        .map(|i| {
            NodeSpec::new(format!("rss-p{i:02}"))
                .label("rss", "yes")
                .label("karpenter.sh/nodepool", NS)
                .capacity("32", "128Gi")
                .max_pods(110)
        })
        .collect();
    steward_sim::add_nodes(client, &pool, Duration::from_secs(120)).await?;
    for d in 0..DEPLOYMENTS {
        let name = format!("web{d}");
        let dep: Deployment = from_json(json!({ "metadata": { "name": name }, "spec": {
            "replicas": REPLICAS, "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": {
                "terminationGracePeriodSeconds": 2, "nodeSelector": { "rss": "yes" },
                "containers": [{ "name": "c", "image": "registry.invalid/c:1",
                    "resources": { "requests": { "cpu": "100m", "memory": "128Mi" } } }] } } } }));
        Api::<Deployment>::namespaced(client.clone(), NS)
            .create(&PostParams::default(), &dep)
            .await?;
        let pdb: PodDisruptionBudget = from_json(json!({ "metadata": { "name": name },
            "spec": { "maxUnavailable": "10%", "selector": { "matchLabels": { "app": name } } } }));
        Api::<PodDisruptionBudget>::namespaced(client.clone(), NS)
            .create(&PostParams::default(), &pdb)
            .await?;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    wait::list(
        &pods,
        &ListParams::default(),
        Duration::from_secs(900),
        "2000 pods Ready",
        |ps| ps.iter().filter(|p| pod_ready(p)).count() == pods_total(),
    )
    .await?;
    // Spare nodes only now, so every pod starts on a NodePool node.
    let spare: Vec<NodeSpec> = (0..SPARE_NODES)
        .map(|i| {
            NodeSpec::new(format!("rss-s{i:02}"))
                .label("rss", "yes")
                .capacity("32", "128Gi")
                .max_pods(110)
        })
        .collect();
    steward_sim::add_nodes(client, &spare, Duration::from_secs(120)).await?;
    eprintln!("{} pods Ready on {POOL_NODES} nodes", pods_total());
    Ok(pool.into_iter().map(|n| n.name).collect())
}
