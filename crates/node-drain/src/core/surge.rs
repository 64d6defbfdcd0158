//! Make-before-break: whether a Deployment's pod gets its replacement started and
//! Ready before it leaves, instead of being evicted first. Pure.
//!
//! The mechanism is the Deployment's own rollout, as `kubectl rollout restart`
//! starts it (the pod template's `kubectl.kubernetes.io/restartedAt`): with
//! `maxUnavailable` 0 the Deployment controller surges a new pod, waits until it is
//! available, and only then removes the old one. Nothing steward creates can be
//! left behind by a crash: the surge is the Deployment's, and it converges to its
//! own replica count whatever happens to steward. The price is that a restart rolls
//! every pod of the Deployment, so it is used only where an eviction would leave
//! the workload with no ready pod (one replica) or could never happen at all (a
//! PodDisruptionBudget that allows no disruption). StatefulSets (a replacement
//! with the same name cannot run beside the old pod) and bare pods are evicted as
//! before.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The pod template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// What to do with a Deployment's pod before evicting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Surge {
    /// Restart the Deployment and wait for the rollout to remove the pod.
    Restart,
    /// Evict as usual, with why not.
    Evict(&'static str),
}

/// `deployment`'s pod, whose PodDisruptionBudget (if any) allows
/// `disruptions_allowed` now.
pub fn decide(deployment: &Deployment, disruptions_allowed: Option<i32>) -> Surge {
    let Some(spec) = &deployment.spec else {
        return Surge::Evict("the Deployment has no spec");
    };
    let replicas = spec.replicas.unwrap_or(1);
    if replicas > 1 && disruptions_allowed != Some(0) {
        return Surge::Evict("an eviction leaves other ready replicas");
    }
    if spec.paused == Some(true) {
        return Surge::Evict("the Deployment is paused: a restart would not roll");
    }
    let strategy = spec.strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return Surge::Evict("strategy Recreate stops the old pod before the new one starts");
    }
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".into());
    let unavailable = rolling
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&quarter);
    let surge = rolling
        .and_then(|r| r.max_surge.as_ref())
        .unwrap_or(&quarter);
    // As the Deployment controller resolves them: maxSurge rounds up,
    // maxUnavailable down.
    if scaled(unavailable, replicas, false) != Some(0) {
        return Surge::Evict(
            "maxUnavailable lets a restart stop a pod before its replacement is ready",
        );
    }
    if scaled(surge, replicas, true).is_none_or(|s| s < 1) {
        return Surge::Evict("maxSurge 0: a restart cannot start a replacement first");
    }
    Surge::Restart
}

fn scaled(v: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match v {
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(s) => {
            let pct: i32 = s.strip_suffix('%')?.parse().ok()?;
            let x = pct.checked_mul(total)?;
            Some(if round_up { (x + 99) / 100 } else { x / 100 })
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deploy(spec: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({ "metadata": { "name": "d" }, "spec": spec })).unwrap()
    }

    #[test]
    fn only_a_workload_an_eviction_would_empty_or_block_is_surged() {
        let rolling = |unavailable: serde_json::Value, surge: serde_json::Value| json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": unavailable, "maxSurge": surge } });
        let cases = [
            // One replica, default strategy (25 %: 0 unavailable, 1 surge).
            (json!({ "replicas": 1 }), None, Surge::Restart),
            (json!({}), None, Surge::Restart),
            (
                json!({ "replicas": 1, "strategy": rolling(json!(0), json!(1)) }),
                None,
                Surge::Restart,
            ),
            // Three replicas: another stays ready, unless the PDB allows nothing.
            (
                json!({ "replicas": 3 }),
                None,
                Surge::Evict("an eviction leaves other ready replicas"),
            ),
            (
                json!({ "replicas": 3 }),
                Some(1),
                Surge::Evict("an eviction leaves other ready replicas"),
            ),
            (
                json!({ "replicas": 3, "strategy": rolling(json!(0), json!("50%")) }),
                Some(0),
                Surge::Restart,
            ),
            // 25 % of 4 is 1 unavailable: a restart would stop one first.
            (
                json!({ "replicas": 4 }),
                Some(0),
                Surge::Evict(
                    "maxUnavailable lets a restart stop a pod before its replacement is ready",
                ),
            ),
            (
                json!({ "replicas": 1, "strategy": { "type": "Recreate" } }),
                None,
                Surge::Evict("strategy Recreate stops the old pod before the new one starts"),
            ),
            (
                json!({ "replicas": 1, "strategy": rolling(json!(1), json!(0)) }),
                None,
                Surge::Evict(
                    "maxUnavailable lets a restart stop a pod before its replacement is ready",
                ),
            ),
            (
                json!({ "replicas": 1, "strategy": rolling(json!("0%"), json!("0%")) }),
                None,
                Surge::Evict("maxSurge 0: a restart cannot start a replacement first"),
            ),
            (
                json!({ "replicas": 1, "paused": true }),
                None,
                Surge::Evict("the Deployment is paused: a restart would not roll"),
            ),
        ];
        for (spec, allowed, want) in cases {
            assert_eq!(
                decide(&deploy(spec.clone()), allowed),
                want,
                "{spec} allowed={allowed:?}"
            );
        }
    }
}
