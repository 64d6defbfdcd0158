//! Uninstall leaves nothing a MonitoringStack installed, and nothing else goes: every
//! object of every listable API type (API discovery, not a list of steward's kinds)
//! in the test's namespace, and every cluster-scoped object naming the namespace,
//! compared before the stack, while it runs and after it is gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod monitor_support;

use std::collections::BTreeSet;
use std::time::Duration;

use auto_monitor::crd::MonitoringStack;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Client, ResourceExt};
use monitor_support::{controller, create_stack, free_port};
use serde_json::json;

/// Every object of every listable type in `ns` (`Kind ns/name`) and every
/// cluster-scoped one whose name or a label value contains `ns` (`Kind name`).
/// Events are records of what happened, not installed objects.
async fn snapshot(client: &Client, ns: &str) -> BTreeSet<String> {
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let mut found = BTreeSet::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) || ar.plural == "events" {
                continue;
            }
            match caps.scope {
                Scope::Namespaced => {
                    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
                    for o in list(&api).await {
                        found.insert(format!("{} {ns}/{}", ar.kind, o.name_any()));
                    }
                }
                Scope::Cluster => {
                    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
                    for o in list(&api).await {
                        let ours = o.name_any().contains(ns)
                            || o.labels().values().any(|v| v.contains(ns));
                        if ours {
                            found.insert(format!("{} {}", ar.kind, o.name_any()));
                        }
                    }
                }
            }
        }
    }
    found
}

/// Every object's metadata. A type other tests' CRDs add or remove meanwhile
/// answers 429 while its storage starts (tried again) or 404 once gone (empty).
async fn list(api: &Api<DynamicObject>) -> Vec<kube::core::PartialObjectMeta<DynamicObject>> {
    for _ in 0..50 {
        match api.list_metadata(&ListParams::default()).await {
            Ok(l) => return l.items,
            Err(kube::Error::Api(e)) if e.code == 404 => return Vec::new(),
            Err(kube::Error::Api(e)) if e.code == 429 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("listing: {e}"),
        }
    }
    panic!("a type's storage did not start in 10 s");
}

/// Waits until the snapshot is `want` again; fails with what is left or missing.
async fn back_to(client: &Client, ns: &str, want: &BTreeSet<String>, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = snapshot(client, ns).await;
        if &now == want {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let left: Vec<_> = now.difference(want).collect();
            let lost: Vec<_> = want.difference(&now).collect();
            panic!(
                "after {timeout:?}: left behind {left:?}; removed though not installed {lost:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn installed(api: &Api<MonitoringStack>) {
    testkit::wait::object(
        api,
        "mon",
        Duration::from_secs(120),
        "phase Installed",
        |m| {
            m.status
                .as_ref()
                .is_some_and(|s| s.phase.as_deref() == Some("Installed"))
        },
    )
    .await
    .unwrap();
}

fn uninstall(ns: &str, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["monitor", "uninstall", "-n", ns, "mon"])
        .args(extra)
        .env("KUBECONFIG", testkit::cluster().kubeconfig())
        .env("STEWARD_HELM", testkit::bin_dir().unwrap().join("helm"))
        .output()
        .unwrap()
}

/// `steward monitor uninstall --dry-run`'s list; fails the test unless it succeeds.
fn dry_run(ns: &str) -> String {
    let dry = uninstall(ns, &["--dry-run"]);
    let out = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(
        dry.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    out
}

/// Kinds the cluster derives from what steward applies (the garbage collector
/// removes them with their owners); the dry run lists what steward applied.
const DERIVED: [&str; 5] = [
    "Pod",
    "ReplicaSet",
    "EndpointSlice",
    "Endpoints",
    "ControllerRevision",
];

/// An embedded stack, every component, removed by `steward monitor uninstall` with
/// no controller running: the dry run names each object and removes none; the
/// uninstall leaves the namespace and the cluster as they were before the stack.
#[tokio::test(flavor = "multi_thread")]
async fn uninstall_of_an_embedded_stack_leaves_nothing() {
    let env = testkit::env("monrm").await.unwrap();
    env.add_nodes("n", 1, |s| s).await.unwrap();
    auto_monitor::apply_crd(&env.client).await.unwrap();
    let before = snapshot(&env.client, &env.ns).await;
    let ctl = controller(&env.ns, "http://127.0.0.1:1", free_port(), &[]).unwrap();
    let api = create_stack(&env, json!({ "profile": "kind" })).await;
    installed(&api).await;
    let running = snapshot(&env.client, &env.ns).await;
    let added: BTreeSet<&String> = running.difference(&before).collect();
    for kind in [
        "Deployment",
        "DaemonSet",
        "ConfigMap",
        "Service",
        "ServiceAccount",
        "Secret",
        "ClusterRole",
        "ClusterRoleBinding",
        "MonitoringStack",
    ] {
        assert!(
            added.iter().any(|o| o.starts_with(&format!("{kind} "))),
            "no {kind} installed: {added:?}"
        );
    }

    let out = dry_run(&env.ns);
    let applied: Vec<&&String> = added
        .iter()
        .filter(|o| !DERIVED.iter().any(|d| o.starts_with(&format!("{d} "))))
        .filter(|o| !o.starts_with("MonitoringStack "))
        .collect();
    for o in &applied {
        assert!(
            out.contains(&format!("  {o}\n")),
            "dry run does not list {o}:\n{out}"
        );
    }
    assert!(out.contains("dry run: nothing deleted"), "{out}");
    let after_dry = snapshot(&env.client, &env.ns).await;
    for o in &applied {
        assert!(after_dry.contains(**o), "the dry run removed {o}");
    }

    // The CLI alone: no controller sweeps behind it.
    drop(ctl);
    let done = uninstall(&env.ns, &["--timeout", "60s"]);
    assert!(
        done.status.success(),
        "{}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        String::from_utf8_lossy(&done.stderr).contains("uninstalled MonitoringStack"),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    back_to(&env.client, &env.ns, &before, Duration::from_secs(60)).await;
}

/// A helm-mode stack deleted while no controller runs: the next controller
/// uninstalls the release (its namespaced and cluster-scoped objects and its
/// release Secrets) and keeps the chart's CRD.
#[tokio::test(flavor = "multi_thread")]
async fn a_helm_stack_deleted_while_the_controller_is_down_is_uninstalled() {
    let env = testkit::env("monrmh").await.unwrap();
    env.add_nodes("n", 1, |s| s).await.unwrap();
    auto_monitor::apply_crd(&env.client).await.unwrap();
    let chart = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../auto-monitor/tests/charts/steward-test-stack"
    );
    let helm = testkit::bin_dir()
        .unwrap()
        .join("helm")
        .display()
        .to_string();
    let flags = ["--helm", &helm, "--helm-chart", chart];
    let before = snapshot(&env.client, &env.ns).await;
    let ctl = controller(&env.ns, "http://127.0.0.1:1", free_port(), &flags).unwrap();
    let spec = json!({
        "installMode": "helm",
        "profile": "kind",
        "components": ["prometheus"],
        "helm": { "chart": chart, "timeout": "60s" },
    });
    let api = create_stack(&env, spec).await;
    installed(&api).await;
    let running = snapshot(&env.client, &env.ns).await;
    for o in [
        format!("Secret {}/sh.helm.release.v1.mon.v1", env.ns),
        format!("Deployment {}/mon-prometheus", env.ns),
        format!("ClusterRole {}-mon-steward-test", env.ns),
    ] {
        assert!(running.contains(&o), "{o} not installed: {running:?}");
    }
    let out = dry_run(&env.ns);
    for line in [
        "  helm release mon:\n".to_string(),
        format!("    ClusterRole/{}-mon-steward-test\n", env.ns),
        "    Deployment/mon-prometheus\n".to_string(),
    ] {
        assert!(
            out.contains(&line),
            "dry run does not list {line:?}:\n{out}"
        );
    }

    drop(ctl);
    api.delete("mon", &DeleteParams::default()).await.unwrap();
    testkit::wait::gone(&api, "mon", Duration::from_secs(30))
        .await
        .unwrap();
    // Nothing removes the release while no controller runs ...
    assert!(
        snapshot(&env.client, &env.ns)
            .await
            .contains(&format!("Secret {}/sh.helm.release.v1.mon.v1", env.ns))
    );
    // ... and the next one does at its first pass.
    let _ctl = controller(&env.ns, "http://127.0.0.1:1", free_port(), &flags).unwrap();
    back_to(&env.client, &env.ns, &before, Duration::from_secs(90)).await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    assert!(
        crds.get_opt("probes.test.steward.io")
            .await
            .unwrap()
            .is_some(),
        "the chart's CRD is kept"
    );
}
