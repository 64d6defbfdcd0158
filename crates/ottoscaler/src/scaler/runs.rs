//! Pipeline runs: `ExecutePipeline` validates and starts one (the driver is
//! [`crate::executor::drive`]), `WatchPipeline` reads its progress, and
//! `CancelPipeline` stops it. When a driver returns, its end is recorded here.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::history::keep_history;
use super::{RunEntry, Scaler, decide, lock};
use crate::backend::Note;
use crate::core::clock::{now_ms, random_suffix};
use crate::core::config::resolve;
use crate::core::history;
use crate::core::spec::{self, SpecError};
use crate::core::teams::Caller;
use crate::core::worker::{Group, GroupRecord, WorkerLabels, WorkerPlan};
use crate::error::{Error, Result};
use crate::executor::{self, RunEnd, RunMsg, RunSetup};
use crate::progress::Progress;
use crate::proto::{self, PipelineProgress};

impl Scaler {
    /// The worker a template asks for, resources resolved from its class (name and
    /// labels are filled in by whoever creates it). `field` names the template.
    pub(super) fn worker_plan(
        &self,
        field: &str,
        w: &spec::WorkerTemplate,
    ) -> Result<WorkerPlan, SpecError> {
        let (class_name, class) = self
            .config
            .class(&format!("{field}.worker_class"), &w.class)?;
        let r = resolve(
            class_name,
            class,
            &w.resources,
            &format!("{field}.resources"),
        )?;
        Ok(WorkerPlan {
            name: String::new(),
            labels: WorkerLabels {
                group: Group::Task(String::new()),
                stage: String::new(),
                attempt: 1,
                team: String::new(),
                class: class_name.to_string(),
            },
            image: w.image.clone(),
            command: w.command.clone(),
            env: w.env.clone(),
            requests: r.requests,
            limits: r.limits,
            annotations: w.annotations.clone(),
            node_selector: class.node_selector.clone(),
            tolerations: class.tolerations.clone(),
            grace: self.opts.grace,
        })
    }

    /// Validates and starts a run; returns its id and progress.
    pub async fn submit(
        self: &Arc<Self>,
        caller: &Caller,
        req: &proto::PipelineRequest,
    ) -> Result<(String, Arc<Progress>)> {
        let pipeline = spec::validate(req)?;
        let workers = pipeline
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| self.worker_plan(&format!("stages[{i}].worker"), &s.worker))
            .collect::<Result<Vec<_>, _>>()?;
        let mut capacity = Vec::with_capacity(workers.len());
        for (i, w) in workers.iter().enumerate() {
            let field = format!("stages[{i}].worker.resources");
            capacity.push(self.deps.admit(w, 1, false, &field).await?);
        }
        let id = if req.run_id.is_empty() {
            format!("r-{}", random_suffix(8))
        } else {
            req.run_id.clone()
        };
        let progress = Progress::restored(&id, Vec::new(), true);
        let cancel = CancellationToken::new();
        let (tx, rx) = self.register(&id, &caller.team, &progress, &cancel)?;
        let mut recorded = req.clone();
        recorded.run_id.clone_from(&id);
        let record = GroupRecord {
            group: Group::Run(id.clone()),
            team: caller.team.clone(),
            state: "running".into(),
            reason: String::new(),
            finished_ms: None,
            request: history::encode_request(&recorded),
            history: Vec::new(),
        };
        if let Err(e) = self.deps.backend.put_group(&record).await {
            lock(&self.runs).remove(&id);
            return Err(e);
        }
        info!(run = %id, team = %caller.team, pipeline = %pipeline.name, stages = pipeline.stages.len(), "run submitted");
        self.note(
            Group::Run(id.clone()),
            Note {
                reason: "PipelineStarted",
                warning: false,
                action: "Submit",
                text: format!(
                    "team {} started pipeline {} ({} stages)",
                    caller.team,
                    pipeline.name,
                    pipeline.stages.len()
                ),
            },
        );
        let setup = RunSetup {
            id: id.clone(),
            team: caller.team.clone(),
            pipeline,
            workers,
            capacity,
            progress: progress.clone(),
            cancel,
            resume: None,
        };
        self.launch(setup, tx, rx);
        Ok((id, progress))
    }

    /// Makes run `id` known (live), refusing an id in use; returns its driver's inbox.
    pub(super) fn register(
        &self,
        id: &str,
        team: &str,
        progress: &Arc<Progress>,
        cancel: &CancellationToken,
    ) -> Result<(
        mpsc::UnboundedSender<RunMsg>,
        mpsc::UnboundedReceiver<RunMsg>,
    )> {
        let mut runs = lock(&self.runs);
        if runs.contains_key(id) {
            return Err(Error::AlreadyExists(id.into()));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        runs.insert(
            id.into(),
            RunEntry {
                team: team.into(),
                progress: progress.clone(),
                cancel: cancel.clone(),
                tx: Some(tx.clone()),
            },
        );
        Ok((tx, rx))
    }

    /// Starts the driver of a registered run and the writer of its history.
    pub(super) fn launch(
        self: &Arc<Self>,
        setup: RunSetup,
        tx: mpsc::UnboundedSender<RunMsg>,
        rx: mpsc::UnboundedReceiver<RunMsg>,
    ) {
        self.deps.logs.buffer(&Group::Run(setup.id.clone()));
        let writer = keep_history(
            self.deps.backend.clone(),
            setup.id.clone(),
            setup.progress.clone(),
        );
        let halted = self.halted.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = writer => {}
                () = halted.cancelled() => {}
            }
        });
        let me = self.clone();
        let run = setup.id.clone();
        tokio::spawn(async move {
            let halted = me.halted.clone();
            let drive = executor::drive(me.deps.clone(), setup, tx, rx);
            tokio::select! {
                end = drive => me.run_ended(&run, end).await,
                () = halted.cancelled() => {}
            }
        });
    }

    /// Records the end of a run: its record, the closed log buffer, the final
    /// progress message; forgets it after the retention.
    async fn run_ended(self: &Arc<Self>, id: &str, end: RunEnd) {
        if self.halted.is_cancelled() {
            // Not the leader any more: the next one records the end.
            return;
        }
        let state = decide::ended(end.state);
        let (progress, team) = {
            let mut runs = lock(&self.runs);
            runs.get_mut(id).map_or((None, String::new()), |r| {
                r.tx = None;
                (Some(r.progress.clone()), r.team.clone())
            })
        };
        let took = progress
            .as_ref()
            .and_then(|p| p.started_ms())
            .map(|t| (now_ms() - t).max(0) as f64 / 1000.0);
        self.deps.metrics.run(state, took);
        let record = GroupRecord {
            group: Group::Run(id.into()),
            team,
            state: state.into(),
            reason: end.text.into(),
            finished_ms: Some(now_ms()),
            request: Vec::new(),
            history: Vec::new(),
        };
        if let Err(e) = self.deps.backend.put_group(&record).await {
            warn!(run = %id, error = %e, "recording the end of the run failed");
        }
        let (reason, warning) = decide::end_event(end.state);
        self.note(
            Group::Run(id.into()),
            Note {
                reason,
                warning,
                action: "End",
                text: format!("run {}", end.text),
            },
        );
        if let Some(b) = self.deps.logs.get(&Group::Run(id.into())) {
            b.close();
        }
        if let Some(p) = progress {
            p.emit(PipelineProgress {
                run_state: end.state as i32,
                message: format!("run {}", end.text),
                r#final: true,
                ..Default::default()
            });
        }
        self.forget_after(Group::Run(id.into()), self.opts.retention);
    }

    /// The progress of a run, if `caller` may see it.
    pub fn progress(&self, caller: &Caller, run_id: &str) -> Result<Arc<Progress>> {
        self.run_owner(caller, run_id)?;
        lock(&self.runs)
            .get(run_id)
            .map(|r| r.progress.clone())
            .ok_or_else(|| Error::NotFound {
                kind: "run",
                id: run_id.into(),
            })
    }

    /// Cancels a run (if `caller` may); false if it had already ended.
    pub fn cancel(&self, caller: &Caller, run_id: &str, reason: &str) -> Result<bool> {
        self.run_owner(caller, run_id)?;
        let cancelled = self.cancel_run(run_id)?;
        if cancelled {
            let why = if reason.is_empty() {
                "no reason given"
            } else {
                reason
            };
            self.note(
                Group::Run(run_id.into()),
                Note {
                    reason: "PipelineCancelRequested",
                    warning: false,
                    action: "Cancel",
                    text: format!("team {} cancelled the run: {why}", caller.team),
                },
            );
        }
        Ok(cancelled)
    }

    fn cancel_run(&self, run_id: &str) -> Result<bool> {
        let runs = lock(&self.runs);
        let r = runs.get(run_id).ok_or_else(|| Error::NotFound {
            kind: "run",
            id: run_id.into(),
        })?;
        if r.tx.is_none() {
            return Ok(false);
        }
        r.cancel.cancel();
        Ok(true)
    }
}
