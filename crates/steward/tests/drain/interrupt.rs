//! A run that is disturbed: Ctrl-C rolls back the nodes it never started and the
//! next run resumes the rest; a Slack that fails is a warning, not an abort.

use super::*;

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
            // A batch of both nodes, one at a time: the older (first) starts and
            // blocks on its budget (--no-surge: evicted, not restarted); the
            // second is cordoned but never starts.
            &[
                "--no-surge",
                "--min-batch",
                "2",
                "--max-batch",
                "2",
                "--parallel-nodes",
                "1",
            ],
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
    assert_eq!(
        status.code(),
        Some(3),
        "an interrupted drain exits 3, not success"
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

    let events = ctx.node_events(&first[0]).await;
    assert_eq!(
        reasons(&events),
        ["DrainStarted", "DrainInterrupted"],
        "{events:?}"
    );
    let last = events.last().unwrap();
    assert!(
        last.type_ == "Warning"
            && last.note.contains("1 pods left")
            && last.note.contains(&solo[0].name_any()),
        "the blocking pod is named: {events:?}"
    );
    // The refusal itself is on the node, naming the pod and its budget (once, not
    // once per retry).
    let refused = blocked(&events);
    let (pod, pdb) = (
        format!("{}/{}", ctx.env.ns, solo[0].name_any()),
        format!("PodDisruptionBudget {}/solo", ctx.env.ns),
    );
    assert!(
        refused.len() == 1 && refused[0].contains(&pod) && refused[0].contains(&pdb),
        "{events:?}"
    );
    // The node whose drain never started was cordoned, then rolled back.
    let events = ctx.node_events(&second[0]).await;
    assert_eq!(reasons(&events), ["Uncordoned"], "{events:?}");

    // Give the budget room, then a second run resumes the interrupted node first.
    ctx.scale("solo", 2).await;
    let (ok, stdout, stderr) = ctx.drain(&["--max-batch", "1", "-o", "json"]).await;
    assert!(ok, "{stderr}\n{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["plan"]["resumed"][0], first[0].as_str());
    assert_eq!(
        state(&ctx.node(&first[0]).await).as_deref(),
        Some("drained")
    );
    assert!(ctx.workload_pods_on(&first[0]).await.is_empty());
    let events = ctx.node_events(&first[0]).await;
    assert_eq!(
        reasons(&events),
        [
            "DrainStarted",
            "DrainInterrupted",
            "DrainStarted",
            "Drained",
            "NodeKept"
        ],
        "{events:?}"
    );
    let drained = &events[events.len() - 2];
    assert!(
        drained.reason == "Drained" && drained.note.contains("1 evicted"),
        "{events:?}"
    );
}

pub(super) fn libc_sigint() -> i32 {
    2
}

pub(super) fn kill(pid: u32, sig: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
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
        !stderr.contains(&slack.secret) && !stdout.contains(&slack.secret),
        "the webhook URL was printed"
    );
    assert!(
        slack.texts().len() >= 3,
        "steward gave up posting: {:?}",
        slack.texts()
    );
    assert_eq!(state(&ctx.node(&pool[0]).await).as_deref(), Some("drained"));
}
