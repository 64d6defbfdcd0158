//! The end of a rotation: each drained node handed to Karpenter by deleting its
//! NodeClaim (Karpenter's termination controller removes the instance and the
//! Node), or its Node deleted with `--delete-nodes` when no NodeClaim backs it, or
//! kept cordoned; then the wait until the Node is gone, bounded by
//! `--handoff-timeout`. Deleting is idempotent and Karpenter finishes on its own:
//! a run that dies after the delete leaves nothing behind, and a node left
//! `drained` (a crash before the delete) is handed off by the next run.

use std::time::Instant;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Preconditions};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};

use super::execute::Run;
use crate::core::handoff::{Action, Claim, HandOff, HandOffReport, claim_of, decide};
use crate::error::{Result, kube as kerr};
use crate::messages::Msg;
use steward_runtime::Localized;

/// The NodeClaims of `nodepool` (none where Karpenter's API is not served).
pub(super) async fn claims(client: &Client, nodepool: &str) -> Result<Vec<Claim>> {
    let lp = ListParams::default().labels(&format!("karpenter.sh/nodepool={nodepool}"));
    match steward_kube::error::ok_if_not_found(claims_api(client).list(&lp).await) {
        Ok(list) => Ok(list.map_or_else(Vec::new, |l| l.items.iter().map(Claim::of).collect())),
        Err(e) => Err(kerr("listing NodeClaims (karpenter.sh/v1)")(e)),
    }
}

fn claims_api(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim");
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "nodeclaims"),
    )
}

impl Run<'_> {
    /// Hands off every drained node, all at once, by the pool's NodeClaims as the
    /// run read them at its start (a drained node's NodeClaim was there then);
    /// each ends in the report, on stdout (text output) and in an Event on the node.
    /// `earlier` are nodes an earlier run left drained: kept again, they are not
    /// reported again.
    pub async fn hand_off_all(
        &self,
        nodes: &[String],
        earlier: &[String],
        claims: &[Claim],
    ) -> Vec<HandOffReport> {
        let ends = join_all(nodes.iter().map(|n| self.hand_off(n, claims))).await;
        let mut reports = Vec::new();
        for (node, (uid, outcome)) in nodes.iter().zip(ends) {
            if earlier.contains(node) && matches!(outcome, HandOff::Kept { .. }) {
                continue;
            }
            tracing::info!(%node, outcome = ?outcome, "hand-off ended");
            self.events.handed_off(node, uid.as_deref(), &outcome).await;
            if !self.settings.output.is_structured() {
                println!(
                    "{}",
                    Msg::HandOff {
                        node,
                        outcome: &outcome
                    }
                    .render(self.lang)
                );
            }
            reports.push(HandOffReport {
                node: node.clone(),
                outcome,
            });
        }
        reports
    }

    /// One node's hand-off: its UID (for the Event) and how it ended.
    async fn hand_off(&self, name: &str, claims: &[Claim]) -> (Option<String>, HandOff) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = match steward_kube::error::ok_if_not_found(nodes.get(name).await) {
            Ok(Some(n)) => n,
            // Gone already (Karpenter, or a person, was quicker): nothing to do.
            Ok(None) => return (None, HandOff::Deleted { seconds: 0 }),
            Err(e) => return (None, failed(format!("reading node {name}: {e}"))),
        };
        // The wait below tells this node from one that took its name by the UID.
        let Some(node_uid) = node.uid() else {
            return (None, failed(format!("node {name} has no UID")));
        };
        let uid = Some(node_uid.clone());
        let provider_id = node.spec.as_ref().and_then(|s| s.provider_id.as_deref());
        let s = self.settings;
        let claim = claim_of(claims, name, provider_id);
        let started = Instant::now();
        let nodeclaim = match decide(claim, s.keep_nodes, s.delete_nodes) {
            Action::Keep(why) => return (uid, HandOff::Kept { why }),
            Action::DeleteClaim(c) => {
                if let Err(e) = steward_kube::error::ok_if_not_found(
                    claims_api(self.client)
                        .delete(&c, &DeleteParams::default())
                        .await,
                ) {
                    return (uid, failed(format!("deleting NodeClaim {c}: {e}")));
                }
                tracing::info!(node = %name, nodeclaim = %c, "NodeClaim deleted");
                Some(c)
            }
            Action::DeleteNode => {
                // Only the node this run drained: not one that took its name since.
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: uid.clone(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                if let Err(e) = steward_kube::error::ok_if_not_found(nodes.delete(name, &dp).await)
                {
                    return (uid, failed(format!("deleting node {name}: {e}")));
                }
                None
            }
        };
        let gone = await_condition(nodes, name, conditions::is_deleted(&node_uid));
        let outcome = tokio::select! {
            r = tokio::time::timeout(s.handoff_timeout, gone) => match r {
                Ok(Ok(_)) => {
                    let seconds = started.elapsed().as_secs();
                    match nodeclaim {
                        Some(nodeclaim) => HandOff::Replaced { nodeclaim, seconds },
                        None => HandOff::Deleted { seconds },
                    }
                }
                Ok(Err(e)) => failed(format!("watching node {name}: {e}")),
                Err(_) => HandOff::TimedOut { nodeclaim },
            },
            // Stopped while waiting: Karpenter finishes what the delete started.
            () = self.shutdown.signaled() => HandOff::TimedOut { nodeclaim },
        };
        (uid, outcome)
    }
}

fn failed(reason: String) -> HandOff {
    HandOff::Failed { reason }
}
