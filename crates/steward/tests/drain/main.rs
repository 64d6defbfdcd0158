//! `steward drain` and `steward karpenter allocate-rate` end to end: the real control
//! plane, a real Prometheus scraping Karpenter-shaped metrics computed from the
//! cluster, a Slack receiver, and the `steward` binary as people run it.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

#[path = "../common/mod.rs"]
mod common;
#[path = "../watch_support/mod.rs"]
mod watch_support;

mod evictions;
mod interrupt;
mod lock;
mod plan;

use std::time::Duration;

use common::{
    Generation, karpenter_exporter, slack_receiver, state, steward, steward_exit, unschedulable,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testkit::TestEnv;
use testkit::prometheus::Prometheus;
use testkit::wait::{self, from_json, pod_ready};

const T: Duration = Duration::from_secs(90);

/// One Event on a node, as `kubectl get events` shows it.
#[derive(Debug)]
struct NodeEvent {
    reason: String,
    type_: String,
    note: String,
}

/// The reasons of `events`, in order, without the per-pod ones: `DrainBlocked` (one
/// per pod a budget refused, as many as the race between evictions makes; [`blocked`]
/// has those) and `Evicted` (one per pod evicted).
fn reasons(events: &[NodeEvent]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e.reason.as_str())
        .filter(|r| *r != "DrainBlocked" && *r != "Evicted")
        .collect()
}

/// The notes of the `DrainBlocked` Events among `events`.
fn blocked(events: &[NodeEvent]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e.reason == "DrainBlocked")
        .map(|e| e.note.as_str())
        .collect()
}

struct Ctx {
    env: TestEnv,
    pool: String,
    kubeconfig: String,
    prom: Prometheus,
}

/// A namespace, a NodePool named after it, and a Prometheus scraping an exporter of
/// the given generation. Nodes come from `pool_nodes` and `spare_nodes`.
async fn setup(prefix: &str, generation: Generation) -> Ctx {
    let env = testkit::env(prefix).await.unwrap();
    let pool = env.ns.clone();
    let exporter = karpenter_exporter(env.client.clone(), generation).await;
    let prom = Prometheus::start("karpenter", &[exporter]).await.unwrap();
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    Ctx {
        env,
        pool,
        kubeconfig,
        prom,
    }
}

impl Ctx {
    async fn pool_nodes(&self, prefix: &str, n: usize, cpu: &str) -> Vec<String> {
        let pool = self.pool.clone();
        self.env
            .add_nodes(prefix, n, |s| {
                s.label("karpenter.sh/nodepool", &pool)
                    .capacity(cpu, "16Gi")
            })
            .await
            .unwrap()
    }

    async fn spare_nodes(&self, n: usize) -> Vec<String> {
        self.env.add_nodes("spare", n, |s| s).await.unwrap()
    }

    /// Waits until Prometheus has scraped this pool's series with `ready_pods` pods counted.
    async fn metrics_ready(&self) {
        self.prom
            .wait_for_series(
                &format!(
                    "karpenter_nodes_total_pod_requests{{nodepool=\"{}\"}}",
                    self.pool
                ),
                T,
            )
            .await
            .unwrap();
    }

    async fn apply<K>(&self, obj: Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + serde::Serialize,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.env.client.clone(), &self.env.ns);
        api.create(&PostParams::default(), &from_json(obj))
            .await
            .unwrap()
    }

    fn pod_template(&self, app: &str, cpu: &str) -> Value {
        json!({
            "metadata": { "labels": { "app": app } },
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "nodeSelector": self.env.node_selector(),
                "tolerations": [self.env.toleration()],
                "containers": [{ "name": "c", "image": "registry.invalid/c:1", "resources": { "requests": { "cpu": cpu, "memory": "64Mi" } } }]
            }
        })
    }

    async fn deployment(&self, name: &str, replicas: i32, cpu: &str) {
        let _: Deployment = self
            .apply(json!({ "metadata": { "name": name }, "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": name } }, "template": self.pod_template(name, cpu) } }))
            .await;
        self.ready_pods(name, usize::try_from(replicas).unwrap())
            .await;
    }

    /// Scales Deployment `name` to `replicas` and waits until that many are Ready.
    async fn scale(&self, name: &str, replicas: i32) {
        let deploys: Api<Deployment> = Api::namespaced(self.env.client.clone(), &self.env.ns);
        deploys
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "replicas": replicas } })),
            )
            .await
            .unwrap();
        self.ready_pods(name, usize::try_from(replicas).unwrap())
            .await;
    }

    async fn pdb(&self, name: &str, spec: Value) {
        let mut spec = spec;
        spec["selector"] = json!({ "matchLabels": { "app": name } });
        let _: PodDisruptionBudget = self
            .apply(json!({ "metadata": { "name": name }, "spec": spec }))
            .await;
        let api: Api<PodDisruptionBudget> = Api::namespaced(self.env.client.clone(), &self.env.ns);
        wait::object(&api, name, T, "PDB observed", |p: &PodDisruptionBudget| {
            p.status
                .as_ref()
                .is_some_and(|s| s.observed_generation.is_some())
        })
        .await
        .unwrap();
    }

    async fn ready_pods(&self, app: &str, n: usize) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.env.client.clone(), &self.env.ns);
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

    fn flags(&self) -> Vec<String> {
        vec![
            "--nodepool-name".into(),
            self.pool.clone(),
            "--prometheus-address".into(),
            self.prom.url().into(),
            "--cluster-name".into(),
            "sim".into(),
        ]
    }

    async fn drain(&self, extra: &[&str]) -> (bool, String, String) {
        let (code, stdout, stderr) = self.drain_exit(extra).await;
        (code == Some(0), stdout, stderr)
    }

    /// `steward drain` with the test's flags and `extra`: (exit status, stdout, stderr).
    async fn drain_exit(&self, extra: &[&str]) -> (Option<i32>, String, String) {
        let mut args: Vec<String> = vec!["drain".into()];
        args.extend(self.flags());
        args.extend(extra.iter().map(|s| s.to_string()));
        if !extra.contains(&"--timeout") {
            args.extend(["--timeout".to_string(), "60s".to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        steward_exit(&args, &self.kubeconfig).await
    }

    /// Asserts none of `nodes` was cordoned or marked.
    async fn assert_untouched(&self, nodes: &[String], why: &str) {
        for n in nodes {
            let node = self.node(n).await;
            assert!(
                !unschedulable(&node) && state(&node).is_none(),
                "{why}: {n}"
            );
        }
    }

    /// Starts `steward drain` with these extra flags and returns once a stderr line
    /// contains `needle`; the rest of stderr is drained in the background.
    async fn spawn_drain_until(&self, extra: &[&str], needle: &str) -> tokio::process::Child {
        use tokio::io::AsyncBufReadExt;
        let mut args: Vec<String> = vec!["drain".into()];
        args.extend(self.flags());
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
            .args(&args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let found = tokio::time::timeout(T, async {
            while let Some(l) = lines.next_line().await.unwrap() {
                let hit = l.contains(needle);
                seen.push(l);
                if hit {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(found, Ok(true)),
            "steward never logged {needle:?}: {seen:?}"
        );
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        child
    }

    async fn node(&self, name: &str) -> Node {
        Api::<Node>::all(self.env.client.clone())
            .get(name)
            .await
            .unwrap()
    }

    /// The events.k8s.io/v1 Events steward recorded on the Node `node`, oldest first.
    async fn node_events(&self, node: &str) -> Vec<NodeEvent> {
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(self.env.client.clone());
        let lp = ListParams::default().fields(&format!("regarding.name={node}"));
        let mut list = events.list(&lp).await.unwrap().items;
        list.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        list.into_iter()
            .filter(|e| e.reporting_controller.as_deref() == Some("steward-node-drain"))
            .map(|e| {
                assert_eq!(
                    e.regarding.as_ref().and_then(|r| r.kind.as_deref()),
                    Some("Node"),
                    "{e:?}"
                );
                NodeEvent {
                    reason: e.reason.unwrap_or_default(),
                    type_: e.type_.unwrap_or_default(),
                    note: e.note.unwrap_or_default(),
                }
            })
            .collect()
    }

    async fn workload_pods_on(&self, node: &str) -> Vec<String> {
        let pods: Api<Pod> = Api::namespaced(self.env.client.clone(), &self.env.ns);
        let list = pods
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
            .unwrap()
            .items;
        list.into_iter()
            .filter(|p| !p.owner_references().iter().any(|o| o.kind == "DaemonSet"))
            .map(|p| p.name_any())
            .collect()
    }
}
