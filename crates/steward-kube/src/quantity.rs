//! Kubernetes resource quantities as numbers, for sums and comparisons.

use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A quantity as a number (cores or bytes): digits with an optional decimal point and
/// an optional suffix (`500m`, `2`, `1.5`, `256Mi`, `1G`); `None` for anything else,
/// so validation can name the field. No white space is accepted; the k8s-openapi
/// `Quantity` is an unchecked string, hence this parser. The API server returns
/// quantities in canonical form, which this covers.
pub fn parse(s: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 14] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("", 1.0),
    ];
    for (suf, mult) in SUFFIXES {
        if let Some(n) = s.strip_suffix(suf) {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                continue;
            }
            return n
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| v * mult);
        }
    }
    None
}

/// CPU quantity in cores ("250m" -> 0.25); 0 when malformed.
pub fn parse_cpu(q: &Quantity) -> f64 {
    parse(q.0.trim()).unwrap_or(0.0)
}

/// Memory quantity in bytes ("1Gi", "500M", "128974848"); 0 when malformed.
pub fn parse_bytes(q: &Quantity) -> f64 {
    parse(q.0.trim()).unwrap_or(0.0)
}

/// What the scheduler reserves for the pod ("cpu" in cores, "memory" in bytes), by
/// its formula (`k8s.io/component-helpers/resource.PodRequests`): the sum of the
/// containers and of restartable init containers (sidecars, which run throughout),
/// at least the largest one-shot init container plus the sidecars started before it,
/// plus the pod overhead.
pub fn pod_request(p: &Pod, resource: &str) -> f64 {
    let parse = if resource == "cpu" {
        parse_cpu
    } else {
        parse_bytes
    };
    let Some(spec) = p.spec.as_ref() else {
        return 0.0;
    };
    let req = |r: Option<&ResourceRequirements>| {
        r.and_then(|r| r.requests.as_ref()?.get(resource))
            .map_or(0.0, parse)
    };
    let mut total: f64 = spec
        .containers
        .iter()
        .map(|c| req(c.resources.as_ref()))
        .sum();
    let (mut sidecars, mut init_peak) = (0.0_f64, 0.0_f64);
    for c in spec.init_containers.iter().flatten() {
        let r = req(c.resources.as_ref());
        if c.restart_policy.as_deref() == Some("Always") {
            total += r;
            sidecars += r;
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(sidecars + r);
        }
    }
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get(resource))
        .map_or(0.0, parse);
    total.max(init_peak) + overhead
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({ "spec": v })).unwrap()
    }

    fn c(name: &str, cpu: &str) -> serde_json::Value {
        serde_json::json!({ "name": name, "resources": { "requests": { "cpu": cpu } } })
    }

    fn sidecar(name: &str, cpu: &str) -> serde_json::Value {
        let mut v = c(name, cpu);
        v["restartPolicy"] = "Always".into();
        v
    }

    #[test]
    fn pod_request_follows_the_scheduler() {
        let cases = [
            (
                "containers add up",
                serde_json::json!({ "containers": [c("a", "100m"), c("b", "250m")] }),
                0.35,
            ),
            (
                "no requests",
                serde_json::json!({ "containers": [{ "name": "a" }] }),
                0.0,
            ),
            (
                "a big init container dominates",
                serde_json::json!({ "containers": [c("a", "100m")], "initContainers": [c("i", "1")] }),
                1.0,
            ),
            (
                "a small init container does not",
                serde_json::json!({ "containers": [c("a", "500m")], "initContainers": [c("i", "200m")] }),
                0.5,
            ),
            (
                "sidecars run beside the containers",
                serde_json::json!({ "containers": [c("a", "500m")], "initContainers": [sidecar("s", "200m")] }),
                0.7,
            ),
            (
                "init after a sidecar counts the sidecar",
                serde_json::json!({ "containers": [c("a", "100m")], "initContainers": [sidecar("s", "200m"), c("i", "1")] }),
                1.2,
            ),
            (
                "init before a sidecar does not",
                serde_json::json!({ "containers": [c("a", "100m")], "initContainers": [c("i", "1"), sidecar("s", "200m")] }),
                1.0,
            ),
            (
                "overhead is added",
                serde_json::json!({ "containers": [c("a", "100m")], "overhead": { "cpu": "250m" } }),
                0.35,
            ),
        ];
        for (what, spec, want) in cases {
            let got = pod_request(&pod(spec), "cpu");
            assert!((got - want).abs() < 1e-9, "{what}: got {got}, want {want}");
        }
        assert!((pod_request(&Pod::default(), "cpu")).abs() < 1e-9);
    }

    #[test]
    fn strict_parse() {
        for (s, want) in [
            ("500m", Some(0.5)),
            ("2", Some(2.0)),
            ("1.5", Some(1.5)),
            ("256Mi", Some(268_435_456.0)),
            ("1G", Some(1e9)),
            ("", None),
            ("abc", None),
            ("-1", None),
            ("1Xi", None),
            ("1.2.3", None),
            (" 1Gi", None),
            ("Mi", None),
        ] {
            assert_eq!(parse(s), want, "{s}");
        }
    }

    #[test]
    fn quantities_parse() {
        assert!((parse_cpu(&Quantity("250m".into())) - 0.25).abs() < 1e-9);
        assert!((parse_cpu(&Quantity("2".into())) - 2.0).abs() < 1e-9);
        assert!((parse_bytes(&Quantity("1Gi".into())) - 1024f64.powi(3)).abs() < 1e-3);
        assert!((parse_bytes(&Quantity("500M".into())) - 5e8).abs() < 1e-3);
    }
}
