//! The metrics of `steward drain`, declared once, served on `--metrics-addr` while a
//! drain runs (a Job scraped by a PodMonitor).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::core::report::{NodeOutcome, Progress};

/// A node's state in this run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `pending`, `draining`, `drained`, `timed_out`, `interrupted`, `failed`.
    pub state: String,
}

/// What happened to a pod.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `evicted`, `deleted`, `blocked`, `failed`.
    pub result: String,
}

/// One node.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    /// Its name.
    pub node: String,
}

/// Every metric of a drain.
#[derive(Debug, Clone)]
pub struct Metrics {
    nodes: Family<StateLabel, Gauge>,
    pods: Family<ResultLabel, Counter>,
    deadline: Family<NodeLabel, Gauge>,
    duration: Histogram,
    timeout_secs: i64,
}

impl Metrics {
    /// The metrics, registered in `registry`; `timeout` is `--timeout`.
    pub fn new(registry: &mut Registry, timeout: std::time::Duration) -> Self {
        let m = Self {
            nodes: Family::default(),
            pods: Family::default(),
            deadline: Family::default(),
            duration: Histogram::new(exponential_buckets(5.0, 2.0, 10)),
            timeout_secs: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        };
        // Every label value exists from the start (0), so the series are there
        // before the first event and `increase()` sees the first one.
        for state in [
            "pending",
            "draining",
            "drained",
            "timed_out",
            "interrupted",
            "failed",
        ] {
            m.state(state);
        }
        for result in ["evicted", "deleted", "blocked", "failed"] {
            m.pods
                .get_or_create(&ResultLabel {
                    result: result.into(),
                })
                .inc_by(0);
        }
        registry.register(
            "steward_drain_nodes",
            "Nodes of this drain by state",
            m.nodes.clone(),
        );
        registry.register(
            "steward_drain_pods",
            "Pods moved off draining nodes, by result",
            m.pods.clone(),
        );
        registry.register(
            "steward_drain_node_deadline_timestamp_seconds",
            "When a node being drained runs out of --timeout (Unix seconds); gone once it ends",
            m.deadline.clone(),
        );
        registry.register(
            "steward_drain_node_duration_seconds",
            "Seconds a node took to drain",
            m.duration.clone(),
        );
        m
    }

    fn state(&self, state: &str) -> Gauge {
        self.nodes
            .get_or_create(&StateLabel {
                state: state.into(),
            })
            .clone()
    }

    /// The batch is known: every node pending.
    pub fn planned(&self, nodes: usize) {
        self.state("pending")
            .set(i64::try_from(nodes).unwrap_or(i64::MAX));
    }

    /// A node's drain begins at `now` (Unix seconds).
    pub fn started(&self, node: &str, now: i64) {
        self.state("pending").dec();
        self.state("draining").inc();
        self.deadline
            .get_or_create(&NodeLabel { node: node.into() })
            .set(now.saturating_add(self.timeout_secs));
    }

    /// One progress event: pods moved.
    pub fn progress(&self, p: &Progress) {
        let result = match p {
            Progress::PodEvicted { .. } => "evicted",
            Progress::PodDeleted { .. } => "deleted",
            Progress::PodBlocked { .. } => "blocked",
            Progress::PodFailed { .. } => "failed",
            Progress::NodeStarted { .. } | Progress::Remaining { .. } => return,
        };
        self.pods
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    /// A started node's drain ended.
    pub fn outcome(&self, node: &str, outcome: &NodeOutcome) {
        self.deadline.remove(&NodeLabel { node: node.into() });
        self.state("draining").dec();
        let state = match outcome {
            NodeOutcome::Drained { seconds } => {
                self.duration.observe(*seconds as f64);
                "drained"
            }
            NodeOutcome::TimedOut { .. } => "timed_out",
            NodeOutcome::Interrupted { .. } => "interrupted",
            NodeOutcome::Failed { .. } => "failed",
        };
        self.state(state).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_a_node_from_pending_to_drained() {
        let mut r = Registry::default();
        let m = Metrics::new(&mut r, std::time::Duration::from_secs(900));
        let text = |r: &Registry| {
            let mut t = String::new();
            prometheus_client::encoding::text::encode(&mut t, r).unwrap();
            t
        };
        m.planned(2);
        m.started("a", 1000);
        m.progress(&Progress::PodEvicted {
            node: "a".into(),
            pod: "p".into(),
        });
        let t = text(&r);
        assert!(
            t.contains("steward_drain_nodes{state=\"pending\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("steward_drain_nodes{state=\"draining\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("steward_drain_node_deadline_timestamp_seconds{node=\"a\"} 1900"),
            "{t}"
        );
        assert!(
            t.contains("steward_drain_pods_total{result=\"evicted\"} 1"),
            "{t}"
        );
        m.outcome("a", &NodeOutcome::Drained { seconds: 12 });
        let t = text(&r);
        assert!(
            t.contains("steward_drain_nodes{state=\"draining\"} 0"),
            "{t}"
        );
        assert!(
            t.contains("steward_drain_nodes{state=\"drained\"} 1"),
            "{t}"
        );
        assert!(!t.contains("deadline_timestamp_seconds{"), "{t}");
        assert!(
            t.contains("steward_drain_node_duration_seconds_count 1"),
            "{t}"
        );
    }
}
