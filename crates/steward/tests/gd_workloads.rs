//! `steward graceful-drain` with StatefulSet, Job and DaemonSet pods, end to end on
//! the real control plane: the real StatefulSet, Job and DaemonSet controllers act
//! on what steward does, and a watcher records every state the pods go through.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod gd_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gd_support::{StewardSpec, T, pods, setup};
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use testkit::TestEnv;
use testkit::wait::{self, from_json, pod_ready};

const CONFIG: &str = "version: 1\ndefaults:\n  minWait: 1s\n  delay: 2s\n  maxWait: 20s\n";

async fn evict(env: &TestEnv, name: &str) -> u16 {
    gd_support::evict_code(&pods(env), name).await
}

fn pod_template(env: &TestEnv, labels: Value, annotations: Value) -> Value {
    json!({
        "metadata": { "labels": labels, "annotations": annotations },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "nodeSelector": env.node_selector(),
            "tolerations": [env.toleration()],
            "containers": [{ "name": "c", "image": "registry.invalid/app:1", "ports": [{ "containerPort": 8080 }],
                "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }]
        }
    })
}

async fn service(env: &TestEnv, name: &str, selector: Value) {
    let svc: Service = from_json(json!({
        "metadata": { "name": name },
        "spec": { "selector": selector, "ports": [{ "port": 80, "targetPort": 8080 }] }
    }));
    Api::<Service>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
}

/// Every pod state seen by a watch, for checks over the whole run.
#[derive(Clone, Default)]
struct Seen {
    /// Latest state per pod name.
    now: Arc<Mutex<BTreeMap<String, Pod>>>,
    /// Every violation found, with the pods at that moment.
    violations: Arc<Mutex<Vec<String>>>,
    /// Pod names in the order their (first) deletion was seen, with their UID.
    deletions: Arc<Mutex<Vec<(String, String)>>>,
}

fn phase(p: &Pod) -> Option<&str> {
    p.labels().get("steward.io/drain").map(String::as_str)
}

impl Seen {
    /// Watches the namespace's pods; `check` runs on every new state of the set.
    fn start(
        env: &TestEnv,
        check: impl Fn(&BTreeMap<String, Pod>) -> Option<String> + Send + 'static,
    ) -> Self {
        let seen = Self::default();
        let s = seen.clone();
        let stream = watcher(pods(env), watcher::Config::default()).applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                // The watch is part of the proof: an error or an early end is a violation.
                let p = match stream.next().await {
                    Some(Ok(p)) => p,
                    Some(Err(e)) => {
                        s.violations
                            .lock()
                            .unwrap()
                            .push(format!("the pod watch failed: {e}"));
                        return;
                    }
                    None => {
                        s.violations
                            .lock()
                            .unwrap()
                            .push("the pod watch ended".into());
                        return;
                    }
                };
                let mut now = s.now.lock().unwrap();
                let uid = p.uid().unwrap_or_default();
                if p.metadata.deletion_timestamp.is_some() {
                    let mut d = s.deletions.lock().unwrap();
                    if !d.iter().any(|(_, u)| *u == uid) {
                        d.push((p.name_any(), uid));
                    }
                }
                now.insert(p.name_any(), p);
                if let Some(v) = check(&now) {
                    s.violations.lock().unwrap().push(v);
                }
            }
        });
        seen
    }

    fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }
}

fn statefulset_violation(pods: &BTreeMap<String, Pod>) -> Option<String> {
    // Disrupted: draining past the queue, or terminating.
    let disrupted: Vec<&String> = pods
        .iter()
        .filter(|(_, p)| {
            matches!(phase(p), Some("isolated" | "evicting"))
                || p.metadata.deletion_timestamp.is_some()
        })
        .map(|(n, _)| n)
        .collect();
    if disrupted.len() > 1 {
        return Some(format!("two pods disrupted at once: {disrupted:?}"));
    }
    for (n, p) in pods {
        if phase(p).is_some() {
            let owned = p
                .owner_references()
                .iter()
                .any(|o| o.kind == "StatefulSet" && o.controller == Some(true));
            if !owned || p.labels().get("app").map(String::as_str) != Some("db") {
                return Some(format!("{n} lost its StatefulSet: {:?}", p.metadata));
            }
            if !p.finalizers().is_empty() {
                return Some(format!("{n} got a finalizer: {:?}", p.finalizers()));
            }
        }
        if phase(p) == Some("isolated") && p.labels().contains_key("serving") {
            return Some(format!("{n} isolated but still selected by the Service"));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statefulset_pods_drain_one_at_a_time_highest_ordinal_first() {
    let env = setup("gd-sts").await;
    let spec = StewardSpec::new(&env).await;
    spec.config(&env.client, CONFIG).await;
    let steward = spec.start().await;
    // The Service selects `serving`, which the StatefulSet's selector does not use:
    // that label is what isolation may remove.
    service(&env, "db", json!({ "app": "db", "serving": "yes" })).await;
    let sts: StatefulSet = from_json(json!({
        "metadata": { "name": "db" },
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "podManagementPolicy": "Parallel",
            "selector": { "matchLabels": { "app": "db" } },
            "template": pod_template(&env, json!({ "app": "db", "serving": "yes" }), json!({ "vpa-managed": "true" })),
        }
    }));
    Api::<StatefulSet>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
    let original = wait::list(
        &pods(&env),
        &ListParams::default().labels("app=db"),
        T,
        "3 Ready StatefulSet pods",
        |ps| ps.iter().filter(|p| pod_ready(p)).count() == 3,
    )
    .await
    .unwrap();
    let seen = Seen::start(&env, statefulset_violation);
    // Three evictions at once, lowest ordinal first, as an evicter might send them.
    for name in ["db-0", "db-1", "db-2"] {
        assert_eq!(evict(&env, name).await, 429, "{name}");
    }
    // A retry while queued is still refused.
    assert_eq!(evict(&env, "db-0").await, 429);
    let uids: Vec<String> = original.iter().map(|p| p.uid().unwrap()).collect();
    wait::list(
        &pods(&env),
        &ListParams::default().labels("app=db"),
        Duration::from_secs(120),
        "all three pods replaced and Ready",
        |ps| {
            ps.len() == 3
                && ps.iter().all(|p| {
                    pod_ready(p)
                        && p.metadata.deletion_timestamp.is_none()
                        && !uids.contains(&p.uid().unwrap())
                })
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}; logs: {:?}", steward.logs.lock().unwrap()));
    let order: Vec<String> = seen
        .deletions
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, u)| uids.contains(u))
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(order, ["db-2", "db-1", "db-0"], "highest ordinal first");
    assert_eq!(seen.violations(), Vec::<String>::new());
    // Two of them waited their turn and said so.
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    let queued = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("DrainQueued"))
        .count();
    assert!(queued >= 2, "DrainQueued Events: {queued}");
    let m = steward.metrics().await;
    assert!(
        m.contains("steward_graceful_drain_outcomes_total{outcome=\"delay\"} 3"),
        "{m}"
    );
}

fn job(env: &TestEnv, name: &str, run_for: &str, extra_annotations: Value) -> Job {
    let mut annotations = json!({
        "vpa-managed": "true",
        "steward.io/sim-exit-code": "0",
        "steward.io/sim-run-duration": run_for,
    });
    for (k, v) in extra_annotations.as_object().unwrap() {
        annotations[k] = v.clone();
    }
    let mut template = pod_template(env, json!({ "app": name }), annotations);
    template["spec"]["restartPolicy"] = json!("Never");
    from_json(json!({
        "metadata": { "name": name },
        "spec": { "backoffLimit": 0, "template": template }
    }))
}

/// The one pod of Job `name`, once Running.
async fn job_pod(env: &TestEnv, name: &str) -> Pod {
    wait::list(
        &pods(env),
        &ListParams::default().labels(&format!("job-name={name}")),
        T,
        "the Job's pod Running",
        |ps| {
            ps.len() == 1
                && ps[0].status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        },
    )
    .await
    .unwrap()
    .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_pods_are_evicted_when_their_job_finishes_or_at_the_job_max_wait() {
    let env = setup("gd-job").await;
    let spec = StewardSpec::new(&env).await;
    // A CronJob's pods are keyed by the CronJob: this override reaches them.
    let config = format!(
        "{CONFIG}overrides:\n- namespace: {}\n  workload: CronJob/nightly\n  jobMaxWait: 3s\n",
        env.ns
    );
    spec.config(&env.client, &config).await;
    let steward = spec.start().await;
    let jobs: Api<Job> = Api::namespaced(env.client.clone(), &env.ns);
    // Finishes 8 s after it starts: far beyond the 2 s delay other pods get.
    jobs.create(
        &PostParams::default(),
        &job(&env, "report", "8s", json!({})),
    )
    .await
    .unwrap();
    // Would run for an hour; its own jobMaxWait is 3 s.
    jobs.create(
        &PostParams::default(),
        &job(
            &env,
            "forever",
            "1h",
            json!({ "steward.io/drain-job-max-wait": "3s" }),
        ),
    )
    .await
    .unwrap();
    // A Job of a (suspended) CronJob, owned as the CronJob controller owns its Jobs.
    let cronjob: CronJob = from_json(json!({
        "metadata": { "name": "nightly" },
        "spec": { "schedule": "0 0 1 1 *", "suspend": true,
                  "jobTemplate": { "spec": { "template": { "spec": { "restartPolicy": "Never",
                      "containers": [{ "name": "c", "image": "registry.invalid/app:1" }] } } } } }
    }));
    let cronjob = Api::<CronJob>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &cronjob)
        .await
        .unwrap();
    let mut nightly = job(&env, "nightly-29000000", "1h", json!({}));
    nightly.metadata.owner_references = Some(vec![from_json(json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
        "uid": cronjob.uid().unwrap(), "controller": true, "blockOwnerDeletion": true
    }))]);
    jobs.create(&PostParams::default(), &nightly).await.unwrap();
    let report = job_pod(&env, "report").await;
    let forever = job_pod(&env, "forever").await;
    let nightly = job_pod(&env, "nightly-29000000").await;
    // Record the phase each pod was in when its deletion was first seen.
    let at_deletion: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let a = at_deletion.clone();
    let _seen = Seen::start(&env, move |ps| {
        for (n, p) in ps {
            if p.metadata.deletion_timestamp.is_some() {
                let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                a.lock()
                    .unwrap()
                    .entry(n.clone())
                    .or_insert(phase.unwrap_or_default());
            }
        }
        None
    });
    let requested = std::time::Instant::now();
    assert_eq!(evict(&env, &report.name_any()).await, 429);
    assert_eq!(evict(&env, &forever.name_any()).await, 429);
    assert_eq!(evict(&env, &nightly.name_any()).await, 429);
    // Nothing about a Job pod is isolated: its labels stay.
    let p = pods(&env).get(&report.name_any()).await.unwrap();
    assert_eq!(p.labels().get("app").map(String::as_str), Some("report"));
    for (pod, want) in [
        (&report, "Succeeded"),
        (&forever, "Running"),
        (&nightly, "Running"),
    ] {
        let name = pod.name_any();
        wait::until(Duration::from_secs(60), &format!("{name} evicted"), || {
            let seen = at_deletion.lock().unwrap().contains_key(&name);
            async move { Ok(seen) }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}; logs: {:?}", steward.logs.lock().unwrap()));
        assert_eq!(
            at_deletion.lock().unwrap().get(&name).map(String::as_str),
            Some(want),
            "{name}: phase when steward evicted it"
        );
    }
    // The report pod was held until it finished, well past the 2 s delay.
    assert!(requested.elapsed() >= Duration::from_secs(4));
    let m = steward.metrics().await;
    assert!(m.contains("outcome=\"job_finished\"} 1"), "{m}");
    assert!(m.contains("outcome=\"max_wait\"} 2"), "{m}");
    // Only the CronJob's override (3 s; the default is 30 min) evicts `nightly` while
    // it runs: its pod was keyed `CronJob/nightly`.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daemonset_pod_keeps_its_owner_and_no_second_pod_starts_on_its_node() {
    let env = setup("gd-ds").await;
    let spec = StewardSpec::new(&env).await;
    spec.config(&env.client, CONFIG).await;
    let steward = spec.start().await;
    service(&env, "agent", json!({ "app": "agent", "serving": "yes" })).await;
    let ds: DaemonSet = from_json(json!({
        "metadata": { "name": "agent" },
        "spec": {
            "selector": { "matchLabels": { "app": "agent" } },
            "template": pod_template(&env, json!({ "app": "agent", "serving": "yes" }), json!({ "vpa-managed": "true" })),
        }
    }));
    Api::<DaemonSet>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &ds)
        .await
        .unwrap();
    let original = wait::list(
        &pods(&env),
        &ListParams::default().labels("app=agent"),
        T,
        "a Ready agent on each node",
        |ps| ps.iter().filter(|p| pod_ready(p)).count() == 2,
    )
    .await
    .unwrap();
    let victim = original[0].clone();
    let node = victim.spec.as_ref().unwrap().node_name.clone().unwrap();
    let n = node.clone();
    let seen = Seen::start(&env, move |ps| {
        let on_node: Vec<&String> = ps
            .iter()
            .filter(|(_, p)| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(n.as_str())
                    && p.metadata.deletion_timestamp.is_none()
            })
            .map(|(k, _)| k)
            .collect();
        if on_node.len() > 1 {
            return Some(format!("two agent pods on {n}: {on_node:?}"));
        }
        ps.iter()
            .find(|(_, p)| {
                phase(p).is_some()
                    && (p.labels().get("app").map(String::as_str) != Some("agent")
                        || !p.owner_references().iter().any(|o| o.kind == "DaemonSet"))
            })
            .map(|(k, _)| format!("{k} lost its DaemonSet"))
    });
    assert_eq!(evict(&env, &victim.name_any()).await, 429);
    // Isolated: out of the Service (serving removed), still the DaemonSet's.
    wait::object(
        &pods(&env),
        &victim.name_any(),
        T,
        "isolated without losing its owner",
        |p: &Pod| {
            phase(p) == Some("isolated")
                && !p.labels().contains_key("serving")
                && p.labels().get("app").map(String::as_str) == Some("agent")
        },
    )
    .await
    .unwrap();
    let uid = victim.uid().unwrap();
    wait::list(
        &pods(&env),
        &ListParams::default().labels("app=agent"),
        Duration::from_secs(60),
        "the agent replaced on its node",
        |ps| {
            ps.iter().any(|p| {
                p.uid().as_deref() != Some(uid.as_str())
                    && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())
                    && pod_ready(p)
            }) && ps.iter().all(|p| p.uid().as_deref() != Some(uid.as_str()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}; logs: {:?}", steward.logs.lock().unwrap()));
    assert_eq!(seen.violations(), Vec::<String>::new());
}

/// A client acting as `user` (the test's admin may impersonate anyone).
async fn client_as(user: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(testkit::cluster().kubeconfig()).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.auth_info.impersonate = Some(user.into());
    // As evicters do: a 429 is an answer to see, not one for kube's retry layer.
    cfg.default_retry = false;
    kube::Client::try_from(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_evicters_opted_in_are_drained() {
    let env = setup("gd-who").await;
    let spec = StewardSpec::new(&env).await;
    spec.config(
        &env.client,
        "version: 1\ndefaults:\n  minWait: 1s\n  delay: 1s\n  maxWait: 20s\nevicters:\n  include: [\"system:serviceaccount:*\"]\n  exclude: [\"system:serviceaccount:kube-system:karpenter\"]\n",
    )
    .await;
    let steward = spec.start().await;
    let web = gd_support::web(&env, "web", 3, true, json!({})).await;
    // The evicters may evict in this namespace, as their real RBAC allows.
    let role: Role = from_json(json!({
        "metadata": { "name": "evicter" },
        "rules": [{ "apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"] }]
    }));
    Api::<Role>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = from_json(json!({
        "metadata": { "name": "evicters" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "evicter" },
        "subjects": [
            { "kind": "ServiceAccount", "name": "vpa-updater", "namespace": "kube-system" },
            { "kind": "ServiceAccount", "name": "karpenter", "namespace": "kube-system" },
            { "kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice@example.com" }
        ]
    }));
    Api::<RoleBinding>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let evict_as = |user: &'static str, name: String| {
        let ns = env.ns.clone();
        async move {
            let api: Api<Pod> = Api::namespaced(client_as(user).await, &ns);
            gd_support::evict_code(&api, &name).await
        }
    };
    // Opted in: drained (429 now, evicted by steward later).
    let updater = "system:serviceaccount:kube-system:vpa-updater";
    assert_eq!(evict_as(updater, web[0].name_any()).await, 429);
    // Opted out: evicted at once, nothing of steward's written.
    let karpenter = "system:serviceaccount:kube-system:karpenter";
    assert_eq!(evict_as(karpenter, web[1].name_any()).await, 201);
    assert_eq!(evict_as("alice@example.com", web[2].name_any()).await, 201);
    for p in &web[1..] {
        let p = pods(&env).get(&p.name_any()).await.unwrap();
        assert!(p.metadata.deletion_timestamp.is_some(), "{p:?}");
        assert!(!p.labels().contains_key("steward.io/drain"), "{p:?}");
    }
    let requested = pods(&env).get(&web[0].name_any()).await.unwrap();
    assert_eq!(
        requested
            .annotations()
            .get("steward.io/drain-requester")
            .map(String::as_str),
        Some("system:serviceaccount:kube-system:vpa-updater")
    );
    wait::until(T, "the updater's pod drained and evicted", || async {
        Ok(pods(&env)
            .get_opt(&web[0].name_any())
            .await?
            .is_none_or(|p| p.uid() != web[0].uid() || p.metadata.deletion_timestamp.is_some()))
    })
    .await
    .unwrap();
    let m = steward.metrics().await;
    assert!(m.contains("decision=\"allow_evicter_opted_out\"} 2"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_of_a_workload_a_vpa_drives_are_targeted_without_the_annotation() {
    let env = setup("gd-vpaobj").await;
    gd_support::install_vpa_crds().await;
    let spec = StewardSpec::new(&env).await;
    spec.config(
        &env.client,
        "version: 1\nselector:\n  annotations: { vpa-managed: \"true\" }\n  vpaObjects: true\ndefaults:\n  minWait: 1s\n  delay: 30s\n  maxWait: 60s\n",
    )
    .await;
    // No annotation on any of these pods.
    let web = gd_support::web(&env, "web", 1, false, json!({})).await;
    let off = gd_support::web(&env, "off", 1, false, json!({})).await;
    let plain = gd_support::web(&env, "plain", 1, false, json!({})).await;
    gd_support::vpa(&env, "web").await; // Recreate
    gd_support::vpa(&env, "off").await;
    let vpas: Api<kube::api::DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &graceful_drain::core::vpa::api_resource(),
    );
    vpas.patch(
        "off",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({ "spec": { "updatePolicy": { "updateMode": "Off" } } })),
    )
    .await
    .unwrap();
    // Started after the VPAs exist: its cache is synced before it serves.
    let steward = spec.start().await;
    assert_eq!(
        evict(&env, &web[0].name_any()).await,
        429,
        "VPA in Recreate"
    );
    assert_eq!(evict(&env, &off[0].name_any()).await, 201, "VPA Off");
    assert_eq!(evict(&env, &plain[0].name_any()).await, 201, "no VPA");
    let m = steward.metrics().await;
    assert!(m.contains("decision=\"deny_start_drain\"} 1"), "{m}");
    assert!(m.contains("decision=\"allow_not_targeted\"} 2"), "{m}");
}
