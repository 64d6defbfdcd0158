//! Whether a pod may leave load balancing now: its disruption budgets, counting
//! every pod steward has already taken out. Pure.
//!
//! A dry-run eviction cannot answer this: it does not consume the budget, and a
//! pod steward has isolated (Service labels removed) often drops out of its
//! PodDisruptionBudget's selector too, so the API server stops counting it as
//! disrupted. Six concurrent evictions under `minAvailable: 5` would all pass the
//! dry run and all be isolated at once. Here every budget is evaluated over the
//! pods it covered *before* steward touched them (current labels plus the labels
//! isolation removed), and a pod steward is draining counts as disrupted.
//!
//! One mechanism for every case:
//! - a PodDisruptionBudget (`minAvailable` / `maxUnavailable`, numbers or
//!   percentages, rounded up as the disruption controller does; `expectedPods`
//!   from its status for the scaled forms; `unhealthyPodEvictionPolicy`);
//! - a StatefulSet's own rule, one pod at a time, highest ordinal first: an
//!   implicit budget of `maxUnavailable: 1` over its `replicas`, with that order;
//! - a Deployment or ReplicaSet pod no PodDisruptionBudget covers: an implicit
//!   budget of its own rollout limit (`rollingUpdate.maxUnavailable`, rounded down
//!   as the Deployment controller does, at least 1; a bare ReplicaSet: 1). An
//!   evicter limits itself (the VPA updater's eviction tolerance, Karpenter's
//!   budgets) by counting evictions that *succeeded*; steward answers 429, so the
//!   evicter moves on to the next pod and would otherwise get every replica
//!   isolated at once (on real nodes: all three replicas out of the Service while
//!   their replacements started).
//!
//! A pod under several budgets goes only when every one allows it.

use std::cmp::Reverse;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::core::state::Phase;

/// How a covered pod counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Ready, not being deleted, not taken out by steward.
    Healthy,
    /// Not Ready (and not being deleted).
    Unhealthy,
    /// steward has isolated it or is evicting it.
    Draining,
    /// Being deleted.
    Deleting,
}

/// One pod a budget covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Pod name.
    pub name: String,
    /// How it counts.
    pub health: Health,
    /// Its eviction was asked for and it waits to start draining.
    pub requested: bool,
}

impl Member {
    /// How a pod counts, from what the controller reads of it. `drain` is its
    /// recorded phase; `waits_for_completion` marks a Job pod, which keeps working
    /// while its eviction waits and so is not yet disrupted.
    pub fn health(
        ready: bool,
        deleting: bool,
        drain: Option<Phase>,
        waits_for_completion: bool,
    ) -> Health {
        match (deleting, drain) {
            (true, _) => Health::Deleting,
            (false, Some(Phase::Evicting)) => Health::Draining,
            (false, Some(Phase::Isolated)) if !waits_for_completion => Health::Draining,
            _ if ready => Health::Healthy,
            _ => Health::Unhealthy,
        }
    }
}

/// What a budget is, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A PodDisruptionBudget.
    Pdb(String),
    /// A StatefulSet's one-at-a-time rule.
    StatefulSet(String),
    /// The rollout limit of a Deployment (or ReplicaSet) no PDB covers: `Kind name`.
    Rollout(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pdb(n) => write!(f, "PodDisruptionBudget {n}"),
            Self::StatefulSet(n) => write!(f, "StatefulSet {n}"),
            Self::Rollout(n) => write!(f, "{n}'s rollout limit (no PodDisruptionBudget)"),
        }
    }
}

/// One budget and the pods it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Where it comes from.
    pub source: Source,
    /// How many covered pods must stay healthy (`Err`: cannot be known now, why).
    pub desired_healthy: Result<i32, String>,
    /// `unhealthyPodEvictionPolicy: AlwaysAllow`: an unhealthy pod may always go.
    pub unhealthy_always_allowed: bool,
    /// Drain the highest ordinal first (a StatefulSet).
    pub ordinal_order: bool,
    /// The pods it covers, the candidate among them.
    pub members: Vec<Member>,
}

/// Why a pod waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// The budget allows no further disruption now.
    Exhausted {
        /// The budget.
        source: Source,
        /// Covered pods healthy now.
        healthy: i32,
        /// How many must stay healthy.
        desired: i32,
        /// Covered pods steward is draining now.
        draining: usize,
    },
    /// Another pod of the budget goes first (StatefulSet order).
    After {
        /// The budget.
        source: Source,
        /// The pod that goes first.
        pod: String,
    },
    /// The budget cannot be evaluated (not yet processed by the disruption
    /// controller, or an invalid value); the pod waits rather than guess.
    Unknown {
        /// The budget.
        source: Source,
        /// What is missing.
        why: String,
    },
    /// steward's count allows it but the API server's budget check (the dry-run
    /// eviction) does not yet: the disruption controller updates a budget's status
    /// a moment after the EndpointSlice controller adds a replacement, or the
    /// other way round. The pod stays queued and asks again.
    Refused {
        /// The budget.
        source: Source,
        /// The API server's message.
        message: String,
    },
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exhausted {
                source,
                healthy,
                desired,
                draining,
            } => write!(
                f,
                "{source} allows no more disruptions now: {healthy} healthy, {desired} needed, {draining} draining"
            ),
            Self::After { source, pod } => write!(f, "{pod} goes first ({source})"),
            Self::Unknown { source, why } => write!(f, "{source}: {why}"),
            Self::Refused { source, message } => {
                write!(f, "{source}: the API server refuses for now ({message})")
            }
        }
    }
}

impl Hold {
    /// The budget holding the pod.
    pub fn source(&self) -> &Source {
        match self {
            Self::Exhausted { source, .. }
            | Self::After { source, .. }
            | Self::Unknown { source, .. }
            | Self::Refused { source, .. } => source,
        }
    }
}

/// Whether `member` may be disrupted under `budget` now, by the disruption
/// controller's rule: a healthy pod when more than `desired_healthy` are healthy;
/// an unhealthy one when the budget is met (`IfHealthyBudget`) or always
/// (`AlwaysAllow`); one already disrupted or deleting costs nothing more.
fn allows(budget: &Budget, member: &Member) -> Result<(), Hold> {
    let desired = budget
        .desired_healthy
        .clone()
        .map_err(|why| Hold::Unknown {
            source: budget.source.clone(),
            why,
        })?;
    let count = |h: Health| budget.members.iter().filter(|m| m.health == h).count();
    let healthy = i32::try_from(count(Health::Healthy)).unwrap_or(i32::MAX);
    let ok = match member.health {
        Health::Healthy => healthy > desired,
        Health::Unhealthy => budget.unhealthy_always_allowed || healthy >= desired,
        Health::Draining | Health::Deleting => true,
    };
    if ok {
        return Ok(());
    }
    Err(Hold::Exhausted {
        source: budget.source.clone(),
        healthy,
        desired,
        draining: count(Health::Draining),
    })
}

/// Ordinal of a pod name's trailing `-N`.
fn ordinal(name: &str) -> Option<u32> {
    name.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

/// Whether pod `candidate` may leave load balancing now under all of `budgets`
/// (those that cover it). `Err` names the first budget that holds it.
pub fn decide(candidate: &str, budgets: &[Budget]) -> Result<(), Hold> {
    for budget in budgets {
        let Some(me) = budget.members.iter().find(|m| m.name == candidate) else {
            continue;
        };
        allows(budget, me)?;
        if budget.ordinal_order {
            // Among the requests this budget would let go, unhealthy pods first (they
            // cost nothing), then the highest ordinal.
            let rank = |m: &Member| (m.health == Health::Healthy, Reverse(ordinal(&m.name)));
            let first = budget
                .members
                .iter()
                .filter(|m| m.requested && allows(budget, m).is_ok())
                .min_by_key(|m| rank(m));
            if let Some(first) = first
                && first.name != candidate
                && rank(first) < rank(me)
            {
                return Err(Hold::After {
                    source: budget.source.clone(),
                    pod: first.name.clone(),
                });
            }
        }
    }
    Ok(())
}

/// `value` of `total`, rounded up or down, as `intstr.GetScaledValueFromIntOrPercent`.
fn scaled_as(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .filter(|p| *p >= 0)
                .ok_or_else(|| format!("{s:?} is neither a number nor a percentage"))?;
            let v = (pct * i64::from(total) + if round_up { 99 } else { 0 }) / 100;
            Ok(i32::try_from(v).unwrap_or(i32::MAX))
        }
    }
}

/// `value` of `total`, rounded up (how the disruption controller scales).
fn scaled(value: &IntOrString, total: i32) -> Result<i32, String> {
    scaled_as(value, total, true)
}

/// How many pods of a Deployment no PodDisruptionBudget covers must stay healthy:
/// `replicas` less its rollout's `maxUnavailable` (default 25%, a percentage
/// rounded down as the Deployment controller does), less at least 1 so that a
/// drain can always progress (`Recreate`, `maxUnavailable: 0` and a bare
/// ReplicaSet: 1).
pub fn rollout_desired_healthy(
    replicas: i32,
    max_unavailable: Option<&IntOrString>,
) -> Result<i32, String> {
    let default = IntOrString::String("25%".into());
    let unavailable = scaled_as(max_unavailable.unwrap_or(&default), replicas, false)?;
    Ok((replicas - unavailable.max(1)).max(0))
}

/// How many covered pods must stay healthy, as the disruption controller computes
/// it: `minAvailable` as given (a percentage of `expected`, rounded up);
/// `maxUnavailable` subtracted from `expected` (rounded up, never below 0).
/// `expected` is the budget's `status.expectedPods` (the owners' scale). Neither
/// field set: nothing is required.
pub fn desired_healthy(
    min_available: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    expected: i32,
) -> Result<i32, String> {
    if let Some(max) = max_unavailable {
        return Ok((expected - scaled(max, expected)?).max(0));
    }
    match min_available {
        Some(min) => scaled(min, expected),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests;
