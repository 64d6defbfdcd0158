//! Graceful drain for VPA evictions.
//!
//! When the Vertical Pod Autoscaler's updater (or `kubectl drain`, or Karpenter)
//! evicts a targeted pod (annotation `vpa-managed: "true"` by default), the eviction
//! webhook refuses it with a retryable 429 and records a drain request on the pod;
//! the leader's controller checks the PodDisruptionBudgets with a dry-run
//! eviction, takes the pod out of its Services' selectors, waits until it has
//! drained, then evicts it itself through the Eviction API. See `admission` for
//! why that answer ends every evicter's loop with the pod gone.
//!
//! Layout: `core/` holds every decision, pure (configuration, the webhook's
//! answer, the drain record, budgets, workloads, what follows an eviction answer,
//! VPA objects, advice). Around it the I/O edge: `webhook` (the admission server
//! and its registration), `controller` (the leader's drain loop), `probe` (probe
//! types and parsing, pure; asking a pod, HTTP), `certs`, `inplace` (advice on
//! VPAs), `agent` (the node agent; `agent::procnet`, `agent::cgroup` and
//! `agent::query` are its pure parsers), `doctor` and `run` (the commands).
//!
//! A newcomer starts at `run` (what the process starts), then `webhook` (an
//! eviction arrives) and `controller` (the drain that follows).

pub mod agent;
pub mod certs;
pub mod controller;
pub mod core;
pub mod doctor;
pub mod error;
pub mod events;
pub mod inplace;
pub mod memory;
pub mod messages;
pub mod metrics;
pub mod probe;
mod run;
pub mod webhook;

pub use error::{Error, Result};
pub use run::{CONFIG_KEY, RunArgs, run};

/// `steward graceful-drain` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Serve the eviction webhook and, on the elected replica, run the drain controller (deploy 2 replicas).
    Run(Box<RunArgs>),
    /// Report the VerticalPodAutoscalers in Recreate mode that could use InPlaceOrRecreate and avoid evictions.
    Doctor(doctor::DoctorArgs),
    /// Node agent (DaemonSet, hostPID): counts a pod's ESTABLISHED connections on its serving ports for the `connections` drain probe.
    Agent(Box<agent::AgentArgs>),
}

/// Dispatches a subcommand.
pub async fn dispatch(
    cmd: Command,
    ctx: steward_runtime::Context,
) -> Result<steward_runtime::Exit> {
    match cmd {
        Command::Run(args) => run(*args, ctx).await,
        Command::Doctor(args) => doctor::run(args, ctx).await,
        Command::Agent(args) => agent::run(*args, ctx).await,
    }
    .map(|()| steward_runtime::Exit::Ok)
}
