//! `steward monitor` end to end: the real control plane with kwok nodes added and
//! removed during the test, the controller as people run it, and a real Prometheus
//! scraping real node-exporter processes that stand in for the simulated nodes.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod monitor_support;

use std::collections::BTreeMap;
use std::time::Duration;

use auto_monitor::crd::{MonitoringStack, NodeOnboarding};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use monitor_support::{Fleet, controller, free_port, metrics};
use serde_json::json;
use testkit::TestEnv;
use testkit::wait;

const T: Duration = Duration::from_secs(90);

fn stack_json(env: &TestEnv, extra: serde_json::Value) -> MonitoringStack {
    let mut spec = json!({
        "nodeSelector": env.node_selector(),
        "placement": { "nodeSelector": env.node_selector(), "tolerations": [env.toleration()] },
        "scrapeInterval": "1s",
        "onboardingDeadline": "5s",
    });
    monitor_support_merge(&mut spec, &extra);
    wait::from_json(
        json!({ "apiVersion": "steward.io/v1alpha1", "kind": "MonitoringStack", "metadata": { "name": "mon" }, "spec": spec }),
    )
}

fn monitor_support_merge(base: &mut serde_json::Value, extra: &serde_json::Value) {
    auto_monitor::helm::merge(base, extra);
}

fn node_record<'a>(ms: &'a MonitoringStack, node: &str) -> Option<&'a NodeOnboarding> {
    ms.status.as_ref()?.nodes.iter().find(|n| n.node == node)
}

fn monitored(ms: &MonitoringStack, node: &str) -> bool {
    node_record(ms, node).is_some_and(|n| n.step == "Monitored" && n.first_sample_at.is_some())
}

fn phase(ms: &MonitoringStack) -> Option<&str> {
    ms.status.as_ref()?.phase.as_deref()
}

fn condition<'a>(ms: &'a MonitoringStack, ty: &str) -> Option<&'a auto_monitor::crd::Condition> {
    ms.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == ty)
}

async fn create_stack(env: &TestEnv, extra: serde_json::Value) -> Api<MonitoringStack> {
    // The CRD is applied by the controller at start; create it here too so the test
    // does not race the controller.
    auto_monitor::apply_crd(&env.client).await.unwrap();
    let api: Api<MonitoringStack> = Api::namespaced(env.client.clone(), &env.ns);
    api.create(&PostParams::default(), &stack_json(env, extra))
        .await
        .unwrap();
    api
}

async fn wait_stack(
    api: &Api<MonitoringStack>,
    what: &str,
    cond: impl Fn(&MonitoringStack) -> bool,
) -> MonitoringStack {
    wait::object(api, "mon", T, what, cond).await.unwrap()
}

/// Install applies every component, each node walks every onboarding step, a new
/// node is onboarded, a removed node leaves the status, and a restarted controller
/// keeps every recorded time.
#[tokio::test(flavor = "multi_thread")]
async fn install_onboard_remove_and_restart() {
    let env = testkit::env("mon").await.unwrap();
    let fleet = Fleet::start().await.unwrap();
    let first = env.add_nodes("n", 1, |s| s).await.unwrap();
    fleet.start_exporter(&first[0]).unwrap();
    let admin = free_port();
    let ctl = controller(&env.ns, &fleet.url, admin, &[]).unwrap();
    let api = create_stack(&env, json!({})).await;

    // Everything applied and Available.
    let ms = wait_stack(&api, "phase Installed", |m| phase(m) == Some("Installed")).await;
    let st = ms.status.clone().unwrap();
    assert_eq!(st.profile.as_deref(), Some("generic"));
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    for d in [
        "mon-prometheus",
        "mon-alertmanager",
        "mon-grafana",
        "mon-kube-state-metrics",
    ] {
        let d = deployments.get(d).await.unwrap();
        let managers: Vec<_> = d
            .managed_fields()
            .iter()
            .filter_map(|f| f.manager.clone())
            .collect();
        assert!(
            managers.contains(&"steward-monitor".to_string()),
            "{managers:?}"
        );
        assert_eq!(d.owner_references()[0].name, "mon");
    }
    let ds: Api<DaemonSet> = Api::namespaced(env.client.clone(), &env.ns);
    let ds = ds.get("mon-node-exporter").await.unwrap();
    assert_eq!(ds.status.unwrap().number_ready, 1);
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let dashboards = cms
        .list(&ListParams::default().labels("grafana_dashboard=1"))
        .await
        .unwrap();
    assert_eq!(dashboards.items.len(), 2);
    let roles: Api<ClusterRole> = Api::all(env.client.clone());
    assert!(
        roles
            .get_opt(&format!("steward-monitor-{}-mon-prometheus", env.ns))
            .await
            .unwrap()
            .is_some()
    );
    assert!(st.inventory.len() >= 20, "{:?}", st.inventory);
    assert!(
        st.preflight
            .iter()
            .any(|f| f.check == "capacity" && f.severity == "ok"),
        "{:?}",
        st.preflight
    );

    // The first node is onboarded with every step's time.
    let ms = wait_stack(&api, "first node monitored", |m| monitored(m, &first[0])).await;
    let r0 = node_record(&ms, &first[0]).unwrap().clone();
    assert!(
        r0.exporter_pod
            .as_deref()
            .is_some_and(|p| p.starts_with("mon-node-exporter-")),
        "{r0:?}"
    );
    assert!(
        r0.ready_at.is_some()
            && r0.exporter_scheduled_at.is_some()
            && r0.exporter_ready_at.is_some()
            && r0.target_up_at.is_some(),
        "{r0:?}"
    );
    assert!(r0.target_up);

    // A node added now is onboarded through every step.
    let added = env.add_nodes("late", 1, |s| s).await.unwrap();
    fleet.start_exporter(&added[0]).unwrap();
    let ms = wait_stack(&api, "added node monitored", |m| monitored(m, &added[0])).await;
    let r1 = node_record(&ms, &added[0]).unwrap().clone();
    let ts = |s: &Option<String>| {
        s.as_deref()
            .unwrap()
            .parse::<k8s_openapi::jiff::Timestamp>()
            .unwrap()
    };
    assert!(ts(&r1.ready_at) <= ts(&r1.exporter_scheduled_at), "{r1:?}");
    assert!(
        ts(&r1.exporter_scheduled_at) <= ts(&r1.exporter_ready_at),
        "{r1:?}"
    );
    assert!(ts(&r1.ready_at) <= ts(&r1.first_sample_at), "{r1:?}");
    assert!(r1.onboarding_seconds.is_some_and(|s| s >= 0.0), "{r1:?}");
    assert_eq!(ms.status.as_ref().unwrap().summary.as_deref(), Some("2/2"));
    let text = metrics(admin).await.unwrap();
    assert!(
        text.contains("steward_monitor_node_onboarding_seconds_count 1"),
        "{text}"
    );

    // The status table.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["monitor", "status", "-n", &env.ns])
        .env("KUBECONFIG", testkit::cluster().kubeconfig())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for n in [&first[0], &added[0]] {
        let row = table
            .lines()
            .find(|l| l.starts_with(n.as_str()))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(
            row.contains("Monitored") && row.contains("yes") && row.contains("mon-node-exporter-"),
            "{row}"
        );
    }

    // Restart: the new controller keeps every recorded time.
    drop(ctl);
    let ctl = controller(&env.ns, &fleet.url, admin, &[]).unwrap();
    let third = env.add_nodes("after", 1, |s| s).await.unwrap();
    fleet.start_exporter(&third[0]).unwrap();
    let ms = wait_stack(&api, "node added after restart monitored", |m| {
        monitored(m, &third[0])
    })
    .await;
    assert_eq!(
        node_record(&ms, &first[0]),
        Some(&NodeOnboarding {
            availability: node_record(&ms, &first[0]).unwrap().availability,
            ..r0.clone()
        })
    );
    assert_eq!(
        node_record(&ms, &added[0]).unwrap().first_sample_at,
        r1.first_sample_at
    );
    assert_eq!(
        node_record(&ms, &added[0]).unwrap().target_up_at,
        r1.target_up_at
    );
    assert_eq!(
        ms.status.as_ref().unwrap().inventory,
        st.inventory,
        "restart applies the same objects"
    );

    // A removed node leaves the status.
    let nodes: Api<Node> = Api::all(env.client.clone());
    nodes
        .delete(&added[0], &DeleteParams::default())
        .await
        .unwrap();
    fleet.remove(&added[0]).unwrap();
    let ms = wait_stack(&api, "removed node cleaned", |m| {
        node_record(m, &added[0]).is_none()
            && m.status.as_ref().and_then(|s| s.summary.as_deref()) == Some("2/2")
    })
    .await;
    assert!(monitored(&ms, &first[0]));
    drop(ctl);
}

/// A node whose exporter cannot be scraped, and one whose port 9100 is taken, each
/// get a Warning Event with the likely cause once the deadline passes, and their
/// status says why; pre-flight warned about the port before applying.
#[tokio::test(flavor = "multi_thread")]
async fn unmonitored_nodes_get_an_event_with_the_likely_cause() {
    let env = testkit::env("monlate").await.unwrap();
    let fleet = Fleet::start().await.unwrap();
    let nodes = env.add_nodes("n", 3, |s| s).await.unwrap();
    fleet.start_exporter(&nodes[0]).unwrap();
    fleet.add_dead_target(&nodes[1]).unwrap();
    // Another exporter already holds host port 9100 on the third node.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let blocker: k8s_openapi::api::core::v1::Pod = wait::from_json(json!({
        "metadata": { "name": "other-exporter" },
        "spec": { "nodeName": nodes[2], "tolerations": [env.toleration()],
                  "containers": [{ "name": "c", "image": "registry.invalid/exporter:1", "ports": [{ "containerPort": 9100, "hostPort": 9100 }] }] }
    }));
    pods.create(&PostParams::default(), &blocker).await.unwrap();
    let _ctl = controller(&env.ns, &fleet.url, free_port(), &[]).unwrap();
    let api = create_stack(
        &env,
        json!({ "components": ["prometheus", "node-exporter"] }),
    )
    .await;
    let ms = wait_stack(&api, "late causes recorded", |m| {
        node_record(m, &nodes[1]).is_some_and(|n| n.late_cause.as_deref() == Some("ScrapeFailing"))
            && node_record(m, &nodes[2])
                .is_some_and(|n| n.late_cause.as_deref() == Some("HostPortConflict"))
            && monitored(m, &nodes[0])
    })
    .await;
    assert_eq!(
        node_record(&ms, &nodes[1]).unwrap().step,
        "WaitingForScrape"
    );
    assert!(!node_record(&ms, &nodes[1]).unwrap().target_up);
    let pre = condition(&ms, "PreflightPassed").unwrap();
    assert!(
        pre.reason == "PassedWithWarnings" && pre.message.contains("other-exporter"),
        "{pre:?}"
    );
    // Events on cluster-scoped objects land in `default`.
    let events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    for (node, text) in [(&nodes[1], "cannot scrape"), (&nodes[2], "other-exporter")] {
        wait::until(T, &format!("NodeNotMonitored Event on {node}"), || async {
            let list = events
                .list(&ListParams::default().fields(&format!("involvedObject.name={node}")))
                .await?;
            Ok(list.items.iter().any(|e| {
                e.reason.as_deref() == Some("NodeNotMonitored")
                    && e.message.as_deref().is_some_and(|m| m.contains(text))
            }))
        })
        .await
        .unwrap();
    }
    // Scraping works once the exporter is there: the node is monitored and the cause cleared.
    fleet.remove(&nodes[1]).unwrap();
    fleet.start_exporter(&nodes[1]).unwrap();
    let ms = wait_stack(&api, "late node monitored", |m| monitored(m, &nodes[1])).await;
    assert_eq!(node_record(&ms, &nodes[1]).unwrap().late_cause, None);
}

fn versions<K: kube::Resource>(items: &[K]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|o| {
            (
                o.meta().name.clone().unwrap_or_default(),
                o.meta().resource_version.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// A spec change prunes what is no longer wanted and rolls Prometheus on a config
/// change; an invalid spec is rejected with a condition naming each field and
/// changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn spec_changes_prune_and_invalid_specs_change_nothing() {
    let env = testkit::env("monspec").await.unwrap();
    let fleet = Fleet::start().await.unwrap();
    let nodes = env.add_nodes("n", 1, |s| s).await.unwrap();
    fleet.start_exporter(&nodes[0]).unwrap();
    let _ctl = controller(&env.ns, &fleet.url, free_port(), &[]).unwrap();
    let api = create_stack(
        &env,
        json!({ "components": ["prometheus", "grafana", "node-exporter"] }),
    )
    .await;
    let ms = wait_stack(&api, "phase Installed", |m| phase(m) == Some("Installed")).await;
    let hash0 = ms.status.as_ref().unwrap().config_hash.clone().unwrap();
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let template_hash = |d: &Deployment| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()["steward.io/config-hash"]
            .clone()
    };
    assert_eq!(
        template_hash(&deployments.get("mon-prometheus").await.unwrap()),
        hash0
    );

    // Invalid: three wrong fields, each named; nothing applied or removed.
    let before_d = versions(
        &deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items,
    );
    let before_c = versions(&cms.list(&ListParams::default()).await.unwrap().items);
    let bad = json!({ "spec": { "components": ["prometheus", "loki"], "thresholds": { "cpuPercent": 150 }, "scrapeInterval": "fast" } });
    api.patch("mon", &PatchParams::default(), &Patch::Merge(&bad))
        .await
        .unwrap();
    let ms = wait_stack(&api, "SpecValid False", |m| {
        condition(m, "SpecValid").is_some_and(|c| c.status == "False")
    })
    .await;
    let msg = &condition(&ms, "SpecValid").unwrap().message;
    for field in [
        "spec.components[1]",
        "spec.thresholds.cpuPercent",
        "spec.scrapeInterval",
    ] {
        assert!(msg.contains(field), "{msg}");
    }
    assert_eq!(phase(&ms), Some("Invalid"));
    assert_eq!(
        ms.status.as_ref().unwrap().config_hash.as_deref(),
        Some(hash0.as_str())
    );
    // The controller saw the bad spec (the condition says so); the objects are untouched.
    assert_eq!(
        versions(
            &deployments
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
        ),
        before_d
    );
    assert_eq!(
        versions(&cms.list(&ListParams::default()).await.unwrap().items),
        before_c
    );
    // Onboarding goes on while the spec is invalid: a node added now is monitored.
    let during = env.add_nodes("during", 1, |s| s).await.unwrap();
    fleet.start_exporter(&during[0]).unwrap();
    let ms = wait_stack(&api, "node added while invalid monitored", |m| {
        monitored(m, &during[0])
    })
    .await;
    assert_eq!(phase(&ms), Some("Invalid"));

    // Valid again, without grafana and with a new threshold: grafana is pruned and
    // Prometheus rolls to the new rules.
    let good = json!({ "spec": { "components": ["prometheus", "node-exporter"], "thresholds": { "cpuPercent": 90 }, "scrapeInterval": "1s" } });
    api.patch("mon", &PatchParams::default(), &Patch::Merge(&good))
        .await
        .unwrap();
    let ms = wait_stack(&api, "installed with the new spec", |m| {
        phase(m) == Some("Installed")
            && m.status.as_ref().unwrap().config_hash.as_deref() != Some(hash0.as_str())
            && condition(m, "SpecValid").is_some_and(|c| c.status == "True")
    })
    .await;
    let hash1 = ms.status.as_ref().unwrap().config_hash.clone().unwrap();
    assert_eq!(
        template_hash(&deployments.get("mon-prometheus").await.unwrap()),
        hash1
    );
    let rules = cms.get("mon-prometheus").await.unwrap().data.unwrap()["rules.yml"].clone();
    assert!(rules.contains("> 90"), "{rules}");
    wait::gone(&deployments, "mon-grafana", T).await.unwrap();
    wait::gone(&cms, "mon-steward-node-overview", T)
        .await
        .unwrap();
    assert!(
        !ms.status
            .as_ref()
            .unwrap()
            .inventory
            .iter()
            .any(|r| r.name.contains("grafana"))
    );

    // Deleting the stack leaves nothing behind: namespaced objects go with their
    // owner, the cluster-scoped RBAC is swept by the controller.
    api.delete("mon", &DeleteParams::default()).await.unwrap();
    let roles: Api<ClusterRole> = Api::all(env.client.clone());
    wait::gone(
        &roles,
        &format!("steward-monitor-{}-mon-prometheus", env.ns),
        T,
    )
    .await
    .unwrap();
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> =
        Api::all(env.client.clone());
    wait::gone(
        &bindings,
        &format!("steward-monitor-{}-mon-prometheus", env.ns),
        T,
    )
    .await
    .unwrap();
    wait::gone(&deployments, "mon-prometheus", T).await.unwrap();
    wait::gone(&cms, "mon-prometheus", T).await.unwrap();
}

async fn helm_history(ns: &str) -> Vec<serde_json::Value> {
    let bin = testkit::bin_dir().unwrap().join("helm");
    let out = tokio::process::Command::new(bin)
        .args(["history", "mon", "--namespace", ns, "--output", "json"])
        .env("KUBECONFIG", testkit::cluster().kubeconfig())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Helm mode with helm built from its Go module and a small chart with
/// kube-prometheus-stack's value keys: CRDs applied by steward first, values steward
/// generates, and a failed upgrade rolled back.
#[tokio::test(flavor = "multi_thread")]
async fn helm_mode_installs_with_generated_values_and_rolls_back_a_failed_upgrade() {
    let env = testkit::env("monhelm").await.unwrap();
    env.add_nodes("n", 1, |s| s).await.unwrap();
    let helm = testkit::bin_dir()
        .unwrap()
        .join("helm")
        .display()
        .to_string();
    let _ctl = controller(
        &env.ns,
        "http://127.0.0.1:1",
        free_port(),
        &["--helm", &helm],
    )
    .unwrap();
    let chart = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../auto-monitor/tests/charts/steward-test-stack"
    );
    let api = create_stack(
        &env,
        json!({
            "installMode": "helm",
            "profile": "kind",
            "components": ["prometheus"],
            "helm": { "chart": chart, "timeout": "60s" },
        }),
    )
    .await;
    let ms = wait_stack(&api, "helm release Installed", |m| {
        phase(m) == Some("Installed")
    })
    .await;
    assert!(
        condition(&ms, "Available")
            .unwrap()
            .message
            .contains("probes.test.steward.io"),
        "{:?}",
        ms.status
    );

    // The chart's CRD was applied by steward (server-side apply), not by helm.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(env.client.clone());
    let crd = crds.get("probes.test.steward.io").await.unwrap();
    assert!(
        crd.managed_fields()
            .iter()
            .any(|f| f.manager.as_deref() == Some("steward-monitor"))
    );

    // The values steward generated reached the chart.
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let data = cms.get("mon-values").await.unwrap().data.unwrap();
    let values: serde_json::Value = serde_json::from_str(&data["values.json"]).unwrap();
    assert_eq!(
        values["prometheus"]["prometheusSpec"]["serviceMonitorSelectorNilUsesHelmValues"],
        false
    );
    assert_eq!(
        values["prometheus"]["prometheusSpec"]["ruleSelectorNilUsesHelmValues"],
        false
    );
    assert_eq!(
        values["kubeScheduler"]["enabled"], false,
        "kind profile switches off control-plane scrapes"
    );
    assert_eq!(
        values["prometheus-node-exporter"]["prometheus"]["monitor"]["relabelings"][0]["targetLabel"],
        "node"
    );
    assert!(
        data["rules.yaml"].contains("NodeNotMonitored"),
        "{}",
        data["rules.yaml"]
    );
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let args = |d: &Deployment| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .args
            .clone()
            .unwrap()
    };
    assert!(
        args(&deployments.get("mon-prometheus").await.unwrap())
            .contains(&"--storage.tsdb.retention.time=7d".to_string())
    );

    // An upgrade whose pods cannot be scheduled is rolled back; the release is the good one again.
    let bad = json!({ "spec": { "retention": "3d", "helm": { "timeout": "10s", "values": { "prometheus": { "prometheusSpec": { "nodeSelector": { "steward.io/no-such-node": "x" } } } } } } });
    api.patch("mon", &PatchParams::default(), &Patch::Merge(&bad))
        .await
        .unwrap();
    let ms = wait_stack(&api, "helm upgrade failed", |m| phase(m) == Some("Failed")).await;
    let c = condition(&ms, "Available").unwrap();
    assert_eq!(c.reason, "HelmFailed", "{c:?}");
    let history = helm_history(&env.ns).await;
    let last = history.last().unwrap();
    assert_eq!(last["status"], "deployed", "{history:?}");
    assert!(
        last["description"].as_str().unwrap().contains("Rollback"),
        "{history:?}"
    );
    let d = deployments.get("mon-prometheus").await.unwrap();
    assert!(
        args(&d).contains(&"--storage.tsdb.retention.time=7d".to_string()),
        "{:?}",
        args(&d)
    );
}

/// Pre-flight runs before anything is applied: storage asked for on a cluster without
/// a default StorageClass blocks the install with the reason, and nothing exists.
#[tokio::test(flavor = "multi_thread")]
async fn a_blocking_preflight_finding_applies_nothing() {
    let env = testkit::env("monpre").await.unwrap();
    env.add_nodes("n", 1, |s| s).await.unwrap();
    let _ctl = controller(&env.ns, "http://127.0.0.1:1", free_port(), &[]).unwrap();
    let api = create_stack(&env, json!({ "storage": { "size": "1Gi" } })).await;
    let ms = wait_stack(&api, "phase Failed", |m| phase(m) == Some("Failed")).await;
    let c = condition(&ms, "PreflightPassed").unwrap();
    assert_eq!(c.status, "False");
    assert!(c.message.contains("no default StorageClass"), "{c:?}");
    let st = ms.status.unwrap();
    assert!(st.inventory.is_empty(), "{:?}", st.inventory);
    assert!(
        st.preflight
            .iter()
            .any(|f| f.check == "storage" && f.severity == "blocking")
    );
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    assert!(cms.get_opt("mon-prometheus").await.unwrap().is_none());
}
