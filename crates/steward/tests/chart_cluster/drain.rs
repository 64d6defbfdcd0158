//! The drain scenario: a NodePool node drained by the CronJob's command line and
//! environment, as the chart's drain ServiceAccount.

use std::process::Stdio;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::Value;
use testkit::wait;

use crate::chart_support::{args, replace_flag};
use crate::scenarios::Peers;
use crate::{Release, T};

/// A NodePool node drained by the chart's command line and environment (Slack
/// URL from the Secret the values name).
pub async fn drain(rel: &Release, peers: &Peers) -> String {
    let cron = rel.obj("CronJob", "-drain");
    let container = &crate::chart_support::pod_spec(cron)["containers"][0];
    let mut env = Vec::new();
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap().to_string();
        if let Some(v) = e["value"].as_str() {
            env.push((name, v.to_string()));
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            let s = Api::<Secret>::namespaced(rel.client.clone(), &rel.ns)
                .get(r["name"].as_str().unwrap())
                .await
                .unwrap();
            let v = s.data.unwrap()[r["key"].as_str().unwrap()].0.clone();
            env.push((name, String::from_utf8(v).unwrap()));
        }
    }
    assert!(env.iter().any(|(k, _)| k == "SLACK_WEBHOOK_URL"), "{env:?}");
    let kubeconfig = rel.kubeconfig("-drain").await;
    let admin = format!("127.0.0.1:{}", testkit::free_port());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(replace_flag(&args(cron), "--metrics-addr", &admin))
        .envs(
            env.iter()
                .filter(|(k, _)| !k.starts_with("POD_") && k != "KUBE_CONFIG")
                .map(|(k, v)| (k, v)),
        )
        .env("KUBECONFIG", &kubeconfig)
        .env("KUBE_CONFIG", "local")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // A drain serves /metrics only while it runs: read it once it answers.
    let http = testkit::http();
    let url = format!("http://{admin}/metrics");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    wait::until(T, "the drain's /metrics", || {
        let (http, url, seen) = (http.clone(), url.clone(), seen.clone());
        async move {
            if let Ok(r) = http.get(&url).send().await {
                let text = r.text().await.unwrap_or_default();
                let mut s = seen.lock().unwrap();
                if !s.contains("deadline_timestamp_seconds{") {
                    *s = text;
                }
            }
            // Read while a node drains: its deadline series exists only then.
            Ok(seen
                .lock()
                .unwrap()
                .contains("steward_drain_node_deadline_timestamp_seconds{"))
        }
    })
    .await
    .unwrap();
    let m = seen.lock().unwrap().clone();
    let out = child.wait_with_output().await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "drain:\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let nodes = report["plan"]["nodes"].as_array().unwrap();
    assert!(!nodes.is_empty(), "{report}");
    for n in nodes {
        let node = Api::<k8s_openapi::api::core::v1::Node>::all(rel.client.clone())
            .get(n.as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(
            node.annotations()
                .get("steward.io/drain-state")
                .map(String::as_str),
            Some("drained")
        );
        // Written as the chart's ServiceAccount: its events.k8s.io grant is enough.
        let events = Api::<k8s_openapi::api::events::v1::Event>::all(rel.client.clone())
            .list(&ListParams::default().fields(&format!("regarding.name={}", n.as_str().unwrap())))
            .await
            .unwrap();
        let reasons: Vec<_> = events
            .items
            .iter()
            .filter(|e| e.reporting_controller.as_deref() == Some("steward-node-drain"))
            .filter_map(|e| e.reason.as_deref())
            .collect();
        assert!(
            reasons.contains(&"DrainStarted") && reasons.contains(&"Drained"),
            "{n}: {reasons:?}"
        );
    }
    assert!(!peers.slack.texts().is_empty(), "no Slack message");
    m
}
