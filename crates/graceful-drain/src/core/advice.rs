//! Which VerticalPodAutoscalers the running leader advises to resize in place, and
//! when to say so. Pure: the VPA watcher's events in, what to publish out.
//!
//! A VPA is advised once per process while it stays a candidate with the same
//! target and mode ([`crate::core::vpa::candidate`]); a relist after a broken watch
//! repeats nothing. It is advised again only when it changes (another target, or
//! Auto switched to Recreate), and withdrawn when it stops being a candidate, is
//! deleted, or vanished while the watch was down.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::vpa::Candidate;

/// What to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new or changed candidate: set its gauge, publish the Event.
    Advise(Candidate),
    /// No longer a candidate (`namespace/name`): remove its gauge.
    Withdraw(String),
}

/// The candidates advised so far.
#[derive(Debug, Default)]
pub struct Advisor {
    advised: BTreeMap<String, Candidate>,
    /// VPAs seen since the last relist began (`Some` while relisting).
    relisting: Option<BTreeSet<String>>,
}

impl Advisor {
    /// A VPA `key` (`namespace/name`) was added or modified; `candidate` is what
    /// [`crate::core::vpa::candidate`] made of it.
    pub fn apply(&mut self, key: &str, candidate: Option<Candidate>) -> Option<Change> {
        if let Some(seen) = self.relisting.as_mut() {
            seen.insert(key.to_string());
        }
        match candidate {
            Some(c) if self.advised.get(key) == Some(&c) => None,
            Some(c) => {
                self.advised.insert(key.to_string(), c.clone());
                Some(Change::Advise(c))
            }
            None => self.delete(key),
        }
    }

    /// A VPA was deleted.
    pub fn delete(&mut self, key: &str) -> Option<Change> {
        self.advised
            .remove(key)
            .map(|_| Change::Withdraw(key.to_string()))
    }

    /// A relist begins: every VPA not seen until [`Self::relisted`] is gone.
    pub fn relisting(&mut self) {
        self.relisting = Some(BTreeSet::new());
    }

    /// The relist ended: withdraws the advised VPAs it did not list.
    pub fn relisted(&mut self) -> Vec<Change> {
        let Some(seen) = self.relisting.take() else {
            return Vec::new();
        };
        let gone: Vec<String> = self
            .advised
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        gone.iter().filter_map(|k| self.delete(k)).collect()
    }

    /// Withdraws everything (the VPA API went away).
    pub fn clear(&mut self) -> Vec<Change> {
        self.relisting = None;
        std::mem::take(&mut self.advised)
            .into_keys()
            .map(Change::Withdraw)
            .collect()
    }

    /// Number of candidates advised now.
    pub fn len(&self) -> usize {
        self.advised.len()
    }

    /// No candidate advised now.
    pub fn is_empty(&self) -> bool {
        self.advised.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(vpa: &str, target: &str, mode: &str) -> Option<Candidate> {
        Some(Candidate {
            vpa: vpa.into(),
            target: target.into(),
            mode: mode.into(),
        })
    }

    fn advise(vpa: &str, target: &str, mode: &str) -> Option<Change> {
        cand(vpa, target, mode).map(Change::Advise)
    }

    #[test]
    fn applies() {
        // (step, key, candidate, expected change); one Advisor through the table.
        type Step = (&'static str, Option<Candidate>, Option<Change>);
        let table: Vec<Step> = vec![
            (
                "a/web",
                cand("a/web", "Deployment/web", "Recreate"),
                advise("a/web", "Deployment/web", "Recreate"),
            ),
            // The same VPA again (resync, status update): no second Event.
            ("a/web", cand("a/web", "Deployment/web", "Recreate"), None),
            // Changed target: advised again.
            (
                "a/web",
                cand("a/web", "Deployment/api", "Recreate"),
                advise("a/web", "Deployment/api", "Recreate"),
            ),
            // Auto -> Recreate on another VPA: both advised.
            (
                "a/db",
                cand("a/db", "StatefulSet/db", "Auto"),
                advise("a/db", "StatefulSet/db", "Auto"),
            ),
            (
                "a/db",
                cand("a/db", "StatefulSet/db", "Recreate"),
                advise("a/db", "StatefulSet/db", "Recreate"),
            ),
            // Switched to InPlaceOrRecreate: withdrawn once.
            ("a/web", None, Some(Change::Withdraw("a/web".into()))),
            ("a/web", None, None),
            // An Off VPA never advised is nothing.
            ("a/off", None, None),
            // Back to Recreate: advised again.
            (
                "a/web",
                cand("a/web", "Deployment/api", "Recreate"),
                advise("a/web", "Deployment/api", "Recreate"),
            ),
        ];
        let mut a = Advisor::default();
        for (i, (key, c, want)) in table.into_iter().enumerate() {
            assert_eq!(a.apply(key, c), want, "step {i} ({key})");
        }
        assert_eq!(a.len(), 2);
        assert_eq!(a.delete("a/db"), Some(Change::Withdraw("a/db".into())));
        assert_eq!(a.delete("a/db"), None);
    }

    #[test]
    fn relist_withdraws_what_vanished_and_repeats_nothing() {
        let mut a = Advisor::default();
        a.apply("a/x", cand("a/x", "Deployment/x", "Recreate"));
        a.apply("a/y", cand("a/y", "Deployment/y", "Recreate"));
        a.relisting();
        assert_eq!(
            a.apply("a/x", cand("a/x", "Deployment/x", "Recreate")),
            None
        );
        assert_eq!(a.relisted(), vec![Change::Withdraw("a/y".into())]);
        assert_eq!(a.len(), 1);
        // A second InitDone without Init withdraws nothing.
        assert_eq!(a.relisted(), vec![]);
        assert_eq!(a.clear(), vec![Change::Withdraw("a/x".into())]);
        assert!(a.is_empty());
    }
}
