//! The sample pipelines in `examples/pipelines` (the original test tool's `-type
//! simple|full|parallel`): each runs to success with `steward ottoscaler run` on the
//! simulated cluster (kwok runs the pods; a stand-in here plays each container,
//! exiting 0 once it runs, the parallel suites only once all three run) and for real on the local backend (their `sh` commands).

use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;

use super::*;

const SAMPLES: [&str; 3] = ["simple", "full", "parallel"];

fn sample(name: &str) -> String {
    format!(
        "{}/../../examples/pipelines/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

const SUITES: [&str; 3] = ["unit", "integration", "e2e"];

/// Plays every worker container of the namespace: once a pod runs, it exits 0 —
/// except the parallel sample's suites, which exit only once all three run at the
/// same time (so a pipeline that ran them one by one would never end).
fn play_containers(env: &TestEnv) -> tokio::task::JoinHandle<()> {
    let api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let cfg = watcher::Config::default().labels("steward.io/ottoscaler=worker");
    tokio::spawn(async move {
        let mut pods = std::pin::pin!(watcher::watcher(api.clone(), cfg).applied_objects());
        let mut suites = std::collections::BTreeSet::new();
        while let Some(p) = pods.next().await {
            let p = p.expect("the pod watch of the stand-in works");
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if !running || p.annotations().contains_key(EXIT) {
                continue;
            }
            let stage = p
                .labels()
                .get("steward.io/stage")
                .cloned()
                .unwrap_or_default();
            let parallel = p
                .labels()
                .get("steward.io/pipeline-run")
                .map(String::as_str)
                == Some("sample-parallel");
            let exit = if parallel && SUITES.contains(&stage.as_str()) {
                suites.insert(p.name_any());
                if suites.len() < SUITES.len() {
                    continue;
                }
                std::mem::take(&mut suites).into_iter().collect()
            } else {
                vec![p.name_any()]
            };
            for name in exit {
                let patch = json!({ "metadata": { "annotations": { EXIT: "0" } } });
                api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .expect("annotating a running worker");
            }
        }
        panic!("the pod watch of the stand-in ended");
    })
}

/// Every stage of sample `name` ended as expected in `ps`.
fn check(name: &str, ps: &[proto::PipelineProgress]) {
    assert_eq!(
        ps.last().unwrap().run_state(),
        RunState::Succeeded,
        "{name}: {ps:#?}"
    );
    let req =
        ottoscaler::core::pipeline_file::parse(&std::fs::read_to_string(sample(name)).unwrap())
            .unwrap();
    for s in &req.stages {
        let want = if s.name == "notify-failure" {
            StageState::Skipped
        } else {
            StageState::Succeeded
        };
        let last = states_of(ps, &s.name).last().map(|(_, st)| *st);
        assert_eq!(last, Some(want), "{name}: stage {}", s.name);
    }
}

#[tokio::test]
async fn sample_pipelines_run_on_the_simulated_cluster() {
    let (env, server, _cfg) = kube_setup("otto-samples", &[]).await;
    let player = play_containers(&env);
    let (mut otto, _) = server.clients().await;
    for name in SAMPLES {
        let id = format!("sample-{name}");
        let file = sample(name);
        let args = ["run", file.as_str(), "--run-id", &id, "--no-logs"];
        let (code, stdout, stderr) = tokio::time::timeout(T, cli_exit(&server.url, &args))
            .await
            .expect("the run ends");
        assert_eq!(code, Some(0), "{name}: {stdout}\n{stderr}");
        check(name, &history(&mut otto, &id).await);
    }
    assert!(!player.is_finished(), "the stand-in's watch ended early");
    player.abort();
}

#[tokio::test]
async fn sample_pipelines_run_their_commands_on_the_local_backend() {
    let (server, _cfg) = local_server(&[]).await;
    let (mut otto, _) = server.clients().await;
    for name in SAMPLES {
        let id = format!("local-{name}");
        let file = sample(name);
        let args = ["run", file.as_str(), "--run-id", &id];
        let (code, stdout, stderr) = tokio::time::timeout(T, cli_exit(&server.url, &args))
            .await
            .expect("the run ends");
        assert_eq!(code, Some(0), "{name}: {stdout}\n{stderr}");
        check(name, &history(&mut otto, &id).await);
        let last_words = match name {
            "simple" => "built",
            "full" => "cleaning up",
            _ => "all suites passed",
        };
        assert!(
            stdout.contains(last_words),
            "{name}: the log is printed: {stdout}"
        );
    }
}
