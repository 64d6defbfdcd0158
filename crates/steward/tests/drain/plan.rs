//! What a drain decides before it changes anything: the batch from both metric
//! generations, the dry run, a NodePool too busy to drain, and the failures
//! (Prometheus down, an unknown node) that stop it with nothing changed.

use super::*;

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

        let yaml_args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "json" { "yaml" } else { *a })
            .collect();
        let (ok, yaml, stderr) = steward(&yaml_args, &ctx.kubeconfig).await;
        assert!(ok, "{stderr}");
        assert_eq!(serde_saphyr::from_str::<Value>(&yaml).unwrap(), v, "{yaml}");

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
    let (code, stdout, stderr) = steward_exit(
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
    assert_eq!(
        code,
        Some(4),
        "Prometheus unreachable is exit status 4: {stdout}"
    );
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
    // Karpenter honours the annotation on a Node too.
    let nodes_api: Api<Node> = Api::all(ctx.env.client.clone());
    let patch = json!({ "metadata": { "annotations": { "karpenter.sh/do-not-disrupt": "true" } } });
    nodes_api
        .patch(&more[0], &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
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
    assert!(
        !nodes.iter().any(|n| n == more[0].as_str()),
        "the node annotated do-not-disrupt was chosen: {nodes:?}"
    );
    let skipped = report["plan"]["skipped"].to_string();
    assert!(
        skipped.contains(&format!(
            "[\"{}\",\"the node has karpenter.sh/do-not-disrupt=true\"]",
            more[0]
        )),
        "{skipped}"
    );
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
    // The same report as YAML (read by another YAML library than the one that wrote it).
    let (ok, yaml, stderr) = ctx
        .drain(&["--dry-run", "--max-batch", "2", "-o", "yaml"])
        .await;
    assert!(ok, "{stderr}");
    let from_yaml: Value = serde_saphyr::from_str(&yaml).unwrap();
    for key in [
        "nodes",
        "count",
        "formula_count",
        "candidates",
        "skipped",
        "resumed",
    ] {
        assert_eq!(from_yaml["plan"][key], report["plan"][key], "{key}: {yaml}");
    }
    // Floats are compared as numbers: the two parsers may round the last digit apart.
    for key in ["drain_rate", "max_allocate_rate"] {
        let (y, j) = (
            from_yaml["plan"][key].as_f64().unwrap(),
            report["plan"][key].as_f64().unwrap(),
        );
        assert!((y - j).abs() < 1e-9, "{key}: {y} vs {j}");
    }
    assert_eq!(from_yaml["findings"], report["findings"], "{yaml}");
    assert_eq!(from_yaml["dry_run"], true);
    // A node that is not in the NodePool is a usage error: exit 2, nothing changed.
    let (code, _, stderr) = ctx
        .drain_exit(&["--nodes", "no-such-node", "--dry-run"])
        .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--nodes: no-such-node is not a node of NodePool"),
        "{stderr}"
    );
    ctx.assert_untouched(&[pool, more].concat(), "dry run touched")
        .await;
}

#[tokio::test]
async fn a_busy_nodepool_drains_nothing() {
    let ctx = setup("busy", Generation::V1).await;
    let pool = ctx.pool_nodes("a", 2, "1").await;
    ctx.deployment("big", 2, "995m").await;
    ctx.metrics_ready().await;
    // An unreadable URL file is a usage error naming the flag; nothing is touched.
    let (code, _, stderr) = ctx
        .drain_exit(&["--slack-webhook-url-file", "/nonexistent/slack-url"])
        .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--slack-webhook-url-file: reading /nonexistent/slack-url"),
        "{stderr}"
    );
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
