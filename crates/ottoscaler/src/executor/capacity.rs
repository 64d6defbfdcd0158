//! A stage whose worker waits for a node with room: the driver says so, once per
//! reason, with the scheduler's reason or the scaler's own capacity check.

use tracing::warn;

use super::{Driver, stage_msg};
use crate::core::worker::WorkerPlan;
use crate::proto::StageState;

impl Driver {
    /// A stage whose worker did not fit at submission is checked again now that its
    /// worker exists; if it still does not fit, the stage says it waits for capacity.
    pub(super) async fn recheck_capacity(&mut self, i: usize, plan: &WorkerPlan) {
        if self.setup.capacity[i].is_none() {
            return;
        }
        let field = format!("stages[{i}].worker.resources");
        match self.deps.admit(plan, 1, false, &field).await {
            Ok(Some(reason)) => self.waiting(i, &plan.name, reason),
            Ok(None) => self.setup.capacity[i] = None,
            // Refused (strict) cannot happen here: strict refused the run at submission.
            Err(e) => {
                warn!(run = %self.setup.id, stage = self.name(i), error = %e, "checking capacity failed");
            }
        }
    }

    /// Reports (once per distinct reason) that the stage's worker waits for capacity.
    pub(super) fn waiting(&mut self, i: usize, worker: &str, reason: String) {
        if self.rt[i].waiting.as_deref() == Some(reason.as_str()) {
            return;
        }
        let mut m = stage_msg(
            self.name(i),
            StageState::Pending,
            self.rt[i].attempt,
            format!("waiting for capacity: {reason}"),
        );
        m.worker = worker.to_string();
        m.capacity_wait.clone_from(&reason);
        self.emit(m);
        self.rt[i].waiting = Some(reason);
    }
}
