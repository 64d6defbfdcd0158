//! Turns a `MonitoringStack` spec into resolved [`Settings`], or the list of fields
//! that are wrong. Pure: the controller writes the errors into a `SpecValid=False`
//! condition and applies or removes nothing while any remain.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::crd::{COMPONENTS, ComponentResources, MonitoringStackSpec, Placement, Storage};

/// One wrong field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path under the object, e.g. `spec.thresholds.cpuPercent`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// How the stack is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallMode {
    /// steward's own manifests.
    Embedded,
    /// `helm upgrade --install`.
    Helm,
}

/// A local cluster flavour; each fixes what that flavour breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// kind (control plane in a container).
    Kind,
    /// minikube.
    Minikube,
    /// k3s (one binary, embedded components).
    K3s,
    /// Anything else.
    Generic,
}

impl Profile {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kind => "kind",
            Self::Minikube => "minikube",
            Self::K3s => "k3s",
            Self::Generic => "generic",
        }
    }
}

/// Alert thresholds after defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Percent.
    pub cpu_percent: f64,
    /// Percent.
    pub memory_percent: f64,
    /// Percent free.
    pub disk_free_percent: f64,
    /// Prometheus durations, validated.
    pub node_down_for: String,
    /// `for` of the usage alerts.
    pub usage_for: String,
    /// `for` of DiskSpaceLow.
    pub disk_for: String,
    /// `for` of NodeNotMonitored.
    pub not_monitored_for: String,
}

/// The spec, resolved and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Enabled components, a subset of [`COMPONENTS`].
    pub components: BTreeSet<String>,
    /// Install mode.
    pub mode: InstallMode,
    /// Chosen profile; `None` means detect from the nodes.
    pub profile: Option<Profile>,
    /// Retention (Prometheus duration).
    pub retention: String,
    /// Scrape interval (Prometheus duration).
    pub scrape_interval: String,
    /// Onboarding deadline.
    pub onboarding_deadline: Duration,
    /// Alert thresholds.
    pub thresholds: Thresholds,
    /// Resources by component.
    pub resources: BTreeMap<String, ComponentResources>,
    /// Images by component (defaults filled in).
    pub images: BTreeMap<String, String>,
    /// Placement of Deployments.
    pub placement: Placement,
    /// Nodes to monitor.
    pub node_selector: BTreeMap<String, String>,
    /// Prometheus storage.
    pub storage: Option<Storage>,
    /// Explicit Prometheus URL.
    pub prometheus_url: Option<String>,
    /// Helm chart.
    pub helm: Option<crate::crd::HelmSpec>,
}

impl Settings {
    /// Whether a component is enabled.
    pub fn has(&self, component: &str) -> bool {
        self.components.contains(component)
    }
}

/// Default images, pinned.
pub const DEFAULT_IMAGES: [(&str, &str); 5] = [
    ("prometheus", "quay.io/prometheus/prometheus:v3.5.0"),
    ("alertmanager", "quay.io/prometheus/alertmanager:v0.28.1"),
    ("grafana", "docker.io/grafana/grafana:12.1.0"),
    ("node-exporter", "quay.io/prometheus/node-exporter:v1.9.1"),
    (
        "kube-state-metrics",
        "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.16.0",
    ),
];

/// Validates `spec`; every wrong field is reported, not just the first.
pub fn validate(spec: &MonitoringStackSpec) -> Result<Settings, Vec<FieldError>> {
    let mut errs = Vec::new();
    let mut err = |field: &str, reason: String| {
        errs.push(FieldError {
            field: field.into(),
            reason,
        })
    };
    let components = match &spec.components {
        None => COMPONENTS.map(String::from).into(),
        Some(list) => {
            for (i, c) in list.iter().enumerate() {
                if !COMPONENTS.contains(&c.as_str()) {
                    err(
                        &format!("spec.components[{i}]"),
                        format!(
                            "unknown component \"{c}\" (known: {})",
                            COMPONENTS.join(", ")
                        ),
                    );
                }
            }
            list.iter().cloned().collect()
        }
    };
    let mode = match spec.install_mode.as_deref() {
        None | Some("embedded") => InstallMode::Embedded,
        Some("helm") => InstallMode::Helm,
        Some(other) => {
            err(
                "spec.installMode",
                format!("unknown install mode \"{other}\" (embedded or helm)"),
            );
            InstallMode::Embedded
        }
    };
    if mode == InstallMode::Helm && spec.helm.as_ref().is_none_or(|h| h.chart.is_empty()) {
        err(
            "spec.helm.chart",
            "required when installMode is helm".into(),
        );
    }
    if let Some(t) = spec.helm.as_ref().and_then(|h| h.timeout.as_ref())
        && prom_duration(t).is_none_or(|d| d.is_zero())
    {
        err(
            "spec.helm.timeout",
            format!("\"{t}\" is not a duration such as 5m"),
        );
    }
    if let Some(v) = spec.helm.as_ref().and_then(|h| h.values.as_ref())
        && !v.is_object()
    {
        err("spec.helm.values", "must be a map of chart values".into());
    }
    let profile = match spec.profile.as_deref() {
        None | Some("auto") => None,
        Some(p) if parse_profile(p).is_some() => parse_profile(p),
        Some(other) => {
            err(
                "spec.profile",
                format!("unknown profile \"{other}\" (auto, kind, minikube, k3s or generic)"),
            );
            None
        }
    };
    let mut duration = |field: &str, v: Option<&String>, default: &str| -> String {
        let v = v.map_or(default, String::as_str);
        match prom_duration(v) {
            Some(d) if !d.is_zero() => {}
            _ => err(
                field,
                format!("\"{v}\" is not a Prometheus duration such as 30s, 5m, 1h or 15d"),
            ),
        }
        v.to_string()
    };
    let retention = duration("spec.retention", spec.retention.as_ref(), "7d");
    let scrape_interval = duration("spec.scrapeInterval", spec.scrape_interval.as_ref(), "15s");
    let deadline = duration(
        "spec.onboardingDeadline",
        spec.onboarding_deadline.as_ref(),
        "2m",
    );
    let t = spec.thresholds.clone().unwrap_or_default();
    let thresholds = Thresholds {
        node_down_for: duration(
            "spec.thresholds.nodeDownFor",
            t.node_down_for.as_ref(),
            "1m",
        ),
        usage_for: duration("spec.thresholds.usageFor", t.usage_for.as_ref(), "5m"),
        disk_for: duration("spec.thresholds.diskFor", t.disk_for.as_ref(), "5m"),
        not_monitored_for: duration(
            "spec.thresholds.notMonitoredFor",
            t.not_monitored_for.as_ref(),
            "2m",
        ),
        cpu_percent: t.cpu_percent.unwrap_or(80.0),
        memory_percent: t.memory_percent.unwrap_or(80.0),
        disk_free_percent: t.disk_free_percent.unwrap_or(20.0),
    };
    for (field, v) in [
        ("spec.thresholds.cpuPercent", thresholds.cpu_percent),
        ("spec.thresholds.memoryPercent", thresholds.memory_percent),
        (
            "spec.thresholds.diskFreePercent",
            thresholds.disk_free_percent,
        ),
    ] {
        if !(v > 0.0 && v < 100.0) {
            err(
                field,
                format!("{v} is out of range: use a percentage above 0 and below 100"),
            );
        }
    }
    let resources = spec.resources.clone().unwrap_or_default();
    for (component, r) in &resources {
        if !COMPONENTS.contains(&component.as_str()) {
            err(
                &format!("spec.resources.{component}"),
                format!("unknown component \"{component}\""),
            );
        }
        for (kind, map) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (res, q) in map.iter().flatten() {
                if !matches!(res.as_str(), "cpu" | "memory") || !is_quantity(q) {
                    err(
                        &format!("spec.resources.{component}.{kind}.{res}"),
                        format!("\"{q}\" is not a cpu or memory quantity such as 100m or 256Mi"),
                    );
                }
            }
        }
    }
    let mut images: BTreeMap<String, String> = DEFAULT_IMAGES
        .iter()
        .map(|(c, i)| (c.to_string(), i.to_string()))
        .collect();
    for (component, image) in spec.images.iter().flatten() {
        if !COMPONENTS.contains(&component.as_str()) {
            err(
                &format!("spec.images.{component}"),
                format!("unknown component \"{component}\""),
            );
        } else if image.trim().is_empty() {
            err(&format!("spec.images.{component}"), "empty image".into());
        }
        images.insert(component.clone(), image.clone());
    }
    if let Some(s) = &spec.storage
        && !is_quantity(&s.size)
    {
        err(
            "spec.storage.size",
            format!("\"{}\" is not a quantity such as 10Gi", s.size),
        );
    }
    if let Some(u) = &spec.prometheus_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        err(
            "spec.prometheusUrl",
            format!("\"{u}\" is not an http(s) URL"),
        );
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Settings {
        components,
        mode,
        profile,
        retention,
        scrape_interval,
        onboarding_deadline: prom_duration(&deadline).unwrap_or_default(),
        thresholds,
        resources,
        images,
        placement: spec.placement.clone().unwrap_or_default(),
        node_selector: spec.node_selector.clone().unwrap_or_default(),
        storage: spec.storage.clone(),
        prometheus_url: spec.prometheus_url.clone(),
        helm: spec.helm.clone(),
    })
}

/// A profile by its lowercase name.
pub fn parse_profile(s: &str) -> Option<Profile> {
    match s {
        "kind" => Some(Profile::Kind),
        "minikube" => Some(Profile::Minikube),
        "k3s" => Some(Profile::K3s),
        "generic" => Some(Profile::Generic),
        _ => None,
    }
}

/// Parses a Prometheus duration (`1h30m`, `15d`, `500ms`): units y, w, d, h, m, s,
/// ms, each at most once and in that order, as Prometheus' `model.ParseDuration`.
pub fn prom_duration(s: &str) -> Option<Duration> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut next_unit = 0;
    let mut ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let idx = UNITS[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        ms = ms.checked_add(n.checked_mul(UNITS[idx].1)?)?;
        next_unit = idx + 1;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_millis(ms))
}

/// Whether `q` is a Kubernetes quantity (number with an optional suffix).
fn is_quantity(q: &str) -> bool {
    steward_kube::quantity::parse(q).is_some()
}

#[cfg(test)]
mod tests {
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
                    profile: Some("eks".into()),
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
        ];
        for (spec, want) in cases {
            assert_eq!(fields(spec.clone()), want.to_vec(), "{spec:?}");
        }
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
}
