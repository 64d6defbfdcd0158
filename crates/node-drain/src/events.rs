//! Publishes the Kubernetes Events of [`crate::core::events`] on the Nodes a drain
//! touches, through kube's [`Recorder`] (events.k8s.io/v1, in namespace `default`
//! as Nodes are cluster-scoped). A failed write is logged and never fails the drain.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::runtime::events::{Event, Recorder, Reporter};
use steward_runtime::{Lang, Localized};

use crate::core::events::{NodeEvent, kind_of};
use crate::core::handoff::HandOff;
use crate::core::removal::PodKey;
use crate::core::report::NodeOutcome;
use crate::messages::Msg;

/// The reporting controller of every Event (also the field manager of the drain's writes).
pub const CONTROLLER: &str = "steward-node-drain";

/// events.k8s.io rejects a note over 1 kB.
const NOTE_LIMIT: usize = 1024;

/// Records the Events of one run's nodes; cheap to clone.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // Recorder has no Debug
pub struct Events {
    recorder: Recorder,
    lang: Lang,
    nodepool: Arc<str>,
    batch: Arc<[String]>,
}

impl Events {
    /// A publisher for the run draining `batch` of `nodepool`, reporting as
    /// `steward-node-drain` from this host.
    pub fn new(client: kube::Client, lang: Lang, nodepool: &str, batch: &[String]) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER.into(),
            // kube falls back to the hostname (the Job's pod name in a cluster).
            instance: None,
        };
        Self {
            recorder: Recorder::new(client, reporter),
            lang,
            nodepool: nodepool.into(),
            batch: batch.into(),
        }
    }

    /// `DrainStarted`: `node` is cordoned and its drain begins with `pods` to move.
    pub async fn started(&self, node: &str, uid: Option<&str>, pods: usize) {
        let e = NodeEvent::Started {
            nodepool: &self.nodepool,
            batch: &self.batch,
            pods,
        };
        self.publish(node, uid, e).await;
    }

    /// How `node`'s drain ended (`Drained`, `DrainTimedOut`, ...).
    pub async fn ended(
        &self,
        node: &str,
        uid: Option<&str>,
        outcome: &NodeOutcome,
        evicted: usize,
        deleted: usize,
    ) {
        let e = NodeEvent::Ended {
            outcome,
            evicted,
            deleted,
        };
        self.publish(node, uid, e).await;
    }

    /// `Evicted`: `pod` left `node` through the Eviction API. The pod is the Event's
    /// related object: kube's Recorder folds Events of the same reason on the same
    /// objects into one series, and each pod's eviction is its own.
    pub async fn evicted(&self, node: &str, uid: Option<&str>, pod: &PodKey) {
        let related = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(pod.ns.clone()),
            name: Some(pod.name.clone()),
            uid: Some(pod.uid.clone()),
            ..ObjectReference::default()
        };
        let name = pod.to_string();
        self.publish_related(node, uid, NodeEvent::Evicted { pod: &name }, Some(related))
            .await;
    }

    /// `ReplacementStarted`: `deployment` was restarted so `pod`'s replacement is
    /// Ready before the pod leaves `node`.
    pub async fn surged(&self, node: &str, uid: Option<&str>, pod: &str, deployment: &str) {
        self.publish(node, uid, NodeEvent::Surged { pod, deployment })
            .await;
    }

    /// How `node`'s hand-off ended (`HandedOff`, `NodeKept`, `HandOffTimedOut`, ...).
    pub async fn handed_off(&self, node: &str, uid: Option<&str>, outcome: &HandOff) {
        self.publish(node, uid, NodeEvent::HandedOff { outcome })
            .await;
    }

    /// `Uncordoned`: the run ended before `node`'s drain started.
    pub async fn uncordoned(&self, node: &str, uid: Option<&str>) {
        let e = NodeEvent::Uncordoned {
            nodepool: &self.nodepool,
        };
        self.publish(node, uid, e).await;
    }

    /// `DrainBlocked`: a budget refused evicting `pod` from `node`.
    pub async fn blocked(
        &self,
        node: &str,
        uid: Option<&str>,
        pod: &str,
        pdb: Option<&str>,
        message: &str,
    ) {
        let e = NodeEvent::Blocked { pod, pdb, message };
        self.publish(node, uid, e).await;
    }

    /// Records `e` on the Node `node`.
    async fn publish(&self, node: &str, uid: Option<&str>, e: NodeEvent<'_>) {
        self.publish_related(node, uid, e, None).await;
    }

    /// Records `e` on the Node `node`, with `related` as its secondary object.
    async fn publish_related(
        &self,
        node: &str,
        uid: Option<&str>,
        e: NodeEvent<'_>,
        related: Option<ObjectReference>,
    ) {
        let kind = kind_of(&e);
        let reference = node_ref(node, uid);
        let ev = Event {
            type_: kind.type_,
            reason: kind.reason.into(),
            note: Some(truncate(Msg::NodeEvent(e).render(self.lang))),
            action: kind.action.into(),
            secondary: related,
        };
        if let Err(error) = self.recorder.publish(&ev, &reference).await {
            tracing::warn!(%node, reason = kind.reason, %error, "recording an Event on the node failed");
        }
    }
}

/// A reference to the Node, as `kubectl describe node` finds its Events: by its UID,
/// or by its name as the kubelet's UID when the node could not be read.
fn node_ref(node: &str, uid: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some(<Node as kube::Resource>::kind(&()).into_owned()),
        name: Some(node.into()),
        uid: Some(uid.unwrap_or(node).into()),
        ..ObjectReference::default()
    }
}

/// Cuts `note` to the API's limit at a character boundary, ending in an ellipsis.
fn truncate(mut note: String) -> String {
    if note.len() <= NOTE_LIMIT {
        return note;
    }
    let mut end = NOTE_LIMIT - '…'.len_utf8();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note.truncate(end);
    note.push('…');
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_to_the_api_limit_on_a_char_boundary() {
        let cases = [
            ("short".to_string(), "short".to_string()),
            ("a".repeat(1024), "a".repeat(1024)),
        ];
        for (note, want) in cases {
            assert_eq!(truncate(note), want);
        }
        for long in ["a".repeat(2000), "파드".repeat(500)] {
            let cut = truncate(long);
            assert!(
                cut.len() <= NOTE_LIMIT && cut.ends_with('…'),
                "{}",
                cut.len()
            );
        }
    }
}
