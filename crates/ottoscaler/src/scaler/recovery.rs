//! Restart safety: rebuilding state from the records and the worker pods at
//! start-up, the orphan sweep, and forgetting finished runs after their retention.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{RunEntry, Scaler, decide, lock};
use crate::core::clock::now_ms;
use crate::core::removal::orphans;
use crate::core::worker::Group;
use crate::error::Result;
use crate::progress::Progress;
use crate::proto::PipelineProgress;

impl Scaler {
    fn live_groups(&self) -> HashSet<Group> {
        let mut live: HashSet<Group> = lock(&self.tasks)
            .iter()
            .map(|t| Group::Task(t.clone()))
            .collect();
        live.extend(
            lock(&self.runs)
                .iter()
                .filter(|(_, r)| r.tx.is_some())
                .map(|(id, _)| Group::Run(id.clone())),
        );
        live
    }

    /// Start-up: runs that were in flight end with a clear reason (their workers are
    /// deleted), finished runs stay readable until their retention ends, tasks stay
    /// live, and workers of no live group are deleted.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        let records = self.deps.backend.list_groups().await?;
        for r in records {
            let (r, interrupted) = decide::after_restart(r, now_ms());
            let id = match &r.group {
                Group::Task(id) => {
                    lock(&self.tasks).insert(id.clone());
                    continue;
                }
                Group::Run(id) => id.clone(),
            };
            if interrupted {
                self.deps.backend.put_group(&r).await?;
                warn!(run = %id, "run interrupted by a scaler restart");
            }
            let progress = Progress::new(&id);
            progress.emit(PipelineProgress {
                run_state: decide::recorded_state(&r) as i32,
                message: r.reason.clone(),
                r#final: true,
                ..Default::default()
            });
            lock(&self.runs).insert(
                id.clone(),
                RunEntry {
                    progress,
                    cancel: CancellationToken::new(),
                    tx: None,
                },
            );
            let left = decide::retention_left(self.opts.retention, r.finished_ms, now_ms());
            self.forget_after(Group::Run(id), left);
        }
        let deleted = self.sweep().await?;
        info!(deleted, "recovered state from the cluster");
        Ok(())
    }

    /// Deletes orphan workers; returns how many.
    pub async fn sweep(&self) -> Result<usize> {
        let workers = self.deps.backend.list_workers().await?;
        let victims = orphans(&self.live_groups(), &workers);
        for w in &victims {
            info!(worker = %w, "deleting orphan worker");
            self.deps.backend.delete_worker(w, Duration::ZERO).await?;
        }
        self.deps.metrics.orphans(victims.len());
        Ok(victims.len())
    }

    pub(super) fn forget_after(self: &Arc<Self>, g: Group, after: Duration) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(me) = me.upgrade() else { return };
            if let Group::Run(id) = &g {
                lock(&me.runs).remove(id);
            }
            me.deps.logs.remove(&g);
            if let Err(e) = me.deps.backend.delete_group(&g).await {
                warn!(group = g.id(), error = %e, "deleting the record of a finished run failed");
            }
        });
    }
}
