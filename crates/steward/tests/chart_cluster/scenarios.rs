//! The four end-to-end scenarios, each a local process started with the chart's
//! own arguments and environment, authenticated only as the chart's
//! ServiceAccount. Each returns the process's /metrics text.

use std::process::Stdio;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use testkit::TestEnv;
use testkit::prometheus::Prometheus;
use testkit::wait;

use crate::chart_support::{LocalAddr, args, replace_flag};
use crate::common::{Generation, SlackReceiver, karpenter_exporter, slack_receiver};
use crate::monitor_support::Fleet;
use crate::{REL, Release, T};

/// The peers the scenarios need, made before the install (the values name them).
pub struct Peers {
    pub slack: SlackReceiver,
    pub gd_app: TestEnv,
    pub mon: TestEnv,
    pub mon_node: String,
    pub fleet: Fleet,
    pub otto: TestEnv,
    pub pool: TestEnv,
    pub prom: Prometheus,
    pub addr: LocalAddr,
    pub webhook_port: u16,
}

impl Peers {
    pub async fn start() -> Self {
        let gd_app = crate::gd_support::setup("gd-app").await;
        let mon = testkit::env("mon").await.unwrap();
        let mon_node = mon.add_nodes("n", 1, |s| s).await.unwrap().remove(0);
        let fleet = Fleet::start().await.unwrap();
        fleet.start_exporter(&mon_node).unwrap();
        let otto = testkit::env("otto").await.unwrap();
        otto.add_nodes("n", 2, |s| s).await.unwrap();
        let pool = testkit::env("pool").await.unwrap();
        let exporter = karpenter_exporter(pool.client.clone(), Generation::V1).await;
        let prom = Prometheus::start("karpenter", &[exporter]).await.unwrap();
        let name = pool.ns.clone();
        pool.add_nodes("a", 2, |s| {
            s.label("karpenter.sh/nodepool", &name)
                .capacity("4", "16Gi")
        })
        .await
        .unwrap();
        pool.add_nodes("spare", 1, |s| s.capacity("4", "16Gi"))
            .await
            .unwrap();
        crate::gd_support::web(&pool, "web", 2, false, json!({})).await;
        prom.wait_for_series(
            &format!("karpenter_nodes_total_pod_requests{{nodepool=\"{name}\"}}"),
            T,
        )
        .await
        .unwrap();
        Self {
            slack: slack_receiver(false).await,
            gd_app,
            mon,
            mon_node,
            fleet,
            otto,
            pool,
            prom,
            addr: LocalAddr::new(),
            webhook_port: testkit::free_port(),
        }
    }

    /// The release's values: every system on, placed on this test's nodes.
    pub fn values(&self) -> Value {
        json!({
            "gracefulDrain": {
                "enabled": true,
                "agent": { "enabled": true, "networkPolicy": { "enabled": true } },
                // Not enforced here (no CNI), but the API server validates them.
                "networkPolicy": { "enabled": true },
                "watchNamespace": self.gd_app.ns,
                // A loaded machine must not turn the 429 the test expects into a 201.
                "webhook": { "timeoutSeconds": 30 },
                "restoreBackoff": "3s",
                "config": { "version": 1, "selector": { "annotations": { "vpa-managed": "true" } },
                            "defaults": { "minWait": "1s", "maxWait": "20s", "delay": "2s" } },
            },
            "monitor": { "enabled": true, "pollInterval": "500ms", "networkPolicy": { "enabled": true } },
            "ottoscaler": {
                "enabled": true,
                "workerNamespace": self.otto.ns,
                "networkPolicy": { "enabled": true },
                "retention": "2s",
                "workerClasses": { "default_class": "ci", "classes": { "ci": {
                    "requests": { "cpu": "100m", "memory": "64Mi" },
                    "node_selector": self.otto.node_selector(),
                    "tolerations": [self.otto.toleration()],
                } } },
            },
            "drain": {
                "enabled": true,
                "nodepoolName": self.pool.ns,
                "clusterName": "sim",
                "prometheus": { "address": self.prom.url() },
                "slack": { "existingSecret": "slack" },
                "timeout": "2m",
                "networkPolicy": { "enabled": true },
            },
        })
    }
}

/// Starts `steward args` as ServiceAccount `sa_suffix` of the release.
pub(crate) async fn start(
    rel: &Release,
    sa_suffix: &str,
    args: &[String],
) -> (tokio::process::Child, std::path::PathBuf) {
    let kubeconfig = rel.kubeconfig(sa_suffix).await;
    let log = rel
        .dir
        .path()
        .join(format!("{}.log", sa_suffix.trim_start_matches('-')));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .env("KUBE_CONFIG", "local")
        .env("POD_NAMESPACE", &rel.ns)
        .env("POD_NAME", format!("{REL}-steward{sa_suffix}-0"))
        .env("RUST_LOG", "info")
        .env("STEWARD_LOG_FORMAT", "json")
        .env_remove("SLACK_WEBHOOK_URL")
        .env_remove("PROMETHEUS_ADDRESS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, log)
}

async fn ready(admin: &str, log: &std::path::Path) {
    let http = testkit::http();
    let url = format!("http://{admin}/readyz");
    wait::until(T, &format!("{url} ready"), || async {
        Ok(http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
}

pub(crate) async fn metrics(admin: &str) -> String {
    testkit::http()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A graceful drain of a `vpa-managed` pod, through the chart's webhook
/// configuration and Service; steward keeps only its caBundle.
pub async fn graceful_drain(rel: &Release, peers: &Peers) -> String {
    let admin = format!("127.0.0.1:{}", testkit::free_port());
    let a = args(rel.obj("Deployment", "-graceful-drain"));
    let a = replace_flag(&a, "--admin-addr", &admin);
    let a = replace_flag(
        &a,
        "--webhook-addr",
        &format!("{}:{}", peers.addr.ip, peers.webhook_port),
    );
    // The chart's Service gets an endpoint here, owned by it (uninstall removes both).
    let name = format!("{REL}-steward-graceful-drain");
    let svc = Api::<Service>::namespaced(rel.client.clone(), &rel.ns)
        .get(&name)
        .await
        .unwrap();
    let slice: EndpointSlice = wait::from_json(json!({
        "metadata": { "name": format!("{name}-local"), "labels": {
            "kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "chart-test" },
            "ownerReferences": [{ "apiVersion": "v1", "kind": "Service", "name": name, "uid": svc.uid().unwrap() }] },
        "addressType": "IPv4",
        "endpoints": [{ "addresses": [peers.addr.ip], "conditions": { "ready": true } }],
        "ports": [{ "name": "webhook", "port": peers.webhook_port, "protocol": "TCP" }],
    }));
    Api::<EndpointSlice>::namespaced(rel.client.clone(), &rel.ns)
        .create(&PostParams::default(), &slice)
        .await
        .unwrap();
    let (child, log) = start(rel, "-graceful-drain", &a).await;
    ready(&admin, &log).await;

    // The chart's configuration now trusts steward's CA; Helm's labels stay.
    let vwc = Api::<ValidatingWebhookConfiguration>::all(rel.client.clone())
        .get(&name)
        .await
        .unwrap();
    let hook = &vwc.webhooks.as_ref().unwrap()[0];
    assert!(
        hook.client_config
            .ca_bundle
            .as_ref()
            .is_some_and(|b| !b.0.is_empty()),
        "no caBundle"
    );
    assert_eq!(hook.client_config.service.as_ref().unwrap().name, name);
    assert_eq!(vwc.labels()["app.kubernetes.io/managed-by"], "Helm");
    let managers: Vec<String> = vwc
        .managed_fields()
        .iter()
        .filter_map(|f| f.manager.clone())
        .collect();
    assert!(
        managers.iter().any(|m| m == "steward-graceful-drain")
            && managers.iter().any(|m| m == "helm"),
        "{managers:?}"
    );

    // An eviction of a targeted pod goes to the webhook through the Service (429:
    // steward drains it), then steward evicts it itself.
    let pods = crate::gd_support::web(&peers.gd_app, "web", 2, true, json!({})).await;
    let (pod, uid) = (pods[0].name_any(), pods[0].uid().unwrap());
    crate::gd_support::start_drain(&peers.gd_app, &pod).await;
    let api = crate::gd_support::pods(&peers.gd_app);
    wait::until(T, "the drained pod evicted by steward", || async {
        Ok(api
            .get_opt(&pod)
            .await?
            .is_none_or(|p| p.uid().as_deref() != Some(uid.as_str())))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    // In-place advice: a VPA in Recreate mode on a cluster that resizes in place.
    crate::gd_support::vpa(&peers.gd_app, "web").await;
    let mut m = String::new();
    wait::until(T, "the in-place advice gauge", || {
        let admin = admin.clone();
        async move {
            Ok(metrics(&admin)
                .await
                .contains("steward_graceful_drain_vpa_inplace_candidates{"))
        }
    })
    .await
    .unwrap();
    m.push_str(&metrics(&admin).await);
    assert!(m.contains("decision=\"deny_start_drain\""), "{m}");
    assert!(
        m.contains("steward_graceful_drain_outcomes_total{outcome="),
        "{m}"
    );
    // steward gone, the API server cannot call the webhook: the next eviction
    // passes without grace (failurePolicy Ignore) and the API server counts it,
    // which StewardGracefulDrainWebhookBypassed alerts on.
    drop(child);
    let next = api
        .list(&kube::api::ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    let other = next
        .iter()
        .find(|p| p.name_any() != pod && p.metadata.deletion_timestamp.is_none())
        .unwrap()
        .name_any();
    wait::until(T, "an eviction let through without the webhook", || async {
        Ok(crate::gd_support::evict_code(&api, &other).await == 201)
    })
    .await
    .unwrap();
    m
}

/// A MonitoringStack installed and a node onboarded; deleting the stack removes
/// what steward made, cluster-scoped roles too.
pub async fn monitor(rel: &Release, peers: &Peers) -> String {
    use auto_monitor::crd::MonitoringStack;
    let admin = format!("127.0.0.1:{}", testkit::free_port());
    let mut a = replace_flag(
        &args(rel.obj("Deployment", "-monitor")),
        "--admin-addr",
        &admin,
    );
    // Outside the cluster, onboarding is read from the test's Prometheus.
    a.push(format!("--prometheus-url={}", peers.fleet.url));
    let (_child, log) = start(rel, "-monitor", &a).await;
    ready(&admin, &log).await;
    let env = &peers.mon;
    let ms: MonitoringStack = wait::from_json(json!({
        "apiVersion": "steward.io/v1alpha1", "kind": "MonitoringStack", "metadata": { "name": "mon" },
        "spec": { "nodeSelector": env.node_selector(),
                  "placement": { "nodeSelector": env.node_selector(), "tolerations": [env.toleration()] },
                  "scrapeInterval": "1s", "onboardingDeadline": "5s" } }));
    let api: Api<MonitoringStack> = Api::namespaced(env.client.clone(), &env.ns);
    api.create(&PostParams::default(), &ms).await.unwrap();
    let node = peers.mon_node.clone();
    wait::object(
        &api,
        "mon",
        T,
        "the node onboarded",
        |m: &MonitoringStack| {
            m.status.as_ref().is_some_and(|s| {
                s.phase.as_deref() == Some("Installed")
                    && s.nodes.iter().any(|n| {
                        n.node == node && n.step == "Monitored" && n.first_sample_at.is_some()
                    })
            })
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let m = metrics(&admin).await;
    assert!(
        m.contains("steward_monitor_nodes{step=\"Monitored\"} 1"),
        "{m}"
    );
    api.delete("mon", &DeleteParams::foreground())
        .await
        .unwrap();
    let roles: Api<ClusterRole> = Api::all(env.client.clone());
    let role = format!("steward-monitor-{}-mon-prometheus", env.ns);
    wait::until(T, "the stack's ClusterRole removed by steward", || async {
        Ok(roles.get_opt(&role).await?.is_none())
    })
    .await
    .unwrap();
    m
}

/// A pipeline of two stages run through the chart's ottoscaler, token from the
/// chart-generated Secret, worker classes from the chart's ConfigMap.
pub async fn ottoscaler(rel: &Release, peers: &Peers) -> String {
    let admin = format!("127.0.0.1:{}", testkit::free_port());
    let port = testkit::free_port();
    let secret = Api::<Secret>::namespaced(rel.client.clone(), &rel.ns)
        .get(&format!("{REL}-steward-ottoscaler-token"))
        .await
        .unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    assert_eq!(token.len(), 48);
    let token_file = rel.dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let cm = Api::<ConfigMap>::namespaced(rel.client.clone(), &rel.ns)
        .get(&format!("{REL}-steward-ottoscaler"))
        .await
        .unwrap();
    let workers = rel.dir.path().join("workers.yaml");
    std::fs::write(&workers, &cm.data.unwrap()["workers.yaml"]).unwrap();
    let a = args(rel.obj("Deployment", "-ottoscaler"));
    let a = replace_flag(&a, "--admin-addr", &admin);
    let a = replace_flag(&a, "--listen", &format!("127.0.0.1:{port}"));
    let a = replace_flag(&a, "--token-file", token_file.to_str().unwrap());
    let a = replace_flag(&a, "--config", workers.to_str().unwrap());
    let (_child, log) = start(rel, "-ottoscaler", &a).await;
    ready(&admin, &log).await;
    let file = rel.dir.path().join("pipeline.yaml");
    let stage = |name: &str, dep: &str| {
        format!(
            "  - name: {name}\n    image: registry.invalid/ci:1\n    command: [make, {name}]\n{dep}    annotations: {{ steward.io/sim-exit-code: \"0\" }}\n"
        )
    };
    std::fs::write(
        &file,
        format!(
            "name: chart\nstages:\n{}{}",
            stage("build", ""),
            stage("test", "    depends_on: [build]\n")
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args([
            "ottoscaler",
            "run",
            file.to_str().unwrap(),
            "--server",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env("OTTOSCALER_TOKEN", &token)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pipeline run:\n{stdout}\n{}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // The run's record lived in the worker namespace (the Role's only one) and is
    // deleted after `retention` (2 s here): nothing of it outlives the release.
    let cms: Api<ConfigMap> = Api::namespaced(peers.otto.client.clone(), &peers.otto.ns);
    let records = kube::api::ListParams::default().labels("steward.io/ottoscaler=record");
    wait::until(
        T,
        "the finished run's record deleted after retention",
        || async { Ok(cms.list(&records).await?.items.is_empty()) },
    )
    .await
    .unwrap();
    // An Event per run, published as the chart's ServiceAccount (its Role).
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(peers.otto.client.clone(), &peers.otto.ns);
    wait::until(
        T,
        "the run's PipelineStarted and PipelineSucceeded Events",
        || async {
            let reasons: Vec<String> = events
                .list(&kube::api::ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|e| e.reporting_controller.as_deref() == Some("steward-ottoscaler"))
                .filter_map(|e| e.reason)
                .collect();
            Ok(reasons.iter().any(|r| r == "PipelineStarted")
                && reasons.iter().any(|r| r == "PipelineSucceeded"))
        },
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(peers.otto.client.clone(), &peers.otto.ns);
    assert!(
        pods.list(&kube::api::ListParams::default().labels("steward.io/ottoscaler=worker"))
            .await
            .unwrap()
            .items
            .iter()
            .all(|p| p.metadata.deletion_timestamp.is_some()),
        "workers left"
    );
    let m = metrics(&admin).await;
    assert!(m.contains("steward_ottoscaler_runs_total{outcome="), "{m}");
    m
}
