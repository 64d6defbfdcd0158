//! All log buffers, by group, and which group each worker writes to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;

use crate::core::worker::{Group, WorkerLabels};
use crate::logs::{Line, LogBuffer, Stream};

/// Shared handle to every log buffer.
#[derive(Debug, Clone)]
pub struct LogHub {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
    /// Lines pushed (`steward_ottoscaler_log_lines_received`).
    received: Counter,
}

#[derive(Debug, Default)]
struct Inner {
    groups: HashMap<Group, Arc<LogBuffer>>,
    workers: HashMap<String, Group>,
}

impl LogHub {
    /// A hub whose buffers keep `capacity` lines each.
    pub fn new(capacity: usize) -> Self {
        Self::counted(capacity, Counter::default())
    }

    /// A hub whose buffers keep `capacity` lines each, counting lines in `received`.
    pub fn counted(capacity: usize, received: Counter) -> Self {
        Self {
            inner: Arc::default(),
            capacity,
            received,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The group's buffer, created on first use.
    pub fn buffer(&self, g: &Group) -> Arc<LogBuffer> {
        let mut i = self.lock();
        i.groups
            .entry(g.clone())
            .or_insert_with(|| LogBuffer::new(self.capacity))
            .clone()
    }

    /// The group's buffer if it exists.
    pub fn get(&self, g: &Group) -> Option<Arc<LogBuffer>> {
        self.lock().groups.get(g).cloned()
    }

    /// The buffer a worker writes to.
    pub fn for_worker(&self, worker: &str) -> Option<Arc<LogBuffer>> {
        let i = self.lock();
        i.workers.get(worker).and_then(|g| i.groups.get(g)).cloned()
    }

    /// The group a worker wrote to, while its buffer is kept.
    pub fn group_of(&self, worker: &str) -> Option<Group> {
        self.lock().workers.get(worker).cloned()
    }

    /// Appends one line of `worker`.
    pub fn push(
        &self,
        worker: &str,
        labels: &WorkerLabels,
        stream: Stream,
        ts_ms: i64,
        text: String,
    ) {
        let buf = self.buffer(&labels.group);
        self.received.inc();
        self.lock()
            .workers
            .entry(worker.to_string())
            .or_insert_with(|| labels.group.clone());
        buf.push(Line {
            seq: 0,
            ts_ms,
            worker: worker.to_string(),
            stage: labels.stage.clone(),
            attempt: labels.attempt,
            stream,
            text,
        });
    }

    /// Removes a group's buffer and its workers' entries (after retention).
    pub fn remove(&self, g: &Group) {
        let mut i = self.lock();
        if let Some(b) = i.groups.remove(g) {
            b.close();
        }
        i.workers.retain(|_, wg| wg != g);
    }
}
