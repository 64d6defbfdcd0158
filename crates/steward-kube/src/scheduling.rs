//! Whether a pod may be placed on a node, by the scheduler's own rules for the
//! parts steward needs: taints and tolerations (`k8s.io/api/core/v1`
//! `Toleration.ToleratesTaint`), `nodeSelector`, readiness and cordon. One matcher
//! for every system (replacement room, worker room, exporter onboarding).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};

/// The scheduler's rule for one toleration and one taint: an empty effect
/// matches every effect, an empty key every key; operator `Exists` matches any
/// value, `Equal` (or empty) only the same value; any other operator nothing.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// Whether a taint keeps a pod off the node when scheduling: `NoSchedule` and
/// `NoExecute` do, `PreferNoSchedule` only discourages.
pub fn repels(taint: &Taint) -> bool {
    matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
}

/// The taints of `taints` that repel a pod with `tolerations`.
pub fn untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Vec<&'a Taint> {
    taints
        .iter()
        .filter(|t| repels(t) && !tolerations.iter().any(|tol| tolerates(tol, t)))
        .collect()
}

/// Whether the node's labels hold every `key=value` of a `nodeSelector`.
pub fn selector_matches(
    labels: &BTreeMap<String, String>,
    selector: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether a pod with `tolerations` and `selector` may be scheduled on `node` now:
/// Ready, not cordoned, its labels matching, every repelling taint tolerated.
pub fn admits(
    node: &Node,
    tolerations: &[Toleration],
    selector: &BTreeMap<String, String>,
) -> bool {
    let spec = node.spec.as_ref();
    crate::node::is_ready(node)
        && !spec.and_then(|s| s.unschedulable).unwrap_or(false)
        && selector_matches(
            node.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
            selector,
        )
        && untolerated(
            spec.and_then(|s| s.taints.as_deref()).unwrap_or_default(),
            tolerations,
        )
        .is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(String::from),
            effect: effect.into(),
            ..Taint::default()
        }
    }

    fn tol(
        key: Option<&str>,
        op: Option<&str>,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Toleration {
        Toleration {
            key: key.map(String::from),
            operator: op.map(String::from),
            value: value.map(String::from),
            effect: effect.map(String::from),
            ..Toleration::default()
        }
    }

    /// Every edge case the four earlier copies disagreed on, against upstream's rule.
    #[test]
    fn toleration_matching() {
        let gpu = taint("gpu", Some("true"), "NoSchedule");
        let bare = taint("dedicated", None, "NoExecute");
        let table = [
            (
                "Exists with no key tolerates everything",
                tol(None, Some("Exists"), None, None),
                &gpu,
                true,
            ),
            (
                "empty key string, Exists",
                tol(Some(""), Some("Exists"), None, None),
                &gpu,
                true,
            ),
            (
                "same key, Exists",
                tol(Some("gpu"), Some("Exists"), None, None),
                &gpu,
                true,
            ),
            (
                "same key and value, Equal",
                tol(Some("gpu"), Some("Equal"), Some("true"), Some("NoSchedule")),
                &gpu,
                true,
            ),
            (
                "operator omitted means Equal",
                tol(Some("gpu"), None, Some("true"), None),
                &gpu,
                true,
            ),
            (
                "other value",
                tol(Some("gpu"), Some("Equal"), Some("false"), None),
                &gpu,
                false,
            ),
            (
                "other effect",
                tol(Some("gpu"), Some("Exists"), None, Some("NoExecute")),
                &gpu,
                false,
            ),
            (
                "empty effect string matches any effect",
                tol(Some("gpu"), Some("Exists"), None, Some("")),
                &gpu,
                true,
            ),
            (
                "other key",
                tol(Some("other"), Some("Exists"), None, None),
                &gpu,
                false,
            ),
            (
                "Equal with no value tolerates a taint with no value",
                tol(Some("dedicated"), Some("Equal"), None, None),
                &bare,
                true,
            ),
            (
                "Equal with empty value too",
                tol(Some("dedicated"), Some("Equal"), Some(""), None),
                &bare,
                true,
            ),
            (
                "Equal with a value does not tolerate a taint with none",
                tol(Some("dedicated"), Some("Equal"), Some("x"), None),
                &bare,
                false,
            ),
            // The API refuses an empty key with Equal; upstream's rule matches any key then.
            (
                "empty key, Equal: any key with that value",
                tol(None, Some("Equal"), Some("true"), None),
                &gpu,
                true,
            ),
            (
                "unknown operator",
                tol(Some("gpu"), Some("Gt"), Some("true"), None),
                &gpu,
                false,
            ),
        ];
        for (what, t, taint, want) in table {
            assert_eq!(tolerates(&t, taint), want, "{what}");
        }
    }

    #[test]
    fn repelling_taints() {
        let taints = [
            taint("a", None, "NoSchedule"),
            taint("b", None, "PreferNoSchedule"),
            taint("c", None, "NoExecute"),
        ];
        let left: Vec<&str> = untolerated(&taints, &[])
            .iter()
            .map(|t| t.key.as_str())
            .collect();
        assert_eq!(left, ["a", "c"], "PreferNoSchedule never repels");
        let left = untolerated(&taints, &[tol(Some("a"), Some("Exists"), None, None)]);
        assert_eq!(left.len(), 1);
        assert!(untolerated(&taints, &[tol(None, Some("Exists"), None, None)]).is_empty());
    }

    #[test]
    fn nodes_that_admit() {
        let node = |ready: &str, cordoned: bool, taints: Vec<Taint>| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": { "name": "n", "labels": { "pool": "a" } },
                "spec": { "unschedulable": cordoned, "taints": taints },
                "status": { "conditions": [{ "type": "Ready", "status": ready }] }
            }))
            .unwrap()
        };
        let pool_a: BTreeMap<String, String> = [("pool".to_string(), "a".to_string())].into();
        let pool_b: BTreeMap<String, String> = [("pool".to_string(), "b".to_string())].into();
        let none = BTreeMap::new();
        let gpu = taint("gpu", None, "NoSchedule");
        let table = [
            (
                "ready, plain",
                node("True", false, vec![]),
                vec![],
                &none,
                true,
            ),
            (
                "selector matches",
                node("True", false, vec![]),
                vec![],
                &pool_a,
                true,
            ),
            (
                "selector differs",
                node("True", false, vec![]),
                vec![],
                &pool_b,
                false,
            ),
            (
                "not ready",
                node("False", false, vec![]),
                vec![],
                &none,
                false,
            ),
            ("cordoned", node("True", true, vec![]), vec![], &none, false),
            (
                "tainted",
                node("True", false, vec![gpu.clone()]),
                vec![],
                &none,
                false,
            ),
            (
                "tainted, tolerated",
                node("True", false, vec![gpu]),
                vec![tol(Some("gpu"), Some("Exists"), None, None)],
                &none,
                true,
            ),
        ];
        for (what, n, tols, sel, want) in table {
            assert_eq!(admits(&n, &tols, sel), want, "{what}");
        }
    }
}
