//! `steward monitor` next to the real Prometheus Operator: with the operator's CRDs
//! installed (from the same Go module as the operator binary), the embedded install
//! also writes a ServiceMonitor and a PrometheusRule; the CRD schemas accept them and
//! the operator selects them for a Prometheus with empty selectors, which is seen in
//! the configuration and rule files the operator generates.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod monitor_support;

use std::time::Duration;

use auto_monitor::crd::MonitoringStack;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use monitor_support::operator::{
    generated_config, install_operator_crds, monitoring, operator, wait_established,
};
use monitor_support::{controller, free_port};
use serde_json::json;
use testkit::wait;

const T: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn operator_accepts_and_selects_the_service_monitor_and_rule() {
    let env = testkit::env("mon-op").await.unwrap();
    install_operator_crds();
    wait_established(&env.client).await;
    env.add_nodes("n", 1, |s| s).await.unwrap();
    let op = operator(&env.ns);

    // An operator-managed Prometheus selecting every monitor and rule of its namespace.
    let prometheuses: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &monitoring("Prometheus", "prometheuses"),
    );
    let prom: DynamicObject = wait::from_json(json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": { "name": "op" },
        "spec": {
            "replicas": 1,
            "serviceMonitorSelector": {},
            "ruleSelector": {},
            "tolerations": [env.toleration()],
        },
    }));
    prometheuses
        .create(&PostParams::default(), &prom)
        .await
        .unwrap();

    // No Prometheus answers onboarding queries here; the install does not need one.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let ctl = controller(&env.ns, &dead, free_port(), &[]).unwrap();
    auto_monitor::apply_crd(&env.client).await.unwrap();
    let stacks: Api<MonitoringStack> = Api::namespaced(env.client.clone(), &env.ns);
    let ms: MonitoringStack = wait::from_json(json!({
        "apiVersion": "steward.io/v1alpha1", "kind": "MonitoringStack",
        "metadata": { "name": "mon" },
        "spec": {
            "nodeSelector": env.node_selector(),
            "placement": { "nodeSelector": env.node_selector(), "tolerations": [env.toleration()] },
            "scrapeInterval": "5s",
        },
    }));
    stacks.create(&PostParams::default(), &ms).await.unwrap();

    // (a) steward wrote both objects (the API server validated them against the
    // operator's CRD schemas) and lists them in the inventory for pruning.
    let applied = wait::object(
        &stacks,
        "mon",
        T,
        "operator objects in the inventory",
        |m| {
            m.status.as_ref().is_some_and(|s| {
                ["ServiceMonitor", "PrometheusRule"]
                    .iter()
                    .all(|k| s.inventory.iter().any(|r| r.kind == *k))
            })
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\ncontroller log:\n{}", ctl.log_text()));
    assert!(
        applied
            .status
            .as_ref()
            .unwrap()
            .preflight
            .iter()
            .any(|f| f.check == "crds" && f.message.contains("ServiceMonitor")),
        "{:?}",
        applied.status
    );
    let monitors: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &monitoring("ServiceMonitor", "servicemonitors"),
    );
    let rules: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &monitoring("PrometheusRule", "prometheusrules"),
    );
    let sm = monitors.get("mon-node-exporter").await.unwrap();
    let pr = rules.get("mon-rules").await.unwrap();
    for o in [&sm, &pr] {
        let refs = o.metadata.owner_references.clone().unwrap_or_default();
        assert!(
            refs.iter()
                .any(|r| r.kind == "MonitoringStack" && r.name == "mon"),
            "{:?}",
            o.metadata
        );
        assert_eq!(
            o.metadata.labels.as_ref().unwrap()["steward.io/monitoring-stack"],
            format!("{}.mon", env.ns)
        );
    }

    // (b) the operator selected them: a scrape job for the ServiceMonitor in the
    // generated configuration, steward's alerts in the generated rule files.
    let job = format!("serviceMonitor/{}/mon-node-exporter/0", env.ns);
    let config = generated_config(
        &env.client,
        &env.ns,
        "op",
        "the operator's configuration to scrape the ServiceMonitor",
        |text| text.contains(&job),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\noperator log:\n{}", op.log_text()));
    // The node relabeling and the job taken from the Service's app.kubernetes.io/name.
    assert!(
        config.contains("__meta_kubernetes_pod_node_name") && config.contains("target_label: node"),
        "{config}"
    );
    assert!(
        config.contains("__meta_kubernetes_service_label_app_kubernetes_io_name"),
        "{config}"
    );

    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    wait::until(
        T,
        "the operator's rule files to hold steward's alerts",
        || {
            let cms = cms.clone();
            async move {
                let Some(cm) = cms.get_opt("prometheus-op-rulefiles-0").await? else {
                    return Ok(false);
                };
                let all: String = cm.data.unwrap_or_default().into_values().collect();
                Ok([
                    "NodeDown",
                    "HighCPUUsage",
                    "DiskSpaceLow",
                    "NodeNotMonitored",
                ]
                .iter()
                .all(|a| all.contains(&format!("alert: {a}"))))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\noperator log:\n{}", op.log_text()));

    // Switching node-exporter off prunes the monitor and the rule with it.
    stacks
        .patch(
            "mon",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "components": ["prometheus"] } })),
        )
        .await
        .unwrap();
    wait::gone(&monitors, "mon-node-exporter", T).await.unwrap();
    wait::gone(&rules, "mon-rules", T).await.unwrap();
    drop(ctl);
    drop(op);
}
