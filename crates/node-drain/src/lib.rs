//! NodePool drain: rotate the nodes of a Karpenter NodePool safely.
//!
//! `steward drain` sizes the batch from the NodePool's allocation in
//! Prometheus/Mimir (the node-manager formula, clamped), picks the oldest nodes,
//! checks PDBs, protected pods and capacity before touching anything, cordons,
//! evicts through the Eviction API with bounded concurrency and PDB-aware back-off,
//! waits by UID, records progress on each node so a second run resumes, rolls back
//! nodes it never started, and reports to Slack. `steward karpenter allocate-rate`
//! prints the allocation alone.
//!
//! `alloc` and `plan` are pure; `prometheus` and `engine` do the I/O; `run` wires them.

pub mod alloc;
pub mod engine;
pub mod error;
pub mod messages;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod prometheus;
pub mod replacements;
mod run;

pub use error::{Error, Result};
pub use run::{AllocateArgs, DrainArgs, GlobalArgs, run_allocate_rate, run_drain};
