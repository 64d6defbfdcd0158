//! The facts of a pod the webhook's decision reads, from its metadata (the
//! cache's slimmed copy or a fresh read). Pure.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;

use crate::core::admission::PodFacts;

/// The facts the decision needs, from pod metadata.
pub fn facts(meta: &ObjectMeta) -> PodFacts {
    let owner = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let labels = meta.labels.clone().unwrap_or_default();
    let workload = owner.map(|o| workload_of(&o.kind, &o.name, &labels));
    PodFacts {
        annotations: meta.annotations.clone().unwrap_or_default(),
        owner_kind: owner.map(|o| o.kind.clone()),
        workload,
        deleting: meta.deletion_timestamp.is_some(),
        vpa_targeted: false,
        labels,
    }
}

/// `Deployment/web` for a ReplicaSet `web-<pod-template-hash>`, else `Kind/name`.
pub fn workload_of(kind: &str, name: &str, labels: &BTreeMap<String, String>) -> String {
    if kind == "ReplicaSet"
        && let Some(hash) = labels.get("pod-template-hash")
        && let Some(deploy) = name.strip_suffix(&format!("-{hash}"))
    {
        return format!("Deployment/{deploy}");
    }
    format!("{kind}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_of_owners() {
        let hash = |h: &str| BTreeMap::from([("pod-template-hash".to_string(), h.to_string())]);
        let table = [
            ("ReplicaSet", "web-7d9f8", hash("7d9f8"), "Deployment/web"),
            (
                "ReplicaSet",
                "web-7d9f8",
                hash("other"),
                "ReplicaSet/web-7d9f8",
            ),
            ("ReplicaSet", "web", BTreeMap::new(), "ReplicaSet/web"),
            ("StatefulSet", "db", hash("x"), "StatefulSet/db"),
            ("Job", "backup-1", BTreeMap::new(), "Job/backup-1"),
        ];
        for (kind, name, labels, want) in table {
            assert_eq!(workload_of(kind, name, &labels), want, "{kind}/{name}");
        }
    }
}
