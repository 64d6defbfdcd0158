//! `--wait-for-replacements`: before a Deployment's pod is evicted, wait until some
//! other node could take its replacement, so the replacement does not sit Pending
//! while the PDB counts the evicted pod as gone.
//!
//! What it checks, on a snapshot of nodes and pods at most a second old: a Ready,
//! schedulable node other than the pod's, matching the pod's `nodeSelector`, whose
//! NoSchedule/NoExecute taints the pod tolerates, with free allocatable cpu, memory
//! and pod slots (allocatable minus the requests of pods on it, minus what this run
//! reserved for replacements in the last 3 s) at least the pod's requests.
//!
//! What it does not guarantee: node affinity, pod (anti-)affinity, topology spread,
//! host ports and volumes are not evaluated; nothing is reserved in the cluster, so
//! another pod may take the room first; and the replacement becoming Ready is still
//! the PDB's business. With Karpenter, a cordon alone creates no pending pods, so no
//! node appears for them; the wait then ends at `--replacement-timeout` and the pod
//! is evicted as without the flag.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tokio::sync::Mutex;

use crate::plan::{is_finished, node_of, pod_request};

/// A reservation covers the gap between an eviction and the replacement pod appearing
/// in the snapshot (the ReplicaSet controller reacts within about a second); longer
/// would count the replacement twice.
const RESERVATION_TTL: Duration = Duration::from_secs(3);

/// Finds room for replacements; shared by every pod of a run.
#[derive(Default)]
#[allow(missing_debug_implementations)]
pub struct Room {
    inner: Mutex<Snapshot>,
}

#[derive(Default)]
struct Snapshot {
    taken: Option<Instant>,
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    reserved: Vec<(Instant, String, f64, f64)>,
}

impl Room {
    /// Whether some node has room for a replacement of `pod`; if so, reserves it.
    pub async fn claim(&self, client: &Client, pod: &Pod) -> kube::Result<Option<String>> {
        let mut s = self.inner.lock().await;
        if s.taken.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
            s.nodes = Api::<Node>::all(client.clone())
                .list(&ListParams::default())
                .await?
                .items;
            s.pods = steward_kube::list::list_all_map(
                &Api::<Pod>::all(client.clone()),
                &ListParams::default(),
                crate::plan::slim,
            )
            .await?;
            s.taken = Some(Instant::now());
        }
        s.reserved.retain(|(at, ..)| at.elapsed() < RESERVATION_TTL);
        let found = fits(pod, &s.nodes, &s.pods, &s.reserved);
        if let Some(node) = &found {
            s.reserved.push((
                Instant::now(),
                node.clone(),
                pod_request(pod, "cpu"),
                pod_request(pod, "memory"),
            ));
        }
        Ok(found)
    }
}

/// The first node with room for a replacement of `pod`. Pure.
fn fits(
    pod: &Pod,
    nodes: &[Node],
    pods: &[Pod],
    reserved: &[(Instant, String, f64, f64)],
) -> Option<String> {
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
        .filter(|n| n.name_any() != node_of(pod) && steward_kube::node::is_ready(n))
        .filter(|n| {
            !n.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
        })
        .filter(|n| selector.iter().all(|(k, v)| n.labels().get(k) == Some(v)))
        .filter(|n| {
            n.spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_none_or(|ts| ts.iter().all(|t| tolerated(t, &tolerations)))
        })
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

fn tolerated(t: &Taint, tolerations: &[Toleration]) -> bool {
    if t.effect == "PreferNoSchedule" {
        return true;
    }
    tolerations.iter().any(|tol| {
        let key_ok = tol.key.as_ref().is_none_or(|k| k.is_empty() || *k == t.key);
        let effect_ok = tol
            .effect
            .as_ref()
            .is_none_or(|e| e.is_empty() || *e == t.effect);
        let value_ok = tol.operator.as_deref() == Some("Exists")
            || tol.value.as_deref().unwrap_or_default() == t.value.as_deref().unwrap_or_default();
        key_ok && effect_ok && value_ok
    })
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
