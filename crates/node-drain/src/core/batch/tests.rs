use serde_json::json;

use super::*;
use crate::core::fixtures::{node, nodes8, pod};
use crate::core::handoff::Claim;

#[test]
fn batch_follows_the_node_manager_formula_and_clamps() {
    let opts = BatchOptions {
        min_batch: 1,
        ..BatchOptions::default()
    };
    // README example: 8 nodes, 63 % -> drainRate 0.36 -> 2 nodes, oldest first (n7 is oldest).
    let b = batch(&nodes8(), &[], &[], 63.0, &opts, None);
    assert_eq!((b.drain_rate, b.formula_count, b.count), (0.36, 2, 2));
    assert_eq!(b.nodes, ["n7", "n6"]);
    // Small pool: floor(5 x 0.09) = 0, raised to --min-batch 1.
    let five: Vec<Node> = nodes8().into_iter().take(5).collect();
    let b = batch(&five, &[], &[], 90.0, &opts, None);
    assert_eq!((b.formula_count, b.count), (0, 1));
    // Above 99 %: the formula goes negative; no node, whatever --min-batch says.
    let b = batch(&five, &[], &[], 99.5, &opts, None);
    assert!(b.formula_count < 0);
    assert_eq!(b.count, 0);
    assert!(b.nodes.is_empty());
    // --max-batch caps.
    let b = batch(
        &nodes8(),
        &[],
        &[],
        10.0,
        &BatchOptions {
            min_batch: 1,
            max_batch: Some(3),
            nodes: vec![],
            rolling: false,
        },
        None,
    );
    assert_eq!(b.count, 3);
    // --nodes replaces the choice.
    let b = batch(
        &nodes8(),
        &[],
        &[],
        10.0,
        &BatchOptions {
            nodes: vec!["n1".into()],
            ..opts.clone()
        },
        None,
    );
    assert_eq!(b.nodes, ["n1"]);
}

#[test]
fn interrupted_nodes_come_first_and_drained_ones_are_left_alone() {
    let mut ns = nodes8();
    ns[2] = node("n2", "2026-01-06T00:00:00Z", Some("draining"));
    ns[7] = node("n7", "2026-01-01T00:00:00Z", Some("drained"));
    let b = batch(
        &ns,
        &[],
        &[],
        63.0,
        &BatchOptions {
            min_batch: 1,
            ..BatchOptions::default()
        },
        None,
    );
    assert_eq!(b.candidates, 7);
    assert_eq!(b.resumed, ["n2"]);
    assert_eq!(b.nodes, ["n2", "n6"]);
}

#[test]
fn do_not_disrupt_nodes_are_skipped_for_the_next_oldest() {
    let protected = pod(
        "p",
        "n7",
        json!({}),
        json!({ "metadata": { "annotations": { DO_NOT_DISRUPT: "true" } } }),
    );
    let b = batch(
        &nodes8(),
        &[protected],
        &[],
        63.0,
        &BatchOptions {
            min_batch: 1,
            ..BatchOptions::default()
        },
        None,
    );
    assert_eq!(b.nodes, ["n6", "n5"]);
    assert_eq!(b.skipped[0].0, "n7");
    assert!(b.skipped[0].1.starts_with("pod "), "{:?}", b.skipped);
    // On the Node itself, as Karpenter reads it too.
    let mut nodes = nodes8();
    let n7 = nodes.iter_mut().find(|n| n.name_any() == "n7").unwrap();
    n7.annotations_mut()
        .insert(DO_NOT_DISRUPT.into(), "true".into());
    let opts = BatchOptions {
        min_batch: 1,
        ..BatchOptions::default()
    };
    let b = batch(&nodes, &[], &[], 63.0, &opts, None);
    assert_eq!(b.nodes, ["n6", "n5"]);
    assert_eq!(
        b.skipped,
        [(
            "n7".to_string(),
            format!("the node has {DO_NOT_DISRUPT}=true")
        )]
    );
    // "false" protects nothing.
    let n7 = nodes.iter_mut().find(|n| n.name_any() == "n7").unwrap();
    n7.annotations_mut()
        .insert(DO_NOT_DISRUPT.into(), "false".into());
    assert_eq!(
        batch(&nodes, &[], &[], 63.0, &opts, None).nodes,
        ["n7", "n6"]
    );
}

#[test]
fn the_budget_caps_the_formula_and_says_so() {
    use crate::core::budget::{Budget, allowance};
    let now = "2026-12-01T12:00:00Z".parse().unwrap();
    let one = |disrupting| {
        let budgets = vec![Budget {
            nodes: "1".into(),
            ..Budget::default()
        }];
        Some(allowance(budgets, now, 8, disrupting).unwrap())
    };
    let opts = BatchOptions {
        min_batch: 1,
        ..BatchOptions::default()
    };
    // 8 nodes at 63 %: the formula says 2, the budget 1.
    let b = batch(&nodes8(), &[], &[], 63.0, &opts, one(0));
    assert_eq!(
        (b.formula_count, b.count, b.limited_by),
        (2, 1, Limit::Budget)
    );
    assert_eq!(b.nodes, ["n7"]);
    // Another node already in disruption uses the budget up, --min-batch or not.
    let b = batch(&nodes8(), &[], &[], 63.0, &opts, one(1));
    assert_eq!((b.count, b.limited_by), (0, Limit::Budget));
    assert!(b.nodes.is_empty());
    // A budget above the formula leaves it be; so does none at all.
    let roomy = Some(allowance(vec![], now, 8, 0).unwrap());
    let b = batch(&nodes8(), &[], &[], 63.0, &opts, roomy);
    assert_eq!((b.count, b.limited_by), (2, Limit::Formula));
    // A node an earlier run started is resumed even with the budget used up.
    let mut ns = nodes8();
    ns[2] = node("n2", "2026-01-06T00:00:00Z", Some("draining"));
    let b = batch(&ns, &[], &[], 63.0, &opts, one(1));
    assert_eq!(b.nodes, ["n2"]);
    // Rolling (nodes handed off before the next start), the budget paces the
    // batch instead of cutting it: (rate, disrupting, count, wave, limited by).
    let rolling = BatchOptions {
        rolling: true,
        ..opts.clone()
    };
    for (rate, disrupting, count, wave, limit) in [
        (63.0, 0, 2, 1, Limit::Formula),
        (10.0, 0, 7, 1, Limit::Formula),
        // A budget used up by others still stops it.
        (63.0, 1, 0, 0, Limit::Budget),
    ] {
        let b = batch(&nodes8(), &[], &[], rate, &rolling, one(disrupting));
        assert_eq!(
            (b.count, b.nodes.len(), b.wave, b.limited_by),
            (count, count, wave, limit),
            "rate {rate}, {disrupting} disrupting"
        );
    }
    // Without a budget, or not rolling, the wave is the batch.
    let b = batch(&nodes8(), &[], &[], 10.0, &rolling, None);
    assert_eq!((b.count, b.wave), (7, 7));
    let b = batch(&nodes8(), &[], &[], 63.0, &opts, one(0));
    assert_eq!((b.count, b.wave), (1, 1));
    // Resumed nodes are disrupted already: the first wave holds them all.
    let mut ns = nodes8();
    ns[2] = node("n2", "2026-01-06T00:00:00Z", Some("draining"));
    ns[3] = node("n3", "2026-01-05T00:00:00Z", Some("cordoned"));
    let b = batch(&ns, &[], &[], 63.0, &rolling, one(0));
    assert_eq!((b.nodes.len(), b.wave), (2, 2), "{:?}", b.nodes);
    // The clamps say which one won.
    let b = batch(&nodes8(), &[], &[], 90.0, &opts, None);
    assert_eq!((b.count, b.limited_by), (1, Limit::MinBatch));
    let capped = BatchOptions {
        max_batch: Some(1),
        ..opts.clone()
    };
    assert_eq!(
        batch(&nodes8(), &[], &[], 63.0, &capped, None).limited_by,
        Limit::MaxBatch
    );
}

#[test]
fn a_nodeclaim_with_do_not_disrupt_protects_its_node_and_drained_nodes_are_handed_off() {
    let claim = |name: &str, node: &str, protect: bool| Claim {
        name: name.into(),
        nodepool: Some("p".into()),
        node: Some(node.into()),
        provider_id: None,
        created: None,
        do_not_disrupt: protect,
    };
    let opts = BatchOptions {
        min_batch: 1,
        ..BatchOptions::default()
    };
    let claims = [claim("c7", "n7", true), claim("c6", "n6", false)];
    let b = batch(&nodes8(), &[], &claims, 63.0, &opts, None);
    assert_eq!(b.nodes, ["n6", "n5"]);
    assert_eq!(
        b.skipped,
        [(
            "n7".to_string(),
            format!("its NodeClaim c7 has {DO_NOT_DISRUPT}=true")
        )]
    );
    let mut ns = nodes8();
    ns[7] = node("n7", "2026-01-01T00:00:00Z", Some("drained"));
    ns[3] = node("n3", "2026-01-05T00:00:00Z", Some("drained"));
    let b = batch(&ns, &[], &[], 63.0, &opts, None);
    assert_eq!(b.left_drained, ["n3", "n7"]);
    assert!(!b.nodes.contains(&"n7".to_string()));
}
