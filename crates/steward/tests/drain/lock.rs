//! One run per NodePool (its Lease `steward-drain-<pool>`), and pods without a
//! controller (refused without `--force`, as kubectl drain does).

use k8s_openapi::api::coordination::v1::Lease;

use super::interrupt::kill;
use super::*;

impl Ctx {
    async fn lease(&self, ns: &str) -> Option<Lease> {
        Api::<Lease>::namespaced(self.env.client.clone(), ns)
            .get_opt(&format!("steward-drain-{}", self.pool))
            .await
            .unwrap()
    }
}

fn holder(l: &Lease) -> Option<String> {
    l.spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty())
}

#[tokio::test]
async fn a_second_run_exits_naming_the_first_and_a_dead_holder_is_taken_over() {
    let ctx = setup("lock", Generation::V1).await;
    let node = ctx.pool_nodes("a", 1, "4").await;
    ctx.deployment("solo", 1, "100m").await;
    ctx.pdb("solo", json!({ "minAvailable": 1 })).await;
    ctx.spare_nodes(1).await;
    ctx.metrics_ready().await;
    // The Lease in the test's own namespace (the flag), renewed every few seconds.
    let ns = ctx.env.ns.clone();
    // --no-surge: the single-replica Deployment's budget must block the drain.
    let lock = [
        "--lock-namespace",
        ns.as_str(),
        "--lock-duration",
        "6",
        "--no-surge",
    ];
    let mut first = ctx
        .spawn_drain_until(&lock, "eviction blocked by PodDisruptionBudget")
        .await;
    let held = ctx.lease(&ns).await.expect("the first run's Lease");
    let first_id = holder(&held).expect("held by the first run");

    // A second run exits while the first still holds the Lease: it did not wait.
    let (code, _, stderr) = ctx.drain_exit(&lock).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("Lease {ns}/steward-drain-{}", ctx.pool))
            && stderr.contains(&format!("held by {first_id} since"))
            && stderr.contains("--wait-for-lock"),
        "the holder is named: {stderr}"
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run still runs"
    );
    assert_eq!(
        holder(&ctx.lease(&ns).await.unwrap()),
        Some(first_id.clone())
    );

    // The first dies without releasing; the budget gets room; a run that waits
    // takes the Lease once it has expired and resumes the node.
    kill(first.id().unwrap(), 9);
    first.wait().await.unwrap();
    ctx.scale("solo", 2).await;
    let mut args = lock.to_vec();
    args.extend(["--wait-for-lock", "--max-batch", "1", "-o", "json"]);
    let (ok, stdout, stderr) = ctx.drain(&args).await;
    assert!(ok, "{stderr}\n{stdout}");
    assert!(
        stderr.contains("waiting for the NodePool's drain lock"),
        "{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["plan"]["resumed"][0], node[0].as_str());
    assert_eq!(state(&ctx.node(&node[0]).await).as_deref(), Some("drained"));
    // Released at the end: the next run needs no wait.
    let after = ctx.lease(&ns).await.unwrap();
    assert_eq!(holder(&after), None, "{after:?}");
}

#[tokio::test]
async fn a_pod_without_a_controller_is_refused_without_force_and_evicted_with_it() {
    let ctx = setup("bare", Generation::V1).await;
    let node = ctx.pool_nodes("a", 1, "4").await;
    ctx.spare_nodes(1).await;
    let mut bare = ctx.pod_template("bare", "100m");
    bare["metadata"]["name"] = json!("bare");
    bare["spec"]["nodeName"] = json!(node[0]);
    let _: Pod = ctx.apply(bare).await;
    ctx.ready_pods("bare", 1).await;
    ctx.metrics_ready().await;
    let key = format!("{}/bare", ctx.env.ns);

    // Refused before anything changes, the pod named.
    let (code, _, stderr) = ctx.drain_exit(&["--max-batch", "1"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&key) && stderr.contains("--force"),
        "{stderr}"
    );
    ctx.assert_untouched(&node, "refused before cordoning")
        .await;
    assert_eq!(ctx.ready_pods("bare", 1).await.len(), 1);

    // A dry run says what --force would do.
    let (ok, stdout, stderr) = ctx.drain(&["--max-batch", "1", "--dry-run"]).await;
    assert!(ok, "{stderr}\n{stdout}");
    assert!(
        stderr.contains("without --force this drain refuses") && stderr.contains(&key),
        "{stderr}"
    );

    // With --force it is evicted and the node drained.
    let (ok, stdout, stderr) = ctx.drain(&["--max-batch", "1", "--force"]).await;
    assert!(ok, "{stderr}\n{stdout}");
    assert!(ctx.workload_pods_on(&node[0]).await.is_empty());
    assert_eq!(state(&ctx.node(&node[0]).await).as_deref(), Some("drained"));
}
