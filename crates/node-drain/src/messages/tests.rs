use super::*;
use crate::core::batch::{BatchOptions, batch};
use crate::core::budget::{Budget, allowance};
use crate::core::fixtures::nodes8;

#[test]
fn the_plan_names_the_budget_and_which_limit_won() {
    let now = "2026-12-01T12:00:00Z".parse().unwrap();
    let budgets = vec![Budget {
        nodes: "1".into(),
        ..Budget::default()
    }];
    let opts = BatchOptions {
        min_batch: 1,
        ..BatchOptions::default()
    };
    let capped = batch(
        &nodes8(),
        &[],
        &[],
        63.0,
        &opts,
        Some(allowance(budgets.clone(), now, 8, 0).unwrap()),
    );
    let roomy = batch(
        &nodes8(),
        &[],
        &[],
        63.0,
        &opts,
        Some(allowance(vec![], now, 8, 0).unwrap()),
    );
    let rolling = BatchOptions {
        rolling: true,
        ..opts.clone()
    };
    let paced = batch(
        &nodes8(),
        &[],
        &[],
        63.0,
        &rolling,
        Some(allowance(budgets.clone(), now, 8, 0).unwrap()),
    );
    let none = batch(&nodes8(), &[], &[], 63.0, &opts, None);
    for (b, en, ko) in [
        (
            &capped,
            "budgets[0] nodes \"1\" of 8 nodes = 1, 0 already disrupting -> allows 1\nbatch = min(formula, budget) = 1 (the budget won)",
            "batch = min(계산값, budget) = 1 (budget 적용)",
        ),
        (
            &paced,
            "allows 1\nbatch = 2 (the formula won), 1 at a time: each node is handed off and gone before the next starts",
            "batch = 2 (계산값 적용), 한 번에 1대씩",
        ),
        (
            &roomy,
            "none in force for Drifted",
            "Drifted에 적용되는 budget 없음",
        ),
        (&none, "no NodePool object", "NodePool 오브젝트 없음"),
    ] {
        let msg = Msg::Plan { nodes: 8, b };
        assert!(msg.en().contains(en), "{}", msg.en());
        assert!(msg.ko().contains(ko), "{}", msg.ko());
    }
}

#[test]
fn the_summary_names_what_was_replaced_kept_and_new() {
    let h = |node: &str, outcome| HandOffReport {
        node: node.into(),
        outcome,
    };
    let handoff = [
        h(
            "a",
            HandOff::Replaced {
                nodeclaim: "p-1".into(),
                seconds: 4,
            },
        ),
        h(
            "b",
            HandOff::Kept {
                why: Kept::NoNodeClaim,
            },
        ),
        h(
            "c",
            HandOff::TimedOut {
                nodeclaim: Some("p-3".into()),
            },
        ),
    ];
    let new = [
        Replacement {
            nodeclaim: "p-9".into(),
            node: Some("x".into()),
        },
        Replacement {
            nodeclaim: "p-10".into(),
            node: None,
        },
    ];
    let msg = Msg::Summary {
        cluster: "prod",
        nodepool: "p",
        drained: 3,
        total: 3,
        rolled_back: &[],
        handoff: &handoff,
        replacements: &new,
    };
    assert_eq!(
        msg.en(),
        "Node drain on prod NodePool p finished: 3/3 nodes drained; replaced: a; kept cordoned: b; hand-off not finished: c; new: x (NodeClaim p-9), NodeClaim p-10 (launching)"
    );
    assert!(
        msg.ko()
            .contains("교체됨: a; cordon 유지: b; 넘기기 미완료: c; 새 노드: x (NodeClaim p-9)"),
        "{}",
        msg.ko()
    );
    let quiet = Msg::Summary {
        cluster: "prod",
        nodepool: "p",
        drained: 3,
        total: 3,
        rolled_back: &[],
        handoff: &[],
        replacements: &[],
    };
    assert_eq!(
        quiet.en(),
        "Node drain on prod NodePool p finished: 3/3 nodes drained"
    );
}
