//! A run's progress history: every state change with a sequence number and a
//! timestamp. Kept whole for the run's retention (a run has a few messages per stage
//! attempt), so any client can replay it from any seq and then follow it live.
//!
//! A durable history shows clients only what has been written to the run's record
//! ([`show`](Progress::show), called by the scaler's history writer once a write
//! succeeded): a new process after a crash starts from the written history, so the
//! sequence numbers a client saw still name the same messages and a client that
//! re-attaches sees each message exactly once.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use tokio::sync::watch;

use crate::core::clock::now_ms;
use crate::proto::PipelineProgress;

/// The history of one run.
#[derive(Debug)]
pub struct Progress {
    run_id: String,
    events: Mutex<Vec<PipelineProgress>>,
    /// How many messages exist (the history writer follows it).
    appended: watch::Sender<u64>,
    /// How many messages clients see: all of them, or, when durable, those written.
    shown: watch::Sender<u64>,
    durable: bool,
}

impl Progress {
    /// An empty history that is not written anywhere.
    pub fn new(run_id: &str) -> Arc<Self> {
        Self::restored(run_id, Vec::new(), false)
    }

    /// A history that starts from `history` (read from the run's record); `durable`:
    /// new messages are shown once [`show`](Self::show) says they are written.
    pub fn restored(run_id: &str, history: Vec<PipelineProgress>, durable: bool) -> Arc<Self> {
        let n = history.len() as u64;
        Arc::new(Self {
            run_id: run_id.to_string(),
            events: Mutex::new(history),
            appended: watch::channel(n).0,
            shown: watch::channel(n).0,
            durable,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PipelineProgress>> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends `p`, filling in seq, run id and timestamp; returns the seq.
    pub fn emit(&self, mut p: PipelineProgress) -> u64 {
        let seq = {
            let mut ev = self.lock();
            if ev.last().is_some_and(|l| l.r#final) {
                return ev.len() as u64;
            }
            p.seq = ev.len() as u64 + 1;
            p.run_id.clone_from(&self.run_id);
            p.timestamp_unix_ms = now_ms();
            ev.push(p);
            ev.len() as u64
        };
        self.appended.send_replace(seq);
        if !self.durable {
            self.shown.send_replace(seq);
        }
        seq
    }

    /// When the run started: its first message's time (ms since the epoch).
    pub fn started_ms(&self) -> Option<i64> {
        self.lock().first().map(|p| p.timestamp_unix_ms)
    }

    /// Follows how many messages exist, for the history writer.
    pub fn appended(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// The whole history when some of it is not shown yet (not written).
    pub fn unwritten(&self) -> Option<Vec<PipelineProgress>> {
        let ev = self.lock();
        (ev.len() as u64 > *self.shown.borrow()).then(|| ev.clone())
    }

    /// The first `n` messages are written: clients may see them.
    pub fn show(&self, n: u64) {
        self.shown.send_if_modified(|s| {
            let grew = n > *s;
            *s = (*s).max(n);
            grew
        });
    }

    /// Waits until message `seq` is shown (written, when durable).
    pub async fn written(&self, seq: u64) {
        let mut rx = self.shown.subscribe();
        // The sender lives as long as `self`: wait_for ends only by its condition.
        let _ = rx.wait_for(|n| *n >= seq).await;
    }

    /// Shown messages with seq >= `from` (1-based; 0 means 1).
    pub fn since(&self, from: u64) -> Vec<PipelineProgress> {
        let shown = usize::try_from(*self.shown.borrow()).unwrap_or(usize::MAX);
        let from = usize::try_from(from.max(1) - 1).unwrap_or(usize::MAX);
        let ev = self.lock();
        ev.get(from..shown.min(ev.len()))
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    /// The final message, once the run has ended and that is shown.
    pub fn final_message(&self) -> Option<PipelineProgress> {
        let shown = usize::try_from(*self.shown.borrow()).unwrap_or(usize::MAX);
        let ev = self.lock();
        ev.get(..shown.min(ev.len()))
            .and_then(<[_]>::last)
            .filter(|l| l.r#final)
            .cloned()
    }

    /// Replays from `from` and follows until the final message; from past the end of
    /// an ended run, the final message alone.
    pub fn follow(
        self: &Arc<Self>,
        from: u64,
    ) -> Pin<Box<dyn Stream<Item = PipelineProgress> + Send>> {
        let rx = self.shown.subscribe();
        let state = (self.clone(), rx, from.max(1), VecDeque::new(), false);
        Box::pin(futures::stream::unfold(
            state,
            |(p, mut rx, mut cursor, mut pending, mut done)| async move {
                loop {
                    if let Some(item) = pending.pop_front() {
                        return Some((item, (p, rx, cursor, pending, done)));
                    }
                    if done {
                        return None;
                    }
                    rx.borrow_and_update();
                    let new = p.since(cursor);
                    if new.is_empty() {
                        // Asked from past the end of a run that has ended (after a
                        // restart the history is rebuilt from the run's record, shorter
                        // than what the client saw): the final message, so that no
                        // client waits on a run that is over.
                        if let Some(f) = p.final_message() {
                            return Some((f, (p, rx, cursor, pending, true)));
                        }
                        if rx.changed().await.is_err() {
                            return None;
                        }
                        continue;
                    }
                    cursor += new.len() as u64;
                    done = new.last().is_some_and(|l| l.r#final);
                    pending.extend(new);
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn replay_then_follow_until_final() {
        let p = Progress::new("r1");
        p.emit(PipelineProgress {
            stage: "a".into(),
            ..Default::default()
        });
        p.emit(PipelineProgress {
            stage: "b".into(),
            ..Default::default()
        });
        let late = p.follow(2);
        let p2 = p.clone();
        tokio::spawn(async move {
            p2.emit(PipelineProgress {
                stage: "c".into(),
                ..Default::default()
            });
            p2.emit(PipelineProgress {
                r#final: true,
                ..Default::default()
            });
            // Nothing after the final message is recorded.
            p2.emit(PipelineProgress {
                stage: "late".into(),
                ..Default::default()
            });
        });
        let got: Vec<(u64, String)> = late.map(|m| (m.seq, m.stage)).collect().await;
        assert_eq!(
            got,
            vec![(2, "b".into()), (3, "c".into()), (4, String::new())]
        );
        assert_eq!(p.since(0).len(), 4);
    }

    #[tokio::test]
    async fn a_watch_from_past_the_end_of_an_ended_run_gets_the_end() {
        // As after a restart: the rebuilt history is the final message alone, and a
        // client re-attaches from the seq it had reached before.
        let p = Progress::new("r1");
        p.emit(PipelineProgress {
            message: "interrupted".into(),
            r#final: true,
            ..Default::default()
        });
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            p.follow(7).collect::<Vec<_>>(),
        )
        .await
        .unwrap_or_else(|_| panic!("the watch waited on an ended run"));
        assert_eq!(got.len(), 1);
        assert!(got[0].r#final && got[0].message == "interrupted", "{got:?}");
        // A run still going: from past its end, nothing yet.
        let live = Progress::new("r2");
        live.emit(PipelineProgress::default());
        let mut s = live.follow(5);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), s.next()).await;
        assert!(waited.is_err(), "a live run has nothing past its end");
    }

    #[tokio::test]
    async fn a_durable_history_shows_only_what_is_written() {
        let start = vec![PipelineProgress {
            seq: 1,
            run_id: "r".into(),
            message: "run started".into(),
            ..Default::default()
        }];
        let p = Progress::restored("r", start, true);
        assert!(p.unwritten().is_none());
        assert_eq!(p.emit(PipelineProgress::default()), 2);
        assert_eq!(p.emit(PipelineProgress::default()), 3);
        assert_eq!(p.since(0).len(), 1, "not written yet");
        let mut s = p.follow(2);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), s.next()).await;
        assert!(
            waited.is_err(),
            "a watcher must not see an unwritten message"
        );
        assert_eq!(p.unwritten().map(|h| h.len()), Some(3));
        p.show(3);
        assert!(p.unwritten().is_none());
        assert_eq!(s.next().await.map(|m| m.seq), Some(2));
        assert_eq!(s.next().await.map(|m| m.seq), Some(3));
        p.emit(PipelineProgress {
            r#final: true,
            ..Default::default()
        });
        assert!(p.final_message().is_none(), "the end is shown once written");
        p.show(4);
        assert_eq!(p.final_message().map(|m| m.seq), Some(4));
        assert_eq!(s.next().await.map(|m| m.seq), Some(4));
        assert!(s.next().await.is_none());
        // Showing less than is shown changes nothing.
        p.show(1);
        assert_eq!(p.since(0).len(), 4);
    }
}
