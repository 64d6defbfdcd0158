//! Which nodes to drain: the batch size from the NodePool's allocation (the
//! node-manager formula, clamped), the oldest nodes first, nodes an interrupted
//! run left first of all, nodes with a protected pod passed over. And the drain
//! state a node carries, so a second run resumes. Pure.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use serde::Serialize;

use super::pods::{DO_NOT_DISRUPT, on_node};

/// Label Karpenter puts on the nodes of a NodePool.
pub const NODEPOOL_LABEL: &str = "karpenter.sh/nodepool";
/// Annotation recording a node's drain state, so a second run resumes.
pub const STATE_ANNOTATION: &str = "steward.io/drain-state";

/// A node's drain state, as recorded on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Cordoned by steward; no pod removed yet.
    Cordoned,
    /// Pods are being removed.
    Draining,
    /// No workload pods left.
    Drained,
}

impl NodeState {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cordoned => "cordoned",
            Self::Draining => "draining",
            Self::Drained => "drained",
        }
    }

    /// Reads the node's annotation.
    pub fn of(node: &Node) -> Option<Self> {
        match node.annotations().get(STATE_ANNOTATION).map(String::as_str) {
            Some("cordoned") => Some(Self::Cordoned),
            Some("draining") => Some(Self::Draining),
            Some("drained") => Some(Self::Drained),
            _ => None,
        }
    }
}

/// How the batch size is chosen.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    /// At least this many nodes when the drain rate is positive.
    pub min_batch: usize,
    /// At most this many nodes.
    pub max_batch: Option<usize>,
    /// Nodes chosen by hand (`--nodes`); replaces the computation's choice.
    pub nodes: Vec<String>,
}

/// The computation, every number shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Batch {
    /// Nodes in the NodePool that can be drained (not already drained).
    pub candidates: usize,
    /// max(memory, cpu) allocate rate in percent.
    pub max_allocate_rate: f64,
    /// (99 - max rate) / 100.
    pub drain_rate: f64,
    /// floor(candidates x drain rate), before clamping; negative above 99 %.
    pub formula_count: i64,
    /// The count after clamping to [0, candidates], --min-batch and --max-batch.
    pub count: usize,
    /// Nodes to drain, oldest first; nodes left by an interrupted run come first.
    pub nodes: Vec<String>,
    /// Of those, nodes an earlier run had started.
    pub resumed: Vec<String>,
    /// Nodes passed over, with why.
    pub skipped: Vec<(String, String)>,
    /// Whether `--nodes` chose the nodes instead of the formula.
    pub by_hand: bool,
}

/// Sizes the batch and picks the nodes (oldest first).
pub fn batch(nodes: &[Node], pods: &[Pod], max_allocate_rate: f64, opts: &BatchOptions) -> Batch {
    let mut sorted: Vec<&Node> = nodes
        .iter()
        .filter(|n| NodeState::of(n) != Some(NodeState::Drained))
        .collect();
    sorted.sort_by(|a, b| {
        a.creation_timestamp()
            .cmp(&b.creation_timestamp())
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    let candidates = sorted.len();
    let drain_rate = (99.0 - max_allocate_rate) / 100.0;
    // Rounded to avoid 8 x 0.36 = 2.8799999 flooring to 2 when it means 2.88.
    let formula_count = ((candidates as f64 * drain_rate) * 1e9).round() / 1e9;
    let formula_count = formula_count.floor() as i64;
    let mut count = usize::try_from(formula_count.max(0))
        .unwrap_or(0)
        .min(candidates);
    if drain_rate > 0.0 {
        count = count.max(opts.min_batch.min(candidates));
    }
    if let Some(max) = opts.max_batch {
        count = count.min(max);
    }

    let mut skipped = Vec::new();
    // Karpenter honours the annotation on a Node as on a pod; so does steward.
    let protected = |n: &Node| -> Option<String> {
        if n.annotations()
            .get(DO_NOT_DISRUPT)
            .is_some_and(|v| v == "true")
        {
            return Some(format!("the node has {DO_NOT_DISRUPT}=true"));
        }
        pods.iter()
            .find(|p| {
                on_node(p, &n.name_any())
                    && p.annotations()
                        .get(DO_NOT_DISRUPT)
                        .is_some_and(|v| v == "true")
            })
            .map(|p| {
                format!(
                    "pod {}/{} has {DO_NOT_DISRUPT}=true",
                    p.namespace().unwrap_or_default(),
                    p.name_any()
                )
            })
    };
    let (resumed, fresh): (Vec<&Node>, Vec<&Node>) =
        sorted.into_iter().partition(|n| NodeState::of(n).is_some());
    let mut chosen: Vec<String> = resumed.iter().map(|n| n.name_any()).collect();
    let resumed: Vec<String> = chosen.clone();
    if !opts.nodes.is_empty() {
        chosen = opts.nodes.clone();
        count = chosen.len();
    } else {
        for n in fresh {
            if chosen.len() >= count {
                break;
            }
            if let Some(why) = protected(n) {
                skipped.push((n.name_any(), why));
                continue;
            }
            chosen.push(n.name_any());
        }
    }
    Batch {
        candidates,
        max_allocate_rate,
        drain_rate,
        formula_count,
        count,
        nodes: chosen,
        resumed,
        skipped,
        by_hand: !opts.nodes.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::fixtures::{node, nodes8, pod};

    #[test]
    fn batch_follows_the_node_manager_formula_and_clamps() {
        let opts = BatchOptions {
            min_batch: 1,
            ..BatchOptions::default()
        };
        // README example: 8 nodes, 63 % -> drainRate 0.36 -> 2 nodes, oldest first (n7 is oldest).
        let b = batch(&nodes8(), &[], 63.0, &opts);
        assert_eq!((b.drain_rate, b.formula_count, b.count), (0.36, 2, 2));
        assert_eq!(b.nodes, ["n7", "n6"]);
        // Small pool: floor(5 x 0.09) = 0, raised to --min-batch 1.
        let five: Vec<Node> = nodes8().into_iter().take(5).collect();
        let b = batch(&five, &[], 90.0, &opts);
        assert_eq!((b.formula_count, b.count), (0, 1));
        // Above 99 %: the formula goes negative; no node, whatever --min-batch says.
        let b = batch(&five, &[], 99.5, &opts);
        assert!(b.formula_count < 0);
        assert_eq!(b.count, 0);
        assert!(b.nodes.is_empty());
        // --max-batch caps.
        let b = batch(
            &nodes8(),
            &[],
            10.0,
            &BatchOptions {
                min_batch: 1,
                max_batch: Some(3),
                nodes: vec![],
            },
        );
        assert_eq!(b.count, 3);
        // --nodes replaces the choice.
        let b = batch(
            &nodes8(),
            &[],
            10.0,
            &BatchOptions {
                nodes: vec!["n1".into()],
                ..opts.clone()
            },
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
            63.0,
            &BatchOptions {
                min_batch: 1,
                ..BatchOptions::default()
            },
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
            63.0,
            &BatchOptions {
                min_batch: 1,
                ..BatchOptions::default()
            },
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
        let b = batch(&nodes, &[], 63.0, &opts);
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
        assert_eq!(batch(&nodes, &[], 63.0, &opts).nodes, ["n7", "n6"]);
    }
}
