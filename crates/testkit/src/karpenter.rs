//! A stand-in for Karpenter's metrics, used where Karpenter itself does not run: on
//! every scrape it computes Karpenter's series from the cluster's real nodes (label
//! `karpenter.sh/nodepool`) and pods, in either generation's shape, each labelled
//! `source="steward-test-exporter"` so nobody mistakes it for Karpenter. Like
//! Karpenter's, its NodePool usage metric is the nodes' capacity and its
//! `karpenter_nodes_allocatable` their allocatable.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use steward_kube::pod::is_finished as finished;
use steward_kube::quantity::{parse_bytes, parse_cpu, pod_request};

/// Which Karpenter generation's series to serve.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Generation {
    /// v1.x: `karpenter_nodepools_usage`, pod requests include daemons.
    V1,
    /// Before 1.0: `karpenter_nodepool_usage`, pod requests exclude daemons.
    Legacy,
}

/// Serves Karpenter-shaped metrics on a random loopback port; returns `host:port`.
pub async fn karpenter_exporter(client: kube::Client, generation: Generation) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding loopback");
    let addr = listener.local_addr().expect("bound address").to_string();
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
        let status = n.status.clone().unwrap_or_default();
        let cap = status.capacity.unwrap_or_default();
        let alloc = status.allocatable.unwrap_or_default();
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
            let sum = |ps: &[&Pod]| ps.iter().map(|p| pod_request(p, res)).sum::<f64>();
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
                "karpenter_nodes_allocatable{{{labels}}} {}\n",
                alloc.get(res).map_or(0.0, parse)
            );
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

/// Karpenter itself, with its kwok cloud provider (`sigs.k8s.io/karpenter/kwok`,
/// built by `hack/controlplane/build.sh`): real NodePools, NodeClaims, nodes and
/// `karpenter_*` metrics. Killed on drop.
#[derive(Debug)]
pub struct Karpenter {
    child: std::process::Child,
    metrics: String,
}

impl Karpenter {
    /// Applies Karpenter's CRDs and starts it against the test cluster.
    pub async fn start(client: &kube::Client) -> anyhow::Result<Self> {
        use anyhow::Context;
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        use kube::api::{Patch, PatchParams};
        let bins = crate::bin_dir()?;
        let crds_dir = bins.join("../karpenter-crds");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&crds_dir)
            .with_context(|| format!("reading {}", crds_dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let crd: CustomResourceDefinition =
                serde_saphyr::from_str(&std::fs::read_to_string(&path)?)
                    .with_context(|| format!("parsing {}", path.display()))?;
            let name = crd.name_any();
            crds.patch(
                &name,
                &PatchParams::apply("testkit").force(),
                &Patch::Apply(&crd),
            )
            .await
            .with_context(|| format!("applying CRD {name}"))?;
            names.push(name);
        }
        for name in &names {
            crate::wait::crd_established(client, name, std::time::Duration::from_secs(30)).await?;
        }
        let (metrics, health) = (steward_sim::free_port()?, steward_sim::free_port()?);
        let log = std::fs::File::create(
            std::env::temp_dir().join(format!("steward-karpenter-{}.log", std::process::id())),
        )?;
        let child = std::process::Command::new(bins.join("karpenter-kwok"))
            .env("KUBECONFIG", crate::cluster().kubeconfig())
            .env("SYSTEM_NAMESPACE", "kube-system")
            .env("DISABLE_LEADER_ELECTION", "true")
            .env("KUBERNETES_MIN_VERSION", "1.19.0-0")
            .env("METRICS_PORT", metrics.to_string())
            .env("HEALTH_PROBE_PORT", health.to_string())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting karpenter-kwok")?;
        let k = Self {
            child,
            metrics: format!("127.0.0.1:{metrics}"),
        };
        let http = crate::http();
        crate::wait::until(
            std::time::Duration::from_secs(60),
            "Karpenter /metrics",
            || async {
                Ok(http
                    .get(format!("http://{}/metrics", k.metrics))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()))
            },
        )
        .await?;
        Ok(k)
    }

    /// `host:port` of Karpenter's metrics endpoint.
    pub fn metrics_addr(&self) -> &str {
        &self.metrics
    }
}

impl Drop for Karpenter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cluster-scoped API of one of Karpenter's kinds: `NodePool`, `NodeClaim`
/// (`karpenter.sh/v1`) or `KWOKNodeClass` (`karpenter.kwok.sh/v1alpha1`).
pub fn api(client: &kube::Client, kind: &str) -> Api<kube::api::DynamicObject> {
    use kube::core::{ApiResource, GroupVersionKind};
    let (group, version, plural) = match kind {
        "KWOKNodeClass" => ("karpenter.kwok.sh", "v1alpha1", "kwoknodeclasses"),
        "NodeClaim" => ("karpenter.sh", "v1", "nodeclaims"),
        _ => ("karpenter.sh", "v1", "nodepools"),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// The budget that keeps Karpenter's own consolidation away.
pub fn quiet() -> serde_json::Value {
    serde_json::json!({ "nodes": "0", "reasons": ["Empty", "Underutilized"] })
}

/// A KWOKNodeClass and a NodePool named `pool` of 4-cpu kwok instances (at most
/// 40 cpu) with `budgets`; Karpenter consolidates only empty nodes, after an hour.
pub async fn node_pool(
    client: &kube::Client,
    pool: &str,
    budgets: serde_json::Value,
) -> anyhow::Result<()> {
    use kube::api::PostParams;
    use serde_json::json;
    let class = json!({ "apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass", "metadata": { "name": pool } });
    api(client, "KWOKNodeClass")
        .create(&PostParams::default(), &crate::wait::from_json(class))
        .await?;
    let nodepool = json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": { "name": pool },
        "spec": {
            "template": { "spec": {
                "requirements": [
                    { "key": "kubernetes.io/os", "operator": "In", "values": ["linux"] },
                    { "key": "karpenter.kwok.sh/instance-cpu", "operator": "In", "values": ["4"] }
                ],
                "nodeClassRef": { "group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": pool }
            } },
            "limits": { "cpu": 40 },
            "disruption": { "consolidationPolicy": "WhenEmpty", "consolidateAfter": "1h", "budgets": budgets }
        }
    });
    api(client, "NodePool")
        .create(&PostParams::default(), &crate::wait::from_json(nodepool))
        .await?;
    Ok(())
}

/// A Deployment `name` (pods labelled `app: <name>`, with `annotations`) of
/// `replicas` pods requesting `cpu` and 1Gi on `pool`'s nodes, 1 s grace period,
/// under a PDB `maxUnavailable: 1`, in `ns`; returns once they are all Ready.
pub async fn workload(
    client: &kube::Client,
    ns: &str,
    name: &str,
    pool: &str,
    (replicas, cpu): (usize, &str),
    annotations: serde_json::Value,
) -> anyhow::Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::api::PostParams;
    use serde_json::json;
    let deploy: Deployment = crate::wait::from_json(json!({
        "metadata": { "name": name },
        "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name }, "annotations": annotations },
                "spec": { "terminationGracePeriodSeconds": 1, "nodeSelector": { "karpenter.sh/nodepool": pool },
                    "containers": [{ "name": "c", "image": "registry.invalid/c:1",
                        "resources": { "requests": { "cpu": cpu, "memory": "1Gi" } } }] } } }
    }));
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await?;
    let pdb: PodDisruptionBudget = crate::wait::from_json(
        json!({ "metadata": { "name": name }, "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "app": name } } } }),
    );
    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pdb)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    crate::wait::list(
        &pods,
        &ListParams::default().labels(&format!("app={name}")),
        std::time::Duration::from_secs(180),
        &format!("{replicas} {name} pods Ready on Karpenter nodes"),
        |ps| ps.iter().filter(|p| crate::wait::pod_ready(p)).count() == replicas,
    )
    .await?;
    Ok(())
}

/// Whether a node counts against a disruption budget, as Karpenter counts it
/// (being deleted, or tainted `karpenter.sh/disrupted`), or is cordoned (a
/// drain's first step on it). The watches of the rotation test and benchmark.
pub fn disrupted(n: &Node) -> bool {
    let spec = n.spec.as_ref();
    n.metadata.deletion_timestamp.is_some()
        || spec.and_then(|s| s.unschedulable).unwrap_or(false)
        || spec
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|ts| ts.iter().any(|t| t.key == "karpenter.sh/disrupted"))
}
