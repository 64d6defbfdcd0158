//! Two replicas on one Lease: the follower forwards gRPC to the leader, takes over
//! when the leader is SIGKILLed (after the Lease duration) and when it is SIGTERMed
//! in a rolling update (at once: the Lease is released), and continues the runs in
//! flight: every stage ran once, the runs end Succeeded.

use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;

use super::*;

const LEASE: &str = "steward-ottoscaler";

async fn replica(env: &TestEnv, cfg: &tempfile::TempPath, id: &str) -> Server {
    Server::start(&[
        "--namespace",
        &env.ns,
        "--config",
        cfg.to_str().unwrap(),
        "--orphan-interval",
        "2s",
        "--leader-elect",
        "--lease-duration",
        "3",
        "--lease-identity",
        id,
    ])
    .await
}

async fn holder(env: &TestEnv) -> Option<String> {
    let l: Option<Lease> = Api::namespaced(env.client.clone(), &env.ns)
        .get_opt(LEASE)
        .await
        .unwrap();
    l.and_then(|l| l.spec?.holder_identity)
}

/// Waits until `id` holds the Lease; how long that took.
async fn leads(env: &TestEnv, id: &str) -> Duration {
    let t = Instant::now();
    wait::until(T, &format!("{id} holds the Lease"), || async {
        Ok(holder(env).await.as_deref() == Some(id))
    })
    .await
    .unwrap();
    t.elapsed()
}

/// `steward ottoscaler run` of a 3-stage pipeline `id` through `url`.
fn run(url: &str, dir: &std::path::Path, id: &str) -> Child {
    let file = dir.join(format!("{id}.yaml"));
    let stage = |name: &str, dep: &str| {
        format!("  - name: {name}\n    image: registry.invalid/ci:1\n    command: [make]\n{dep}")
    };
    let yaml = format!(
        "name: {id}\nstages:\n{}{}{}",
        stage("a", ""),
        stage("b", "    depends_on: [a]\n"),
        stage("c", "    depends_on: [b]\n")
    );
    std::fs::write(&file, yaml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .args([
            "ottoscaler",
            "run",
            file.to_str().unwrap(),
            "--run-id",
            id,
            "--no-logs",
        ])
        .args(["--server", url])
        .env("OTTOSCALER_TOKEN", TOKEN)
        .env("OTTOSCALER_REATTACH_TIMEOUT", "50s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Plays stage `stage` of run `id`: once its pod runs, it exits 0.
async fn finish(env: &TestEnv, id: &str, stage: &str) {
    let pod = running_pod(
        env,
        &format!("steward.io/pipeline-run={id},steward.io/stage={stage}"),
    )
    .await;
    assert_eq!(pod, format!("{id}-{stage}-1"), "one attempt");
    annotate(env, &pod, EXIT, "0").await;
}

/// The client's exit and every stage's attempts, read through `via`.
async fn outcome(child: Child, via: &Server, id: &str) {
    let (code, stderr) = super::cli::ended(child).await;
    assert_eq!(code, Some(0), "{id}: {stderr}");
    let (mut otto, _) = via.clients().await;
    let ps = history(&mut otto, id).await;
    assert_eq!(
        ps.last().unwrap().run_state(),
        RunState::Succeeded,
        "{ps:#?}"
    );
    for s in ["a", "b", "c"] {
        let states = states_of(&ps, s);
        assert!(
            states.iter().all(|(a, _)| *a == 1),
            "{id}/{s} ran once: {states:?}"
        );
        let ok = states
            .iter()
            .filter(|(_, st)| *st == StageState::Succeeded)
            .count();
        assert_eq!(ok, 1, "{id}/{s}: {states:?}");
    }
    assert!(
        ps.iter()
            .any(|p| p.message.contains("run resumed after a scaler restart")),
        "{ps:#?}"
    );
}

#[tokio::test]
async fn two_replicas_fail_over_on_sigkill_and_on_a_rolling_update() {
    let env = testkit::env("otto-replicas").await.unwrap();
    env.add_nodes("n", 2, |s| s).await.unwrap();
    let cfg = config_file(Some(&env));
    let dir = tempfile::tempdir().unwrap();
    let mut a = replica(&env, &cfg, "a").await;
    leads(&env, "a").await;
    // b serves through a: its health is a's, forwarded.
    let b = replica(&env, &cfg, "b").await;
    assert_eq!(holder(&env).await.as_deref(), Some("a"));

    // A run submitted through the follower, the leader killed while stage b runs.
    let client = run(&b.url, dir.path(), "kill");
    finish(&env, "kill", "a").await;
    running_pod(&env, "steward.io/pipeline-run=kill,steward.io/stage=b").await;
    a.child.kill().await.unwrap();
    let took = leads(&env, "b").await;
    eprintln!(
        "failover after SIGKILL of the leader: {:.1} s (Lease duration 3 s)",
        took.as_secs_f64()
    );
    finish(&env, "kill", "b").await;
    finish(&env, "kill", "c").await;
    outcome(client, &b, "kill").await;

    // A rolling update: a new replica c, then SIGTERM of the leader b.
    let c = replica(&env, &cfg, "c").await;
    let client = run(&c.url, dir.path(), "roll");
    finish(&env, "roll", "a").await;
    running_pod(&env, "steward.io/pipeline-run=roll,steward.io/stage=b").await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &b.child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let took = leads(&env, "c").await;
    eprintln!(
        "failover after SIGTERM of the leader: {:.1} s",
        took.as_secs_f64()
    );
    finish(&env, "roll", "b").await;
    finish(&env, "roll", "c").await;
    outcome(client, &c, "roll").await;
    no_pods(&env, "steward.io/pipeline-run in (kill,roll)").await;
}
