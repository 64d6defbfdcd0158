//! `steward drain` and `steward karpenter allocate-rate` end to end: the real control
//! plane, a real Prometheus scraping Karpenter-shaped metrics computed from the
//! cluster, a Slack receiver, and the `steward` binary as people run it.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;
mod watch_support;

use std::time::Duration;

use common::{Generation, karpenter_exporter, slack_receiver, state, steward, unschedulable};
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
        let mut args: Vec<String> = vec!["drain".into()];
        args.extend(self.flags());
        args.extend(extra.iter().map(|s| s.to_string()));
        if !extra.contains(&"--timeout") {
            args.extend(["--timeout".to_string(), "60s".to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        steward(&args, &self.kubeconfig).await
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

#[tokio::test]
async fn drain_moves_workloads_off_the_oldest_nodes_and_reports_to_slack() {
    let ctx = setup("drain", Generation::V1).await;
    let pool = ctx.pool_nodes("a", 3, "4").await;
    ctx.deployment("web", 6, "100m").await;
    ctx.pdb("web", json!({ "maxUnavailable": 1 })).await;
    let _: StatefulSet = ctx
        .apply(json!({ "metadata": { "name": "db" }, "spec": { "replicas": 2, "serviceName": "db", "selector": { "matchLabels": { "app": "db" } }, "template": ctx.pod_template("db", "200m") } }))
        .await;
    ctx.ready_pods("db", 2).await;
    let _: DaemonSet = ctx.apply(json!({ "metadata": { "name": "agent" }, "spec": { "selector": { "matchLabels": { "app": "agent" } }, "template": ctx.pod_template("agent", "50m") } })).await;
    ctx.ready_pods("agent", 3).await;
    ctx.spare_nodes(2).await;
    ctx.ready_pods("agent", 5).await;
    ctx.metrics_ready().await;
    let slack = slack_receiver(false).await;

    // Watch the PDB-guarded Deployment for the whole drain: never fewer than 5 of 6 Ready.
    let pods: Api<Pod> = Api::namespaced(ctx.env.client.clone(), &ctx.env.ns);
    let pdb_watch = watch_support::Invariant::start(
        "web pods Ready",
        pods,
        kube::runtime::watcher::Config::default().labels("app=web"),
        |ps| {
            let ready = ps.values().filter(|p| pod_ready(p)).count();
            (ready < 5).then(|| {
                format!("the PDB (maxUnavailable 1) was violated: only {ready} of 6 Ready")
            })
        },
    )
    .await;

    let (ok, stdout, stderr) = ctx
        .drain(&["--slack-webhook-url", &slack.url, "-o", "json"])
        .await;
    assert!(ok, "drain failed:\n{stderr}\n{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["allocation"]["generation"], "v1");
    assert_eq!(report["plan"]["candidates"], 3);
    let count = report["plan"]["count"].as_u64().unwrap();
    // Low allocation: (99 - rate) / 100 > 0.67, so floor(3 x rate) = 2.
    assert_eq!(count, 2, "{}", report["plan"]);
    let drained: Vec<String> = report["plan"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(drained, pool[..2].to_vec(), "not the oldest nodes");
    for n in &drained {
        let node = ctx.node(n).await;
        assert!(unschedulable(&node), "{n} not cordoned");
        assert_eq!(state(&node).as_deref(), Some("drained"));
        assert!(
            ctx.workload_pods_on(n).await.is_empty(),
            "{n} still holds workload pods"
        );
    }
    assert!(
        !unschedulable(&ctx.node(&pool[2]).await),
        "the third node was cordoned"
    );
    // StatefulSet pods keep their names wherever they went; DaemonSet pods stay.
    let db: Vec<String> = ctx
        .ready_pods("db", 2)
        .await
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert!(
        db.contains(&"db-0".to_string()) && db.contains(&"db-1".to_string()),
        "{db:?}"
    );
    ctx.ready_pods("web", 6).await;

    let texts = slack.texts();
    assert!(texts.len() >= 4, "{texts:?}");
    assert!(
        texts[0].contains("Node drain started")
            && texts[0].contains("*sim*")
            && texts[0].contains(&ctx.pool)
            && texts[0].contains("3 nodes")
            && texts[0].contains("draining 2"),
        "{}",
        texts[0]
    );
    for n in &drained {
        assert!(
            texts
                .iter()
                .any(|t| t.contains(n) && t.contains("drained in")),
            "no per-node post for {n}: {texts:?}"
        );
    }
    assert!(
        texts
            .last()
            .unwrap()
            .contains("finished: 2/2 nodes drained"),
        "{texts:?}"
    );
    pdb_watch.finish();
}

#[tokio::test]
async fn allocate_rate_reads_both_metric_generations_alike() {
    // 2 nodes x 4 cpu = 8; Deployment 4 x 500m = 2; DaemonSet 2 x 250m = 0.5 -> 31.25 %.
    for generation in [Generation::V1, Generation::Legacy] {
        let ctx = setup("alloc", generation).await;
        ctx.pool_nodes("a", 2, "4").await;
        ctx.deployment("web", 4, "500m").await;
        let _: DaemonSet = ctx.apply(json!({ "metadata": { "name": "agent" }, "spec": { "selector": { "matchLabels": { "app": "agent" } }, "template": ctx.pod_template("agent", "250m") } })).await;
        ctx.ready_pods("agent", 2).await;
        let q = format!(
            "sum(karpenter_nodes_total_daemon_requests{{nodepool=\"{}\",resource_type=\"cpu\"}}) > 0",
            ctx.pool
        );
        ctx.prom.wait_for_series(&q, T).await.unwrap();
        let mut args = vec![
            "karpenter".to_string(),
            "allocate-rate".into(),
            "-o".into(),
            "json".into(),
        ];
        args.extend(ctx.flags().into_iter().take(4));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = steward(&args, &ctx.kubeconfig).await;
        assert!(ok, "{stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        let want = match generation {
            Generation::V1 => "v1",
            Generation::Legacy => "legacy",
        };
        assert_eq!(v["generation"], want);
        assert_eq!(v["cpu"]["usage_cores"], 8.0);
        assert_eq!(
            v["cpu"]["allocate_rate_percent"], 31.25,
            "{generation:?}: {v}"
        );

        let mut text_args = args.clone();
        text_args.retain(|a| *a != "-o" && *a != "json");
        let (_, text, _) = steward(&text_args, &ctx.kubeconfig).await;
        assert!(
            text.contains("allocate rate 31 %") && text.contains("8 vCPU"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn unreachable_prometheus_stops_before_any_cordon() {
    let ctx = setup("noprom", Generation::V1).await;
    let pool = ctx.pool_nodes("a", 2, "4").await;
    let closed = format!(
        "http://127.0.0.1:{}",
        // Held for this test binary: nothing else can start listening there.
        testkit::free_port()
    );
    let (ok, stdout, stderr) = steward(
        &[
            "drain",
            "--nodepool-name",
            &ctx.pool,
            "--prometheus-address",
            &closed,
            "--min-batch",
            "2",
        ],
        &ctx.kubeconfig,
    )
    .await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains(&closed) && stderr.contains("karpenter_nodepools_usage"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{stderr}"
    );
    ctx.assert_untouched(&pool, "touched despite the failed query")
        .await;
}

#[tokio::test]
async fn slack_failure_is_a_warning_not_an_abort() {
    let ctx = setup("noslack", Generation::V1).await;
    let pool = ctx.pool_nodes("a", 2, "4").await;
    ctx.deployment("web", 2, "100m").await;
    ctx.spare_nodes(1).await;
    ctx.metrics_ready().await;
    let slack = slack_receiver(true).await;
    let (ok, stdout, stderr) = ctx
        .drain(&["--slack-webhook-url", &slack.url, "--max-batch", "1"])
        .await;
    assert!(ok, "{stderr}\n{stdout}");
    assert!(stderr.contains("Slack webhook refused"), "{stderr}");
    assert!(
        slack.texts().len() >= 3,
        "steward gave up posting: {:?}",
        slack.texts()
    );
    assert_eq!(state(&ctx.node(&pool[0]).await).as_deref(), Some("drained"));
}

#[tokio::test]
async fn dry_run_skips_do_not_disrupt_nodes_and_reports_pdbs_without_changing_anything() {
    let ctx = setup("dry", Generation::V1).await;
    let pool = ctx.pool_nodes("a", 1, "4").await;
    let _: Pod = ctx
        .apply(json!({ "metadata": { "name": "batch", "labels": { "app": "batch" }, "annotations": { "karpenter.sh/do-not-disrupt": "true" } }, "spec": ctx.pod_template("batch", "100m")["spec"] }))
        .await;
    ctx.ready_pods("batch", 1).await;
    let more = ctx.pool_nodes("b", 2, "4").await;
    ctx.deployment("solo", 1, "100m").await;
    ctx.pdb("solo", json!({ "minAvailable": 1 })).await;
    ctx.metrics_ready().await;
    let (ok, stdout, stderr) = ctx
        .drain(&["--dry-run", "--max-batch", "2", "-o", "json"])
        .await;
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    let nodes = report["plan"]["nodes"].as_array().unwrap();
    assert!(
        !nodes.iter().any(|n| n == pool[0].as_str()),
        "the do-not-disrupt node was chosen: {nodes:?}"
    );
    assert_eq!(report["plan"]["skipped"][0][0], pool[0].as_str());
    let solo_node = ctx.ready_pods("solo", 1).await[0]
        .spec
        .as_ref()
        .unwrap()
        .node_name
        .clone()
        .unwrap();
    if nodes.iter().any(|n| n == solo_node.as_str()) {
        let findings = report["findings"].to_string();
        assert!(
            findings.contains("pdb_blocks") && findings.contains("single replica"),
            "{findings}"
        );
    }
    ctx.assert_untouched(&[pool, more].concat(), "dry run touched")
        .await;
}

#[tokio::test]
async fn a_busy_nodepool_drains_nothing() {
    let ctx = setup("busy", Generation::V1).await;
    let pool = ctx.pool_nodes("a", 2, "1").await;
    ctx.deployment("big", 2, "995m").await;
    ctx.metrics_ready().await;
    let (ok, stdout, stderr) = ctx.drain(&[]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("nothing to drain"), "{stdout}");
    assert!(
        stdout.contains("drain count = floor(2 x -0.00) = -1 -> 0")
            || stdout.contains("-> 0 after clamping"),
        "{stdout}"
    );
    for n in &pool {
        assert!(!unschedulable(&ctx.node(n).await));
    }
}

#[tokio::test]
async fn problem_pods_are_deleted_without_waiting_on_their_pdb() {
    let ctx = setup("problem", Generation::V1).await;
    let pool = ctx.pool_nodes("a", 1, "4").await;
    ctx.deployment("crashy", 1, "100m").await;
    // minAvailable 100 % would block an eviction forever.
    ctx.pdb("crashy", json!({ "minAvailable": "100%" })).await;
    let crashy = ctx.ready_pods("crashy", 1).await.remove(0);
    let pods: Api<Pod> = Api::namespaced(ctx.env.client.clone(), &ctx.env.ns);
    let status = json!({ "status": { "containerStatuses": [{ "name": "c", "image": "registry.invalid/c:1", "imageID": "", "ready": false, "restartCount": 7,
        "state": { "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 5m0s" } } }] } });
    pods.patch_status(
        &crashy.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .unwrap();
    let mut failed = ctx.pod_template("failed", "10m")["spec"].clone();
    failed["restartPolicy"] = json!("Never");
    let _: Pod = ctx.apply(json!({ "metadata": { "name": "failed", "annotations": { "steward.io/sim-exit-code": "1", "steward.io/sim-run-duration": "100ms" } }, "spec": failed })).await;
    wait::object(&pods, "failed", T, "pod Failed", |p: &Pod| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    })
    .await
    .unwrap();
    ctx.spare_nodes(1).await;
    ctx.metrics_ready().await;

    let (ok, stdout, stderr) = ctx.drain(&["--nodes", &pool[0], "--timeout", "30s"]).await;
    assert!(ok, "{stderr}\n{stdout}");
    assert!(
        stderr.contains("deleted problem pod")
            && stderr.contains("CrashLoopBackOff")
            && stderr.contains("Failed"),
        "{stderr}"
    );
    assert!(ctx.workload_pods_on(&pool[0]).await.is_empty());
    ctx.ready_pods("crashy", 1).await;
}

#[tokio::test]
async fn a_pod_under_two_pdbs_fails_its_node_at_once_and_stays() {
    let ctx = setup("twopdb", Generation::V1).await;
    let pool = ctx.pool_nodes("a", 1, "4").await;
    ctx.deployment("twice", 1, "100m").await;
    ctx.deployment("free", 1, "100m").await;
    ctx.pdb("twice", json!({ "maxUnavailable": 1 })).await;
    // A second budget over the same pods: the Eviction API answers 500 for them.
    let _: PodDisruptionBudget = ctx
        .apply(json!({ "metadata": { "name": "twice-again" }, "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "app": "twice" } } } }))
        .await;
    let before = ctx.ready_pods("twice", 1).await.remove(0).uid();
    ctx.spare_nodes(1).await;
    ctx.metrics_ready().await;

    // A long timeout: the run must end on the refusal, not on the clock.
    let (ok, stdout, stderr) = ctx
        .drain(&["--nodes", &pool[0], "--timeout", "10m", "-o", "json"])
        .await;
    assert!(!ok, "an undrainable node must fail the run: {stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let node = &report["nodes"][0];
    assert_eq!(node["result"], "failed", "{node}");
    let reason = node["reason"].as_str().unwrap();
    assert!(
        reason.contains("/twice-") && reason.contains("more than one PodDisruptionBudget"),
        "{reason}\n{stderr}"
    );
    // Nothing was forced: the pod under two budgets is still there, the other moved.
    assert_eq!(ctx.ready_pods("twice", 1).await[0].uid(), before);
    let left = ctx.workload_pods_on(&pool[0]).await;
    assert!(
        left.len() == 1 && left[0].starts_with("twice-"),
        "only the pod under two budgets stays: {left:?}"
    );
}

#[tokio::test]
async fn pods_of_a_terminating_namespace_are_deleted_instead_of_evicted() {
    let ctx = setup("nsgone", Generation::V1).await;
    let pool = ctx.pool_nodes("a", 1, "4").await;
    let gone = format!("{}-gone", ctx.env.ns);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(ctx.env.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &from_json(json!({ "metadata": { "name": gone } })),
        )
        .await
        .unwrap();
    // A long grace period keeps the pod Terminating, and its namespace with it,
    // while the drain runs; eviction in that namespace is refused with 403.
    let mut spec = ctx.pod_template("slow", "100m")["spec"].clone();
    spec["terminationGracePeriodSeconds"] = json!(20);
    let pods: Api<Pod> = Api::namespaced(ctx.env.client.clone(), &gone);
    wait::until(T, "default ServiceAccount", || async {
        Ok(
            Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
                ctx.env.client.clone(),
                &gone,
            )
            .get_opt("default")
            .await?
            .is_some(),
        )
    })
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &from_json(json!({ "metadata": { "name": "slow" }, "spec": spec })),
    )
    .await
    .unwrap();
    wait::object(&pods, "slow", T, "pod Ready", pod_ready)
        .await
        .unwrap();
    ctx.metrics_ready().await;
    namespaces.delete(&gone, &Default::default()).await.unwrap();
    wait::object(&pods, "slow", T, "pod Terminating", |p: &Pod| {
        p.metadata.deletion_timestamp.is_some()
    })
    .await
    .unwrap();

    let (ok, stdout, stderr) = ctx.drain(&["--nodes", &pool[0], "--timeout", "90s"]).await;
    assert!(ok, "{stderr}\n{stdout}");
    assert!(
        stderr.contains("namespace terminating; deleted pod directly"),
        "{stderr}"
    );
    assert_eq!(state(&ctx.node(&pool[0]).await).as_deref(), Some("drained"));
    wait::gone(&pods, "slow", T).await.unwrap();
}

#[tokio::test]
async fn blocked_drain_interrupted_by_ctrl_c_rolls_back_unstarted_nodes_and_resumes() {
    let ctx = setup("resume", Generation::V1).await;
    let first = ctx.pool_nodes("a", 1, "4").await;
    ctx.deployment("solo", 1, "100m").await;
    ctx.pdb("solo", json!({ "minAvailable": 1 })).await;
    let second = ctx.pool_nodes("b", 1, "4").await;
    ctx.spare_nodes(1).await;
    ctx.metrics_ready().await;

    let mut child = ctx
        .spawn_drain_until(
            &["--max-batch", "2", "--parallel-nodes", "1"],
            "eviction blocked by PodDisruptionBudget",
        )
        .await;
    // The PDB held: the pod is still there, not terminating.
    let solo = ctx.ready_pods("solo", 1).await;
    assert_eq!(
        solo[0].spec.as_ref().unwrap().node_name.as_deref(),
        Some(first[0].as_str())
    );

    kill(child.id().unwrap(), libc_sigint());
    let status = tokio::time::timeout(T, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !status.success(),
        "an interrupted drain must not report success"
    );
    let n0 = ctx.node(&first[0]).await;
    assert!(
        unschedulable(&n0) && state(&n0).as_deref() == Some("draining"),
        "the started node must stay cordoned and marked"
    );
    let n1 = ctx.node(&second[0]).await;
    assert!(
        !unschedulable(&n1) && state(&n1).is_none(),
        "the never-started node must be uncordoned and unmarked"
    );

    // Give the budget room, then a second run resumes the interrupted node first.
    let deploys: Api<Deployment> = Api::namespaced(ctx.env.client.clone(), &ctx.env.ns);
    deploys
        .patch(
            "solo",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 2 } })),
        )
        .await
        .unwrap();
    ctx.ready_pods("solo", 2).await;
    let (ok, stdout, stderr) = ctx.drain(&["--max-batch", "1", "-o", "json"]).await;
    assert!(ok, "{stderr}\n{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["plan"]["resumed"][0], first[0].as_str());
    assert_eq!(
        state(&ctx.node(&first[0]).await).as_deref(),
        Some("drained")
    );
    assert!(ctx.workload_pods_on(&first[0]).await.is_empty());
}

fn libc_sigint() -> i32 {
    2
}

fn kill(pid: u32, sig: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn wait_for_replacements_holds_evictions_until_there_is_room() {
    let ctx = setup("room", Generation::V1).await;
    let pool = ctx.pool_nodes("a", 1, "4").await;
    ctx.deployment("web", 2, "1500m").await;
    ctx.metrics_ready().await;

    let mut child = ctx
        .spawn_drain_until(
            &[
                "--nodes",
                &pool[0],
                "--wait-for-replacements",
                "--timeout",
                "90s",
            ],
            "waiting for replacement capacity",
        )
        .await;
    // No room anywhere: nothing was evicted.
    let pods: Api<Pod> = Api::namespaced(ctx.env.client.clone(), &ctx.env.ns);
    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(
        web.len(),
        2,
        "a pod was evicted without room for its replacement"
    );
    assert!(web.iter().all(|p| p.metadata.deletion_timestamp.is_none()));

    // Room appears; the drain finishes.
    ctx.env
        .add_nodes("spare", 1, |s| s.capacity("4", "8Gi"))
        .await
        .unwrap();
    let status = tokio::time::timeout(T, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    ctx.ready_pods("web", 2).await;
    assert!(ctx.workload_pods_on(&pool[0]).await.is_empty());
}
