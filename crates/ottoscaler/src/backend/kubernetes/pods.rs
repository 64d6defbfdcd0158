//! Worker pods as data: what a pod says about its worker (phase, failure class, exit
//! code) and the pod for a worker plan. Pure, table-tested; the Kubernetes backend
//! does the I/O around it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::ObjectMeta;

use crate::core::clock::now_ms;
use crate::core::retry::FailureClass;
use crate::core::teams::Cost;
use crate::core::worker::{ANNOTATION_BUSY, Phase, WorkerLabels, WorkerObs, WorkerPlan};

fn ts_ms(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> i64 {
    t.map_or(0, |t| t.0.as_millisecond())
}

/// Why a failed (or stuck Pending) pod failed, from its status. Pure.
pub fn classify(pod: &Pod) -> (Option<FailureClass>, Option<i32>) {
    let Some(st) = pod.status.as_ref() else {
        return (None, None);
    };
    let container = st.container_statuses.as_ref().and_then(|c| c.first());
    let terminated = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    let waiting = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref());
    let code = terminated.map(|t| t.exit_code);
    let phase = st.phase.as_deref().unwrap_or("Pending");
    if phase == "Pending" {
        let pull = waiting.and_then(|w| w.reason.as_deref()).is_some_and(|r| {
            matches!(
                r,
                "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull"
            )
        });
        return (pull.then_some(FailureClass::ImagePull), None);
    }
    if phase != "Failed" {
        return (None, code);
    }
    let disruption = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
        .and_then(|c| c.reason.as_deref());
    let class = match (
        st.reason.as_deref(),
        disruption,
        terminated.and_then(|t| t.reason.as_deref()),
        code,
    ) {
        (Some("Evicted"), ..)
        | (
            _,
            Some("EvictionByEvictionAPI" | "PreemptionByScheduler" | "TerminationByKubelet"),
            ..,
        ) => FailureClass::Evicted,
        (Some("NodeLost" | "Shutdown" | "NodeShutdown" | "UnexpectedAdmissionError"), ..)
        | (_, Some("DeletionByTaintManager"), ..) => FailureClass::NodeLost,
        (_, _, Some("OOMKilled"), _) => FailureClass::OomKilled,
        (_, _, _, Some(c)) if c != 0 => FailureClass::ExitCode(c),
        _ => FailureClass::NodeLost,
    };
    (Some(class), code)
}

/// Why a pod has no node yet, from its PodScheduled=False condition: the scheduler's
/// message (for example `0/3 nodes are available: 3 Insufficient cpu.`), else its
/// reason. `None` once the pod is bound to a node or when the scheduler has not said
/// anything. Pure.
pub fn unschedulable(pod: &Pod) -> Option<String> {
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
    {
        return None;
    }
    let st = pod.status.as_ref()?;
    if st.phase.as_deref().is_some_and(|p| p != "Pending") {
        return None;
    }
    let c = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    let said = [c.message.as_deref(), c.reason.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|t| !t.is_empty());
    Some(said.unwrap_or("unschedulable").to_string())
}

/// A worker pod as the scaler sees it; `None` for pods without worker labels. Pure.
pub fn observe(pod: &Pod) -> Option<WorkerObs> {
    let labels = WorkerLabels::from_map(pod.metadata.labels.as_ref()?)?;
    let phase_s = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let mut phase = match phase_s {
        "Running" | "Unknown" => Phase::Running,
        "Succeeded" => Phase::Succeeded,
        "Failed" => Phase::Failed,
        _ => Phase::Pending,
    };
    if pod.metadata.deletion_timestamp.is_some() && matches!(phase, Phase::Pending | Phase::Running)
    {
        phase = Phase::Terminating;
    }
    let (failure, exit_code) = classify(pod);
    Some(WorkerObs {
        name: pod.name_any(),
        labels,
        phase,
        failure,
        unschedulable: if phase == Phase::Pending {
            unschedulable(pod)
        } else {
            None
        },
        exit_code: if phase == Phase::Succeeded {
            Some(exit_code.unwrap_or(0))
        } else {
            exit_code
        },
        busy: pod
            .annotations()
            .get(ANNOTATION_BUSY)
            .is_some_and(|v| v == "true"),
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        created_ms: ts_ms(pod.metadata.creation_timestamp.as_ref()),
        cost: Cost::of(&requests(pod)),
    })
}

/// The worker container's requests as quantity strings.
fn requests(pod: &Pod) -> BTreeMap<String, String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default()
}

/// Splits a `timestamps=true` log line into (ms since the epoch, text).
pub fn split_timestamp(line: &str) -> (i64, &str) {
    line.split_once(' ')
        .and_then(|(ts, rest)| {
            ts.parse::<jiff::Timestamp>()
                .ok()
                .map(|t| (t.as_millisecond(), rest))
        })
        .unwrap_or((now_ms(), line))
}

fn quantities(m: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!m.is_empty()).then(|| {
        m.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

/// The pod for a worker. Pure.
pub fn pod_for(w: &WorkerPlan, owner: OwnerReference) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(w.name.clone()),
            labels: Some(w.labels.to_map()),
            annotations: (!w.annotations.is_empty()).then(|| w.annotations.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            termination_grace_period_seconds: Some(
                i64::try_from(w.grace.as_secs()).unwrap_or(i64::MAX),
            ),
            node_selector: (!w.node_selector.is_empty()).then(|| w.node_selector.clone()),
            tolerations: (!w.tolerations.is_empty()).then(|| w.tolerations.clone()),
            automount_service_account_token: Some(false),
            containers: vec![Container {
                name: "worker".into(),
                image: Some(w.image.clone()),
                command: (!w.command.is_empty()).then(|| w.command.clone()),
                env: Some(
                    w.env
                        .iter()
                        .map(|(k, v)| EnvVar {
                            name: k.clone(),
                            value: Some(v.clone()),
                            ..EnvVar::default()
                        })
                        .collect(),
                ),
                resources: Some(ResourceRequirements {
                    requests: quantities(&w.requests),
                    limits: quantities(&w.limits),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "r-a-1", "labels": { "steward.io/ottoscaler": "worker", "steward.io/pipeline-run": "r", "steward.io/stage": "a", "steward.io/attempt": "2" } },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn classify_table() {
        let term = |code: i32, reason: &str| json!({ "phase": "Failed", "containerStatuses": [{ "name": "worker", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": { "terminated": { "exitCode": code, "reason": reason } } }] });
        let cases = vec![
            (json!({ "phase": "Running" }), Phase::Running, None),
            (json!({ "phase": "Succeeded" }), Phase::Succeeded, None),
            (
                term(3, "Error"),
                Phase::Failed,
                Some(FailureClass::ExitCode(3)),
            ),
            (
                term(137, "OOMKilled"),
                Phase::Failed,
                Some(FailureClass::OomKilled),
            ),
            (
                json!({ "phase": "Failed", "reason": "Evicted" }),
                Phase::Failed,
                Some(FailureClass::Evicted),
            ),
            (
                json!({ "phase": "Failed", "reason": "NodeLost" }),
                Phase::Failed,
                Some(FailureClass::NodeLost),
            ),
            (
                json!({ "phase": "Failed", "conditions": [{ "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager" }] }),
                Phase::Failed,
                Some(FailureClass::NodeLost),
            ),
            (
                json!({ "phase": "Pending", "containerStatuses": [{ "name": "worker", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": { "waiting": { "reason": "ImagePullBackOff" } } }] }),
                Phase::Pending,
                Some(FailureClass::ImagePull),
            ),
        ];
        for (status, phase, failure) in cases {
            let o = observe(&pod(status.clone())).unwrap();
            assert_eq!((o.phase, o.failure), (phase, failure), "{status}");
            assert_eq!((o.labels.stage.as_str(), o.labels.attempt), ("a", 2));
        }
    }

    #[test]
    fn unschedulable_table() {
        let cond = |status: &str, reason: &str, message: &str| json!({ "type": "PodScheduled", "status": status, "reason": reason, "message": message });
        let msg =
            "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available.";
        let cases = vec![
            (json!({ "phase": "Pending" }), None, None),
            (
                json!({ "phase": "Pending", "conditions": [cond("False", "Unschedulable", msg)] }),
                None,
                Some(msg),
            ),
            (
                json!({ "phase": "Pending", "conditions": [cond("False", "Unschedulable", "")] }),
                None,
                Some("Unschedulable"),
            ),
            (
                json!({ "phase": "Pending", "conditions": [cond("False", "", "")] }),
                None,
                Some("unschedulable"),
            ),
            (
                json!({ "phase": "Pending", "conditions": [cond("True", "", "")] }),
                Some("n1"),
                None,
            ),
            // Bound to a node already: whatever the condition still says, it has one.
            (
                json!({ "phase": "Pending", "conditions": [cond("False", "Unschedulable", msg)] }),
                Some("n1"),
                None,
            ),
            (
                json!({ "phase": "Running", "conditions": [cond("False", "Unschedulable", msg)] }),
                None,
                None,
            ),
        ];
        for (status, node, want) in cases {
            let mut p = pod(status.clone());
            if let Some(n) = node {
                p.spec = Some(PodSpec {
                    node_name: Some(n.into()),
                    ..PodSpec::default()
                });
            }
            assert_eq!(unschedulable(&p).as_deref(), want, "{status} on {node:?}");
            let o = observe(&p).unwrap();
            assert_eq!(o.unschedulable.as_deref(), want, "{status} on {node:?}");
        }
    }

    #[test]
    fn timestamps_are_split() {
        let (ts, text) = split_timestamp("2025-01-06T10:00:00.5Z hello world");
        assert_eq!((ts, text), (1_736_157_600_500, "hello world"));
        assert_eq!(split_timestamp("no-timestamp").1, "no-timestamp");
    }
}
