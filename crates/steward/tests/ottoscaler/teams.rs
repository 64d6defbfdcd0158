//! Teams on the Kubernetes backend: two teams with quotas of 3 and 5 workers under
//! a cap of 7 submit 10 stages each. A pod watch checks, on every change, that no
//! team holds more workers than its quota and all of them no more than the cap;
//! both teams get workers at the same time (neither starves); a team cannot watch,
//! cancel, list or read the logs of the other's run (PERMISSION_DENIED); every
//! mutating call is in the audit log, and each run has its Events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::events::v1::Event;
use kube::runtime::watcher;
use sha2::{Digest, Sha256};

use super::*;
use crate::watch_support::Invariant;

const TOKEN_A: &str = "team-a-token-71c2";
const TOKEN_B: &str = "team-b-token-0d9e";

fn teams_file() -> tempfile::TempPath {
    let hash = |t: &str| hex::encode(Sha256::digest(t.as_bytes()));
    let text = format!(
        "teams:\n  alpha:\n    token_sha256: {}\n    quota: {{ workers: 3 }}\n  beta:\n    token_sha256: {}\n    quota: {{ workers: 5, cpu: \"2\" }}\n",
        hash(TOKEN_A),
        hash(TOKEN_B)
    );
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f.into_temp_path()
}

/// 10 independent stages whose simulated containers run for 2 s and exit 0.
fn ten_stages(id: &str) -> proto::PipelineRequest {
    proto::PipelineRequest {
        pipeline_name: "fan".into(),
        run_id: id.into(),
        stages: (0..10)
            .map(|i| {
                stage(
                    &format!("s{i}"),
                    &[],
                    &[(EXIT, "0"), ("steward.io/sim-run-duration", "2s")],
                )
            })
            .collect(),
        timeout_seconds: 300,
    }
}

fn active(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        None | Some("Pending" | "Running")
    )
}

/// The code of a refused call; `None` when it was allowed.
fn code<T>(r: Result<T, tonic::Status>) -> Option<tonic::Code> {
    r.err().map(|s| s.code())
}

#[derive(Default, Debug)]
struct Seen {
    max: BTreeMap<String, usize>,
    both_at_once: bool,
}

#[tokio::test]
async fn two_teams_share_the_cap_within_their_quotas_and_see_only_their_own() {
    let teams = teams_file();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let (env, server, _cfg) = kube_setup(
        "otto-teams",
        &[
            "--teams-file",
            teams.to_str().unwrap(),
            "--audit-log",
            audit.to_str().unwrap(),
            "--max-workers",
            "7",
        ],
    )
    .await;
    let (mut a, mut a_logs) = server.client_args(TOKEN_A).connect().await.unwrap();
    let (mut b, _) = server.client_args(TOKEN_B).connect().await.unwrap();

    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s = seen.clone();
    let quotas = BTreeMap::from([("alpha", 3), ("beta", 5)]);
    let pods_api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let inv = Invariant::start(
        "workers within each team's quota and the cap",
        pods_api,
        watcher::Config::default().labels("steward.io/ottoscaler=worker"),
        move |pods: &BTreeMap<String, Pod>| {
            let mut by_team: BTreeMap<String, usize> = BTreeMap::new();
            for p in pods.values().filter(|p| active(p)) {
                let team = p.labels().get("steward.io/ottoscaler-team").cloned();
                *by_team.entry(team.unwrap_or_default()).or_default() += 1;
            }
            let mut seen = s.lock().unwrap();
            for (t, n) in &by_team {
                let m = seen.max.entry(t.clone()).or_default();
                *m = (*m).max(*n);
            }
            if by_team.get("alpha").is_some_and(|n| *n > 0)
                && by_team.get("beta").is_some_and(|n| *n > 0)
            {
                seen.both_at_once = true;
            }
            let total: usize = by_team.values().sum();
            for (t, n) in &by_team {
                if quotas.get(t.as_str()).is_some_and(|q| n > q) {
                    return Some(format!("team {t} holds {n} workers: {by_team:?}"));
                }
            }
            (total > 7).then(|| format!("{total} workers over the cap of 7: {by_team:?}"))
        },
    )
    .await;

    let sa = tokio::spawn(collect(
        a.execute_pipeline(ten_stages("alpha-1"))
            .await
            .unwrap()
            .into_inner(),
    ));
    let sb = tokio::spawn(collect(
        b.execute_pipeline(ten_stages("beta-1"))
            .await
            .unwrap()
            .into_inner(),
    ));

    // alpha may not watch, cancel, list or read the logs of beta's run.
    assert_eq!(
        code(
            a.watch_pipeline(proto::WatchPipelineRequest {
                run_id: "beta-1".into(),
                from_seq: 0
            })
            .await
        ),
        Some(tonic::Code::PermissionDenied)
    );
    assert_eq!(
        code(
            a.cancel_pipeline(proto::CancelPipelineRequest {
                run_id: "beta-1".into(),
                reason: "mine now".into()
            })
            .await
        ),
        Some(tonic::Code::PermissionDenied)
    );
    assert_eq!(
        code(
            a.get_worker_status(proto::WorkerStatusRequest {
                run_id: "beta-1".into(),
                ..Default::default()
            })
            .await
        ),
        Some(tonic::Code::PermissionDenied)
    );
    assert_eq!(
        code(
            a_logs
                .stream_build_logs(proto::BuildIdentifier {
                    run_id: "beta-1".into(),
                    ..Default::default()
                })
                .await
        ),
        Some(tonic::Code::PermissionDenied)
    );
    // An unfiltered status lists only alpha's own workers.
    let st = a
        .get_worker_status(proto::WorkerStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.team, "alpha");
    assert!(
        st.workers
            .iter()
            .all(|w| w.team == "alpha" && w.run_id == "alpha-1"),
        "{:?}",
        st.workers
    );

    let (pa, pb) = (sa.await.unwrap(), sb.await.unwrap());
    assert_eq!(
        pa.last().unwrap().run_state(),
        RunState::Succeeded,
        "{pa:#?}"
    );
    assert_eq!(
        pb.last().unwrap().run_state(),
        RunState::Succeeded,
        "{pb:#?}"
    );
    inv.finish();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    // Each quota was used up to its bound, never past it (the watch checked that),
    // and the teams ran side by side.
    assert_eq!(seen.max.get("alpha"), Some(&3), "{seen:?}");
    assert!(seen.max.get("beta").is_some_and(|n| *n >= 4), "{seen:?}");
    assert!(seen.both_at_once, "{seen:?}");

    // Workers by class, state and team; the queue by class and team, empty again.
    let m = server.metrics().await;
    let succeeded = |team: &str| {
        metric(
            &m,
            &format!(
                "steward_ottoscaler_workers{{class=\"ci\",state=\"succeeded\",team=\"{team}\"}}"
            ),
        )
    };
    assert!(
        succeeded("alpha").is_some() && succeeded("beta").is_some(),
        "{m}"
    );
    for team in ["alpha", "beta"] {
        let depth = format!("steward_ottoscaler_queue_depth{{class=\"ci\",team=\"{team}\"}}");
        assert_eq!(metric(&m, &depth), Some(0.0), "{depth}\n{m}");
    }

    // A task: beta may not scale down alpha's task; alpha may.
    let up = a
        .scale_up(proto::ScaleRequest {
            task_id: "alpha-task".into(),
            worker_count: 1,
            worker: stage("w", &[], &[]).worker,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up.workers.len(), 1);
    let down = |task: &str| proto::ScaleRequest {
        task_id: task.into(),
        force: true,
        ..Default::default()
    };
    assert_eq!(
        code(b.scale_down(down("alpha-task")).await),
        Some(tonic::Code::PermissionDenied)
    );
    a.scale_down(down("alpha-task")).await.unwrap();

    // The audit log has every mutating call, allowed or refused, with its team.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(String, String, String, String)> = lines
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (s("team"), s("method"), s("target"), s("code"))
        })
        .collect();
    let want = |t: &str, m: &str, target: &str, c: &str| {
        (
            t.to_string(),
            m.to_string(),
            target.to_string(),
            c.to_string(),
        )
    };
    for w in [
        want("alpha", "ExecutePipeline", "run/alpha-1", "OK"),
        want("beta", "ExecutePipeline", "run/beta-1", "OK"),
        want("alpha", "CancelPipeline", "run/beta-1", "PERMISSION_DENIED"),
        want("alpha", "ScaleUp", "task/alpha-task", "OK"),
        want("beta", "ScaleDown", "task/alpha-task", "PERMISSION_DENIED"),
        want("alpha", "ScaleDown", "task/alpha-task", "OK"),
    ] {
        assert!(got.contains(&w), "{w:?} not in the audit log: {got:#?}");
    }
    assert_eq!(got.len(), 6, "only mutating calls are audited: {got:#?}");

    // Each run has its Events on its record, naming the team.
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    wait::until(
        T,
        "PipelineStarted and PipelineSucceeded of both runs",
        || async {
            let evs = events.list(&ListParams::default()).await?.items;
            let has = |reason: &str, run: &str, note: &str| {
                evs.iter().any(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                            == Some(&format!("ottoscaler-run-{run}"))
                        && e.note.as_deref().is_some_and(|n| n.contains(note))
                })
            };
            Ok(has("PipelineStarted", "alpha-1", "team alpha")
                && has("PipelineStarted", "beta-1", "team beta")
                && has("PipelineSucceeded", "alpha-1", "succeeded")
                && has("PipelineSucceeded", "beta-1", "succeeded"))
        },
    )
    .await
    .unwrap();
}
