//! `steward drain` against `kubectl drain`, the same work on real nodes.
//!
//! Two real kubelet nodes (containerd, real containers). A Deployment of `PODS` test
//! HTTP servers (ready when `/healthz` answers, 1 s of serving after SIGTERM) with a
//! PodDisruptionBudget `maxUnavailable: 1` starts on one node; each run drains the
//! node that holds them, so they move to the other: one node, one at a time, for
//! both tools, which is what `kubectl drain` users run. The tools alternate
//! (steward, kubectl, kubectl, steward, ...) for `RUNS` runs each; reported are
//! each run, the medians, peak RSS (GNU time), API requests (the API server's audit
//! log, by user agent) and the physical lower bound: the budget lets one pod go at
//! a time, so the drain cannot end before `PODS - 1` replacements have each started
//! and become Ready one after another (the last pod may go as soon as the one
//! before it is replaced) (measured per run by a pod watch, from the moment
//! a replacement is first seen to the moment it is first seen Ready), plus the last
//! pod's second of serving.
//!
//! Needs root (real nodes). cargo build --release -p steward &&
//! sudo -E cargo run --release -p node-drain --example drain_bench_real

#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "bench_support/mod.rs"]
mod bench_support;

use bench_support::median;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use testkit::karpenter::{Generation, karpenter_exporter};
use testkit::prometheus::Prometheus;
use testkit::realnode::http_pod_spec;
use testkit::wait::{self, from_json, pod_ready};

const PODS: usize = 8;
const RUNS: usize = 3;
const T: Duration = Duration::from_secs(300);

struct Run {
    tool: &'static str,
    secs: f64,
    rss_kb: u64,
    requests: usize,
    /// Median seconds from a replacement's creation to its Ready condition.
    ready_secs: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let steward = testkit::release_steward()?;
    let kubectl = testkit::bin_dir()?.join("kubectl");
    testkit::enable_audit();
    let cluster = testkit::cluster_with_real_nodes(2);
    let env = testkit::env_in(cluster, "bench-real").await?;
    let client = env.client.clone();
    let (a, b) = ("real-node-1", "real-node-2");
    let nodes: Api<Node> = Api::all(client.clone());
    let label = |v: &str| json!({"metadata": {"labels": {"karpenter.sh/nodepool": v}}});
    for n in [a, b] {
        nodes
            .patch(n, &PatchParams::default(), &Patch::Merge(&label(&env.ns)))
            .await?;
    }
    cordon(&nodes, b, true).await?;
    let mut spec = http_pod_spec(1000, 20);
    spec["containers"][0]["resources"] = json!({"requests": {"cpu": "10m", "memory": "16Mi"}});
    let deploy: Deployment = from_json(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": PODS, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}
    }));
    Api::<Deployment>::namespaced(client.clone(), &env.ns)
        .create(&PostParams::default(), &deploy)
        .await?;
    let pdb: PodDisruptionBudget = from_json(
        json!({"metadata": {"name": "web"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}),
    );
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &env.ns)
        .create(&PostParams::default(), &pdb)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &env.ns);
    ready_on(&pods, a).await?;
    cordon(&nodes, b, false).await?;
    let exporter = karpenter_exporter(client.clone(), Generation::V1).await;
    let prom = Prometheus::start("karpenter", &[exporter]).await?;
    prom.wait_for_series(
        &format!("karpenter_nodepools_usage{{nodepool=\"{}\"}}", env.ns),
        T,
    )
    .await?;
    let kc = cluster.kubeconfig().display().to_string();
    let audit = cluster.dir().join("audit.log");
    anyhow::ensure!(audit.is_file(), "{} missing", audit.display());

    let mut runs = Vec::new();
    let mut from = a;
    // steward, kubectl, kubectl, steward, steward, kubectl: each tool first as often.
    let order: Vec<&'static str> = (0..RUNS)
        .flat_map(|i| {
            if i % 2 == 0 {
                ["steward", "kubectl"]
            } else {
                ["kubectl", "steward"]
            }
        })
        .collect();
    for tool in order {
        let to = if from == a { b } else { a };
        let before: Vec<String> = pods
            .list(&ListParams::default())
            .await?
            .iter()
            .map(|p| p.name_any())
            .collect();
        let mut cmd = tokio::process::Command::new("/usr/bin/time");
        cmd.arg("-f")
            .arg(bench_support::TIME_FORMAT)
            .env("KUBECONFIG", &kc);
        if tool == "steward" {
            cmd.arg(&steward).args([
                "drain",
                "--nodepool-name",
                &env.ns,
                "--prometheus-address",
                prom.url(),
                "--nodes",
                from,
                "--keep-nodes",
                "--timeout",
                "5m",
            ]);
        } else {
            cmd.arg(&kubectl).args([
                "drain",
                from,
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout=5m",
            ]);
        }
        let lines = bench_support::audit_lines(&audit);
        let (seen, watch) = watch_pods(pods.clone());
        let t = Instant::now();
        let out = cmd.output().await?;
        let secs = t.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(out.status.success(), "{tool} drain failed:\n{stderr}");
        let rss_kb = bench_support::max_rss_kb(&stderr)?;
        ready_on(&pods, to).await?;
        anyhow::ensure!(
            !watch.is_finished(),
            "the pod watch ended: {:?}",
            watch.await
        );
        watch.abort();
        let ready_secs = median(
            seen.lock()
                .unwrap()
                .iter()
                .filter(|(name, _)| !before.contains(name))
                .filter_map(|(_, (first, ready))| {
                    Some(ready.as_ref()?.duration_since(*first).as_secs_f64())
                })
                .collect(),
        );
        tokio::time::sleep(Duration::from_secs(2)).await; // the audit backend flushes
        let agent = if tool == "steward" {
            "steward/"
        } else {
            "kubectl/"
        };
        let requests = bench_support::count_requests(&audit, lines, agent);
        eprintln!("{tool}: {from} -> {to} in {secs:.1} s");
        runs.push(Run {
            tool,
            secs,
            rss_kb,
            requests,
            ready_secs,
        });
        // Back to how both tools found it: schedulable, no drain mark.
        cordon(&nodes, from, false).await?;
        let unmark = json!({"metadata": {"annotations": {"steward.io/drain-state": null}}});
        nodes
            .patch(from, &PatchParams::default(), &Patch::Merge(&unmark))
            .await?;
        from = to;
    }
    report(&runs);
    Ok(())
}

fn report(runs: &[Run]) {
    println!(
        "\ndrain of one real node with {PODS} pods of a Deployment (PDB maxUnavailable 1, 1 s shutdown delay), one node at a time"
    );
    println!(
        "{:<8} {:>9} {:>13} {:>14} {:>18}",
        "tool", "wall (s)", "peak RSS", "API requests", "replacement Ready"
    );
    for r in runs {
        println!(
            "{:<8} {:>9.1} {:>9.1} MiB {:>14} {:>16.2} s",
            r.tool,
            r.secs,
            r.rss_kb as f64 / 1024.0,
            r.requests,
            r.ready_secs
        );
    }
    let med = |tool: &str, f: fn(&Run) -> f64| {
        median(runs.iter().filter(|r| r.tool == tool).map(f).collect())
    };
    let ready = median(runs.iter().map(|r| r.ready_secs).collect());
    let bound = (PODS - 1) as f64 * ready + 1.0;
    println!(
        "lower bound: {} x {ready:.2} s (a replacement from first seen to Ready, one at a time) + 1 s (the last pod serving after SIGTERM) = {bound:.1} s",
        PODS - 1
    );
    for tool in ["steward", "kubectl"] {
        let wall = med(tool, |r| r.secs);
        println!(
            "{tool:<8} median {wall:.1} s ({:.2} x the bound), peak RSS {:.1} MiB, {:.0} API requests",
            wall / bound,
            med(tool, |r| r.rss_kb as f64 / 1024.0),
            med(tool, |r| r.requests as f64)
        );
    }
    println!(
        "ratio steward / kubectl (medians) = {:.2}",
        med("steward", |r| r.secs) / med("kubectl", |r| r.secs)
    );
}

async fn cordon(nodes: &Api<Node>, node: &str, on: bool) -> kube::Result<()> {
    let patch = json!({"spec": {"unschedulable": on}});
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// Waits until all `PODS` web pods are Ready on `node`, none terminating; returns them.
async fn ready_on(pods: &Api<Pod>, node: &str) -> anyhow::Result<Vec<Pod>> {
    let ps = wait::list(
        pods,
        &ListParams::default().labels("app=web"),
        T,
        &format!("{PODS} Ready on {node}"),
        |ps| {
            ps.len() == PODS
                && ps.iter().all(|p| {
                    pod_ready(p)
                        && p.metadata.deletion_timestamp.is_none()
                        && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
                })
        },
    )
    .await?;
    Ok(ps)
}

type Seen = std::sync::Arc<
    std::sync::Mutex<std::collections::BTreeMap<String, (Instant, Option<Instant>)>>,
>;

/// When each pod was first seen and first seen Ready, until aborted.
fn watch_pods(pods: Api<Pod>) -> (Seen, tokio::task::JoinHandle<anyhow::Result<()>>) {
    use futures::TryStreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let seen: Seen = Seen::default();
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(watcher(pods, watcher::Config::default()).applied_objects());
        while let Some(p) = s.try_next().await? {
            let now = Instant::now();
            let mut m = out.lock().unwrap();
            let e = m.entry(p.name_any()).or_insert((now, None));
            if e.1.is_none() && pod_ready(&p) {
                e.1 = Some(now);
            }
        }
        anyhow::bail!("the pod watch ended")
    });
    (seen, task)
}
