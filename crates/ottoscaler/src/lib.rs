//! Ottoscaler: the gRPC scaler that a CI handler calls to start worker pods, run
//! pipelines as DAGs of stages, and stream progress and logs back.
//!
//! Layers, from pure to wired (each depends only on the ones above it):
//! - [`core`]: types and decisions without I/O (pipeline spec, DAG scheduler,
//!   retry policy, worker classes, room, clock), table-tested.
//! - [`logs`], [`progress`], [`slots`]: the in-memory state runs share (log
//!   buffers and the hub, progress histories, the fair queue under the cap).
//! - [`backend`]: the worker layer, a trait with two implementations
//!   ([`backend::kubernetes`]: one pod per worker, driven by a pod watch;
//!   [`backend::local`]: one process per worker).
//! - [`deps`]: what a run needs of the scaler ([`deps::RunDeps`]).
//! - [`executor`]: drives one pipeline run from worker events.
//! - [`scaler`]: the shared state (workers, tasks, runs, restart recovery) and
//!   the operations behind the gRPC methods.
//! - [`server`]: the tonic edge; [`cli`]: `steward ottoscaler ...` (flags, the
//!   server's wiring, and the client commands in [`cli::client`]).
//!
//! A newcomer starts at [`scaler::Scaler::submit`] (an `ExecutePipeline` call)
//! and follows it into [`executor::drive`].

pub mod audit;
pub mod backend;
pub mod cli;
pub mod core;
pub mod deps;
pub mod error;
pub mod executor;
pub mod logs;
pub mod messages;
pub mod metrics;
pub mod notify;
pub mod progress;
pub mod scaler;
pub mod server;
pub mod slots;

pub use cli::{BackendKind, OttoscalerArgs, run};
pub use error::{Error, Result};

/// Generated from `proto/ottoscaler.proto`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]
pub mod proto {
    tonic::include_proto!("ottoscaler.v1");

    /// The encoded descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/ottoscaler_descriptor.bin"));
}
