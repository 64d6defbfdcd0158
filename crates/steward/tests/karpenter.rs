//! `steward drain` with the real Karpenter (kwok cloud provider) provisioning the
//! NodePool and exporting its metrics. Its own test binary, so its own cluster:
//! Karpenter watches every node and pod, and the other drain tests' churn kept its
//! cluster-state sync from settling.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::time::Duration;

use common::{state, steward, unschedulable};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use testkit::karpenter::quiet;
use testkit::prometheus::Prometheus;
use testkit::wait::{self, pod_ready};

const T: Duration = Duration::from_secs(90);

/// The real thing: Karpenter (kwok provider) provisions the NodePool's nodes and
/// exports `karpenter_*` metrics; Prometheus scrapes Karpenter; steward reads them
/// and drains the oldest Karpenter node while Karpenter keeps running.
#[tokio::test]
async fn drain_with_real_karpenter() {
    use kube::api::DynamicObject;
    let env = testkit::env("karp").await.unwrap();
    let karpenter = testkit::karpenter::Karpenter::start(&env.client)
        .await
        .unwrap();
    let pool = env.ns.clone();
    // Karpenter must not consolidate on its own while the test drains; the
    // budget for Drifted (steward's reason) is set below, step by step.
    testkit::karpenter::node_pool(&env.client, &pool, json!([quiet()]))
        .await
        .unwrap();

    testkit::karpenter::workload(&env.client, &env.ns, "web", &pool, (6, "1"), json!({}))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let lp = ListParams::default().labels("app=web");
    let nodes: Api<Node> = Api::all(env.client.clone());
    let mut pool_nodes = nodes
        .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}")))
        .await
        .unwrap()
        .items;
    assert!(
        pool_nodes.len() >= 2,
        "Karpenter provisioned {} nodes",
        pool_nodes.len()
    );
    pool_nodes.sort_by_key(|n| (n.creation_timestamp(), n.name_any()));
    let oldest = pool_nodes[0].name_any();

    let prom = Prometheus::start("karpenter", &[karpenter.metrics_addr().to_string()])
        .await
        .unwrap();
    prom.wait_for_series(
        &format!("karpenter_nodepools_usage{{nodepool=\"{pool}\",resource_type=\"cpu\"}} > 0"),
        T,
    )
    .await
    .unwrap();
    prom.wait_for_series(
        &format!(
            "karpenter_nodes_total_pod_requests{{nodepool=\"{pool}\",resource_type=\"cpu\"}} > 0"
        ),
        T,
    )
    .await
    .unwrap();
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let base = ["--nodepool-name", &pool, "--prometheus-address", prom.url()];

    let (ok, stdout, stderr) = steward(
        &[&["karpenter", "allocate-rate", "-o", "json"], &base[..]].concat(),
        &kubeconfig,
    )
    .await;
    assert!(ok, "{stderr}");
    let alloc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(alloc["generation"], "v1", "{alloc}");
    // The capacity is the nodes' allocatable (kubelet reservations out), over the
    // same nodes the requests are on: 6 one-cpu pods on Karpenter's 4-cpu nodes
    // read between 0 and 100 %. (Karpenter's NodePool usage metric, the old
    // denominator, is printed beside it for the record.)
    let rate = alloc["cpu"]["allocate_rate_percent"].as_f64().unwrap();
    assert!(rate > 0.0 && rate <= 100.0, "{alloc}");
    assert_eq!(alloc["capacity_metric"], "allocatable", "{alloc}");
    let (ok, stdout, stderr) = steward(
        &[
            &["karpenter", "allocate-rate", "-o", "json"],
            &base[..],
            &["--capacity-metric", "usage"],
        ]
        .concat(),
        &kubeconfig,
    )
    .await;
    assert!(ok, "{stderr}");
    let by_usage: Value = serde_json::from_str(&stdout).unwrap();
    eprintln!(
        "cpu allocate rate with the real Karpenter: {rate:.1} % by karpenter_nodes_allocatable ({} cores), {:.1} % by karpenter_nodepools_usage ({} cores)",
        alloc["cpu"]["usage_cores"],
        by_usage["cpu"]["allocate_rate_percent"],
        by_usage["cpu"]["usage_cores"]
    );

    // The NodePool's budget for Drifted: a window open now (every hour, for an hour)
    // allowing 0 stops the run before it changes anything, formula or --nodes.
    let nodepools = testkit::karpenter::api(&env.client, "NodePool");
    let set_budgets = |budgets: Value| {
        let nodepools = nodepools.clone();
        let pool = pool.clone();
        async move {
            let patch = json!({ "spec": { "disruption": { "budgets": budgets } } });
            nodepools
                .patch(&pool, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    let open_now =
        json!({ "nodes": "0", "schedule": "@hourly", "duration": "1h", "reasons": ["Drifted"] });
    set_budgets(json!([quiet(), open_now])).await;
    let dry = [
        &["drain", "--dry-run", "--min-batch", "1", "-o", "json"],
        &base[..],
    ]
    .concat();
    let (ok, stdout, stderr) = steward(&dry, &kubeconfig).await;
    assert!(ok, "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    // (The pool is fully allocated, so the formula says 0 as well: `--nodes` below
    // is what the budget alone refuses.)
    assert_eq!(plan["plan"]["count"], 0, "{plan}");
    assert_eq!(plan["plan"]["budget"]["from"], 1, "{plan}");
    assert_eq!(plan["plan"]["budget"]["allowed"], 0, "{plan}");
    assert_eq!(
        plan["plan"]["budget"]["pool_nodes"],
        pool_nodes.len(),
        "{plan}"
    );
    let by_hand = [&["drain", "--nodes", &oldest], &base[..]].concat();
    let (ok, _, stderr) = steward(&by_hand, &kubeconfig).await;
    assert!(!ok, "a drain past the budget ran");
    assert!(stderr.contains("disruption budget allows 0"), "{stderr}");
    assert!(!unschedulable(&nodes.get(&oldest).await.unwrap()));
    // A window closed now (twelve hours away) binds nothing; the open budget of 1 does.
    let hour = (jiff::Timestamp::now().as_second() / 3600 + 12) % 24;
    let closed = json!({ "nodes": "0", "schedule": format!("0 {hour} * * *"), "duration": "1h", "reasons": ["Drifted"] });
    let one = json!({ "nodes": "1", "reasons": ["Drifted"] });
    set_budgets(json!([quiet(), closed, one])).await;

    let (ok, stdout, stderr) = steward(
        &[
            &[
                "drain",
                "--nodes",
                &oldest,
                "--keep-nodes",
                "--timeout",
                "90s",
                "-o",
                "json",
            ],
            &base[..],
        ]
        .concat(),
        &kubeconfig,
    )
    .await;
    assert!(ok, "{stderr}\n{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["allocation"]["generation"], "v1");
    assert_eq!(report["plan"]["budget"]["from"], 2, "{report}");
    assert_eq!(report["plan"]["budget"]["allowed"], 1, "{report}");
    let node = nodes.get(&oldest).await.unwrap();
    assert_eq!(state(&node).as_deref(), Some("drained"));
    assert!(unschedulable(&node));
    assert_eq!(report["handoff"][0]["result"], "kept", "{report}");
    assert_eq!(report["handoff"][0]["why"], "keep-nodes", "{report}");
    // The moved pods run again, on the other Karpenter node or one Karpenter added.
    let ps = wait::list(
        &pods,
        &lp,
        Duration::from_secs(120),
        "6 web pods Ready again",
        |ps| ps.iter().filter(|p| pod_ready(p)).count() == 6,
    )
    .await
    .unwrap();
    assert!(
        ps.iter().filter(|p| pod_ready(p)).all(|p| p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            != Some(oldest.as_str()))
    );

    // The next run hands the node left drained to Karpenter: its NodeClaim is
    // deleted, Karpenter's termination removes the instance and the Node.
    let claims = testkit::karpenter::api(&env.client, "NodeClaim");
    let claim_of = |list: &[DynamicObject], node: &str| {
        list.iter()
            .find(|c| c.data["status"]["nodeName"] == node)
            .map(|c| c.name_any())
    };
    let before = claims.list(&ListParams::default()).await.unwrap().items;
    let old_claim = claim_of(&before, &oldest).expect("the oldest node's NodeClaim");
    let (ok, stdout, stderr) = steward(&dry, &kubeconfig).await;
    assert!(ok, "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["plan"]["left_drained"], json!([oldest]), "{plan}");
    let hand_off = [
        &[
            "drain",
            "--max-batch",
            "0",
            "--handoff-timeout",
            "120s",
            "-o",
            "json",
        ],
        &base[..],
    ]
    .concat();
    let (ok, stdout, stderr) = steward(&hand_off, &kubeconfig).await;
    assert!(ok, "{stderr}\n{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["handoff"][0]["node"], oldest, "{report}");
    assert_eq!(report["handoff"][0]["result"], "replaced", "{report}");
    assert_eq!(report["handoff"][0]["nodeclaim"], old_claim, "{report}");
    assert!(nodes.get_opt(&oldest).await.unwrap().is_none());
    let after = claims.list(&ListParams::default()).await.unwrap().items;
    assert!(after.iter().all(|c| c.name_any() != old_claim));
    let new: Vec<&str> = report["replacements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["nodeclaim"].as_str().unwrap())
        .collect();
    assert!(!new.contains(&old_claim.as_str()), "{report}");
}
