//! A whole NodePool rotated by `steward drain` under the NodePool's own budget,
//! with the real Karpenter (kwok provider) provisioning the replacements and
//! removing the old nodes. Its own test binary, so its own cluster (Karpenter
//! watches every node and pod).
//!
//! Four Karpenter nodes hold a Deployment of 8 pods (1.5 cpu each: two fit a
//! 4-cpu node, so every moved pair needs a new node) under a PDB of
//! `maxUnavailable: 1`; the NodePool's budget for Drifted is `nodes: "1"`. One run
//! rotates all four, one at a time: each old node is drained, handed to Karpenter
//! (its NodeClaim deleted) and gone before the next is cordoned. Watches fail the
//! test if two of the pool's nodes are ever disrupted at once (cordoned, being
//! deleted or tainted `karpenter.sh/disrupted`) or fewer than 7 pods are Ready.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;
#[path = "watch_support/mod.rs"]
mod watch_support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::steward;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use testkit::karpenter::disrupted;
use testkit::prometheus::Prometheus;
use testkit::wait::{self, pod_ready};
use watch_support::Invariant;

const REPLICAS: usize = 8;
/// Karpenter's provisioning batch window at most (`BATCH_MAX_DURATION`, 10 s by
/// default) plus the seconds the API server's timestamps round away.
const BATCH_WINDOW: i64 = 12;

/// Seconds from a pod's creation to its PodScheduled condition, once scheduled.
fn pending_seconds(p: &Pod) -> Option<i64> {
    let created = p.metadata.creation_timestamp.as_ref()?.0.as_second();
    let scheduled = p
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")?;
    Some(scheduled.last_transition_time.as_ref()?.0.as_second() - created)
}

#[tokio::test]
async fn a_whole_nodepool_rotated_one_node_at_a_time_under_its_budget() {
    let env = testkit::env("rot").await.unwrap();
    let karpenter = testkit::karpenter::Karpenter::start(&env.client)
        .await
        .unwrap();
    let pool = env.ns.clone();
    let one = json!({ "nodes": "1", "reasons": ["Drifted"] });
    testkit::karpenter::node_pool(
        &env.client,
        &pool,
        json!([testkit::karpenter::quiet(), one]),
    )
    .await
    .unwrap();
    testkit::karpenter::workload(
        &env.client,
        &env.ns,
        "web",
        &pool,
        (REPLICAS, "1500m"),
        json!({}),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let lp = ListParams::default().labels("app=web");
    let nodes: Api<Node> = Api::all(env.client.clone());
    let by_pool = ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}"));
    let pool_nodes = || async {
        let list = nodes.list(&by_pool).await.unwrap().items;
        list.iter()
            .map(ResourceExt::name_any)
            .collect::<BTreeSet<String>>()
    };
    let old = pool_nodes().await;
    assert_eq!(old.len(), 4, "Karpenter provisioned {old:?}");

    let prom = Prometheus::start("karpenter", &[karpenter.metrics_addr().to_string()])
        .await
        .unwrap();
    for series in [
        "karpenter_nodes_allocatable",
        "karpenter_nodes_total_pod_requests",
    ] {
        prom.wait_for_series(
            &format!("count({series}{{nodepool=\"{pool}\",resource_type=\"cpu\"}}) == 4"),
            Duration::from_secs(90),
        )
        .await
        .unwrap();
    }

    // Never two of the pool's nodes disrupted at once; never fewer than 7 Ready.
    let at_once = Invariant::start(
        "pool nodes disrupted at once",
        nodes.clone(),
        watcher::Config::default().labels(&format!("karpenter.sh/nodepool={pool}")),
        |ns| {
            let d: Vec<&String> = ns
                .iter()
                .filter(|(_, n)| disrupted(n))
                .map(|(k, _)| k)
                .collect();
            (d.len() > 1).then(|| format!("{} nodes disrupted at once: {d:?}", d.len()))
        },
    )
    .await;
    let longest_pending = Arc::new(Mutex::new(0_i64));
    let longest = longest_pending.clone();
    let pdb_watch = Invariant::start(
        "web pods Ready",
        pods.clone(),
        watcher::Config::default().labels("app=web"),
        move |ps| {
            let mut l = longest.lock().unwrap();
            *l = ps.values().filter_map(pending_seconds).fold(*l, i64::max);
            let ready = ps.values().filter(|p| pod_ready(p)).count();
            (ready < REPLICAS - 1).then(|| {
                format!("the PDB (maxUnavailable 1) was violated: {ready} of {REPLICAS} Ready")
            })
        },
    )
    .await;

    // The formula sizes the batch (at least all four with --min-batch), the budget
    // paces it.
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let (ok, stdout, stderr) = steward(
        &[
            "drain",
            "--nodepool-name",
            &pool,
            "--prometheus-address",
            prom.url(),
            "--min-batch",
            "4",
            "--timeout",
            "120s",
            "--handoff-timeout",
            "120s",
            "-o",
            "json",
        ],
        &kubeconfig,
    )
    .await;
    assert!(ok, "{stderr}\n{stdout}");
    at_once.finish();
    pdb_watch.finish();
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let plan = &report["plan"];
    assert_eq!(plan["count"], 4, "{plan}");
    assert_eq!(plan["wave"], 1, "{plan}");
    assert_eq!(plan["budget"]["allowed"], 1, "{plan}");
    assert_eq!(report["allocation"]["capacity"], "allocatable", "{report}");

    // Every old node was handed off and is gone; the report names them and the
    // NodeClaims Karpenter created in their place, with their nodes.
    let handed: BTreeSet<String> = report["handoff"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|h| assert_eq!(h["result"], "replaced", "{h}"))
        .map(|h| h["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(handed, old, "{report}");
    for n in &old {
        assert!(
            nodes.get_opt(n).await.unwrap().is_none(),
            "{n} is still there"
        );
    }
    let now = pool_nodes().await;
    assert!(now.is_disjoint(&old) && now.len() >= 4, "{now:?}");
    let replacements = report["replacements"].as_array().unwrap();
    let new_nodes: BTreeSet<String> = replacements
        .iter()
        .filter_map(|r| r["node"].as_str().map(str::to_string))
        .collect();
    assert!(
        new_nodes.is_subset(&now) && new_nodes.len() >= 4,
        "{report}"
    );
    wait::list(
        &pods,
        &lp,
        Duration::from_secs(60),
        "8 web pods Ready",
        |ps| ps.iter().filter(|p| pod_ready(p)).count() == REPLICAS,
    )
    .await
    .unwrap();

    // No pod waited for a node longer than a replacement took to come up (its
    // NodeClaim's creation to its Ready condition) plus Karpenter's batch window.
    let claims = testkit::karpenter::api(&env.client, "NodeClaim")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let launch = claims
        .iter()
        .filter_map(|c| {
            let created = c.metadata.creation_timestamp.as_ref()?.0.as_second();
            let ready = c.data["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|x| x["type"] == "Ready" && x["status"] == "True")?;
            let at: jiff::Timestamp = ready["lastTransitionTime"].as_str()?.parse().ok()?;
            Some(at.as_second() - created)
        })
        .max()
        .unwrap();
    let pending = *longest_pending.lock().unwrap();
    eprintln!(
        "rotation of 4 nodes: longest pod pending {pending} s, longest replacement launch {launch} s"
    );
    assert!(
        pending <= launch + BATCH_WINDOW,
        "a pod waited {pending} s for a node; replacements took at most {launch} s"
    );
}
