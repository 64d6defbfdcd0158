//! The NodePool's own disruption budgets (`spec.disruption.budgets`), read as
//! Karpenter reads them (sigs.k8s.io/karpenter v1.14 `Budget.IsActive`,
//! `NodePool.GetAllowedDisruptionsByReason`, `disruption.BuildDisruptionBudgetMapping`):
//! of the budgets in force for the reason, the smallest `nodes` (a percentage of the
//! pool's nodes rounded up), less the nodes already being disrupted. steward's rotation
//! replaces healthy nodes, which Karpenter calls `Drifted`. The v1 and v1beta1 shapes
//! differ only in `reasons`, which v1beta1 lacks. Pure: the caller brings the clock.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::core::v1::Node;
use serde::{Deserialize, Serialize};

use super::batch::NodeState;

/// The reason steward's rotation counts as, for budgets limited to some reasons.
pub const REASON: &str = "Drifted";
/// The taint Karpenter puts on a node it is disrupting.
pub const DISRUPTED_TAINT: &str = "karpenter.sh/disrupted";

/// One entry of `spec.disruption.budgets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Budget {
    /// An integer or a percentage (`"10%"`).
    pub nodes: String,
    /// The reasons it binds; absent binds every reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
    /// A cron schedule (UTC) opening its window; absent: always in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// How long the window stays open (a Go duration, `"8h"`, `"1h30m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// What the budgets allow now, every number shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allowance {
    /// The budgets as read from the NodePool.
    pub budgets: Vec<Budget>,
    /// The pool's nodes the percentages scale to.
    pub pool_nodes: usize,
    /// Nodes the budget in force allows at once (`None`: none is in force).
    pub budget: Option<usize>,
    /// Which entry of `spec.disruption.budgets` set it.
    pub from: Option<usize>,
    /// Nodes of the pool already being disrupted by others (not Ready, being
    /// deleted, or tainted `karpenter.sh/disrupted`).
    pub disrupting: usize,
    /// `max(budget - disrupting, 0)`: what this run may have in flight.
    pub allowed: Option<usize>,
}

/// Why a budget cannot be read. Karpenter fails closed on it; steward stops before
/// it changes anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NodePool spec.disruption.budgets[{index}]: {reason}")]
pub struct Invalid {
    /// Which budget (`usize::MAX`: the list itself).
    pub index: usize,
    /// What is wrong.
    pub reason: String,
}

/// The budgets of a NodePool object (`spec` as JSON; no list, no budget).
pub fn read(spec: &serde_json::Value) -> Result<Vec<Budget>, Invalid> {
    match spec.pointer("/disruption/budgets") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(v) => Vec::<Budget>::deserialize(v).map_err(|e| Invalid {
            index: usize::MAX,
            reason: e.to_string(),
        }),
    }
}

/// `nodes` scaled to the pool: an integer as is, a percentage of `total` rounded up
/// (as `intstr.GetScaledValueFromIntOrPercent(.., roundUp: true)`).
pub fn scaled(nodes: &str, total: usize) -> Result<usize, String> {
    let nodes = nodes.trim();
    if let Some(pct) = nodes.strip_suffix('%') {
        let pct: usize = pct
            .parse()
            .map_err(|_| format!("nodes {nodes:?} is not a whole percentage"))?;
        if pct > 100 {
            return Err(format!("nodes {nodes:?} is over 100%"));
        }
        return Ok((pct * total).div_ceil(100));
    }
    nodes
        .parse()
        .map_err(|_| format!("nodes {nodes:?} is neither a count nor a percentage"))
}

/// Whether the budget's window is open at `now`: always without a schedule; else
/// the schedule's next hit after `now - duration` is not after `now` (Karpenter's
/// rule, the schedule read in UTC, five fields or a `@daily`-style macro).
pub fn active(b: &Budget, now: Timestamp) -> Result<bool, String> {
    let (schedule, duration) = match (&b.schedule, &b.duration) {
        (None, None) => return Ok(true),
        (Some(s), Some(d)) => (s, d),
        _ => return Err("schedule and duration must be set together".into()),
    };
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(schedule)
        .map_err(|e| format!("schedule {schedule:?}: {e}"))?;
    // steward's one duration syntax reads a Go duration (`8h`, `1h30m0s`) as is.
    let duration = steward_runtime::duration::parse(duration)?;
    let from = now
        .checked_sub(duration)
        .map_err(|e| format!("duration: {e}"))?
        .to_zoned(TimeZone::UTC)
        .datetime();
    let next = cron
        .find_next_occurrence(&from, false)
        .map_err(|e| format!("schedule {schedule:?}: {e}"))?;
    Ok(next <= now.to_zoned(TimeZone::UTC).datetime())
}

/// How many of the pool's nodes the budgets scale to, and how many are already
/// being disrupted by others. Nodes steward itself has started on are not counted
/// here: this run resumes them, so they are part of its batch.
pub fn census(pool: &[Node]) -> (usize, usize) {
    let disrupting = pool
        .iter()
        .filter(|n| NodeState::of(n).is_none())
        .filter(|n| {
            n.metadata.deletion_timestamp.is_some()
                || !steward_kube::node::is_ready(n)
                || n.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|t| t.iter().any(|t| t.key == DISRUPTED_TAINT))
        })
        .count();
    (pool.len(), disrupting)
}

/// The allowance at `now` for a pool of `total` nodes, `disrupting` of them already
/// being disrupted.
pub fn allowance(
    budgets: Vec<Budget>,
    now: Timestamp,
    total: usize,
    disrupting: usize,
) -> Result<Allowance, Invalid> {
    let mut best: Option<(usize, usize)> = None;
    for (index, b) in budgets.iter().enumerate() {
        let invalid = |reason| Invalid { index, reason };
        let value = scaled(&b.nodes, total).map_err(invalid)?;
        if !active(b, now).map_err(invalid)? {
            continue;
        }
        if b.reasons
            .as_ref()
            .is_some_and(|r| !r.iter().any(|r| r == REASON))
        {
            continue;
        }
        if best.is_none_or(|(min, _)| value < min) {
            best = Some((value, index));
        }
    }
    Ok(Allowance {
        budgets,
        pool_nodes: total,
        budget: best.map(|(v, _)| v),
        from: best.map(|(_, i)| i),
        disrupting,
        allowed: best.map(|(v, _)| v.saturating_sub(disrupting)),
    })
}

/// The budget in force, in words, for errors and logs: `spec.disruption.budgets[0]
/// (nodes "20%") of 8 nodes = 2, 1 already disrupting`.
pub fn describe(a: &Allowance) -> String {
    match (a.from, a.budget) {
        (Some(i), Some(v)) => format!(
            "spec.disruption.budgets[{i}] (nodes {:?}) of {} nodes = {v}, {} already disrupting",
            a.budgets[i].nodes, a.pool_nodes, a.disrupting
        ),
        _ => "no budget in force for Drifted".into(),
    }
}

#[cfg(test)]
mod tests;
