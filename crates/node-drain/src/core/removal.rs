//! How one pod leaves its node, decided without I/O: deleted (a problem pod) or
//! evicted (first waiting for room for its replacement, when asked), what each
//! eviction answer leads to, and when a node's wait is over. Table-tested; the
//! engine applies the decisions.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use steward_kube::eviction::Outcome;

/// A pod being moved: namespace/name and the UID it had when the drain began.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodKey {
    /// Namespace.
    pub ns: String,
    /// Name.
    pub name: String,
    /// UID at the start.
    pub uid: String,
}

impl PodKey {
    /// The key of `p` as it is now.
    pub fn of(p: &Pod) -> Self {
        Self {
            ns: p.namespace().unwrap_or_default(),
            name: p.name_any(),
            uid: p.uid().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ns, self.name)
    }
}

/// How a pod leaves its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A problem pod (this reason): deleted with the short grace period, its
    /// budget not consulted.
    Delete(String),
    /// Evicted through the Eviction API; `wait_for_room` first waits for room for
    /// its replacement.
    Evict {
        /// Wait for room for the replacement first.
        wait_for_room: bool,
    },
}

fn controlled_by(p: &Pod, kind: &str) -> bool {
    super::pods::controller(p.owner_references(), kind).is_some()
}

/// How `pod` leaves a node that is (or is not) Ready. A StatefulSet's problem
/// pod is still evicted while its node is Ready: deleting it could start its
/// replacement while the old one still runs. `wait_for_replacements` holds a
/// ReplicaSet's pod until its replacement has room.
pub fn removal(pod: &Pod, node_not_ready: bool, wait_for_replacements: bool) -> Removal {
    if let Some(reason) = problem(pod, node_not_ready)
        && (!controlled_by(pod, "StatefulSet") || node_not_ready)
    {
        return Removal::Delete(reason);
    }
    Removal::Evict {
        wait_for_room: wait_for_replacements && controlled_by(pod, "ReplicaSet"),
    }
}

/// Why a pod counts as a problem pod that is deleted instead of evicted, if it is.
pub fn problem(p: &Pod, node_not_ready: bool) -> Option<String> {
    let status = p.status.as_ref()?;
    let phase = status.phase.as_deref().unwrap_or("Unknown");
    if matches!(phase, "Failed" | "Succeeded" | "Unknown" | "Pending") {
        return Some(phase.to_string());
    }
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    for reason in waiting {
        if matches!(
            reason.as_str(),
            "CrashLoopBackOff"
                | "ImagePullBackOff"
                | "ErrImagePull"
                | "CreateContainerConfigError"
                | "InvalidImageName"
        ) {
            return Some(reason);
        }
    }
    node_not_ready.then(|| "NodeNotReady".to_string())
}

/// What follows one eviction answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The pod is on its way out (evicted, or already gone).
    Evicted,
    /// Its namespace is terminating: delete the pod directly with this grace period.
    Delete {
        /// The pod's own termination grace period (30 s when it has none).
        grace: u32,
    },
    /// A budget refused it now (the server's message): wait `delay`, or until the
    /// budget allows again, and retry.
    Blocked {
        /// How long at most.
        delay: Duration,
        /// The server's message.
        message: String,
    },
    /// A failure worth retrying (why): wait `delay` and retry.
    Retry {
        /// How long.
        delay: Duration,
        /// Why.
        reason: String,
    },
    /// It can never be evicted (more than one budget, RBAC): the node fails.
    Fail(String),
}

/// What `outcome` of evicting `pod` leads to; `backoff` is this try's back-off
/// (with jitter). A budget's refusal waits at least the server's `retryAfterSeconds`.
pub fn after_eviction(outcome: Outcome, pod: &Pod, backoff: Duration) -> Next {
    match outcome {
        Outcome::Evicted | Outcome::Gone => Next::Evicted,
        Outcome::NamespaceTerminating => Next::Delete {
            grace: pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .and_then(|g| u32::try_from(g).ok())
                .unwrap_or(30),
        },
        Outcome::Blocked {
            retry_after,
            message,
        } => Next::Blocked {
            delay: retry_after.unwrap_or_default().max(backoff),
            message,
        },
        Outcome::Transient(reason) => Next::Retry {
            delay: backoff,
            reason,
        },
        Outcome::MultiplePdbs(reason) | Outcome::Fatal(reason) => Next::Fail(reason),
    }
}

/// The back-off between eviction tries of one pod: 1 s doubling to 30 s, each
/// delay drawn from its upper half ([0.5, 1) s, [1, 2) s, ... [15, 30) s), so the
/// retries of many pods blocked at once spread out.
pub fn eviction_backoff() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(15))
        .with_jitter()
        .without_max_times()
        .build()
}

/// The pods of `keys` still on the node, by UID: `present` maps (namespace,
/// name) to the UID there now. A same-name pod with another UID (a
/// StatefulSet's replacement) is not ours.
pub fn left(keys: &[PodKey], present: &BTreeMap<(String, String), String>) -> Vec<String> {
    keys.iter()
        .filter(|k| present.get(&(k.ns.clone(), k.name.clone())) == Some(&k.uid))
        .map(ToString::to_string)
        .collect()
}

/// Where a node's wait stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// None of its pods is left.
    Empty,
    /// Every pod left can never be evicted.
    Unevictable,
    /// Pods are still moving.
    Moving,
}

/// The wait's state once the watch has `synced`, with `left` pods left and
/// `unevictable` pods known to be impossible to evict.
pub fn waiting(left: &[String], synced: bool, unevictable: &BTreeMap<String, String>) -> Waiting {
    if !synced {
        Waiting::Moving
    } else if left.is_empty() {
        Waiting::Empty
    } else if left.iter().all(|k| unevictable.contains_key(k)) {
        Waiting::Unevictable
    } else {
        Waiting::Moving
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({ "metadata": { "name": "p" }, "status": status })).unwrap()
    }

    #[test]
    fn problem_pods() {
        let waiting = |r: &str| {
            pod(
                serde_json::json!({ "phase": "Running", "containerStatuses": [{ "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 3, "state": { "waiting": { "reason": r } } }] }),
            )
        };
        assert_eq!(
            problem(&pod(serde_json::json!({ "phase": "Running" })), false),
            None
        );
        assert_eq!(
            problem(&pod(serde_json::json!({ "phase": "Running" })), true).as_deref(),
            Some("NodeNotReady")
        );
        for phase in ["Pending", "Failed", "Unknown", "Succeeded"] {
            assert_eq!(
                problem(&pod(serde_json::json!({ "phase": phase })), false).as_deref(),
                Some(phase)
            );
        }
        for reason in ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"] {
            assert_eq!(problem(&waiting(reason), false).as_deref(), Some(reason));
        }
        assert_eq!(problem(&waiting("ContainerCreating"), false), None);
    }

    fn owned(kind: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "p", "namespace": "ns", "uid": "u1",
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": kind, "name": "o", "uid": "o", "controller": true }] },
            "spec": { "terminationGracePeriodSeconds": 45, "containers": [] },
            "status": { "phase": phase }
        }))
        .unwrap()
    }

    #[test]
    fn how_pods_leave() {
        let evict = |wait_for_room| Removal::Evict { wait_for_room };
        let delete = |r: &str| Removal::Delete(r.into());
        // (owner kind, phase, node not ready, --wait-for-replacements, removal)
        let cases = [
            ("ReplicaSet", "Running", false, false, evict(false)),
            ("ReplicaSet", "Running", false, true, evict(true)),
            ("StatefulSet", "Running", false, true, evict(false)),
            ("ReplicaSet", "Pending", false, true, delete("Pending")),
            ("ReplicaSet", "Running", true, false, delete("NodeNotReady")),
            // A StatefulSet's problem pod is evicted while its node is Ready...
            ("StatefulSet", "Failed", false, false, evict(false)),
            // ...and deleted once the node is not.
            ("StatefulSet", "Failed", true, false, delete("Failed")),
            ("Job", "Succeeded", false, false, delete("Succeeded")),
        ];
        for (kind, phase, not_ready, wait, want) in cases {
            assert_eq!(
                removal(&owned(kind, phase), not_ready, wait),
                want,
                "{kind} {phase} {not_ready} {wait}"
            );
        }
        assert_eq!(PodKey::of(&owned("Job", "Running")).to_string(), "ns/p");
    }

    #[test]
    fn what_an_eviction_answer_leads_to() {
        let p = owned("ReplicaSet", "Running");
        let b = Duration::from_secs(2);
        let blocked = |after: Option<u64>| Outcome::Blocked {
            retry_after: after.map(Duration::from_secs),
            message: "pdb".into(),
        };
        let cases = [
            (Outcome::Evicted, Next::Evicted),
            (Outcome::Gone, Next::Evicted),
            (Outcome::NamespaceTerminating, Next::Delete { grace: 45 }),
            (
                blocked(None),
                Next::Blocked {
                    delay: b,
                    message: "pdb".into(),
                },
            ),
            (
                blocked(Some(1)),
                Next::Blocked {
                    delay: b,
                    message: "pdb".into(),
                },
            ),
            (
                blocked(Some(9)),
                Next::Blocked {
                    delay: Duration::from_secs(9),
                    message: "pdb".into(),
                },
            ),
            (
                Outcome::Transient("503".into()),
                Next::Retry {
                    delay: b,
                    reason: "503".into(),
                },
            ),
            (
                Outcome::MultiplePdbs("two".into()),
                Next::Fail("two".into()),
            ),
            (Outcome::Fatal("rbac".into()), Next::Fail("rbac".into())),
        ];
        for (outcome, want) in cases {
            assert_eq!(after_eviction(outcome.clone(), &p, b), want, "{outcome:?}");
        }
        let no_grace = pod(json!({ "phase": "Running" }));
        assert_eq!(
            after_eviction(Outcome::NamespaceTerminating, &no_grace, b),
            Next::Delete { grace: 30 }
        );
    }

    #[test]
    fn back_off_doubles_to_thirty_seconds_drawn_from_the_upper_half() {
        let ms = Duration::from_millis;
        let ranges = [
            (ms(500), ms(1000)),
            (ms(1000), ms(2000)),
            (ms(2000), ms(4000)),
            (ms(4000), ms(8000)),
            (ms(8000), ms(16_000)),
            (ms(15_000), ms(30_000)),
            (ms(15_000), ms(30_000)),
        ];
        for _ in 0..50 {
            let mut b = eviction_backoff();
            for (i, (lo, hi)) in ranges.iter().enumerate() {
                let d = b.next().unwrap();
                assert!(
                    d >= *lo && d <= *hi,
                    "try {i}: {d:?} not in [{lo:?}, {hi:?}]"
                );
            }
        }
        assert!(
            eviction_backoff().nth(1000).is_some(),
            "it never ends by itself"
        );
        // Each pod's back-off draws its own jitter: pods blocked together spread out.
        let firsts: std::collections::BTreeSet<Duration> =
            (0..20).filter_map(|_| eviction_backoff().next()).collect();
        assert!(
            firsts.len() > 1,
            "every back-off drew the same delays: {firsts:?}"
        );
    }

    #[test]
    fn the_wait_ends_when_the_pods_of_the_start_are_gone() {
        let key = |name: &str, uid: &str| PodKey {
            ns: "ns".into(),
            name: name.into(),
            uid: uid.into(),
        };
        let keys = [key("a", "1"), key("b", "2"), key("web-0", "3")];
        let present: BTreeMap<(String, String), String> = [
            (("ns".to_string(), "a".to_string()), "1".to_string()),
            // The StatefulSet's replacement: same name, another UID; not ours.
            (("ns".to_string(), "web-0".to_string()), "9".to_string()),
        ]
        .into();
        let l = left(&keys, &present);
        assert_eq!(l, ["ns/a"]);
        let none = BTreeMap::new();
        let why: BTreeMap<String, String> =
            [("ns/a".to_string(), "two budgets".to_string())].into();
        // (left, synced, unevictable, state)
        let cases = [
            (vec![], false, &none, Waiting::Moving),
            (vec![], true, &none, Waiting::Empty),
            (l.clone(), true, &none, Waiting::Moving),
            (l.clone(), false, &why, Waiting::Moving),
            (l.clone(), true, &why, Waiting::Unevictable),
            (
                vec!["ns/a".into(), "ns/b".into()],
                true,
                &why,
                Waiting::Moving,
            ),
        ];
        for (left, synced, unevictable, want) in cases {
            assert_eq!(
                waiting(&left, synced, unevictable),
                want,
                "{left:?} {synced}"
            );
        }
    }
}
