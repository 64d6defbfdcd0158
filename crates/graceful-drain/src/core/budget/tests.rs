use super::*;

fn m(name: &str, health: Health, requested: bool) -> Member {
    Member {
        name: name.into(),
        health,
        requested,
    }
}

fn pdb(desired: i32, members: Vec<Member>) -> Budget {
    Budget {
        source: Source::Pdb("web".into()),
        desired_healthy: Ok(desired),
        unhealthy_always_allowed: false,
        ordinal_order: false,
        members,
    }
}

fn sts(replicas: i32, members: Vec<Member>) -> Budget {
    Budget {
        source: Source::StatefulSet("db".into()),
        desired_healthy: Ok(replicas - 1),
        unhealthy_always_allowed: false,
        ordinal_order: true,
        members,
    }
}

use Health::{Deleting, Draining, Healthy, Unhealthy};

fn go(r: Result<(), Hold>) -> &'static str {
    match r {
        Ok(()) => "go",
        Err(Hold::Exhausted { .. }) => "exhausted",
        Err(Hold::After { .. }) => "after",
        Err(Hold::Unknown { .. }) => "unknown",
        Err(Hold::Refused { .. }) => "refused",
    }
}

/// Six replicas under `minAvailable: 5` (the scenario), step by step.
#[test]
fn a_pdb_lets_one_go_until_its_replacement_is_healthy() {
    let six = |draining: usize, replacements_ready: usize| {
        let mut v = Vec::new();
        for i in 0..6 {
            let h = if i < draining { Draining } else { Healthy };
            v.push(m(&format!("web-{i}"), h, i >= draining));
        }
        for i in 0..draining {
            let h = if i < replacements_ready {
                Healthy
            } else {
                Unhealthy
            };
            v.push(m(&format!("new-{i}"), h, false));
        }
        pdb(5, v)
    };
    let table = [
        ("nothing draining: one may go", 0, 0, "web-0", "go"),
        (
            "one draining, its replacement starting",
            1,
            0,
            "web-1",
            "exhausted",
        ),
        ("one draining, its replacement Ready", 1, 1, "web-1", "go"),
        (
            "two draining, one replacement Ready",
            2,
            1,
            "web-2",
            "exhausted",
        ),
        (
            "all six draining, all replacements Ready",
            5,
            5,
            "web-5",
            "go",
        ),
    ];
    for (what, draining, ready, candidate, want) in table {
        let b = six(draining, ready);
        assert_eq!(go(decide(candidate, &[b])), want, "{what}");
    }
}

#[test]
fn budget_rules() {
    let table: Vec<(&str, Budget, &str, &str)> = vec![
        (
            "deleting pods are not healthy",
            pdb(
                2,
                vec![
                    m("a", Healthy, true),
                    m("b", Healthy, false),
                    m("c", Deleting, false),
                ],
            ),
            "a",
            "exhausted",
        ),
        (
            "an unhealthy pod goes while the budget is met",
            pdb(
                2,
                vec![
                    m("a", Unhealthy, true),
                    m("b", Healthy, false),
                    m("c", Healthy, false),
                ],
            ),
            "a",
            "go",
        ),
        (
            "an unhealthy pod waits while the budget is not met (IfHealthyBudget)",
            pdb(2, vec![m("a", Unhealthy, true), m("b", Healthy, false)]),
            "a",
            "exhausted",
        ),
        (
            "AlwaysAllow lets an unhealthy pod go",
            Budget {
                unhealthy_always_allowed: true,
                ..pdb(2, vec![m("a", Unhealthy, true), m("b", Healthy, false)])
            },
            "a",
            "go",
        ),
        (
            "a pod already draining costs nothing more (a restart resumes it)",
            pdb(5, vec![m("a", Draining, false), m("b", Healthy, false)]),
            "a",
            "go",
        ),
        (
            "desired 0: anything goes",
            pdb(0, vec![m("a", Healthy, true)]),
            "a",
            "go",
        ),
        (
            "a budget that does not cover the candidate does not hold it",
            pdb(9, vec![m("x", Healthy, false)]),
            "a",
            "go",
        ),
        (
            "no pod of a PDB waits for another (no order)",
            pdb(
                1,
                vec![
                    m("a-1", Healthy, true),
                    m("a-2", Healthy, true),
                    m("a-3", Healthy, false),
                ],
            ),
            "a-1",
            "go",
        ),
    ];
    for (what, budget, candidate, want) in table {
        assert_eq!(go(decide(candidate, &[budget])), want, "{what}");
    }
}

#[test]
fn a_budget_not_yet_known_holds_the_pod() {
    let b = Budget {
        desired_healthy: Err("not yet processed by the disruption controller".into()),
        ..pdb(0, vec![m("a", Healthy, true)])
    };
    assert_eq!(go(decide("a", &[b])), "unknown");
}

#[test]
fn every_budget_must_allow() {
    let loose = pdb(0, vec![m("a", Healthy, true), m("b", Healthy, false)]);
    let tight = Budget {
        source: Source::Pdb("tight".into()),
        ..pdb(2, vec![m("a", Healthy, true), m("b", Healthy, false)])
    };
    assert_eq!(decide("a", std::slice::from_ref(&loose)), Ok(()));
    let held = decide("a", &[loose, tight]).unwrap_err();
    assert_eq!(held.source(), &Source::Pdb("tight".into()));
    assert_eq!(
        held.to_string(),
        "PodDisruptionBudget tight allows no more disruptions now: 2 healthy, 2 needed, 0 draining"
    );
}

/// The StatefulSet's rule, as an implicit `maxUnavailable: 1` with its order.
#[test]
fn statefulset_one_at_a_time_highest_ordinal_first() {
    let table: Vec<(&str, Vec<Member>, i32, &str, &str)> = vec![
        (
            "alone",
            vec![
                m("db-0", Healthy, false),
                m("db-1", Healthy, true),
                m("db-2", Healthy, false),
            ],
            3,
            "db-1",
            "go",
        ),
        (
            "highest first",
            vec![
                m("db-0", Healthy, false),
                m("db-1", Healthy, true),
                m("db-2", Healthy, true),
            ],
            3,
            "db-1",
            "after",
        ),
        (
            "highest goes",
            vec![
                m("db-0", Healthy, false),
                m("db-1", Healthy, true),
                m("db-2", Healthy, true),
            ],
            3,
            "db-2",
            "go",
        ),
        (
            "ordinal 10 above 9",
            vec![m("db-9", Healthy, true), m("db-10", Healthy, true)],
            2,
            "db-9",
            "after",
        ),
        (
            "another draining",
            vec![
                m("db-0", Healthy, false),
                m("db-1", Healthy, true),
                m("db-2", Draining, false),
            ],
            3,
            "db-1",
            "exhausted",
        ),
        (
            "replacement terminating",
            vec![m("db-1", Healthy, true), m("db-2", Deleting, false)],
            2,
            "db-1",
            "exhausted",
        ),
        (
            "replacement not Ready",
            vec![m("db-1", Healthy, true), m("db-2", Unhealthy, false)],
            2,
            "db-1",
            "exhausted",
        ),
        (
            "replacement not created",
            vec![m("db-0", Healthy, false), m("db-1", Healthy, true)],
            3,
            "db-1",
            "exhausted",
        ),
        (
            "an unready requested pod goes first: draining it costs nothing",
            vec![m("db-1", Healthy, true), m("db-0", Unhealthy, true)],
            2,
            "db-0",
            "go",
        ),
        (
            "and the Ready one waits for it",
            vec![m("db-1", Healthy, true), m("db-0", Unhealthy, true)],
            2,
            "db-1",
            "exhausted",
        ),
        (
            "a higher request the budget holds does not block",
            vec![
                m("db-0", Unhealthy, true),
                m("db-1", Healthy, false),
                m("db-2", Healthy, true),
            ],
            3,
            "db-0",
            "go",
        ),
    ];
    for (what, members, replicas, candidate, want) in table {
        assert_eq!(
            go(decide(candidate, &[sts(replicas, members)])),
            want,
            "{what}"
        );
    }
}

#[test]
fn health_of_a_pod() {
    use Phase::*;
    let table = [
        (true, false, None, false, Healthy),
        (false, false, None, false, Unhealthy),
        (true, true, None, false, Deleting),
        (true, true, Some(Isolated), false, Deleting),
        (true, false, Some(Requested), false, Healthy),
        (true, false, Some(Isolated), false, Draining),
        (false, false, Some(Evicting), false, Draining),
        // A Job pod waiting for completion keeps working: not disrupted yet.
        (true, false, Some(Isolated), true, Healthy),
        (true, false, Some(Evicting), true, Draining),
    ];
    for (ready, deleting, phase, job, want) in table {
        assert_eq!(
            Member::health(ready, deleting, phase, job),
            want,
            "{ready} {deleting} {phase:?} {job}"
        );
    }
}

#[test]
fn desired_healthy_as_the_disruption_controller_computes_it() {
    let int = |n| Some(IntOrString::Int(n));
    let pct = |s: &str| Some(IntOrString::String(s.into()));
    let table = [
        // minAvailable number: as given, whatever the scale.
        (int(5), None, 6, Ok(5)),
        (int(5), None, 0, Ok(5)),
        // minAvailable percentage of expectedPods, rounded up.
        (pct("50%"), None, 5, Ok(3)),
        (pct("100%"), None, 6, Ok(6)),
        (pct("0%"), None, 6, Ok(0)),
        (pct("34%"), None, 3, Ok(2)),
        // maxUnavailable: expected minus it (a percentage rounded up), never below 0.
        (None, int(2), 6, Ok(4)),
        (None, int(9), 6, Ok(0)),
        (None, pct("25%"), 6, Ok(4)),
        (None, pct("10%"), 6, Ok(5)),
        (None, pct("100%"), 6, Ok(0)),
        // maxUnavailable wins when both are set (the API server refuses that anyway).
        (int(1), int(1), 3, Ok(2)),
        (None, None, 6, Ok(0)),
    ];
    for (min, max, expected, want) in table {
        assert_eq!(
            desired_healthy(min.as_ref(), max.as_ref(), expected),
            want,
            "{min:?} {max:?} {expected}"
        );
    }
    assert!(desired_healthy(pct("half").as_ref(), None, 6).is_err());
    assert!(desired_healthy(None, pct("-5%").as_ref(), 6).is_err());
}

#[test]
fn rollout_limit_of_a_deployment_without_a_pdb() {
    let int = |n| Some(IntOrString::Int(n));
    let pct = |s: &str| Some(IntOrString::String(s.into()));
    let table = [
        // The Deployment default, 25%, rounded down; never less than one at a time.
        (3, None, Ok(2)),
        (8, None, Ok(6)),
        (10, None, Ok(8)),
        (1, None, Ok(0)),
        (0, None, Ok(0)),
        // As the rollout says.
        (10, int(3), Ok(7)),
        (10, pct("50%"), Ok(5)),
        (3, pct("50%"), Ok(2)),
        // maxUnavailable 0 (surge-only rollouts): still one, or nothing would drain.
        (3, int(0), Ok(2)),
        (3, int(9), Ok(0)),
    ];
    for (replicas, max, want) in table {
        assert_eq!(
            rollout_desired_healthy(replicas, max.as_ref()),
            want,
            "{replicas} {max:?}"
        );
    }
    assert!(rollout_desired_healthy(3, pct("many").as_ref()).is_err());
}
