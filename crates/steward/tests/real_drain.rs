//! Drain, really (issue 15): `steward drain --nodes` of a real node, then
//! `kubectl drain` of the other one with the same pods. The containers receive
//! SIGTERM, serve their 2 s shutdown delay and exit 0 within their grace period,
//! replacements start on the other real node, and the Events and exit codes of the
//! two drains are the same. A binary of its own: draining a node moves every pod on
//! it, so these nodes are this test's only.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{cordon, real_pool, steward, unschedulable};
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use testkit::realnode::{http_pod_spec, kubectl};
use testkit::wait::{self, from_json, pod_ready};

const T: Duration = Duration::from_secs(120);

/// What happened to one pod: its node, when its deletion is due (deletion time plus
/// grace), and how its container ended.
#[derive(Debug, Clone, Default)]
struct Seen {
    node: String,
    deletion_due: Option<jiff::Timestamp>,
    grace: i64,
    exit: Option<(i32, jiff::Timestamp)>,
}

type Record = Arc<Mutex<BTreeMap<String, Seen>>>;

/// Records every pod of the namespace until aborted; ends with an error if the
/// watch does.
fn record(pods: Api<Pod>) -> (Record, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let seen: Record = Arc::default();
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(watcher(pods, watcher::Config::default()).applied_objects());
        while let Some(p) = s.try_next().await? {
            let mut m = out.lock().unwrap();
            let e = m.entry(p.name_any()).or_default();
            if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
                e.node = n;
            }
            // The first graceful deletion counts (the kubelet's final delete has grace 0).
            if e.deletion_due.is_none() {
                e.deletion_due = p.metadata.deletion_timestamp.as_ref().map(|t| t.0);
                e.grace = p.metadata.deletion_grace_period_seconds.unwrap_or_default();
            }
            let t = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.first())
                .and_then(|c| c.state.as_ref()?.terminated.clone());
            if let Some(t) = t {
                e.exit = Some((t.exit_code, t.finished_at.map(|f| f.0).unwrap_or_default()));
            }
        }
        anyhow::bail!("the pod watch ended")
    });
    (seen, task)
}

/// The reasons of the Events of these pods (kubelet: Killing, Unhealthy; scheduler,
/// ...).
async fn pod_events(client: &kube::Client, ns: &str, pods: &BTreeSet<String>) -> BTreeSet<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = api.list(&ListParams::default()).await.unwrap().items;
    list.into_iter()
        .filter(|e| {
            e.involved_object
                .name
                .as_ref()
                .is_some_and(|n| pods.contains(n))
        })
        .filter_map(|e| e.reason)
        .collect()
}

/// Waits until the node's kubelet reports `NodeNotSchedulable` at or after `since`
/// (the kubelet sees the cordon at its next status update).
async fn node_not_schedulable(client: &kube::Client, node: &str, since: jiff::Timestamp) {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    wait::until(
        T,
        &format!("{node}'s kubelet to report NodeNotSchedulable"),
        || async {
            let list = api.list(&ListParams::default()).await?.items;
            Ok(list.iter().any(|e| {
                e.involved_object.name.as_deref() == Some(node)
                    && e.reason.as_deref() == Some("NodeNotSchedulable")
                    && e.last_timestamp.as_ref().is_some_and(|t| {
                        t.0 >= since.round(jiff::Unit::Second).unwrap_or(since)
                            - jiff::SignedDuration::from_secs(1)
                    })
            }))
        },
    )
    .await
    .unwrap();
}

/// Waits for `n` Ready web pods, all on `node`.
async fn ready_on(pods: &Api<Pod>, n: usize, node: &str) -> BTreeSet<String> {
    let ps = wait::list(
        pods,
        &ListParams::default().labels("app=web"),
        T,
        &format!("{n} Ready web pods on {node}"),
        |ps| {
            let ready: Vec<&Pod> = ps
                .iter()
                .filter(|p| pod_ready(p) && p.metadata.deletion_timestamp.is_none())
                .collect();
            ready.len() == n
                && ready
                    .iter()
                    .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        },
    )
    .await
    .unwrap();
    ps.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.name_any())
        .collect()
}

/// Checks that every pod in `drained` got SIGTERM and exited 0 after its 2 s of
/// shutdown delay and before its grace ran out; returns the exit codes.
fn checked_exits(seen: &Record, drained: &BTreeSet<String>) -> Vec<i32> {
    let m = seen.lock().unwrap();
    drained
        .iter()
        .map(|p| {
            let s = &m[p];
            let (code, finished) = s
                .exit
                .unwrap_or_else(|| panic!("{p}: no terminated state seen: {s:?}"));
            let due = s
                .deletion_due
                .unwrap_or_else(|| panic!("{p}: never deleted: {s:?}"));
            let sigterm_at = due - jiff::SignedDuration::from_secs(s.grace);
            assert!(finished <= due, "{p} outlived its grace period: {s:?}");
            // finishedAt has whole seconds: 2 s of serving after SIGTERM shows as >= 1 s.
            assert!(
                finished.duration_since(sigterm_at) >= jiff::SignedDuration::from_secs(1),
                "{p} ended before its shutdown delay: {s:?}"
            );
            code
        })
        .collect()
}

#[tokio::test]
async fn drain_of_a_real_node_sigterms_pods_and_matches_kubectl_drain() {
    let cluster = testkit::cluster_with_real_nodes(2);
    let env = testkit::env_in(cluster, "rn-drain").await.unwrap();
    let (a, b) = ("real-node-1", "real-node-2");
    let pool = env.ns.clone();
    let nodes: Api<Node> = Api::all(env.client.clone());
    let prom = real_pool(&env.client, &pool, &[a, b]).await;

    // Three servers on node a (b cordoned meanwhile), 2 s shutdown delay, 20 s grace.
    cordon(&env.client, b, true).await;
    let mut spec = http_pod_spec(2000, 20);
    spec["containers"][0]["resources"] = json!({"requests": {"cpu": "10m", "memory": "16Mi"}});
    let deploy: Deployment = from_json(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}
    }));
    Api::<Deployment>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let first = ready_on(&pods, 3, a).await;
    cordon(&env.client, b, false).await;
    prom.wait_for_series(
        &format!("karpenter_nodes_total_pod_requests{{nodepool=\"{pool}\"}}"),
        T,
    )
    .await
    .unwrap();
    let (seen, watch) = record(pods.clone());

    let kc = cluster.kubeconfig().display().to_string();
    let start = jiff::Timestamp::now();
    let (ok, stdout, stderr) = steward(
        &[
            "drain",
            "--nodepool-name",
            &pool,
            "--prometheus-address",
            prom.url(),
            "--cluster-name",
            "sim",
            "--nodes",
            a,
            "--timeout",
            "90s",
        ],
        &kc,
    )
    .await;
    assert!(ok, "steward drain failed:\n{stderr}\n{stdout}");
    assert!(
        unschedulable(&nodes.get(a).await.unwrap()),
        "{a} not cordoned"
    );
    let moved = ready_on(&pods, 3, b).await;
    assert!(moved.is_disjoint(&first), "replacements are new pods");
    let steward_exits = checked_exits(&seen, &first);
    let steward_events = pod_events(&env.client, &env.ns, &first).await;
    node_not_schedulable(&env.client, a, start).await;

    // The same with kubectl drain, from b back to a.
    cordon(&env.client, a, false).await;
    kubectl(
        cluster,
        &[
            "drain",
            b,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=90s",
        ],
    )
    .unwrap();
    let back = ready_on(&pods, 3, a).await;
    assert!(back.is_disjoint(&moved));
    let kubectl_exits = checked_exits(&seen, &moved);
    let kubectl_events = pod_events(&env.client, &env.ns, &moved).await;
    node_not_schedulable(&env.client, b, start).await;
    assert!(
        !watch.is_finished(),
        "the pod watch ended: {:?}",
        watch.await
    );
    watch.abort();

    assert_eq!(steward_exits, vec![0, 0, 0], "steward drain: exit codes");
    assert_eq!(
        kubectl_exits, steward_exits,
        "exit codes differ from kubectl drain"
    );
    assert!(steward_events.contains("Killing"), "{steward_events:?}");
    assert_eq!(
        steward_events, kubectl_events,
        "Events differ from kubectl drain"
    );
    kubectl(cluster, &["uncordon", b]).unwrap();
}
