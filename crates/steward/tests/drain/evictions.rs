//! How pods leave their nodes: the whole run with budgets and a StatefulSet,
//! problem pods, a pod under two budgets, a terminating namespace, and waiting
//! for room for replacements.

use super::*;

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

    // The URL from a file, as a mounted Secret key gives it.
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("slack-url");
    std::fs::write(&url_file, format!("{}\n", slack.url)).unwrap();
    let url_file = url_file.display().to_string();
    let (ok, stdout, stderr) = ctx
        .drain(&["--slack-webhook-url-file", &url_file, "-o", "json"])
        .await;
    assert!(ok, "drain failed:\n{stderr}\n{stdout}");
    assert!(
        !stdout.contains(&slack.secret) && !stderr.contains(&slack.secret),
        "the webhook URL was printed"
    );
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
    // No NodeClaim backs them (no Karpenter here): kept cordoned, and said why.
    for h in report["handoff"].as_array().unwrap() {
        assert_eq!(
            (&h["result"], &h["why"]),
            (&json!("kept"), &json!("no-node-claim")),
            "{h}"
        );
    }
    assert_eq!(report["handoff"].as_array().unwrap().len(), 2, "{report}");
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
    // Each drained node tells `kubectl describe node` what happened to it.
    for n in &drained {
        let events = ctx.node_events(n).await;
        assert_eq!(
            reasons(&events),
            // No NodeClaim backs a kwok node of this test: drained, then kept.
            ["DrainStarted", "Drained", "NodeKept"],
            "{n}: {events:?}"
        );
        assert!(
            events.iter().all(|e| e.type_ == "Normal"),
            "{n}: {events:?}"
        );
        // Refusals (the two nodes' web pods race for one disruption) name the budget.
        let web = format!("PodDisruptionBudget {}/web", ctx.env.ns);
        assert!(
            blocked(&events).iter().all(|note| note.contains(&web)),
            "{n}: {events:?}"
        );
        // One Evicted per pod evicted, naming it; Drained counts them alike.
        let evicted: Vec<&NodeEvent> = events.iter().filter(|e| e.reason == "Evicted").collect();
        assert!(!evicted.is_empty(), "{n}: {events:?}");
        assert!(
            evicted
                .iter()
                .all(|e| e.note.contains(&format!("{}/", ctx.env.ns))),
            "{n}: {evicted:?}"
        );
        let events: Vec<&NodeEvent> = events
            .iter()
            .filter(|e| e.reason != "DrainBlocked" && e.reason != "Evicted")
            .collect();
        let batch = drained.join(", ");
        assert!(
            events[0].note.contains(&format!("NodePool {}", ctx.pool))
                && events[0]
                    .note
                    .contains(&format!("(batch of 2 nodes: {batch})")),
            "{n}: {}",
            events[0].note
        );
        assert!(
            events[1]
                .note
                .contains(&format!("{} evicted, 0 deleted", evicted.len())),
            "{n}: {}",
            events[1].note
        );
    }
    let untouched = ctx.node_events(&pool[2]).await;
    assert!(
        untouched.is_empty(),
        "the third node got Events: {untouched:?}"
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
    let (code, stdout, stderr) = ctx
        // --no-surge: a restart would replace the pod without the Eviction API.
        .drain_exit(&[
            "--nodes",
            &pool[0],
            "--timeout",
            "10m",
            "--no-surge",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(
        code,
        Some(1),
        "an undrainable node must fail the run: {stdout}"
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let node = &report["nodes"][0];
    assert_eq!(node["result"], "failed", "{node}");
    let reason = node["reason"].as_str().unwrap();
    assert!(
        reason.contains("/twice-") && reason.contains("more than one PodDisruptionBudget"),
        "{reason}\n{stderr}"
    );
    let events = ctx.node_events(&pool[0]).await;
    assert_eq!(
        reasons(&events),
        ["DrainStarted", "DrainFailed"],
        "{events:?}"
    );
    let failed = events.iter().find(|e| e.reason == "DrainFailed").unwrap();
    assert!(
        failed.type_ == "Warning" && failed.note.contains("more than one PodDisruptionBudget"),
        "{events:?}"
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
