//! Real peers for `steward drain` tests: a Slack webhook receiver and a helper to run
//! the binary. The Karpenter-metrics stand-in lives in `testkit::karpenter`.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::routing::post;
#[allow(unused_imports)] // not every test binary uses the stand-in
pub use testkit::karpenter::{Generation, karpenter_exporter};

/// A Slack webhook receiver that records every post; `fail` makes it answer 500.
#[derive(Clone, Default)]
pub struct SlackReceiver {
    pub posts: Arc<Mutex<Vec<String>>>,
    pub url: String,
    /// The secret part of `url`.
    pub secret: String,
}

pub async fn slack_receiver(fail: bool) -> SlackReceiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The path is the webhook's secret: tests look for it in what steward prints.
    let secret = format!("s3cr3t-{}", addr.port());
    let url = format!("http://{addr}/services/T000/B000/{secret}");
    let posts = Arc::new(Mutex::new(Vec::new()));
    let state = posts.clone();
    let app = axum::Router::new().route(
        &format!("/services/T000/B000/{secret}"),
        post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let state = state.clone();
            async move {
                state
                    .lock()
                    .unwrap()
                    .push(body["text"].as_str().unwrap_or_default().to_string());
                if fail {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    SlackReceiver { posts, url, secret }
}

impl SlackReceiver {
    pub fn texts(&self) -> Vec<String> {
        self.posts.lock().unwrap().clone()
    }
}

/// Runs `steward` with args; returns (exit success, stdout, stderr).
pub async fn steward(args: &[&str], kubeconfig: &str) -> (bool, String, String) {
    let (code, stdout, stderr) = steward_exit(args, kubeconfig).await;
    (code == Some(0), stdout, stderr)
}

/// Runs `steward` with args; returns (exit status, stdout, stderr). The status
/// is `None` when a signal ended the process.
pub async fn steward_exit(args: &[&str], kubeconfig: &str) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("SLACK_WEBHOOK_URL")
        .env_remove("PROMETHEUS_ADDRESS")
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn unschedulable(n: &k8s_openapi::api::core::v1::Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

pub fn state(n: &k8s_openapi::api::core::v1::Node) -> Option<String> {
    use kube::ResourceExt;
    n.annotations().get("steward.io/drain-state").cloned()
}

/// Makes `nodes` the NodePool `pool` (label `karpenter.sh/nodepool`) and starts a
/// Prometheus scraping the Karpenter-metrics stand-in, for the real-node drains.
pub async fn real_pool(
    client: &kube::Client,
    pool: &str,
    nodes: &[&str],
) -> testkit::prometheus::Prometheus {
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    for n in nodes {
        let patch = serde_json::json!({"metadata": {"labels": {"karpenter.sh/nodepool": pool}}});
        api.patch(n, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    let exporter = karpenter_exporter(client.clone(), Generation::V1).await;
    testkit::prometheus::Prometheus::start("karpenter", &[exporter])
        .await
        .unwrap()
}

/// Cordons (`on`) or uncordons `node`, as `kubectl cordon` does.
pub async fn cordon(client: &kube::Client, node: &str, on: bool) {
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let patch = serde_json::json!({"spec": {"unschedulable": on}});
    api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}
