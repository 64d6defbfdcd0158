//! The worker layer: what the executor and the scaler ask of a place that runs
//! workers, and what it reports back. Two implementations share everything above
//! it: [`kubernetes`] (one pod per worker) and
//! [`local`] (one local process per worker).
//!
//! A backend reports observations, not transitions: every change of a worker is sent
//! as its whole current [`WorkerObs`], and the consumers decide idempotently what
//! changed. That keeps a watch relist or a duplicate event harmless.

#[cfg(test)]
pub mod fake;
pub mod kubernetes;
pub mod local;

use std::time::Duration;

use tokio::sync::mpsc;

use crate::core::worker::{Group, GroupRecord, WorkerObs, WorkerPlan};

/// What the backend reports.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    /// A worker exists in this state.
    Applied(WorkerObs),
    /// A worker is gone.
    Deleted(WorkerObs),
    /// The backend's view was rebuilt (watch relist): these are all the workers.
    Resync(Vec<WorkerObs>),
    /// Whether the backend's watch is healthy.
    Healthy(bool),
}

/// Where [`WorkerEvent`]s go.
pub type EventSink = mpsc::UnboundedSender<WorkerEvent>;

/// Errors of a backend call, as text (the backend has already said which object).
pub type BackendResult<T> = Result<T, crate::Error>;

/// A Kubernetes Event about a run or task, published on its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `PipelineStarted`, `PipelineSucceeded`, ...
    pub reason: &'static str,
    /// A Warning (else Normal).
    pub warning: bool,
    /// What was done: `Submit`, `Cancel`, `End`.
    pub action: &'static str,
    /// For people.
    pub text: String,
}

/// A place that runs workers.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// `kubernetes` or `local`.
    fn name(&self) -> &'static str;
    /// Starts reporting to `sink` (the watch, for Kubernetes).
    fn start(
        &self,
        sink: EventSink,
        logs: crate::logs::LogHub,
        shutdown: tokio_util::sync::CancellationToken,
    );
    /// Writes a group's record (creating it if needed).
    async fn put_group(&self, r: &GroupRecord) -> BackendResult<()>;
    /// Writes a run's progress history into its record; a record that is gone is
    /// not created again (`NotFound`). Backends that keep nothing across a restart
    /// keep nothing here either.
    async fn put_history(&self, _run: &str, _history: &[u8]) -> BackendResult<()> {
        Ok(())
    }
    /// Publishes `note` about group `g` (an Event on its record, for Kubernetes);
    /// a failure is logged, never returned. Backends without events do nothing.
    async fn event(&self, _g: &Group, _note: &Note) {}
    /// Deletes a group's record (its workers go with it).
    async fn delete_group(&self, g: &Group) -> BackendResult<()>;
    /// Every group record.
    async fn list_groups(&self) -> BackendResult<Vec<GroupRecord>>;
    /// Creates a worker.
    async fn create_worker(&self, w: &WorkerPlan) -> BackendResult<()>;
    /// Deletes a worker with this grace period; a worker already gone is fine.
    async fn delete_worker(&self, name: &str, grace: Duration) -> BackendResult<()>;
    /// Every worker, read directly (not from the watch).
    async fn list_workers(&self) -> BackendResult<Vec<WorkerObs>>;
    /// How many of `count` workers like `plan` would not fit on the nodes they may
    /// run on: against what is free now when `now` is set, else against allocatable
    /// alone; `None` when all fit. Backends without nodes fit everything.
    async fn room(
        &self,
        _plan: &WorkerPlan,
        _count: u32,
        _now: bool,
    ) -> BackendResult<Option<crate::core::room::Shortfall>> {
        Ok(None)
    }
}
