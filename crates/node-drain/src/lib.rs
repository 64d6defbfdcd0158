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
//! Layers, from pure to wired (each depends only on the ones above it):
//! - [`core`]: the decisions and data without I/O (allocation, batch, pre-flight,
//!   how a pod leaves, room, the report), table-tested.
//! - [`prometheus`]: the instant-query client; [`events`]: the Kubernetes Events
//!   recorded on the drained nodes.
//! - [`engine`]: draining one node (evictions, budgets, the wait).
//! - [`drain`]: a whole run, gather → plan → execute → roll back.
//! - [`cli`]: the flags and the two commands; [`display`] and [`messages`] what
//!   people see.
//!
//! A newcomer starts at [`drain`] and follows one node into
//! [`engine::Engine::drain_node`].

pub mod cli;
pub mod core;
pub mod display;
pub mod drain;
pub mod engine;
pub mod error;
pub mod events;
pub mod lock;
pub mod messages;
pub mod metrics;
pub mod prometheus;

pub use cli::{AllocateArgs, DrainArgs, GlobalArgs, run_allocate_rate, run_drain};
pub use error::{Error, Result};
