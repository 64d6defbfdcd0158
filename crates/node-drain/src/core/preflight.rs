//! What stands in the way of a planned drain, found before anything changes:
//! budgets that cannot allow an eviction, protected or unmanaged pods, and
//! requests that will not fit on the nodes that stay. Pure.

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use serde::Serialize;

use super::pods::{
    do_not_disrupt, is_finished, is_workload, node_of, on_node, parse_bytes, parse_cpu,
    pod_request, selects,
};

/// Something that may slow or stop the drain, found before anything changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A budget that cannot allow an eviction as things stand.
    PdbBlocks { pdb: String, reason: String },
    /// A pod carrying karpenter.sh/do-not-disrupt on a chosen node (chosen by hand).
    DoNotDisrupt { pod: String, node: String },
    /// A pod with no controller: once evicted, nothing recreates it.
    Unmanaged { pod: String },
    /// Requests to move exceed what the remaining schedulable nodes have free.
    WontFit {
        resource: String,
        needed: f64,
        free: f64,
    },
}

/// Checks the plan against PDBs, protected pods and the remaining capacity.
pub fn preflight(
    targets: &[String],
    nodes: &[Node],
    pods: &[Pod],
    pdbs: &[PodDisruptionBudget],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let moving: Vec<&Pod> = pods
        .iter()
        .filter(|p| targets.iter().any(|t| on_node(p, t)) && is_workload(p) && !is_finished(p))
        .collect();
    for p in &moving {
        let key = format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any());
        if do_not_disrupt(*p) {
            findings.push(Finding::DoNotDisrupt {
                pod: key.clone(),
                node: node_of(p).to_string(),
            });
        }
        // A pod already being deleted is going away whoever evicts it.
        if !p
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true))
            && p.metadata.deletion_timestamp.is_none()
        {
            findings.push(Finding::Unmanaged { pod: key });
        }
    }
    for pdb in pdbs {
        let ns = pdb.namespace().unwrap_or_default();
        let selected: Vec<&Pod> = pods
            .iter()
            .filter(|p| {
                p.namespace().as_deref() == Some(&ns)
                    && selects(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()), p)
            })
            .collect();
        if !selected
            .iter()
            .any(|p| moving.iter().any(|m| m.uid() == p.uid()))
        {
            continue;
        }
        if let Some(reason) = pdb_blocks(pdb, &selected, targets) {
            findings.push(Finding::PdbBlocks {
                pdb: format!("{ns}/{}", pdb.name_any()),
                reason,
            });
        }
    }
    for (resource, parse) in [
        ("cpu", parse_cpu as fn(&Quantity) -> f64),
        ("memory", parse_bytes),
    ] {
        let needed: f64 = moving.iter().map(|p| pod_request(p, resource)).sum();
        let free: f64 = nodes
            .iter()
            .filter(|n| {
                !targets.contains(&n.name_any())
                    && !n
                        .spec
                        .as_ref()
                        .and_then(|s| s.unschedulable)
                        .unwrap_or(false)
            })
            .map(|n| {
                let alloc = n
                    .status
                    .as_ref()
                    .and_then(|s| s.allocatable.as_ref())
                    .and_then(|a| a.get(resource))
                    .map_or(0.0, parse);
                let used: f64 = pods
                    .iter()
                    .filter(|p| on_node(p, &n.name_any()) && !is_finished(p))
                    .map(|p| pod_request(p, resource))
                    .sum();
                (alloc - used).max(0.0)
            })
            .sum();
        if needed > free {
            findings.push(Finding::WontFit {
                resource: resource.into(),
                needed,
                free,
            });
        }
    }
    findings
}

fn pdb_blocks(pdb: &PodDisruptionBudget, selected: &[&Pod], targets: &[String]) -> Option<String> {
    let spec = pdb.spec.as_ref()?;
    let status = pdb.status.as_ref();
    let allowed = status.map_or(0, |s| s.disruptions_allowed);
    let int = |q: &Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>| match q {
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i)) => Some(*i),
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s))
            if s == "100%" =>
        {
            Some(i32::MAX)
        }
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) if s == "0%" => {
            Some(0)
        }
        _ => None,
    };
    let running = selected.iter().filter(|p| !is_finished(p)).count();
    if running <= 1 && int(&spec.min_available).is_some_and(|m| m >= 1) {
        return Some("a single replica with minAvailable >= 1 can never be evicted".into());
    }
    if int(&spec.max_unavailable) == Some(0) {
        return Some("maxUnavailable 0 never allows an eviction".into());
    }
    if allowed == 0
        && selected
            .iter()
            .all(|p| targets.iter().any(|t| on_node(p, t)))
    {
        return Some(
            "disruptionsAllowed is 0 and every selected pod is on a node being drained".into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::fixtures::{node, pod};

    #[test]
    fn preflight_finds_blocking_pdbs_unmanaged_pods_and_capacity() {
        let nodes = vec![
            node("a", "2026-01-01T00:00:00Z", None),
            node("b", "2026-01-02T00:00:00Z", None),
        ];
        let solo = pod("solo", "a", json!({ "app": "solo" }), json!({}));
        let bare = pod(
            "bare",
            "a",
            json!({ "app": "bare" }),
            json!({ "metadata": { "ownerReferences": [] } }),
        );
        let daemon = pod(
            "d",
            "a",
            json!({}),
            json!({ "metadata": { "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "d", "controller": true }] } }),
        );
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": { "name": "solo", "namespace": "ns" },
            "spec": { "minAvailable": 1, "selector": { "matchLabels": { "app": "solo" } } },
            "status": { "disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1 }
        }))
        .unwrap();
        let f = preflight(
            &["a".into()],
            &nodes,
            &[solo.clone(), bare.clone(), daemon],
            std::slice::from_ref(&pdb),
        );
        assert!(f.iter().any(|f| matches!(f, Finding::PdbBlocks { pdb, reason } if pdb == "ns/solo" && reason.contains("single replica"))), "{f:?}");
        assert!(f.contains(&Finding::Unmanaged {
            pod: "ns/bare".into()
        }));
        // One already being deleted goes anyway: not a finding.
        let going = pod(
            "going",
            "a",
            json!({}),
            json!({ "metadata": { "ownerReferences": [], "deletionTimestamp": "2026-01-03T00:00:00Z" } }),
        );
        let f = preflight(&["a".into()], &nodes, &[going], &[]);
        assert!(
            !f.iter().any(|f| matches!(f, Finding::Unmanaged { .. })),
            "{f:?}"
        );
        assert!(
            !f.iter().any(|f| matches!(f, Finding::WontFit { .. })),
            "2 cpu fit in b's 4: {f:?}"
        );
        // Four 1-cpu pods do not fit in b's 4 cpu once b runs 2 of its own.
        let many: Vec<Pod> = (0..4)
            .map(|i| pod(&format!("m{i}"), "a", json!({}), json!({})))
            .chain((0..2).map(|i| pod(&format!("b{i}"), "b", json!({}), json!({}))))
            .collect();
        let f = preflight(&["a".into()], &nodes, &many, &[]);
        assert!(
            f.contains(&Finding::WontFit {
                resource: "cpu".into(),
                needed: 4.0,
                free: 2.0
            }),
            "{f:?}"
        );
    }
}
