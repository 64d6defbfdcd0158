//! The pure core of the NodePool drain: decisions and data without I/O, each
//! table-tested. Nothing here holds a client.
//!
//! - [`alloc`]: the NodePool's allocation from Karpenter's metrics, and its arithmetic.
//! - [`batch`]: how many and which nodes to drain (the node-manager formula).
//! - [`budget`]: what the NodePool's disruption budgets allow now.
//! - [`events`]: which Kubernetes Event (type, reason) a node's drain records.
//! - [`handoff`]: what becomes of a drained node (its NodeClaim deleted, the Node
//!   deleted, or kept), and which NodeClaims replaced it.
//! - [`preflight`]: what stands in the way, found before anything changes.
//! - [`pods`]: what planning reads of a pod; the slim copy a cluster-wide list keeps.
//! - [`removal`]: how one pod leaves its node, what an eviction answer leads to,
//!   when a node's wait is over.
//! - [`room`]: whether another node has room for a pod's replacement.
//! - [`selector`]: the label matchers `--prometheus-selector` adds to every query.
//! - [`surge`]: whether a Deployment's pod gets its replacement Ready first.
//! - [`report`]: progress events, node outcomes, the run's report, its exit status
//!   and what a run rolls back.

pub mod alloc;
pub mod batch;
pub mod budget;
pub mod events;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod handoff;
pub mod pods;
pub mod preflight;
pub mod removal;
pub mod report;
pub mod room;
pub mod selector;
pub mod surge;
