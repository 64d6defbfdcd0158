//! Ottoscaler: the gRPC scaler that a CI handler calls to start worker pods, run
//! pipelines as DAGs of stages, and stream progress and logs back.
//!
//! Layers, from pure to wired: `spec`, `retry`, `schedule`, `logs`, `config` and
//! `slots` decide without I/O and are table-tested; `backend` is the worker layer
//! (`kube_backend`: one pod per worker, driven by a pod watch; `local_backend`: one
//! process per worker); `executor` drives runs from worker events; `scaler` holds
//! the shared state (workers, tasks, runs, restart recovery); `server` is the tonic
//! edge; `client` and `run` are the CLI.

pub mod backend;
pub mod client;
pub mod config;
pub mod error;
pub mod executor;
pub mod hub;
pub mod kube_backend;
pub mod local_backend;
pub mod logs;
pub mod messages;
pub mod metrics;
pub mod pipeline_file;
pub mod pods;
pub mod progress;
pub mod retry;
pub mod room;
mod run;
pub mod scaler;
pub mod schedule;
pub mod server;
pub mod slots;
pub mod spec;
pub mod workers;

pub use error::{Error, Result};
pub use run::{BackendKind, OttoscalerArgs, run};

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
