//! What a pipeline run's driver needs from the scaler it belongs to, as one value
//! ([`RunDeps`]): the worker layer, the cap and its queue, the log hub, the
//! metrics and two knobs. The scaler holds one and hands each run a clone, so the
//! executor never sees the scaler (dependencies point one way: scaler →
//! executor → deps).

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::backend::Backend;
use crate::core::room::{CapacityCheck, Verdict, verdict};
use crate::core::worker::WorkerPlan;
use crate::error::{Error, Result};
use crate::logs::LogHub;
use crate::metrics::Metrics;
use crate::slots::Slots;

/// The shared parts of the scaler a run uses. Cheap to clone (handles).
#[derive(Debug, Clone)]
pub struct RunDeps {
    /// Where workers run.
    pub backend: Arc<dyn Backend>,
    /// The concurrency cap on workers and its fair queue.
    pub slots: Slots,
    /// Every run's and task's log buffer.
    pub logs: LogHub,
    /// Metrics.
    pub metrics: Metrics,
    /// Default termination grace period of a deleted worker.
    pub grace: Duration,
    /// `--capacity-check`: workers no node has room for wait or are refused.
    pub capacity: CapacityCheck,
    /// Webhooks on run end and stage failure.
    pub notify: crate::notify::Notifier,
}

impl RunDeps {
    /// Checks `count` workers like `plan` (against free room when `now`, else against
    /// allocatable): `Ok(None)` when they fit, `Ok(Some(reason))` when they go ahead
    /// and wait for capacity, an error naming `field` when they are refused.
    pub async fn admit(
        &self,
        plan: &WorkerPlan,
        count: u32,
        now: bool,
        field: &str,
    ) -> Result<Option<String>> {
        let shortfall = self.backend.room(plan, count, now).await?;
        match verdict(self.capacity, shortfall.as_ref()) {
            Verdict::Fits => Ok(None),
            Verdict::Wait(reason) => {
                info!(field, %reason, "workers do not fit now; they wait for capacity");
                Ok(Some(reason))
            }
            Verdict::Refuse(reason) => Err(Error::NoRoom {
                field: field.into(),
                reason,
            }),
        }
    }
}
