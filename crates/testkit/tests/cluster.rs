//! The simulated cluster behaves like a real one where steward depends on it.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, EvictParams, ListParams, PostParams};
use serde_json::json;
use testkit::wait::{self, from_json, pod_ready};

const T: Duration = Duration::from_secs(60);

fn deployment(env: &testkit::TestEnv, name: &str, replicas: i32) -> Deployment {
    from_json(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "nodeSelector": env.node_selector(),
                    "tolerations": [env.toleration()],
                    "containers": [{ "name": "app", "image": "registry.invalid/app:1",
                                     "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }]
                }
            }
        }
    }))
}

#[tokio::test]
async fn deployment_of_three_becomes_ready_on_two_nodes() {
    let env = testkit::env("deploy").await.unwrap();
    let nodes = env.add_nodes("n", 2, |n| n).await.unwrap();
    let deploys: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    deploys
        .create(&PostParams::default(), &deployment(&env, "web", 3))
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let ready = wait::list(
        &pods,
        &ListParams::default().labels("app=web"),
        T,
        "3 Ready pods",
        |ps| ps.iter().filter(|p| pod_ready(p)).count() == 3,
    )
    .await
    .unwrap();
    for p in &ready {
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap();
        assert!(
            nodes.contains(&node),
            "pod {} landed on {node}, not a node of this test",
            p.name_any()
        );
    }
    let d = wait::object(
        &deploys,
        "web",
        T,
        "available replicas",
        |d: &Deployment| d.status.as_ref().and_then(|s| s.available_replicas) == Some(3),
    )
    .await
    .unwrap();
    assert_eq!(d.status.unwrap().ready_replicas, Some(3));
}

#[tokio::test]
async fn eviction_blocked_by_pdb_is_refused_with_429() {
    let env = testkit::env("pdb").await.unwrap();
    env.add_nodes("n", 1, |n| n).await.unwrap();
    let deploys: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    deploys
        .create(&PostParams::default(), &deployment(&env, "db", 1))
        .await
        .unwrap();
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), &env.ns);
    let pdb = from_json(json!({
        "metadata": { "name": "db" },
        "spec": { "minAvailable": 1, "selector": { "matchLabels": { "app": "db" } } }
    }));
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();

    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let ready = wait::list(
        &pods,
        &ListParams::default().labels("app=db"),
        T,
        "1 Ready pod",
        |ps| ps.iter().filter(|p| pod_ready(p)).count() == 1,
    )
    .await
    .unwrap();
    // The disruption controller must have observed the pod before the PDB means anything.
    wait::object(
        &pdbs,
        "db",
        T,
        "PDB status observed",
        |p: &PodDisruptionBudget| {
            p.status
                .as_ref()
                .is_some_and(|s| s.current_healthy == 1 && s.observed_generation.is_some())
        },
    )
    .await
    .unwrap();
    let pdb = pdbs.get("db").await.unwrap();
    assert_eq!(pdb.status.unwrap().disruptions_allowed, 0);
    let name = ready[0].name_any();
    let err = pods
        .evict(&name, &EvictParams::default())
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 429, "unexpected status: {s:?}"),
        other => panic!("expected a 429 API error, got {other}"),
    }
    assert!(
        pods.get(&name)
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none(),
        "pod was deleted despite the PDB"
    );

    // Without the PDB the same eviction goes through.
    pdbs.delete("db", &DeleteParams::default()).await.unwrap();
    wait::until(T, "eviction to be accepted", || async {
        Ok(pods.evict(&name, &EvictParams::default()).await.is_ok())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn deleted_pod_stays_terminating_for_its_grace_period() {
    let env = testkit::env("grace").await.unwrap();
    env.add_nodes("n", 1, |n| n).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let pod: Pod = from_json(json!({
        "metadata": { "name": "slow" },
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "nodeSelector": env.node_selector(),
            "tolerations": [env.toleration()],
            "containers": [{ "name": "app", "image": "registry.invalid/app:1" }]
        }
    }));
    pods.create(&PostParams::default(), &pod).await.unwrap();
    wait::object(&pods, "slow", T, "pod Ready", pod_ready)
        .await
        .unwrap();

    let asked = Instant::now();
    pods.delete("slow", &DeleteParams::default()).await.unwrap();
    let terminating = pods.get("slow").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(5));
    // It goes by itself once the grace period is over (kwok acts at its
    // deletionTimestamp); nobody else touches it. How long after is not bounded here:
    // on a loaded machine kwok and the API server react seconds late, so an upper
    // bound (it was 8 s) measured the machine's load, not kwok.
    wait::gone(&pods, "slow", Duration::from_secs(30))
        .await
        .unwrap();
    let took = asked.elapsed();
    // deletionTimestamp has one-second resolution: the pod goes 4 s after the
    // request at the earliest, and load only makes that later.
    assert!(
        took >= Duration::from_secs(4),
        "pod vanished after {took:?}, before its 5 s grace period"
    );
}

#[tokio::test]
async fn daemonset_runs_one_pod_per_node_including_new_nodes() {
    let env = testkit::env("ds").await.unwrap();
    env.add_nodes("n", 3, |n| n).await.unwrap();
    let dss: Api<DaemonSet> = Api::namespaced(env.client.clone(), &env.ns);
    let ds = from_json(json!({
        "metadata": { "name": "agent" },
        "spec": {
            "selector": { "matchLabels": { "app": "agent" } },
            "template": {
                "metadata": { "labels": { "app": "agent" } },
                "spec": {
                    "nodeSelector": env.node_selector(),
                    "tolerations": [env.toleration()],
                    "containers": [{ "name": "agent", "image": "registry.invalid/agent:1" }]
                }
            }
        }
    }));
    dss.create(&PostParams::default(), &ds).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let lp = ListParams::default().labels("app=agent");
    let per_node = |ps: &[Pod], nodes: usize| {
        let mut on: Vec<String> = ps
            .iter()
            .filter(|p| pod_ready(p))
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        on.sort();
        let total = on.len();
        on.dedup();
        total == nodes && on.len() == nodes
    };
    wait::list(&pods, &lp, T, "one Ready agent per node (3)", |ps| {
        per_node(ps, 3)
    })
    .await
    .unwrap();

    env.add_nodes("late", 1, |n| n).await.unwrap();
    let ps = wait::list(&pods, &lp, T, "one Ready agent per node (4)", |ps| {
        per_node(ps, 4)
    })
    .await
    .unwrap();
    assert!(ps.iter().any(|p| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| n.contains("-late-"))
    }));
}
