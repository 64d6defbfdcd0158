//! The pod watch of the Kubernetes backend: every worker pod's change becomes a
//! [`WorkerEvent`] for the scaler (a relist a [`WorkerEvent::Resync`]), and a pod
//! that runs gets its container log followed into the run's log buffer.

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use kube::api::LogParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::KubeBackend;
use super::pods::{observe, split_timestamp};
use crate::backend::{EventSink, WorkerEvent};
use crate::core::clock::now_ms;
use crate::core::worker::{LABEL_WORKER, Phase, WorkerObs};
use crate::logs::{LogHub, Stream};

impl KubeBackend {
    /// Watches worker pods until `shutdown`, reporting to `sink`. A failing watch
    /// is retried with back-off and reported unhealthy meanwhile.
    pub(super) async fn watch(self, sink: EventSink, logs: LogHub, shutdown: CancellationToken) {
        let cfg = watcher::Config::default().labels(&format!("{LABEL_WORKER}=worker"));
        let mut stream = std::pin::pin!(watcher::watcher(self.pods.clone(), cfg).default_backoff());
        let mut init: Vec<WorkerObs> = Vec::new();
        loop {
            let ev = tokio::select! {
                ev = stream.next() => ev,
                () = shutdown.cancelled() => return,
            };
            let Some(ev) = ev else { return };
            // The scaler's pump outlives the watch; a send fails only at shutdown.
            match ev {
                Ok(Event::Init) => init.clear(),
                Ok(Event::InitApply(p)) => init.extend(observe(&p)),
                Ok(Event::InitDone) => {
                    for o in &init {
                        self.follow_logs(o, &logs);
                    }
                    let _ = sink.send(WorkerEvent::Resync(std::mem::take(&mut init)));
                    let _ = sink.send(WorkerEvent::Healthy(true));
                }
                Ok(Event::Apply(p)) => {
                    if let Some(o) = observe(&p) {
                        self.follow_logs(&o, &logs);
                        let _ = sink.send(WorkerEvent::Applied(o));
                    }
                }
                Ok(Event::Delete(p)) => {
                    if let Some(o) = observe(&p) {
                        self.followed
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .remove(&o.name);
                        let _ = sink.send(WorkerEvent::Deleted(o));
                    }
                }
                Err(e) => {
                    warn!(error = %e, "worker pod watch failed; retrying with back-off");
                    let _ = sink.send(WorkerEvent::Healthy(false));
                }
            }
        }
    }

    /// Follows a started worker's container log (once per worker) into its buffer.
    fn follow_logs(&self, obs: &WorkerObs, logs: &LogHub) {
        if !matches!(obs.phase, Phase::Running | Phase::Succeeded | Phase::Failed)
            || !self
                .followed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(obs.name.clone())
        {
            return;
        }
        // Counted before the scaler hears of the pod, so a run that ends on this
        // observation waits for the log before it deletes the worker.
        let writer = logs.buffer(&obs.labels.group).writer();
        let (pods, logs, obs) = (self.pods.clone(), logs.clone(), obs.clone());
        tokio::spawn(async move {
            let _writer = writer;
            let lp = LogParams {
                follow: true,
                timestamps: true,
                ..LogParams::default()
            };
            let result = async {
                let mut lines = pods.log_stream(&obs.name, &lp).await?.lines();
                while let Some(line) = lines.try_next().await.map_err(kube::Error::ReadEvents)? {
                    let (ts, text) = split_timestamp(&line);
                    logs.push(&obs.name, &obs.labels, Stream::Stdout, ts, text.to_string());
                }
                Ok::<_, kube::Error>(())
            }
            .await;
            if let Err(e) = result {
                debug!(worker = %obs.name, error = %e, "container log not available");
                logs.push(
                    &obs.name,
                    &obs.labels,
                    Stream::System,
                    now_ms(),
                    format!("container log not available from the API: {e}"),
                );
            }
        });
    }
}
