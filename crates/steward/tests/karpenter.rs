//! `steward drain` with the real Karpenter (kwok cloud provider) provisioning the
//! NodePool and exporting its metrics. Its own test binary, so its own cluster:
//! Karpenter watches every node and pod, and the other drain tests' churn kept its
//! cluster-state sync from settling.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::time::Duration;

use common::{state, steward, unschedulable};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use testkit::prometheus::Prometheus;
use testkit::wait::{self, from_json, pod_ready};

const T: Duration = Duration::from_secs(90);

/// The real thing: Karpenter (kwok provider) provisions the NodePool's nodes and
/// exports `karpenter_*` metrics; Prometheus scrapes Karpenter; steward reads them
/// and drains the oldest Karpenter node while Karpenter keeps running.
#[tokio::test]
async fn drain_with_real_karpenter() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let env = testkit::env("karp").await.unwrap();
    let karpenter = testkit::karpenter::Karpenter::start(&env.client)
        .await
        .unwrap();
    let pool = env.ns.clone();
    let dynamic = |group: &str, version: &str, kind: &str, plural: &str| {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        Api::<DynamicObject>::all_with(env.client.clone(), &ar)
    };
    let class: DynamicObject = from_json(
        json!({ "apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass", "metadata": { "name": pool } }),
    );
    dynamic(
        "karpenter.kwok.sh",
        "v1alpha1",
        "KWOKNodeClass",
        "kwoknodeclasses",
    )
    .create(&PostParams::default(), &class)
    .await
    .unwrap();
    let nodepool: DynamicObject = from_json(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": { "name": pool },
        "spec": {
            "template": { "spec": {
                "requirements": [
                    { "key": "kubernetes.io/os", "operator": "In", "values": ["linux"] },
                    { "key": "karpenter.kwok.sh/instance-cpu", "operator": "In", "values": ["4"] }
                ],
                "nodeClassRef": { "group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": pool }
            } },
            "limits": { "cpu": 40 },
            // Karpenter must not consolidate on its own while the test drains.
            "disruption": { "consolidationPolicy": "WhenEmpty", "consolidateAfter": "1h", "budgets": [{ "nodes": "0" }] }
        }
    }));
    dynamic("karpenter.sh", "v1", "NodePool", "nodepools")
        .create(&PostParams::default(), &nodepool)
        .await
        .unwrap();

    let deploys: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let web: Deployment = from_json(
        json!({ "metadata": { "name": "web" }, "spec": { "replicas": 6, "selector": { "matchLabels": { "app": "web" } },
        "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "terminationGracePeriodSeconds": 1, "nodeSelector": { "karpenter.sh/nodepool": pool },
            "containers": [{ "name": "c", "image": "registry.invalid/c:1", "resources": { "requests": { "cpu": "1", "memory": "1Gi" } } }] } } } }),
    );
    deploys.create(&PostParams::default(), &web).await.unwrap();
    let pdb: PodDisruptionBudget = from_json(
        json!({ "metadata": { "name": "web" }, "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "app": "web" } } } }),
    );
    Api::<PodDisruptionBudget>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &pdb)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let lp = ListParams::default().labels("app=web");
    wait::list(
        &pods,
        &lp,
        Duration::from_secs(120),
        "6 web pods Ready on Karpenter nodes",
        |ps| ps.iter().filter(|p| pod_ready(p)).count() == 6,
    )
    .await
    .unwrap();
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
    assert!(
        alloc["cpu"]["allocate_rate_percent"].as_f64().unwrap() > 0.0,
        "{alloc}"
    );

    let (ok, stdout, stderr) = steward(
        &[
            &[
                "drain",
                "--nodes",
                &oldest,
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
    let node = nodes.get(&oldest).await.unwrap();
    assert_eq!(state(&node).as_deref(), Some("drained"));
    assert!(unschedulable(&node));
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
}
