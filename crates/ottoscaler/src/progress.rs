//! A run's progress history: every state change with a sequence number and a
//! timestamp. Kept whole for the run's retention (a run has a few messages per stage
//! attempt), so any client can replay it from any seq and then follow it live.

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
    changed: watch::Sender<u64>,
}

impl Progress {
    /// An empty history.
    pub fn new(run_id: &str) -> Arc<Self> {
        Arc::new(Self {
            run_id: run_id.to_string(),
            events: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
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
        self.changed.send_replace(seq);
        seq
    }

    /// Messages with seq >= `from` (1-based; 0 means 1).
    pub fn since(&self, from: u64) -> Vec<PipelineProgress> {
        let from = usize::try_from(from.max(1) - 1).unwrap_or(usize::MAX);
        self.lock()
            .get(from..)
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    /// The final message, once the run has ended.
    pub fn final_message(&self) -> Option<PipelineProgress> {
        self.lock().last().filter(|l| l.r#final).cloned()
    }

    /// Replays from `from` and follows until the final message; from past the end of
    /// an ended run, the final message alone.
    pub fn follow(
        self: &Arc<Self>,
        from: u64,
    ) -> Pin<Box<dyn Stream<Item = PipelineProgress> + Send>> {
        let rx = self.changed.subscribe();
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
}
