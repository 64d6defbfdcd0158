//! The concurrency cap on workers, with a fair (first come, first served) queue.
//!
//! A pipeline stage that finds the cap reached waits in line and its progress
//! stream says "queued, position N"; the head of the line is served first, so a
//! stream of small requests cannot starve a waiting one. A permit is held for as
//! long as its worker lives and is returned on drop. A waiter that goes away (its
//! run was cancelled) leaves the line on drop too.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

#[derive(Debug)]
struct State {
    cap: u32,
    used: u32,
    queue: VecDeque<u64>,
    next_ticket: u64,
}

/// The cap and its queue.
#[derive(Debug, Clone)]
pub struct Slots {
    state: Arc<Mutex<State>>,
    /// Bumped on every change; waiters re-check their position.
    changed: Arc<watch::Sender<u64>>,
    /// The queue's length, kept current (`steward_ottoscaler_queued_stages`).
    queued: Gauge,
}

/// One worker's share of the cap.
#[derive(Debug)]
pub struct Permit {
    slots: Slots,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.slots.update(|s| s.used = s.used.saturating_sub(1));
    }
}

struct Ticket<'a> {
    slots: &'a Slots,
    id: u64,
    granted: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.granted {
            let id = self.id;
            self.slots.update(|s| s.queue.retain(|&t| t != id));
        }
    }
}

impl Slots {
    /// A cap of `cap` workers.
    pub fn new(cap: u32) -> Self {
        Self::with_gauge(cap, Gauge::default())
    }

    /// A cap of `cap` workers whose queue length is kept in `queued`.
    pub fn with_gauge(cap: u32, queued: Gauge) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                cap,
                used: 0,
                queue: VecDeque::new(),
                next_ticket: 0,
            })),
            changed: Arc::new(watch::channel(0).0),
            queued,
        }
    }

    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = {
            let mut s = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let r = f(&mut s);
            self.queued
                .set(i64::try_from(s.queue.len()).unwrap_or(i64::MAX));
            r
        };
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        r
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// (cap, in use, queued).
    pub fn usage(&self) -> (u32, u32, u32) {
        self.read(|s| {
            (
                s.cap,
                s.used,
                u32::try_from(s.queue.len()).unwrap_or(u32::MAX),
            )
        })
    }

    /// `n` permits at once if they fit and nobody is waiting; else how many are in use.
    pub fn try_acquire(&self, n: u32) -> Result<Vec<Permit>, u32> {
        let ok = self.update(|s| {
            if s.queue.is_empty() && s.used + n <= s.cap {
                s.used += n;
                Ok(())
            } else {
                Err(s.used)
            }
        });
        ok.map(|()| {
            (0..n)
                .map(|_| Permit {
                    slots: self.clone(),
                })
                .collect()
        })
    }

    /// A permit even over the cap: for workers found running after a restart, which
    /// exist whether or not they fit.
    pub fn adopt(&self) -> Permit {
        self.update(|s| s.used += 1);
        Permit {
            slots: self.clone(),
        }
    }

    /// Waits in line for a permit; `on_position` is called with the 1-based position
    /// whenever it changes while waiting (not when served at once).
    pub async fn acquire(&self, mut on_position: impl FnMut(u32)) -> Permit {
        let mut rx = self.changed.subscribe();
        let id = self.update(|s| {
            let id = s.next_ticket;
            s.next_ticket += 1;
            s.queue.push_back(id);
            id
        });
        let mut ticket = Ticket {
            slots: self,
            id,
            granted: false,
        };
        let mut last = 0;
        loop {
            let pos = {
                let mut s = self
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if s.queue.front() == Some(&id) && s.used < s.cap {
                    s.queue.pop_front();
                    s.used += 1;
                    None
                } else {
                    s.queue
                        .iter()
                        .position(|&t| t == id)
                        .map(|p| u32::try_from(p + 1).unwrap_or(u32::MAX))
                }
            };
            let Some(pos) = pos else {
                ticket.granted = true;
                drop(ticket);
                self.changed.send_modify(|v| *v = v.wrapping_add(1));
                return Permit {
                    slots: self.clone(),
                };
            };
            if pos != last {
                on_position(pos);
                last = pos;
            }
            if rx.changed().await.is_err() {
                // The sender lives in self; unreachable while self exists.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fair_queue_serves_in_order_and_reports_positions() {
        let gauge = Gauge::default();
        let slots = Slots::with_gauge(1, gauge.clone());
        let first = slots.try_acquire(1).unwrap();
        let positions = Arc::new(Mutex::new(Vec::new()));
        let (p2, p3) = (positions.clone(), positions.clone());
        let s2 = slots.clone();
        let a =
            tokio::spawn(async move { s2.acquire(|p| p2.lock().unwrap().push(("a", p))).await });
        // Let `a` enter the queue before `b`.
        while slots.usage().2 < 1 {
            tokio::task::yield_now().await;
        }
        let s3 = slots.clone();
        let b =
            tokio::spawn(async move { s3.acquire(|p| p3.lock().unwrap().push(("b", p))).await });
        while slots.usage().2 < 2 {
            tokio::task::yield_now().await;
        }
        // Nobody jumps the line: a free slot goes to the head, not to try_acquire.
        assert_eq!(slots.usage(), (1, 1, 2));
        assert_eq!(gauge.get(), 2, "the queued-stages gauge follows the queue");
        drop(first);
        let pa = a.await.unwrap();
        assert_eq!(slots.usage(), (1, 1, 1));
        assert!(slots.try_acquire(1).is_err());
        drop(pa);
        let pb = b.await.unwrap();
        drop(pb);
        assert_eq!(slots.usage(), (1, 0, 0));
        assert_eq!(gauge.get(), 0);
        let seen = positions.lock().unwrap().clone();
        assert!(
            seen.contains(&("a", 1)) && seen.contains(&("b", 2)) && seen.contains(&("b", 1)),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_leaves_the_line() {
        let slots = Slots::new(0);
        let s = slots.clone();
        let w = tokio::spawn(async move { s.acquire(|_| {}).await });
        while slots.usage().2 < 1 {
            tokio::task::yield_now().await;
        }
        w.abort();
        let _ = w.await;
        assert_eq!(slots.usage(), (0, 0, 0));
    }
}
