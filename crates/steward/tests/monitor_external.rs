//! `spec.prometheus: external` beside the real Prometheus Operator: switching a stack
//! to it removes steward's own Prometheus, keeps the ServiceMonitor and
//! PrometheusRule, names the operator Prometheus that selects them (and why another
//! does not: the operator's own generated configurations must agree), reads
//! onboarding from it and points Grafana at it.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod monitor_support;

use std::time::Duration;

use auto_monitor::crd::MonitoringStack;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use monitor_support::operator::{
    generated_config, install_operator_crds, monitoring, operator, wait_established,
};
use monitor_support::{Fleet, config_map_data, controller, create_stack, free_port};
use serde_json::json;
use testkit::wait;

const T: Duration = Duration::from_secs(120);

fn finding(ms: &MonitoringStack, check: &str) -> Option<auto_monitor::crd::PreflightFinding> {
    let s = ms.status.as_ref()?;
    s.preflight.iter().find(|f| f.check == check).cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn external_prometheus_takes_the_place_of_stewards_own() {
    let env = testkit::env("mon-ext").await.unwrap();
    install_operator_crds();
    wait_established(&env.client).await;
    let nodes = env.add_nodes("n", 1, |s| s).await.unwrap();
    let op = operator(&env.ns);

    // `op` selects steward's objects by the managed-by label; `kps` only what
    // carries `release: kps` (kube-prometheus-stack's default selectors).
    let prometheuses: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &monitoring("Prometheus", "prometheuses"),
    );
    for (name, monitors, rules) in [
        (
            "op",
            json!({ "matchExpressions": [{ "key": "app.kubernetes.io/managed-by", "operator": "In", "values": ["steward-monitor"] }] }),
            json!({}),
        ),
        (
            "kps",
            json!({ "matchLabels": { "release": "kps" } }),
            json!({ "matchLabels": { "release": "kps" } }),
        ),
    ] {
        let prom: DynamicObject = wait::from_json(json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
            "metadata": { "name": name },
            "spec": { "replicas": 1, "serviceMonitorSelector": monitors, "ruleSelector": rules,
                      "tolerations": [env.toleration()] },
        }));
        prometheuses
            .create(&PostParams::default(), &prom)
            .await
            .unwrap();
    }

    // `op`'s pods cannot run on kwok nodes: a real Prometheus scraping a real
    // node-exporter for the node stands in for them.
    let fleet = Fleet::start().await.unwrap();
    fleet.start_exporter(&nodes[0]).unwrap();
    // No --prometheus-url: onboarding reads what each stack says.
    let ctl = controller(&env.ns, "", free_port(), &[]).unwrap();
    let api = create_stack(&env, json!({})).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    wait::object(
        &deployments,
        "mon-prometheus",
        T,
        "steward's own Prometheus",
        |_| true,
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", ctl.log_text()));

    api.patch(
        "mon",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "prometheus": "external" } })),
    )
    .await
    .unwrap();
    wait::gone(&deployments, "mon-prometheus", T)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", ctl.log_text()));
    let url = format!("http://prometheus-operated.{}.svc:9090", env.ns);
    let ms = wait::object(&api, "mon", T, "the external-prometheus finding", |m| {
        finding(m, "external-prometheus").is_some_and(|f| f.message.contains(&url))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", ctl.log_text()));
    let f = finding(&ms, "external-prometheus").unwrap();
    assert_eq!(f.severity, "ok", "{f:?}");
    let (ns, msg) = (&env.ns, &f.message);
    assert!(
        msg.contains(&format!("Prometheus {ns}/op selects")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "not selecting them: {ns}/kps: serviceMonitorSelector does not match"
        )),
        "{msg}"
    );
    let inventory = &ms.status.as_ref().unwrap().inventory;
    assert!(
        !inventory.iter().any(|r| r.name.contains("prometheus")),
        "{inventory:?}"
    );
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        assert!(inventory.iter().any(|r| r.kind == kind), "{inventory:?}");
    }
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let ds = config_map_data(&cms, "mon-grafana-provisioning", "datasources.yaml").await;
    assert!(ds.contains(&url), "Grafana's data source: {ds}");

    // The operator agrees: `op`'s configuration scrapes the ServiceMonitor, `kps`'s not.
    let job = format!("serviceMonitor/{ns}/mon-node-exporter/0");
    let fail = |e: anyhow::Error| panic!("{e:#}\noperator log:\n{}", op.log_text());
    generated_config(
        &env.client,
        ns,
        "op",
        "op scrapes the ServiceMonitor",
        |t| t.contains(&job),
    )
    .await
    .unwrap_or_else(fail);
    let kps = generated_config(&env.client, ns, "kps", "kps's configuration", |_| true)
        .await
        .unwrap_or_else(fail);
    assert!(
        !kps.contains(&job),
        "kps scrapes steward's ServiceMonitor:\n{kps}"
    );

    // Onboarding reads the external Prometheus (here through spec.prometheusUrl, since
    // the operator's Service is a cluster DNS name this test cannot reach).
    api.patch(
        "mon",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "prometheusUrl": fleet.url } })),
    )
    .await
    .unwrap();
    let node = nodes[0].clone();
    wait::object(
        &api,
        "mon",
        T,
        "the node monitored from the external Prometheus",
        |m| {
            m.status.as_ref().is_some_and(|s| {
                s.nodes
                    .iter()
                    .any(|n| n.node == node && n.step == "Monitored" && n.first_sample_at.is_some())
            })
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", ctl.log_text()));
    let ds = config_map_data(&cms, "mon-grafana-provisioning", "datasources.yaml").await;
    let fleet_url = fleet.url.clone();
    wait::object(
        &cms,
        "mon-grafana-provisioning",
        T,
        "Grafana reading the external URL",
        |cm| {
            cm.data
                .as_ref()
                .and_then(|d| d.get("datasources.yaml"))
                .is_some_and(|d| d.contains(&fleet_url))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nlast: {ds}"));
    assert!(
        deployments
            .get_opt("mon-prometheus")
            .await
            .unwrap()
            .is_none()
    );
    drop(ctl);
    drop(op);
}
