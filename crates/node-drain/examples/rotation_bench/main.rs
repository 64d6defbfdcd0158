//! A whole NodePool rotated five ways on one cluster, with the real Karpenter
//! (kwok provider) launching the replacements and removing the old nodes.
//!
//! Every run gets an identical, fresh NodePool of 4 Karpenter nodes (4-cpu kwok
//! instances) holding a Deployment of 8 pods (1.5 cpu each, so two fit a node and
//! every moved pair needs a new node) under a PDB of `maxUnavailable: 1`, whose
//! pods become Ready `READY_AFTER` after they start (the simulator's
//! `steward.io/sim-ready-after`, a container's start-up time) and take 1 s to stop.
//! The NodePool's budget for Drifted is `nodes: "50%"` (2). A run ends when its
//! four old nodes are gone and 8 pods are Ready again. The tools:
//!
//! - `steward`: `steward drain --nodes <the four>` (waves of the budget's 2);
//! - `steward-p1`: the same with `--parallel-nodes 1`;
//! - `kubectl`: per node, one after another, `kubectl drain` then `kubectl delete
//!   nodeclaim` (Karpenter removes the instance and the Node);
//! - `kubectl-par`: the same, one shell per node, all four at once;
//! - `karpenter`: `kubectl delete nodeclaim` of the four at once, Karpenter's
//!   termination controller draining them (its own rotation).
//!
//! The order alternates (forward, backward, forward) over `RUNS` rounds. Reported
//! per run: wall time, the fewest Ready pods seen (a PDB violation is fewer than
//! 7), the most old nodes disrupted at once, peak RSS of the tool's process (GNU
//! time; none for Karpenter, which runs anyway); then medians and the ratio to the
//! lower bound the PDB allows: 8 evictions one after another, each waiting for
//! the previous pod's replacement to be Ready, and the run ends when the 8th
//! replacement is Ready, so 8 x the measured median replacement time (first seen
//! to Ready, which includes a node launch for half of them); the last pod's 1 s
//! grace period runs while its replacement starts, so it adds nothing.
//!
//! cargo build --release -p steward && cargo run --release -p node-drain --example rotation_bench

#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../bench_support/mod.rs"]
mod bench_support;
mod pool;
mod watch;

use bench_support::median;
use pool::{setup_pool, teardown};
use watch::Watch;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use testkit::prometheus::Prometheus;
use testkit::wait::{self, pod_ready};

const PODS: usize = 8;
const RUNS: usize = 3;
const READY_AFTER: &str = "3s";
const TOOLS: [&str; 5] = [
    "steward",
    "steward-p1",
    "kubectl",
    "kubectl-par",
    "karpenter",
];
const T: Duration = Duration::from_secs(600);

struct Run {
    tool: &'static str,
    secs: f64,
    fewest_ready: usize,
    most_disrupted: usize,
    rss_kb: Option<u64>,
    ready_secs: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let steward = testkit::release_steward()?;
    let kubectl = testkit::bin_dir()?.join("kubectl");
    let env = testkit::env("rotbench").await?;
    let client = env.client.clone();
    let karpenter = testkit::karpenter::Karpenter::start(&client).await?;
    let prom = Prometheus::start("karpenter", &[karpenter.metrics_addr().to_string()]).await?;
    let kc = testkit::cluster().kubeconfig().display().to_string();
    let mut order = Vec::new();
    for round in 0..RUNS {
        let mut tools = TOOLS.to_vec();
        if round % 2 == 1 {
            tools.reverse();
        }
        order.extend(tools);
    }
    let mut runs = Vec::new();
    for (i, tool) in order.into_iter().enumerate() {
        let pool = format!("{}-{i}", env.ns);
        let (old, claims) = setup_pool(&client, &env.ns, &pool).await?;
        prom.wait_for_series(
            &format!("count(karpenter_nodes_allocatable{{nodepool=\"{pool}\",resource_type=\"cpu\"}}) == 4"),
            T,
        )
        .await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &env.ns);
        let watch = Watch::start(&client, &env.ns, &pool, &old);
        let nodes = old.join(",");
        let script = match tool {
            "steward" | "steward-p1" => format!(
                "{} drain --nodepool-name {pool} --prometheus-address {} --nodes {nodes} --timeout 5m --handoff-timeout 5m -o json{}",
                steward.display(),
                prom.url(),
                if tool == "steward-p1" {
                    " --parallel-nodes 1"
                } else {
                    ""
                }
            ),
            "karpenter" => format!(
                "{} delete nodeclaim {}",
                kubectl.display(),
                claims.join(" ")
            ),
            _ => {
                let one = |(node, claim): (&String, &String)| {
                    format!(
                        "{k} drain {node} --ignore-daemonsets --delete-emptydir-data --timeout=5m && {k} delete nodeclaim {claim}",
                        k = kubectl.display()
                    )
                };
                let each: Vec<String> = old.iter().zip(&claims).map(one).collect();
                if tool == "kubectl" {
                    each.join(" && ")
                } else {
                    let bg: Vec<String> = each.iter().map(|c| format!("( {c} ) &")).collect();
                    format!("{} wait", bg.join(" "))
                }
            }
        };
        let t = Instant::now();
        let out = tokio::process::Command::new("/usr/bin/time")
            .args(["-f", bench_support::TIME_FORMAT, "sh", "-c", &script])
            .env("KUBECONFIG", &kc)
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(out.status.success(), "{tool} failed:\n{stderr}");
        let node_api: Api<Node> = Api::all(client.clone());
        wait::until(T, "the old nodes gone", || {
            let (node_api, old) = (node_api.clone(), old.clone());
            async move {
                for n in &old {
                    if node_api.get_opt(n).await?.is_some() {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        })
        .await?;
        wait::list(
            &pods,
            &ListParams::default().labels(&format!("app={pool}")),
            T,
            "8 Ready",
            |ps| ps.iter().filter(|p| pod_ready(p)).count() == PODS,
        )
        .await?;
        let secs = t.elapsed().as_secs_f64();
        let (fewest_ready, most_disrupted, ready_secs) = watch.finish()?;
        eprintln!(
            "{tool}: {secs:.1} s, fewest Ready {fewest_ready}, most disrupted at once {most_disrupted}"
        );
        runs.push(Run {
            tool,
            secs,
            fewest_ready,
            most_disrupted,
            rss_kb: (tool != "karpenter")
                .then(|| bench_support::max_rss_kb(&stderr))
                .transpose()?,
            ready_secs,
        });
        teardown(&client, &env.ns, &pool).await?;
    }
    report(&runs);
    Ok(())
}

fn report(runs: &[Run]) {
    println!(
        "\nrotation of a 4-node NodePool: 8 pods (PDB maxUnavailable 1, Ready {READY_AFTER} after start, 1 s grace), Drifted budget 2 nodes"
    );
    println!(
        "{:<12} {:>9} {:>13} {:>15} {:>11}",
        "tool", "wall (s)", "fewest Ready", "max disrupted", "peak RSS"
    );
    for r in runs {
        let rss = r
            .rss_kb
            .map_or("-".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        println!(
            "{:<12} {:>9.1} {:>13} {:>15} {:>11}",
            r.tool, r.secs, r.fewest_ready, r.most_disrupted, rss
        );
    }
    let ready = median(runs.iter().map(|r| r.ready_secs).collect());
    // Eviction k waits for replacement k-1 to be Ready; the run ends when the last
    // replacement is Ready. The last pod's grace overlaps its replacement's start.
    let bound = PODS as f64 * ready;
    println!(
        "lower bound: {PODS} x {ready:.2} s (median replacement, first seen to Ready; the run ends with the last one Ready) = {bound:.1} s"
    );
    let med = |tool: &str| {
        median(
            runs.iter()
                .filter(|r| r.tool == tool)
                .map(|r| r.secs)
                .collect(),
        )
    };
    let fastest_peer = ["kubectl", "kubectl-par", "karpenter"]
        .into_iter()
        .map(med)
        .fold(f64::INFINITY, f64::min);
    for tool in TOOLS {
        let violations = runs
            .iter()
            .filter(|r| r.tool == tool && r.fewest_ready < PODS - 1)
            .count();
        let over_budget = runs
            .iter()
            .filter(|r| r.tool == tool && r.most_disrupted > 2)
            .count();
        println!(
            "{tool:<12} median {:.1} s ({:.2} x the bound, {:.2} x the fastest peer), runs with a PDB violation: {violations}, over the node budget: {over_budget}",
            med(tool),
            med(tool) / bound,
            med(tool) / fastest_peer
        );
    }
}
