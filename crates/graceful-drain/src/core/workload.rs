//! How each kind of workload is drained. Pure.
//!
//! Label isolation works by taking the pod out of its Services' selectors. What
//! else that does depends on who owns the pod:
//!
//! - **ReplicaSet** (Deployment) or no owner: the ReplicaSet no longer selects the
//!   pod, lets go of it and starts a replacement at once, which is what a drain
//!   wants. Every Service label is removed.
//! - **StatefulSet**: a released pod keeps its name, so the StatefulSet could not
//!   create the replacement and would fight over the identity. Only Service labels
//!   the StatefulSet's selector does not use are removed (give the Service one such
//!   label to get isolation); pods are drained one at a time, highest ordinal
//!   first, each only when every other pod of the set is Ready, as a StatefulSet's
//!   own rolling update does (an implicit budget, see `budget`). No finalizer is
//!   ever put on them.
//! - **DaemonSet**: a released pod would make the DaemonSet start a second pod on
//!   the same node (host ports, double agents). Same rule: only labels outside its
//!   selector are removed.
//! - **Job** (and CronJob, whose Jobs' pods are keyed `CronJob/<name>`): a Job pod is not serving traffic to drain but doing
//!   work to finish; nothing is isolated, the eviction waits until the pod has
//!   finished or `jobMaxWait` has passed.
//! - Any other owner (a custom controller): passes through untouched, because
//!   steward cannot know what a label change does to it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::core::state::{EvictReason, Wait};

/// How a pod of some workload is drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Remove every Service label; the owner (a ReplicaSet) replaces the pod at once.
    Release,
    /// Remove only Service labels outside the owner's selector; the owner keeps the pod.
    KeepOwner {
        /// Drain one pod of the workload at a time, highest ordinal first (StatefulSet).
        one_at_a_time: bool,
    },
    /// Isolate nothing; evict when the pod has finished (Job).
    AwaitCompletion,
}

/// The handling for a pod whose controlling owner is of `kind` (`None`: no owner).
/// `None` back: steward leaves the pod alone.
pub fn handling(owner_kind: Option<&str>) -> Option<Handling> {
    match owner_kind {
        None | Some("ReplicaSet") => Some(Handling::Release),
        Some("StatefulSet") => Some(Handling::KeepOwner {
            one_at_a_time: true,
        }),
        Some("DaemonSet") => Some(Handling::KeepOwner {
            one_at_a_time: false,
        }),
        Some("Job") => Some(Handling::AwaitCompletion),
        Some(_) => None,
    }
}

/// The handling for a recorded workload (`Kind/name`, as `webhook::workload_of`
/// writes it: `Deployment/web` for a Deployment's ReplicaSet).
pub fn handling_of_workload(workload: Option<&str>) -> Option<Handling> {
    let kind = workload.and_then(|w| w.split_once('/')).map(|(k, _)| k);
    match kind {
        Some("Deployment") => Some(Handling::Release),
        Some("CronJob") => Some(Handling::AwaitCompletion),
        other => handling(other),
    }
}

/// `(kind, name)` of a recorded workload.
pub fn split(workload: &str) -> Option<(&str, &str)> {
    workload
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
}

/// The labels isolation removes: the Service labels, less those the owner selects on.
pub fn isolation_labels(
    service_labels: BTreeMap<String, String>,
    owner_selector_keys: &[String],
    handling: Handling,
) -> BTreeMap<String, String> {
    match handling {
        Handling::Release => service_labels,
        Handling::KeepOwner { .. } => service_labels
            .into_iter()
            .filter(|(k, _)| !owner_selector_keys.contains(k))
            .collect(),
        Handling::AwaitCompletion => BTreeMap::new(),
    }
}

/// Whether a pod phase means the pod has finished.
pub fn finished(pod_phase: Option<&str>) -> bool {
    matches!(pod_phase, Some("Succeeded" | "Failed"))
}

/// When to evict a Job pod whose eviction was asked for at `requested_at`. Pure.
pub fn decide_job(
    requested_at: Timestamp,
    now: Timestamp,
    job_max_wait: Duration,
    finished: bool,
) -> Wait {
    if finished {
        return Wait::Evict(EvictReason::Completed);
    }
    let elapsed = Duration::try_from(now.duration_since(requested_at)).unwrap_or_default();
    if elapsed >= job_max_wait {
        return Wait::Evict(EvictReason::MaxWait);
    }
    // A pod finishing is a watch event and wakes the controller; this is the deadline.
    Wait::For(job_max_wait - elapsed)
}

/// How long a StatefulSet pod's request waits before its turn is decided, so that
/// evictions sent together (an evicter's loop, `kubectl drain` of a node) are
/// ordered highest ordinal first rather than by arrival.
pub const STS_SETTLE: Duration = Duration::from_secs(2);

/// How often a queued StatefulSet pod renews its heartbeat, so the webhook does not
/// count it overdue while it waits its turn (well inside `OVERDUE_MARGIN`).
pub const QUEUE_HEARTBEAT: Duration = Duration::from_secs(20);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handling_by_owner() {
        let table = [
            (None, Some(Handling::Release)),
            (Some("ReplicaSet"), Some(Handling::Release)),
            (
                Some("StatefulSet"),
                Some(Handling::KeepOwner {
                    one_at_a_time: true,
                }),
            ),
            (
                Some("DaemonSet"),
                Some(Handling::KeepOwner {
                    one_at_a_time: false,
                }),
            ),
            (Some("Job"), Some(Handling::AwaitCompletion)),
            (Some("CloneSet"), None),
        ];
        for (kind, want) in table {
            assert_eq!(handling(kind), want, "{kind:?}");
        }
        assert_eq!(
            handling_of_workload(Some("Deployment/web")),
            Some(Handling::Release)
        );
        assert_eq!(
            handling_of_workload(Some("Job/nightly-29000")),
            Some(Handling::AwaitCompletion)
        );
        assert_eq!(
            handling_of_workload(Some("CronJob/nightly")),
            Some(Handling::AwaitCompletion)
        );
        assert_eq!(handling_of_workload(None), Some(Handling::Release));
        assert_eq!(handling_of_workload(Some("Rollout/x")), None);
        assert_eq!(split("StatefulSet/db"), Some(("StatefulSet", "db")));
        assert_eq!(split("db"), None);
        assert_eq!(split("/db"), None);
    }

    #[test]
    fn isolation_keeps_the_owners_selector() {
        let svc: BTreeMap<String, String> = [("app", "db"), ("serving", "yes")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let keys = vec!["app".to_string()];
        assert_eq!(isolation_labels(svc.clone(), &keys, Handling::Release), svc);
        let kept = isolation_labels(
            svc.clone(),
            &keys,
            Handling::KeepOwner {
                one_at_a_time: true,
            },
        );
        assert_eq!(kept.keys().collect::<Vec<_>>(), vec!["serving"]);
        assert!(isolation_labels(svc, &keys, Handling::AwaitCompletion).is_empty());
    }

    #[test]
    fn job_waits() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let max = Duration::from_secs(600);
        let table = [
            (0, false, Wait::For(max)),
            (100, false, Wait::For(Duration::from_secs(500))),
            (100, true, Wait::Evict(EvictReason::Completed)),
            (600, false, Wait::Evict(EvictReason::MaxWait)),
            (-5, false, Wait::For(max)),
        ];
        for (at, done, want) in table {
            assert_eq!(decide_job(t(0), t(at), max, done), want, "{at} {done}");
        }
        assert!(finished(Some("Succeeded")) && finished(Some("Failed")));
        assert!(!finished(Some("Running")) && !finished(None));
    }
}
