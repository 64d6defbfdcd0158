//! Real peers for `steward drain` tests: a Prometheus scraping a Karpenter-metrics
//! exporter, and a Slack webhook receiver.
//!
//! The exporter is a stand-in for Karpenter (not built here yet): on every scrape it
//! computes Karpenter's series from the cluster's real nodes and pods, in either
//! generation's shape, labelled `source="steward-test-exporter"`.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use node_drain::plan::{parse_bytes, parse_cpu};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Generation {
    V1,
    Legacy,
}

/// Serves Karpenter-shaped metrics on a random loopback port; returns `host:port`.
pub async fn karpenter_exporter(client: kube::Client, generation: Generation) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .with_state((client, generation));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn metrics(
    State((client, generation)): State<(kube::Client, Generation)>,
) -> Result<String, StatusCode> {
    let err = |_| StatusCode::INTERNAL_SERVER_ERROR;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels("karpenter.sh/nodepool"))
        .await
        .map_err(err)?
        .items;
    let pods = Api::<Pod>::all(client)
        .list(&ListParams::default())
        .await
        .map_err(err)?
        .items;
    let mut out = String::new();
    let mut usage: BTreeMap<(String, &str), f64> = BTreeMap::new();
    for n in &nodes {
        let pool = n.labels()["karpenter.sh/nodepool"].clone();
        let cap = n
            .status
            .as_ref()
            .and_then(|s| s.capacity.clone())
            .unwrap_or_default();
        for (res, parse) in [
            ("cpu", parse_cpu as fn(&Quantity) -> f64),
            ("memory", parse_bytes),
        ] {
            *usage.entry((pool.clone(), res)).or_default() += cap.get(res).map_or(0.0, parse);
            let on: Vec<&Pod> = pods
                .iter()
                .filter(|p| {
                    p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&n.name_any())
                        && !finished(p)
                })
                .collect();
            let (daemon, other): (Vec<&Pod>, Vec<&Pod>) = on
                .into_iter()
                .partition(|p| p.owner_references().iter().any(|o| o.kind == "DaemonSet"));
            let sum = |ps: &[&Pod]| ps.iter().map(|p| requests(p, res, parse)).sum::<f64>();
            let pod_requests = match generation {
                Generation::V1 => sum(&other) + sum(&daemon),
                Generation::Legacy => sum(&other),
            };
            let labels = format!(
                "nodepool=\"{pool}\",node_name=\"{}\",resource_type=\"{res}\",source=\"steward-test-exporter\"",
                n.name_any()
            );
            out += &format!("karpenter_nodes_total_pod_requests{{{labels}}} {pod_requests}\n");
            out += &format!(
                "karpenter_nodes_total_daemon_requests{{{labels}}} {}\n",
                sum(&daemon)
            );
        }
    }
    let name = match generation {
        Generation::V1 => "karpenter_nodepools_usage",
        Generation::Legacy => "karpenter_nodepool_usage",
    };
    for ((pool, res), v) in usage {
        out += &format!(
            "{name}{{nodepool=\"{pool}\",resource_type=\"{res}\",source=\"steward-test-exporter\"}} {v}\n"
        );
    }
    Ok(out)
}

fn finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn requests(p: &Pod, res: &str, parse: fn(&Quantity) -> f64) -> f64 {
    p.spec.as_ref().map_or(0.0, |s| {
        s.containers
            .iter()
            .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get(res))
            .map(parse)
            .sum()
    })
}

/// A Slack webhook receiver that records every post; `fail` makes it answer 500.
#[derive(Clone, Default)]
pub struct SlackReceiver {
    pub posts: Arc<Mutex<Vec<String>>>,
    pub url: String,
}

pub async fn slack_receiver(fail: bool) -> SlackReceiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/services/T000/B000/XXXX",
        listener.local_addr().unwrap()
    );
    let posts = Arc::new(Mutex::new(Vec::new()));
    let state = posts.clone();
    let app = axum::Router::new().route(
        "/services/T000/B000/XXXX",
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
    SlackReceiver { posts, url }
}

impl SlackReceiver {
    pub fn texts(&self) -> Vec<String> {
        self.posts.lock().unwrap().clone()
    }
}

/// Runs `steward` with args; returns (exit success, stdout, stderr).
pub async fn steward(args: &[&str], kubeconfig: &str) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("SLACK_WEBHOOK_URL")
        .env_remove("PROMETHEUS_ADDRESS")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
