//! Fixtures for the graceful-drain tests: the steward process, the real VPA
//! updater, the VPA CRDs, and the workload the evictions target.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testkit::TestEnv;
use testkit::wait::{self, from_json, pod_ready};
use tokio::io::AsyncBufReadExt;

pub const T: Duration = Duration::from_secs(90);

/// A free loopback port for a child to bind ([`testkit::free_port`]).
pub fn free_port() -> u16 {
    testkit::free_port()
}

/// A running `steward graceful-drain run`; killed on drop.
pub struct Steward {
    pub child: tokio::process::Child,
    pub admin: String,
    pub logs: Arc<Mutex<Vec<String>>>,
}

/// Where a test's steward lives and what it watches.
#[derive(Clone)]
pub struct StewardSpec {
    /// steward's own namespace (Lease, ConfigMap, Secret).
    pub sys_ns: String,
    /// The only namespace whose evictions reach this steward's webhook.
    pub app_ns: String,
    pub webhook_port: u16,
}

impl StewardSpec {
    pub async fn new(app: &TestEnv) -> Self {
        let sys = testkit::env("gd-sys").await.unwrap();
        Self {
            sys_ns: sys.ns,
            app_ns: app.ns.clone(),
            webhook_port: free_port(),
        }
    }

    /// Writes the configuration ConfigMap.
    pub async fn config(&self, client: &kube::Client, yaml: &str) {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &self.sys_ns);
        let cm = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "steward-graceful-drain" }, "data": { "config.yaml": yaml } });
        api.patch(
            "steward-graceful-drain",
            &PatchParams::apply("test").force(),
            &Patch::Apply(cm),
        )
        .await
        .unwrap();
    }

    /// Starts steward and waits until it is ready (webhook registered and served).
    pub async fn start(&self) -> Steward {
        self.start_with(&[]).await
    }

    /// [`Self::start`] with extra flags.
    pub async fn start_with(&self, extra: &[&str]) -> Steward {
        let admin = format!("127.0.0.1:{}", free_port());
        let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
            .args([
                "graceful-drain",
                "run",
                "--kubeconfig",
                &kubeconfig,
                "--namespace",
                &self.sys_ns,
            ])
            // The default Lease (15 s, renewed 6 s before it runs out). A 4 s one is
            // renewed only 2 s ahead, and a renewal that a loaded machine delays past
            // that loses leadership, which ends the process mid-test.
            .args(["--admin-addr", &admin, "--lease-duration", "15"])
            // The API server waits this long for the webhook before it lets the
            // eviction through (failurePolicy Ignore): with the default 3 s, a webhook
            // slowed by a loaded machine turns the 429 a test expects into a 201. The
            // tests that expect a 201 check the webhook's own count of its answers.
            .args(["--webhook-timeout", "30"])
            .args([
                "--webhook-addr",
                &format!("127.0.0.1:{}", self.webhook_port),
            ])
            .args([
                "--webhook-url",
                &format!("https://127.0.0.1:{}", self.webhook_port),
            ])
            .args(["--webhook-name", &format!("steward-gd-{}", self.app_ns)])
            // Every test binary runs several stewards at once: each drains only its
            // own test's namespace.
            .args(["--watch-namespace", &self.app_ns])
            .args(["--restore-backoff", "3s"])
            .args(extra)
            .env("RUST_LOG", "info")
            .env("STEWARD_LOG_FORMAT", "json")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let logs: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let l = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                l.lock().unwrap().push(line);
            }
        });
        let http = testkit::http();
        let url = format!("http://{admin}/readyz");
        wait::until(T, "steward graceful-drain ready", || async {
            Ok(http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}; logs: {:?}", logs.lock().unwrap()));
        Steward { child, admin, logs }
    }
}

impl Steward {
    /// The admin server's /metrics text.
    pub async fn metrics(&self) -> String {
        testkit::http()
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until a log line contains every needle.
    pub async fn wait_log(&self, needles: &[&str]) -> String {
        let mut found = String::new();
        wait::until(T, &format!("a log line with {needles:?}"), || {
            let hit = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .cloned();
            if let Some(h) = &hit {
                found = h.clone();
            }
            async move { Ok(hit.is_some()) }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}; logs: {:?}", self.logs.lock().unwrap()));
        found
    }

    /// SIGKILL: no clean-up of any kind.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// A Deployment `name` of `replicas` pods annotated `vpa-managed` (when `targeted`)
/// behind a Service of the same name; waits until all pods are Ready.
pub async fn web(
    env: &TestEnv,
    name: &str,
    replicas: i32,
    targeted: bool,
    extra_labels: Value,
) -> Vec<Pod> {
    let annotations = if targeted {
        json!({ "vpa-managed": "true" })
    } else {
        json!({})
    };
    web_with(env, name, replicas, annotations, extra_labels).await
}

/// [`web`] with the pods' annotations given.
pub async fn web_with(
    env: &TestEnv,
    name: &str,
    replicas: i32,
    annotations: Value,
    extra_labels: Value,
) -> Vec<Pod> {
    let mut labels = json!({ "app": name });
    if let Some(extra) = extra_labels.as_object() {
        for (k, v) in extra {
            labels[k] = v.clone();
        }
    }
    let deploy: Deployment = from_json(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": labels, "annotations": annotations },
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "nodeSelector": env.node_selector(),
                    "tolerations": [env.toleration()],
                    "containers": [{ "name": "c", "image": "registry.invalid/web:1", "ports": [{ "containerPort": 8080 }],
                        "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }]
                }
            }
        }
    }));
    Api::<Deployment>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let svc: Service = from_json(json!({
        "metadata": { "name": name },
        "spec": { "selector": { "app": name }, "ports": [{ "port": 80, "targetPort": 8080 }] }
    }));
    Api::<Service>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    ready_pods(env, name, usize::try_from(replicas).unwrap()).await
}

pub async fn ready_pods(env: &TestEnv, app: &str, n: usize) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    wait::list(
        &pods,
        &ListParams::default().labels(&format!("app={app}")),
        T,
        &format!("{n} Ready {app} pods"),
        |ps| ps.iter().filter(|p| pod_ready(p)).count() == n,
    )
    .await
    .unwrap()
    .into_iter()
    .filter(pod_ready)
    .collect()
}

/// The control plane's bin directory (holds `vpa-updater` and `../vpa-crds`).
pub fn bin_dir() -> PathBuf {
    testkit::bin_dir().unwrap()
}

/// Installs the VPA CRDs from the VPA module once per cluster (idempotent).
pub async fn install_vpa_crds() {
    let crds = bin_dir().join("../vpa-crds/vpa-v1-crd-gen.yaml");
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let out = tokio::process::Command::new(bin_dir().join("kubectl"))
        .args([
            "--kubeconfig",
            &kubeconfig,
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
        ])
        .arg(&crds)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "installing VPA CRDs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = testkit::cluster().client().await.unwrap();
    wait::crd_established(
        &client,
        "verticalpodautoscalers.autoscaling.k8s.io",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
}

/// A VPA in Recreate mode on Deployment `name` whose recommendation (cpu 500m,
/// bounds 400m..1) is far from the pods' 100m, so the updater evicts them.
pub async fn vpa(env: &TestEnv, name: &str) {
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let vpa = json!({
        "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
        "metadata": { "name": name, "namespace": env.ns },
        "spec": { "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                  "updatePolicy": { "updateMode": "Recreate", "minReplicas": 1 } }
    });
    kubectl_apply(&kubeconfig, &vpa, &[]).await;
    let status = json!({ "status": { "recommendation": { "containerRecommendations": [{
        "containerName": "c",
        "target": { "cpu": "500m", "memory": "64Mi" },
        "lowerBound": { "cpu": "400m", "memory": "64Mi" },
        "upperBound": { "cpu": "1", "memory": "128Mi" },
        "uncappedTarget": { "cpu": "500m", "memory": "64Mi" }
    }] }, "conditions": [{ "type": "RecommendationProvided", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z" }] } });
    let out = tokio::process::Command::new(bin_dir().join("kubectl"))
        .args([
            "--kubeconfig",
            &kubeconfig,
            "-n",
            &env.ns,
            "patch",
            "vpa",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
        ])
        .arg(status.to_string())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "VPA status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn kubectl_apply(kubeconfig: &str, obj: &Value, extra: &[&str]) {
    let mut args = vec!["--server-side"];
    args.extend_from_slice(extra);
    let out = kubectl_apply_text(kubeconfig, &obj.to_string(), &args).await;
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The real VPA updater, evicting in `ns` every 2 s; killed on drop.
pub fn vpa_updater(ns: &str) -> tokio::process::Child {
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    tokio::process::Command::new(bin_dir().join("vpa-updater"))
        .args([
            "--kubeconfig",
            &kubeconfig,
            "--vpa-object-namespace",
            ns,
            "--updater-interval",
            "2s",
        ])
        .args([
            "--use-admission-controller-status=false",
            "--min-replicas",
            "1",
            "--eviction-tolerance",
            "0.5",
        ])
        .args(["--address", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Runs `steward` with args; returns (exit success, stdout, stderr).
pub async fn steward(args: &[&str], kubeconfig: &str) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A test namespace with two kwok nodes of its own.
pub async fn setup(prefix: &str) -> TestEnv {
    let env = testkit::env(prefix).await.unwrap();
    env.add_nodes("n", 2, |s| s).await.unwrap();
    env
}

/// The test namespace's pods.
pub fn pods(env: &TestEnv) -> Api<Pod> {
    Api::namespaced(env.client.clone(), &env.ns)
}

/// The status code of an eviction as the VPA updater sends it (no DeleteOptions):
/// 201 evicted, 429 refused for now, ...
pub async fn evict_code(api: &Api<Pod>, name: &str) -> u16 {
    match api.evict(name, &kube::api::EvictParams::default()).await {
        Ok(_) => 201,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("eviction transport error: {e}"),
    }
}

/// `kubectl apply -f -` of `text` with `args`, on the test cluster; the output, whatever it is.
pub async fn kubectl_apply_text(
    kubeconfig: &str,
    text: &str,
    args: &[&str],
) -> std::process::Output {
    let mut child = tokio::process::Command::new(bin_dir().join("kubectl"))
        .args(["--kubeconfig", kubeconfig, "apply", "-f", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    child.wait_with_output().await.unwrap()
}

/// Evicts a targeted pod (429: steward takes over) and waits until it is isolated.
pub async fn start_drain(env: &TestEnv, name: &str) {
    let pods = pods(env);
    assert_eq!(
        evict_code(&pods, name).await,
        429,
        "eviction of a targeted pod"
    );
    wait::object(&pods, name, T, "pod isolated", |p: &Pod| {
        kube::ResourceExt::labels(p)
            .get("steward.io/drain")
            .map(String::as_str)
            == Some("isolated")
    })
    .await
    .unwrap();
}
