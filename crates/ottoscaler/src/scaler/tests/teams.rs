//! Teams against the in-memory backend: a team's workers carry its label, it sees
//! and acts only on its own, and its quota bounds a scale-up.

use std::collections::BTreeMap;

use super::*;
use crate::core::teams::Quota;

fn team(name: &str) -> Caller {
    Caller {
        team: name.into(),
        admin: false,
    }
}

#[tokio::test]
async fn a_team_acts_only_on_its_own_within_its_quota() {
    let opts = Options {
        quotas: BTreeMap::from([(
            "web".to_string(),
            Quota {
                workers: Some(2),
                ..Quota::default()
            },
        )]),
        ..Options::default()
    };
    let mut s = started(opts, |_| {}).await;
    let (web, data) = (team("web"), team("data"));

    // web's task: its record and workers carry the team.
    let (created, _) = s.scaler.scale_up(&web, &scale("t", 2)).await.unwrap();
    assert_eq!(created.len(), 2);
    let Call::PutGroup(record) = s.next().await else {
        panic!("the task's record")
    };
    assert_eq!(record.team, "web");
    for _ in 0..2 {
        let Call::Create(plan) = s.next().await else {
            panic!("a worker")
        };
        assert_eq!(plan.labels.team, "web");
        assert_eq!(plan.labels.to_map()["steward.io/ottoscaler-team"], "web");
    }
    s.indexed("t", 2).await;
    // Its quota of 2 is used: one more is refused, naming the team and the bound.
    let e = s.scaler.scale_up(&web, &scale("t2", 1)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "worker_count: 1 more would take team web over its quota of 2 workers (2 held)"
    );
    assert_eq!(e.to_status().code(), tonic::Code::ResourceExhausted);
    // Another team is not held up by web's quota, and cannot touch web's task.
    let denied = |e: Error| {
        assert_eq!(e.to_status().code(), tonic::Code::PermissionDenied, "{e}");
    };
    denied(s.scaler.scale_up(&data, &scale("t", 1)).await.unwrap_err());
    denied(
        s.scaler
            .scale_down(&data, &scale("t", 0))
            .await
            .unwrap_err(),
    );
    denied(s.scaler.workers_for(&data, "t", "").unwrap_err());
    assert!(s.scaler.workers_for(&data, "", "").unwrap().is_empty());
    assert_eq!(s.scaler.workers_for(&web, "", "").unwrap().len(), 2);
    assert_eq!(s.scaler.workers_for(&admin(), "", "").unwrap().len(), 2);

    // data's run: web may not watch, cancel or list it; data and an admin may.
    let (id, _) = s.scaler.submit(&data, &one_stage("d-1")).await.unwrap();
    let Call::PutGroup(running) = s.next().await else {
        panic!("the run's record")
    };
    assert_eq!(running.team, "data");
    let Call::Create(plan) = s.next().await else {
        panic!("the stage's worker")
    };
    assert_eq!(plan.labels.team, "data");
    denied(s.scaler.progress(&web, &id).unwrap_err());
    denied(s.scaler.cancel(&web, &id, "").unwrap_err());
    denied(s.scaler.workers_for(&web, "", &id).unwrap_err());
    assert!(s.scaler.progress(&data, &id).is_ok());
    assert!(s.scaler.progress(&admin(), &id).is_ok());
    assert_eq!(
        s.scaler.team_workers(),
        BTreeMap::from([("data".into(), 1), ("web".into(), 2)])
    );
    assert!(s.scaler.cancel(&admin(), &id, "test").unwrap());
}
