//! `steward drain` against `kubectl drain` on the same simulated cluster.
//!
//! Two identical groups of 10 nodes x 30 pods (5 Deployments with PDB maxUnavailable 1,
//! a StatefulSet, a DaemonSet; grace period 5 s), each with 10 empty spare nodes.
//! steward drains group A, then `kubectl drain --ignore-daemonsets
//! --delete-emptydir-data` drains group B. Reported: wall time and its ratio, API
//! requests each tool issued (from the API server's audit log, by user agent), peak
//! RSS (GNU time), and whether any PDB was violated (fewer than replicas - 1 Ready).
//!
//! cargo build --release -p steward && cargo run --release -p node-drain --example drain_bench

#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use steward_sim::{Cluster, Lifetime, NodeSpec, Options};
use testkit::karpenter::{Generation, karpenter_exporter};
use testkit::prometheus::Prometheus;
use testkit::wait::{self, from_json, pod_ready};

const NODES: usize = 10;
const DEPLOYMENTS: usize = 5;
const REPLICAS: i32 = 54; // 5 x 54 = 270, + 20 StatefulSet + 10 DaemonSet = 300 pods = 30 per node

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let steward = testkit::release_steward()?;
    let bins = testkit::bin_dir()?;
    let dir = std::env::temp_dir().join(format!("steward-drain-bench-{}", std::process::id()));
    let cluster = Cluster::start(&Options {
        dir: dir.clone(),
        bin_dir: bins.clone(),
        lifetime: Lifetime::WithParent,
        audit: true,
        real_nodes: 0,
        images: Vec::new(),
    })
    .await?;
    let client = cluster.client().await?;
    let kubeconfig = cluster.kubeconfig().display().to_string();

    let mut groups = BTreeMap::new();
    for group in ["steward", "kubectl"] {
        groups.insert(group, setup_group(&client, group).await?);
    }
    let exporter = karpenter_exporter(client.clone(), Generation::V1).await;
    let prom = Prometheus::start("karpenter", &[exporter]).await?;
    prom.wait_for_series(
        "karpenter_nodepools_usage{nodepool=\"bench-steward\"}",
        Duration::from_secs(60),
    )
    .await?;

    let mut results = Vec::new();
    for (group, nodes) in &groups {
        let ns = format!("bench-{group}");
        let min_ready = Arc::new(AtomicUsize::new(usize::MAX));
        let watcher = tokio::spawn(watch_min_ready(
            client.clone(),
            ns.clone(),
            min_ready.clone(),
        ));
        let mut cmd = tokio::process::Command::new("/usr/bin/time");
        cmd.arg("-f")
            .arg(bench_support::TIME_FORMAT)
            .env("KUBECONFIG", &kubeconfig);
        if *group == "steward" {
            cmd.arg(&steward).args([
                "drain",
                "--nodepool-name",
                &ns,
                "--prometheus-address",
                prom.url(),
                "--timeout",
                "10m",
                "--nodes",
                &nodes.join(","),
            ]);
        } else {
            cmd.arg(bins.join("kubectl"))
                .arg("drain")
                .args(nodes)
                .args([
                    "--ignore-daemonsets",
                    "--delete-emptydir-data",
                    "--timeout=10m",
                ]);
        }
        let since = bench_support::audit_lines(&dir.join("audit.log"));
        let t = Instant::now();
        let out = cmd.output().await?;
        let secs = t.elapsed().as_secs_f64();
        watcher.abort();
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(out.status.success(), "{group} drain failed:\n{stderr}");
        let rss_kb: u64 = bench_support::max_rss_kb(&stderr)?;
        let agent = if *group == "steward" {
            "steward/"
        } else {
            "kubectl/"
        };
        // Let the audit backend flush before counting.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let requests = bench_support::count_requests(&dir.join("audit.log"), since, agent);
        let min = min_ready.load(Ordering::Relaxed);
        results.push((group.to_string(), secs, requests, rss_kb, min));
    }
    println!(
        "\ndrain of {NODES} nodes x 30 pods (5 Deployments x {REPLICAS} with PDB maxUnavailable 1, StatefulSet 20, DaemonSet), grace 5 s"
    );
    println!(
        "{:<8} {:>10} {:>14} {:>12} {:>28}",
        "tool", "wall (s)", "API requests", "peak RSS", "min Ready of a Deployment"
    );
    for (g, secs, req, rss, min) in &results {
        println!(
            "{g:<8} {secs:>10.1} {req:>14} {:>9} MB {:>28}",
            rss / 1024,
            format!("{min} (PDB allows {})", REPLICAS - 1)
        );
    }
    let wall = |tool: &str| {
        results
            .iter()
            .find(|r| r.0 == tool)
            .map_or(f64::NAN, |r| r.1)
    };
    let ratio = wall("steward") / wall("kubectl");
    println!("wall time ratio steward / kubectl = {ratio:.2}");
    let violated = results
        .iter()
        .any(|r| r.4 < usize::try_from(REPLICAS - 1).unwrap());
    println!("PDB violated: {}", if violated { "YES" } else { "no" });
    drop(prom);
    drop(cluster);
    let _ = std::fs::remove_dir_all(dir);
    anyhow::ensure!(!violated, "a PodDisruptionBudget was violated");
    Ok(())
}

async fn setup_group(client: &kube::Client, group: &str) -> anyhow::Result<Vec<String>> {
    let ns = format!("bench-{group}");
    let nsobj: Namespace = from_json(json!({ "metadata": { "name": ns } }));
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &nsobj)
        .await?;
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &ns);
    wait::until(
        Duration::from_secs(30),
        "default ServiceAccount",
        || async { Ok(sas.get_opt("default").await?.is_some()) },
    )
    .await?;
    let drain: Vec<NodeSpec> = (0..NODES)
        .map(|i| {
            NodeSpec::new(format!("{group}-d{i}"))
                .label("bench-group", group)
                .label("karpenter.sh/nodepool", &ns)
                .capacity("16", "64Gi")
        })
        .collect();
    steward_sim::add_nodes(client, &drain, Duration::from_secs(60)).await?;
    let template = |app: &str| -> Value {
        json!({ "metadata": { "labels": { "app": app } }, "spec": { "terminationGracePeriodSeconds": 5, "nodeSelector": { "bench-group": group },
            "containers": [{ "name": "c", "image": "registry.invalid/c:1", "resources": { "requests": { "cpu": "100m", "memory": "128Mi" } } }] } })
    };
    for d in 0..DEPLOYMENTS {
        let name = format!("web{d}");
        let dep: Deployment = from_json(
            json!({ "metadata": { "name": name }, "spec": { "replicas": REPLICAS, "selector": { "matchLabels": { "app": name } }, "template": template(&name) } }),
        );
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &dep)
            .await?;
        let pdb: PodDisruptionBudget = from_json(
            json!({ "metadata": { "name": name }, "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "app": name } } } }),
        );
        Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &pdb)
            .await?;
    }
    let sts: StatefulSet = from_json(
        json!({ "metadata": { "name": "db" }, "spec": { "replicas": 20, "podManagementPolicy": "Parallel", "serviceName": "db",
        "selector": { "matchLabels": { "app": "db" } }, "template": template("db") } }),
    );
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &sts)
        .await?;
    let ds: DaemonSet = from_json(
        json!({ "metadata": { "name": "agent" }, "spec": { "selector": { "matchLabels": { "app": "agent" } }, "template": template("agent") } }),
    );
    Api::<DaemonSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &ds)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let want = DEPLOYMENTS * usize::try_from(REPLICAS)? + 20 + NODES;
    wait::list(
        &pods,
        &ListParams::default(),
        Duration::from_secs(300),
        "group pods Ready",
        |ps| ps.iter().filter(|p| pod_ready(p)).count() == want,
    )
    .await?;
    // Spare nodes only now, so every workload pod starts on a node to drain.
    let spare: Vec<NodeSpec> = (0..NODES)
        .map(|i| {
            NodeSpec::new(format!("{group}-s{i}"))
                .label("bench-group", group)
                .capacity("16", "64Gi")
        })
        .collect();
    steward_sim::add_nodes(client, &spare, Duration::from_secs(60)).await?;
    eprintln!("group {group}: {want} pods Ready on {NODES} nodes");
    Ok(drain.into_iter().map(|n| n.name).collect())
}

/// Minimum, over the drain, of Ready pods of any one Deployment.
async fn watch_min_ready(client: kube::Client, ns: String, min: Arc<AtomicUsize>) {
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let _ = wait::list(
        &pods,
        &ListParams::default(),
        Duration::from_secs(3600),
        "end of drain",
        |ps| {
            if ps.len() >= 300 {
                let mut per: BTreeMap<String, usize> =
                    (0..DEPLOYMENTS).map(|d| (format!("web{d}"), 0)).collect();
                for p in ps.iter().filter(|p| pod_ready(p)) {
                    if let Some(c) = p
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("app"))
                        .and_then(|a| per.get_mut(a))
                    {
                        *c += 1;
                    }
                }
                min.fetch_min(per.values().copied().min().unwrap_or(0), Ordering::Relaxed);
            }
            false
        },
    )
    .await;
}
