//! charts/steward on the real control plane: a server-side dry run of every
//! rendered object, `helm install`, then every component as a local process
//! authenticated only as the chart's ServiceAccount (a TokenRequest token) running
//! its end-to-end scenario with the chart's own command line, the API server's
//! audit log checked for any 403 of those accounts, the metric names of the rules
//! and dashboards checked against each component's live /metrics, `helm upgrade`,
//! and `helm uninstall` leaving nothing of the release.
//!
//! kwok has no pod network, so the chart's pods stay Pending (no node lets them
//! in) and the processes run here. The API server reaches the graceful-drain
//! webhook through the chart's own ValidatingWebhookConfiguration and Service:
//! it calls Service webhooks at an EndpointSlice endpoint (the simulated cluster
//! runs it with --enable-aggregator-routing), and the test adds one EndpointSlice,
//! owned by the chart's Service, with an address of a veth of its own.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod agent;
#[path = "../chart_support/mod.rs"]
mod chart_support;
#[path = "../common/mod.rs"]
mod common;
mod drain;
#[path = "../gd_support/mod.rs"]
mod gd_support;
#[path = "../monitor_support/mod.rs"]
mod monitor_support;
mod scenarios;
mod teardown;

use std::collections::BTreeMap;
use std::time::Duration;

use chart_support::{chart, docs, helm, tool};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

pub const REL: &str = "chart";
pub const T: Duration = Duration::from_secs(120);

/// Everything a scenario needs: the release, the rendered objects, kubeconfigs.
#[allow(missing_debug_implementations)] // kube::Client has no Debug
pub struct Release {
    pub ns: String,
    pub client: kube::Client,
    pub objs: Vec<Value>,
    pub dir: tempfile::TempDir,
    pub values: std::path::PathBuf,
}

impl Release {
    /// The installed object of `kind` named `<release>-steward<suffix>`.
    pub fn obj(&self, kind: &str, suffix: &str) -> &Value {
        chart_support::find(&self.objs, kind, &format!("{REL}-steward{suffix}"))
    }

    pub async fn kubeconfig(&self, sa_suffix: &str) -> std::path::PathBuf {
        let sa = format!("{REL}-steward{sa_suffix}");
        chart_support::sa_kubeconfig(&self.client, &self.ns, &sa, self.dir.path()).await
    }
}

pub async fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let mut child = tokio::process::Command::new(tool("kubectl"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .await
        .unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn install_crds() {
    gd_support::install_vpa_crds().await;
    let dir = testkit::bin_dir()
        .unwrap()
        .join("../prometheus-operator-crds");
    let d = dir.display().to_string();
    let (ok, _, err) = kubectl(
        &["apply", "--server-side", "--force-conflicts", "-f", &d],
        None,
    )
    .await;
    assert!(ok, "Prometheus Operator CRDs: {err}");
    let client = testkit::cluster().client().await.unwrap();
    for crd in ["servicemonitors", "podmonitors", "prometheusrules"] {
        testkit::wait::crd_established(&client, &format!("{crd}.monitoring.coreos.com"), T)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chart_installs_runs_as_its_service_accounts_upgrades_and_uninstalls() {
    testkit::enable_audit();
    let sys = testkit::env("steward").await.unwrap();
    install_crds().await;
    // Pod Security warns (server-side dry run) about anything but `restricted`.
    Api::<Namespace>::all(sys.client.clone())
        .patch(&sys.ns, &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "labels": { "pod-security.kubernetes.io/warn": "restricted" } } })))
        .await
        .unwrap();
    let peers = scenarios::Peers::start().await;
    let slack = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("slack".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(
            "url".to_string(),
            peers.slack.url.clone(),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(sys.client.clone(), &sys.ns)
        .create(&PostParams::default(), &slack)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, serde_saphyr::to_string(&peers.values()).unwrap()).unwrap();
    let (c, v) = (chart().display().to_string(), values.display().to_string());

    // A missing Secret the values name fails the install naming the key, and
    // leaves nothing: no release, no object. (key, the message names)
    let missing = [
        (
            "drain.slack.existingSecret",
            "drain.slack.existingSecret: Secret \"nope\" not found",
        ),
        (
            "ottoscaler.token.existingSecret",
            "ottoscaler.token.existingSecret: Secret \"nope\" not found",
        ),
        (
            "ottoscaler.tls.existingSecret",
            "ottoscaler.tls.existingSecret: Secret \"nope\" not found",
        ),
    ];
    for (key, message) in missing {
        let set = format!("{key}=nope");
        let (ok, _, err) = helm(&[
            "install",
            REL,
            &c,
            "-n",
            &sys.ns,
            "-f",
            &v,
            "--set",
            &set,
            "--kubeconfig",
            &kc(),
        ]);
        assert!(!ok && err.contains(message), "{key}: {err}");
        let (_, list, _) = helm(&["list", "-n", &sys.ns, "-a", "-q", "--kubeconfig", &kc()]);
        assert_eq!(list.trim(), "", "a failed install ({key}) left a release");
    }

    // Every rendered object passes the API server's own validation.
    let (ok, rendered, err) = helm(&[
        "template",
        REL,
        &c,
        "-n",
        &sys.ns,
        "-f",
        &v,
        "--kube-version",
        "1.34.4",
        "--api-versions",
        "monitoring.coreos.com/v1",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = kubectl(
        &["apply", "--server-side", "--dry-run=server", "-f", "-"],
        Some(&rendered),
    )
    .await;
    assert!(ok, "server-side dry run:\n{out}\n{err}");
    assert_eq!(out.lines().count(), docs(&rendered).len(), "{out}");
    // Pod Security `restricted` (the namespace warns): only the agent's pod violates it.
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("PodSecurity")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("container \"agent\""), "{warnings:?}");

    let (ok, out, err) = helm(&[
        "install",
        REL,
        &c,
        "-n",
        &sys.ns,
        "-f",
        &v,
        "--kubeconfig",
        &kc(),
    ]);
    assert!(ok, "helm install:\n{out}\n{err}");
    let (ok, manifest, err) = helm(&["get", "manifest", REL, "-n", &sys.ns, "--kubeconfig", &kc()]);
    assert!(ok, "{err}");
    let objs = docs(&manifest);
    assert!(
        objs.iter().any(|o| o["kind"] == "ServiceMonitor"),
        "auto: the operator API exists, so monitors are rendered"
    );
    let rel = Release {
        ns: sys.ns.clone(),
        client: sys.client.clone(),
        objs,
        dir,
        values,
    };

    let (gd, agent, mon, otto, drain) = tokio::join!(
        scenarios::graceful_drain(&rel, &peers),
        agent::agent(&rel),
        scenarios::monitor(&rel, &peers),
        scenarios::ottoscaler(&rel, &peers),
        drain::drain(&rel, &peers),
    );

    // No request of any of the chart's ServiceAccounts was forbidden.
    let mut unused = Vec::new();
    for sa in [
        "-graceful-drain",
        "-graceful-drain-agent",
        "-monitor",
        "-ottoscaler",
        "-drain",
    ] {
        let name = format!("{REL}-steward{sa}");
        let events = chart_support::audit_events(&rel.ns, &name);
        assert!(!events.is_empty(), "no request of {name} in the audit log");
        let forbidden: Vec<String> = events
            .iter()
            .filter(|e| e["responseStatus"]["code"] == 403)
            .map(chart_support::describe)
            .collect();
        assert!(
            forbidden.is_empty(),
            "{name} was refused:\n{}",
            forbidden.join("\n")
        );
        unused.extend(teardown::unused_rules(&rel, sa, &events));
    }
    eprintln!("rules no scenario used:\n  {}", unused.join("\n  "));

    // Every metric of the rules and dashboards is one a component exports.
    teardown::metric_names_exist(&rel.objs, &[&gd, &agent, &mon, &otto, &drain]).await;

    teardown::upgrade(&rel, &c).await;
    teardown::uninstall(&rel, &c).await;
}

/// The admin kubeconfig, for helm and kubectl.
pub fn kc() -> String {
    testkit::cluster().kubeconfig().display().to_string()
}
