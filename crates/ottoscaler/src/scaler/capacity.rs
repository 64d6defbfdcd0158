//! The capacity check of a request: the backend counts what does not fit, the pure
//! [`verdict`] decides with `--capacity-check` whether that waits or is refused.

use tracing::info;

use super::Scaler;
use crate::backend::WorkerPlan;
use crate::error::{Error, Result};
use crate::room::{Verdict, verdict};

impl Scaler {
    /// Checks `count` workers like `plan` (against free room when `now`, else against
    /// allocatable): `Ok(None)` when they fit, `Ok(Some(reason))` when they go ahead
    /// and wait for capacity, an error naming `field` when they are refused.
    pub(crate) async fn admit(
        &self,
        plan: &WorkerPlan,
        count: u32,
        now: bool,
        field: &str,
    ) -> Result<Option<String>> {
        let shortfall = self.backend.room(plan, count, now).await?;
        match verdict(self.opts.capacity, shortfall.as_ref()) {
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
