//! What becomes of a drained node: handed to Karpenter by deleting its NodeClaim
//! (Karpenter's termination controller then removes the instance and the Node,
//! its finalizer doing the cloud side), deleted as a bare Node with
//! `--delete-nodes` when no NodeClaim backs it, or left cordoned. And which
//! NodeClaims of the pool came up during the run: the replacements. Pure.

use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde::Serialize;

use super::batch::NODEPOOL_LABEL;
use super::pods::do_not_disrupt;

/// A NodeClaim as the hand-off reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub name: String,
    /// Label `karpenter.sh/nodepool`.
    pub nodepool: Option<String>,
    /// `status.nodeName`, once the node registered.
    pub node: Option<String>,
    /// `status.providerID`, once launched.
    pub provider_id: Option<String>,
    pub created: Option<Timestamp>,
    /// `karpenter.sh/do-not-disrupt: "true"` on the NodeClaim.
    pub do_not_disrupt: bool,
}

impl Claim {
    /// Reads a `karpenter.sh` NodeClaim object.
    pub fn of(o: &DynamicObject) -> Self {
        let status = |field: &str| {
            o.data
                .pointer(&format!("/status/{field}"))
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        Self {
            name: o.name_any(),
            nodepool: o.labels().get(NODEPOOL_LABEL).cloned(),
            node: status("nodeName"),
            provider_id: status("providerID"),
            created: o.creation_timestamp().map(|t| t.0),
            do_not_disrupt: do_not_disrupt(o),
        }
    }
}

/// The NodeClaim behind `node` (by provider ID, else by node name).
pub fn claim_of<'a>(
    claims: &'a [Claim],
    node: &str,
    provider_id: Option<&str>,
) -> Option<&'a Claim> {
    claims
        .iter()
        .find(|c| provider_id.is_some() && c.provider_id.as_deref() == provider_id)
        .or_else(|| claims.iter().find(|c| c.node.as_deref() == Some(node)))
}

/// What to do with a drained node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delete this NodeClaim and wait for the Node to go.
    DeleteClaim(String),
    /// Delete the Node object (`--delete-nodes`, no NodeClaim behind it).
    DeleteNode,
    /// Leave it cordoned, with why.
    Keep(Kept),
}

/// Why a drained node stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kept {
    /// `--keep-nodes`.
    KeepNodes,
    /// No NodeClaim backs it and `--delete-nodes` was not given.
    NoNodeClaim,
}

/// The hand-off of `node`, whose NodeClaim (if any) is `claim`.
pub fn decide(claim: Option<&Claim>, keep_nodes: bool, delete_nodes: bool) -> Action {
    match (keep_nodes, claim, delete_nodes) {
        (true, _, _) => Action::Keep(Kept::KeepNodes),
        (false, Some(c), _) => Action::DeleteClaim(c.name.clone()),
        (false, None, true) => Action::DeleteNode,
        (false, None, false) => Action::Keep(Kept::NoNodeClaim),
    }
}

/// How a node's hand-off ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum HandOff {
    /// Its NodeClaim was deleted and the Node is gone.
    Replaced { nodeclaim: String, seconds: u64 },
    /// The Node object was deleted (`--delete-nodes`).
    Deleted { seconds: u64 },
    /// Left cordoned.
    Kept { why: Kept },
    /// The Node was still there at `--handoff-timeout`; Karpenter goes on with it.
    TimedOut { nodeclaim: Option<String> },
    /// An API call failed; the node stays cordoned and drained for the next run.
    Failed { reason: String },
}

impl HandOff {
    /// Whether the node is gone, so it no longer counts against the budget.
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::Replaced { .. } | Self::Deleted { .. })
    }

    /// Whether the hand-off did what the run was asked to do.
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            Self::Replaced { .. } | Self::Deleted { .. } | Self::Kept { .. }
        )
    }
}

/// One node's hand-off in the report.
#[derive(Debug, Clone, Serialize)]
pub struct HandOffReport {
    pub node: String,
    #[serde(flatten)]
    pub outcome: HandOff,
}

/// A NodeClaim of the pool created during the run: capacity that replaced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replacement {
    pub nodeclaim: String,
    /// Its Node, once registered.
    pub node: Option<String>,
}

/// The NodeClaims of `nodepool` created at or after `since`, oldest first.
pub fn replacements(claims: &[Claim], nodepool: &str, since: Timestamp) -> Vec<Replacement> {
    let mut new: Vec<&Claim> = claims
        .iter()
        .filter(|c| c.nodepool.as_deref() == Some(nodepool))
        .filter(|c| c.created.is_some_and(|t| t >= since))
        .collect();
    new.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
    new.into_iter()
        .map(|c| Replacement {
            nodeclaim: c.name.clone(),
            node: c.node.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claim(name: &str, pool: &str, node: Option<&str>, created: &str) -> Claim {
        let o: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": { "name": name, "creationTimestamp": created, "labels": { NODEPOOL_LABEL: pool } },
            "status": { "nodeName": node.unwrap_or(""), "providerID": node.map(|n| format!("kwok://{n}")) }
        }))
        .unwrap();
        Claim::of(&o)
    }

    #[test]
    fn a_claim_is_read_and_found_by_provider_id_then_name() {
        let a = claim("a", "p", Some("n1"), "2026-12-01T00:00:00Z");
        assert_eq!(a.node.as_deref(), Some("n1"));
        assert_eq!(a.provider_id.as_deref(), Some("kwok://n1"));
        let pending = claim("b", "p", None, "2026-12-01T00:00:00Z");
        assert_eq!((pending.node, pending.provider_id), (None, None));
        let claims = [claim("a", "p", Some("n1"), "2026-12-01T00:00:00Z")];
        assert_eq!(
            claim_of(&claims, "other", Some("kwok://n1")).unwrap().name,
            "a"
        );
        assert_eq!(claim_of(&claims, "n1", None).unwrap().name, "a");
        assert!(claim_of(&claims, "n2", Some("kwok://n2")).is_none());
    }

    #[test]
    fn the_hand_off_follows_the_flags() {
        let c = claim("a", "p", Some("n1"), "2026-12-01T00:00:00Z");
        let cases = [
            (Some(&c), false, false, Action::DeleteClaim("a".into())),
            (Some(&c), false, true, Action::DeleteClaim("a".into())),
            (Some(&c), true, true, Action::Keep(Kept::KeepNodes)),
            (None, true, true, Action::Keep(Kept::KeepNodes)),
            (None, false, true, Action::DeleteNode),
            (None, false, false, Action::Keep(Kept::NoNodeClaim)),
        ];
        for (claim, keep, delete, want) in cases {
            assert_eq!(
                decide(claim, keep, delete),
                want,
                "keep={keep} delete={delete}"
            );
        }
        assert!(!HandOff::TimedOut { nodeclaim: None }.is_done());
        assert!(
            HandOff::Kept {
                why: Kept::NoNodeClaim
            }
            .is_done()
        );
    }

    #[test]
    fn replacements_are_the_pools_claims_created_during_the_run() {
        let since: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let claims = [
            claim("old", "p", Some("n1"), "2026-12-01T09:59:59Z"),
            claim("new2", "p", None, "2026-12-01T10:05:00Z"),
            claim("new1", "p", Some("n9"), "2026-12-01T10:00:00Z"),
            claim("other", "q", Some("n8"), "2026-12-01T10:01:00Z"),
        ];
        let got = replacements(&claims, "p", since);
        let names: Vec<_> = got.iter().map(|r| r.nodeclaim.as_str()).collect();
        assert_eq!(names, ["new1", "new2"]);
        assert_eq!(got[0].node.as_deref(), Some("n9"));
    }
}
