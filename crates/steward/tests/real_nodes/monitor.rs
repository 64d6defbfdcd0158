//! Monitor, really (issue 15): a MonitoringStack whose Prometheus (built static from
//! the pinned module, `hack/realnode/images.sh`) runs in a pod on a real node and
//! finds the node-exporter pods on both real nodes through the **generated
//! `kubernetes_sd` configuration** (in-cluster: the pod's ServiceAccount token and
//! `KUBERNETES_SERVICE_HOST`), scrapes them on the nodes' own addresses (host
//! network), and `steward monitor run` records each node as monitored from what
//! that Prometheus says. No file discovery anywhere.
//!
//! There is no cluster DNS on real nodes, so steward reads Prometheus at its
//! Service's cluster IP (`spec.prometheusUrl`, as a user without DNS would set it)
//! instead of the `<name>-prometheus.<ns>.svc` default.

use std::process::Stdio;

use auto_monitor::crd::MonitoringStack;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testkit::realnode::REAL_NODE_LABEL;
use testkit::wait::{self, from_json};

use super::{T, cluster};

/// The images `hack/realnode/images.sh` packs, named by their module versions.
fn image(component: &str, module_dir: &str, module: &str) -> String {
    let go_mod = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../hack/controlplane")
        .join(module_dir)
        .join("go.mod");
    let text = std::fs::read_to_string(&go_mod).unwrap();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("require {module} ")))
        .unwrap_or_else(|| panic!("{} pins no {module}", go_mod.display()));
    format!("steward.local/{component}:{}", version.trim())
}

/// The namespace's pods and Events, for a failure message.
async fn describe(client: &kube::Client, ns: &str) -> String {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let mut out = String::new();
    for p in pods
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let st = p.status.unwrap_or_default();
        out += &format!(
            "pod {:?} phase {:?} containers {:?}\n",
            p.metadata.name, st.phase, st.container_statuses
        );
    }
    for e in events
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        out += &format!(
            "event {:?} {:?}: {:?}\n",
            e.involved_object.name, e.reason, e.message
        );
    }
    out
}

#[tokio::test]
async fn prometheus_in_a_pod_discovers_the_real_nodes_exporters_through_kubernetes_sd() {
    let _shared = super::shared().await;
    let env = super::env("rn-mon").await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let admin = testkit::free_port();
    let _controller = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args([
            "monitor",
            "run",
            "--namespace",
            &env.ns,
            "--poll-interval",
            "500ms",
        ])
        .arg(format!("--admin-addr=127.0.0.1:{admin}"))
        .env("KUBECONFIG", cluster().kubeconfig())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Monitored: real nodes carrying this test's label. real-node-1 has it from the
    // start; real-node-2 joins (and leaves) later, which is the onboarding measured.
    let on = format!("steward.io/{}", env.ns);
    label(&env.client, NODES[0], &on, true).await;
    let monitored = json!({REAL_NODE_LABEL: "true", &on: "on"});
    let real = json!({REAL_NODE_LABEL: "true"});
    let stack: MonitoringStack = from_json(json!({
        "apiVersion": "steward.io/v1alpha1", "kind": "MonitoringStack", "metadata": {"name": "mon"},
        "spec": {
            "components": ["prometheus", "node-exporter"],
            "images": {
                "prometheus": image("prometheus", "prometheus", "github.com/prometheus/prometheus"),
                "node-exporter": image("node-exporter", "node-exporter", "github.com/prometheus/node_exporter"),
            },
            "nodeSelector": monitored,
            "placement": {"nodeSelector": real},
            "scrapeInterval": "1s",
            "onboardingDeadline": "60s",
        }
    }));
    auto_monitor::apply_crd(&env.client).await.unwrap();
    let stacks: Api<MonitoringStack> = Api::namespaced(env.client.clone(), &env.ns);
    stacks.create(&PostParams::default(), &stack).await.unwrap();
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), &env.ns);
    let svc = wait::object(&svcs, "mon-prometheus", T, "the Prometheus Service", |s| {
        s.spec
            .as_ref()
            .and_then(|s| s.cluster_ip.as_ref())
            .is_some()
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; controller log:\n{}",
            std::fs::read_to_string(log.path()).unwrap()
        )
    });
    let url = format!("http://{}:9090", svc.spec.unwrap().cluster_ip.unwrap());
    stacks
        .patch(
            "mon",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"prometheusUrl": url}})),
        )
        .await
        .unwrap();
    let nodes = vec![NODES[0].to_string()];
    let done = wait::object(
        &stacks,
        "mon",
        std::time::Duration::from_secs(180),
        "real-node-1 monitored",
        |ms| {
            nodes.iter().all(|n| {
                ms.status.as_ref().is_some_and(|s| {
                    s.nodes.iter().any(|r| {
                        &r.node == n && r.step == "Monitored" && r.first_sample_at.is_some()
                    })
                })
            })
        },
    )
    .await;
    if let Err(e) = done {
        panic!(
            "{e}; controller log:\n{}\n{}",
            std::fs::read_to_string(log.path()).unwrap(),
            describe(&env.client, &env.ns).await
        );
    }
    // What Prometheus itself says, through the same cluster IP: its node-exporter
    // targets came from kubernetes_sd (pod metadata among their discovered labels),
    // one per real node, up, at the node's address.
    let targets = prom(&url, "targets", &[("state", "active")]).await.unwrap();
    let exporters: Vec<&Value> = targets["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["labels"]["job"] == "node-exporter")
        .collect();
    let mut seen: Vec<String> = exporters
        .iter()
        .map(|t| {
            assert_eq!(t["health"], "up", "{t}");
            let d = &t["discoveredLabels"];
            assert!(
                d["__meta_kubernetes_pod_name"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("mon-node-exporter-")),
                "{t}"
            );
            t["labels"]["node"].as_str().unwrap().to_string()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, nodes, "{targets}");
    assert_eq!(cluster().real_nodes(), NODES, "the cluster's real nodes");
    let config = prom(&url, "status/config", &[]).await.unwrap();
    let yaml = config["data"]["yaml"].as_str().unwrap();
    assert!(
        yaml.contains("kubernetes_sd_configs") && !yaml.contains("file_sd_configs"),
        "{yaml}"
    );
    // Real exporter data: each node's kernel as node_exporter read it.
    let q = prom(
        &url,
        "query",
        &[("query", "count by (node) (node_uname_info)")],
    )
    .await
    .unwrap();
    assert_eq!(
        q["data"]["result"].as_array().map(Vec::len),
        Some(nodes.len()),
        "{q}"
    );
    // Onboarding through discovery: real-node-2 enters the selector (a label, as a
    // node joining a labelled pool would), the DaemonSet starts its exporter,
    // kubernetes_sd finds the pod, Prometheus scrapes it. From the label to the
    // first successful sample Prometheus stored; the node then leaves again.
    let node_ip = Api::<k8s_openapi::api::core::v1::Node>::all(env.client.clone())
        .get(NODES[1])
        .await
        .unwrap()
        .status
        .and_then(|s| s.addresses)
        .into_iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .unwrap();
    let mut took = Vec::new();
    for _ in 0..cycles() {
        let t0 = jiff::Timestamp::now();
        label(&env.client, NODES[1], &on, true).await;
        let pods: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(env.client.clone(), &env.ns);
        let lp = kube::api::ListParams::default()
            .labels("app.kubernetes.io/name=node-exporter")
            .fields(&format!("spec.nodeName={}", NODES[1]));
        // Any `up == 1` of real-node-2 at or after the label is the new exporter:
        // the last one was gone before it. (Not by the `pod` label: with host
        // networking a target Prometheus still holds for the last pod reaches the
        // new exporter at the same address.)
        let first = first_up_sample(&url, NODES[1], t0).await;
        took.push(first.duration_since(t0).as_secs_f64());
        // steward records the join from what that Prometheus says.
        wait::object(
            &stacks,
            "mon",
            T,
            "steward's record of real-node-2's first sample",
            |m| {
                m.status.iter().flat_map(|s| &s.nodes).any(|r| {
                    r.node == NODES[1]
                        && r.first_sample_at
                            .as_deref()
                            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                            .is_some_and(|t| t >= t0)
                })
            },
        )
        .await
        .unwrap();
        label(&env.client, NODES[1], &on, false).await;
        wait::list(
            &pods,
            &lp,
            T,
            "real-node-2's exporter gone",
            <[_]>::is_empty,
        )
        .await
        .unwrap();
        // And its process: nothing answers on the node's exporter port before the
        // next join, so the next `up == 1` can only come from the next exporter.
        wait::until(T, "real-node-2's exporter port closed", || async {
            Ok(tokio::net::TcpStream::connect((node_ip.as_str(), 9100))
                .await
                .is_err())
        })
        .await
        .unwrap();
    }
    took.sort_by(f64::total_cmp);
    // Nearest rank: the smallest value with at least p% of the joins at or below it.
    let rank =
        |p: f64| took[((p / 100.0 * took.len() as f64).ceil() as usize).clamp(1, took.len()) - 1];
    eprintln!(
        "monitor on real nodes: label to first sample through kubernetes_sd over {} joins: p50 {:.2} s, p99 {:.2} s, max {:.2} s, min {:.2} s ({took:?})",
        took.len(),
        rank(50.0),
        rank(99.0),
        took[took.len() - 1],
        took[0]
    );
    label(&env.client, NODES[0], &on, false).await;
}

/// `GET <url>/api/v1/<path>` of Prometheus's HTTP API, as JSON.
async fn prom(url: &str, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
    Ok(testkit::http()
        .get(format!("{url}/api/v1/{path}"))
        .query(query)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

const NODES: [&str; 2] = ["real-node-1", "real-node-2"];

/// `STEWARD_REAL_MONITOR_JOINS` (default 3): how many times real-node-2 joins.
fn cycles() -> usize {
    std::env::var("STEWARD_REAL_MONITOR_JOINS").map_or(3, |v| v.parse().unwrap())
}

/// Sets (or removes) label `key=on` on `node`.
async fn label(client: &kube::Client, node: &str, key: &str, on: bool) {
    let value = if on { json!("on") } else { Value::Null };
    Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {key: value}}})),
        )
        .await
        .unwrap();
}

/// The timestamp of the first `up == 1` sample Prometheus stored for `node`'s
/// exporter after `since`, read from the raw samples (not a poll's arrival time).
async fn first_up_sample(url: &str, node: &str, since: jiff::Timestamp) -> jiff::Timestamp {
    let found = std::sync::Arc::new(std::sync::Mutex::new(None));
    let q = format!("up{{job=\"node-exporter\",node=\"{node}\"}}[10m]");
    let what = format!("a sample from {node}'s exporter");
    let waited = wait::until(std::time::Duration::from_secs(120), &what, || {
        let (found, q) = (found.clone(), q.clone());
        let url = url.to_string();
        async move {
            let v = prom(&url, "query", &[("query", q.as_str())]).await?;
            let first = v["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|series| series["values"].as_array().cloned().unwrap_or_default())
                .filter(|s| s[1] == "1")
                .filter_map(|s| s[0].as_f64())
                .filter_map(|t| jiff::Timestamp::from_millisecond((t * 1000.0) as i64).ok())
                .filter(|t| *t >= since)
                .min();
            *found.lock().unwrap() = first;
            Ok(first.is_some())
        }
    })
    .await;
    if let Err(e) = waited {
        let all = prom(url, "query", &[("query", "up{job=\"node-exporter\"}")]).await;
        panic!("{e}; the exporters' series now: {all:?}");
    }
    found.lock().unwrap().unwrap()
}
