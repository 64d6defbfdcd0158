//! Graceful drain never takes more pods out of service than their
//! PodDisruptionBudget allows, end to end on the real control plane: a real
//! `kubectl drain` evicts every pod of a node at once, steward refuses each with
//! 429 and drains them through their budget one disruption at a time, and watches
//! of the pods and of the Service's EndpointSlices check the budget at every change.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod gd_support;
mod watch_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gd_support::{StewardSpec, T, pods, web_with};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use testkit::TestEnv;
use testkit::wait::{self, from_json, pod_ready};
use watch_support::Invariant;

const CONFIG: &str = "version: 1\ndefaults:\n  minWait: 1s\n  maxWait: 15s\n";

fn phase(p: &Pod) -> Option<&str> {
    p.labels().get("steward.io/drain").map(String::as_str)
}

/// Pods of `apps` that serve: Ready, selected by their Service (the `app` label
/// isolation removes), not terminating.
fn serving(pods: &BTreeMap<String, Pod>, apps: &[&str]) -> usize {
    pods.values()
        .filter(|p| {
            p.labels()
                .get("app")
                .is_some_and(|a| apps.contains(&a.as_str()))
                && pod_ready(p)
                && p.metadata.deletion_timestamp.is_none()
        })
        .count()
}

/// Fails when fewer than `min` pods of `apps` serve; records the most pods steward
/// had out of service at once in `max_draining`.
async fn budget_watch(
    env: &TestEnv,
    apps: &'static [&'static str],
    min: usize,
    max_draining: Arc<AtomicUsize>,
) -> Invariant {
    Invariant::start(
        "pods serving",
        pods(env),
        watcher::Config::default(),
        move |now| {
            let draining = now
                .values()
                .filter(|p| {
                    matches!(phase(p), Some("isolated" | "evicting"))
                        && p.metadata.deletion_timestamp.is_none()
                })
                .count();
            max_draining.fetch_max(draining, Ordering::SeqCst);
            let n = serving(now, apps);
            let names: Vec<_> = now
                .iter()
                .map(|(n, p)| format!("{n}:{}:{}", phase(p).unwrap_or("-"), pod_ready(p)))
                .collect();
            (n < min).then(|| format!("{n} pods serving, budget needs {min}: {names:?}"))
        },
    )
    .await
}

/// Fails when the Service's EndpointSlices hold fewer than `min` ready endpoints.
async fn endpoints_watch(env: &TestEnv, service: &str, min: usize) -> Invariant {
    let api: Api<EndpointSlice> = Api::namespaced(env.client.clone(), &env.ns);
    let cfg = watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
    Invariant::start("ready endpoints", api, cfg, move |slices| {
        let ready: Vec<String> = slices
            .values()
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .map(|e| {
                e.target_ref
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_default()
            })
            .collect();
        (ready.len() < min).then(|| {
            format!(
                "{} ready endpoints, budget needs {min}: {ready:?}",
                ready.len()
            )
        })
    })
    .await
}

/// Waits until the Service's EndpointSlices list `n` ready endpoints.
async fn ready_endpoints(env: &TestEnv, service: &str, n: usize) {
    let api: Api<EndpointSlice> = Api::namespaced(env.client.clone(), &env.ns);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    wait::list(
        &api,
        &lp,
        T,
        &format!("{n} ready endpoints of {service}"),
        |slices| {
            slices
                .iter()
                .flat_map(|s| s.endpoints.iter())
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                .count()
                == n
        },
    )
    .await
    .unwrap();
}

async fn pdb(env: &TestEnv, name: &str, spec: Value) {
    let pdb: PodDisruptionBudget = from_json(json!({ "metadata": { "name": name }, "spec": spec }));
    let api: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), &env.ns);
    api.create(&PostParams::default(), &pdb).await.unwrap();
    // The disruption controller must have counted it before anyone evicts.
    wait::object(&api, name, T, "PDB processed", |p: &PodDisruptionBudget| {
        p.status.as_ref().is_some_and(|s| {
            s.observed_generation == p.metadata.generation && s.current_healthy > 0
        })
    })
    .await
    .unwrap();
}

/// `kubectl drain` of `nodes`, one process per node, all at once; waits for all.
async fn kubectl_drain(nodes: &[String]) -> Vec<std::process::Output> {
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let children: Vec<_> = nodes
        .iter()
        .map(|n| {
            tokio::process::Command::new(gd_support::bin_dir().join("kubectl"))
                .args([
                    "--kubeconfig",
                    &kubeconfig,
                    "drain",
                    n,
                    "--ignore-daemonsets",
                    "--timeout=150s",
                ])
                .output()
        })
        .collect();
    futures::future::join_all(children)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

fn assert_drained(outputs: &[std::process::Output]) {
    for o in outputs {
        assert!(
            o.status.success(),
            "kubectl drain: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Waits until each pod has a `Drained` Event: steward, not the evicter, evicted it.
async fn drained_by_steward(env: &TestEnv, names: &[String]) {
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    let missing: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    wait::until(T, "a Drained Event for every pod", || {
        let events = events.clone();
        let names = names.to_vec();
        let missing = missing.clone();
        async move {
            let drained: Vec<String> = events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("Drained"))
                .filter_map(|e| e.involved_object.name)
                .collect();
            let left: Vec<String> = names.into_iter().filter(|n| !drained.contains(n)).collect();
            let done = left.is_empty();
            *missing.lock().unwrap() = left;
            Ok(done)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: not drained by steward: {:?}", missing.lock().unwrap()));
}

fn targeted(ready_after: Option<&str>) -> Value {
    match ready_after {
        Some(d) => json!({ "vpa-managed": "true", "steward.io/sim-ready-after": d }),
        None => json!({ "vpa-managed": "true" }),
    }
}

/// One Deployment of 6 on one node under `budget` (`None`: no PDB, the
/// Deployment's rollout limit applies); steward runs; the node is then drained by
/// `kubectl drain` onto two fresh nodes while the invariants watch. Returns the
/// most pods steward had out of service at once.
async fn six_on_a_node(
    prefix: &str,
    budget: Option<Value>,
    min_serving: usize,
    ready_after: Option<&str>,
) -> usize {
    let env = testkit::env(prefix).await.unwrap();
    let src = env.add_nodes("src", 1, |s| s).await.unwrap();
    let spec = StewardSpec::new(&env).await;
    spec.config(&env.client, CONFIG).await;
    let _steward = spec.start().await;
    let original = web_with(&env, "web", 6, targeted(ready_after), json!({})).await;
    // The EndpointSlice controller lists Ready pods a moment after they are Ready;
    // the watch starts from all six.
    ready_endpoints(&env, "web", 6).await;
    if let Some(budget) = budget {
        pdb(&env, "web", budget).await;
    }
    env.add_nodes("dst", 2, |s| s).await.unwrap();
    let max = Arc::new(AtomicUsize::new(0));
    let pods_ok = budget_watch(&env, &["web"], min_serving, max.clone()).await;
    let endpoints_ok = endpoints_watch(&env, "web", min_serving).await;
    assert_drained(&kubectl_drain(&src).await);
    let names: Vec<String> = original.iter().map(ResourceExt::name_any).collect();
    drained_by_steward(&env, &names).await;
    pods_ok.finish();
    endpoints_ok.finish();
    max.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_drain_of_six_pods_under_min_available_5_never_goes_below_5() {
    six_on_a_node(
        "gd-pdb-min",
        Some(json!({ "minAvailable": 5, "selector": { "matchLabels": { "app": "web" } } })),
        5,
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replacements_slow_to_become_ready_keep_the_service_at_min_available() {
    let max = six_on_a_node(
        "gd-pdb-slow",
        Some(json!({ "minAvailable": 5, "selector": { "matchLabels": { "app": "web" } } })),
        5,
        Some("3s"),
    )
    .await;
    assert!(max >= 1, "steward never drained a pod");
}

/// No PDB: a 429 makes every evicter move on to the next pod, so without a limit of
/// steward's own all six would leave the Service at once. The Deployment's rollout
/// limit (default `maxUnavailable: 25%`, one of six) holds instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_pdb_a_deployment_drains_within_its_rollout_limit() {
    // The watches fail the test when fewer than five serve.
    let max = six_on_a_node("gd-rollout", None, 5, Some("3s")).await;
    assert!(max >= 1, "steward never drained a pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_unavailable_2_drains_two_at_a_time_never_three() {
    let max = six_on_a_node(
        "gd-pdb-max",
        Some(json!({ "maxUnavailable": 2, "selector": { "matchLabels": { "app": "web" } } })),
        4,
        Some("3s"),
    )
    .await;
    // Both disruptions the budget allows are used while the replacements start.
    assert!(
        max >= 2,
        "at most {max} pods drained at once; the budget allows 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_deployments_under_one_budget_share_it() {
    let env = testkit::env("gd-pdb-two").await.unwrap();
    let src = env.add_nodes("src", 1, |s| s).await.unwrap();
    let spec = StewardSpec::new(&env).await;
    spec.config(&env.client, CONFIG).await;
    let _steward = spec.start().await;
    // The budget selects `tier`, a label no Service selects: isolation keeps it, so
    // the API server still counts isolated pods; steward counts them as draining.
    let tier = json!({ "tier": "front" });
    let mut original = web_with(&env, "web-a", 3, targeted(Some("2s")), tier.clone()).await;
    original.extend(web_with(&env, "web-b", 3, targeted(Some("2s")), tier).await);
    pdb(
        &env,
        "front",
        json!({ "minAvailable": 5, "selector": { "matchLabels": { "tier": "front" } } }),
    )
    .await;
    env.add_nodes("dst", 2, |s| s).await.unwrap();
    let max = Arc::new(AtomicUsize::new(0));
    let ok = budget_watch(&env, &["web-a", "web-b"], 5, max).await;
    assert_drained(&kubectl_drain(&src).await);
    let names: Vec<String> = original.iter().map(ResourceExt::name_any).collect();
    drained_by_steward(&env, &names).await;
    ok.finish();
}

/// 20 pods on 4 nodes, four `kubectl drain` processes at once, `maxUnavailable: 25%`.
async fn twenty_on_four_nodes(prefix: &str, with_steward: bool) -> Duration {
    let env = testkit::env(prefix).await.unwrap();
    let src = env.add_nodes("src", 4, |s| s).await.unwrap();
    let spec = StewardSpec::new(&env).await;
    spec.config(&env.client, CONFIG).await;
    let _steward = if with_steward {
        Some(spec.start().await)
    } else {
        None
    };
    let annotations = if with_steward {
        targeted(Some("2s"))
    } else {
        json!({ "steward.io/sim-ready-after": "2s" })
    };
    let original = web_with(&env, "web", 20, annotations, json!({})).await;
    pdb(
        &env,
        "web",
        json!({ "maxUnavailable": "25%", "selector": { "matchLabels": { "app": "web" } } }),
    )
    .await;
    env.add_nodes("dst", 3, |s| s).await.unwrap();
    let ok = budget_watch(&env, &["web"], 15, Arc::default()).await;
    let start = Instant::now();
    assert_drained(&kubectl_drain(&src).await);
    let took = start.elapsed();
    if with_steward {
        let names: Vec<String> = original.iter().map(ResourceExt::name_any).collect();
        drained_by_steward(&env, &names).await;
    }
    ok.finish();
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_concurrent_kubectl_drains_of_20_pods_respect_the_budget() {
    let took = twenty_on_four_nodes("gd-pdb-20", true).await;
    eprintln!(
        "four kubectl drains of 20 pods with steward: {:.1}s",
        took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_concurrent_kubectl_drains_of_20_pods_without_steward() {
    let took = twenty_on_four_nodes("gd-pdb-20-plain", false).await;
    eprintln!(
        "four kubectl drains of 20 pods without steward: {:.1}s",
        took.as_secs_f64()
    );
}

/// A controller restart mid-drain: pods already isolated are found by their labels
/// and still count against the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_restart_isolated_pods_still_count_against_the_budget() {
    let env = testkit::env("gd-pdb-restart").await.unwrap();
    let src = env.add_nodes("src", 1, |s| s).await.unwrap();
    let spec = StewardSpec::new(&env).await;
    spec.config(
        &env.client,
        "version: 1\ndefaults:\n  minWait: 4s\n  maxWait: 20s\n",
    )
    .await;
    let first = spec.start().await;
    let original = web_with(&env, "web", 6, targeted(Some("3s")), json!({})).await;
    pdb(
        &env,
        "web",
        json!({ "minAvailable": 5, "selector": { "matchLabels": { "app": "web" } } }),
    )
    .await;
    env.add_nodes("dst", 2, |s| s).await.unwrap();
    let max = Arc::new(AtomicUsize::new(0));
    let ok = budget_watch(&env, &["web"], 5, max).await;
    let drain = tokio::spawn(async move { kubectl_drain(&src).await });
    // One pod isolated, the others queued behind the budget: kill the controller.
    wait::list(
        &pods(&env),
        &ListParams::default(),
        T,
        "one pod isolated, one queued",
        |ps| {
            ps.iter().any(|p| phase(p) == Some("isolated"))
                && ps
                    .iter()
                    .any(|p| p.annotations().contains_key("steward.io/drain-queued-at"))
        },
    )
    .await
    .unwrap();
    first.kill().await;
    let _second = spec.start().await;
    assert_drained(&drain.await.unwrap());
    let names: Vec<String> = original.iter().map(ResourceExt::name_any).collect();
    drained_by_steward(&env, &names).await;
    ok.finish();
    let left: Vec<String> = pods(&env)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| phase(p).is_some())
        .map(ResourceExt::name_any)
        .collect();
    assert!(left.is_empty(), "drain records left behind: {left:?}");
}
