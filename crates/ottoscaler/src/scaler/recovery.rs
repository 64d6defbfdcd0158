//! Restart safety: rebuilding state from the records and the worker pods at
//! start-up (runs in flight continue), the orphan sweep, and forgetting finished runs after their retention.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{RunEntry, Scaler, decide, lock};
use crate::core::clock::now_ms;
use crate::core::removal::orphans;
use crate::core::spec;
use crate::core::worker::{Group, GroupRecord, WorkerObs};
use crate::core::{history, resume};
use crate::error::Result;
use crate::executor::RunSetup;
use crate::progress::Progress;
use crate::proto::PipelineProgress;

impl Scaler {
    fn live_groups(&self) -> HashSet<Group> {
        let mut live: HashSet<Group> = lock(&self.tasks)
            .keys()
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

    /// Start-up: runs that were in flight go on (their workers adopted, see
    /// [`crate::core::resume`]), finished runs stay readable with their whole
    /// history until their retention ends, tasks stay live, and workers of no live
    /// group are deleted. A run that cannot be continued (a record without its
    /// request, written by an older version, or a request the config now refuses)
    /// ends as failed, saying why.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        let records = self.deps.backend.list_groups().await?;
        let workers = self.deps.backend.list_workers().await?;
        let mut resumed = 0;
        for r in records {
            let id = match &r.group {
                Group::Task(id) => {
                    lock(&self.tasks).insert(id.clone(), r.team.clone());
                    continue;
                }
                Group::Run(id) => id.clone(),
            };
            let why = if r.state == "running" && !r.request.is_empty() {
                match self.resume(&id, &r, &workers) {
                    Ok(()) => {
                        self.deps.metrics.resumed();
                        resumed += 1;
                        continue;
                    }
                    Err(why) => Some(why),
                }
            } else {
                None
            };
            let (mut r, interrupted) = decide::after_restart(r, now_ms());
            if interrupted {
                if let Some(why) = why {
                    r.reason = format!("{} (it could not be continued: {why})", r.reason);
                }
                self.deps.backend.put_group(&r).await?;
                warn!(run = %id, reason = %r.reason, "run interrupted by a scaler restart");
            }
            let progress = Progress::restored(&id, r.history.clone(), false);
            progress.emit(PipelineProgress {
                run_state: decide::recorded_state(&r) as i32,
                message: r.reason.clone(),
                r#final: true,
                ..Default::default()
            });
            lock(&self.runs).insert(
                id.clone(),
                RunEntry {
                    team: r.team.clone(),
                    progress,
                    cancel: CancellationToken::new(),
                    tx: None,
                },
            );
            let left = decide::retention_left(self.opts.retention, r.finished_ms, now_ms());
            self.forget_after(Group::Run(id), left);
        }
        let deleted = self.sweep().await?;
        info!(resumed, deleted, "recovered state from the cluster");
        Ok(())
    }

    /// Continues run `id` from its record `r`, given the `workers` that exist.
    fn resume(
        self: &Arc<Self>,
        id: &str,
        r: &GroupRecord,
        workers: &[WorkerObs],
    ) -> Result<(), String> {
        let req = history::decode_request(&r.request)?;
        let pipeline = spec::validate(&req).map_err(|e| e.to_string())?;
        let plans = pipeline
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| self.worker_plan(&format!("stages[{i}].worker"), &s.worker))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let resumed = resume::resume(id, &pipeline, &r.history, workers);
        let progress = Progress::restored(id, r.history.clone(), true);
        let cancel = CancellationToken::new();
        let (tx, rx) = self
            .register(id, &r.team, &progress, &cancel)
            .map_err(|e| e.to_string())?;
        let setup = RunSetup {
            id: id.into(),
            team: r.team.clone(),
            capacity: vec![None; plans.len()],
            workers: plans,
            pipeline,
            progress,
            cancel,
            resume: Some(resumed),
        };
        self.launch(setup, tx, rx);
        Ok(())
    }

    /// Deletes orphan workers; returns how many.
    pub async fn sweep(&self) -> Result<usize> {
        if self.halted.is_cancelled() {
            return Ok(0);
        }
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
            if me.halted.is_cancelled() {
                return;
            }
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
