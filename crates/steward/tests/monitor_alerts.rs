//! Alerts reach people (issue 19): a MonitoringStack with a Slack receiver (its
//! webhook URL in a Secret), a generic webhook for critical alerts and a third
//! receiver for warnings only, messages in Korean. The controller writes
//! Alertmanager's configuration and templates; the real Alertmanager runs them
//! with the ConfigMap and the Secret laid out on disk as the kubelet mounts them
//! (only the `/etc/alertmanager` prefix differs), the real Prometheus evaluates
//! the stack's own rules file, a real node-exporter is taken away, and a local
//! HTTP server standing in for Slack and the webhook records what arrives.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod monitor_support;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auto_monitor::crd::MonitoringStack;
use axum::routing::post;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use monitor_support::{Fleet, Proc, config_map_data, controller, create_stack, free_port};
use serde_json::{Value, json};
use testkit::wait;

const T: Duration = Duration::from_secs(90);
const NODE_DOWN_FOR: Duration = Duration::from_secs(5);
const GROUP_WAIT: Duration = Duration::from_secs(2);

/// Records every JSON body POSTed to `/slack`, `/hook` and `/warn`.
#[derive(Clone)]
struct Receiver {
    posts: Arc<Mutex<Vec<(String, Value)>>>,
    base: String,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let posts = Arc::new(Mutex::new(Vec::new()));
        let mut app = axum::Router::new();
        for path in ["/slack", "/hook", "/warn"] {
            let state = posts.clone();
            app = app.route(
                path,
                post(move |axum::Json(body): axum::Json<Value>| {
                    let state = state.clone();
                    async move { state.lock().unwrap().push((path.to_string(), body)) }
                }),
            );
        }
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { posts, base }
    }

    fn at(&self, path: &str) -> Vec<Value> {
        let posts = self.posts.lock().unwrap();
        posts
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// The webhook payload of a firing NodeDown for `node`.
fn fires_node_down(body: &Value, node: &str) -> bool {
    body["status"] == "firing"
        && body["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["labels"]["alertname"] == "NodeDown" && a["labels"]["node"] == node)
}

/// Alertmanager on `port` from the files under `dir`, as its pod would see them.
fn alertmanager(dir: &Path, port: u16) -> Proc {
    let config = dir.join("config/alertmanager.yml");
    let check = Command::new("amtool")
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "amtool refused the generated configuration: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let mut am = Command::new("prometheus-alertmanager");
    am.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // One instance: no gossip port.
        .arg("--cluster.listen-address=");
    Proc::spawn(&mut am, dir.join("alertmanager.log"))
}

#[tokio::test(flavor = "multi_thread")]
async fn node_down_reaches_slack_and_the_webhook_through_the_real_alertmanager() {
    let env = testkit::env("mon-alert").await.unwrap();
    let node = env.add_nodes("n", 1, |s| s).await.unwrap().remove(0);
    let receiver = Receiver::start().await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let slack_url = format!("{}/slack", receiver.base);
    let secret: Secret = wait::from_json(json!({
        "metadata": { "name": "slack" }, "stringData": { "url": slack_url } }));
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let _ctl = controller(&env.ns, "http://127.0.0.1:1", free_port(), &[]).unwrap();
    let stacks = create_stack(
        &env,
        json!({
            "components": ["prometheus", "alertmanager"],
            "thresholds": { "nodeDownFor": format!("{}s", NODE_DOWN_FOR.as_secs()) },
            "alerting": {
                "lang": "ko",
                "groupWait": format!("{}s", GROUP_WAIT.as_secs()),
                "receivers": [
                    { "name": "oncall", "severities": ["critical"],
                      "slack": { "webhookUrlSecret": { "name": "slack", "key": "url" }, "channel": "#ops" } },
                    { "name": "pager", "severities": ["critical"],
                      "webhook": { "url": format!("{}/hook", receiver.base) } },
                    { "name": "tickets", "severities": ["warning"],
                      "webhook": { "url": format!("{}/warn", receiver.base) } },
                ],
            },
        }),
    )
    .await;
    let installed = wait::object(
        &stacks,
        "mon",
        T,
        "the stack Installed",
        |ms: &MonitoringStack| {
            ms.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Installed")
        },
    )
    .await;
    if let Err(e) = installed {
        panic!("{e}: {:?}", stacks.get("mon").await.map(|m| m.status));
    }

    // The generated files, laid out as the kubelet mounts them into the pods.
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let am_config = config_map_data(&cms, "mon-alertmanager", "alertmanager.yml").await;
    assert!(
        !am_config.contains(&slack_url),
        "the Slack URL is a secret:\n{am_config}"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::create_dir_all(dir.path().join("secrets/slack")).unwrap();
    std::fs::write(
        dir.path().join("config/alertmanager.yml"),
        am_config.replace("/etc/alertmanager", &root),
    )
    .unwrap();
    let templates = config_map_data(&cms, "mon-alertmanager", "steward.tmpl").await;
    std::fs::write(dir.path().join("config/steward.tmpl"), templates).unwrap();
    std::fs::write(dir.path().join("secrets/slack/url"), &slack_url).unwrap();
    let am_port = free_port();
    let am = alertmanager(dir.path(), am_port);
    let http = testkit::http();
    wait::until(T, "Alertmanager ready", || {
        let http = http.clone();
        async move {
            Ok(http
                .get(format!("http://127.0.0.1:{am_port}/-/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", am.log_text()));
    let rules = config_map_data(&cms, "mon-prometheus", "rules.yml").await;
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    let rules_file = dir.path().join("rules.yml");
    let fleet = Fleet::start_with(|_| {
        format!(
            "rule_files: ['{}']\nalerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['127.0.0.1:{am_port}']\n",
            rules_file.display()
        )
    })
    .await
    .unwrap();
    fleet.start_exporter(&node).unwrap();
    let up = format!(
        "{}/api/v1/query?query=up%7Bnode%3D%22{node}%22%7D%3D%3D1",
        fleet.url
    );
    wait::until(T, "the node scraped", || {
        let (http, up) = (http.clone(), up.clone());
        async move {
            let v: Value = http.get(&up).send().await?.json().await?;
            Ok(v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty()))
        }
    })
    .await
    .unwrap();

    // The node goes away.
    let down = Instant::now();
    fleet.stop_exporter(&node);
    wait::until(T, "a firing NodeDown at Slack and at the webhook", || {
        let (r, node) = (receiver.clone(), node.clone());
        async move {
            let slack = !r.at("/slack").is_empty();
            Ok(slack && r.at("/hook").iter().any(|b| fires_node_down(b, &node)))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", am.log_text()));
    eprintln!(
        "NodeDown for {node} at the receivers {:.1} s after its exporter stopped (for {} s + group wait {} s + scrape and evaluation every 1 s)",
        down.elapsed().as_secs_f64(),
        NODE_DOWN_FOR.as_secs(),
        GROUP_WAIT.as_secs()
    );
    // Slack's incoming-webhook shape, in Korean, naming the node and the alert.
    let slack = receiver.at("/slack").remove(0);
    assert_eq!(slack["channel"], "#ops", "{slack}");
    let attachment = &slack["attachments"][0];
    let title = attachment["title"].as_str().unwrap_or_default();
    let text = attachment["text"].as_str().unwrap_or_default();
    assert_eq!(title, "[발생:1] NodeDown", "{slack}");
    let line = format!(
        "발생: NodeDown (critical) 노드 {node}: {node}의 node-exporter가 수집에 응답하지 않습니다"
    );
    assert!(text.contains(&line), "{slack}");
    // Warnings only: a critical alert never reaches it.
    assert!(
        receiver
            .at("/warn")
            .iter()
            .all(|b| !fires_node_down(b, &node))
    );
}
