//! steward monitors steward: the scrape jobs the controller writes into the stack's
//! ConfigMap, loaded by a real Prometheus (the one built from the pinned module,
//! with Kubernetes discovery) discovering the test cluster's pods. kwok pod IPs do
//! not answer, so the proof is what Prometheus discovered and kept, with which
//! labels and address, not a sample (the real-node suite scrapes real pods).

#![allow(clippy::unwrap_used)]

mod monitor_support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams};
use monitor_support::{Proc, config_map_data, controller, create_stack, free_port};
use serde_json::{Value, json};
use testkit::wait;

fn pod(name: &str, labels: Value, annotations: Value, port: Value) -> Pod {
    wait::from_json(json!({
        "metadata": { "name": name, "labels": labels, "annotations": annotations },
        "spec": {
            "containers": [{ "name": "c", "image": "registry.invalid/c:1", "ports": [port] }],
        },
    }))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stack_discovers_steward_by_the_charts_labels_and_pods_by_annotations() {
    let env = testkit::env("monself").await.unwrap();
    env.add_nodes("n", 1, |s| s).await.unwrap();
    let _ctl = controller(&env.ns, "http://127.0.0.1:1", free_port(), &[]).unwrap();
    create_stack(&env, json!({ "components": ["prometheus"] })).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let config: Value =
        serde_saphyr::from_str(&config_map_data(&cms, "mon-prometheus", "prometheus.yml").await)
            .unwrap();
    // The two jobs as generated, pointed from outside the cluster at the test's
    // API server and namespace (in a pod, the ServiceAccount does both).
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let jobs: Vec<Value> = config["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["job_name"] == "steward" || j["job_name"] == "kubernetes-pods")
        .cloned()
        .map(|mut j| {
            j["kubernetes_sd_configs"][0]["kubeconfig_file"] = json!(kubeconfig);
            j["kubernetes_sd_configs"][0]["namespaces"] = json!({ "names": [env.ns] });
            j["scrape_interval"] = json!("1s");
            j
        })
        .collect();
    assert_eq!(jobs.len(), 2, "{config}");

    let chart_labels = json!({
        "app.kubernetes.io/part-of": "steward",
        "app.kubernetes.io/component": "monitor",
    });
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let admin = json!({ "name": "admin", "containerPort": 9095 });
    let scrape = json!({ "prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/m" });
    for p in [
        // The chart's pod, also annotated: scraped once, by the steward job.
        pod(
            "steward-monitor-0",
            chart_labels.clone(),
            scrape.clone(),
            admin.clone(),
        ),
        pod(
            "annotated",
            json!({ "app": "x" }),
            scrape,
            json!({ "name": "http", "containerPort": 8080 }),
        ),
        pod(
            "plain",
            json!({ "app": "y" }),
            json!({}),
            json!({ "name": "admin", "containerPort": 9095 }),
        ),
    ] {
        let p = Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                node_selector: Some(env.node_selector()),
                tolerations: Some(vec![env.toleration()]),
                ..p.spec.unwrap()
            }),
            ..p
        };
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let ours = ["steward-monitor-0", "annotated", "plain"];
    let running = |p: &&Pod| {
        ours.contains(&p.metadata.name.as_deref().unwrap_or_default())
            && p.status
                .as_ref()
                .is_some_and(|s| s.phase.as_deref() == Some("Running") && s.pod_ip.is_some())
    };
    wait::list(
        &pods,
        &Default::default(),
        Duration::from_secs(60),
        "3 pods Running with an IP",
        |ps| ps.iter().filter(running).count() == 3,
    )
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let doc = json!({ "global": { "scrape_interval": "1s" }, "scrape_configs": jobs });
    std::fs::write(
        dir.path().join("p.yml"),
        serde_json::to_string(&doc).unwrap(),
    )
    .unwrap();
    let port = free_port();
    let _prom = Proc::spawn(
        Command::new(testkit::bin_dir().unwrap().join("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.path().join("p.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
        dir.path().join("prometheus.log"),
    );
    let url = format!("http://127.0.0.1:{port}/api/v1/targets?state=active");
    let targets = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let t = targets.clone();
    let found = wait::until(Duration::from_secs(60), "2 active targets", || {
        let (t, url) = (t.clone(), url.clone());
        async move {
            let v: Value = testkit::http().get(&url).send().await?.json().await?;
            let list = v["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let n = list.len();
            *t.lock().unwrap() = list;
            Ok(n >= 2)
        }
    })
    .await;
    let list = targets.lock().unwrap().clone();
    found.unwrap_or_else(|e| panic!("{e}: {list:?}"));
    let all = pods.list(&Default::default()).await.unwrap().items;
    let ip = |name: &str| -> String {
        all.iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .and_then(|p| p.status.clone()?.pod_ip)
            .unwrap()
    };
    let steward_ip = ip("steward-monitor-0");
    let annotated_ip = ip("annotated");
    let by_pod =
        |pod: &str| -> Vec<&Value> { list.iter().filter(|t| t["labels"]["pod"] == pod).collect() };
    let s = by_pod("steward-monitor-0");
    assert_eq!(
        s.len(),
        1,
        "the chart's pod is scraped exactly once: {list:?}"
    );
    assert_eq!(s[0]["labels"]["job"], "steward");
    assert_eq!(s[0]["labels"]["component"], "monitor");
    assert_eq!(s[0]["labels"]["namespace"], json!(env.ns));
    assert_eq!(
        s[0]["scrapeUrl"],
        json!(format!("http://{steward_ip}:9095/metrics"))
    );
    let a = by_pod("annotated");
    assert_eq!(a.len(), 1, "{list:?}");
    assert_eq!(a[0]["labels"]["job"], "kubernetes-pods");
    assert_eq!(
        a[0]["scrapeUrl"],
        json!(format!("http://{annotated_ip}:8080/m"))
    );
    assert!(
        by_pod("plain").is_empty(),
        "a pod neither labelled nor annotated: {list:?}"
    );
}
