//! `spec.prometheus: external`: steward runs no Prometheus of its own; a Prometheus
//! Operator `Prometheus` scrapes the stack's ServiceMonitor and evaluates its
//! PrometheusRule, and onboarding reads from it. This module decides which
//! `Prometheus` objects select both, with the operator's selector rules, and the URL
//! of the one onboarding reads.
//!
//! The operator's rules (`monitoring.coreos.com/v1` Prometheus spec): a **null**
//! `serviceMonitorSelector` / `ruleSelector` selects nothing and an empty one `{}`
//! everything; a null `serviceMonitorNamespaceSelector` / `ruleNamespaceSelector`
//! means the Prometheus's own namespace only and an empty one every namespace.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use serde_json::Value;

/// The fields of one operator `Prometheus` that decide selection and its address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperatorPrometheus {
    /// Namespace of the Prometheus object.
    pub namespace: String,
    /// Name of the Prometheus object.
    pub name: String,
    /// `spec.serviceMonitorSelector`.
    pub monitor_selector: Option<LabelSelector>,
    /// `spec.serviceMonitorNamespaceSelector`.
    pub monitor_namespaces: Option<LabelSelector>,
    /// `spec.ruleSelector`.
    pub rule_selector: Option<LabelSelector>,
    /// `spec.ruleNamespaceSelector`.
    pub rule_namespaces: Option<LabelSelector>,
    /// `spec.routePrefix`.
    pub route_prefix: Option<String>,
    /// `spec.web.tlsConfig` is set: the web port serves HTTPS.
    pub tls: bool,
}

impl OperatorPrometheus {
    /// From a listed object's namespace, name and `spec`. A selector the API server
    /// accepted but that does not parse as a LabelSelector is read as absent (it then
    /// selects nothing, which is reported).
    pub fn from_spec(namespace: &str, name: &str, spec: &Value) -> Self {
        let sel = |k: &str| {
            spec.get(k)
                .filter(|v| !v.is_null())
                .and_then(|v| serde_json::from_value(v.clone()).ok())
        };
        Self {
            namespace: namespace.into(),
            name: name.into(),
            monitor_selector: sel("serviceMonitorSelector"),
            monitor_namespaces: sel("serviceMonitorNamespaceSelector"),
            rule_selector: sel("ruleSelector"),
            rule_namespaces: sel("ruleNamespaceSelector"),
            route_prefix: spec
                .get("routePrefix")
                .and_then(Value::as_str)
                .map(String::from),
            tls: spec.pointer("/web/tlsConfig").is_some_and(|v| !v.is_null()),
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The operator's governing Service of this Prometheus's pods
    /// (`prometheus-operated`, port 9090), with the route prefix.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let prefix = self
            .route_prefix
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/');
        format!(
            "{scheme}://prometheus-operated.{}.svc:9090{prefix}",
            self.namespace
        )
    }
}

/// What the stack writes, as the selectors see it.
#[derive(Debug, Clone, Copy)]
pub struct Written<'a> {
    /// The stack's namespace (the objects' namespace).
    pub namespace: &'a str,
    /// Labels of that namespace.
    pub namespace_labels: &'a BTreeMap<String, String>,
    /// Labels of the ServiceMonitor.
    pub monitor_labels: &'a BTreeMap<String, String>,
    /// Labels of the PrometheusRule.
    pub rule_labels: &'a BTreeMap<String, String>,
}

/// Why `p` does not select an object of kind `what`, or `None` when it does.
fn misses(
    p: &OperatorPrometheus,
    what: &str,
    field: &str,
    selector: Option<&LabelSelector>,
    namespaces: Option<&LabelSelector>,
    w: &Written<'_>,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    let matches = |s: &LabelSelector, l: &BTreeMap<String, String>| {
        Selector::try_from(s.clone()).is_ok_and(|s| s.matches(l))
    };
    let ns_ok = match namespaces {
        None => p.namespace == w.namespace,
        Some(s) => matches(s, w.namespace_labels),
    };
    if !ns_ok {
        return Some(match namespaces {
            None => format!(
                "{field}NamespaceSelector is not set, so only {}'s own namespace",
                p.namespace
            ),
            Some(_) => format!(
                "{field}NamespaceSelector does not match namespace {}",
                w.namespace
            ),
        });
    }
    match selector {
        None => Some(format!(
            "{field}Selector is not set, so it selects no {what}"
        )),
        Some(s) if !matches(s, labels) => Some(format!(
            "{field}Selector does not match the {what}'s labels"
        )),
        Some(_) => None,
    }
}

/// Why `p` does not select both objects; empty when it does.
pub fn reasons(p: &OperatorPrometheus, w: &Written<'_>) -> Vec<String> {
    [
        (
            "ServiceMonitor",
            "serviceMonitor",
            &p.monitor_selector,
            &p.monitor_namespaces,
            w.monitor_labels,
        ),
        (
            "PrometheusRule",
            "rule",
            &p.rule_selector,
            &p.rule_namespaces,
            w.rule_labels,
        ),
    ]
    .into_iter()
    .filter_map(|(what, field, selector, namespaces, labels)| {
        misses(
            p,
            what,
            field,
            selector.as_ref(),
            namespaces.as_ref(),
            w,
            labels,
        )
    })
    .collect()
}

/// The outcome for a stack: every Prometheus that selects both objects, the first
/// being the one onboarding reads (by `namespace/name`, the stack's own namespace
/// first), and for every other Prometheus, why it does not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Choice {
    /// URL of the first of `selecting`.
    pub url: Option<String>,
    /// `namespace/name` of every Prometheus that selects both objects.
    pub selecting: Vec<String>,
    /// `namespace/name: reason; reason` of those that do not.
    pub not_selecting: Vec<String>,
}

/// Chooses among `proms` for what the stack writes.
pub fn choose(proms: &[OperatorPrometheus], w: &Written<'_>) -> Choice {
    let mut sorted: Vec<&OperatorPrometheus> = proms.iter().collect();
    sorted.sort_by_key(|p| (p.namespace != w.namespace, p.key()));
    let mut c = Choice::default();
    for p in sorted {
        let why = reasons(p, w);
        if why.is_empty() {
            c.url.get_or_insert_with(|| p.url());
            c.selecting.push(p.key());
        } else {
            c.not_selecting
                .push(format!("{}: {}", p.key(), why.join("; ")));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(v: Value) -> BTreeMap<String, String> {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn prom(ns: &str, name: &str, spec: Value) -> OperatorPrometheus {
        OperatorPrometheus::from_spec(ns, name, &spec)
    }

    #[test]
    fn selection_follows_the_operator_rules() {
        let ns_labels = labels(json!({ "kubernetes.io/metadata.name": "mon", "team": "sre" }));
        let ml = labels(
            json!({ "app.kubernetes.io/managed-by": "steward-monitor", "app.kubernetes.io/name": "node-exporter" }),
        );
        let rl = labels(
            json!({ "app.kubernetes.io/managed-by": "steward-monitor", "app.kubernetes.io/name": "rules" }),
        );
        let w = Written {
            namespace: "mon",
            namespace_labels: &ns_labels,
            monitor_labels: &ml,
            rule_labels: &rl,
        };
        let all = json!({ "serviceMonitorSelector": {}, "ruleSelector": {} });
        let cases: Vec<(&str, OperatorPrometheus, &[&str])> = vec![
            (
                "empty selectors, same namespace",
                prom("mon", "p", all.clone()),
                &[],
            ),
            (
                "null selectors select nothing",
                prom("mon", "p", json!({})),
                &[
                    "serviceMonitorSelector is not set",
                    "ruleSelector is not set",
                ],
            ),
            (
                "null namespace selectors: own namespace only",
                prom("monitoring", "p", all.clone()),
                &[
                    "serviceMonitorNamespaceSelector is not set",
                    "ruleNamespaceSelector is not set",
                ],
            ),
            (
                "empty namespace selectors: every namespace",
                prom(
                    "monitoring",
                    "p",
                    json!({ "serviceMonitorSelector": {}, "ruleSelector": {}, "serviceMonitorNamespaceSelector": {}, "ruleNamespaceSelector": {} }),
                ),
                &[],
            ),
            (
                "namespace selector by label",
                prom(
                    "monitoring",
                    "p",
                    json!({ "serviceMonitorSelector": {}, "ruleSelector": {}, "serviceMonitorNamespaceSelector": { "matchLabels": { "team": "sre" } }, "ruleNamespaceSelector": { "matchLabels": { "team": "web" } } }),
                ),
                &["ruleNamespaceSelector does not match namespace mon"],
            ),
            (
                "kube-prometheus-stack's default release label",
                prom(
                    "mon",
                    "p",
                    json!({ "serviceMonitorSelector": { "matchLabels": { "release": "kps" } }, "ruleSelector": { "matchLabels": { "release": "kps" } } }),
                ),
                &[
                    "serviceMonitorSelector does not match",
                    "ruleSelector does not match",
                ],
            ),
            (
                "match expressions",
                prom(
                    "mon",
                    "p",
                    json!({
                        "serviceMonitorSelector": { "matchExpressions": [{ "key": "app.kubernetes.io/managed-by", "operator": "In", "values": ["steward-monitor"] }] },
                        "ruleSelector": { "matchExpressions": [{ "key": "app.kubernetes.io/name", "operator": "NotIn", "values": ["rules"] }] },
                    }),
                ),
                &["ruleSelector does not match"],
            ),
        ];
        for (what, p, want) in cases {
            let got = reasons(&p, &w);
            assert_eq!(got.len(), want.len(), "{what}: {got:?}");
            for (g, w) in got.iter().zip(want) {
                assert!(g.starts_with(w), "{what}: {g} does not start with {w}");
            }
        }
    }

    #[test]
    fn the_chosen_one_and_its_url() {
        let e = BTreeMap::new();
        let w = Written {
            namespace: "mon",
            namespace_labels: &e,
            monitor_labels: &e,
            rule_labels: &e,
        };
        let everywhere = json!({ "serviceMonitorSelector": {}, "ruleSelector": {}, "serviceMonitorNamespaceSelector": {}, "ruleNamespaceSelector": {} });
        let mut tls = everywhere.clone();
        tls["web"] = json!({ "tlsConfig": { "cert": {} } });
        tls["routePrefix"] = json!("/prom/");
        let c = choose(
            &[
                prom("a", "z", everywhere.clone()),
                prom("mon", "picky", json!({})),
                prom("mon", "own", everywhere),
                prom("b", "tls", tls.clone()),
            ],
            &w,
        );
        assert_eq!(
            c.selecting,
            ["mon/own", "a/z", "b/tls"],
            "the stack's own namespace first"
        );
        assert_eq!(
            c.url.as_deref(),
            Some("http://prometheus-operated.mon.svc:9090")
        );
        assert_eq!(c.not_selecting.len(), 1);
        assert!(c.not_selecting[0].starts_with("mon/picky: "), "{c:?}");
        assert_eq!(
            prom("b", "tls", tls).url(),
            "https://prometheus-operated.b.svc:9090/prom"
        );
        assert_eq!(choose(&[], &w).url, None);
    }
}
