//! Per-run log buffers with sequence numbers.
//!
//! Every worker's lines go into the buffer of its group (pipeline run or scale-up
//! task) and get the next sequence number. The buffer keeps the newest `capacity`
//! lines; ingestion never waits for a reader. A reader holds a cursor (the next seq
//! it wants): a late or re-attaching client starts from any seq still kept and gets
//! the backlog, and a client that fell behind the buffer gets one "dropped N lines"
//! gap instead of slowing ingestion. Buffers outlive their workers and are removed
//! by the executor after the configured retention.

pub mod hub;

pub use hub::LogHub;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A marker from the scaler (attempt start, log source errors).
    System,
}

impl Stream {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::System => "system",
        }
    }
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Sequence number in its buffer, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch, when the scaler received it (or the
    /// container runtime's timestamp when it has one).
    pub ts_ms: i64,
    /// Worker (pod) name.
    pub worker: String,
    /// Stage, empty for scale-up workers.
    pub stage: String,
    /// Attempt, from 1.
    pub attempt: u32,
    /// Source.
    pub stream: Stream,
    /// The text, without the newline.
    pub text: String,
}

/// What a reader gets for its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Lines missed because they left the buffer before the reader got to them.
    pub dropped: u64,
    /// Lines from the cursor (or from the oldest kept line after a gap).
    pub lines: Vec<Line>,
    /// The cursor to use next.
    pub next: u64,
}

#[derive(Debug)]
struct Inner {
    lines: VecDeque<Line>,
    /// Seq of the next line to be pushed.
    next_seq: u64,
    closed: bool,
}

/// The log buffer of one run or task.
#[derive(Debug)]
pub struct LogBuffer {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Latest pushed seq, and closure; readers wait on it.
    changed: watch::Sender<(u64, bool)>,
    /// Sources still copying a worker's output in (container log followers).
    writers: watch::Sender<usize>,
}

/// A source copying lines into a buffer; the buffer counts it until it drops.
#[derive(Debug)]
pub struct Writer(Arc<LogBuffer>);

impl Drop for Writer {
    fn drop(&mut self) {
        self.0.writers.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl LogBuffer {
    /// An empty buffer keeping the newest `capacity` lines.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                lines: VecDeque::new(),
                next_seq: 1,
                closed: false,
            }),
            capacity: capacity.max(1),
            changed: watch::channel((0, false)).0,
            writers: watch::channel(0).0,
        })
    }

    /// Registers a source that will copy lines in (a container log follower);
    /// [`writers_done`](Self::writers_done) waits for it to drop.
    pub fn writer(self: &Arc<Self>) -> Writer {
        self.writers.send_modify(|n| *n += 1);
        Writer(self.clone())
    }

    /// Waits until every [`Writer`] dropped, at most `limit`; whether they did.
    /// A run waits here before it deletes finished workers (their log goes with
    /// them) and closes its buffer (readers end at the close).
    pub async fn writers_done(&self, limit: std::time::Duration) -> bool {
        let mut rx = self.writers.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a line (its `seq` is assigned here); drops the oldest when full.
    pub fn push(&self, mut line: Line) -> u64 {
        let mut g = self.lock();
        line.seq = g.next_seq;
        g.next_seq += 1;
        g.lines.push_back(line);
        if g.lines.len() > self.capacity {
            g.lines.pop_front();
        }
        let seq = g.next_seq - 1;
        let closed = g.closed;
        drop(g);
        self.changed.send_replace((seq, closed));
        seq
    }

    /// No more lines will come; followers end after the backlog.
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        let seq = g.next_seq - 1;
        drop(g);
        self.changed.send_replace((seq, true));
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Up to `max` lines from `cursor` that pass `keep`.
    pub fn read(&self, cursor: u64, max: usize, keep: impl Fn(&Line) -> bool) -> Read {
        let g = self.lock();
        let oldest = g.lines.front().map_or(g.next_seq, |l| l.seq);
        let cursor = cursor.max(1);
        let (dropped, from) = if cursor < oldest {
            (oldest - cursor, oldest)
        } else {
            (0, cursor)
        };
        let skip = usize::try_from(from - oldest).unwrap_or(usize::MAX);
        let mut next = g.next_seq.max(from);
        let mut lines = Vec::new();
        for l in g.lines.iter().skip(skip) {
            if keep(l) {
                lines.push(l.clone());
                if lines.len() >= max {
                    next = l.seq + 1;
                    break;
                }
            }
        }
        Read {
            dropped,
            lines,
            next,
        }
    }

    /// A receiver that changes whenever a line is pushed or the buffer closes.
    pub fn subscribe(&self) -> watch::Receiver<(u64, bool)> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, worker: &str) -> Line {
        Line {
            seq: 0,
            ts_ms: 0,
            worker: worker.into(),
            stage: String::new(),
            attempt: 1,
            stream: Stream::Stdout,
            text: text.into(),
        }
    }

    fn texts(r: &Read) -> Vec<&str> {
        r.lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn backlog_resume_and_gaps() {
        let b = LogBuffer::new(3);
        for t in ["a", "b"] {
            b.push(line(t, "w1"));
        }
        let r = b.read(0, 100, |_| true);
        assert_eq!((r.dropped, texts(&r), r.next), (0, vec!["a", "b"], 3));
        let r = b.read(2, 100, |_| true);
        assert_eq!((r.dropped, texts(&r), r.next), (0, vec!["b"], 3));
        for t in ["c", "d", "e"] {
            b.push(line(t, "w2"));
        }
        // seq 1 and 2 left the buffer (capacity 3): a reader at 1 missed two lines.
        let r = b.read(1, 100, |_| true);
        assert_eq!((r.dropped, texts(&r), r.next), (2, vec!["c", "d", "e"], 6));
        // Nothing new: same cursor back.
        let r = b.read(6, 100, |_| true);
        assert_eq!((r.dropped, r.lines.len(), r.next), (0, 0, 6));
        // A page limit leaves the cursor after the last line returned.
        let r = b.read(3, 1, |_| true);
        assert_eq!((texts(&r), r.next), (vec!["c"], 4));
    }

    #[tokio::test]
    async fn writers_done_waits_for_every_writer_and_gives_up_at_the_limit() {
        let b = LogBuffer::new(10);
        let short = std::time::Duration::from_millis(20);
        assert!(b.writers_done(short).await, "no writers: done at once");
        let (w1, w2) = (b.writer(), b.writer());
        assert!(!b.writers_done(short).await, "two writers left");
        drop(w1);
        assert!(!b.writers_done(short).await, "one writer left");
        let late = tokio::spawn(async move {
            tokio::task::yield_now().await;
            drop(w2);
        });
        assert!(b.writers_done(std::time::Duration::from_secs(10)).await);
        late.await.unwrap();
    }

    #[test]
    fn filter_advances_cursor_past_other_workers() {
        let b = LogBuffer::new(10);
        for (t, w) in [("a", "w1"), ("b", "w2"), ("c", "w2")] {
            b.push(line(t, w));
        }
        let r = b.read(1, 100, |l| l.worker == "w1");
        assert_eq!((texts(&r), r.next), (vec!["a"], 4));
    }
}
