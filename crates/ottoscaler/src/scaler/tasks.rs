//! Scale-up tasks: `ScaleUp` creates N workers for a task (under the cap, after
//! the capacity check), `ScaleDown` removes idle ones first, busy ones only when
//! forced, and the task's record with its last worker.

use tracing::info;

use super::{Scaler, decide, lock};
use crate::core::clock::random_suffix;
use crate::core::removal::pick_scale_down;
use crate::core::spec::{self, bad, check_name};
use crate::core::teams::{Caller, Cost};
use crate::core::worker::{Group, GroupRecord, WorkerLabels};
use crate::error::{Error, Result};
use crate::proto;
use crate::slots::Refused;

impl Scaler {
    /// ScaleUp: creates `worker_count` workers for the task; with them, why some
    /// wait for capacity, if they do.
    pub async fn scale_up(
        &self,
        caller: &Caller,
        req: &proto::ScaleRequest,
    ) -> Result<(Vec<String>, Option<String>)> {
        check_name("task_id", &req.task_id, spec::MAX_ID)?;
        self.task_owner(caller, &req.task_id)?;
        // An admin scaling another team's task adds workers of that team.
        let team = lock(&self.tasks)
            .get(&req.task_id)
            .cloned()
            .unwrap_or_else(|| caller.team.clone());
        let cap = self.opts.max_workers;
        let n = decide::scale_up_count(req.worker_count, cap)?;
        let w = req.worker.clone().unwrap_or_default();
        if w.image.is_empty() && w.command.is_empty() {
            return Err(bad("worker", "needs an image or a command").into());
        }
        let mut plan = self.worker_plan("worker", &spec::WorkerTemplate::from(w))?;
        let waiting = self.deps.admit(&plan, n, true, "worker_count").await?;
        let permits = self
            .deps
            .slots
            .try_acquire(&team, n, Cost::of(&plan.requests))
            .map_err(|r| match r {
                Refused::Cap(in_use) => Error::OverCapacity {
                    requested: n,
                    in_use,
                    cap,
                },
                Refused::Quota(quota) => Error::OverQuota {
                    field: "worker_count".into(),
                    requested: n,
                    team: team.clone(),
                    quota,
                },
            })?;
        let group = Group::Task(req.task_id.clone());
        let new = {
            let mut tasks = lock(&self.tasks);
            match tasks.get(&req.task_id) {
                Some(owner) if owner != &team => {
                    // Another team took the id meanwhile.
                    return Err(Error::PermissionDenied {
                        kind: "task",
                        id: req.task_id.clone(),
                        team: caller.team.clone(),
                    });
                }
                Some(_) => false,
                None => {
                    tasks.insert(req.task_id.clone(), team.clone());
                    true
                }
            }
        };
        if new {
            let r = GroupRecord {
                group: group.clone(),
                team: team.clone(),
                state: "active".into(),
                reason: String::new(),
                finished_ms: None,
                request: Vec::new(),
                history: Vec::new(),
            };
            if let Err(e) = self.deps.backend.put_group(&r).await {
                lock(&self.tasks).remove(&req.task_id);
                return Err(e);
            }
        }
        plan.labels = WorkerLabels {
            group,
            stage: String::new(),
            attempt: 1,
            team,
            class: std::mem::take(&mut plan.labels.class),
        };
        plan.env
            .insert("OTTOSCALER_TASK_ID".into(), req.task_id.clone());
        let mut created = Vec::new();
        for permit in permits {
            plan.name = format!("{}-{}", req.task_id, random_suffix(6));
            lock(&self.task_permits).insert(plan.name.clone(), permit);
            if let Err(e) = self.deps.backend.create_worker(&plan).await {
                lock(&self.task_permits).remove(&plan.name);
                return Err(e);
            }
            created.push(plan.name.clone());
        }
        info!(task = %req.task_id, workers = created.len(), "scaled up");
        Ok((created, waiting))
    }

    /// ScaleDown: deletes up to `worker_count` (0 = all) workers of the task.
    pub async fn scale_down(
        &self,
        caller: &Caller,
        req: &proto::ScaleRequest,
    ) -> Result<(Vec<String>, usize)> {
        check_name("task_id", &req.task_id, spec::MAX_ID)?;
        self.task_owner(caller, &req.task_id)?;
        if !lock(&self.tasks).contains_key(&req.task_id) {
            return Err(Error::NotFound {
                kind: "task",
                id: req.task_id.clone(),
            });
        }
        let (count, grace) =
            decide::scale_down_args(req.worker_count, req.grace_period_seconds, self.opts.grace)?;
        let workers = self.workers(&req.task_id, "");
        let picked = pick_scale_down(&workers, count, req.force);
        for w in &picked {
            self.deps.backend.delete_worker(w, grace).await?;
        }
        let left = decide::left_after(&workers, &picked);
        if left == 0 && count == 0 {
            lock(&self.tasks).remove(&req.task_id);
            self.deps
                .backend
                .delete_group(&Group::Task(req.task_id.clone()))
                .await?;
        }
        info!(task = %req.task_id, removed = picked.len(), left, "scaled down");
        Ok((picked, left))
    }
}
