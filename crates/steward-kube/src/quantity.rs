//! Kubernetes resource quantities as numbers, for sums and comparisons.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CPU quantity in cores ("250m" -> 0.25).
pub fn parse_cpu(q: &Quantity) -> f64 {
    let s = q.0.trim();
    s.strip_suffix('m').map_or_else(
        || s.parse().unwrap_or(0.0),
        |m| m.parse::<f64>().unwrap_or(0.0) / 1000.0,
    )
}

/// Memory quantity in bytes ("1Gi", "500M", "128974848").
pub fn parse_bytes(q: &Quantity) -> f64 {
    let s = q.0.trim();
    let units: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, mult) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<f64>().unwrap_or(0.0) * mult;
        }
    }
    s.parse().unwrap_or(0.0)
}

/// Sum of the pod's container requests of `resource` ("cpu" in cores, "memory" in bytes).
pub fn pod_request(p: &Pod, resource: &str) -> f64 {
    let parse = if resource == "cpu" {
        parse_cpu
    } else {
        parse_bytes
    };
    p.spec.as_ref().map_or(0.0, |s| {
        s.containers
            .iter()
            .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get(resource))
            .map(parse)
            .sum()
    })
}

/// Pods that already ended (Succeeded or Failed) hold no resources.
pub fn is_finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}
