//! Which waiting worker the cap and the teams' quotas admit next: dominant resource
//! fairness (DRF, as Mesos and YuniKorn schedule tenants) over the teams' quotas.
//!
//! Within a team the line is first come, first served, so a stream of small
//! requests cannot starve a big one of the same team. Across teams the next slot
//! goes to the team whose head fits its quota and whose *dominant share* is the
//! lowest: the largest of workers / quota.workers, cpu / quota.cpu and memory /
//! quota.memory (a team without a quota counts its workers against the cap). A
//! team at its quota waits without holding up any other team. Ties go to the
//! older request.

use std::collections::BTreeMap;

use crate::core::teams::{Cost, Quota};

/// What a team holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Workers.
    pub workers: u32,
    /// Sum of cpu requests, millicores.
    pub cpu_milli: u64,
    /// Sum of memory requests, bytes.
    pub memory_bytes: u64,
}

impl Usage {
    /// Adds `n` workers of `cost`.
    pub fn add(&mut self, n: u32, cost: Cost) {
        self.workers += n;
        self.cpu_milli += cost.cpu_milli * u64::from(n);
        self.memory_bytes += cost.memory_bytes * u64::from(n);
    }

    /// Takes one worker of `cost` away.
    pub fn remove(&mut self, cost: Cost) {
        self.workers = self.workers.saturating_sub(1);
        self.cpu_milli = self.cpu_milli.saturating_sub(cost.cpu_milli);
        self.memory_bytes = self.memory_bytes.saturating_sub(cost.memory_bytes);
    }
}

/// One request in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    /// Order of arrival.
    pub ticket: u64,
    /// Its team.
    pub team: String,
    /// Its worker class (for the queue-depth metric only).
    pub class: String,
    /// What its worker costs.
    pub cost: Cost,
}

/// How many wait, by (class, team).
pub fn depth(queue: &[Waiter]) -> BTreeMap<(String, String), i64> {
    let mut m = BTreeMap::new();
    for w in queue {
        *m.entry((w.class.clone(), w.team.clone())).or_insert(0) += 1;
    }
    m
}

/// Why `n` workers of `cost` may not be added to `used` under `quota`, for people;
/// `None` when they fit.
pub fn over_quota(quota: &Quota, used: &Usage, n: u32, cost: Cost) -> Option<String> {
    let mut after = *used;
    after.add(n, cost);
    if let Some(q) = quota.workers
        && after.workers > q
    {
        return Some(format!("{q} workers ({} held)", used.workers));
    }
    if let Some(q) = quota.cpu_milli
        && after.cpu_milli > q
    {
        return Some(format!("{q}m cpu ({}m requested)", used.cpu_milli));
    }
    if let Some(q) = quota.memory_bytes
        && after.memory_bytes > q
    {
        return Some(format!(
            "{q} bytes of memory ({} requested)",
            used.memory_bytes
        ));
    }
    None
}

/// A team's dominant share: the largest fraction of any bounded resource it holds.
pub fn share(quota: &Quota, used: &Usage, cap: u32) -> f64 {
    let frac = |u: f64, q: f64| if q > 0.0 { u / q } else { f64::INFINITY };
    #[allow(clippy::cast_precision_loss)]
    let mut s = frac(
        f64::from(used.workers),
        f64::from(quota.workers.unwrap_or(cap)),
    );
    #[allow(clippy::cast_precision_loss)]
    {
        if let Some(q) = quota.cpu_milli {
            s = s.max(frac(used.cpu_milli as f64, q as f64));
        }
        if let Some(q) = quota.memory_bytes {
            s = s.max(frac(used.memory_bytes as f64, q as f64));
        }
    }
    if used.workers == 0 { 0.0 } else { s }
}

/// The ticket to admit next, if any: `in_use` of `cap` workers are held, `queue`
/// is in order of arrival, `usage` and `quotas` by team (missing = none).
pub fn next(
    cap: u32,
    in_use: u32,
    queue: &[Waiter],
    usage: &BTreeMap<String, Usage>,
    quotas: &BTreeMap<String, Quota>,
) -> Option<u64> {
    if in_use >= cap {
        return None;
    }
    let none = Quota::default();
    let zero = Usage::default();
    let mut seen: Vec<&str> = Vec::new();
    let mut best: Option<(f64, u64)> = None;
    for w in queue {
        if seen.contains(&w.team.as_str()) {
            continue;
        }
        seen.push(&w.team);
        let quota = quotas.get(&w.team).unwrap_or(&none);
        let used = usage.get(&w.team).unwrap_or(&zero);
        if over_quota(quota, used, 1, w.cost).is_some() {
            continue;
        }
        let s = share(quota, used, cap);
        if best.is_none_or(|(bs, bt)| s < bs || (s == bs && w.ticket < bt)) {
            best = Some((s, w.ticket));
        }
    }
    best.map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(ticket: u64, team: &str) -> Waiter {
        Waiter {
            ticket,
            team: team.into(),
            class: "ci".into(),
            cost: Cost {
                cpu_milli: 500,
                memory_bytes: 1 << 30,
            },
        }
    }

    fn workers(n: u32) -> Quota {
        Quota {
            workers: Some(n),
            ..Quota::default()
        }
    }

    fn held(n: u32) -> Usage {
        let mut u = Usage::default();
        u.add(
            n,
            Cost {
                cpu_milli: 500,
                memory_bytes: 1 << 30,
            },
        );
        u
    }

    #[test]
    fn next_table() {
        let quotas = BTreeMap::from([("a".to_string(), workers(3)), ("b".to_string(), workers(5))]);
        let cpu = BTreeMap::from([(
            "a".to_string(),
            Quota {
                cpu_milli: Some(1000),
                ..Quota::default()
            },
        )]);
        let u = |a: u32, b: u32| {
            BTreeMap::from([("a".to_string(), held(a)), ("b".to_string(), held(b))])
        };
        let q = [w(1, "a"), w(2, "b"), w(3, "a"), w(4, "b")];
        #[allow(clippy::type_complexity)]
        let cases: &[(
            &str,
            u32,
            u32,
            &[Waiter],
            BTreeMap<String, Usage>,
            &BTreeMap<String, Quota>,
            Option<u64>,
        )] = &[
            ("cap reached: nobody", 4, 4, &q, u(2, 2), &quotas, None),
            ("empty line", 4, 0, &[], u(0, 0), &quotas, None),
            ("both idle: the older", 8, 0, &q, u(0, 0), &quotas, Some(1)),
            // a holds 1/3 = .33, b 1/5 = .2: b, although a came first.
            ("lower share first", 8, 2, &q, u(1, 1), &quotas, Some(2)),
            (
                "a at its quota waits, b goes",
                8,
                3,
                &q,
                u(3, 0),
                &quotas,
                Some(2),
            ),
            ("both at quota: nobody", 9, 8, &q, u(3, 5), &quotas, None),
            // Within a team only its head is looked at: ticket 3 is not picked over 1.
            (
                "fifo within a team",
                8,
                0,
                &[w(3, "a"), w(1, "a")],
                u(0, 0),
                &quotas,
                Some(3),
            ),
            // a team with no quota counts against the cap: 2/10 vs b's 2/5.
            (
                "no quota: share of the cap",
                10,
                4,
                &[w(1, "b"), w(2, "c")],
                BTreeMap::from([("b".to_string(), held(2)), ("c".to_string(), held(2))]),
                &quotas,
                Some(2),
            ),
            // cpu quota 1000m, 2 workers of 500m held: the third does not fit.
            ("cpu quota", 8, 2, &[w(1, "a")], u(2, 0), &cpu, None),
            (
                "cpu quota with room",
                8,
                1,
                &[w(1, "a")],
                u(1, 0),
                &cpu,
                Some(1),
            ),
        ];
        for (name, cap, in_use, queue, usage, quotas, want) in cases {
            assert_eq!(next(*cap, *in_use, queue, usage, quotas), *want, "{name}");
        }
    }

    #[test]
    fn progressive_filling_shares_the_cap_in_proportion_to_quotas() {
        // Two teams with quotas 3 and 5 and 10 requests each compete for a cap of 7:
        // DRF ends with a at 3 (its quota) and b at 4.
        let quotas = BTreeMap::from([("a".to_string(), workers(3)), ("b".to_string(), workers(5))]);
        let mut queue: Vec<Waiter> = (0..20)
            .map(|i| w(i, if i % 2 == 0 { "a" } else { "b" }))
            .collect();
        let mut usage = BTreeMap::new();
        let mut in_use = 0;
        while let Some(t) = next(7, in_use, &queue, &usage, &quotas) {
            let i = queue.iter().position(|w| w.ticket == t).unwrap();
            let won = queue.remove(i);
            usage
                .entry(won.team)
                .or_insert_with(Usage::default)
                .add(1, won.cost);
            in_use += 1;
        }
        assert_eq!((usage["a"].workers, usage["b"].workers), (3, 4));
    }

    #[test]
    fn depth_counts_by_class_and_team() {
        let mut q = vec![w(1, "a"), w(2, "b"), w(3, "a")];
        q[2].class = "big".into();
        let d = depth(&q);
        assert_eq!(
            d,
            BTreeMap::from([
                (("big".to_string(), "a".to_string()), 1),
                (("ci".to_string(), "a".to_string()), 1),
                (("ci".to_string(), "b".to_string()), 1),
            ])
        );
        assert!(depth(&[]).is_empty());
    }

    #[test]
    fn over_quota_says_which_bound() {
        let c = Cost {
            cpu_milli: 500,
            memory_bytes: 10,
        };
        assert_eq!(over_quota(&workers(3), &held(2), 1, c), None);
        assert_eq!(
            over_quota(&workers(3), &held(2), 2, c).as_deref(),
            Some("3 workers (2 held)")
        );
        let mem = Quota {
            memory_bytes: Some(15),
            ..Quota::default()
        };
        assert_eq!(
            over_quota(&mem, &Usage::default(), 2, c).as_deref(),
            Some("15 bytes of memory (0 requested)")
        );
        assert_eq!(over_quota(&Quota::default(), &held(100), 100, c), None);
    }
}
