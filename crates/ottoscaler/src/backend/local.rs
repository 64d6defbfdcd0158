//! The `local` backend: each worker is a local process (for developing pipelines on
//! a laptop, and the end-to-end proof of the log path). Everything above the worker
//! layer — DAG, retries, timeouts, queue, progress, log buffers — is shared with the
//! Kubernetes backend.
//!
//! A worker runs its `command` (the image is ignored) in its own process group, with
//! its `env`; stdout and stderr lines go to the log hub as they are written. Records
//! are kept in memory: local workers die with the scaler (`kill_on_drop`), so there
//! is nothing to recover after a restart. Deletion kills the whole process group at
//! once (no grace period), with `kill(2)` on the group through rustix (safe
//! bindings: the workspace denies `unsafe`).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, BackendResult, EventSink, WorkerEvent};
use crate::core::clock::now_ms;
use crate::core::retry::FailureClass;
use crate::core::worker::{Group, GroupRecord, Phase, WorkerObs, WorkerPlan};
use crate::error::Error;
use crate::logs::{LogHub, Stream};

#[derive(Debug)]
struct Proc {
    obs: WorkerObs,
    kill: CancellationToken,
}

#[derive(Debug, Default)]
struct Inner {
    sink: Option<EventSink>,
    logs: Option<LogHub>,
    groups: HashMap<Group, GroupRecord>,
    procs: HashMap<String, Proc>,
}

/// Workers as local processes.
#[derive(Debug, Clone, Default)]
pub struct LocalBackend {
    inner: Arc<Mutex<Inner>>,
}

impl LocalBackend {
    /// A backend with no workers.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn send(&self, ev: WorkerEvent) {
        if let Some(s) = &self.lock().sink {
            let _ = s.send(ev);
        }
    }
}

/// Kills the process group whose leader is `pid` (the group id is the leader's
/// pid). A group already gone is fine: its processes have ended.
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
        tracing::debug!(pid = pid.as_raw_nonzero().get(), error = %e, "killing the worker's process group");
    }
}

async fn pump_lines(r: impl AsyncRead + Unpin, logs: LogHub, obs: WorkerObs, stream: Stream) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        logs.push(&obs.name, &obs.labels, stream, now_ms(), line);
    }
}

#[async_trait::async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn start(&self, sink: EventSink, logs: LogHub, _shutdown: CancellationToken) {
        let _ = sink.send(WorkerEvent::Healthy(true));
        let mut i = self.lock();
        i.sink = Some(sink);
        i.logs = Some(logs);
    }

    async fn put_group(&self, r: &GroupRecord) -> BackendResult<()> {
        self.lock().groups.insert(r.group.clone(), r.clone());
        Ok(())
    }

    async fn delete_group(&self, g: &Group) -> BackendResult<()> {
        self.lock().groups.remove(g);
        let names: Vec<String> = self
            .lock()
            .procs
            .values()
            .filter(|p| p.obs.labels.group == *g)
            .map(|p| p.obs.name.clone())
            .collect();
        for n in names {
            self.delete_worker(&n, Duration::ZERO).await?;
        }
        Ok(())
    }

    async fn list_groups(&self) -> BackendResult<Vec<GroupRecord>> {
        Ok(self.lock().groups.values().cloned().collect())
    }

    async fn create_worker(&self, w: &WorkerPlan) -> BackendResult<()> {
        let Some((prog, args)) = w.command.split_first() else {
            return Err(Error::Io {
                what: format!("starting worker {}", w.name),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the local backend runs a command; this worker has only an image",
                ),
            });
        };
        let mut child = Command::new(prog)
            .args(args)
            .envs(&w.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Io {
                what: format!("starting worker {} ({prog})", w.name),
                source,
            })?;
        let pid = child.id();
        let logs = self.lock().logs.clone().unwrap_or_else(|| LogHub::new(1));
        let obs = WorkerObs {
            name: w.name.clone(),
            labels: w.labels.clone(),
            phase: Phase::Running,
            failure: None,
            unschedulable: None,
            exit_code: None,
            busy: false,
            node: "localhost".into(),
            created_ms: now_ms(),
            cost: crate::core::teams::Cost::of(&w.requests),
        };
        let kill = CancellationToken::new();
        self.lock().procs.insert(
            w.name.clone(),
            Proc {
                obs: obs.clone(),
                kill: kill.clone(),
            },
        );
        self.send(WorkerEvent::Applied(obs.clone()));
        let out = child
            .stdout
            .take()
            .map(|r| tokio::spawn(pump_lines(r, logs.clone(), obs.clone(), Stream::Stdout)));
        let err = child
            .stderr
            .take()
            .map(|r| tokio::spawn(pump_lines(r, logs.clone(), obs.clone(), Stream::Stderr)));
        let me = self.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s.ok(),
                () = kill.cancelled() => None,
            };
            let Some(status) = status else {
                kill_group(pid);
                let _ = child.kill().await;
                for t in [out, err].into_iter().flatten() {
                    t.abort();
                }
                let obs = me.lock().procs.remove(&obs.name).map(|p| p.obs);
                if let Some(mut obs) = obs {
                    obs.phase = Phase::Terminating;
                    me.send(WorkerEvent::Deleted(obs));
                }
                return;
            };
            // Lines written just before the exit are still in the pipes; take them
            // before reporting the exit, so a finished stage's log is complete.
            for t in [out, err].into_iter().flatten() {
                let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
            }
            let code = status.code().unwrap_or(-1);
            let mut obs = obs;
            obs.exit_code = Some(code);
            if code == 0 {
                obs.phase = Phase::Succeeded;
            } else {
                obs.phase = Phase::Failed;
                obs.failure = Some(FailureClass::ExitCode(code));
            }
            if let Some(p) = me.lock().procs.get_mut(&obs.name) {
                p.obs = obs.clone();
            }
            me.send(WorkerEvent::Applied(obs));
        });
        Ok(())
    }

    async fn delete_worker(&self, name: &str, _grace: Duration) -> BackendResult<()> {
        let mut i = self.lock();
        let ended = match i.procs.get(name) {
            None => return Ok(()),
            Some(p) => matches!(p.obs.phase, Phase::Succeeded | Phase::Failed),
        };
        if ended {
            if let Some(mut p) = i.procs.remove(name) {
                p.obs.phase = Phase::Terminating;
                if let Some(s) = &i.sink {
                    let _ = s.send(WorkerEvent::Deleted(p.obs));
                }
            }
        } else if let Some(p) = i.procs.get(name) {
            p.kill.cancel();
        }
        Ok(())
    }

    async fn list_workers(&self) -> BackendResult<Vec<WorkerObs>> {
        Ok(self.lock().procs.values().map(|p| p.obs.clone()).collect())
    }
}
