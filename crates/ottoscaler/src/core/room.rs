//! Whether workers would fit on the nodes they may run on, and what a request does
//! when they do not. Pure: the Kubernetes backend feeds it the candidate nodes'
//! allocatable resources minus what their pods request.
//!
//! ScaleUp places all N workers (first fit) against what is free now; a pipeline
//! stage is checked against allocatable alone when the run is submitted, because a
//! busy cluster frees room as other pods end.
//!
//! Workers that do not fit are, by default ([`CapacityCheck::Wait`]), created
//! anyway: on a cluster that Karpenter or the cluster autoscaler grows, "no node has
//! room now" is normal and a Pending pod is exactly what makes a node appear. They
//! wait as Pending (a stage within its timeout) and progress and status say
//! "waiting for capacity". [`CapacityCheck::Strict`] refuses such a request instead,
//! naming the field, and creates nothing (for a cluster of fixed size).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use kube::ResourceExt;

use crate::core::config::parse_quantity;

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

/// What a request does with workers no node has room for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CapacityCheck {
    /// Create them: they wait as Pending until a node with room exists.
    #[default]
    Wait,
    /// Refuse the request (RESOURCE_EXHAUSTED, naming the field); nothing is created.
    Strict,
}

/// Workers that did not fit when they were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// How many found room.
    pub placed: u32,
    /// How many were asked for.
    pub count: u32,
    /// For people and the handler: what did not fit where.
    pub reason: String,
}

/// What to do with a request after the capacity check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every worker fits now.
    Fits,
    /// Go ahead; the workers that do not fit wait for capacity, for this reason.
    Wait(String),
    /// Refuse, for this reason.
    Refuse(String),
}

/// The decision for a request whose check found `shortfall` (`None`: all fit). Pure.
pub fn verdict(mode: CapacityCheck, shortfall: Option<&Shortfall>) -> Verdict {
    match (mode, shortfall) {
        (_, None) => Verdict::Fits,
        (_, Some(s)) if s.placed >= s.count => Verdict::Fits,
        (CapacityCheck::Wait, Some(s)) => Verdict::Wait(s.reason.clone()),
        (CapacityCheck::Strict, Some(s)) => Verdict::Refuse(s.reason.clone()),
    }
}

/// The reason text of a shortfall. `free` says whether what the nodes' pods request
/// was taken off their allocatable resources. Pure.
pub fn describe(
    placed: u32,
    count: u32,
    cpu: &str,
    memory: &str,
    free: bool,
    nodes: usize,
) -> String {
    let what = if free { "free" } else { "allocatable" };
    format!(
        "only {placed} of {count} workers ({cpu} cpu, {memory} memory each) fit in the {what} resources of the {nodes} nodes they may run on"
    )
}

/// Whether a worker with these tolerations and node selector may be scheduled on
/// `node` at all: the scheduler's rules, from [`steward_kube::scheduling`].
pub fn candidate(
    node: &Node,
    tolerations: &[Toleration],
    selector: &std::collections::BTreeMap<String, String>,
) -> bool {
    steward_kube::scheduling::admits(node, tolerations, selector)
}

/// The room of every node in `nodes` a worker with these tolerations and node
/// selector may run on: its allocatable cpu and memory.
pub fn rooms(
    nodes: &[Node],
    tolerations: &[Toleration],
    selector: &BTreeMap<String, String>,
) -> Vec<NodeRoom> {
    nodes
        .iter()
        .filter(|n| candidate(n, tolerations, selector))
        .map(|n| {
            let alloc = n.status.as_ref().and_then(|s| s.allocatable.as_ref());
            let a = |k: &str| {
                alloc
                    .and_then(|m| m.get(k))
                    .and_then(|v| parse_quantity(&v.0))
                    .unwrap_or(0.0)
            };
            NodeRoom {
                name: n.name_any(),
                cpu: a("cpu"),
                memory: a("memory"),
            }
        })
        .collect()
}

/// Takes off each room what the pods bound to its node request (what the
/// scheduler reserves: init containers and overhead included).
pub fn take_requests(rooms: &mut [NodeRoom], pods: &[Pod]) {
    for p in pods {
        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        if let Some(r) = rooms.iter_mut().find(|r| r.name == node) {
            r.cpu -= steward_kube::quantity::pod_request(p, "cpu");
            r.memory -= steward_kube::quantity::pod_request(p, "memory");
        }
    }
}

/// What does not fit when `count` workers with these `requests` (`cpu`, `memory`)
/// are placed in `rooms`; `free` says whether pods' requests were taken off.
pub fn shortfall(
    mut rooms: Vec<NodeRoom>,
    requests: &BTreeMap<String, String>,
    count: u32,
    free: bool,
) -> Option<Shortfall> {
    let q = |k: &str| {
        requests
            .get(k)
            .and_then(|v| parse_quantity(v))
            .unwrap_or(0.0)
    };
    let placed = place(&mut rooms, q("cpu"), q("memory"), count);
    (placed < count).then(|| Shortfall {
        placed,
        count,
        reason: describe(
            placed,
            count,
            requests.get("cpu").map_or("0", String::as_str),
            requests.get("memory").map_or("0", String::as_str),
            free,
            rooms.len(),
        ),
    })
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
    fn verdict_table() {
        use CapacityCheck::{Strict, Wait};
        let short = |placed, count| Shortfall {
            placed,
            count,
            reason: format!("{placed} of {count}"),
        };
        let cases = [
            (Wait, None, Verdict::Fits),
            (Strict, None, Verdict::Fits),
            (Wait, Some(short(3, 3)), Verdict::Fits),
            (Strict, Some(short(3, 3)), Verdict::Fits),
            (Wait, Some(short(2, 3)), Verdict::Wait("2 of 3".into())),
            (Strict, Some(short(2, 3)), Verdict::Refuse("2 of 3".into())),
            (Wait, Some(short(0, 1)), Verdict::Wait("0 of 1".into())),
            (Strict, Some(short(0, 1)), Verdict::Refuse("0 of 1".into())),
        ];
        for (mode, s, want) in cases {
            assert_eq!(verdict(mode, s.as_ref()), want, "{mode:?} {s:?}");
        }
        assert_eq!(
            describe(0, 1, "100m", "64Mi", false, 0),
            "only 0 of 1 workers (100m cpu, 64Mi memory each) fit in the allocatable resources of the 0 nodes they may run on"
        );
    }

    /// The old two-argument shape: the node selector is applied by the node list.
    fn candidate(n: &Node, t: &[Toleration]) -> bool {
        super::candidate(n, t, &BTreeMap::new())
    }

    #[test]
    fn rooms_are_allocatable_minus_requests_of_bound_pods() {
        let node = |name: &str, cpu: &str, taint: bool| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": { "name": name, "labels": { "pool": "ci" } },
                "spec": { "taints": if taint { serde_json::json!([{ "key": "gpu", "effect": "NoSchedule" }]) } else { serde_json::json!([]) } },
                "status": { "allocatable": { "cpu": cpu, "memory": "4Gi" },
                            "conditions": [{ "type": "Ready", "status": "True" }] }
            }))
            .unwrap()
        };
        let pod = |node: Option<&str>, cpu: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": { "name": "p" },
                "spec": { "nodeName": node, "containers": [{ "name": "c", "resources": { "requests": { "cpu": cpu, "memory": "1Gi" } } }] }
            }))
            .unwrap()
        };
        let nodes = [
            node("a", "2", false),
            node("b", "4", true),
            node("c", "1", false),
        ];
        let sel = BTreeMap::from([("pool".to_string(), "ci".to_string())]);
        let mut r = rooms(&nodes, &[], &sel);
        assert_eq!(
            r.iter()
                .map(|r| (r.name.as_str(), r.cpu))
                .collect::<Vec<_>>(),
            [("a", 2.0), ("c", 1.0)],
            "the tainted node is no candidate"
        );
        assert!(rooms(&nodes, &[], &BTreeMap::from([("pool".into(), "x".into())])).is_empty());
        take_requests(
            &mut r,
            &[pod(Some("a"), "1500m"), pod(Some("b"), "1"), pod(None, "8")],
        );
        assert_eq!(r[0].cpu, 0.5);
        assert_eq!(r[0].memory, 3.0 * 1_073_741_824.0);
        assert_eq!(r[1].cpu, 1.0, "unbound and other nodes' pods take nothing");
        let req = |cpu: &str| {
            BTreeMap::from([
                ("cpu".to_string(), cpu.to_string()),
                ("memory".to_string(), "1Gi".to_string()),
            ])
        };
        assert_eq!(
            shortfall(r.clone(), &req("500m"), 3, true),
            None,
            "0.5 on a, 1 on c"
        );
        let s = shortfall(r, &req("600m"), 2, true).unwrap();
        assert_eq!((s.placed, s.count), (1, 2));
        assert_eq!(
            s.reason,
            "only 1 of 2 workers (600m cpu, 1Gi memory each) fit in the free resources of the 2 nodes they may run on"
        );
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
