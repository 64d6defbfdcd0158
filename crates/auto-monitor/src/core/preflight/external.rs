//! The `external-prometheus` finding of a stack with `spec.prometheus: external`:
//! blocking without the Prometheus Operator's CRDs (nothing would scrape the nodes),
//! a warning when no operator Prometheus selects the stack's ServiceMonitor and
//! PrometheusRule (the operator may be configured later; onboarding shows the nodes
//! as not monitored until then), ok naming the one onboarding reads.

use super::{BLOCKING, Cluster, OK, WARNING, finding};
use crate::core::manifests::operator::{
    REQUIRED_CRDS, crds_present, node_exporter_monitor_name, rule_name,
};
use crate::core::stack::Stack;
use crate::crd::PreflightFinding;

const CHECK: &str = "external-prometheus";

/// The finding.
pub(super) fn finding_for(stack: &Stack, c: &Cluster) -> PreflightFinding {
    if !crds_present(c.operator_crd_names.iter().map(String::as_str)) {
        return finding(
            CHECK,
            BLOCKING,
            format!(
                "spec.prometheus is external but the cluster lacks the Prometheus Operator's CRDs ({}): nothing would scrape the nodes; install the operator or remove spec.prometheus",
                REQUIRED_CRDS.join(", ")
            ),
        );
    }
    let objects = format!(
        "ServiceMonitor {ns}/{} and PrometheusRule {ns}/{}",
        node_exporter_monitor_name(stack),
        rule_name(stack),
        ns = stack.namespace
    );
    let choice = c.external.clone().unwrap_or_default();
    let others = if choice.not_selecting.is_empty() {
        String::new()
    } else {
        format!("; not selecting them: {}", choice.not_selecting.join(", "))
    };
    match &choice.url {
        None if choice.not_selecting.is_empty() => finding(
            CHECK,
            WARNING,
            format!(
                "no Prometheus object in the cluster selects {objects}: the nodes are not scraped until one does"
            ),
        ),
        None => finding(
            CHECK,
            WARNING,
            format!("no Prometheus selects {objects}{others}"),
        ),
        Some(url) => {
            let reads = match &stack.settings.prometheus_url {
                Some(u) => format!("onboarding reads spec.prometheusUrl {u}"),
                None => format!("onboarding reads {url}"),
            };
            finding(
                CHECK,
                OK,
                format!(
                    "Prometheus {} selects {objects}; {reads}{others}",
                    choice.selecting.join(", ")
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::external::Choice;
    use crate::core::validate::{Profile, validate};
    use crate::crd::MonitoringStackSpec;

    fn stack(url: Option<&str>) -> Stack {
        let spec = MonitoringStackSpec {
            prometheus: Some("external".into()),
            prometheus_url: url.map(String::from),
            ..Default::default()
        };
        Stack::new(
            "mon",
            "obs",
            validate(&spec).unwrap_or_else(|e| panic!("{e:?}")),
            Profile::Generic,
        )
    }

    #[test]
    fn findings() {
        let crds: Vec<String> = REQUIRED_CRDS.map(String::from).into();
        let chosen = Choice {
            url: Some("http://prometheus-operated.obs.svc:9090".into()),
            selecting: vec!["obs/k8s".into()],
            not_selecting: vec![
                "obs/picky: ruleSelector is not set, so it selects no PrometheusRule".into(),
            ],
        };
        let none = Choice {
            url: None,
            selecting: vec![],
            not_selecting: chosen.not_selecting.clone(),
        };
        type Case<'a> = (&'a str, Cluster, Option<&'a str>, &'a str, &'a [&'a str]);
        let cases: Vec<Case> = vec![
            (
                "no operator CRDs",
                Cluster::default(),
                None,
                BLOCKING,
                &["servicemonitors.monitoring.coreos.com"],
            ),
            (
                "no Prometheus at all",
                Cluster {
                    operator_crd_names: crds.clone(),
                    ..Cluster::default()
                },
                None,
                WARNING,
                &[
                    "no Prometheus object",
                    "ServiceMonitor obs/mon-node-exporter",
                    "PrometheusRule obs/mon-rules",
                ],
            ),
            (
                "none selects",
                Cluster {
                    operator_crd_names: crds.clone(),
                    external: Some(none),
                    ..Cluster::default()
                },
                None,
                WARNING,
                &["obs/picky: ruleSelector is not set"],
            ),
            (
                "chosen",
                Cluster {
                    operator_crd_names: crds.clone(),
                    external: Some(chosen.clone()),
                    ..Cluster::default()
                },
                None,
                OK,
                &[
                    "Prometheus obs/k8s selects",
                    "onboarding reads http://prometheus-operated.obs.svc:9090",
                    "not selecting them: obs/picky",
                ],
            ),
            (
                "chosen, explicit URL",
                Cluster {
                    operator_crd_names: crds,
                    external: Some(chosen),
                    ..Cluster::default()
                },
                Some("http://mimir:8080/prometheus"),
                OK,
                &["onboarding reads spec.prometheusUrl http://mimir:8080/prometheus"],
            ),
        ];
        for (what, cluster, url, severity, parts) in cases {
            let f = finding_for(&stack(url), &cluster);
            assert_eq!(
                (f.check.as_str(), f.severity.as_str()),
                (CHECK, severity),
                "{what}: {f:?}"
            );
            for p in parts {
                assert!(f.message.contains(p), "{what}: {} lacks {p}", f.message);
            }
        }
    }
}
