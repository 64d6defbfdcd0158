//! Whether workers would fit on the nodes they may run on, before creating pods that
//! would only sit Pending. Pure: the Kubernetes backend feeds it the candidate
//! nodes' allocatable resources minus what their pods request.
//!
//! ScaleUp places all N workers (first fit) against what is free now; a pipeline
//! stage is checked against allocatable alone when the run is submitted, because a
//! busy cluster frees room as other pods end, but a worker bigger than every node
//! never fits.

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};

/// Room on one node, in cores and bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRoom {
    /// Node name.
    pub name: String,
    /// Free cpu (cores).
    pub cpu: f64,
    /// Free memory (bytes).
    pub memory: f64,
}

/// Whether `tolerations` tolerate `taint` (for scheduling: NoSchedule and NoExecute).
fn tolerated(taint: &Taint, tolerations: &[Toleration]) -> bool {
    if taint.effect == "PreferNoSchedule" {
        return true;
    }
    tolerations.iter().any(|t| {
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == taint.effect);
        let key_ok = t
            .key
            .as_deref()
            .is_none_or(|k| k.is_empty() || k == taint.key);
        let value_ok = match t.operator.as_deref() {
            Some("Exists") => true,
            _ => {
                t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
            }
        };
        effect_ok
            && key_ok
            && value_ok
            && (t.key.as_deref().is_some_and(|k| !k.is_empty())
                || t.operator.as_deref() == Some("Exists"))
    })
}

/// Whether a worker with these tolerations may be scheduled on `node` at all.
pub fn candidate(node: &Node, tolerations: &[Toleration]) -> bool {
    let spec = node.spec.as_ref();
    steward_kube::node::is_ready(node)
        && !spec.and_then(|s| s.unschedulable).unwrap_or(false)
        && spec
            .and_then(|s| s.taints.as_ref())
            .is_none_or(|ts| ts.iter().all(|t| tolerated(t, tolerations)))
}

/// Places `count` workers of `cpu` cores and `memory` bytes, first fit; returns how
/// many found room.
pub fn place(nodes: &mut [NodeRoom], cpu: f64, memory: f64, count: u32) -> u32 {
    let mut placed = 0;
    for _ in 0..count {
        let Some(n) = nodes
            .iter_mut()
            .find(|n| n.cpu >= cpu && n.memory >= memory)
        else {
            break;
        };
        n.cpu -= cpu;
        n.memory -= memory;
        placed += 1;
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(cpu: f64, gib: f64) -> NodeRoom {
        NodeRoom {
            name: String::new(),
            cpu,
            memory: gib * 1_073_741_824.0,
        }
    }

    #[test]
    fn place_table() {
        let gib = 1_073_741_824.0;
        let cases = [
            (vec![room(1.0, 4.0)], 0.4, 1.0, 3, 2),
            (vec![room(1.0, 4.0), room(1.0, 4.0)], 0.4, 1.0, 3, 3),
            (vec![room(4.0, 1.0)], 0.1, 2.0, 1, 0),
            (vec![], 0.1, 0.1, 1, 0),
            (vec![room(2.0, 2.0)], 2.0, 2.0, 1, 1),
        ];
        for (mut nodes, cpu, mem, count, want) in cases {
            assert_eq!(place(&mut nodes, cpu, mem * gib, count), want);
        }
    }

    #[test]
    fn taints_and_readiness() {
        let node = |taint: Option<(&str, &str, &str)>, ready: &str| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": { "name": "n" },
                "spec": { "taints": taint.map(|(k, v, e)| vec![serde_json::json!({ "key": k, "value": v, "effect": e })]) },
                "status": { "conditions": [{ "type": "Ready", "status": ready }] }
            }))
            .unwrap()
        };
        let tol = |k: &str, op: &str, v: &str| Toleration {
            key: Some(k.into()),
            operator: Some(op.into()),
            value: Some(v.into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        };
        assert!(candidate(&node(None, "True"), &[]));
        assert!(!candidate(&node(None, "False"), &[]));
        assert!(!candidate(
            &node(Some(("ci", "yes", "NoSchedule")), "True"),
            &[]
        ));
        assert!(candidate(
            &node(Some(("ci", "yes", "NoSchedule")), "True"),
            &[tol("ci", "Equal", "yes")]
        ));
        assert!(!candidate(
            &node(Some(("ci", "yes", "NoSchedule")), "True"),
            &[tol("ci", "Equal", "no")]
        ));
        assert!(candidate(
            &node(Some(("ci", "yes", "NoSchedule")), "True"),
            &[tol("ci", "Exists", "")]
        ));
        assert!(candidate(
            &node(Some(("ci", "yes", "PreferNoSchedule")), "True"),
            &[]
        ));
    }
}
