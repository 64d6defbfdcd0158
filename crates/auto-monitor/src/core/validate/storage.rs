//! `spec.storage` and `spec.retentionSize`.

use super::{Errors, is_quantity};
use crate::crd::{MonitoringStackSpec, Volume};

/// The volumes the spec asks for: Prometheus's and Grafana's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Volumes {
    /// Prometheus's TSDB.
    pub prometheus: Option<Volume>,
    /// Grafana's database.
    pub grafana: Option<Volume>,
}

/// Each volume's size a quantity; the deprecated `spec.storage.size` read as
/// `spec.storage.prometheus.size`, never together with it.
pub(super) fn check(spec: &MonitoringStackSpec, e: &mut Errors) -> Volumes {
    let Some(s) = &spec.storage else {
        return Volumes::default();
    };
    let old = s.size.as_ref().map(|size| Volume {
        size: size.clone(),
        storage_class_name: s.storage_class_name.clone(),
    });
    if old.is_none() && s.storage_class_name.is_some() {
        e.add(
            "spec.storage.storageClassName",
            "set spec.storage.prometheus.storageClassName (with its size) instead",
        );
    }
    if old.is_some() && s.prometheus.is_some() {
        e.add(
            "spec.storage.size",
            "set spec.storage.prometheus.size only (spec.storage.size is its older form)",
        );
    }
    let prometheus = s.prometheus.clone().or(old);
    let field = if s.prometheus.is_some() {
        "spec.storage.prometheus.size"
    } else {
        "spec.storage.size"
    };
    for (field, v) in [
        (field, &prometheus),
        ("spec.storage.grafana.size", &s.grafana),
    ] {
        if let Some(v) = v
            && !is_quantity(&v.size)
        {
            e.add(
                field,
                format!("\"{}\" is not a quantity such as 10Gi", v.size),
            );
        }
    }
    Volumes {
        prometheus,
        grafana: s.grafana.clone(),
    }
}

/// `spec.retentionSize`: a whole number and one of Prometheus's size units.
pub(super) fn retention_size(spec: &MonitoringStackSpec, e: &mut Errors) -> Option<String> {
    let v = spec.retention_size.as_ref()?;
    let unit = ["KB", "MB", "GB", "TB", "PB", "EB", "B"]
        .into_iter()
        .find(|u| v.ends_with(u));
    let ok = unit.is_some_and(|u| {
        let n = &v[..v.len() - u.len()];
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n.bytes().any(|b| b != b'0')
    });
    if !ok {
        e.add(
            "spec.retentionSize",
            format!("\"{v}\" is not a size such as 512MB or 8GB (units B, KB, MB, GB, TB, PB, EB)"),
        );
    }
    Some(v.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(spec: serde_json::Value) -> (Volumes, Option<String>, Vec<String>) {
        let spec: MonitoringStackSpec = serde_json::from_value(spec).unwrap_or_default();
        let mut e = Errors::default();
        let v = check(&spec, &mut e);
        let r = retention_size(&spec, &mut e);
        (v, r, e.0.into_iter().map(|f| f.field).collect())
    }

    fn vol(size: &str, class: Option<&str>) -> Option<Volume> {
        Some(Volume {
            size: size.into(),
            storage_class_name: class.map(String::from),
        })
    }

    #[test]
    fn volumes_and_retention_size() {
        let table: [(serde_json::Value, Volumes, Option<&str>, &[&str]); 9] = [
            (json!({}), Volumes::default(), None, &[]),
            (
                json!({"storage": {"prometheus": {"size": "10Gi", "storageClassName": "fast"}, "grafana": {"size": "1Gi"}}, "retentionSize": "8GB"}),
                Volumes {
                    prometheus: vol("10Gi", Some("fast")),
                    grafana: vol("1Gi", None),
                },
                Some("8GB"),
                &[],
            ),
            // The first form still means Prometheus's volume.
            (
                json!({"storage": {"size": "5Gi", "storageClassName": "slow"}}),
                Volumes {
                    prometheus: vol("5Gi", Some("slow")),
                    grafana: None,
                },
                None,
                &[],
            ),
            (
                json!({"storage": {"size": "5Gi", "prometheus": {"size": "6Gi"}}}),
                Volumes {
                    prometheus: vol("6Gi", None),
                    grafana: None,
                },
                None,
                &["spec.storage.size"],
            ),
            (
                json!({"storage": {"storageClassName": "slow"}}),
                Volumes::default(),
                None,
                &["spec.storage.storageClassName"],
            ),
            (
                json!({"storage": {"prometheus": {"size": "ten"}, "grafana": {"size": "1 Gi"}}}),
                Volumes {
                    prometheus: vol("ten", None),
                    grafana: vol("1 Gi", None),
                },
                None,
                &["spec.storage.prometheus.size", "spec.storage.grafana.size"],
            ),
            (
                json!({"storage": {"size": "x"}}),
                Volumes {
                    prometheus: vol("x", None),
                    grafana: None,
                },
                None,
                &["spec.storage.size"],
            ),
            (
                json!({"retentionSize": "8GiB"}),
                Volumes::default(),
                Some("8GiB"),
                &["spec.retentionSize"],
            ),
            (
                json!({"retentionSize": "0GB"}),
                Volumes::default(),
                Some("0GB"),
                &["spec.retentionSize"],
            ),
        ];
        for (spec, volumes, size, errors) in table {
            let (v, r, e) = run(spec.clone());
            let e: Vec<&str> = e.iter().map(String::as_str).collect();
            assert_eq!(
                (&v, r.as_deref(), e.as_slice()),
                (&volumes, size, errors),
                "{spec}"
            );
        }
        for good in ["512MB", "1B", "20TB"] {
            assert!(run(json!({"retentionSize": good})).2.is_empty(), "{good}");
        }
        for bad in ["MB", "1.5GB", "-1GB", "10"] {
            assert_eq!(
                run(json!({"retentionSize": bad})).2,
                ["spec.retentionSize"],
                "{bad}"
            );
        }
    }
}
