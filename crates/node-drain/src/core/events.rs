//! The Kubernetes Events a drain records on each Node it drains (what an SRE sees in
//! `kubectl describe node` and `kubectl get events`): which happening gets which
//! type, reason and action. The note is [`crate::messages::Msg::NodeEvent`]. Pure.

use kube::runtime::events::EventType;

use super::handoff::HandOff;
use super::report::NodeOutcome;

/// Something that happened to one node of the batch.
#[derive(Debug, Clone, Copy)]
pub enum NodeEvent<'a> {
    /// The node is cordoned and its drain begins with `pods` workload pods.
    Started {
        nodepool: &'a str,
        batch: &'a [String],
        pods: usize,
    },
    /// The node's drain ended; `evicted` and `deleted` count the pods removed.
    Ended {
        outcome: &'a NodeOutcome,
        evicted: usize,
        deleted: usize,
    },
    /// `deployment` was restarted so that `pod`'s replacement is Ready before the
    /// pod leaves (make-before-break).
    Surged { pod: &'a str, deployment: &'a str },
    /// `pod` was evicted from the node through the Eviction API.
    Evicted { pod: &'a str },
    /// The drained node's hand-off ended.
    HandedOff { outcome: &'a HandOff },
    /// The node was uncordoned: the run ended before its drain started.
    Uncordoned { nodepool: &'a str },
    /// A budget refused the eviction of `pod` (first refusal per pod); the drain
    /// waits and asks again.
    Blocked {
        pod: &'a str,
        pdb: Option<&'a str>,
        message: &'a str,
    },
}

/// The type, reason (CamelCase) and action of an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub type_: EventType,
    pub reason: &'static str,
    pub action: &'static str,
}

/// How `e` is recorded.
pub fn kind_of(e: &NodeEvent<'_>) -> Kind {
    let (type_, reason, action) = match e {
        NodeEvent::Started { .. } => (EventType::Normal, "DrainStarted", "Drain"),
        NodeEvent::Ended { outcome, .. } => match outcome {
            NodeOutcome::Drained { .. } => (EventType::Normal, "Drained", "Drain"),
            NodeOutcome::TimedOut { .. } => (EventType::Warning, "DrainTimedOut", "Drain"),
            NodeOutcome::Interrupted { .. } => (EventType::Warning, "DrainInterrupted", "Drain"),
            NodeOutcome::Failed { .. } => (EventType::Warning, "DrainFailed", "Drain"),
        },
        NodeEvent::Surged { .. } => (EventType::Normal, "ReplacementStarted", "Restart"),
        NodeEvent::Evicted { .. } => (EventType::Normal, "Evicted", "Evict"),
        NodeEvent::HandedOff { outcome } => match outcome {
            HandOff::Replaced { .. } => (EventType::Normal, "HandedOff", "Delete"),
            HandOff::Deleted { .. } => (EventType::Normal, "NodeDeleted", "Delete"),
            HandOff::Kept { .. } => (EventType::Normal, "NodeKept", "Keep"),
            HandOff::TimedOut { .. } => (EventType::Warning, "HandOffTimedOut", "Delete"),
            HandOff::Failed { .. } => (EventType::Warning, "HandOffFailed", "Delete"),
        },
        NodeEvent::Uncordoned { .. } => (EventType::Normal, "Uncordoned", "Uncordon"),
        // A budget doing its job: Normal, as Karpenter's DisruptionBlocked.
        NodeEvent::Blocked { .. } => (EventType::Normal, "DrainBlocked", "Evict"),
    };
    Kind {
        type_,
        reason,
        action,
    }
}

#[cfg(test)]
mod tests {
    use steward_runtime::Localized;

    use super::*;
    use crate::messages::Msg;

    type Case<'a> = (
        NodeEvent<'a>,
        EventType,
        &'a str,
        &'a [&'a str],
        &'a [&'a str],
    );

    #[test]
    fn every_happening_has_its_type_reason_and_note() {
        use EventType::{Normal, Warning};
        let batch = ["n1".to_string(), "n2".to_string()];
        let drained = NodeOutcome::Drained { seconds: 42 };
        let timed_out = NodeOutcome::TimedOut {
            remaining: vec!["ns/web-1".into()],
        };
        let interrupted = NodeOutcome::Interrupted {
            remaining: vec!["ns/db-0".into(), "ns/db-1".into()],
        };
        let failed = NodeOutcome::Failed {
            reason: "ns/x cannot be evicted: more than one PodDisruptionBudget".into(),
        };
        let ended = |outcome| NodeEvent::Ended {
            outcome,
            evicted: 3,
            deleted: 1,
        };
        // (happening, type, reason, words of the English note, of the Korean note)
        let replaced = HandOff::Replaced {
            nodeclaim: "default-abc".into(),
            seconds: 7,
        };
        let kept = HandOff::Kept {
            why: crate::core::handoff::Kept::NoNodeClaim,
        };
        let late = HandOff::TimedOut {
            nodeclaim: Some("default-abc".into()),
        };
        let cases: [Case<'_>; 13] = [
            (
                NodeEvent::Evicted { pod: "shop/web-1" },
                Normal,
                "Evicted",
                &["shop/web-1", "Eviction API"],
                &["shop/web-1", "Eviction API"],
            ),
            (
                NodeEvent::Surged {
                    pod: "shop/solo-1",
                    deployment: "shop/solo",
                },
                Normal,
                "ReplacementStarted",
                &["Deployment shop/solo", "shop/solo-1", "--no-surge"],
                &["Deployment shop/solo", "shop/solo-1", "--no-surge"],
            ),
            (
                NodeEvent::HandedOff { outcome: &replaced },
                Normal,
                "HandedOff",
                &["NodeClaim default-abc", "7s"],
                &["NodeClaim default-abc", "7초"],
            ),
            (
                NodeEvent::HandedOff { outcome: &kept },
                Normal,
                "NodeKept",
                &["no NodeClaim", "--delete-nodes"],
                &["NodeClaim", "--delete-nodes"],
            ),
            (
                NodeEvent::HandedOff { outcome: &late },
                Warning,
                "HandOffTimedOut",
                &["NodeClaim default-abc", "--handoff-timeout"],
                &["NodeClaim default-abc", "--handoff-timeout"],
            ),
            (
                NodeEvent::Started {
                    nodepool: "default",
                    batch: &batch,
                    pods: 4,
                },
                Normal,
                "DrainStarted",
                &["NodePool default", "n1, n2", "2 nodes", "4 pods"],
                &["NodePool default", "n1, n2", "2대", "4개"],
            ),
            (
                ended(&drained),
                Normal,
                "Drained",
                &["3 evicted", "1 deleted", "42s"],
                &["evict 3개", "삭제 1개", "42초"],
            ),
            (
                ended(&timed_out),
                Warning,
                "DrainTimedOut",
                &["1 pods left", "ns/web-1"],
                &["1개", "ns/web-1"],
            ),
            (
                ended(&interrupted),
                Warning,
                "DrainInterrupted",
                &["2 pods left", "ns/db-0, ns/db-1", "stays cordoned"],
                &["ns/db-0"],
            ),
            (
                ended(&failed),
                Warning,
                "DrainFailed",
                &["more than one PodDisruptionBudget"],
                &["more than one PodDisruptionBudget"],
            ),
            (
                NodeEvent::Blocked {
                    pod: "shop/web-1",
                    pdb: Some("shop/web"),
                    message: "Cannot evict pod as it would violate the pod's disruption budget.",
                },
                Normal,
                "DrainBlocked",
                &[
                    "shop/web-1",
                    "PodDisruptionBudget shop/web",
                    "would violate",
                ],
                &["shop/web-1", "PodDisruptionBudget shop/web"],
            ),
            (
                NodeEvent::Blocked {
                    pod: "shop/web-1",
                    pdb: None,
                    message: "Too many requests",
                },
                Normal,
                "DrainBlocked",
                &["shop/web-1", "a PodDisruptionBudget", "Too many requests"],
                &["shop/web-1", "PodDisruptionBudget"],
            ),
            (
                NodeEvent::Uncordoned {
                    nodepool: "default",
                },
                Normal,
                "Uncordoned",
                &[
                    "Uncordoned",
                    "NodePool default",
                    "before this node's drain started",
                ],
                &["uncordon", "NodePool default"],
            ),
        ];
        for (e, type_, reason, en, ko) in cases {
            let k = kind_of(&e);
            assert_eq!((k.type_, k.reason), (type_, reason), "{e:?}");
            let msg = Msg::NodeEvent(e);
            let (note_en, note_ko) = (msg.en(), msg.ko());
            for want in en {
                assert!(
                    note_en.contains(want),
                    "{reason} en: {want:?} not in {note_en:?}"
                );
            }
            for want in ko {
                assert!(
                    note_ko.contains(want),
                    "{reason} ko: {want:?} not in {note_ko:?}"
                );
            }
        }
    }
}
