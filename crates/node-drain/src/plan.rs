//! Which nodes to drain and what stands in the way. Pure: takes the objects read
//! from the API and the allocation, returns a plan; no client in sight.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use serde::Serialize;

/// Annotation recording a node's drain state, so a second run resumes.
pub const STATE_ANNOTATION: &str = "steward.io/drain-state";
/// Annotation Karpenter uses to protect a pod (and so its node) from voluntary disruption.
pub const DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";

/// A node's drain state, as recorded on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Cordoned by steward; no pod removed yet.
    Cordoned,
    /// Pods are being removed.
    Draining,
    /// No workload pods left.
    Drained,
}

impl NodeState {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cordoned => "cordoned",
            Self::Draining => "draining",
            Self::Drained => "drained",
        }
    }

    /// Reads the node's annotation.
    pub fn of(node: &Node) -> Option<Self> {
        match node.annotations().get(STATE_ANNOTATION).map(String::as_str) {
            Some("cordoned") => Some(Self::Cordoned),
            Some("draining") => Some(Self::Draining),
            Some("drained") => Some(Self::Drained),
            _ => None,
        }
    }
}

/// How the batch size is chosen.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    /// At least this many nodes when the drain rate is positive.
    pub min_batch: usize,
    /// At most this many nodes.
    pub max_batch: Option<usize>,
    /// Nodes chosen by hand (`--nodes`); replaces the computation's choice.
    pub nodes: Vec<String>,
}

/// The computation, every number shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Batch {
    /// Nodes in the NodePool that can be drained (not already drained).
    pub candidates: usize,
    /// max(memory, cpu) allocate rate in percent.
    pub max_allocate_rate: f64,
    /// (99 - max rate) / 100.
    pub drain_rate: f64,
    /// floor(candidates x drain rate), before clamping; negative above 99 %.
    pub formula_count: i64,
    /// The count after clamping to [0, candidates], --min-batch and --max-batch.
    pub count: usize,
    /// Nodes to drain, oldest first; nodes left by an interrupted run come first.
    pub nodes: Vec<String>,
    /// Of those, nodes an earlier run had started.
    pub resumed: Vec<String>,
    /// Nodes passed over, with why.
    pub skipped: Vec<(String, String)>,
    /// Whether `--nodes` chose the nodes instead of the formula.
    pub by_hand: bool,
}

/// Sizes the batch and picks the nodes (oldest first).
pub fn batch(nodes: &[Node], pods: &[Pod], max_allocate_rate: f64, opts: &BatchOptions) -> Batch {
    let mut sorted: Vec<&Node> = nodes
        .iter()
        .filter(|n| NodeState::of(n) != Some(NodeState::Drained))
        .collect();
    sorted.sort_by(|a, b| {
        a.creation_timestamp()
            .cmp(&b.creation_timestamp())
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    let candidates = sorted.len();
    let drain_rate = (99.0 - max_allocate_rate) / 100.0;
    // Rounded to avoid 8 x 0.36 = 2.8799999 flooring to 2 when it means 2.88.
    let formula_count = ((candidates as f64 * drain_rate) * 1e9).round() / 1e9;
    let formula_count = formula_count.floor() as i64;
    let mut count = usize::try_from(formula_count.max(0))
        .unwrap_or(0)
        .min(candidates);
    if drain_rate > 0.0 {
        count = count.max(opts.min_batch.min(candidates));
    }
    if let Some(max) = opts.max_batch {
        count = count.min(max);
    }

    let mut skipped = Vec::new();
    let protected = |n: &Node| {
        pods.iter().find(|p| {
            on_node(p, &n.name_any())
                && p.annotations()
                    .get(DO_NOT_DISRUPT)
                    .is_some_and(|v| v == "true")
        })
    };
    let (resumed, fresh): (Vec<&Node>, Vec<&Node>) =
        sorted.into_iter().partition(|n| NodeState::of(n).is_some());
    let mut chosen: Vec<String> = resumed.iter().map(|n| n.name_any()).collect();
    let resumed: Vec<String> = chosen.clone();
    if !opts.nodes.is_empty() {
        chosen = opts.nodes.clone();
        count = chosen.len();
    } else {
        for n in fresh {
            if chosen.len() >= count {
                break;
            }
            if let Some(p) = protected(n) {
                skipped.push((
                    n.name_any(),
                    format!(
                        "pod {}/{} has {DO_NOT_DISRUPT}=true",
                        p.namespace().unwrap_or_default(),
                        p.name_any()
                    ),
                ));
                continue;
            }
            chosen.push(n.name_any());
        }
    }
    Batch {
        candidates,
        max_allocate_rate,
        drain_rate,
        formula_count,
        count,
        nodes: chosen,
        resumed,
        skipped,
        by_hand: !opts.nodes.is_empty(),
    }
}

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
        if p.annotations()
            .get(DO_NOT_DISRUPT)
            .is_some_and(|v| v == "true")
        {
            findings.push(Finding::DoNotDisrupt {
                pod: key.clone(),
                node: node_of(p).to_string(),
            });
        }
        if !p
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true))
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

/// Whether a label selector selects the pod (matchLabels and matchExpressions).
pub fn selects(selector: Option<&LabelSelector>, pod: &Pod) -> bool {
    let Some(sel) = selector else { return false };
    let labels = pod.labels();
    let labels_ok = sel
        .match_labels
        .as_ref()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let exprs_ok = sel.match_expressions.as_ref().is_none_or(|es| {
        es.iter().all(|e| {
            let values = e.values.clone().unwrap_or_default();
            let have = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => have.is_some_and(|v| values.contains(v)),
                "NotIn" => have.is_none_or(|v| !values.contains(v)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
    });
    let empty = sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty);
    // An empty selector in a policy/v1 PDB selects every pod of the namespace.
    empty || (labels_ok && exprs_ok)
}

/// The pod with only what planning reads: identity, labels, the annotations that
/// matter, owners, node, selector, tolerations, container, init-container and overhead
/// requests, phase and
/// container waiting reasons. A cluster-wide pod list shrinks several-fold.
pub fn slim(p: Pod) -> Pod {
    use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec, PodStatus};
    let keep = [DO_NOT_DISRUPT, "kubernetes.io/config.mirror"];
    let annotations = p.metadata.annotations.map(|a| {
        a.into_iter()
            .filter(|(k, _)| keep.contains(&k.as_str()))
            .collect()
    });
    let metadata = kube::api::ObjectMeta {
        name: p.metadata.name,
        namespace: p.metadata.namespace,
        uid: p.metadata.uid,
        labels: p.metadata.labels,
        annotations,
        owner_references: p.metadata.owner_references.map(exact),
        deletion_timestamp: p.metadata.deletion_timestamp,
        ..Default::default()
    };
    let spec = p.spec.map(|s| PodSpec {
        node_name: s.node_name,
        node_selector: s.node_selector,
        tolerations: s.tolerations.map(exact),
        termination_grace_period_seconds: s.termination_grace_period_seconds,
        containers: exact(s.containers.into_iter().map(requests_only).collect()),
        init_containers: s
            .init_containers
            .map(|cs| exact(cs.into_iter().map(requests_only).collect())),
        overhead: s.overhead,
        ..Default::default()
    });
    let status = p.status.map(|s| PodStatus {
        phase: s.phase,
        container_statuses: s.container_statuses.map(|cs| {
            exact(
                cs.into_iter()
                    .map(|c| ContainerStatus {
                        name: c.name,
                        state: c.state,
                        ..Default::default()
                    })
                    .collect(),
            )
        }),
        ..Default::default()
    });
    Pod {
        metadata,
        spec,
        status,
    }
}

/// The vector at its length. Deserialized vectors grow by doubling, and mapping one
/// into another of the same type reuses its buffer, so without this a slim pod would
/// keep the capacity of the full one (kilobytes per pod).
fn exact<T>(mut v: Vec<T>) -> Vec<T> {
    v.shrink_to_fit();
    v
}

/// A container with what [`pod_request`] reads: name, requests, restart policy.
fn requests_only(
    c: k8s_openapi::api::core::v1::Container,
) -> k8s_openapi::api::core::v1::Container {
    k8s_openapi::api::core::v1::Container {
        name: c.name,
        restart_policy: c.restart_policy,
        resources: c
            .resources
            .map(|r| k8s_openapi::api::core::v1::ResourceRequirements {
                requests: r.requests,
                ..Default::default()
            }),
        ..Default::default()
    }
}

/// The node a pod is bound to ("" when unscheduled).
pub fn node_of(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn on_node(p: &Pod, node: &str) -> bool {
    node_of(p) == node
}

/// Pods a drain moves: not DaemonSet pods, not mirror (static) pods.
pub fn is_workload(p: &Pod) -> bool {
    let daemon = p
        .owner_references()
        .iter()
        .any(|o| o.kind == "DaemonSet" && o.controller == Some(true));
    let mirror = p.annotations().contains_key("kubernetes.io/config.mirror");
    !daemon && !mirror
}

pub use steward_kube::pod::is_finished;
pub use steward_kube::quantity::{parse_bytes, parse_cpu, pod_request};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, created: &str, state: Option<&str>) -> Node {
        let mut annotations = serde_json::Map::new();
        if let Some(s) = state {
            annotations.insert(STATE_ANNOTATION.into(), json!(s));
        }
        serde_json::from_value(json!({
            "metadata": { "name": name, "creationTimestamp": created, "annotations": annotations },
            "status": { "allocatable": { "cpu": "4", "memory": "16Gi" } }
        }))
        .unwrap()
    }

    fn pod(name: &str, node: &str, labels: serde_json::Value, extra: serde_json::Value) -> Pod {
        let mut v = json!({
            "metadata": { "name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": labels,
                          "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs", "controller": true }] },
            "spec": { "nodeName": node, "containers": [{ "name": "c", "resources": { "requests": { "cpu": "1", "memory": "1Gi" } } }] },
            "status": { "phase": "Running" }
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn nodes8() -> Vec<Node> {
        (0..8)
            .map(|i| {
                node(
                    &format!("n{i}"),
                    &format!("2026-01-0{}T00:00:00Z", 8 - i),
                    None,
                )
            })
            .collect()
    }

    #[test]
    fn batch_follows_the_node_manager_formula_and_clamps() {
        let opts = BatchOptions {
            min_batch: 1,
            ..BatchOptions::default()
        };
        // README example: 8 nodes, 63 % -> drainRate 0.36 -> 2 nodes, oldest first (n7 is oldest).
        let b = batch(&nodes8(), &[], 63.0, &opts);
        assert_eq!((b.drain_rate, b.formula_count, b.count), (0.36, 2, 2));
        assert_eq!(b.nodes, ["n7", "n6"]);
        // Small pool: floor(5 x 0.09) = 0, raised to --min-batch 1.
        let five: Vec<Node> = nodes8().into_iter().take(5).collect();
        let b = batch(&five, &[], 90.0, &opts);
        assert_eq!((b.formula_count, b.count), (0, 1));
        // Above 99 %: the formula goes negative; no node, whatever --min-batch says.
        let b = batch(&five, &[], 99.5, &opts);
        assert!(b.formula_count < 0);
        assert_eq!(b.count, 0);
        assert!(b.nodes.is_empty());
        // --max-batch caps.
        let b = batch(
            &nodes8(),
            &[],
            10.0,
            &BatchOptions {
                min_batch: 1,
                max_batch: Some(3),
                nodes: vec![],
            },
        );
        assert_eq!(b.count, 3);
        // --nodes replaces the choice.
        let b = batch(
            &nodes8(),
            &[],
            10.0,
            &BatchOptions {
                nodes: vec!["n1".into()],
                ..opts.clone()
            },
        );
        assert_eq!(b.nodes, ["n1"]);
    }

    #[test]
    fn interrupted_nodes_come_first_and_drained_ones_are_left_alone() {
        let mut ns = nodes8();
        ns[2] = node("n2", "2026-01-06T00:00:00Z", Some("draining"));
        ns[7] = node("n7", "2026-01-01T00:00:00Z", Some("drained"));
        let b = batch(
            &ns,
            &[],
            63.0,
            &BatchOptions {
                min_batch: 1,
                ..BatchOptions::default()
            },
        );
        assert_eq!(b.candidates, 7);
        assert_eq!(b.resumed, ["n2"]);
        assert_eq!(b.nodes, ["n2", "n6"]);
    }

    #[test]
    fn do_not_disrupt_nodes_are_skipped_for_the_next_oldest() {
        let protected = pod(
            "p",
            "n7",
            json!({}),
            json!({ "metadata": { "annotations": { DO_NOT_DISRUPT: "true" } } }),
        );
        let b = batch(
            &nodes8(),
            &[protected],
            63.0,
            &BatchOptions {
                min_batch: 1,
                ..BatchOptions::default()
            },
        );
        assert_eq!(b.nodes, ["n6", "n5"]);
        assert_eq!(b.skipped[0].0, "n7");
    }

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

    #[test]
    fn selectors_and_quantities() {
        let p = pod("p", "a", json!({ "app": "web", "tier": "fe" }), json!({}));
        let sel = |v: serde_json::Value| -> LabelSelector { serde_json::from_value(v).unwrap() };
        assert!(selects(
            Some(&sel(json!({ "matchLabels": { "app": "web" } }))),
            &p
        ));
        assert!(!selects(
            Some(&sel(json!({ "matchLabels": { "app": "db" } }))),
            &p
        ));
        assert!(selects(
            Some(&sel(
                json!({ "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["fe", "be"] }] })
            )),
            &p
        ));
        assert!(!selects(
            Some(&sel(
                json!({ "matchExpressions": [{ "key": "tier", "operator": "DoesNotExist" }] })
            )),
            &p
        ));
        assert!(
            selects(Some(&sel(json!({}))), &p),
            "an empty selector selects all"
        );
        assert!(!selects(None, &p));
        assert_eq!(parse_cpu(&Quantity("250m".into())), 0.25);
        assert_eq!(parse_bytes(&Quantity("1Gi".into())), 1024f64.powi(3));
        assert_eq!(parse_bytes(&Quantity("500M".into())), 5e8);
    }

    #[test]
    fn slim_pods_plan_like_full_pods() {
        let heavy = json!({
            "metadata": { "annotations": { DO_NOT_DISRUPT: "true", "big": "x".repeat(4096) } },
            "spec": {
                "initContainers": [
                    { "name": "sidecar", "restartPolicy": "Always", "resources": { "requests": { "cpu": "500m" } } },
                    { "name": "init", "resources": { "requests": { "cpu": "3", "memory": "2Gi" } } }
                ],
                "overhead": { "cpu": "250m", "memory": "64Mi" },
                "volumes": [{ "name": "v", "emptyDir": {} }],
                "tolerations": [{ "key": "k", "operator": "Exists" }]
            },
            "status": { "phase": "Running", "containerStatuses": [{ "name": "c", "image": "i", "imageID": "x", "ready": false, "restartCount": 9,
                "state": { "waiting": { "reason": "CrashLoopBackOff" } } }] }
        });
        let full = vec![
            pod("a", "n1", json!({ "app": "web" }), heavy),
            pod("b", "n1", json!({ "app": "web" }), json!({})),
            pod("c", "n2", json!({ "app": "db" }), json!({})),
        ];
        let slim_pods: Vec<Pod> = full.iter().cloned().map(slim).collect();
        for (f, s) in full.iter().zip(&slim_pods) {
            for r in ["cpu", "memory"] {
                assert_eq!(
                    pod_request(f, r),
                    pod_request(s, r),
                    "{r} of {}",
                    f.name_any()
                );
            }
            assert_eq!(is_workload(f), is_workload(s));
        }
        assert!(
            serde_json::to_vec(&slim_pods[0]).unwrap().len() * 4
                < serde_json::to_vec(&full[0]).unwrap().len(),
            "slim drops what planning does not read"
        );
        let nodes = [
            node("n1", "2026-01-01T00:00:00Z", None),
            node("n2", "2026-01-02T00:00:00Z", None),
        ];
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": "ns" },
            "spec": { "minAvailable": 2, "selector": { "matchLabels": { "app": "web" } } },
            "status": { "disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2 }
        }))
        .unwrap();
        let targets = vec!["n1".to_string()];
        let from_full = preflight(&targets, &nodes, &full, std::slice::from_ref(&pdb));
        assert!(!from_full.is_empty(), "the fixture has findings to compare");
        assert_eq!(from_full, preflight(&targets, &nodes, &slim_pods, &[pdb]));
        let opts = BatchOptions::default();
        assert_eq!(
            batch(&nodes, &full, 50.0, &opts),
            batch(&nodes, &slim_pods, 50.0, &opts)
        );
    }
}
