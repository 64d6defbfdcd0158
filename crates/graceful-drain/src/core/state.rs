//! A drain's state lives on the pod itself, so any replica that becomes leader
//! carries on where the last one stopped, and nothing is kept anywhere else.
//!
//! - label `steward.io/drain`: `requested` (the webhook saw an eviction), `isolated`
//!   (out of the Service selectors), `evicting` (the controller's own eviction is
//!   under way; the webhook lets it through);
//! - annotations `steward.io/drain-*`: when, the caller's grace period, the workload,
//!   and the labels taken away (to restore them).
//!
//! Everything here is pure: reading the record, the patches, and when to evict.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::core::config::Settings;
use crate::probe::Reading;

/// Label holding the phase; a label so the controller can watch only draining pods.
pub const LABEL_PHASE: &str = "steward.io/drain";
/// When the webhook saw the eviction (RFC 3339).
pub const ANN_REQUESTED_AT: &str = "steward.io/drain-requested-at";
/// Who asked for the eviction.
pub const ANN_REQUESTER: &str = "steward.io/drain-requester";
/// The caller's grace period, if it gave one.
pub const ANN_GRACE: &str = "steward.io/drain-grace-seconds";
/// `Kind/name` of the pod's workload, recorded before isolation takes the owner away.
pub const ANN_WORKLOAD: &str = "steward.io/drain-workload";
/// When the pod left the Service selectors (RFC 3339).
pub const ANN_ISOLATED_AT: &str = "steward.io/drain-isolated-at";
/// The labels taken away, as a JSON object.
pub const ANN_REMOVED_LABELS: &str = "steward.io/drain-removed-labels";
/// A StatefulSet pod waiting its turn: the controller's last heartbeat (RFC 3339).
pub const ANN_QUEUED_AT: &str = "steward.io/drain-queued-at";
/// After a refused final eviction: no new drain of this pod before this time.
pub const ANN_NOT_BEFORE: &str = "steward.io/drain-not-before";

/// Where a drain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The webhook recorded an eviction; nothing was changed yet.
    Requested,
    /// Out of load balancing, waiting until drained.
    Isolated,
    /// The controller's eviction is under way.
    Evicting,
}

impl Phase {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Isolated => "isolated",
            Self::Evicting => "evicting",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "requested" => Some(Self::Requested),
            "isolated" => Some(Self::Isolated),
            "evicting" => Some(Self::Evicting),
            _ => None,
        }
    }
}

/// A drain as recorded on the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The phase.
    pub phase: Phase,
    /// When the eviction was asked for.
    pub requested_at: Option<Timestamp>,
    /// When the pod was isolated.
    pub isolated_at: Option<Timestamp>,
    /// The last heartbeat of a pod waiting its turn.
    pub queued_at: Option<Timestamp>,
    /// The caller's grace period.
    pub grace: Option<u32>,
    /// `Kind/name` of the workload.
    pub workload: Option<String>,
    /// Labels taken away by isolation.
    pub removed_labels: BTreeMap<String, String>,
}

impl Record {
    /// Reads the record from a pod's labels and annotations; `None` when the pod is
    /// not draining. An unknown phase value reads as `Requested`'s absence: `None`.
    pub fn read(
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Option<Self> {
        let phase = Phase::parse(labels.get(LABEL_PHASE)?)?;
        let ts = |k: &str| annotations.get(k).and_then(|v| v.parse::<Timestamp>().ok());
        Some(Self {
            phase,
            requested_at: ts(ANN_REQUESTED_AT),
            isolated_at: ts(ANN_ISOLATED_AT),
            queued_at: ts(ANN_QUEUED_AT),
            grace: annotations.get(ANN_GRACE).and_then(|v| v.parse().ok()),
            workload: annotations.get(ANN_WORKLOAD).cloned(),
            removed_labels: annotations
                .get(ANN_REMOVED_LABELS)
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_default(),
        })
    }
}

impl Record {
    /// The last sign of life of the drain: the request, or a later queue heartbeat.
    pub fn last_seen(&self) -> Option<Timestamp> {
        self.requested_at.max(self.queued_at)
    }
}

/// Merge patch renewing a queued pod's heartbeat.
pub fn queued_patch(now: Timestamp) -> Value {
    json!({ "metadata": { "annotations": { ANN_QUEUED_AT: now.to_string() } } })
}

/// The back-off recorded after a refused eviction, if it is still running at `now`.
pub fn backing_off(annotations: &BTreeMap<String, String>, now: Timestamp) -> Option<Timestamp> {
    annotations
        .get(ANN_NOT_BEFORE)
        .and_then(|v| v.parse::<Timestamp>().ok())
        .filter(|t| *t > now)
}

/// Merge patch recording an eviction request (the webhook's only write).
pub fn request_patch(
    now: Timestamp,
    requester: &str,
    grace: Option<u32>,
    workload: Option<&str>,
) -> Value {
    let mut ann = Map::new();
    ann.insert(ANN_REQUESTED_AT.into(), json!(now.to_string()));
    ann.insert(ANN_REQUESTER.into(), json!(requester));
    ann.insert(ANN_GRACE.into(), json!(grace.map(|g| g.to_string())));
    ann.insert(ANN_WORKLOAD.into(), json!(workload));
    ann.insert(ANN_NOT_BEFORE.into(), Value::Null);
    json!({ "metadata": { "labels": { LABEL_PHASE: Phase::Requested.as_str() }, "annotations": ann } })
}

/// The labels that put this pod behind a Service: the keys of every selector that
/// selects it. Removing them takes the pod out of those Services' EndpointSlices.
pub fn service_labels(
    pod_labels: &BTreeMap<String, String>,
    selectors: &[BTreeMap<String, String>],
) -> BTreeMap<String, String> {
    selectors
        .iter()
        .filter(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)))
        .flat_map(|sel| sel.keys())
        .filter_map(|k| pod_labels.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

/// Merge patch isolating the pod: remove `labels`, remember them, move to `isolated`.
/// `resource_version` makes it conditional: a pod changed meanwhile gives 409.
pub fn isolate_patch(
    labels: &BTreeMap<String, String>,
    now: Timestamp,
    resource_version: &str,
) -> Value {
    let mut l: Map<String, Value> = labels.keys().map(|k| (k.clone(), Value::Null)).collect();
    l.insert(LABEL_PHASE.into(), json!(Phase::Isolated.as_str()));
    json!({ "metadata": {
        "resourceVersion": resource_version,
        "labels": l,
        "annotations": {
            ANN_ISOLATED_AT: now.to_string(),
            ANN_REMOVED_LABELS: serde_json::to_string(labels).unwrap_or_default(),
        }
    } })
}

/// Merge patch moving to `evicting`.
pub fn evicting_patch() -> Value {
    json!({ "metadata": { "labels": { LABEL_PHASE: Phase::Evicting.as_str() } } })
}

/// Merge patch putting the pod back in service and removing every trace of the
/// drain; `not_before` starts a back-off.
pub fn restore_patch(removed: &BTreeMap<String, String>, not_before: Option<Timestamp>) -> Value {
    let mut l: Map<String, Value> = removed.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    l.insert(LABEL_PHASE.into(), Value::Null);
    let mut ann: Map<String, Value> = [
        ANN_REQUESTED_AT,
        ANN_REQUESTER,
        ANN_GRACE,
        ANN_WORKLOAD,
        ANN_ISOLATED_AT,
        ANN_REMOVED_LABELS,
        ANN_QUEUED_AT,
    ]
    .into_iter()
    .map(|k| (k.to_string(), Value::Null))
    .collect();
    ann.insert(
        ANN_NOT_BEFORE.into(),
        json!(not_before.map(|t| t.to_string())),
    );
    json!({ "metadata": { "labels": l, "annotations": ann } })
}

/// Why the controller evicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictReason {
    /// The probe read idle.
    Drained,
    /// The fixed delay passed (no probe configured).
    Delay,
    /// The maximum wait passed.
    MaxWait,
    /// A Job pod finished.
    Completed,
}

impl EvictReason {
    /// Label for metrics and Events.
    pub fn label(self) -> &'static str {
        match self {
            Self::Drained => "drained",
            Self::Delay => "delay",
            Self::MaxWait => "max_wait",
            Self::Completed => "job_finished",
        }
    }
}

/// The wait decision for an isolated pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Wait {
    /// Look again after this long.
    For(Duration),
    /// Ask the probe, then decide again with its reading.
    Probe,
    /// Evict now.
    Evict(EvictReason),
}

/// How often a busy pod is probed again.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// When to evict a pod isolated at `isolated_at`. Pure.
pub fn decide_wait(
    isolated_at: Timestamp,
    now: Timestamp,
    s: &Settings,
    reading: Option<&Reading>,
) -> Wait {
    let elapsed = Duration::try_from(now.duration_since(isolated_at)).unwrap_or_default();
    if elapsed >= s.max_wait {
        return Wait::Evict(EvictReason::MaxWait);
    }
    if elapsed < s.min_wait {
        return Wait::For(s.min_wait - elapsed);
    }
    let left = s.max_wait - elapsed;
    if s.probe.is_none() {
        return if elapsed >= s.delay {
            Wait::Evict(EvictReason::Delay)
        } else {
            Wait::For((s.delay - elapsed).min(left))
        };
    }
    match reading {
        None => Wait::Probe,
        Some(Reading::Idle) => Wait::Evict(EvictReason::Drained),
        Some(Reading::Busy(_) | Reading::Failed(_)) => Wait::For(PROBE_INTERVAL.min(left)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Probe, ProbeTarget, Reading};

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn settings(probe: bool) -> Settings {
        Settings {
            min_wait: Duration::from_secs(2),
            max_wait: Duration::from_secs(30),
            delay: Duration::from_secs(5),
            job_max_wait: Duration::from_secs(600),
            probe: probe.then(|| {
                ProbeTarget::PodPort(Probe {
                    port: 1,
                    path: "/".into(),
                    gauge: None,
                })
            }),
        }
    }

    #[test]
    fn wait_decisions() {
        let s = |p| settings(p);
        let busy = Reading::Busy(3.0);
        let failed = Reading::Failed("refused".into());
        let table: Vec<(bool, i64, Option<&Reading>, Wait)> = vec![
            (false, 0, None, Wait::For(Duration::from_secs(2))),
            (false, 1, None, Wait::For(Duration::from_secs(1))),
            (false, 2, None, Wait::For(Duration::from_secs(3))),
            (false, 5, None, Wait::Evict(EvictReason::Delay)),
            (false, 30, None, Wait::Evict(EvictReason::MaxWait)),
            (true, 1, None, Wait::For(Duration::from_secs(1))),
            (true, 2, None, Wait::Probe),
            (
                true,
                2,
                Some(&Reading::Idle),
                Wait::Evict(EvictReason::Drained),
            ),
            (true, 3, Some(&busy), Wait::For(PROBE_INTERVAL)),
            (true, 3, Some(&failed), Wait::For(PROBE_INTERVAL)),
            (true, 31, Some(&busy), Wait::Evict(EvictReason::MaxWait)),
            // A clock behind the isolation time waits the full minimum.
            (true, -5, None, Wait::For(Duration::from_secs(2))),
        ];
        for (probe, at, reading, want) in table {
            assert_eq!(
                decide_wait(t(0), t(at), &s(probe), reading),
                want,
                "probe {probe} at {at}s {reading:?}"
            );
        }
    }

    #[test]
    fn service_labels_are_the_keys_of_selectors_that_select_the_pod() {
        let m = |p: &[(&str, &str)]| -> BTreeMap<String, String> {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let pod = m(&[
            ("app", "web"),
            ("tier", "front"),
            ("pod-template-hash", "abc"),
        ]);
        let sels = vec![
            m(&[("app", "web")]),
            m(&[("app", "web"), ("tier", "front")]),
            m(&[("app", "db")]),
            m(&[]),
        ];
        assert_eq!(
            service_labels(&pod, &sels),
            m(&[("app", "web"), ("tier", "front")])
        );
        assert!(service_labels(&pod, &sels[2..]).is_empty());
    }

    #[test]
    fn patches_round_trip_through_the_record() {
        let removed: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let req = request_patch(
            t(0),
            "system:serviceaccount:kube-system:vpa-updater",
            Some(30),
            Some("Deployment/web"),
        );
        let iso = isolate_patch(&removed, t(1), "42");
        let mut labels = BTreeMap::new();
        let mut anns = BTreeMap::new();
        for p in [&req, &iso] {
            merge(&mut labels, &p["metadata"]["labels"]);
            merge(&mut anns, &p["metadata"]["annotations"]);
        }
        assert_eq!(iso["metadata"]["resourceVersion"], "42");
        let r = Record::read(&labels, &anns).unwrap();
        assert_eq!(r.phase, Phase::Isolated);
        assert_eq!((r.requested_at, r.isolated_at), (Some(t(0)), Some(t(1))));
        assert_eq!(r.grace, Some(30));
        assert_eq!(r.workload.as_deref(), Some("Deployment/web"));
        assert_eq!(r.removed_labels, removed);
        assert!(!labels.contains_key("app"));
        let restore = restore_patch(&removed, Some(t(9)));
        merge(&mut labels, &restore["metadata"]["labels"]);
        merge(&mut anns, &restore["metadata"]["annotations"]);
        assert_eq!(labels, removed, "labels back, phase gone");
        assert_eq!(anns.keys().collect::<Vec<_>>(), vec![ANN_NOT_BEFORE]);
        assert_eq!(backing_off(&anns, t(5)), Some(t(9)));
        assert_eq!(backing_off(&anns, t(9)), None);
        assert!(Record::read(&labels, &anns).is_none());
    }

    fn merge(into: &mut BTreeMap<String, String>, patch: &Value) {
        for (k, v) in patch.as_object().unwrap() {
            match v.as_str() {
                Some(s) => into.insert(k.clone(), s.to_string()),
                None => into.remove(k),
            };
        }
    }
}
