//! Simulated nodes: Node objects that kwok adopts and keeps Ready.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec as CoreNodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;

/// A simulated node to create.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// Extra labels (for example `karpenter.sh/nodepool`).
    pub labels: BTreeMap<String, String>,
    /// Capacity and allocatable cpu (a Kubernetes quantity).
    pub cpu: String,
    /// Capacity and allocatable memory (a Kubernetes quantity).
    pub memory: String,
    /// Maximum pods.
    pub pods: u32,
    /// Taints.
    pub taints: Vec<Taint>,
}

impl NodeSpec {
    /// A node with 4 cpu, 16Gi memory and room for 110 pods.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
            cpu: "4".into(),
            memory: "16Gi".into(),
            pods: 110,
            taints: Vec::new(),
        }
    }

    /// Adds a label.
    #[must_use]
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets cpu and memory capacity.
    #[must_use]
    pub fn capacity(mut self, cpu: impl Into<String>, memory: impl Into<String>) -> Self {
        self.cpu = cpu.into();
        self.memory = memory.into();
        self
    }

    /// Sets the maximum number of pods.
    #[must_use]
    pub fn max_pods(mut self, pods: u32) -> Self {
        self.pods = pods;
        self
    }

    /// The Node object; kwok manages nodes carrying its annotation.
    pub fn to_node(&self) -> Node {
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), self.name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ("type".to_string(), "kwok".to_string()),
        ]);
        labels.extend(self.labels.clone());
        let resources = BTreeMap::from([
            ("cpu".to_string(), Quantity(self.cpu.clone())),
            ("memory".to_string(), Quantity(self.memory.clone())),
            ("pods".to_string(), Quantity(self.pods.to_string())),
        ]);
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([
                    (crate::KWOK_NODE_ANNOTATION.to_string(), "fake".to_string()),
                    ("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string()),
                ])),
                ..ObjectMeta::default()
            },
            spec: Some(CoreNodeSpec {
                taints: (!self.taints.is_empty()).then(|| self.taints.clone()),
                ..CoreNodeSpec::default()
            }),
            status: Some(NodeStatus {
                capacity: Some(resources.clone()),
                allocatable: Some(resources),
                ..NodeStatus::default()
            }),
        }
    }
}

/// Creates the nodes and waits until kwok has made every one Ready and the node
/// lifecycle controller has lifted its `not-ready`/`unreachable` taints (until then the
/// scheduler, and anything that checks room the way it does, skips the node).
pub async fn add_nodes(
    client: &kube::Client,
    specs: &[NodeSpec],
    timeout: std::time::Duration,
) -> crate::Result<()> {
    use kube::api::{Api, ListParams, PostParams};
    let api: Api<Node> = Api::all(client.clone());
    for spec in specs {
        api.create(&PostParams::default(), &spec.to_node()).await?;
    }
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let ready = api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(schedulable)
            .filter_map(|n| n.metadata.name)
            .collect::<Vec<_>>();
        if specs.iter().all(|s| ready.contains(&s.name)) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(crate::Error::Timeout {
                what: format!("{} nodes to become Ready", specs.len()),
                seconds: timeout.as_secs(),
                logs: "the kwok log".into(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub use steward_kube::node::is_ready;

/// Whether the scheduler places pods on the node: Ready, and without the taints that
/// every new node gets (`not-ready`, from the API server's TaintNodesByCondition
/// admission) or a silent one (`unreachable`), which kube-controller-manager lifts
/// only after the node turns Ready (seconds later on a loaded machine).
pub fn schedulable(n: &Node) -> bool {
    is_ready(n) && !lifecycle_tainted(n)
}

/// Whether the node still carries a taint the node lifecycle controller sets on nodes
/// that are not (yet) Ready.
fn lifecycle_tainted(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| {
            ts.iter().any(|t| {
                matches!(
                    t.key.as_str(),
                    "node.kubernetes.io/not-ready" | "node.kubernetes.io/unreachable"
                )
            })
        })
}
