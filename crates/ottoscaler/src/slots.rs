//! The concurrency cap on workers and the teams' quotas, with a fair queue.
//!
//! A pipeline stage that finds the cap or its team's quota reached waits in line
//! and its progress stream says "queued, position N" (its place in its team's
//! line). Who is served next is [`crate::core::fair::next`]: first come, first
//! served within a team, dominant resource fairness across teams, so a team at its
//! quota holds up no other team and no team starves. Grants are made here, under
//! the lock, whenever something changes, so a slot never sits free while someone
//! it fits waits. A permit is held for as long as its worker lives and is returned
//! on drop. A waiter that goes away (its run was cancelled) leaves the line on
//! drop too, returning a grant it had not yet picked up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use crate::core::fair::{self, Usage, Waiter};
use crate::core::teams::{Cost, Quota};
use crate::metrics::{Counts, Labels};

#[derive(Debug)]
struct State {
    cap: u32,
    used: u32,
    usage: BTreeMap<String, Usage>,
    quotas: BTreeMap<String, Quota>,
    queue: Vec<Waiter>,
    /// Granted tickets not yet picked up by their waiter.
    granted: HashMap<u64, Waiter>,
    next_ticket: u64,
}

impl State {
    fn take(&mut self, team: &str, n: u32, cost: Cost) {
        self.used += n;
        self.usage.entry(team.into()).or_default().add(n, cost);
    }

    fn give_back(&mut self, team: &str, cost: Cost) {
        self.used = self.used.saturating_sub(1);
        if let Some(u) = self.usage.get_mut(team) {
            u.remove(cost);
        }
    }

    /// Admits whoever may be admitted now.
    fn grant(&mut self) {
        while let Some(t) = fair::next(self.cap, self.used, &self.queue, &self.usage, &self.quotas)
        {
            let Some(i) = self.queue.iter().position(|w| w.ticket == t) else {
                return;
            };
            let w = self.queue.remove(i);
            self.take(&w.team, 1, w.cost);
            self.granted.insert(t, w);
        }
    }
}

fn depth_labels(class: &str, team: &str) -> Labels {
    vec![("class".into(), class.into()), ("team".into(), team.into())]
}

/// Why workers were not admitted at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The cap: this many are in use (or others wait before them).
    Cap(u32),
    /// The team's quota, for people ("3 workers (2 held)").
    Quota(String),
}

/// The cap, the quotas and the line.
#[derive(Debug, Clone)]
pub struct Slots {
    state: Arc<Mutex<State>>,
    /// Bumped on every change; waiters re-check.
    changed: Arc<watch::Sender<u64>>,
    /// The queue's length, kept current (`steward_ottoscaler_queued_stages`).
    queued: Gauge,
    /// The same by class and team (`steward_ottoscaler_queue_depth`).
    depth: Counts,
}

/// One worker's share of the cap and of its team's quota.
#[derive(Debug)]
pub struct Permit {
    slots: Slots,
    team: String,
    cost: Cost,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (team, cost) = (std::mem::take(&mut self.team), self.cost);
        self.slots.update(|s| s.give_back(&team, cost));
    }
}

struct Ticket<'a> {
    slots: &'a Slots,
    id: u64,
    picked_up: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.picked_up {
            let id = self.id;
            self.slots.update(|s| {
                s.queue.retain(|w| w.ticket != id);
                if let Some(w) = s.granted.remove(&id) {
                    s.give_back(&w.team, w.cost);
                }
            });
        }
    }
}

impl Slots {
    /// A cap of `cap` workers, no quotas.
    pub fn new(cap: u32) -> Self {
        Self::with_gauge(cap, BTreeMap::new(), Gauge::default(), Counts::default())
    }

    /// A cap of `cap` workers, the teams' `quotas`, the queue length in `queued`
    /// and by class and team in `depth`.
    pub fn with_gauge(
        cap: u32,
        quotas: BTreeMap<String, Quota>,
        queued: Gauge,
        depth: Counts,
    ) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                cap,
                used: 0,
                usage: BTreeMap::new(),
                quotas,
                queue: Vec::new(),
                granted: HashMap::new(),
                next_ticket: 0,
            })),
            changed: Arc::new(watch::channel(0).0),
            queued,
            depth,
        }
    }

    fn set_depth(&self, queue: &[Waiter]) {
        let now = fair::depth(queue)
            .into_iter()
            .map(|((class, team), n)| (depth_labels(&class, &team), n))
            .collect();
        self.depth.set(&now);
    }

    /// Applies `f`, then admits whoever may be admitted and wakes the waiters.
    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = {
            let mut s = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let r = f(&mut s);
            s.grant();
            self.queued
                .set(i64::try_from(s.queue.len()).unwrap_or(i64::MAX));
            self.set_depth(&s.queue);
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

    fn permit(&self, team: &str, cost: Cost) -> Permit {
        Permit {
            slots: self.clone(),
            team: team.into(),
            cost,
        }
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

    /// Workers each team holds now.
    pub fn team_workers(&self) -> BTreeMap<String, u32> {
        self.read(|s| {
            s.usage
                .iter()
                .map(|(t, u)| (t.clone(), u.workers))
                .collect()
        })
    }

    /// `n` permits of `cost` for `team` at once if they fit the cap and the quota
    /// and nobody of the team waits; else why not.
    pub fn try_acquire(&self, team: &str, n: u32, cost: Cost) -> Result<Vec<Permit>, Refused> {
        self.update(|s| {
            let none = Quota::default();
            let used = s.usage.get(team).copied().unwrap_or_default();
            if let Some(why) = fair::over_quota(s.quotas.get(team).unwrap_or(&none), &used, n, cost)
            {
                return Err(Refused::Quota(why));
            }
            if s.queue.iter().any(|w| w.team == team) || s.used + n > s.cap {
                return Err(Refused::Cap(s.used));
            }
            s.take(team, n, cost);
            Ok(())
        })?;
        Ok((0..n).map(|_| self.permit(team, cost)).collect())
    }

    /// A permit even over the cap and quota: for workers found running after a
    /// restart, which exist whether or not they fit.
    pub fn adopt(&self, team: &str, cost: Cost) -> Permit {
        self.update(|s| s.take(team, 1, cost));
        self.permit(team, cost)
    }

    /// Waits in line for a permit of `cost` for `team`; `on_position` is called with
    /// the 1-based place in the team's line whenever it changes while waiting (not
    /// when served at once).
    pub async fn acquire(
        &self,
        team: &str,
        class: &str,
        cost: Cost,
        mut on_position: impl FnMut(u32),
    ) -> Permit {
        let mut rx = self.changed.subscribe();
        // The series exists (at 0) from a class and team's first request on, even
        // when it is served at once.
        self.depth.touch(depth_labels(class, team));
        let id = self.update(|s| {
            let id = s.next_ticket;
            s.next_ticket += 1;
            s.queue.push(Waiter {
                ticket: id,
                team: team.into(),
                class: class.into(),
                cost,
            });
            id
        });
        let mut ticket = Ticket {
            slots: self,
            id,
            picked_up: false,
        };
        let mut last = 0;
        loop {
            let pos = {
                let mut s = self
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if s.granted.remove(&id).is_some() {
                    None
                } else {
                    let pos = s
                        .queue
                        .iter()
                        .filter(|w| w.team == team)
                        .position(|w| w.ticket == id)
                        .map_or(0, |p| p + 1);
                    Some(u32::try_from(pos).unwrap_or(u32::MAX))
                }
            };
            let Some(pos) = pos else {
                ticket.picked_up = true;
                return self.permit(team, cost);
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
#[path = "slots_tests.rs"]
mod tests;
