//! What a drain tells people and scripts: progress events as they happen, how
//! each node ended, and the report of the whole run (`-o json|yaml`). Data only.

use serde::Serialize;

use super::alloc::Allocation;
use super::batch::Batch;
use super::handoff::{HandOffReport, Replacement};
use super::preflight::Finding;

/// What happened, for logs, the live display and Slack.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// A node's drain began with this many pods to move.
    NodeStarted { node: String, pods: usize },
    /// A pod was evicted (or was already gone).
    PodEvicted { node: String, pod: String },
    /// A problem pod was deleted.
    PodDeleted {
        node: String,
        pod: String,
        reason: String,
    },
    /// A budget refused a pod's eviction; it will be retried.
    PodBlocked {
        node: String,
        pod: String,
        pdb: Option<String>,
        message: String,
    },
    /// A pod cannot be evicted at all.
    PodFailed {
        node: String,
        pod: String,
        reason: String,
    },
    /// Pods still on the node.
    Remaining { node: String, pods: usize },
}

/// How one node's drain ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum NodeOutcome {
    /// No workload pod of the start is left.
    Drained { seconds: u64 },
    /// The deadline passed with pods left.
    TimedOut { remaining: Vec<String> },
    /// Shutdown was asked for before the node was done.
    Interrupted { remaining: Vec<String> },
    /// An API call failed.
    Failed { reason: String },
}

impl NodeOutcome {
    /// Whether the node was drained.
    pub fn is_drained(&self) -> bool {
        matches!(self, Self::Drained { .. })
    }
}

/// The report of `steward drain -o json|yaml`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub nodepool: String,
    pub allocation: Allocation,
    pub plan: Batch,
    pub findings: Vec<Finding>,
    pub dry_run: bool,
    pub nodes: Vec<NodeReport>,
    pub rolled_back: Vec<String>,
    /// What became of each drained node.
    pub handoff: Vec<HandOffReport>,
    /// NodeClaims of the pool created during the run.
    pub replacements: Vec<Replacement>,
}

/// One node in the report.
#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub node: String,
    #[serde(flatten)]
    pub outcome: NodeOutcome,
}

/// The exit status of `steward drain`: 0 when every chosen node was drained (or
/// nothing had to be), 3 when Ctrl-C or SIGTERM stopped it first, 1 when a node
/// failed or timed out.
pub fn exit_of(all_drained: bool, interrupted: bool) -> steward_runtime::Exit {
    use steward_runtime::Exit;
    match (all_drained, interrupted) {
        (true, _) => Exit::Ok,
        (false, true) => Exit::Cancelled,
        (false, false) => Exit::Failed,
    }
}

/// The nodes a run cordoned that it uncordons at the end: those whose drain never
/// started and that no earlier run had started either (those stay for the next).
pub fn to_roll_back<'a>(
    cordoned: &'a [String],
    started: &std::collections::BTreeSet<String>,
    resumed: &[String],
) -> Vec<&'a String> {
    cordoned
        .iter()
        .filter(|n| !started.contains(*n) && !resumed.contains(n))
        .collect()
}

/// How many nodes of the report were drained.
pub fn drained(nodes: &[NodeReport]) -> usize {
    nodes.iter().filter(|n| n.outcome.is_drained()).count()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use steward_runtime::Exit;

    use super::*;

    #[test]
    fn exit_statuses() {
        let cases = [
            (true, false, Exit::Ok),
            (true, true, Exit::Ok),
            (false, true, Exit::Cancelled),
            (false, false, Exit::Failed),
        ];
        for (all, interrupted, want) in cases {
            assert_eq!(
                exit_of(all, interrupted),
                want,
                "all={all} interrupted={interrupted}"
            );
        }
    }

    #[test]
    fn only_nodes_never_started_are_rolled_back() {
        let cordoned: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        let started: BTreeSet<String> = ["a"].map(String::from).into();
        let resumed = vec!["c".to_string()];
        assert_eq!(to_roll_back(&cordoned, &started, &resumed), ["b", "d"]);
        assert!(to_roll_back(&[], &started, &resumed).is_empty());
        let report = |node: &str, outcome| NodeReport {
            node: node.into(),
            outcome,
        };
        let nodes = [
            report("a", NodeOutcome::Drained { seconds: 3 }),
            report("b", NodeOutcome::TimedOut { remaining: vec![] }),
            report("c", NodeOutcome::Drained { seconds: 1 }),
        ];
        assert_eq!(drained(&nodes), 2);
    }
}
