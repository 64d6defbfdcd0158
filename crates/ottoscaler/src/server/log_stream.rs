//! `LogStreamingService`: a run's or a worker's log lines from its buffer, backlog
//! first, then live; a client that fell behind gets one "dropped N lines" entry.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use prometheus_client::metrics::counter::Counter;
use tonic::{Request, Response, Status};

use super::{BoxStream, Services, caller, status};
use crate::core::worker::Group;
use crate::error::Error;
use crate::logs::{Line, LogBuffer};
use crate::proto::{self, log_streaming_service_server::LogStreamingService};

/// Lines of `buf` from `from`, then live until the buffer closes (unless `snapshot`).
/// A client that fell behind gets one line with `dropped` set where the gap is.
fn follow_lines(
    buf: Arc<LogBuffer>,
    from: u64,
    snapshot: bool,
    dropped_total: Counter,
    keep: impl Fn(&Line) -> bool + Send + Sync + 'static,
) -> impl Stream<Item = (u64, Option<Line>)> + Send {
    const PAGE: usize = 256;
    let rx = buf.subscribe();
    futures::stream::unfold(
        (
            buf,
            rx,
            from.max(1),
            std::collections::VecDeque::new(),
            keep,
        ),
        move |(buf, mut rx, mut cursor, mut pending, keep)| {
            let dropped_total = dropped_total.clone();
            async move {
                loop {
                    if let Some(item) = pending.pop_front() {
                        return Some((item, (buf, rx, cursor, pending, keep)));
                    }
                    rx.borrow_and_update();
                    // Closed before the read: every line pushed before the close is in it.
                    let closed = buf.is_closed();
                    let r = buf.read(cursor, PAGE, &keep);
                    cursor = r.next;
                    if r.dropped > 0 {
                        dropped_total.inc_by(r.dropped);
                        pending.push_back((r.dropped, None));
                    }
                    pending.extend(r.lines.into_iter().map(|l| (0, Some(l))));
                    if !pending.is_empty() {
                        continue;
                    }
                    if snapshot || closed {
                        return None;
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            }
        },
    )
}

fn dropped_text(n: u64) -> String {
    format!("dropped {n} lines: this client fell behind the log buffer")
}

#[tonic::async_trait]
impl LogStreamingService for Services {
    type StreamWorkerLogsStream = BoxStream<proto::LogEntry>;

    async fn stream_worker_logs(
        &self,
        req: Request<proto::WorkerIdentifier>,
    ) -> Result<Response<Self::StreamWorkerLogsStream>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        self.scaler
            .worker_owner(&who, &req.worker_id)
            .map_err(|e| status(&e))?;
        if let Some(g) = self.scaler.logs().group_of(&req.worker_id) {
            self.scaler.group_owner(&who, &g).map_err(|e| status(&e))?;
        }
        let buf = self
            .scaler
            .logs()
            .for_worker(&req.worker_id)
            .ok_or_else(|| {
                status(&Error::NotFound {
                    kind: "worker",
                    id: req.worker_id.clone(),
                })
            })?;
        let worker = req.worker_id.clone();
        let dropped = self.scaler.metrics().log_lines_dropped.clone();
        let stream = follow_lines(buf, req.from_seq, req.snapshot, dropped, move |l| {
            l.worker == worker
        })
        .map(move |(dropped, l)| {
            Ok(match l {
                Some(l) => proto::LogEntry {
                    seq: l.seq,
                    worker_id: l.worker,
                    timestamp_unix_ms: l.ts_ms,
                    stream: l.stream.as_str().into(),
                    message: l.text,
                    attempt: i32::try_from(l.attempt).unwrap_or(0),
                    dropped: 0,
                },
                None => proto::LogEntry {
                    worker_id: req.worker_id.clone(),
                    stream: "system".into(),
                    message: dropped_text(dropped),
                    dropped,
                    ..Default::default()
                },
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type StreamBuildLogsStream = BoxStream<proto::BuildLogEntry>;

    async fn stream_build_logs(
        &self,
        req: Request<proto::BuildIdentifier>,
    ) -> Result<Response<Self::StreamBuildLogsStream>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        self.scaler
            .run_owner(&who, &req.run_id)
            .map_err(|e| status(&e))?;
        let buf = self
            .scaler
            .logs()
            .get(&Group::Run(req.run_id.clone()))
            .ok_or_else(|| {
                status(&Error::NotFound {
                    kind: "run",
                    id: req.run_id.clone(),
                })
            })?;
        let stage = req.stage.clone();
        let run_id = req.run_id.clone();
        let dropped = self.scaler.metrics().log_lines_dropped.clone();
        let stream = follow_lines(buf, req.from_seq, req.snapshot, dropped, move |l| {
            stage.is_empty() || l.stage == stage
        })
        .map(move |(dropped, l)| {
            Ok(match l {
                Some(l) => proto::BuildLogEntry {
                    seq: l.seq,
                    run_id: run_id.clone(),
                    stage: l.stage,
                    attempt: i32::try_from(l.attempt).unwrap_or(0),
                    worker_id: l.worker,
                    timestamp_unix_ms: l.ts_ms,
                    stream: l.stream.as_str().into(),
                    message: l.text,
                    dropped: 0,
                },
                None => proto::BuildLogEntry {
                    run_id: run_id.clone(),
                    stream: "system".into(),
                    message: dropped_text(dropped),
                    dropped,
                    ..Default::default()
                },
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
