//! Allocation of a NodePool from Karpenter's metrics, and the arithmetic on it.
//!
//! Two metric generations exist and differ in a way that changes the answer:
//! - Karpenter v1.x: `karpenter_nodepools_usage` (plural). Its
//!   `karpenter_nodes_total_pod_requests` already includes DaemonSet pods, so daemon
//!   requests must not be added again.
//! - before 1.0: `karpenter_nodepool_usage`. Pod requests exclude DaemonSet pods;
//!   the node-manager formula adds `karpenter_nodes_total_daemon_requests`.
//!
//! Rate = requests / capacity x 100 for memory and cpu; the batch is sized from the
//! larger of the two.
//!
//! Capacity is, by default, `karpenter_nodes_allocatable` summed over the NodePool's
//! nodes: what the scheduler can place pods in, over the same nodes the requests
//! series covers. The node-manager tool divided by the NodePool usage metric
//! instead ([`Capacity::Usage`], kept for those who rely on its numbers), which is
//! the nodes' *capacity* (kubelet and system reservations included) and leaves out
//! nodes marked for deletion while their pods' requests still count: mid-rotation,
//! and on Karpenter's kwok provider (whose nodes' capacity is what their NodeClaims
//! requested), it reads above 100 %.

use serde::Serialize;

use super::selector::Selector;

/// Which generation of Karpenter metrics a Prometheus holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Generation {
    /// Karpenter v1.x (`karpenter_nodepools_usage`).
    V1,
    /// Karpenter before 1.0 (`karpenter_nodepool_usage`).
    Legacy,
}

/// Which series is the NodePool's capacity, the rate's denominator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Capacity {
    /// `sum(karpenter_nodes_allocatable)` over the NodePool's nodes.
    #[default]
    Allocatable,
    /// The generation's NodePool usage metric, as the node-manager tool read it.
    Usage,
}

impl Generation {
    /// The usage metric's name.
    pub fn usage_metric(self) -> &'static str {
        match self {
            Self::V1 => "karpenter_nodepools_usage",
            Self::Legacy => "karpenter_nodepool_usage",
        }
    }

    /// The PromQL for the NodePool's capacity of a resource.
    pub fn capacity_query(
        self,
        capacity: Capacity,
        nodepool: &str,
        resource: Resource,
        sel: &Selector,
    ) -> String {
        let metric = self.capacity_metric(capacity);
        format!("sum({metric}{})", matchers(nodepool, Some(resource), sel))
    }

    /// The metric the NodePool's capacity is read from.
    pub fn capacity_metric(self, capacity: Capacity) -> &'static str {
        match capacity {
            Capacity::Allocatable => "karpenter_nodes_allocatable",
            Capacity::Usage => self.usage_metric(),
        }
    }

    /// The PromQL for the requests on the NodePool's nodes, daemons included.
    pub fn requests_query(self, nodepool: &str, resource: Resource, sel: &Selector) -> String {
        let m = matchers(nodepool, Some(resource), sel);
        match self {
            Self::V1 => format!("sum(karpenter_nodes_total_pod_requests{m})"),
            Self::Legacy => format!(
                "sum(karpenter_nodes_total_pod_requests{m}) + sum(karpenter_nodes_total_daemon_requests{m})"
            ),
        }
    }

    /// The PromQL that tells whether this generation's series exist for the NodePool.
    pub fn probe_query(self, nodepool: &str, sel: &Selector) -> String {
        format!(
            "count({}{})",
            self.usage_metric(),
            matchers(nodepool, None, sel)
        )
    }

    /// Every query the allocation reads, in the order it reads them.
    pub fn queries(self, capacity: Capacity, nodepool: &str, sel: &Selector) -> Vec<String> {
        let mut q = vec![self.probe_query(nodepool, sel)];
        for r in [Resource::Memory, Resource::Cpu] {
            q.push(self.capacity_query(capacity, nodepool, r, sel));
            q.push(self.requests_query(nodepool, r, sel));
        }
        q
    }
}

/// `{nodepool="..",resource_type="..",<selector>}`.
fn matchers(nodepool: &str, resource: Option<Resource>, sel: &Selector) -> String {
    let mut own = format!("nodepool=\"{}\"", escape(nodepool));
    if let Some(r) = resource {
        own.push_str(&format!(",resource_type=\"{}\"", r.label()));
    }
    format!("{{{}}}", sel.join_after(&own))
}

/// A resource Karpenter reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Memory in bytes.
    Memory,
    /// CPU in cores.
    Cpu,
}

impl Resource {
    /// The `resource_type` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Cpu => "cpu",
        }
    }

    /// A value for people: GB for memory, vCPU for cpu.
    pub fn human(self, v: f64) -> String {
        match self {
            Self::Memory => format!("{:.0} GB", v / 1e9),
            Self::Cpu => format!("{v:.0} vCPU"),
        }
    }
}

/// Capacity and requests of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ResourceAllocation {
    /// Capacity of the NodePool's nodes, by the [`Capacity`] series read.
    pub usage: f64,
    /// Requests of the pods on them, daemons included.
    pub requests: f64,
}

impl ResourceAllocation {
    /// requests / usage in percent (0 when the pool has no capacity).
    pub fn rate_percent(&self) -> f64 {
        if self.usage > 0.0 {
            self.requests / self.usage * 100.0
        } else {
            0.0
        }
    }
}

/// The NodePool's allocation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Allocation {
    /// Which metrics it came from.
    pub generation: Generation,
    /// Which series the capacity is.
    pub capacity: Capacity,
    /// Memory.
    pub memory: ResourceAllocation,
    /// CPU.
    pub cpu: ResourceAllocation,
}

impl Allocation {
    /// max(memory rate, cpu rate), in percent.
    pub fn max_rate_percent(&self) -> f64 {
        self.memory.rate_percent().max(self.cpu.rate_percent())
    }

    /// The queries it was read with, in the order they were read.
    pub fn queries(&self, nodepool: &str, sel: &Selector) -> Vec<String> {
        self.generation.queries(self.capacity, nodepool, sel)
    }
}

/// Label values are double-quoted in PromQL; escape what would end the string.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_per_generation() {
        let none = Selector::default();
        let cluster = Selector::parse(r#"cluster="prod-eks""#).unwrap();
        let cases = [
            (
                Generation::V1.capacity_query(Capacity::Usage, "gp", Resource::Memory, &none),
                r#"sum(karpenter_nodepools_usage{nodepool="gp",resource_type="memory"})"#,
            ),
            (
                Generation::Legacy.capacity_query(Capacity::Usage, "gp", Resource::Cpu, &none),
                r#"sum(karpenter_nodepool_usage{nodepool="gp",resource_type="cpu"})"#,
            ),
            (
                Generation::V1.capacity_query(Capacity::Allocatable, "gp", Resource::Cpu, &none),
                r#"sum(karpenter_nodes_allocatable{nodepool="gp",resource_type="cpu"})"#,
            ),
            (
                Generation::Legacy.capacity_query(
                    Capacity::Allocatable,
                    "gp",
                    Resource::Memory,
                    &cluster,
                ),
                r#"sum(karpenter_nodes_allocatable{nodepool="gp",resource_type="memory",cluster="prod-eks"})"#,
            ),
            (
                Generation::V1.requests_query("gp", Resource::Cpu, &none),
                r#"sum(karpenter_nodes_total_pod_requests{nodepool="gp",resource_type="cpu"})"#,
            ),
            (
                Generation::Legacy.requests_query("gp", Resource::Cpu, &cluster),
                r#"sum(karpenter_nodes_total_pod_requests{nodepool="gp",resource_type="cpu",cluster="prod-eks"}) + sum(karpenter_nodes_total_daemon_requests{nodepool="gp",resource_type="cpu",cluster="prod-eks"})"#,
            ),
            (
                Generation::V1.probe_query("a\"b", &none),
                r#"count(karpenter_nodepools_usage{nodepool="a\"b"})"#,
            ),
            (
                Generation::V1.probe_query("gp", &cluster),
                r#"count(karpenter_nodepools_usage{nodepool="gp",cluster="prod-eks"})"#,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        // Every query carries the selector.
        let all = [Capacity::Allocatable, Capacity::Usage]
            .into_iter()
            .flat_map(|c| Generation::Legacy.queries(c, "gp", &cluster))
            .collect::<Vec<_>>();
        assert_eq!(all.len(), 10);
        for q in all {
            assert_eq!(
                q.matches(r#"cluster="prod-eks""#).count(),
                q.matches("karpenter_").count(),
                "{q}"
            );
        }
    }

    #[test]
    fn rates_match_the_node_manager_example() {
        // The node-manager README: 331 GB usage, 91 GB requests -> 27 %; 48 vCPU, 34 -> 71 %.
        let a = Allocation {
            generation: Generation::Legacy,
            capacity: Capacity::Usage,
            memory: ResourceAllocation {
                usage: 331e9,
                requests: 91e9,
            },
            cpu: ResourceAllocation {
                usage: 48.0,
                requests: 34.0,
            },
        };
        assert_eq!(a.memory.rate_percent().floor(), 27.0);
        assert_eq!(a.cpu.rate_percent().floor(), 70.0);
        assert_eq!(a.max_rate_percent(), a.cpu.rate_percent());
        assert_eq!(
            ResourceAllocation {
                usage: 0.0,
                requests: 5.0
            }
            .rate_percent(),
            0.0
        );
        assert_eq!(Resource::Memory.human(331e9), "331 GB");
    }
}
