//! Validation: the default stack, every wrong field named, Prometheus durations.

use super::*;
use crate::crd::Thresholds as T;

fn fields(spec: MonitoringStackSpec) -> Vec<String> {
    match validate(&spec) {
        Ok(_) => vec![],
        Err(e) => e.into_iter().map(|e| e.field).collect(),
    }
}

#[test]
fn empty_spec_is_the_default_stack() {
    let s = validate(&MonitoringStackSpec::default()).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(s.mode, InstallMode::Embedded);
    assert!(s.has("prometheus") && s.has("node-exporter") && s.has("kube-state-metrics"));
    assert_eq!(s.thresholds.cpu_percent, 80.0);
    assert_eq!(s.thresholds.disk_free_percent, 20.0);
    assert_eq!(s.onboarding_deadline, Duration::from_secs(120));
}

#[test]
fn each_bad_field_is_named() {
    let cases: Vec<(MonitoringStackSpec, &[&str])> = vec![
        (
            MonitoringStackSpec {
                components: Some(vec!["prometheus".into(), "loki".into()]),
                ..Default::default()
            },
            &["spec.components[1]"],
        ),
        (
            MonitoringStackSpec {
                thresholds: Some(T {
                    cpu_percent: Some(120.0),
                    disk_free_percent: Some(0.0),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &[
                "spec.thresholds.cpuPercent",
                "spec.thresholds.diskFreePercent",
            ],
        ),
        (
            MonitoringStackSpec {
                scrape_interval: Some("15 seconds".into()),
                retention: Some("0d".into()),
                ..Default::default()
            },
            &["spec.retention", "spec.scrapeInterval"],
        ),
        (
            MonitoringStackSpec {
                thresholds: Some(T {
                    node_down_for: Some("1m1h".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &["spec.thresholds.nodeDownFor"],
        ),
        (
            MonitoringStackSpec {
                install_mode: Some("operator".into()),
                profile: Some("openshift".into()),
                ..Default::default()
            },
            &["spec.installMode", "spec.profile"],
        ),
        (
            MonitoringStackSpec {
                install_mode: Some("helm".into()),
                ..Default::default()
            },
            &["spec.helm.chart"],
        ),
        (
            MonitoringStackSpec {
                resources: Some(
                    [(
                        "grafana".to_string(),
                        ComponentResources {
                            requests: Some([("cpu".to_string(), "lots".to_string())].into()),
                            limits: None,
                        },
                    )]
                    .into(),
                ),
                prometheus_url: Some("prometheus:9090".into()),
                ..Default::default()
            },
            &["spec.resources.grafana.requests.cpu", "spec.prometheusUrl"],
        ),
        (
            MonitoringStackSpec {
                prometheus: Some("operator".into()),
                ..Default::default()
            },
            &["spec.prometheus"],
        ),
        (
            MonitoringStackSpec {
                prometheus: Some("external".into()),
                components: Some(vec!["prometheus".into(), "node-exporter".into()]),
                ..Default::default()
            },
            &["spec.prometheus"],
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(fields(spec.clone()), want.to_vec(), "{spec:?}");
    }
}

#[test]
fn external_prometheus_runs_none_of_steward_and_is_embedded_only() {
    let s = validate(&MonitoringStackSpec {
        prometheus: Some("external".into()),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(s.external_prometheus && !s.has("prometheus") && s.has("node-exporter"));
    let own = validate(&MonitoringStackSpec {
        prometheus: Some("steward".into()),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!own.external_prometheus && own.has("prometheus"));
    let helm = validate(&MonitoringStackSpec {
        prometheus: Some("external".into()),
        install_mode: Some("helm".into()),
        helm: Some(crate::crd::HelmSpec {
            chart: "prometheus-community/kube-prometheus-stack".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let errs = helm.err().unwrap_or_default();
    assert!(
        errs.iter()
            .any(|e| e.field == "spec.prometheus" && e.reason.contains("embedded")),
        "{errs:?}"
    );
}

#[test]
fn prometheus_durations() {
    for (s, want) in [
        ("15s", Some(15_000)),
        ("1h30m", Some(5_400_000)),
        ("15d", Some(15 * 86_400_000)),
        ("500ms", Some(500)),
        ("1m1h", None),
        ("", None),
        ("5", None),
        ("s", None),
        ("1.5m", None),
    ] {
        assert_eq!(
            prom_duration(s).map(|d| u64::try_from(d.as_millis()).unwrap_or(0)),
            want,
            "{s}"
        );
    }
}
