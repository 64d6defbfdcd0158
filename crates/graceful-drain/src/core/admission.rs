//! The eviction webhook's decision, pure: `decide(attempt, pod, config, now)`.
//!
//! The choice, and why every evicter ends with the pod gone and none loops forever:
//! the first eviction of a targeted pod is refused with 429 Too Many Requests (the
//! code a PodDisruptionBudget refusal has) while steward records the request on the
//! pod. The VPA updater logs the refusal and tries again next loop; `kubectl drain`
//! retries 429 every 5 s; Karpenter's terminator requeues 429 with back-off. All
//! three already treat 429 as "not yet", never as failure. steward then isolates
//! the pod, waits until it has drained, marks it `evicting` and evicts it itself
//! through the Eviction API, which this webhook lets through. A caller's retry
//! after that is allowed too (or finds the pod gone: 404, which every one of them
//! treats as done). A success answer instead ("evicted" while the pod still runs)
//! would make `kubectl drain` wait for a deletion that happens much later and the
//! VPA updater count an eviction that has not happened.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use crate::core::config::{Config, PodRef};
use crate::core::state::{self, Phase, Record};
use crate::core::workload::{self, Handling};

/// The eviction being admitted.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// Namespace of the pod.
    pub namespace: &'a str,
    /// Name of the pod.
    pub name: &'a str,
    /// A server-side dry run (steward's PDB check, `kubectl drain --dry-run=server`).
    pub dry_run: bool,
    /// The user asking (`system:serviceaccount:kube-system:vpa-updater`, a person, ...).
    pub requester: &'a str,
}

/// What the webhook knows of the pod.
#[derive(Debug, Clone)]
pub struct PodFacts {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Kind of the controlling owner, if any.
    pub owner_kind: Option<String>,
    /// `Kind/name` of the workload (a ReplicaSet's Deployment when it has one).
    pub workload: Option<String>,
    /// The pod is already being deleted.
    pub deleting: bool,
    /// A VerticalPodAutoscaler (not in `Off` mode) targets the pod's workload.
    pub vpa_targeted: bool,
}

/// Why an eviction passes untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Not a targeted pod (annotation, namespace policy or an override).
    NotTargeted,
    /// A targeted pod, but the evicter is opted out (`evicters` in the config).
    EvicterOptedOut,
    /// A dry run changes nothing.
    DryRun,
    /// steward's own eviction, or a caller's retry after steward has drained the pod.
    Drained,
    /// The pod is unknown (already gone) or already being deleted.
    Gone,
    /// The drain is overdue (its maximum wait plus [`OVERDUE_MARGIN`] has passed):
    /// the controller is not running, so the eviction goes through without grace
    /// rather than leave the caller retrying forever.
    Overdue,
    /// Owned by a controller steward does not know (not a ReplicaSet, StatefulSet,
    /// DaemonSet or Job): what a label change does to it is unknown.
    UnsupportedOwner,
}

/// The webhook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let the eviction through.
    Allow(Pass),
    /// Refuse with 429 and record the request on the pod (the drain starts).
    StartDrain {
        /// `Kind/name` to record.
        workload: Option<String>,
    },
    /// Refuse with 429: a drain of this pod is already under way.
    InProgress(Phase),
    /// Refuse with 429: the last final eviction was refused; no drain before this.
    BackingOff(Timestamp),
}

impl Decision {
    /// Label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Allow(Pass::NotTargeted) => "allow_not_targeted",
            Self::Allow(Pass::EvicterOptedOut) => "allow_evicter_opted_out",
            Self::Allow(Pass::DryRun) => "allow_dry_run",
            Self::Allow(Pass::Drained) => "allow_drained",
            Self::Allow(Pass::Gone) => "allow_gone",
            Self::Allow(Pass::UnsupportedOwner) => "allow_unsupported_owner",
            Self::Allow(Pass::Overdue) => "allow_overdue",
            Self::StartDrain { .. } => "deny_start_drain",
            Self::InProgress(_) => "deny_in_progress",
            Self::BackingOff(_) => "deny_backing_off",
        }
    }
}

/// How long past its maximum wait a drain may stay unfinished before the webhook
/// stops refusing evictions of the pod.
pub const OVERDUE_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Decides on one eviction. Pure.
pub fn decide(
    attempt: Attempt<'_>,
    pod: Option<&PodFacts>,
    config: &Config,
    now: Timestamp,
) -> Decision {
    let Some(pod) = pod else {
        return Decision::Allow(Pass::Gone);
    };
    if pod.deleting {
        return Decision::Allow(Pass::Gone);
    }
    if let Some(record) = Record::read(&pod.labels, &pod.annotations) {
        // Once a drain is under way it is finished whatever the config says now.
        let (settings, _) = config.settings(PodRef {
            namespace: attempt.namespace,
            workload: record.workload.as_deref(),
            annotations: &pod.annotations,
        });
        let waits_for_job = workload::handling_of_workload(record.workload.as_deref())
            == Some(Handling::AwaitCompletion);
        let max = if waits_for_job {
            settings.job_max_wait
        } else {
            settings.max_wait
        };
        let limit = max + OVERDUE_MARGIN;
        // A StatefulSet pod waiting its turn is kept alive by the controller's heartbeat.
        let overdue = record.last_seen().is_some_and(|t| {
            std::time::Duration::try_from(now.duration_since(t)).is_ok_and(|d| d > limit)
        });
        return match record.phase {
            Phase::Evicting => Decision::Allow(Pass::Drained),
            _ if overdue => Decision::Allow(Pass::Overdue),
            _ if attempt.dry_run => Decision::Allow(Pass::DryRun),
            phase => Decision::InProgress(phase),
        };
    }
    let workload = pod.workload.as_deref();
    let targeted = config.targets(
        PodRef {
            namespace: attempt.namespace,
            workload,
            annotations: &pod.annotations,
        },
        pod.vpa_targeted,
    );
    if !targeted {
        return Decision::Allow(Pass::NotTargeted);
    }
    // A dry run is allowed whoever asks (it writes nothing); checked before the
    // evicter so that steward's own dry runs, made before the webhook's cache has
    // seen the drain record, never count as an opted-out evicter's eviction.
    if attempt.dry_run {
        return Decision::Allow(Pass::DryRun);
    }
    if !config.drains_evicter(attempt.requester) {
        return Decision::Allow(Pass::EvicterOptedOut);
    }
    if workload::handling(pod.owner_kind.as_deref()).is_none() {
        return Decision::Allow(Pass::UnsupportedOwner);
    }
    if let Some(until) = state::backing_off(&pod.annotations, now) {
        return Decision::BackingOff(until);
    }
    Decision::StartDrain {
        workload: pod.workload.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::{ANN_NOT_BEFORE, ANN_REQUESTED_AT, LABEL_PHASE};

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn pod(annotations: &[(&str, &str)], labels: &[(&str, &str)], owner: Option<&str>) -> PodFacts {
        let m = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        PodFacts {
            labels: m(labels),
            annotations: m(annotations),
            owner_kind: owner.map(String::from),
            workload: owner.map(|k| format!("{k}/web")),
            deleting: false,
            vpa_targeted: false,
        }
    }

    #[test]
    fn evicters_opted_out_pass_through() {
        let c = Config::parse(
            "version: 1\nevicters:\n  include: [\"system:serviceaccount:*\"]\n  exclude: [\"system:serviceaccount:kube-system:karpenter\"]\n",
        )
        .unwrap();
        let vpa = [("vpa-managed", "true")];
        let table = [
            ("system:serviceaccount:kube-system:vpa-updater", true),
            ("system:serviceaccount:kube-system:karpenter", false),
            ("alice@example.com", false),
        ];
        for (user, drained) in table {
            let attempt = Attempt {
                namespace: "shop",
                name: "web-1",
                dry_run: false,
                requester: user,
            };
            let d = decide(
                attempt,
                Some(&pod(&vpa, &[], Some("ReplicaSet"))),
                &c,
                now(),
            );
            assert_eq!(
                matches!(d, Decision::StartDrain { .. }),
                drained,
                "{user}: {d:?}"
            );
            // A drain under way is finished whoever retries.
            let d = decide(
                attempt,
                Some(&pod(&vpa, &[(LABEL_PHASE, "evicting")], None)),
                &c,
                now(),
            );
            assert_eq!(d, Decision::Allow(Pass::Drained), "{user}");
            // A dry run passes as a dry run, opted out or not.
            let d = decide(
                Attempt {
                    dry_run: true,
                    ..attempt
                },
                Some(&pod(&vpa, &[], Some("ReplicaSet"))),
                &c,
                now(),
            );
            assert_eq!(d, Decision::Allow(Pass::DryRun), "{user}");
        }
    }

    #[test]
    fn decisions() {
        let c = Config::default();
        let vpa = [("vpa-managed", "true")];
        let later = (now() + std::time::Duration::from_secs(60)).to_string();
        let earlier = (now() - std::time::Duration::from_secs(60)).to_string();
        // Default maximum wait 60 s + the 60 s margin.
        let long_ago = (now() - std::time::Duration::from_secs(121)).to_string();
        let mut deleting = pod(&vpa, &[], Some("ReplicaSet"));
        deleting.deleting = true;
        let table: Vec<(&str, Option<PodFacts>, bool, Decision)> = vec![
            ("unknown pod", None, false, Decision::Allow(Pass::Gone)),
            (
                "deleting",
                Some(deleting),
                false,
                Decision::Allow(Pass::Gone),
            ),
            (
                "no annotation",
                Some(pod(&[], &[], Some("ReplicaSet"))),
                false,
                Decision::Allow(Pass::NotTargeted),
            ),
            (
                "annotation false",
                Some(pod(&[("vpa-managed", "false")], &[], Some("ReplicaSet"))),
                false,
                Decision::Allow(Pass::NotTargeted),
            ),
            (
                "targeted",
                Some(pod(&vpa, &[], Some("ReplicaSet"))),
                false,
                Decision::StartDrain {
                    workload: Some("ReplicaSet/web".into()),
                },
            ),
            (
                "bare pod",
                Some(pod(&vpa, &[], None)),
                false,
                Decision::StartDrain { workload: None },
            ),
            (
                "targeted dry run",
                Some(pod(&vpa, &[], Some("ReplicaSet"))),
                true,
                Decision::Allow(Pass::DryRun),
            ),
            (
                "statefulset",
                Some(pod(&vpa, &[], Some("StatefulSet"))),
                false,
                Decision::StartDrain {
                    workload: Some("StatefulSet/web".into()),
                },
            ),
            (
                "job",
                Some(pod(&vpa, &[], Some("Job"))),
                false,
                Decision::StartDrain {
                    workload: Some("Job/web".into()),
                },
            ),
            (
                "unknown controller",
                Some(pod(&vpa, &[], Some("CloneSet"))),
                false,
                Decision::Allow(Pass::UnsupportedOwner),
            ),
            (
                "job pod requested 2 min ago: within jobMaxWait",
                Some(pod(
                    &[
                        ("vpa-managed", "true"),
                        (ANN_REQUESTED_AT, &long_ago),
                        ("steward.io/drain-workload", "Job/nightly"),
                    ],
                    &[(LABEL_PHASE, "isolated")],
                    Some("Job"),
                )),
                false,
                Decision::InProgress(Phase::Isolated),
            ),
            (
                "queued, old request, fresh heartbeat",
                Some(pod(
                    &[
                        ("vpa-managed", "true"),
                        (ANN_REQUESTED_AT, &long_ago),
                        ("steward.io/drain-queued-at", &earlier),
                    ],
                    &[(LABEL_PHASE, "requested")],
                    Some("StatefulSet"),
                )),
                false,
                Decision::InProgress(Phase::Requested),
            ),
            (
                "requested",
                Some(pod(&vpa, &[(LABEL_PHASE, "requested")], Some("ReplicaSet"))),
                false,
                Decision::InProgress(Phase::Requested),
            ),
            (
                "isolated",
                Some(pod(&vpa, &[(LABEL_PHASE, "isolated")], None)),
                false,
                Decision::InProgress(Phase::Isolated),
            ),
            (
                "isolated dry run",
                Some(pod(&vpa, &[(LABEL_PHASE, "isolated")], None)),
                true,
                Decision::Allow(Pass::DryRun),
            ),
            (
                "evicting",
                Some(pod(&vpa, &[(LABEL_PHASE, "evicting")], None)),
                false,
                Decision::Allow(Pass::Drained),
            ),
            (
                "isolated, recent",
                Some(pod(
                    &[("vpa-managed", "true"), (ANN_REQUESTED_AT, &earlier)],
                    &[(LABEL_PHASE, "isolated")],
                    None,
                )),
                false,
                Decision::InProgress(Phase::Isolated),
            ),
            (
                "isolated, overdue",
                Some(pod(
                    &[("vpa-managed", "true"), (ANN_REQUESTED_AT, &long_ago)],
                    &[(LABEL_PHASE, "isolated")],
                    None,
                )),
                false,
                Decision::Allow(Pass::Overdue),
            ),
            (
                "evicting, annotation since removed",
                Some(pod(&[], &[(LABEL_PHASE, "evicting")], None)),
                false,
                Decision::Allow(Pass::Drained),
            ),
            (
                "backing off",
                Some(pod(
                    &[("vpa-managed", "true"), (ANN_NOT_BEFORE, &later)],
                    &[],
                    Some("ReplicaSet"),
                )),
                false,
                Decision::BackingOff(later.parse().unwrap()),
            ),
            (
                "back-off over",
                Some(pod(
                    &[("vpa-managed", "true"), (ANN_NOT_BEFORE, &earlier)],
                    &[],
                    Some("ReplicaSet"),
                )),
                false,
                Decision::StartDrain {
                    workload: Some("ReplicaSet/web".into()),
                },
            ),
        ];
        for (what, p, dry_run, want) in table {
            let attempt = Attempt {
                namespace: "shop",
                name: "web-1",
                dry_run,
                requester: "system:serviceaccount:kube-system:vpa-updater",
            };
            assert_eq!(decide(attempt, p.as_ref(), &c, now()), want, "{what}");
        }
    }
}
