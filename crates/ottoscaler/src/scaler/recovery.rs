//! Restart safety: rebuilding state from the records and the worker pods at
//! start-up, the orphan sweep, and forgetting finished runs after their retention.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{RunEntry, Scaler, lock};
use crate::core::clock::now_ms;
use crate::core::removal::orphans;
use crate::core::worker::Group;
use crate::error::Result;
use crate::progress::Progress;
use crate::proto::{PipelineProgress, RunState};

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
        let records = self.backend.list_groups().await?;
        for mut r in records {
            match r.group.clone() {
                Group::Task(id) => {
                    lock(&self.tasks).insert(id);
                }
                Group::Run(id) => {
                    if r.state == "running" {
                        r.state = "failed".into();
                        r.reason = "interrupted: the scaler restarted while this run was in flight; its workers were deleted".into();
                        r.finished_ms = Some(now_ms());
                        self.backend.put_group(&r).await?;
                        warn!(run = %id, "run interrupted by a scaler restart");
                    }
                    let state = match r.state.as_str() {
                        "succeeded" => RunState::Succeeded,
                        "cancelled" => RunState::Cancelled,
                        _ => RunState::Failed,
                    };
                    let progress = Progress::new(&id);
                    progress.emit(PipelineProgress {
                        run_state: state as i32,
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
                    let left = self.opts.retention.saturating_sub(Duration::from_millis(
                        u64::try_from(now_ms() - r.finished_ms.unwrap_or_else(now_ms)).unwrap_or(0),
                    ));
                    self.forget_after(Group::Run(id), left);
                }
            }
        }
        let deleted = self.sweep().await?;
        info!(deleted, "recovered state from the cluster");
        Ok(())
    }

    /// Deletes orphan workers; returns how many.
    pub async fn sweep(&self) -> Result<usize> {
        let workers = self.backend.list_workers().await?;
        let victims = orphans(&self.live_groups(), &workers);
        for w in &victims {
            info!(worker = %w, "deleting orphan worker");
            self.backend.delete_worker(w, Duration::ZERO).await?;
        }
        self.metrics.orphans(victims.len());
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
            me.logs.remove(&g);
            if let Err(e) = me.backend.delete_group(&g).await {
                warn!(group = g.id(), error = %e, "deleting the record of a finished run failed");
            }
        });
    }
}
