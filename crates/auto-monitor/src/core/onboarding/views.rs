//! The state machine's views, from what the API server says of a node and its
//! exporter pod. Pure.

use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use steward_kube::scheduling::untolerated;

use super::{ExporterView, NodeView};

/// Whether an exporter pod not yet bound is meant for `node`: a DaemonSet pod
/// targets its node through required node affinity
/// on `metadata.name`.
pub fn pending_for(p: &Pod, node: &str) -> bool {
    let terms = p
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.clone())
        .unwrap_or_default();
    terms.iter().any(|t| {
        t.match_fields
            .iter()
            .flatten()
            .any(|f| f.key == "metadata.name" && f.values.iter().flatten().any(|v| v == node))
    })
}

fn condition_time(p: &Pod, type_: &str, status: &str) -> Option<Timestamp> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// What the exporter pod says: scheduled, unschedulable, Ready, waiting.
pub fn exporter(p: &Pod) -> ExporterView {
    let unschedulable = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                .map(|c| {
                    c.message
                        .clone()
                        .unwrap_or_else(|| c.reason.clone().unwrap_or_default())
                })
        });
    let waiting_reason = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        });
    ExporterView {
        pod: p.name_any(),
        scheduled_at: condition_time(p, "PodScheduled", "True"),
        unschedulable,
        ready_at: condition_time(p, "Ready", "True"),
        waiting_reason,
        image: p
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
    }
}

/// What the node says: Ready since when, and the taints that keep an exporter
/// with `tolerations` off it (the scheduler's rule, `steward_kube::scheduling`).
pub fn node_view(n: &Node, tolerations: &[Toleration]) -> NodeView {
    let ready_since = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .map(|c| {
            c.last_transition_time
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
        });
    let taints = n.spec.as_ref().and_then(|s| s.taints.as_deref());
    let untolerated_taints = untolerated(taints.unwrap_or_default(), tolerations)
        .into_iter()
        .map(|t| {
            format!(
                "{}={}:{}",
                t.key,
                t.value.clone().unwrap_or_default(),
                t.effect
            )
        })
        .collect();
    NodeView {
        name: n.name_any(),
        ready_since,
        untolerated_taints,
        port_9100_holders: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": { "name": "w1" },
            "spec": { "taints": taints },
            "status": { "conditions": [
                { "type": "Ready", "status": "True", "lastTransitionTime": "2026-11-23T21:00:00Z" }
            ] }
        }))
        .unwrap()
    }

    fn tol(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn untolerated_taints_by_the_schedulers_rule() {
        let taints = json!([
            { "key": "gpu", "value": "true", "effect": "NoSchedule" },
            { "key": "spot", "effect": "PreferNoSchedule" },
            { "key": "dedicated", "value": "db", "effect": "NoExecute" }
        ]);
        let table: [(Vec<Toleration>, Vec<&str>); 4] = [
            (vec![tol(json!({ "operator": "Exists" }))], vec![]),
            (
                vec![],
                vec!["gpu=true:NoSchedule", "dedicated=db:NoExecute"],
            ),
            (
                vec![tol(
                    json!({ "key": "gpu", "operator": "Equal", "value": "true" }),
                )],
                vec!["dedicated=db:NoExecute"],
            ),
            (
                vec![tol(
                    json!({ "key": "dedicated", "operator": "Exists", "effect": "NoSchedule" }),
                )],
                vec!["gpu=true:NoSchedule", "dedicated=db:NoExecute"],
            ),
        ];
        for (tolerations, want) in table {
            let v = node_view(&node(taints.clone()), &tolerations);
            assert_eq!(v.untolerated_taints, want, "{tolerations:?}");
            assert_eq!(v.name, "w1");
            assert_eq!(
                v.ready_since.map(|t| t.to_string()).as_deref(),
                Some("2026-11-23T21:00:00Z")
            );
        }
    }

    #[test]
    fn exporter_pods() {
        let pod = |status: serde_json::Value| -> Pod {
            serde_json::from_value(json!({
                "metadata": { "name": "mon-node-exporter-x" },
                "spec": {
                    "containers": [{ "name": "e", "image": "node-exporter:1" }],
                    "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{ "matchFields": [
                            { "key": "metadata.name", "operator": "In", "values": ["w1"] }
                        ] }]
                    } } }
                },
                "status": status
            }))
            .unwrap()
        };
        let pending = pod(json!({ "conditions": [
            { "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available" }
        ] }));
        assert!(pending_for(&pending, "w1") && !pending_for(&pending, "w2"));
        let v = exporter(&pending);
        assert_eq!(v.unschedulable.as_deref(), Some("0/3 nodes are available"));
        assert_eq!((v.scheduled_at, v.ready_at), (None, None));
        assert_eq!(v.image, "node-exporter:1");
        let pulling = pod(json!({
            "conditions": [{ "type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-23T21:00:01Z" }],
            "containerStatuses": [{ "name": "e", "image": "node-exporter:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": { "waiting": { "reason": "ErrImagePull" } } }]
        }));
        let v = exporter(&pulling);
        assert_eq!(v.waiting_reason.as_deref(), Some("ErrImagePull"));
        assert!(v.scheduled_at.is_some() && v.unschedulable.is_none() && v.ready_at.is_none());
        let ready = pod(json!({ "conditions": [
            { "type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-23T21:00:01Z" },
            { "type": "Ready", "status": "True", "lastTransitionTime": "2026-11-23T21:00:05Z" }
        ] }));
        let v = exporter(&ready);
        assert_eq!(
            v.ready_at.map(|t| t.to_string()).as_deref(),
            Some("2026-11-23T21:00:05Z")
        );
    }
}
