//! `OttoscalerService` over [`crate::scaler::Scaler`]: each call authorised for the
//! caller's team; the mutating ones (`ScaleUp`, `ScaleDown`, `ExecutePipeline`,
//! `CancelPipeline`) audited, allowed or not.

use futures::StreamExt;
use tonic::{Request, Response, Status};
use tracing::info;

use super::{BoxStream, Services, caller, status};
use crate::core::teams::Caller;
use crate::core::worker::Group;
use crate::proto::{self, ottoscaler_service_server::OttoscalerService};

fn i32c(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Services {
    /// Writes the audit line of a mutating call; `ok` is the message of a success.
    fn audited<T>(
        &self,
        who: &Caller,
        method: &str,
        target: &str,
        peer: Option<std::net::SocketAddr>,
        r: &Result<T, Status>,
        ok: impl FnOnce(&T) -> String,
    ) {
        let (code, message) = match r {
            Ok(v) => (tonic::Code::Ok, ok(v)),
            Err(s) => (s.code(), s.message().to_string()),
        };
        self.audit
            .record(who, method, target, (code, &message), peer);
    }

    async fn scale_up_for(
        &self,
        who: &Caller,
        req: proto::ScaleRequest,
    ) -> Result<proto::ScaleResponse, Status> {
        let (created, waiting) = self
            .scaler
            .scale_up(who, &req)
            .await
            .map_err(|e| status(&e))?;
        let active = self
            .scaler
            .workers(&req.task_id, "")
            .len()
            .max(created.len());
        let mut message = format!("created {} workers for task {}", created.len(), req.task_id);
        if let Some(w) = &waiting {
            message.push_str(&format!("; waiting for capacity: {w}"));
        }
        Ok(proto::ScaleResponse {
            message,
            task_id: req.task_id,
            workers: created,
            active_workers: i32c(active),
            capacity_wait: waiting.unwrap_or_default(),
        })
    }

    async fn scale_down_for(
        &self,
        who: &Caller,
        req: proto::ScaleRequest,
    ) -> Result<proto::ScaleResponse, Status> {
        let (removed, left) = self
            .scaler
            .scale_down(who, &req)
            .await
            .map_err(|e| status(&e))?;
        let busy_kept = self
            .scaler
            .workers(&req.task_id, "")
            .iter()
            .filter(|w| w.busy)
            .count();
        let mut message = format!("removed {} workers of task {}", removed.len(), req.task_id);
        if !req.force && busy_kept > 0 {
            message.push_str(&format!(
                "; {busy_kept} busy workers kept (force removes them)"
            ));
        }
        Ok(proto::ScaleResponse {
            task_id: req.task_id,
            workers: removed,
            message,
            active_workers: i32c(left),
            capacity_wait: String::new(),
        })
    }
}

impl Services {
    /// `ScaleUp` (`up`) or `ScaleDown`, audited.
    async fn scale(
        &self,
        req: Request<proto::ScaleRequest>,
        up: bool,
    ) -> Result<Response<proto::ScaleResponse>, Status> {
        let (who, peer) = (caller(&req)?, req.remote_addr());
        let req = req.into_inner();
        let target = format!("task/{}", req.task_id);
        let (method, r) = if up {
            ("ScaleUp", self.scale_up_for(&who, req).await)
        } else {
            ("ScaleDown", self.scale_down_for(&who, req).await)
        };
        self.audited(&who, method, &target, peer, &r, |v| v.message.clone());
        r.map(Response::new)
    }
}

fn worker_info(w: crate::core::worker::WorkerObs) -> proto::WorkerInfo {
    proto::WorkerInfo {
        task_id: match &w.labels.group {
            Group::Task(t) => t.clone(),
            Group::Run(_) => String::new(),
        },
        run_id: match &w.labels.group {
            Group::Run(r) => r.clone(),
            Group::Task(_) => String::new(),
        },
        stage: w.labels.stage.clone(),
        attempt: i32::try_from(w.labels.attempt).unwrap_or(0),
        phase: w.phase.as_str().into(),
        busy: w.busy,
        node: w.node.clone(),
        created_unix_ms: w.created_ms,
        capacity_wait: w.unschedulable.unwrap_or_default(),
        team: w.labels.team,
        name: w.name,
    }
}

#[tonic::async_trait]
impl OttoscalerService for Services {
    async fn scale_up(
        &self,
        req: Request<proto::ScaleRequest>,
    ) -> Result<Response<proto::ScaleResponse>, Status> {
        self.scale(req, true).await
    }

    async fn scale_down(
        &self,
        req: Request<proto::ScaleRequest>,
    ) -> Result<Response<proto::ScaleResponse>, Status> {
        self.scale(req, false).await
    }

    async fn get_worker_status(
        &self,
        req: Request<proto::WorkerStatusRequest>,
    ) -> Result<Response<proto::WorkerStatusResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let workers = self
            .scaler
            .workers_for(&who, &req.task_id, &req.run_id)
            .map_err(|e| status(&e))?
            .into_iter()
            .map(worker_info)
            .collect();
        let (cap, used, queued) = self.scaler.usage();
        let c = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Response::new(proto::WorkerStatusResponse {
            workers,
            capacity: c(cap),
            in_use: c(used),
            queued: c(queued),
            team_in_use: c(self
                .scaler
                .team_workers()
                .get(&who.team)
                .copied()
                .unwrap_or(0)),
            team: who.team,
        }))
    }

    type ExecutePipelineStream = BoxStream<proto::PipelineProgress>;

    async fn execute_pipeline(
        &self,
        req: Request<proto::PipelineRequest>,
    ) -> Result<Response<Self::ExecutePipelineStream>, Status> {
        let (who, peer) = (caller(&req)?, req.remote_addr());
        let r = self
            .scaler
            .submit(&who, req.get_ref())
            .await
            .map_err(|e| status(&e));
        let target = match &r {
            Ok((id, _)) => format!("run/{id}"),
            Err(_) => format!("run/{}", req.get_ref().run_id),
        };
        let pipeline = &req.get_ref().pipeline_name;
        self.audited(&who, "ExecutePipeline", &target, peer, &r, |(id, _)| {
            format!("started run {id} of pipeline {pipeline}")
        });
        let (_, progress) = r?;
        Ok(Response::new(Box::pin(progress.follow(1).map(Ok))))
    }

    type WatchPipelineStream = BoxStream<proto::PipelineProgress>;

    async fn watch_pipeline(
        &self,
        req: Request<proto::WatchPipelineRequest>,
    ) -> Result<Response<Self::WatchPipelineStream>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let progress = self
            .scaler
            .progress(&who, &req.run_id)
            .map_err(|e| status(&e))?;
        Ok(Response::new(Box::pin(
            progress.follow(req.from_seq).map(Ok),
        )))
    }

    async fn cancel_pipeline(
        &self,
        req: Request<proto::CancelPipelineRequest>,
    ) -> Result<Response<proto::CancelPipelineResponse>, Status> {
        let (who, peer) = (caller(&req)?, req.remote_addr());
        let req = req.into_inner();
        let r = self
            .scaler
            .cancel(&who, &req.run_id, &req.reason)
            .map_err(|e| status(&e))
            .map(|cancelled| {
                info!(run = %req.run_id, team = %who.team, cancelled, reason = %req.reason, "cancel requested");
                let message = if cancelled {
                    "cancelling: running workers are deleted, finally stages still run"
                } else {
                    "the run had already ended"
                };
                proto::CancelPipelineResponse {
                    run_id: req.run_id.clone(),
                    cancelled,
                    message: message.into(),
                }
            });
        let target = format!("run/{}", req.run_id);
        self.audited(&who, "CancelPipeline", &target, peer, &r, |v| {
            v.message.clone()
        });
        r.map(Response::new)
    }
}
