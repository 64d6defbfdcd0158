//! Which nodes to drain: the batch size from the NodePool's allocation (the
//! node-manager formula, clamped), the oldest nodes first, nodes an interrupted
//! run left first of all, nodes with a protected pod passed over. And the drain
//! state a node carries, so a second run resumes. Pure.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use serde::Serialize;

use super::budget::Allowance;
use super::handoff::{Claim, claim_of};
use super::pods::{DO_NOT_DISRUPT, do_not_disrupt, on_node};

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
    /// Drained nodes are handed off (gone) before the next ones start, so the
    /// NodePool's budget bounds the nodes disrupted at once ([`Batch::wave`])
    /// rather than the batch. Without it (`--keep-nodes`) every drained node stays
    /// disrupted until the run ends, and the budget bounds the batch.
    pub rolling: bool,
}

/// What set the batch's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    /// The formula, clamped to the drainable nodes.
    Formula,
    /// Raised to `--min-batch`.
    MinBatch,
    /// Lowered to `--max-batch`.
    MaxBatch,
    /// Lowered to what the NodePool's disruption budget allows.
    Budget,
    /// Chosen with `--nodes`.
    Nodes,
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
    /// Nodes an earlier run drained but did not hand off (it stopped first, or
    /// ran with `--keep-nodes`): this run hands them off.
    pub left_drained: Vec<String>,
    /// Nodes passed over, with why.
    pub skipped: Vec<(String, String)>,
    /// Whether `--nodes` chose the nodes instead of the formula.
    pub by_hand: bool,
    /// The NodePool's disruption budget now (`None`: no NodePool object).
    pub budget: Option<Allowance>,
    /// What set `count`: `batch = min(formula, budget)`, and which one won.
    pub limited_by: Limit,
    /// Nodes disrupted at once: rolling, what the budget allows (the batch is
    /// worked through that many at a time, each handed off before the next
    /// starts); otherwise the whole batch.
    pub wave: usize,
}

/// Sizes the batch and picks the nodes (oldest first).
pub fn batch(
    nodes: &[Node],
    pods: &[Pod],
    claims: &[Claim],
    max_allocate_rate: f64,
    opts: &BatchOptions,
    budget: Option<Allowance>,
) -> Batch {
    let drained = |n: &&Node| NodeState::of(n) == Some(NodeState::Drained);
    let mut left_drained: Vec<String> =
        nodes.iter().filter(drained).map(|n| n.name_any()).collect();
    left_drained.sort();
    let mut sorted: Vec<&Node> = nodes.iter().filter(|n| !drained(n)).collect();
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
    let mut limited_by = Limit::Formula;
    if drain_rate > 0.0 && opts.min_batch.min(candidates) > count {
        count = opts.min_batch.min(candidates);
        limited_by = Limit::MinBatch;
    }
    if let Some(max) = opts.max_batch.filter(|max| *max < count) {
        count = max;
        limited_by = Limit::MaxBatch;
    }
    let allowed = budget.as_ref().and_then(|b| b.allowed);
    // Rolling, a budget above 0 paces the batch (see `wave`) instead of cutting it.
    if let Some(allowed) = allowed.filter(|a| *a < count && (*a == 0 || !opts.rolling)) {
        count = allowed;
        limited_by = Limit::Budget;
    }

    let mut skipped = Vec::new();
    // Karpenter honours the annotation on a Node and its NodeClaim as on a pod;
    // so does steward.
    let protected = |n: &Node| -> Option<String> {
        if do_not_disrupt(n) {
            return Some(format!("the node has {DO_NOT_DISRUPT}=true"));
        }
        let provider_id = n.spec.as_ref().and_then(|s| s.provider_id.as_deref());
        if let Some(c) = claim_of(claims, &n.name_any(), provider_id).filter(|c| c.do_not_disrupt) {
            return Some(format!(
                "its NodeClaim {} has {DO_NOT_DISRUPT}=true",
                c.name
            ));
        }
        pods.iter()
            .find(|p| on_node(p, &n.name_any()) && do_not_disrupt(*p))
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
        limited_by = Limit::Nodes;
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
    // Nodes an earlier run started are disrupted already: they go first, together.
    let wave = match allowed {
        Some(a) if opts.rolling => a.max(resumed.len()).min(chosen.len()),
        _ => chosen.len(),
    };
    Batch {
        candidates,
        max_allocate_rate,
        drain_rate,
        formula_count,
        count,
        nodes: chosen,
        resumed,
        left_drained,
        skipped,
        by_hand: !opts.nodes.is_empty(),
        budget,
        limited_by,
        wave,
    }
}

#[cfg(test)]
mod tests;
