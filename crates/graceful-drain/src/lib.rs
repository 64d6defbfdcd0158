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
//! Pure: `admission`, `advice`, `budget`, `config`, `state`, `workload`, `procnet`, `gauge`,
//! `agent::cgroup`, `agent::query`, and the parsing half of `probe`. I/O: `webhook`,
//! `controller`, `inplace` (advice on VPAs), `certs`, `doctor`, `run`, `vpa` (the
//! cache), `agent` (the node agent) and `agent::scan`.

pub mod admission;
pub mod advice;
pub mod agent;
pub mod budget;
pub mod certs;
pub mod config;
pub mod controller;
pub mod doctor;
pub mod error;
pub mod events;
pub mod gauge;
pub mod inplace;
pub mod memory;
pub mod messages;
pub mod metrics;
pub mod probe;
pub mod probe_spec;
pub mod procnet;
mod run;
pub mod state;
pub mod vpa;
pub mod webhook;
pub mod workload;

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
        Command::Run(args) => run(*args, ctx.lang, ctx.shutdown).await,
        Command::Doctor(args) => doctor::run(args, ctx.lang).await,
        Command::Agent(args) => agent::run(*args, ctx.shutdown).await,
    }
    .map(|()| steward_runtime::Exit::Ok)
}
