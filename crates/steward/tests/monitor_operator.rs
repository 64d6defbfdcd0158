//! `steward monitor` next to the real Prometheus Operator: with the operator's CRDs
//! installed (from the same Go module as the operator binary), the embedded install
//! also writes a ServiceMonitor and a PrometheusRule; the CRD schemas accept them and
//! the operator selects them for a Prometheus with empty selectors, which is seen in
//! the configuration and rule files the operator generates.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod monitor_support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use auto_monitor::crd::MonitoringStack;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use monitor_support::{Proc, controller, free_port};
use serde_json::json;
use testkit::wait;

const T: Duration = Duration::from_secs(120);

fn bin_dir() -> PathBuf {
    testkit::bin_dir().unwrap()
}

/// Applies every CRD of the operator's module.
fn install_operator_crds() {
    let dir = bin_dir().join("../prometheus-operator-crds");
    let dir = dir.display().to_string();
    let args = ["apply", "--server-side", "--force-conflicts", "-f", &dir];
    monitor_support::kubectl("applying the operator CRDs", &args);
}

/// Waits until the CRDs the test uses are Established. (`kubectl wait` gives up at once
/// on a CRD whose status has no conditions yet.)
async fn wait_established(client: &kube::Client) {
    for name in [
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "prometheuses.monitoring.coreos.com",
    ] {
        wait::crd_established(client, name, T).await.unwrap();
    }
}

/// The real prometheus-operator for one namespace, talking to the simulated API server
/// with the admin client certificate (it has no kubeconfig flag).
fn operator(ns: &str) -> Proc {
    let cluster = testkit::cluster();
    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let user = kc.auth_infos[0].auth_info.clone().unwrap();
    let ca = kc.clusters[0]
        .cluster
        .clone()
        .unwrap()
        .certificate_authority;
    let file = |v: Option<String>| v.unwrap();
    let log = std::env::temp_dir().join(format!("prometheus-operator-{ns}-{}.log", free_port()));
    let mut operator = Command::new(bin_dir().join("prometheus-operator"));
    operator
        .arg(format!("--apiserver={}", cluster.server()))
        .arg(format!(
            "--ca-file={}",
            file(ca)
        ))
        .arg(format!("--cert-file={}", file(user.client_certificate)))
        .arg(format!("--key-file={}", file(user.client_key)))
        .arg(format!("--namespaces={ns}"))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg("--prometheus-config-reloader=quay.io/prometheus-operator/prometheus-config-reloader:v0.85.0");
    Proc::spawn(&mut operator, log)
}

fn monitoring(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", kind),
        plural,
    )
}

fn gunzip(data: &[u8]) -> String {
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gzip -dc failed");
    String::from_utf8(out.stdout).unwrap()
}

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
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    wait::until(
        T,
        "the operator's configuration to scrape the ServiceMonitor",
        || {
            let secrets = secrets.clone();
            let job = job.clone();
            let last = last.clone();
            async move {
                let Some(s) = secrets.get_opt("prometheus-op").await? else {
                    return Ok(false);
                };
                let Some(gz) = s.data.as_ref().and_then(|d| d.get("prometheus.yaml.gz")) else {
                    return Ok(false);
                };
                let text = gunzip(&gz.0);
                let found = text.contains(&job);
                *last.lock().unwrap() = text;
                Ok(found)
            }
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nconfig:\n{}\noperator log:\n{}",
            last.lock().unwrap(),
            op.log_text()
        )
    });
    let config = last.lock().unwrap().clone();
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
