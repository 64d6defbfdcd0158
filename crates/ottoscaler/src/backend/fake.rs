//! An in-memory [`Backend`] for unit tests of the logic above the worker layer
//! (the scaler and the executor). It records every call on a channel the test
//! reads, keeps records and workers in maps, reports a created worker as Running
//! and a deleted one as gone (as a real backend's watch would), and can be told to
//! refuse creates or to report a shortfall of room.
//!
//! It proves nothing about the backends themselves: those are tested against a
//! real control plane (kubernetes) and real processes (local).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, BackendResult, EventSink, WorkerEvent};
use crate::core::room::Shortfall;
use crate::core::worker::{Group, GroupRecord, Phase, WorkerObs, WorkerPlan};
use crate::error::Error;
use crate::logs::LogHub;

/// A call the fake received.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `create_worker`.
    Create(WorkerPlan),
    /// `delete_worker(name, grace)`.
    Delete(String, Duration),
    /// `put_group`.
    PutGroup(GroupRecord),
    /// `delete_group`.
    DeleteGroup(Group),
}

/// What the fake holds; tests set it up and read it through [`Fake::with`].
#[derive(Debug, Default)]
pub struct State {
    /// Records by group.
    pub groups: BTreeMap<Group, GroupRecord>,
    /// Workers, as `list_workers` returns them.
    pub workers: BTreeMap<String, WorkerObs>,
    /// `create_worker` fails.
    pub refuse_create: bool,
    /// What `room` reports.
    pub shortfall: Option<Shortfall>,
    sink: Option<EventSink>,
}

/// The in-memory backend.
#[derive(Debug)]
pub struct Fake {
    calls: mpsc::UnboundedSender<Call>,
    state: Mutex<State>,
}

/// A worker as a backend reports it: `plan`'s name and labels, in `phase`.
pub fn obs(plan: &WorkerPlan, phase: Phase) -> WorkerObs {
    WorkerObs {
        name: plan.name.clone(),
        labels: plan.labels.clone(),
        phase,
        failure: None,
        unschedulable: None,
        exit_code: match phase {
            Phase::Succeeded => Some(0),
            _ => None,
        },
        busy: false,
        node: "n1".into(),
        created_ms: 0,
        cost: crate::core::teams::Cost::of(&plan.requests),
    }
}

impl Fake {
    /// A fake and the receiving end of its calls.
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<Call>) {
        let (calls, rx) = mpsc::unbounded_channel();
        let fake = Arc::new(Self {
            calls,
            state: Mutex::default(),
        });
        (fake, rx)
    }

    /// Reads or changes the state.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Reports an event, as the backend's watch would (once started).
    pub fn report(&self, ev: WorkerEvent) {
        if let WorkerEvent::Applied(o) = &ev {
            self.with(|s| s.workers.insert(o.name.clone(), o.clone()));
        }
        if let Some(sink) = self.with(|s| s.sink.clone()) {
            // The scaler's pump is gone only when the test is over.
            let _ = sink.send(ev);
        }
    }

    fn call(&self, c: Call) {
        // A test that stopped reading calls does not care about more of them.
        let _ = self.calls.send(c);
    }
}

#[async_trait::async_trait]
impl Backend for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn start(&self, sink: EventSink, _logs: LogHub, _shutdown: CancellationToken) {
        let all = self.with(|s| {
            s.sink = Some(sink.clone());
            s.workers.values().cloned().collect()
        });
        let _ = sink.send(WorkerEvent::Resync(all));
        let _ = sink.send(WorkerEvent::Healthy(true));
    }

    async fn put_group(&self, r: &GroupRecord) -> BackendResult<()> {
        self.with(|s| s.groups.insert(r.group.clone(), r.clone()));
        self.call(Call::PutGroup(r.clone()));
        Ok(())
    }

    async fn put_history(&self, run: &str, history: &[u8]) -> BackendResult<()> {
        let h =
            crate::core::history::decode(history).expect("the scaler writes histories that decode");
        self.with(|s| {
            s.groups
                .get_mut(&Group::Run(run.into()))
                .map(|r| r.history = h)
                .ok_or_else(|| Error::NotFound {
                    kind: "run record",
                    id: run.into(),
                })
        })
    }

    async fn delete_group(&self, g: &Group) -> BackendResult<()> {
        self.with(|s| s.groups.remove(g));
        self.call(Call::DeleteGroup(g.clone()));
        Ok(())
    }

    async fn list_groups(&self) -> BackendResult<Vec<GroupRecord>> {
        Ok(self.with(|s| s.groups.values().cloned().collect()))
    }

    async fn create_worker(&self, w: &WorkerPlan) -> BackendResult<()> {
        self.call(Call::Create(w.clone()));
        if self.with(|s| s.refuse_create) {
            return Err(Error::Invalid(crate::core::spec::bad(
                "worker.image",
                "refused by the fake",
            )));
        }
        self.report(WorkerEvent::Applied(obs(w, Phase::Running)));
        Ok(())
    }

    async fn delete_worker(&self, name: &str, grace: Duration) -> BackendResult<()> {
        self.call(Call::Delete(name.into(), grace));
        if let Some(mut o) = self.with(|s| s.workers.remove(name)) {
            o.phase = Phase::Terminating;
            self.report(WorkerEvent::Deleted(o));
        }
        Ok(())
    }

    async fn list_workers(&self) -> BackendResult<Vec<WorkerObs>> {
        Ok(self.with(|s| s.workers.values().cloned().collect()))
    }

    async fn room(
        &self,
        _plan: &WorkerPlan,
        _count: u32,
        _now: bool,
    ) -> BackendResult<Option<Shortfall>> {
        Ok(self.with(|s| s.shortfall.clone()))
    }
}
