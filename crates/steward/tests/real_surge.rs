//! Make-before-break on real nodes (issue 17): a single-replica Deployment behind
//! a Service, its pod on a real node. `steward drain` restarts the Deployment so
//! the replacement on the other real node is Ready before the old pod leaves: the
//! Service never has zero ready endpoints. The same drain with `--no-surge` evicts
//! at once and the Service does drop to zero, so the watch can see it. A binary of
//! its own: draining a node moves every pod on it.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;
mod watch_support;

use std::time::Duration;

use common::{cordon, real_pool, steward};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use testkit::realnode::http_pod_spec;
use testkit::wait::{self, from_json, pod_ready};
use watch_support::Invariant;

const T: Duration = Duration::from_secs(120);

/// A violation whenever the Service's EndpointSlices hold no ready endpoint.
async fn serving(client: &kube::Client, ns: &str, what: &str) -> Invariant {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let cfg = watcher::Config::default().labels("kubernetes.io/service-name=solo");
    Invariant::start(what, api, cfg, |slices| {
        let ready = slices
            .values()
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count();
        (ready == 0).then(|| "no ready endpoint".to_string())
    })
    .await
}

/// Waits for the one solo pod Ready on `node`, and its endpoint ready.
async fn ready_on(client: &kube::Client, ns: &str, node: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait::list(
        &pods,
        &ListParams::default().labels("app=solo"),
        T,
        &format!("solo Ready on {node}"),
        |ps| {
            let live: Vec<&Pod> = ps
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            live.len() == 1
                && pod_ready(live[0])
                && live[0].spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
        },
    )
    .await
    .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels("kubernetes.io/service-name=solo");
    wait::list(&slices, &lp, T, "a ready endpoint", |ss| {
        ss.iter()
            .flat_map(|s| s.endpoints.iter())
            .any(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
    })
    .await
    .unwrap();
}

/// The reasons of steward's Events on `node`.
async fn steward_events(client: &kube::Client, node: &str) -> Vec<String> {
    let api: Api<Event> = Api::all(client.clone());
    let lp = ListParams::default().fields(&format!("regarding.name={node}"));
    let mut list = api.list(&lp).await.unwrap().items;
    list.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    list.into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("steward-node-drain"))
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test]
async fn a_single_replica_deployment_keeps_serving_through_the_drain_of_its_real_node() {
    let cluster = testkit::cluster_with_real_nodes(2);
    let env = testkit::env_in(cluster, "rn-surge").await.unwrap();
    let (a, b) = ("real-node-1", "real-node-2");
    let pool = env.ns.clone();
    let prom = real_pool(&env.client, &pool, &[a, b]).await;

    // One server on a (b cordoned meanwhile) behind a Service: 2 s shutdown delay.
    cordon(&env.client, b, true).await;
    let mut spec = http_pod_spec(2000, 20);
    spec["containers"][0]["resources"] = json!({"requests": {"cpu": "10m", "memory": "16Mi"}});
    let deploy: Deployment = from_json(json!({
        "metadata": {"name": "solo"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "solo"}},
                 "template": {"metadata": {"labels": {"app": "solo"}}, "spec": spec}}
    }));
    Api::<Deployment>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let svc: Service = from_json(json!({
        "metadata": {"name": "solo"},
        "spec": {"selector": {"app": "solo"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }));
    Api::<Service>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    ready_on(&env.client, &env.ns, a).await;
    cordon(&env.client, b, false).await;
    prom.wait_for_series(
        &format!("karpenter_nodes_total_pod_requests{{nodepool=\"{pool}\"}}"),
        T,
    )
    .await
    .unwrap();
    let kc = cluster.kubeconfig().display().to_string();
    let drain = |node: &'static str, extra: &'static [&'static str]| {
        let (pool, url, kc) = (pool.clone(), prom.url().to_string(), kc.clone());
        async move {
            let mut args = vec![
                "drain",
                "--nodepool-name",
                &pool,
                "--prometheus-address",
                &url,
                "--nodes",
                node,
                "--timeout",
                "120s",
                "-o",
                "json",
            ];
            args.extend_from_slice(extra);
            steward(&args, &kc).await
        }
    };

    // Make-before-break: never without a ready endpoint.
    let watch = serving(&env.client, &env.ns, "solo through steward drain").await;
    let (ok, stdout, stderr) = drain(a, &[]).await;
    assert!(ok, "steward drain failed:\n{stderr}\n{stdout}");
    ready_on(&env.client, &env.ns, b).await;
    watch.finish();
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["nodes"][0]["result"], "drained", "{report}");
    let events = steward_events(&env.client, a).await;
    assert!(
        events.contains(&"ReplacementStarted".to_string()),
        "{events:?}"
    );
    let d = Api::<Deployment>::namespaced(env.client.clone(), &env.ns)
        .get("solo")
        .await
        .unwrap();
    assert_eq!(
        d.spec.as_ref().and_then(|s| s.replicas),
        Some(1),
        "the surge outlived the drain"
    );

    // --no-surge, from b back to a: evicted first, the Service goes empty.
    cordon(&env.client, a, false).await;
    let watch = serving(
        &env.client,
        &env.ns,
        "solo through steward drain --no-surge",
    )
    .await;
    let (ok, stdout, stderr) = drain(b, &["--no-surge"]).await;
    assert!(ok, "steward drain --no-surge failed:\n{stderr}\n{stdout}");
    ready_on(&env.client, &env.ns, a).await;
    assert!(
        !watch.violations().is_empty(),
        "an eviction before the replacement must leave the Service empty for a while"
    );
    let events = steward_events(&env.client, b).await;
    assert!(
        !events.contains(&"ReplacementStarted".to_string()),
        "{events:?}"
    );
}
