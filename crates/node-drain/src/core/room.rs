//! Room for a replacement (`--wait-for-replacements`): the first node other than
//! the pod's where the scheduler could place it (Ready, not cordoned, its
//! `nodeSelector` matching, its taints tolerated: steward_kube::scheduling) with
//! free allocatable cpu, memory and pod slots for its requests, after what this
//! run reserved for earlier replacements. Pure; see `engine::room` for the
//! snapshot it is computed on and what it does not guarantee.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use steward_kube::scheduling::admits;

use super::pods::{is_finished, node_of, pod_request};

/// Room this run reserved for a replacement: when, on which node, cpu, memory.
pub type Reservation = (Instant, String, f64, f64);

/// The first node with room for a replacement of `pod`. Pure.
pub fn fits(pod: &Pod, nodes: &[Node], pods: &[Pod], reserved: &[Reservation]) -> Option<String> {
    let (cpu, mem) = (pod_request(pod, "cpu"), pod_request(pod, "memory"));
    let selector = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.clone())
        .unwrap_or_default();
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let on = node_of(pod);
    let mut used: BTreeMap<&str, (f64, f64, usize)> = BTreeMap::new();
    for p in pods.iter().filter(|p| !is_finished(p)) {
        let u = used.entry(node_of(p)).or_default();
        *u = (
            u.0 + pod_request(p, "cpu"),
            u.1 + pod_request(p, "memory"),
            u.2 + 1,
        );
    }
    nodes
        .iter()
        .filter(|n| n.name_any() != on && admits(n, &tolerations, &selector))
        .find(|n| {
            let name = n.name_any();
            let alloc = n
                .status
                .as_ref()
                .and_then(|s| s.allocatable.clone())
                .unwrap_or_default();
            let get = |r: &str| {
                alloc.get(r).map_or(0.0, |q| {
                    if r == "cpu" {
                        steward_kube::quantity::parse_cpu(q)
                    } else {
                        steward_kube::quantity::parse_bytes(q)
                    }
                })
            };
            let (ucpu, umem, upods) = used.get(name.as_str()).copied().unwrap_or_default();
            let (rcpu, rmem) = reserved
                .iter()
                .filter(|r| r.1 == name)
                .fold((0.0, 0.0), |a, r| (a.0 + r.2, a.1 + r.3));
            let slots = alloc
                .get("pods")
                .and_then(|q| q.0.parse::<usize>().ok())
                .unwrap_or(110);
            get("cpu") - ucpu - rcpu >= cpu && get("memory") - umem - rmem >= mem && upods < slots
        })
        .map(ResourceExt::name_any)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, cpu: &str, extra: serde_json::Value) -> Node {
        let mut v = json!({ "metadata": { "name": name, "labels": { "pool": "a" } }, "spec": {},
            "status": { "allocatable": { "cpu": cpu, "memory": "8Gi", "pods": "110" }, "conditions": [{ "type": "Ready", "status": "True" }] } });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn pod(name: &str, on: &str, cpu: &str) -> Pod {
        serde_json::from_value(json!({ "metadata": { "name": name }, "spec": { "nodeName": on, "nodeSelector": { "pool": "a" },
            "containers": [{ "name": "c", "resources": { "requests": { "cpu": cpu, "memory": "1Gi" } } }] }, "status": { "phase": "Running" } }))
        .unwrap()
    }

    #[test]
    fn room_by_requests_selector_taints_and_reservations() {
        let leaving = pod("p", "old", "1");
        let full = node("full", "2", json!({}));
        let busy = vec![pod("x", "full", "1500m")];
        assert_eq!(
            fits(&leaving, std::slice::from_ref(&full), &busy, &[]),
            None,
            "0.5 cpu free < 1 requested"
        );
        let roomy = node("roomy", "4", json!({}));
        assert_eq!(
            fits(&leaving, &[full.clone(), roomy.clone()], &busy, &[]).as_deref(),
            Some("roomy")
        );
        let reserved = vec![(Instant::now(), "roomy".to_string(), 3.5, 0.0)];
        assert_eq!(
            fits(&leaving, std::slice::from_ref(&roomy), &[], &reserved),
            None,
            "reserved for an earlier replacement"
        );
        let cordoned = node("c", "4", json!({ "spec": { "unschedulable": true } }));
        let tainted = node(
            "t",
            "4",
            json!({ "spec": { "taints": [{ "key": "gpu", "effect": "NoSchedule" }] } }),
        );
        let other_pool = node(
            "o",
            "4",
            json!({ "metadata": { "name": "o", "labels": { "pool": "b" } } }),
        );
        assert_eq!(
            fits(&leaving, &[cordoned, tainted, other_pool], &[], &[]),
            None
        );
        assert_eq!(
            fits(&leaving, &[node("old", "8", json!({}))], &[], &[]),
            None,
            "not the node being drained"
        );
    }
}
